//! Transaction markers in the partitions this broker leads: what a transaction
//! coordinator asks of a partition leader (here, through the inter-broker RPC, or as
//! Kafka's WriteTxnMarkers).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

use crate::clock::now_ms;
use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::names::OFFSETS_TOPIC;
use crate::peer::MarkerRequest;
use crate::replicas::Replicas;

/// How long a marker may wait for the in-sync replicas.
pub const REPLICATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes markers in the partitions this broker leads.
pub struct MarkerWriter {
    pub replicas: Arc<Replicas>,
    pub groups: Arc<Groups>,
    pub metadata: MetadataView,
}

impl MarkerWriter {
    /// Writes the markers and waits until their in-sync replicas have them. One error
    /// code per partition, in order.
    pub async fn write(&self, request: &MarkerRequest) -> Vec<i16> {
        let mut codes = Vec::with_capacity(request.partitions.len());
        let deadline = tokio::time::Instant::now() + REPLICATION_TIMEOUT;
        let mut waits = Vec::new();
        for (topic, index) in &request.partitions {
            let Some(partition) = self.replicas.get(topic, *index) else {
                let exists = self
                    .metadata
                    .image()
                    .topic(topic)
                    .is_some_and(|t| (*index as usize) < t.partitions.len());
                codes.push(if exists {
                    ResponseError::NotLeaderOrFollower.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                });
                continue;
            };
            match partition.write_marker(
                request.producer_id,
                request.producer_epoch,
                request.commit,
                request.coordinator_epoch,
                now_ms(),
            ) {
                Ok(appended) => {
                    if topic == OFFSETS_TOPIC {
                        self.groups
                            .complete_txn(*index, request.producer_id, request.commit);
                    }
                    waits.push((codes.len(), partition, appended));
                    codes.push(0);
                }
                Err(e) => codes.push(e.code()),
            }
        }
        for (i, partition, appended) in waits {
            if let Err(e) = partition.flush_appended(&appended).await {
                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "cannot flush a transaction marker");
                codes[i] = ResponseError::KafkaStorageError.code();
                continue;
            }
            if let Err(code) = partition.wait_replicated(&appended, deadline).await {
                codes[i] = code;
            }
        }
        codes
    }
}
