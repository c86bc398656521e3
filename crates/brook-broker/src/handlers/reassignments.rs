//! AlterPartitionReassignments and ListPartitionReassignments (KIP-455), as
//! `kafka-reassign-partitions --execute/--verify/--cancel` use them. The controller adds
//! the new replicas first, and drops the old ones only once every target replica is in
//! the ISR, so a partition never has fewer in-sync copies than before the move.

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::{by_topic, str_bytes, topic_name};
use crate::controller::{ControllerReply, ControllerRequest};
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;

pub async fn alter(
    controller: &ControllerClient,
    req: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let partitions: Vec<(String, i32, Option<Vec<i32>>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                let target = p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
                (t.name.0.to_string(), p.partition_index, target)
            })
        })
        .collect();
    // Version 0 has no such flag and always allowed a new replication factor.
    let allow_rf_change = version < 1 || req.allow_replication_factor_change;
    let outcome = controller
        .request(ControllerRequest::Reassign {
            partitions: partitions.clone(),
            allow_replication_factor_change: allow_rf_change,
        })
        .await;
    let results: Vec<(i16, Option<String>)> = match outcome {
        Ok(ControllerReply::Reassigned(r)) if r.len() == partitions.len() => r,
        Ok(other) => {
            tracing::error!(reply = ?other, "unexpected controller reply to a reassignment");
            let e = kafka_protocol::error::ResponseError::UnknownServerError;
            vec![(e.code(), None); partitions.len()]
        }
        Err(e) => vec![(e.code, Some(e.message)); partitions.len()],
    };
    let per_partition =
        partitions
            .into_iter()
            .zip(results)
            .map(|((topic, index, _), (code, message))| {
                let result = ReassignablePartitionResponse::default()
                    .with_partition_index(index)
                    .with_error_code(code)
                    .with_error_message(message.map(str_bytes));
                (topic, result)
            });
    let responses = by_topic(per_partition)
        .into_iter()
        .map(|(topic, partitions)| {
            ReassignableTopicResponse::default()
                .with_name(topic_name(&topic))
                .with_partitions(partitions)
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(allow_rf_change)
        .with_responses(responses)
}

pub fn list(
    meta: &MetadataView,
    req: ListPartitionReassignmentsRequest,
    _version: i16,
) -> ListPartitionReassignmentsResponse {
    let image = meta.committed();
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.name.0.as_str() == topic && t.partition_indexes.contains(&index)),
    };
    let ids = |v: &[i32]| v.iter().copied().map(BrokerId).collect::<Vec<_>>();
    let topics = image
        .topics
        .values()
        .filter_map(|t| {
            let partitions: Vec<OngoingPartitionReassignment> = t
                .partitions
                .iter()
                .filter(|p| p.is_reassigning() && wanted(&t.name, p.index))
                .map(|p| {
                    OngoingPartitionReassignment::default()
                        .with_partition_index(p.index)
                        .with_replicas(ids(&p.replicas))
                        .with_adding_replicas(ids(&p.adding_replicas))
                        .with_removing_replicas(ids(&p.removing_replicas))
                })
                .collect();
            (!partitions.is_empty()).then(|| {
                OngoingTopicReassignment::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions)
            })
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}
