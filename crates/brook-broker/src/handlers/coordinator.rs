//! FindCoordinator: on a single broker every group and transactional id is coordinated
//! here. In a cluster a group's coordinator is the leader of its `__consumer_offsets`
//! partition, a transactional id's the leader of its `__transaction_state` partition
//! (each topic created on first use, as Kafka).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

use super::str_bytes;
use crate::groups::Groups;
use crate::metadata::MetadataView;
use crate::names::{coordinator_partition_for, OFFSETS_TOPIC, TXN_TOPIC};
use crate::txns::Txns;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    meta: &MetadataView,
    groups: &Groups,
    txns: &Txns,
    listener: &str,
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
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in req.coordinator_keys {
            let located = match &error {
                Some(e) => Err(e.clone()),
                None => locate(meta, groups, txns, listener, req.key_type, &key).await,
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
            coordinators.push(match &error {
                Some((code, msg)) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(str_bytes(""))
                    .with_port(-1)
                    .with_error_code(*code)
                    .with_error_message(Some(str_bytes(msg.clone()))),
                None => c,
            });
        }
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let error = match error {
        Some(e) => Err(e),
        None => locate(meta, groups, txns, listener, req.key_type, &req.key).await,
    };
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
async fn locate(
    meta: &MetadataView,
    groups: &Groups,
    txns: &Txns,
    listener: &str,
    key_type: i8,
    key: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    if key_type == KEY_TYPE_TRANSACTION {
        return locate_transaction(meta, txns, listener, key).await;
    }
    if !meta.is_cluster() {
        let node = meta.node_id();
        let (host, port) = meta.broker_address(node, listener).unwrap_or_default();
        return Ok((node, host, port));
    }
    let unavailable = |why: &str| {
        (
            ResponseError::CoordinatorNotAvailable.code(),
            why.to_string(),
        )
    };
    let image = meta.image();
    let Some(topic) = image.topic(OFFSETS_TOPIC) else {
        if let Err(e) = groups.create_offsets_topic().await {
            tracing::warn!(error = %e, "cannot create __consumer_offsets");
        }
        return Err(unavailable("__consumer_offsets is being created"));
    };
    let index = coordinator_partition_for(key, topic.partitions.len() as i32);
    let leader = topic.partitions[index as usize].leader;
    match meta.broker_address(leader, listener) {
        Some((host, port)) => Ok((leader, host, port)),
        None => Err(unavailable(
            "the coordinator's partition has no leader right now",
        )),
    }
}

/// The leader of the transactional id's `__transaction_state` partition.
async fn locate_transaction(
    meta: &MetadataView,
    txns: &Txns,
    listener: &str,
    key: &str,
) -> Result<(i32, String, i32), (i16, String)> {
    if key.is_empty() {
        return Err((
            ResponseError::InvalidRequest.code(),
            "empty transactional id".to_string(),
        ));
    }
    txns.ensure_topic().await.map_err(|e| (e.code, e.message))?;
    let index = txns.partition_of(key);
    let leader = meta
        .image()
        .topic(TXN_TOPIC)
        .and_then(|t| t.partitions.get(index as usize).map(|p| p.leader));
    match leader.and_then(|l| meta.broker_address(l, listener).map(|a| (l, a))) {
        Some((leader, (host, port))) => Ok((leader, host, port)),
        None => Err((
            ResponseError::CoordinatorNotAvailable.code(),
            "the transactional id's partition has no leader right now".to_string(),
        )),
    }
}
