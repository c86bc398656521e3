//! ElectLeaders: move leadership back to each partition's preferred (first) replica,
//! as `kafka-leader-election --election-type preferred` asks. Unclean elections are
//! refused: Brook never elects a replica that may lack acknowledged records.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};

use super::{by_topic, str_bytes, topic_name};
use crate::controller::ControllerRequest;
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;

const PREFERRED: i8 = 0;

pub async fn handle(
    controller: &ControllerClient,
    meta: &MetadataView,
    req: ElectLeadersRequest,
    version: i16,
) -> ElectLeadersResponse {
    let before = meta.committed();
    let wanted: Vec<(String, i32)> = match &req.topic_partitions {
        Some(list) => list
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        None => before
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.clone(), p.index)))
            .collect(),
    };
    let unclean = version >= 1 && req.election_type != PREFERRED;
    let elected = if unclean {
        None
    } else {
        Some(
            controller
                .request(ControllerRequest::ElectPreferred {
                    partitions: Some(wanted.clone()),
                })
                .await,
        )
    };
    let after = meta.committed();
    let mut results: Vec<(String, PartitionResult)> = Vec::new();
    for (topic, index) in wanted {
        let (code, message) = match (&elected, after.partition(&topic, index)) {
            (None, _) => (
                ResponseError::EligibleLeadersNotAvailable.code(),
                Some("unclean leader election is disabled".to_string()),
            ),
            (_, None) => (ResponseError::UnknownTopicOrPartition.code(), None),
            (Some(Err(e)), _) => (e.code, Some(e.message.clone())),
            (Some(Ok(_)), Some(p)) => {
                let preferred = p.replicas.first().copied();
                let was = before.partition(&topic, index).map(|p| p.leader);
                if Some(p.leader) != preferred {
                    (
                        ResponseError::PreferredLeaderNotAvailable.code(),
                        Some("the preferred replica is not live and in sync".to_string()),
                    )
                } else if was == preferred {
                    (ResponseError::ElectionNotNeeded.code(), None)
                } else {
                    (0, None)
                }
            }
        };
        let result = PartitionResult::default()
            .with_partition_id(index)
            .with_error_code(code)
            .with_error_message(message.map(str_bytes));
        results.push((topic, result));
    }
    let results = by_topic(results)
        .into_iter()
        .map(|(topic, partitions)| {
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic))
                .with_partition_result(partitions)
        })
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}
