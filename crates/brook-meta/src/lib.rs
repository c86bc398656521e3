//! Brook's cluster metadata as a log of records applied to an image.
//!
//! Every change (topic created, partitions added, config set, topic deleted, producer id
//! block allocated) is a [`MetadataRecord`]. Records are appended to a log and applied,
//! in order, to a [`MetadataImage`]. A single broker keeps the log in one file
//! ([`FileMetadataLog`]); a cluster will replicate the same records through a Raft
//! quorum, so nothing here depends on how the log is stored.

mod image;
mod store;

pub use image::{MetadataImage, PartitionImage, TopicImage};
pub use store::{FileMetadataLog, MetaError};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// The first record of every metadata log.
    ClusterCreated {
        cluster_id: String,
    },
    TopicCreated {
        name: String,
        topic_id: Uuid,
        partitions: i32,
        replication_factor: i16,
        /// Topic-level config overrides (Kafka names).
        configs: BTreeMap<String, String>,
        internal: bool,
    },
    /// The topic now has `total` partitions (CreatePartitions only ever grows).
    PartitionsAdded {
        name: String,
        total: i32,
    },
    /// Set (`Some`) or remove (`None`) a topic-level config override.
    TopicConfigSet {
        name: String,
        key: String,
        value: Option<String>,
    },
    TopicDeleted {
        name: String,
    },
    /// Producer ids below `next_block_start` have been handed out.
    ProducerIdsAllocated {
        next_block_start: i64,
    },
}
