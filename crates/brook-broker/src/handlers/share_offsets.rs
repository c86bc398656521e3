//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets
//! (KIP-932). The decisions are `brook-coord`'s; this module checks ACLs as Kafka does
//! (DESCRIBE on the group and each topic to describe; READ on the group and each topic
//! to alter; DELETE on the group and READ on each topic to delete), appends the records
//! through the group's coordinator, and makes every broker drop its live state of the
//! share-partitions that changed, so their next fetch starts from the new record.
//!
//! A share-partition's lag (DescribeShareGroupOffsets v1) counts to the partition's high
//! watermark as its leader has it: this broker's replica where it leads, else the
//! leader's figures over the inter-broker link (as Kafka's coordinator asks the leader).

use brook_coord::{Effects, GroupCoordinator, OffsetsRecord};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::HashMap;
use std::sync::Mutex;

use crate::groups::Groups;
use crate::image_topics::ImageTopics;
use crate::metadata::MetadataView;
use crate::peer::PeerNet;
use crate::replicas::{ask_leaders, Replicas};
use crate::shares::Shares;
use brook_meta::AclOperation as Op;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
/// How long a describe waits for a partition leader's figures (Brook's bound).
const LEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What the request's principal may do to a group and to a topic (the router's ACL
/// checks; everything without an authorizer).
pub struct Acl<'a> {
    pub group: &'a (dyn Fn(Op, &str) -> bool + Sync),
    pub topic: &'a (dyn Fn(Op, &str) -> bool + Sync),
}

fn text(s: &str) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.to_owned()))
}

fn not_coordinator(group: &str) -> (i16, String) {
    (
        ResponseError::NotCoordinator.code(),
        format!("This broker does not coordinate group {group}."),
    )
}

/// The high watermark and leader epoch of each partition, from its leader: this
/// broker's replica where it leads, else (a cluster) the leader's figures, each leader
/// asked once for all its partitions within the peer timeout. Partitions whose leader
/// did not answer (or that have none) are left out.
async fn leader_ends(
    replicas: &Replicas,
    meta: &MetadataView,
    peers: Option<&PeerNet>,
    wanted: Vec<(String, i32)>,
) -> HashMap<(String, i32), (i64, i32)> {
    let image = meta.image();
    let mut ends = HashMap::new();
    let mut by_leader: HashMap<i32, Vec<(String, i32, i32)>> = HashMap::new();
    for (name, p) in wanted {
        if let Some(r) = replicas.get(&name, p).filter(|r| r.is_leader()) {
            ends.insert((name, p), (r.offsets().1, r.leadership().1));
            continue;
        }
        let leader = image
            .topic(&name)
            .and_then(|t| t.partitions.iter().find(|x| x.index == p))
            .map(|x| (x.leader, x.leader_epoch));
        if let Some((leader, epoch)) = leader.filter(|(l, _)| *l >= 0) {
            by_leader.entry(leader).or_default().push((name, p, epoch));
        }
    }
    let Some(peers) = peers else {
        return ends;
    };
    let asks = by_leader
        .into_iter()
        .map(|(node, partitions)| {
            let names = partitions.iter().map(|(n, p, _)| (n.clone(), *p)).collect();
            (node, names, partitions)
        })
        .collect();
    for (node, partitions, answer) in ask_leaders(peers, asks, LEADER_TIMEOUT).await {
        match answer {
            Ok(figures) => {
                for ((name, p, epoch), f) in partitions.into_iter().zip(figures) {
                    if let Some(f) = f {
                        ends.insert((name, p), (f.high_watermark, epoch));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(node, error = %e, "no partition figures from the leader: share-partition lag unknown");
            }
        }
    }
    ends
}

pub async fn describe(
    groups: &Groups,
    meta: &MetadataView,
    (replicas, peers): (&Replicas, Option<&PeerNet>),
    acl: &Acl<'_>,
    req: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let image = meta.image();
    let topics = ImageTopics(&image);
    let may = |op: Op, name: &str| (acl.topic)(op, name);
    let mut response = DescribeShareGroupOffsetsResponse::default();
    for mut g in req.groups {
        let group_id = g.group_id.to_string();
        let mut out =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(g.group_id.clone());
        if !(acl.group)(Op::Describe, &group_id) {
            out.error_code = GROUP_DENIED;
        } else if !groups.coordinates(&group_id) {
            let (code, message) = not_coordinator(&group_id);
            out.error_code = code;
            out.error_message = Some(StrBytes::from_string(message));
        } else if g.topics.as_ref().is_some_and(Vec::is_empty) {
            // Nothing asked: nothing answered.
        } else {
            // Topics the principal may not DESCRIBE: refused one by one when named, left
            // out silently when the request asks for every topic.
            let mut refused = Vec::new();
            if let Some(asked) = &mut g.topics {
                asked.retain(|t| {
                    let ok = may(Op::Describe, &t.topic_name);
                    if !ok {
                        refused.push(
                            DescribeShareGroupOffsetsResponseTopic::default()
                                .with_topic_name(t.topic_name.clone())
                                .with_partitions(
                                    t.partitions
                                        .iter()
                                        .map(|&p| {
                                            DescribeShareGroupOffsetsResponsePartition::default()
                                                .with_partition_index(p)
                                                .with_start_offset(-1)
                                                .with_leader_epoch(-1)
                                                .with_error_code(TOPIC_DENIED)
                                        })
                                        .collect(),
                                ),
                        );
                    }
                    ok
                });
            }
            // Once to learn the partitions the answer needs, then with their leaders'
            // figures.
            let asked = Mutex::new(Vec::new());
            let note = |name: &str, p: i32| {
                if let Ok(mut asked) = asked.lock() {
                    asked.push((name.to_owned(), p));
                }
                None
            };
            groups.read(|s| {
                s.coordinator
                    .describe_share_group_offsets(&g, &topics, &note)
            });
            let wanted = asked.into_inner().unwrap_or_default();
            let ends = leader_ends(replicas, meta, peers, wanted).await;
            let end = |name: &str, p: i32| ends.get(&(name.to_owned(), p)).copied();
            out = groups.read(|s| {
                s.coordinator
                    .describe_share_group_offsets(&g, &topics, &end)
            });
            if g.topics.is_none() {
                out.topics.retain(|t| may(Op::Describe, &t.topic_name));
            }
            out.topics.extend(refused);
        }
        response.groups.push(out);
    }
    response
}

pub async fn alter(
    groups: &Groups,
    shares: &Shares,
    meta: &MetadataView,
    acl: &Acl<'_>,
    mut req: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let group_id = req.group_id.to_string();
    let fail = |code: i16, message: Option<StrBytes>| {
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    if !(acl.group)(Op::Read, &group_id) {
        return fail(GROUP_DENIED, None);
    }
    let mut refused = Vec::new();
    {
        req.topics.retain(|t| {
            let ok = (acl.topic)(Op::Read, &t.topic_name);
            if !ok {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        AlterShareGroupOffsetsResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(TOPIC_DENIED)
                            .with_error_message(text("Topic authorization failed."))
                    })
                    .collect();
                refused.push(
                    AlterShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_partitions(partitions),
                );
            }
            ok
        });
    }
    let change = |c: &mut GroupCoordinator, topics: &ImageTopics<'_>| {
        c.alter_share_group_offsets(&req, topics)
    };
    match coordinated_change((groups, shares, meta), &group_id, change).await {
        Ok(mut response) => {
            response.responses.extend(refused);
            response
        }
        Err((code, message)) => fail(code, Some(message)),
    }
}

pub async fn delete(
    groups: &Groups,
    shares: &Shares,
    meta: &MetadataView,
    acl: &Acl<'_>,
    mut req: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    let group_id = req.group_id.to_string();
    let fail = |code: i16, message: Option<StrBytes>| {
        DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(message)
    };
    if !(acl.group)(Op::Delete, &group_id) {
        return fail(GROUP_DENIED, None);
    }
    let mut refused = Vec::new();
    {
        req.topics.retain(|t| {
            let ok = (acl.topic)(Op::Read, &t.topic_name);
            if !ok {
                refused.push(
                    DeleteShareGroupOffsetsResponseTopic::default()
                        .with_topic_name(t.topic_name.clone())
                        .with_error_code(TOPIC_DENIED)
                        .with_error_message(text("Topic authorization failed.")),
                );
            }
            ok
        });
    }
    let change = |c: &mut GroupCoordinator, topics: &ImageTopics<'_>| {
        c.delete_share_group_offsets(&req, topics)
    };
    match coordinated_change((groups, shares, meta), &group_id, change).await {
        Ok(mut response) => {
            response.responses.extend(refused);
            response
        }
        Err((code, message)) => fail(code, Some(message)),
    }
}

/// The coordinator's part of AlterShareGroupOffsets and DeleteShareGroupOffsets: on
/// the group's coordinator, `change` makes the response and the records, which are
/// replicated before the answer; the share-partitions it changed are then forgotten
/// on every broker, so they start again from the new state.
async fn coordinated_change<R>(
    (groups, shares, meta): (&Groups, &Shares, &MetadataView),
    group_id: &str,
    change: impl FnOnce(
        &mut GroupCoordinator,
        &ImageTopics<'_>,
    ) -> (R, Vec<OffsetsRecord>, Vec<(uuid::Uuid, i32)>),
) -> Result<R, (i16, StrBytes)> {
    if !groups.coordinates(group_id) {
        let (code, message) = not_coordinator(group_id);
        return Err((code, StrBytes::from_string(message)));
    }
    let image = meta.image();
    let (response, changed) = groups
        .apply_replicated(group_id, |c| {
            let (response, records, changed) = change(c, &ImageTopics(&image));
            (
                (response, changed),
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .await
        .map_err(|e| (e.code, StrBytes::from_string(e.message)))?;
    shares.forget_everywhere(group_id, changed).await;
    Ok(response)
}
