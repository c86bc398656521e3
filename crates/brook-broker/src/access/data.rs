//! The data path's checks: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch and
//! Metadata, as Kafka's `KafkaApis` makes them.

use brook_meta::{MetadataImage, ResourceType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    FetchRequest, ListOffsetsRequest, MetadataRequest, MetadataResponse,
    OffsetForLeaderEpochRequest, ProduceRequest, ProduceResponse,
};
use uuid::Uuid;

use super::{Check, Op, CLUSTER_NAME};
use crate::handlers::fetch::replica_of;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();

/// A topic's name as the request gives it, or from its id (newer versions send only
/// the id). `None`: an id the image does not know, left to the handler.
fn topic_name<'a>(image: &'a MetadataImage, name: &'a str, id: &Uuid) -> Option<&'a str> {
    if !id.is_nil() && name.is_empty() {
        return image.topic_by_id(id).map(|t| t.name.as_str());
    }
    Some(name)
}

/// Produce: a transactional produce needs WRITE on its transactional id (or the whole
/// request fails with TRANSACTIONAL_ID_AUTHORIZATION_FAILED: `Err` holds that
/// answer); each topic needs WRITE, its partitions answer TOPIC_AUTHORIZATION_FAILED
/// otherwise. Returns the refused topics' answers, to add to the handler's.
pub fn produce(
    c: &Check<'_>,
    image: &MetadataImage,
    req: &mut ProduceRequest,
) -> Result<Vec<TopicProduceResponse>, ProduceResponse> {
    let answer = |t: &kafka_protocol::messages::produce_request::TopicProduceData, code| {
        TopicProduceResponse::default()
            .with_name(t.name.clone())
            .with_topic_id(t.topic_id)
            .with_partition_responses(
                t.partition_data
                    .iter()
                    .map(|p| {
                        PartitionProduceResponse::default()
                            .with_index(p.index)
                            .with_error_code(code)
                            .with_base_offset(-1)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(-1)
                    })
                    .collect(),
            )
    };
    if let Some(id) = &req.transactional_id {
        if !c.txn(Op::Write, id) {
            let code = ResponseError::TransactionalIdAuthorizationFailed.code();
            return Err(ProduceResponse::default()
                .with_responses(req.topic_data.iter().map(|t| answer(t, code)).collect()));
        }
    }
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topic_data)
        .into_iter()
        .partition(|t| {
            topic_name(image, &t.name, &t.topic_id).is_none_or(|n| c.topic(Op::Write, n))
        });
    req.topic_data = allowed;
    Ok(refused.iter().map(|t| answer(t, TOPIC_DENIED)).collect())
}

/// Fetch: a follower's fetch (replica id set) needs CLUSTER_ACTION on the cluster; a
/// consumer's needs READ on each topic. Refused topics answer TOPIC_AUTHORIZATION_FAILED
/// per partition.
pub fn fetch(
    c: &Check<'_>,
    image: &MetadataImage,
    req: &mut FetchRequest,
) -> Vec<FetchableTopicResponse> {
    let replica = replica_of(req).is_some();
    let follower_allowed = replica && c.cluster(Op::ClusterAction);
    let (allowed, refused): (Vec<_>, Vec<_>) =
        std::mem::take(&mut req.topics).into_iter().partition(|t| {
            if replica {
                return follower_allowed;
            }
            topic_name(image, &t.topic, &t.topic_id).is_none_or(|n| c.topic(Op::Read, n))
        });
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            FetchableTopicResponse::default()
                .with_topic(t.topic)
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            PartitionData::default()
                                .with_partition_index(p.partition)
                                .with_error_code(TOPIC_DENIED)
                                .with_high_watermark(-1)
                                .with_last_stable_offset(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// ListOffsets: DESCRIBE on each topic.
pub fn list_offsets(c: &Check<'_>, req: &mut ListOffsetsRequest) -> Vec<ListOffsetsTopicResponse> {
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| c.topic(Op::Describe, &t.name));
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(TOPIC_DENIED)
                                .with_timestamp(-1)
                                .with_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// OffsetForLeaderEpoch: a follower's needs CLUSTER_ACTION, anyone else's DESCRIBE on
/// each topic.
pub fn offset_for_leader_epoch(
    c: &Check<'_>,
    req: &mut OffsetForLeaderEpochRequest,
) -> Vec<OffsetForLeaderTopicResult> {
    let replica = req.replica_id.0 >= 0;
    let follower_allowed = replica && c.cluster(Op::ClusterAction);
    let (allowed, refused): (Vec<_>, Vec<_>) =
        std::mem::take(&mut req.topics).into_iter().partition(|t| {
            if replica {
                follower_allowed
            } else {
                c.topic(Op::Describe, &t.topic)
            }
        });
    req.topics = allowed;
    refused
        .into_iter()
        .map(|t| {
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(TOPIC_DENIED)
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// Metadata for named topics: those the principal may not DESCRIBE, and those that do
/// not exist and would be created without CREATE on the cluster or the topic, answer
/// TOPIC_AUTHORIZATION_FAILED (with no topic id: existence is not disclosed). A request
/// for all topics is answered by [`metadata_all`] instead.
pub fn metadata(
    c: &Check<'_>,
    image: &MetadataImage,
    auto_create: bool,
    req: &mut MetadataRequest,
) -> Vec<MetadataResponseTopic> {
    let Some(topics) = req.topics.as_mut() else {
        return Vec::new();
    };
    let creating = auto_create && req.allow_auto_topic_creation;
    let may_create_any = std::cell::OnceCell::new();
    let mut refused = Vec::new();
    topics.retain(|t| {
        let Some(name) = topic_name(image, t.name.as_deref().map_or("", |n| n), &t.topic_id) else {
            return true;
        };
        let allowed = if !c.topic(Op::Describe, name) {
            false
        } else if creating && image.topic(name).is_none() {
            *may_create_any.get_or_init(|| c.cluster(Op::Create)) || c.topic(Op::Create, name)
        } else {
            true
        };
        if !allowed {
            let by_id = t.name.as_deref().is_none_or(|n| n.is_empty()) && !t.topic_id.is_nil();
            refused.push(
                MetadataResponseTopic::default()
                    .with_error_code(TOPIC_DENIED)
                    .with_name((!by_id).then(|| t.name.clone()).flatten())
                    .with_topic_id(if by_id { t.topic_id } else { Uuid::nil() }),
            );
        }
        allowed
    });
    refused
}

/// Metadata for all topics: only those the principal may DESCRIBE are listed.
pub fn metadata_all(c: &Check<'_>, topics: &mut Vec<MetadataResponseTopic>) {
    topics.retain(|t| {
        t.name
            .as_ref()
            .is_none_or(|n| c.allowed_quietly(Op::Describe, ResourceType::Topic, n))
    });
}

/// A Metadata answer, after the handler: for all topics, filtered; the operations
/// reported as authorized, the principal's.
pub fn metadata_answer(
    c: &Check<'_>,
    all_topics: bool,
    refused: Vec<MetadataResponseTopic>,
    resp: &mut MetadataResponse,
) {
    if all_topics {
        metadata_all(c, &mut resp.topics);
    }
    for t in &mut resp.topics {
        if let Some(name) = &t.name {
            t.topic_authorized_operations =
                c.authorized_ops(t.topic_authorized_operations, ResourceType::Topic, name);
        }
    }
    if resp.cluster_authorized_operations != i32::MIN {
        resp.cluster_authorized_operations = if c.cluster(Op::Describe) {
            c.authorized_ops(
                resp.cluster_authorized_operations,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
        } else {
            0
        };
    }
    resp.topics.extend(refused);
}
