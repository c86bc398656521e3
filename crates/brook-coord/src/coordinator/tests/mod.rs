//! A harness that plays the broker: it hands out reply tokens, keeps the replies and
//! records the coordinator produces, moves the clock, and checks that every response
//! encodes at its API version and that no token is answered twice.

mod admin;
mod consumer;
mod membership;
mod migration;
mod offsets;
mod replay;
mod share;
mod snapshot;

use crate::consumer::testing::Topics;
use std::collections::{HashMap, HashSet};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{Effects, GroupCoordinator, Reply, ReplyToken};
use crate::config::GroupConfig;
use crate::records::OffsetsRecord;

pub(super) const NONE: i16 = 0;
pub(super) const SESSION_MS: i32 = 10_000;
pub(super) const REBALANCE_MS: i32 = 30_000;
pub(super) const INITIAL_DELAY_MS: i32 = 3_000;

pub(super) fn code(error: ResponseError) -> i16 {
    error.code()
}

pub(super) fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

/// Encodes a response at a version, failing the test if the shape does not fit it.
pub(super) fn assert_encodes<T: Encodable + std::fmt::Debug>(response: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(error) = response.encode(&mut buf, version) {
        panic!("response does not encode at v{version}: {error}\n{response:?}");
    }
}

/// A consumer-protocol subscription (version 1) to `topics`.
pub(super) fn subscription(topics: &[&str]) -> Bytes {
    let mut value = ConsumerProtocolSubscription::default();
    value.topics = topics.iter().map(|t| s(t)).collect();
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    value.encode(&mut buf, 1).unwrap();
    buf.freeze()
}

/// What a member sends in JoinGroup.
#[derive(Clone)]
pub(super) struct JoinSpec {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub version: i16,
}

impl JoinSpec {
    pub fn new(group: &str, client_id: &str) -> Self {
        JoinSpec {
            group: group.into(),
            member_id: String::new(),
            instance_id: None,
            client_id: client_id.into(),
            session_timeout_ms: SESSION_MS,
            rebalance_timeout_ms: REBALANCE_MS,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(&["orders"]))],
            version: 7,
        }
    }

    pub fn version(mut self, version: i16) -> Self {
        self.version = version;
        self
    }

    pub fn instance(mut self, instance_id: &str) -> Self {
        self.instance_id = Some(instance_id.into());
        self
    }

    pub fn member(mut self, member_id: &str) -> Self {
        self.member_id = member_id.into();
        self
    }

    pub fn protocols(mut self, protocols: &[(&str, Bytes)]) -> Self {
        self.protocols = protocols
            .iter()
            .map(|(name, metadata)| ((*name).into(), metadata.clone()))
            .collect();
        self
    }

    pub fn request(&self) -> JoinGroupRequest {
        let mut request = JoinGroupRequest::default();
        request.group_id = s(&self.group).into();
        request.member_id = s(&self.member_id);
        request.group_instance_id = self.instance_id.as_deref().map(s);
        request.session_timeout_ms = self.session_timeout_ms;
        request.rebalance_timeout_ms = self.rebalance_timeout_ms;
        request.protocol_type = s(&self.protocol_type);
        request.protocols = self
            .protocols
            .iter()
            .map(|(name, metadata)| {
                let mut protocol = JoinGroupRequestProtocol::default();
                protocol.name = s(name);
                protocol.metadata = metadata.clone();
                protocol
            })
            .collect();
        request
    }
}

/// A member as the test knows it after a successful join.
#[derive(Debug, Clone)]
pub(super) struct Joined {
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub generation: i32,
    pub leader: String,
}

impl Joined {
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader
    }
}

pub(super) struct Harness {
    pub coord: GroupCoordinator,
    pub now: i64,
    next_token: ReplyToken,
    /// The API version each token's request was sent with.
    versions: HashMap<ReplyToken, i16>,
    replies: HashMap<ReplyToken, Reply>,
    answered: HashSet<ReplyToken>,
    /// Every record the coordinator produced, in order: the test's `__consumer_offsets`.
    pub log: Vec<OffsetsRecord>,
    /// The cluster's topics, as JoinGroup and SyncGroup see them.
    pub topics: Topics,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(GroupConfig {
            initial_rebalance_delay_ms: i64::from(INITIAL_DELAY_MS),
            ..GroupConfig::default()
        })
    }

    pub fn with_config(config: GroupConfig) -> Self {
        Harness {
            coord: GroupCoordinator::with_seed(config, 42),
            now: 1_000_000,
            next_token: 1,
            versions: HashMap::new(),
            replies: HashMap::new(),
            answered: HashSet::new(),
            log: Vec::new(),
            topics: Topics::with(&[]),
        }
    }

    fn token(&mut self, version: i16) -> ReplyToken {
        let token = self.next_token;
        self.next_token += 1;
        self.versions.insert(token, version);
        token
    }

    pub fn absorb(&mut self, effects: Effects) {
        for (token, reply) in effects.replies {
            assert!(self.answered.insert(token), "token {token} answered twice");
            let version = self.versions[&token];
            match &reply {
                Reply::JoinGroup(r) => assert_encodes(r, version),
                Reply::SyncGroup(r) => assert_encodes(r, version),
            }
            self.replies.insert(token, reply);
        }
        self.log.extend(effects.records);
    }

    pub fn is_answered(&self, token: ReplyToken) -> bool {
        self.answered.contains(&token)
    }

    pub fn advance(&mut self, ms: i64) {
        self.now += ms;
        let effects = self.coord.tick(self.now, &self.topics);
        self.absorb(effects);
    }

    /// Moves the clock in 100 ms ticks, as the broker does.
    pub fn advance_in_ticks(&mut self, ms: i64) {
        let end = self.now + ms;
        while self.now < end {
            self.advance(100.min(end - self.now));
        }
    }

    pub fn send_join(&mut self, spec: &JoinSpec) -> ReplyToken {
        let token = self.token(spec.version);
        let effects = self.coord.join_group(
            token,
            spec.version,
            &spec.request(),
            &spec.client_id,
            "/127.0.0.1",
            &self.topics,
            self.now,
        );
        self.absorb(effects);
        token
    }

    pub fn join_reply(&mut self, token: ReplyToken) -> Option<JoinGroupResponse> {
        match self.replies.remove(&token) {
            Some(Reply::JoinGroup(r)) => Some(r),
            Some(other) => panic!("token {token}: expected a JoinGroup reply, got {other:?}"),
            None => None,
        }
    }

    pub fn expect_join(&mut self, token: ReplyToken) -> JoinGroupResponse {
        self.join_reply(token)
            .unwrap_or_else(|| panic!("token {token}: no JoinGroup reply"))
    }

    /// JoinGroup as a v4+ dynamic member does it: ask for a member id, then join with it.
    /// Returns the parked (or answered) token of the second join.
    pub fn join_twice(&mut self, spec: &JoinSpec) -> (String, ReplyToken) {
        let first = self.send_join(spec);
        let response = self.expect_join(first);
        assert_eq!(response.error_code, code(ResponseError::MemberIdRequired));
        let member_id = response.member_id.to_string();
        assert!(member_id.starts_with(&format!("{}-", spec.client_id)));
        let token = self.send_join(&spec.clone().member(&member_id));
        (member_id, token)
    }

    /// Reads a successful JoinGroup reply.
    pub fn joined(&mut self, spec: &JoinSpec, token: ReplyToken) -> Joined {
        let response = self.expect_join(token);
        assert_eq!(response.error_code, NONE, "{response:?}");
        Joined {
            group: spec.group.clone(),
            member_id: response.member_id.to_string(),
            instance_id: spec.instance_id.clone(),
            protocol_type: spec.protocol_type.clone(),
            generation: response.generation_id,
            leader: response.leader.to_string(),
        }
    }

    fn sync_request(
        member: &Joined,
        assignments: &[(&str, &[u8])],
        version: i16,
    ) -> SyncGroupRequest {
        let mut request = SyncGroupRequest::default();
        request.group_id = s(&member.group).into();
        request.generation_id = member.generation;
        request.member_id = s(&member.member_id);
        request.group_instance_id = member.instance_id.as_deref().map(s);
        if version >= 5 {
            request.protocol_type = Some(s(&member.protocol_type));
            request.protocol_name = Some(s("range"));
        }
        request.assignments = assignments
            .iter()
            .map(|(id, bytes)| {
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = s(id);
                a.assignment = Bytes::copy_from_slice(bytes);
                a
            })
            .collect();
        request
    }

    pub fn send_sync(
        &mut self,
        member: &Joined,
        assignments: &[(&str, &[u8])],
        version: i16,
    ) -> ReplyToken {
        let request = Self::sync_request(member, assignments, version);
        let token = self.token(version);
        let effects = self
            .coord
            .sync_group(token, version, &request, &self.topics, self.now);
        self.absorb(effects);
        token
    }

    /// A SyncGroup whose records the broker then fails to write (`error`).
    pub fn send_sync_write_fails(
        &mut self,
        member: &Joined,
        assignments: &[(&str, &[u8])],
        error: ResponseError,
    ) -> ReplyToken {
        let request = Self::sync_request(member, assignments, 5);
        let token = self.token(5);
        let effects = self
            .coord
            .sync_group(token, 5, &request, &self.topics, self.now);
        assert!(!effects.records.is_empty(), "the sync wrote nothing");
        let failed = self
            .coord
            .write_failed(&member.group, effects.replies, error, self.now);
        self.absorb(failed);
        token
    }

    pub fn sync_reply(&mut self, token: ReplyToken) -> Option<SyncGroupResponse> {
        match self.replies.remove(&token) {
            Some(Reply::SyncGroup(r)) => Some(r),
            Some(other) => panic!("token {token}: expected a SyncGroup reply, got {other:?}"),
            None => None,
        }
    }

    pub fn expect_sync(&mut self, token: ReplyToken) -> SyncGroupResponse {
        self.sync_reply(token)
            .unwrap_or_else(|| panic!("token {token}: no SyncGroup reply"))
    }

    pub fn heartbeat(&mut self, member: &Joined) -> i16 {
        self.heartbeat_as(
            &member.group,
            &member.member_id,
            member.instance_id.as_deref(),
            member.generation,
        )
    }

    pub fn heartbeat_as(
        &mut self,
        group: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let mut request = HeartbeatRequest::default();
        request.group_id = s(group).into();
        request.member_id = s(member_id);
        request.group_instance_id = instance_id.map(s);
        request.generation_id = generation;
        let response = self.coord.heartbeat(4, &request, self.now);
        assert_encodes(&response, 4);
        response.error_code
    }

    /// LeaveGroup v3+ with (member id, instance id) pairs.
    pub fn leave(
        &mut self,
        group: &str,
        members: &[(&str, Option<&str>)],
        version: i16,
    ) -> LeaveGroupResponse {
        let mut request = LeaveGroupRequest::default();
        request.group_id = s(group).into();
        if version < 3 {
            request.member_id = s(members[0].0);
        } else {
            request.members = members
                .iter()
                .map(|(id, instance)| {
                    let mut m = MemberIdentity::default();
                    m.member_id = s(id);
                    m.group_instance_id = instance.map(s);
                    m
                })
                .collect();
        }
        let (response, effects) = self.coord.leave_group(version, &request, self.now);
        assert_encodes(&response, version);
        self.absorb(effects);
        response
    }

    /// OffsetCommit of (topic, partition, offset, metadata).
    pub fn commit(
        &mut self,
        group: &str,
        member_id: &str,
        generation: i32,
        offsets: &[(&str, i32, i64, Option<&str>)],
        version: i16,
    ) -> OffsetCommitResponse {
        let mut request = OffsetCommitRequest::default();
        request.group_id = s(group).into();
        request.member_id = s(member_id);
        request.generation_id_or_member_epoch = generation;
        for (topic, partition, offset, metadata) in offsets {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = *partition;
            p.committed_offset = *offset;
            p.committed_metadata = metadata.map(s);
            let existing = request
                .topics
                .iter_mut()
                .find(|t| t.name.as_str() == *topic);
            match existing {
                Some(t) => t.partitions.push(p),
                None => {
                    let mut t = OffsetCommitRequestTopic::default();
                    t.name = s(topic).into();
                    t.partitions.push(p);
                    request.topics.push(t);
                }
            }
        }
        let (response, records) =
            self.coord
                .offset_commit(version, &request, &Topics::default(), self.now);
        assert_encodes(&response, version);
        self.log.extend(records);
        response
    }

    /// Joins as the member would: static members and pre-v4 clients join once, v4+
    /// dynamic members twice. Returns the token whose reply carries the generation.
    pub fn join_member(&mut self, spec: &JoinSpec) -> ReplyToken {
        if spec.instance_id.is_none() && spec.version >= 4 && spec.member_id.is_empty() {
            self.join_twice(spec).1
        } else {
            self.send_join(spec)
        }
    }

    /// Brings up a Stable group of dynamic members (v7 joins): all join within the
    /// initial delay, the leader assigns `<member id>` bytes to each member.
    pub fn stable_group(&mut self, group: &str, clients: &[&str]) -> Vec<Joined> {
        let specs: Vec<JoinSpec> = clients.iter().map(|c| JoinSpec::new(group, c)).collect();
        self.stable_group_of(&specs)
    }

    /// Brings up a Stable group from these members' first joins.
    pub fn stable_group_of(&mut self, specs: &[JoinSpec]) -> Vec<Joined> {
        let members = self.joined_group_of(specs);
        self.sync_all(&members);
        members
    }

    /// These members' first joins, answered: the group waits for their syncs.
    pub fn joined_group_of(&mut self, specs: &[JoinSpec]) -> Vec<Joined> {
        let tokens: Vec<ReplyToken> = specs.iter().map(|spec| self.join_member(spec)).collect();
        self.advance_until_answered(&tokens);
        specs
            .iter()
            .zip(tokens)
            .map(|(spec, token)| self.joined(spec, token))
            .collect()
    }

    /// Moves the clock in 100 ms ticks until every token has its reply (at most one
    /// rebalance timeout).
    pub fn advance_until_answered(&mut self, tokens: &[ReplyToken]) {
        let deadline = self.now + i64::from(REBALANCE_MS);
        while !tokens.iter().all(|t| self.is_answered(*t)) {
            assert!(
                self.now < deadline,
                "tokens {tokens:?} not answered in time"
            );
            self.advance(100);
        }
    }

    /// Every member syncs, followers first; each gets `<member id>` as its assignment.
    pub fn sync_all(&mut self, members: &[Joined]) {
        let leader = members.iter().find(|m| m.is_leader()).expect("a leader");
        let assignment: Vec<(String, Vec<u8>)> = members
            .iter()
            .map(|m| (m.member_id.clone(), m.member_id.as_bytes().to_vec()))
            .collect();
        let assignment_refs: Vec<(&str, &[u8])> = assignment
            .iter()
            .map(|(id, bytes)| (id.as_str(), bytes.as_slice()))
            .collect();
        let mut tokens = Vec::new();
        for member in members.iter().filter(|m| !m.is_leader()) {
            tokens.push((member, self.send_sync(member, &[], 5)));
        }
        tokens.push((leader, self.send_sync(leader, &assignment_refs, 5)));
        for (member, token) in tokens {
            let response = self.expect_sync(token);
            assert_eq!(response.error_code, NONE);
            assert_eq!(response.assignment, member.member_id.as_bytes());
        }
    }
}
