//! The cluster's consumer groups, each read from and acted on at its coordinator
//! (this broker, or another over the inter-broker RPC: `Kafka::send_to`): list
//! (ListGroups + DescribeGroups on every broker), describe (DescribeGroups +
//! OffsetFetch, lag against the partitions' high watermarks, from the leaders where
//! this broker holds no replica), delete (DeleteGroups) and reset offsets (Kafka's `kafka-consumer-groups --reset-offsets`:
//! only an empty group; targets from ListOffsets; written with OffsetCommit at
//! generation -1, as AdminClient's alterConsumerGroupOffsets does).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{ConnectInfo, Path, State as Extract};
use axum::http::HeaderMap;
use axum::response::Response;
use brook_protocol::consumer_protocol;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use serde::{Deserialize, Serialize};

use super::topics::figures_of;
use super::{body, kafka_at, ok, path_param, v, ApiFailure, Kafka, State, Unanswered};
use crate::admin_http::limits::PeerAddr;
use crate::handlers::{str_bytes, topic_name};

/// Most groups one listing describes; the rest are listed without member counts.
const MAX_DESCRIBED_GROUPS: usize = 1_000;
/// ListOffsets' special timestamps.
pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;

#[derive(Debug, Serialize)]
struct GroupSummary {
    group_id: String,
    state: String,
    protocol_type: String,
    /// The chosen assignor (`range`, `cooperative-sticky`, ...), once the group has one.
    protocol: Option<String>,
    /// `None` when the group was not described (beyond `MAX_DESCRIBED_GROUPS`).
    members: Option<usize>,
    /// The broker coordinating the group.
    coordinator: i32,
}

/// Every group of the cluster: each broker lists and describes the groups it
/// coordinates (asked at once, each within `PEER_TIMEOUT`); a broker that does not
/// answer is named in `errors` and the answer is `partial`.
pub async fn list(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
) -> Result<Response, ApiFailure> {
    let k = Kafka::new(&state, peer);
    let brokers = k.brokers();
    let answers =
        futures_util::future::join_all(brokers.iter().map(|&node| list_on(&k, node))).await;
    let mut summaries = Vec::new();
    let mut errors = Vec::new();
    for (node, answer) in brokers.into_iter().zip(answers) {
        match answer {
            Ok(listed) => summaries.extend(listed),
            Err(e) => errors.push(Unanswered::new(node, e)),
        }
    }
    summaries.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    // A group moving between coordinators may be listed by both: shown once.
    summaries.dedup_by(|a, b| a.group_id == b.group_id);
    ok(&serde_json::json!({
        "groups": summaries,
        "partial": !errors.is_empty(),
        "errors": errors,
    }))
}

/// The groups broker `node` coordinates, described.
async fn list_on(k: &Kafka<'_>, node: i32) -> Result<Vec<GroupSummary>, ApiFailure> {
    let listed = kafka_at!(
        k,
        node,
        ListGroups,
        v::LIST_GROUPS,
        ListGroupsRequest::default()
    )?;
    ApiFailure::check(listed.error_code, None)?;
    let mut groups = listed.groups;
    groups.sort_unstable_by(|a, b| a.group_id.cmp(&b.group_id));
    let ids: Vec<GroupId> = groups
        .iter()
        .take(MAX_DESCRIBED_GROUPS)
        .map(|g| g.group_id.clone())
        .collect();
    let described: BTreeMap<String, DescribedGroup> = if ids.is_empty() {
        BTreeMap::new()
    } else {
        let request = DescribeGroupsRequest::default().with_groups(ids);
        kafka_at!(k, node, DescribeGroups, v::DESCRIBE_GROUPS, request)?
            .groups
            .into_iter()
            .filter(|g| g.error_code == 0)
            .map(|g| (g.group_id.to_string(), g))
            .collect()
    };
    Ok(groups
        .iter()
        .map(|g| {
            let d = described.get(g.group_id.as_str());
            GroupSummary {
                group_id: g.group_id.to_string(),
                state: g.group_state.to_string(),
                protocol_type: g.protocol_type.to_string(),
                protocol: d
                    .map(|d| d.protocol_data.to_string())
                    .filter(|p| !p.is_empty()),
                members: d.map(|d| d.members.len()),
                coordinator: node,
            }
        })
        .collect())
}

/// The broker coordinating `group` (the leader of its `__consumer_offsets`
/// partition), or this one while there is none: its answer says so.
fn coordinator(k: &Kafka<'_>, group: &str) -> i32 {
    k.services
        .groups
        .coordinator_node(group)
        .unwrap_or_else(|| k.node_id())
}

#[derive(Debug, Serialize)]
struct GroupDetail {
    group_id: String,
    state: String,
    protocol_type: String,
    protocol: Option<String>,
    /// The broker coordinating the group, which answered.
    coordinator: i32,
    members: Vec<Member>,
    offsets: Vec<PartitionLag>,
    /// Sum of the known lags.
    total_lag: i64,
}

#[derive(Debug, Serialize)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    assignment: Vec<Assigned>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Assigned {
    topic: String,
    partitions: Vec<i32>,
}

/// A partition the group has committed to or is assigned.
#[derive(Debug, Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    /// `None`: assigned, nothing committed yet.
    committed_offset: Option<i64>,
    metadata: Option<String>,
    /// The high watermark (what `kafka-consumer-groups` calls LOG-END-OFFSET), from
    /// this broker's replica or the partition's leader; `None` when neither answered.
    log_end_offset: Option<i64>,
    lag: Option<i64>,
    /// The member assigned the partition, if any.
    member_id: Option<String>,
}

pub async fn describe(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    group: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiFailure> {
    let group = path_param(group)?;
    let k = Kafka::new(&state, peer);
    let node = coordinator(&k, &group);
    let g = describe_group(&k, node, &group).await?;
    let members: Vec<Member> = g
        .members
        .iter()
        .map(|m| Member {
            member_id: m.member_id.to_string(),
            group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: assignment(&m.member_assignment),
        })
        .collect();
    let committed = committed(&k, node, &group).await?;
    if g.group_state.as_str() == "Dead" && members.is_empty() && committed.is_empty() {
        return Err(ApiFailure::kafka(
            ResponseError::GroupIdNotFound.code(),
            Some(&format!("consumer group '{group}' does not exist")),
        ));
    }
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    for m in &members {
        for a in &m.assignment {
            for p in &a.partitions {
                owners.insert((a.topic.clone(), *p), m.member_id.clone());
            }
        }
    }
    let mut keys: Vec<(String, i32)> = committed.keys().cloned().collect();
    keys.extend(
        owners
            .keys()
            .filter(|k| !committed.contains_key(*k))
            .cloned(),
    );
    keys.sort_unstable();
    let ends = high_watermarks(&k, &keys).await?;
    let offsets: Vec<PartitionLag> = keys
        .into_iter()
        .zip(ends)
        .map(|(key, end)| {
            let (offset, metadata) = committed.get(&key).cloned().unzip();
            PartitionLag {
                lag: offset.zip(end).map(|(o, e)| (e - o).max(0)),
                member_id: owners.get(&key).cloned(),
                topic: key.0,
                partition: key.1,
                committed_offset: offset,
                metadata: metadata.flatten(),
                log_end_offset: end,
            }
        })
        .collect();
    let protocol = Some(g.protocol_data.to_string()).filter(|p| !p.is_empty());
    ok(&GroupDetail {
        group_id: group,
        state: g.group_state.to_string(),
        protocol_type: g.protocol_type.to_string(),
        protocol,
        coordinator: node,
        members,
        total_lag: offsets.iter().filter_map(|o| o.lag).sum(),
        offsets,
    })
}

/// The high watermark of each partition: from this broker's replica where it holds
/// one, else asked of the partition's leader (ListOffsets, latest); `None` where the
/// leader did not answer.
async fn high_watermarks(
    k: &Kafka<'_>,
    keys: &[(String, i32)],
) -> Result<Vec<Option<i64>>, ApiFailure> {
    let local = figures_of(&k.services.replicas, keys.to_vec()).await?;
    let mut ends: Vec<Option<i64>> = local
        .iter()
        .map(|f| f.as_ref().map(|f| f.high_watermark))
        .collect();
    let mut elsewhere: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for ((topic, partition), end) in keys.iter().zip(&ends) {
        if end.is_none() {
            elsewhere.entry(topic).or_default().push(*partition);
        }
    }
    for (topic, partitions) in elsewhere {
        let Ok(found) = list_offsets(k, topic, &partitions, LATEST, false).await else {
            continue;
        };
        for f in found {
            let at = keys
                .iter()
                .position(|(t, p)| t == topic && *p == f.partition);
            if let Some(end) = at.and_then(|i| ends.get_mut(i)) {
                *end = Some(f.offset);
            }
        }
    }
    Ok(ends)
}

/// DescribeGroups for one group at its coordinator `node`.
async fn describe_group(
    k: &Kafka<'_>,
    node: i32,
    group: &str,
) -> Result<DescribedGroup, ApiFailure> {
    let request = DescribeGroupsRequest::default().with_groups(vec![GroupId(str_bytes(group))]);
    let g = kafka_at!(k, node, DescribeGroups, v::DESCRIBE_GROUPS, request)?
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("DescribeGroups gave no group"))?;
    if g.error_code == ResponseError::NotCoordinator.code() {
        return Err(ApiFailure::kafka(
            g.error_code,
            Some(&format!(
                "broker {node} does not coordinate group '{group}' (its coordinator is moving): retry"
            )),
        ));
    }
    ApiFailure::check(g.error_code, g.error_message.as_deref())?;
    Ok(g)
}

/// The group's committed offsets (and their metadata) by partition.
async fn committed(
    k: &Kafka<'_>,
    node: i32,
    group: &str,
) -> Result<BTreeMap<(String, i32), (i64, Option<String>)>, ApiFailure> {
    let request =
        OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(str_bytes(group)))
            .with_topics(None)]);
    let response = kafka_at!(k, node, OffsetFetch, v::OFFSET_FETCH, request)?;
    ApiFailure::check(response.error_code, None)?;
    let mut out = BTreeMap::new();
    for g in response.groups {
        ApiFailure::check(g.error_code, None)?;
        for t in g.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.committed_offset >= 0 {
                    out.insert(
                        (t.name.to_string(), p.partition_index),
                        (p.committed_offset, p.metadata.map(|m| m.to_string())),
                    );
                }
            }
        }
    }
    Ok(out)
}

/// A consumer-protocol assignment (`i16 version` then the message); anything else
/// (another protocol type, or bytes that do not decode) shows as no partitions.
fn assignment(bytes: &[u8]) -> Vec<Assigned> {
    consumer_protocol::decode_assignment(bytes)
        .unwrap_or_default()
        .into_iter()
        .map(|(topic, partitions)| Assigned { topic, partitions })
        .collect()
}

pub async fn delete(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    group: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiFailure> {
    let group = path_param(group)?;
    let k = Kafka::new(&state, peer);
    let request =
        DeleteGroupsRequest::default().with_groups_names(vec![GroupId(str_bytes(&group))]);
    let node = coordinator(&k, &group);
    let r = kafka_at!(k, node, DeleteGroups, v::DELETE_GROUPS, request)?
        .results
        .into_iter()
        .next()
        .ok_or_else(|| ApiFailure::internal("DeleteGroups gave no result"))?;
    ApiFailure::check(r.error_code, None)?;
    tracing::info!(%group, "admin API deleted a group");
    ok(&serde_json::json!({ "group_id": group, "deleted": true }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    topic: String,
    /// Omitted: every partition of the topic.
    partitions: Option<Vec<i32>>,
    to: ResetTo,
    /// For `to: "offset"` (clamped to the log, as Kafka's tool does).
    offset: Option<i64>,
    /// For `to: "timestamp"` (ms): the first offset at or after it, else the end.
    timestamp: Option<i64>,
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
enum ResetTo {
    Earliest,
    Latest,
    Offset,
    Timestamp,
}

#[derive(Debug, Serialize)]
pub struct ResetOffset {
    pub partition: i32,
    pub offset: i64,
}

pub async fn reset_offsets(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    group: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiFailure> {
    let group = path_param(group)?;
    let b: Reset = body(&headers, bytes)?;
    let k = Kafka::new(&state, peer);
    let node = coordinator(&k, &group);
    let g = describe_group(&k, node, &group).await?;
    let group_state = g.group_state.as_str();
    if !matches!(group_state, "Empty" | "Dead") {
        // Kafka's tool refuses here too; the commit below would fail anyway (a
        // generation -1 commit is only accepted from outside an empty group).
        return Err(ApiFailure::kafka(
            ResponseError::NonEmptyGroup.code(),
            Some(&format!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {group_state}."
            )),
        ));
    }
    let image = state.metadata.image();
    let topic = image.topic(&b.topic).ok_or_else(|| {
        ApiFailure::kafka(
            ResponseError::UnknownTopicOrPartition.code(),
            Some(&format!("no topic named '{}'", b.topic)),
        )
    })?;
    let partitions = match b.partitions.clone() {
        Some(list) => list,
        None => topic.partitions.iter().map(|p| p.index).collect(),
    };
    if partitions.is_empty() || partitions.len() > topic.partitions.len() {
        return Err(ApiFailure::invalid(
            "name between one and all of the topic's partitions",
        ));
    }
    let targets = targets(&k, &b, &partitions).await?;
    if !b.dry_run {
        commit(&k, node, &group, &b.topic, &targets).await?;
        tracing::info!(%group, topic = %b.topic, "admin API reset a group's offsets");
    }
    ok(&serde_json::json!({
        "group_id": group,
        "topic": b.topic,
        "dry_run": b.dry_run,
        "partitions": targets,
    }))
}

/// The new offset of each partition, as Kafka's tool computes it.
async fn targets(
    k: &Kafka<'_>,
    b: &Reset,
    partitions: &[i32],
) -> Result<Vec<ResetOffset>, ApiFailure> {
    let at = |ts: i64| list_offsets(k, &b.topic, partitions, ts, false);
    Ok(match b.to {
        ResetTo::Earliest => at(EARLIEST).await?,
        ResetTo::Latest => at(LATEST).await?,
        ResetTo::Timestamp => {
            let ts = b
                .timestamp
                .filter(|t| *t >= 0)
                .ok_or_else(|| ApiFailure::invalid("to: timestamp needs a timestamp (ms, ≥ 0)"))?;
            let found = at(ts).await?;
            let latest = at(LATEST).await?;
            found
                .into_iter()
                .zip(latest)
                .map(|(f, l)| if f.offset < 0 { l } else { f })
                .collect()
        }
        ResetTo::Offset => {
            let want = b
                .offset
                .ok_or_else(|| ApiFailure::invalid("to: offset needs an offset"))?;
            let earliest = at(EARLIEST).await?;
            let latest = at(LATEST).await?;
            earliest
                .into_iter()
                .zip(latest)
                .map(|(e, l)| ResetOffset {
                    partition: e.partition,
                    offset: want.clamp(e.offset, l.offset.max(e.offset)),
                })
                .collect()
        }
    })
}

/// ListOffsets for `partitions` of `topic` at `timestamp` (`read_committed`: the
/// latest offset is the last stable one), each asked of the partition's leader; the
/// answers come in the order of `partitions`.
pub async fn list_offsets(
    k: &Kafka<'_>,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
    read_committed: bool,
) -> Result<Vec<ResetOffset>, ApiFailure> {
    let image = k.services.metadata.image();
    let leader = |p: i32| {
        image
            .topic(topic)
            .and_then(|t| t.partitions.iter().find(|x| x.index == p))
            .map(|x| x.leader)
            .filter(|l| *l >= 0)
            // No leader: this broker answers with the error.
            .unwrap_or_else(|| k.node_id())
    };
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for &p in partitions {
        by_leader.entry(leader(p)).or_default().push(p);
    }
    let mut found = BTreeMap::new();
    for (node, partitions) in by_leader {
        for r in list_offsets_at(k, node, topic, &partitions, timestamp, read_committed).await? {
            found.insert(r.partition, r.offset);
        }
    }
    Ok(partitions
        .iter()
        .filter_map(|p| {
            found.get(p).map(|&offset| ResetOffset {
                partition: *p,
                offset,
            })
        })
        .collect())
}

/// ListOffsets on broker `node`.
async fn list_offsets_at(
    k: &Kafka<'_>,
    node: i32,
    topic: &str,
    partitions: &[i32],
    timestamp: i64,
    read_committed: bool,
) -> Result<Vec<ResetOffset>, ApiFailure> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(i8::from(read_committed))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|p| {
                        ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_current_leader_epoch(-1)
                            .with_timestamp(timestamp)
                    })
                    .collect(),
            )]);
    let response = kafka_at!(k, node, ListOffsets, v::LIST_OFFSETS, request)?;
    let mut out = Vec::with_capacity(partitions.len());
    for p in response.topics.into_iter().flat_map(|t| t.partitions) {
        if p.error_code != 0 {
            let e = super::name_of(p.error_code);
            return Err(ApiFailure::kafka(
                p.error_code,
                Some(&format!("partition {}: {e}", p.partition_index)),
            ));
        }
        out.push(ResetOffset {
            partition: p.partition_index,
            offset: p.offset,
        });
    }
    Ok(out)
}

async fn commit(
    k: &Kafka<'_>,
    node: i32,
    group: &str,
    topic: &str,
    targets: &[ResetOffset],
) -> Result<(), ApiFailure> {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(str_bytes(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(str_bytes(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                targets
                    .iter()
                    .map(|t| {
                        OffsetCommitRequestPartition::default()
                            .with_partition_index(t.partition)
                            .with_committed_offset(t.offset)
                            .with_committed_leader_epoch(-1)
                            .with_committed_metadata(Some(str_bytes("")))
                    })
                    .collect(),
            )]);
    let response = kafka_at!(k, node, OffsetCommit, v::OFFSET_COMMIT, request)?;
    for p in response.topics.iter().flat_map(|t| &t.partitions) {
        if p.error_code != 0 {
            let e = super::name_of(p.error_code);
            return Err(ApiFailure::kafka(
                p.error_code,
                Some(&format!("partition {}: {e}", p.partition_index)),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_decode_and_garbage_shows_as_nothing() {
        let buf = consumer_protocol::encode_assignment(1, [("t", vec![0, 2])]);
        assert_eq!(
            assignment(&buf),
            vec![Assigned {
                topic: "t".into(),
                partitions: vec![0, 2]
            }]
        );
        assert!(assignment(&[]).is_empty());
        assert!(assignment(&[0, 1, 0xff, 0xff, 0xff, 0x7f]).is_empty());
    }

    #[test]
    fn reset_bodies_name_their_target() {
        let r: Reset = serde_json::from_str(r#"{"topic": "t", "to": "earliest"}"#).unwrap();
        assert_eq!(r.to, ResetTo::Earliest);
        assert!(!r.dry_run);
        assert!(serde_json::from_str::<Reset>(r#"{"topic": "t", "to": "somewhere"}"#).is_err());
    }
}
