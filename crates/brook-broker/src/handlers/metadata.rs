//! Metadata and DescribeCluster: brokers, topics, partitions, leaders.

use brook_meta::TopicImage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};
use std::collections::BTreeMap;

use super::authorized_ops::{self, if_requested, NOT_REQUESTED as OPS_NOT_REQUESTED};
use super::{str_bytes, topic_name};
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;
use crate::names::{is_internal, validate_topic_name};

pub async fn handle(
    meta: &MetadataView,
    controller: &ControllerClient,
    auto_create_topics_enable: bool,
    listener: &str,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let brokers: Vec<MetadataResponseBroker> = meta
        .brokers(listener)
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    // v0: an empty list means "all topics"; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create = (version < 4 || req.allow_auto_topic_creation) && auto_create_topics_enable;
    let image = meta.image();
    let mut topics: Vec<MetadataResponseTopic> = if all {
        image.topics.values().map(|t| describe_topic(t)).collect()
    } else {
        let mut topics = Vec::new();
        let mut creations_left = MAX_AUTO_CREATE_PER_REQUEST;
        for t in req.topics.unwrap_or_default() {
            topics.push(lookup(meta, controller, t, auto_create, &mut creations_left).await);
        }
        topics
    };
    if req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            t.topic_authorized_operations = authorized_ops::TOPIC;
        }
    }
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(image.cluster_id.clone())))
        .with_controller_id(BrokerId(meta.controller_id_for_clients()))
        .with_topics(topics)
        .with_cluster_authorized_operations(if_requested(
            req.include_cluster_authorized_operations,
            authorized_ops::CLUSTER,
        ))
}

/// Topics one Metadata request may auto-create; the rest get LEADER_NOT_AVAILABLE
/// (retriable: the client asks again), so one request cannot keep the controller busy
/// for long, nor after its client has gone.
const MAX_AUTO_CREATE_PER_REQUEST: usize = 100;

async fn lookup(
    meta: &MetadataView,
    controller: &ControllerClient,
    t: kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    auto_create: bool,
    creations_left: &mut usize,
) -> MetadataResponseTopic {
    let image = meta.image();
    // By id when the request names none: null, or the empty string the Java client
    // leaves in the field (its default) when it asks by id, as Kafka's KafkaApis
    // treats any non-zero id.
    let by_id = t.name.as_deref().is_none_or(|n| n.is_empty()) && !t.topic_id.is_nil();
    let name = match &t.name {
        Some(n) if !by_id => n.0.to_string(),
        _ => match image.topic_by_id(&t.topic_id) {
            Some(topic) => return describe_topic(topic),
            None => {
                return MetadataResponseTopic::default()
                    .with_topic_id(t.topic_id)
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_topic_authorized_operations(OPS_NOT_REQUESTED)
            }
        },
    };
    if let Some(topic) = image.topic(&name) {
        return describe_topic(topic);
    }
    let error = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(&name)))
            .with_error_code(code)
            .with_topic_authorized_operations(OPS_NOT_REQUESTED)
    };
    if let Err(e) = validate_topic_name(&name) {
        return error(e.code);
    }
    // Internal topics are created by the broker, with their own settings, when needed.
    if !auto_create || is_internal(&name) {
        return error(ResponseError::UnknownTopicOrPartition.code());
    }
    if *creations_left == 0 {
        return error(ResponseError::LeaderNotAvailable.code());
    }
    *creations_left -= 1;
    let created = controller
        .create_topic(&name, -1, -1, BTreeMap::new(), Vec::new(), false)
        .await;
    match created {
        Err(e) if !e.is(ResponseError::TopicAlreadyExists) => error(e.code),
        _ => match meta.image().topic(&name) {
            Some(topic) => describe_topic(topic),
            None => error(ResponseError::UnknownTopicOrPartition.code()),
        },
    }
}

pub fn describe_topic(topic: &TopicImage) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            let error = if p.leader == brook_meta::NO_LEADER {
                ResponseError::LeaderNotAvailable.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p.index)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                .with_isr_nodes(p.isr.iter().map(|r| BrokerId(*r)).collect())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

pub fn describe_cluster(
    meta: &MetadataView,
    listener: &str,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let brokers = meta
        .brokers(listener)
        .into_iter()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
                .with_rack(b.rack.map(str_bytes))
        })
        .collect();
    // A broker answers for brokers only (Kafka: controllers for controllers).
    if req.endpoint_type != 1 {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::UnsupportedEndpointType.code())
            .with_error_message(Some(str_bytes(format!(
                "a broker describes endpoints of type 1 (brokers), not {}",
                req.endpoint_type
            ))))
            .with_endpoint_type(req.endpoint_type);
    }
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(meta.image().cluster_id.clone()))
        .with_controller_id(BrokerId(meta.controller_id_for_clients()))
        .with_brokers(brokers)
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(if_requested(
            req.include_cluster_authorized_operations,
            authorized_ops::CLUSTER,
        ))
}
