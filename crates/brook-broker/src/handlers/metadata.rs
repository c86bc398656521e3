//! Metadata and DescribeCluster: brokers, topics, partitions, leaders.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_meta::TopicImage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
};

use super::authorized_ops::{self, if_requested, NOT_REQUESTED as OPS_NOT_REQUESTED};
use super::{str_bytes, topic_name};
use crate::shared::{validate_topic_name, Shared};

pub fn handle(shared: &Arc<Shared>, req: MetadataRequest, version: i16) -> MetadataResponse {
    let brokers: Vec<MetadataResponseBroker> = shared
        .brokers()
        .into_iter()
        .map(|(id, host, port)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect();
    // v0: an empty list means "all topics"; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auto_create = (version < 4 || req.allow_auto_topic_creation)
        && shared.config.flag("auto.create.topics.enable");
    let mut topics: Vec<MetadataResponseTopic> = if all {
        shared.with_image(|image| image.topics.values().map(|t| describe_topic(t)).collect())
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| lookup(shared, t, auto_create))
            .collect()
    };
    if req.include_topic_authorized_operations {
        for t in topics.iter_mut().filter(|t| t.error_code == 0) {
            t.topic_authorized_operations = authorized_ops::TOPIC;
        }
    }
    let cluster_id = shared.with_image(|i| i.cluster_id.clone());
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(cluster_id)))
        .with_controller_id(BrokerId(shared.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(if_requested(
            req.include_cluster_authorized_operations,
            authorized_ops::CLUSTER,
        ))
}

fn lookup(
    shared: &Arc<Shared>,
    t: kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    auto_create: bool,
) -> MetadataResponseTopic {
    let image = shared.image();
    let name = match &t.name {
        Some(n) => n.0.to_string(),
        None => match image.topic_by_id(&t.topic_id) {
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
    if !auto_create {
        return error(ResponseError::UnknownTopicOrPartition.code());
    }
    match crate::shared::block_on(shared.create_topic(
        &name,
        -1,
        -1,
        BTreeMap::new(),
        Vec::new(),
        false,
    )) {
        Ok(()) | Err(crate::shared::ApiError { code: 36, .. }) => match shared.image().topic(&name)
        {
            Some(topic) => describe_topic(topic),
            None => error(ResponseError::UnknownTopicOrPartition.code()),
        },
        Err(e) => error(e.code),
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
    shared: &Arc<Shared>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let brokers = shared
        .brokers()
        .into_iter()
        .map(|(id, host, port)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
        })
        .collect();
    DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(shared.with_image(|i| i.cluster_id.clone())))
        .with_controller_id(BrokerId(shared.controller_id()))
        .with_brokers(brokers)
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(if_requested(
            req.include_cluster_authorized_operations,
            authorized_ops::CLUSTER,
        ))
}
