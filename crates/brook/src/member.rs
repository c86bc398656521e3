//! `brook consume --group`: a member of a classic consumer group (JoinGroup,
//! SyncGroup, Heartbeat, OffsetCommit, LeaveGroup) with the `range` assignor, so
//! Kafka's consumers and the CLI share a group's partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Result;
use brook_protocol::consumer_protocol;
use brook_protocol::kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use brook_protocol::kafka_protocol::messages::leave_group_request::MemberIdentity;
use brook_protocol::kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use brook_protocol::kafka_protocol::messages::*;
use brook_protocol::kafka_protocol::protocol::Encodable;
use bytes::{BufMut, BytesMut};

use crate::cli::Connect;
use crate::client::Client;
use crate::tools::{check, partitions_of, s};

const SESSION_TIMEOUT_MS: i32 = 10_000;
const REBALANCE_TIMEOUT_MS: i32 = 30_000;
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

const ILLEGAL_GENERATION: i16 = 22;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Errors after which the member joins again rather than fails.
const REJOIN: &[i16] = &[ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS];

pub struct Member {
    connect: Connect,
    coordinator: Client,
    group: String,
    topic: String,
    member_id: String,
    generation: i32,
    last_heartbeat: Instant,
}

impl Member {
    pub fn new(connect: &Connect, coordinator: Client, group: &str, topic: &str) -> Self {
        Member {
            connect: connect.clone(),
            coordinator,
            group: group.to_string(),
            topic: topic.to_string(),
            member_id: String::new(),
            generation: -1,
            last_heartbeat: Instant::now(),
        }
    }

    pub fn coordinator(&mut self) -> &mut Client {
        &mut self.coordinator
    }

    /// Joins (or re-joins) the group; returns this member's partitions of the topic.
    pub async fn join(&mut self) -> Result<Vec<i32>> {
        loop {
            let join = self.join_group().await?;
            if join.error_code == MEMBER_ID_REQUIRED {
                self.member_id = join.member_id.to_string();
                continue;
            }
            if REJOIN.contains(&join.error_code) {
                if join.error_code == UNKNOWN_MEMBER_ID {
                    self.member_id.clear();
                }
                continue;
            }
            check(
                join.error_code,
                &format!("JoinGroup of group '{}'", self.group),
                None,
            )?;
            self.member_id = join.member_id.to_string();
            self.generation = join.generation_id;
            let assignments = if join.leader == join.member_id {
                self.assign(&join.members).await?
            } else {
                Vec::new()
            };
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&self.group)))
                .with_generation_id(self.generation)
                .with_member_id(s(&self.member_id))
                .with_protocol_type(Some(s("consumer")))
                .with_protocol_name(Some(s("range")))
                .with_assignments(assignments);
            let sync: SyncGroupResponse = self.coordinator.request(3, req).await?;
            if REJOIN.contains(&sync.error_code) {
                continue;
            }
            check(
                sync.error_code,
                &format!("SyncGroup of group '{}'", self.group),
                None,
            )?;
            self.last_heartbeat = Instant::now();
            let mut mine = Vec::new();
            for (topic, partitions) in
                consumer_protocol::decode_assignment(&sync.assignment).unwrap_or_default()
            {
                if topic == self.topic {
                    mine.extend(partitions);
                }
            }
            mine.sort();
            return Ok(mine);
        }
    }

    async fn join_group(&mut self) -> Result<JoinGroupResponse> {
        let mut metadata = BytesMut::new();
        metadata.put_i16(1);
        ConsumerProtocolSubscription::default()
            .with_topics(vec![s(&self.topic)])
            .encode(&mut metadata, 1)?;
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_session_timeout_ms(SESSION_TIMEOUT_MS)
            .with_rebalance_timeout_ms(REBALANCE_TIMEOUT_MS)
            .with_member_id(s(&self.member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(metadata.freeze())]);
        // JoinGroup waits for the rebalance (the group's initial delay, other members).
        let timeout = self.connect.timeout();
        let rebalance = Duration::from_millis(REBALANCE_TIMEOUT_MS as u64 + 5000);
        self.coordinator.set_timeout(timeout.max(rebalance));
        let resp = self.coordinator.request(5, req).await;
        self.coordinator.set_timeout(timeout);
        resp
    }

    /// The leader's `range` assignment: per topic, its partitions split into
    /// contiguous runs over the members subscribed to it, in member-id order.
    async fn assign(
        &mut self,
        members: &[join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let mut subscribers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in members {
            let subscription = consumer_protocol::decode_subscription(&m.metadata);
            for topic in subscription.map(|s| s.topics).unwrap_or_default() {
                subscribers
                    .entry(topic)
                    .or_default()
                    .insert(m.member_id.to_string());
            }
        }
        let mut plan: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
            .iter()
            .map(|m| (m.member_id.to_string(), BTreeMap::new()))
            .collect();
        for (topic, who) in &subscribers {
            let partitions = match partitions_of(&mut self.coordinator, topic, false).await {
                Ok(p) => p,
                Err(_) => continue, // a topic that does not exist gets no assignment
            };
            for (member, mine) in range(&partitions, who.len()).into_iter().zip(who) {
                plan.get_mut(mine)
                    .expect("every subscriber is a member")
                    .insert(topic.clone(), member);
            }
        }
        Ok(plan
            .into_iter()
            .map(|(member, topics)| {
                SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(consumer_protocol::encode_assignment(1, topics))
            })
            .collect())
    }

    /// Sends a heartbeat when one is due; `true` when the group is rebalancing and
    /// the member must join again.
    pub async fn heartbeat(&mut self) -> Result<bool> {
        if self.last_heartbeat.elapsed() < HEARTBEAT_INTERVAL {
            return Ok(false);
        }
        self.last_heartbeat = Instant::now();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id));
        let resp: HeartbeatResponse = self.coordinator.request(3, req).await?;
        if REJOIN.contains(&resp.error_code) {
            return Ok(true);
        }
        check(
            resp.error_code,
            &format!("Heartbeat of group '{}'", self.group),
            None,
        )?;
        Ok(false)
    }

    /// Commits `offsets` as this member; `true` when the group moved on (join again).
    pub async fn commit(&mut self, offsets: &BTreeMap<i32, i64>) -> Result<bool> {
        let code = crate::consume::offset_commit(
            &mut self.coordinator,
            &self.group,
            (self.generation, &self.member_id),
            &self.topic,
            offsets,
        )
        .await?;
        if REJOIN.contains(&code) {
            return Ok(true);
        }
        check(
            code,
            &format!("OffsetCommit of group '{}'", self.group),
            None,
        )?;
        Ok(false)
    }

    /// Leaves the group so its partitions go to the other members at once.
    pub async fn leave(&mut self) -> Result<()> {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(&self.group)))
            .with_members(vec![
                MemberIdentity::default().with_member_id(s(&self.member_id))
            ]);
        let resp: LeaveGroupResponse = self.coordinator.request(3, req).await?;
        check(
            resp.error_code,
            &format!("LeaveGroup of group '{}'", self.group),
            None,
        )
    }
}

/// `partitions` split over `members` as Kafka's RangeAssignor does.
fn range(partitions: &[i32], members: usize) -> Vec<Vec<i32>> {
    let (each, extra) = (partitions.len() / members, partitions.len() % members);
    let mut out = Vec::new();
    let mut at = 0;
    for i in 0..members {
        let n = each + usize::from(i < extra);
        out.push(partitions[at..at + n].to_vec());
        at += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::range;

    #[test]
    fn range_gives_the_first_members_one_more() {
        assert_eq!(range(&[0, 1, 2, 3, 4], 2), vec![vec![0, 1, 2], vec![3, 4]]);
        assert_eq!(range(&[0], 3), vec![vec![0], vec![], vec![]]);
    }
}
