//! FindCoordinator: on a single broker every group and transactional id is coordinated
//! here. In a cluster a group's coordinator is the leader of its `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition
//! (each topic created on first use, as Kafka).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::groups::{offsets_partition_for, OFFSETS_TOPIC};
use crate::shared::Shared;
use crate::txns::TXN_TOPIC;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub fn handle(
    shared: &Arc<Shared>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let error = match req.key_type {
        KEY_TYPE_GROUP | KEY_TYPE_TRANSACTION => None,
        other => Some((
            ResponseError::InvalidRequest.code(),
            format!("unsupported coordinator key type {other}"),
        )),
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let located = match &error {
                    Some(e) => Err(e.clone()),
                    None => locate(shared, req.key_type, &key),
                };
                let (node, host, port, error) = match located {
                    Err(e) => (-1, String::new(), -1, Some(e)),
                    Ok((node, host, port)) => (node, host, port, None),
                };
                let c = Coordinator::default()
                    .with_key(key)
                    .with_node_id(BrokerId(node))
                    .with_host(str_bytes(host))
                    .with_port(port);
                match &error {
                    Some((code, msg)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(str_bytes(""))
                        .with_port(-1)
                        .with_error_code(*code)
                        .with_error_message(Some(str_bytes(msg.clone()))),
                    None => c,
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let error = error
        .map(Err)
        .unwrap_or_else(|| locate(shared, req.key_type, &req.key));
    match error {
        Err((code, msg)) => FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(Some(str_bytes(msg)))
            .with_node_id(BrokerId(-1))
            .with_host(str_bytes(""))
            .with_port(-1),
        Ok((node, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(node))
            .with_host(str_bytes(host))
            .with_port(port),
    }
}

/// The broker that coordinates `key`: this one on a single broker; in a cluster the
/// leader of the key's `__consumer_offsets` partition (created on first use, as Kafka).
fn locate(
    shared: &Arc<Shared>,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    if key_type == KEY_TYPE_TRANSACTION {
        return locate_transaction(shared, key);
    }
    if !shared.is_cluster() {
        let (host, port) = &shared.config.advertised;
        return Ok((shared.config.node_id, host.clone(), i32::from(*port)));
    }
    let unavailable = |why: &str| {
        (
            ResponseError::CoordinatorNotAvailable.code(),
            why.to_string(),
        )
    };
    let image = shared.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        let created = crate::shared::block_on(shared.create_topic(
            OFFSETS_TOPIC,
            shared.groups.offsets_partitions(),
            -1,
            crate::groups::Groups::offsets_topic_configs(),
            Vec::new(),
            false,
        ));
        if let Err(e) = created {
            if e.code != ResponseError::TopicAlreadyExists.code() {
                tracing::warn!(error = %e, "cannot create __consumer_offsets");
            }
        }
        return Err(unavailable("__consumer_offsets is being created"));
    };
    let index = offsets_partition_for(key, topic.partitions.len() as i32);
    let leader = topic.partitions[index as usize].leader;
    match shared.broker_address(leader) {
        Some((host, port)) => Ok((leader, host, port)),
        None => Err(unavailable(
            "the coordinator's partition has no leader right now",
        )),
    }
}

/// The leader of the transactional id's `__transaction_state` partition.
fn locate_transaction(
    shared: &Arc<Shared>,
    key: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    if key.is_empty() {
        return Err((
            ResponseError::InvalidRequest.code(),
            "empty transactional id".to_string(),
        ));
    }
    shared
        .txns
        .ensure_topic(shared)
        .map_err(|e| (e.code, e.message))?;
    let index = shared.txns.partition_of(shared, key);
    let leader = shared
        .image()
        .topic(TXN_TOPIC)
        .and_then(|t| t.partitions.get(index as usize).map(|p| p.leader));
    match leader.and_then(|l| shared.broker_address(l).map(|a| (l, a))) {
        Some((leader, (host, port))) => Ok((leader, host, port)),
        None => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "the transactional id's partition has no leader right now".to_string(),
        )),
    }
}
