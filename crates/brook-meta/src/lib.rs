//! Brook's cluster metadata as a log of records applied to an image.
//!
//! Every change (topic created, partitions added, config set, topic deleted, producer id
//! block allocated) is a [`MetadataRecord`]. Records are appended to a log and applied,
//! in order, to a [`MetadataImage`]. A single broker keeps the log in one file
//! ([`FileMetadataLog`]); a cluster will replicate the same records through a Raft
//! quorum, so nothing here depends on how the log is stored.

pub mod acl;
mod authorizer;
pub mod controller;
mod image;
pub mod quota;
mod scram;
mod store;

pub use acl::{
    create_acls, delete_acls, Acl, AclError, AclFilter, AclOperation, AclPermission, PatternType,
    ResourceType,
};
pub use authorizer::{Acls, Authorizer, Requester};
pub use image::{
    BrokerConfigs, BrokerEndpoint, BrokerImage, MetadataImage, PartitionImage, TopicChange,
    TopicImage, TopicMap, NO_LEADER,
};
pub use quota::{
    alter_client_quotas, ClientQuotas, QuotaAlteration, QuotaEntity, QuotaError, QuotaKind,
    QuotaValue, ResolvedQuota,
};
pub use scram::{
    alter_scram_credentials, ScramAlterError, ScramCredential, ScramCredentials, ScramMechanism,
    ScramUpsertion, MAX_SCRAM_ITERATIONS,
};
pub use store::{check as check_metadata_log, FileMetadataLog, MetaCheck, MetaError};

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
        /// Replicas of each partition, preferred leader first. Empty in a single-node
        /// log: every partition lives on the image's own node.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignment: Vec<Vec<i32>>,
    },
    /// The topic now has `total` partitions (CreatePartitions only ever grows).
    PartitionsAdded {
        name: String,
        total: i32,
        /// Replicas of each new partition (empty: the image's own node).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignment: Vec<Vec<i32>>,
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
    /// Set (`Some`) or remove (`None`) a dynamic broker config (Kafka's BROKER
    /// resource): for one broker, or the cluster-wide default when `broker` is `None`.
    BrokerConfigSet {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        broker: Option<i32>,
        key: String,
        value: Option<String>,
    },
    /// Set (`Some`) or remove (`None`) a dynamic group config (Kafka's GROUP resource,
    /// KIP-848/KIP-932 group configs such as `share.auto.offset.reset`).
    GroupConfigSet {
        group: String,
        key: String,
        value: Option<String>,
    },
    /// Set one user's SCRAM credential for one mechanism (Kafka's
    /// UserScramCredentialRecord): the salted keys, never the password.
    ScramCredentialSet {
        user: String,
        mechanism: ScramMechanism,
        #[serde(flatten)]
        credential: ScramCredential,
    },
    /// Remove one user's SCRAM credential for one mechanism (Kafka's
    /// RemoveUserScramCredentialRecord).
    ScramCredentialRemoved {
        user: String,
        mechanism: ScramMechanism,
    },
    /// An ACL was created under a stable id (Kafka's AccessControlEntryRecord).
    AclCreated {
        id: Uuid,
        #[serde(flatten)]
        acl: Acl,
    },
    /// The ACL with this id was removed (Kafka's RemoveAccessControlEntryRecord).
    AclRemoved {
        id: Uuid,
    },
    /// Set (`Some`) or remove (`None`) one quota of a client quota entity (Kafka's
    /// QuotaRecord).
    ClientQuotaSet {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
    /// Producer ids below `next_block_start` have been handed out.
    ProducerIdsAllocated {
        next_block_start: i64,
    },
    /// A broker joined, or came back as a new process or with a new address; it starts
    /// unfenced.
    BrokerRegistered {
        id: i32,
        host: String,
        port: i32,
        /// Chosen by each broker process at start (Kafka's broker epoch): requests a
        /// previous process of the same broker left in flight are refused.
        #[serde(default)]
        incarnation: u64,
        /// Its client listeners' advertised endpoints (Metadata answers each client
        /// with those of the listener it connected to).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<BrokerEndpoint>,
        /// Its `broker.rack`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
    },
    /// The broker stopped heartbeating: it leads nothing until it is unfenced.
    BrokerFenced {
        id: i32,
    },
    BrokerUnfenced {
        id: i32,
    },
    /// New leader, ISR or replica set of one partition. `leader_epoch` is bumped on every
    /// leader change; the partition epoch on every change.
    PartitionChanged {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
        /// A new replica set; it ends any reassignment of the partition.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        replicas: Option<Vec<i32>>,
    },
    /// A reassignment of one partition started (or replaced the one in progress):
    /// `replicas` is the target followed by the replicas being removed. Leader and ISR
    /// do not change; the reassignment ends with a `PartitionChanged` that sets the
    /// target as the replicas once every target replica is in sync (or cancels it).
    PartitionReassigning {
        topic: String,
        partition: i32,
        replicas: Vec<i32>,
        adding: Vec<i32>,
        removing: Vec<i32>,
    },
}
