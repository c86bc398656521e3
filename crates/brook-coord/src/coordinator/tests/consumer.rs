//! KIP-848 consumer groups through ConsumerGroupHeartbeat: a seeded simulation of
//! clients that join, heartbeat, leave and die, checking after every step that no
//! partition is ever held by two live clients (revocation before assignment), that the
//! coordinator's indexes agree, that the group converges, and that its records replay
//! to the same state.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
    GroupId, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::config::GroupConfig;
use crate::consumer::testing::Topics;
use crate::consumer::topic_regex;
use crate::consumer::{Assignment, ConsumerGroupState};
use crate::coordinator::GroupCoordinator;
use crate::records::OffsetsRecord;

const GROUP: &str = "g";
const SESSION_MS: i64 = 45_000;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

struct Client {
    member_id: String,
    epoch: i32,
    owned: Assignment,
    alive: bool,
    topics: Vec<String>,
    regex: Option<String>,
    instance: Option<String>,
    rack: Option<String>,
}

impl Client {
    fn request(&self, full: bool) -> ConsumerGroupHeartbeatRequest {
        let mut r = ConsumerGroupHeartbeatRequest::default();
        r.group_id = GroupId(s(GROUP));
        r.member_id = s(&self.member_id);
        r.member_epoch = self.epoch;
        if full || self.epoch <= 0 {
            r.rebalance_timeout_ms = 60_000;
            r.subscribed_topic_names = Some(self.topics.iter().map(|t| TopicName(s(t))).collect());
            r.subscribed_topic_regex = self.regex.as_deref().map(s);
            r.instance_id = self.instance.as_deref().map(s);
            r.rack_id = self.rack.as_deref().map(s);
        }
        r.topic_partitions = Some(
            self.owned
                .iter()
                .map(|(t, ps)| {
                    let mut tp = TopicPartitions::default();
                    tp.topic_id = *t;
                    tp.partitions = ps.iter().copied().collect();
                    tp
                })
                .collect(),
        );
        r
    }

    /// What a client does with the answer: adopt the epoch and the assignment.
    fn apply(&mut self, r: &ConsumerGroupHeartbeatResponse) {
        if r.error_code == ResponseError::FencedMemberEpoch.code()
            || r.error_code == ResponseError::UnknownMemberId.code()
        {
            self.owned.clear();
            self.epoch = 0;
            return;
        }
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        self.epoch = r.member_epoch;
        if let Some(a) = &r.assignment {
            self.owned = a
                .topic_partitions
                .iter()
                .map(|tp| (tp.topic_id, tp.partitions.iter().copied().collect()))
                .filter(|(_, ps): &(_, std::collections::BTreeSet<i32>)| !ps.is_empty())
                .collect();
        }
    }
}

struct Sim {
    coordinator: GroupCoordinator,
    topics: Topics,
    clients: Vec<Client>,
    records: Vec<OffsetsRecord>,
    now: i64,
    rng: u64,
}

impl Sim {
    fn new(seed: u64, assignor: &str) -> Self {
        let config = GroupConfig {
            consumer_assignors: vec![assignor.into()],
            ..GroupConfig::default()
        };
        Sim {
            coordinator: GroupCoordinator::with_seed(config, seed),
            topics: Topics::with(&[("a", 5), ("b", 3)]),
            clients: Vec::new(),
            records: Vec::new(),
            now: 1_000,
            rng: seed | 1,
        }
    }

    fn next(&mut self, n: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % n.max(1)
    }

    fn heartbeat(&mut self, i: usize, full: bool) -> ConsumerGroupHeartbeatResponse {
        let req = self.clients[i].request(full);
        let (resp, records) = self.coordinator.consumer_group_heartbeat(
            1,
            &req,
            "client",
            "/127.0.0.1",
            &self.topics,
            self.now,
        );
        let mut buf = bytes::BytesMut::new();
        resp.encode(&mut buf, 1).expect("response encodes");
        self.records.extend(records);
        self.clients[i].apply(&resp);
        resp
    }

    fn join(&mut self, topics: &[&str], instance: Option<&str>) -> usize {
        let id = format!("member-{}", self.clients.len());
        self.clients.push(Client {
            member_id: id,
            epoch: 0,
            owned: Assignment::new(),
            alive: true,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            regex: None,
            instance: instance.map(str::to_owned),
            rack: None,
        });
        let i = self.clients.len() - 1;
        self.heartbeat(i, true);
        i
    }

    fn tick(&mut self, ms: i64) {
        self.now += ms;
        let effects = self.coordinator.tick(self.now, &self.topics);
        self.records.extend(effects.records);
    }

    /// A session's worth of time in steps, live members heartbeating between them:
    /// the dead ones are fenced.
    fn pass_session(&mut self) {
        for _ in 0..6 {
            self.tick(SESSION_MS / 5);
            for i in self.live() {
                self.heartbeat(i, false);
                self.check();
            }
        }
    }

    /// No partition held by two live clients; the coordinator's indexes agree.
    fn check(&self) {
        let mut seen = std::collections::HashMap::new();
        for c in self.clients.iter().filter(|c| c.alive) {
            for (t, ps) in &c.owned {
                for p in ps {
                    if let Some(other) = seen.insert((*t, *p), &c.member_id) {
                        panic!("{t}-{p} held by {other} and {}", c.member_id);
                    }
                }
            }
        }
        if let Some(cg) = self
            .coordinator
            .groups
            .get(GROUP)
            .and_then(|g| g.consumer.as_ref())
        {
            cg.check_invariants();
        }
    }

    fn live(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|i| self.clients[*i].alive)
            .collect()
    }

    /// Live members heartbeat until nothing changes; the group must be Stable with every
    /// subscribed partition owned once.
    fn converge(&mut self) {
        for _ in 0..20 {
            for i in self.live() {
                self.heartbeat(i, false);
                self.check();
            }
        }
        let cg = self.coordinator.groups[GROUP]
            .consumer
            .as_ref()
            .expect("consumer group");
        let live = self.live();
        if live.is_empty() {
            return;
        }
        assert_eq!(
            cg.state(),
            ConsumerGroupState::Stable,
            "group did not converge"
        );
        let owned: usize = live
            .iter()
            .map(|i| {
                self.clients[*i]
                    .owned
                    .values()
                    .map(|p| p.len())
                    .sum::<usize>()
            })
            .sum();
        let mut subscribed: std::collections::BTreeSet<&str> = live
            .iter()
            .flat_map(|i| self.clients[*i].topics.iter().map(String::as_str))
            .collect();
        for i in &live {
            if let Some(pattern) = &self.clients[*i].regex {
                let regex = topic_regex::compile(pattern).expect("valid pattern");
                subscribed.extend(
                    self.topics
                        .0
                        .keys()
                        .filter(|t| !t.starts_with("__") && regex.is_match(t))
                        .map(String::as_str),
                );
            }
        }
        let expected: i32 = subscribed.iter().map(|t| self.topics.0[*t].1).sum();
        assert_eq!(
            owned as i32, expected,
            "every subscribed partition owned once"
        );
    }

    /// The records written so far rebuild the same group in a fresh coordinator.
    fn check_replay(&self) {
        let mut fresh = GroupCoordinator::with_seed(GroupConfig::default(), 1);
        for r in &self.records {
            fresh.replay(r).expect("own records decode");
        }
        let (a, b) = (
            self.coordinator
                .groups
                .get(GROUP)
                .and_then(|g| g.consumer.as_ref()),
            fresh.groups.get(GROUP).and_then(|g| g.consumer.as_ref()),
        );
        match (a, b) {
            (Some(a), Some(b)) => {
                assert_eq!(a.members, b.members);
                assert_eq!(a.target, b.target);
                assert_eq!(
                    (a.group_epoch, a.assignment_epoch),
                    (b.group_epoch, b.assignment_epoch)
                );
                assert_eq!(a.metadata_hash, b.metadata_hash);
                assert_eq!(a.regexes, b.regexes);
                b.check_invariants();
            }
            (None, None) => {}
            (a, b) => panic!("replayed group differs: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn members_join_reconcile_and_leave() {
    let mut sim = Sim::new(7, "uniform");
    let a = sim.join(&["a", "b"], None);
    assert_eq!(
        sim.clients[a]
            .owned
            .values()
            .map(|p| p.len())
            .sum::<usize>(),
        8
    );
    assert_eq!(sim.clients[a].epoch, 1);
    let b = sim.join(&["a", "b"], None);
    // b gets nothing until a revokes: everything is a's.
    assert!(sim.clients[b].owned.is_empty());
    sim.check();
    sim.converge();
    let counts: Vec<usize> = [a, b]
        .iter()
        .map(|i| sim.clients[*i].owned.values().map(|p| p.len()).sum())
        .collect();
    assert_eq!(counts, vec![4, 4]);
    // b leaves: a gets everything back.
    sim.clients[b].epoch = -1;
    let resp = sim.heartbeat(b, false);
    assert_eq!(resp.member_epoch, -1);
    sim.clients[b].alive = false;
    sim.converge();
    sim.check_replay();
}

#[test]
fn errors_are_kafkas() {
    let mut sim = Sim::new(3, "uniform");
    let a = sim.join(&["a"], None);
    let mut req = sim.clients[a].request(false);
    type Change = Box<dyn Fn(&mut ConsumerGroupHeartbeatRequest)>;
    let cases: Vec<(Change, ResponseError)> = vec![
        (
            Box::new(|r| r.member_epoch = 99),
            ResponseError::FencedMemberEpoch,
        ),
        (
            Box::new(|r| r.member_id = s("nobody")),
            ResponseError::UnknownMemberId,
        ),
        (
            Box::new(|r| r.group_id = GroupId(s(""))),
            ResponseError::InvalidRequest,
        ),
        (
            Box::new(|r| r.member_epoch = -3),
            ResponseError::InvalidRequest,
        ),
        (
            Box::new(|r| {
                r.member_epoch = 0;
                r.rebalance_timeout_ms = -1;
            }),
            ResponseError::InvalidRequest,
        ),
        (
            Box::new(|r| r.server_assignor = Some(s("sticky"))),
            ResponseError::UnsupportedAssignor,
        ),
        (
            Box::new(|r| r.subscribed_topic_regex = Some(s("a.*("))),
            ResponseError::InvalidRegularExpression,
        ),
        (
            Box::new(|r| {
                r.group_id = GroupId(s("other"));
                r.member_epoch = 3;
            }),
            ResponseError::GroupIdNotFound,
        ),
    ];
    for (i, (change, expected)) in cases.iter().enumerate() {
        let mut r = req.clone();
        change(&mut r);
        let (resp, records) =
            sim.coordinator
                .consumer_group_heartbeat(1, &r, "c", "h", &sim.topics, sim.now);
        assert_eq!(
            resp.error_code,
            expected.code(),
            "case {i}: {:?}",
            resp.error_message
        );
        assert!(records.is_empty(), "case {i} wrote records");
    }
    // group.consumer.max.size
    sim.coordinator.config.consumer_max_size = 1;
    req.member_id = s("second");
    req.member_epoch = 0;
    req.rebalance_timeout_ms = 1000;
    req.subscribed_topic_names = Some(vec![TopicName(s("a"))]);
    req.topic_partitions = Some(vec![]);
    let (resp, _) =
        sim.coordinator
            .consumer_group_heartbeat(1, &req, "c", "h", &sim.topics, sim.now);
    assert_eq!(resp.error_code, ResponseError::GroupMaxSizeReached.code());
}

#[test]
fn a_silent_member_is_fenced_and_its_partitions_move() {
    let mut sim = Sim::new(11, "range");
    let a = sim.join(&["a"], None);
    let b = sim.join(&["a"], None);
    sim.converge();
    sim.clients[b].alive = false;
    for _ in 0..10 {
        sim.tick(SESSION_MS / 9);
        sim.heartbeat(a, false);
        sim.check();
    }
    sim.converge();
    assert_eq!(
        sim.clients[a]
            .owned
            .values()
            .map(|p| p.len())
            .sum::<usize>(),
        5
    );
    sim.check_replay();
}

#[test]
fn a_static_member_comes_back_to_its_partitions() {
    let mut sim = Sim::new(5, "uniform");
    let a = sim.join(&["a", "b"], Some("instance-a"));
    let b = sim.join(&["a", "b"], None);
    sim.converge();
    let before = sim.clients[a].owned.clone();
    sim.clients[a].epoch = -2;
    let resp = sim.heartbeat(a, false);
    assert_eq!(resp.member_epoch, -2);
    sim.clients[a].alive = false;
    for _ in 0..10 {
        sim.heartbeat(b, false);
        sim.check();
    }
    // b did not get a's partitions while a is away (the group stays Reconciling).
    assert_eq!(
        sim.clients[b]
            .owned
            .values()
            .map(|p| p.len())
            .sum::<usize>(),
        4
    );
    let back = sim.join(&["a", "b"], Some("instance-a"));
    assert_eq!(sim.clients[back].owned, before);
    sim.converge();
    sim.check_replay();
    // Another process taking an instance id still in use is refused.
    let mut req = sim.clients[back].request(true);
    req.member_id = s("intruder");
    req.member_epoch = 0;
    req.topic_partitions = Some(vec![]);
    let (resp, _) =
        sim.coordinator
            .consumer_group_heartbeat(1, &req, "c", "h", &sim.topics, sim.now);
    assert_eq!(resp.error_code, ResponseError::UnreleasedInstanceId.code());
}

#[test]
fn new_partitions_bump_the_epoch_and_get_assigned() {
    let mut sim = Sim::new(9, "uniform");
    let a = sim.join(&["a"], None);
    sim.converge();
    let epoch = sim.clients[a].epoch;
    sim.topics.set("a", 8);
    sim.converge();
    assert!(sim.clients[a].epoch > epoch);
    assert_eq!(
        sim.clients[a]
            .owned
            .values()
            .map(|p| p.len())
            .sum::<usize>(),
        8
    );
    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(s(GROUP)), GroupId(s("unknown"))];
    let resp = sim
        .coordinator
        .consumer_group_describe(1, &describe, &sim.topics);
    assert_eq!(resp.groups[0].group_state.as_str(), "Stable");
    assert_eq!(
        resp.groups[0].members[0].assignment.topic_partitions[0]
            .partitions
            .len(),
        8
    );
    assert_eq!(
        resp.groups[1].error_code,
        ResponseError::GroupIdNotFound.code()
    );
}

/// Property-style: random joins (by names or by regular expression), heartbeats,
/// leaves, deaths, static departures, partition growth and topics created and deleted,
/// for many seeds and both assignors. After every step no live
/// client holds a partition another live client holds; the group converges; the
/// records replay to the same state.
#[test]
fn random_membership_changes_never_share_a_partition() {
    for seed in 1..=60u64 {
        for assignor in ["uniform", "range"] {
            let mut sim = Sim::new(seed * 7919, assignor);
            for _ in 0..120 {
                let live = sim.live();
                match sim.next(10) {
                    0 | 1 if live.len() < 6 => {
                        let topics: &[&str] = match sim.next(4) {
                            0 => &["a"],
                            1 => &["b"],
                            2 => &["a", "b"],
                            _ => {
                                // By regular expression: "a" and the topics created
                                // below.
                                sim.join_regex("a.*");
                                continue;
                            }
                        };
                        let instance =
                            (sim.next(3) == 0).then(|| format!("i{}", sim.clients.len()));
                        sim.join(topics, instance.as_deref());
                    }
                    2 if !live.is_empty() => {
                        let i = live[sim.next(live.len() as u64) as usize];
                        sim.clients[i].epoch = -1;
                        sim.heartbeat(i, false);
                        sim.clients[i].alive = false;
                    }
                    3 if !live.is_empty() => {
                        let i = live[sim.next(live.len() as u64) as usize];
                        sim.clients[i].alive = false; // dies silently
                    }
                    4 => {
                        // Less than a session: live members, which heartbeat now, stay.
                        let ms = sim.next(SESSION_MS as u64 / 2) as i64;
                        sim.tick(ms);
                        for i in sim.live() {
                            sim.heartbeat(i, false);
                        }
                    }
                    5 if sim.next(8) == 0 => {
                        let n = sim.topics.0["b"].1 + 1;
                        sim.topics.set("b", n);
                    }
                    6 if sim.next(8) == 0 => {
                        // A topic the regular expression matches comes or goes.
                        let name = format!("a{}", sim.next(3));
                        if sim.topics.0.contains_key(&name) {
                            sim.topics.remove(&name);
                        } else {
                            let partitions = 1 + sim.next(3) as i32;
                            sim.topics.set(&name, partitions);
                        }
                    }
                    _ if !live.is_empty() => {
                        let i = live[sim.next(live.len() as u64) as usize];
                        let full = sim.next(5) == 0;
                        sim.heartbeat(i, full);
                    }
                    _ => {}
                }
                sim.check();
            }
            sim.pass_session();
            sim.converge();
            sim.check_replay();
        }
    }
}

impl Sim {
    /// OffsetCommit v9 of offset 1 on each of `partitions` (topic "a") by client `i`
    /// with `epoch`: the error code of each partition.
    fn commit(&mut self, i: usize, epoch: i32, partitions: &[i32]) -> Vec<i16> {
        use kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        let mut topic = OffsetCommitRequestTopic::default();
        topic.name = TopicName(s("a"));
        for p in partitions {
            let mut part = OffsetCommitRequestPartition::default();
            part.partition_index = *p;
            part.committed_offset = 1;
            topic.partitions.push(part);
        }
        let mut req = kafka_protocol::messages::OffsetCommitRequest::default();
        req.group_id = GroupId(s(GROUP));
        req.member_id = s(&self.clients[i].member_id);
        req.generation_id_or_member_epoch = epoch;
        req.topics.push(topic);
        let (resp, records) = self
            .coordinator
            .offset_commit(9, &req, &self.topics, self.now);
        self.records.extend(records);
        resp.topics[0]
            .partitions
            .iter()
            .map(|p| p.error_code)
            .collect()
    }

    fn owned_of(&self, i: usize, topic: &str) -> Vec<i32> {
        let id = self.topics.0[topic].0;
        self.clients[i]
            .owned
            .get(&id)
            .map(|ps| ps.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// KIP-1251: a commit sent with an epoch the member has since left is accepted for
/// the partitions it held since that epoch, and refused (STALE_MEMBER_EPOCH) for the
/// others; an epoch the member never had is refused outright.
#[test]
fn commits_with_an_older_epoch_are_checked_per_partition() {
    const STALE: i16 = 113;
    assert_eq!(ResponseError::StaleMemberEpoch.code(), STALE);
    let mut sim = Sim::new(9, "uniform");
    let a = sim.join(&["a"], None);
    let old_epoch = sim.clients[a].epoch;
    let all = sim.owned_of(a, "a");
    assert_eq!(all.len(), 5);
    let b = sim.join(&["a"], None);
    sim.converge();
    let kept = sim.owned_of(a, "a");
    let moved = sim.owned_of(b, "a");
    assert!(sim.clients[a].epoch > old_epoch, "a's epoch moved on");
    assert!(!kept.is_empty() && !moved.is_empty());
    // a's commit with its first epoch: its kept partitions pass, the moved ones fail.
    let errors = sim.commit(a, old_epoch, &all);
    for (p, e) in all.iter().zip(&errors) {
        let expected = if kept.contains(p) { 0 } else { STALE };
        assert_eq!(*e, expected, "partition {p}");
    }
    // b was given its partitions at a later epoch than a's first one.
    assert_eq!(sim.commit(b, old_epoch, &moved), vec![STALE; moved.len()]);
    // The current epoch passes for anything; a future epoch for nothing.
    let epoch_a = sim.clients[a].epoch;
    assert_eq!(sim.commit(a, epoch_a, &kept), vec![0; kept.len()]);
    assert_eq!(sim.commit(a, epoch_a + 1, &kept), vec![STALE; kept.len()]);
    // The assignment epochs replay from the records.
    sim.check_replay();
    let mut fresh = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for r in &sim.records {
        fresh.replay(r).expect("own records decode");
    }
    let cg = fresh.groups[GROUP]
        .consumer
        .as_ref()
        .expect("consumer group");
    let a_id = &sim.clients[a].member_id;
    let topic = sim.topics.0["a"].0;
    for p in &kept {
        assert_eq!(cg.assignment_epoch(a_id, topic, *p), Some(old_epoch));
    }
}

impl Sim {
    /// A member subscribing with `pattern` (and no topic names).
    fn join_regex(&mut self, pattern: &str) -> usize {
        let id = format!("member-{}", self.clients.len());
        self.clients.push(Client {
            member_id: id,
            epoch: 0,
            owned: Assignment::new(),
            alive: true,
            topics: Vec::new(),
            regex: Some(pattern.to_owned()),
            instance: None,
            rack: None,
        });
        let i = self.clients.len() - 1;
        self.heartbeat(i, true);
        i
    }

    fn owned_topics(&self, i: usize) -> Vec<(String, usize)> {
        self.clients[i]
            .owned
            .iter()
            .map(|(id, ps)| {
                let name = self.topics.topic_name(id).unwrap_or_default();
                (name, ps.len())
            })
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect()
    }

    fn group(&self) -> &crate::consumer::ConsumerGroup {
        self.coordinator.groups[GROUP]
            .consumer
            .as_ref()
            .expect("consumer group")
    }

    fn regex_records(&self) -> usize {
        self.records
            .iter()
            .filter(|r| r.key.starts_with(&[0, 16]))
            .count()
    }
}

fn topics_of(list: &[(&str, usize)]) -> Vec<(String, usize)> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn regex_sim() -> Sim {
    let mut sim = Sim::new(21, "uniform");
    sim.topics = Topics::with(&[
        ("__consumer_offsets", 50),
        ("__transaction_state", 50),
        ("a", 5),
        ("other-c", 1),
        ("regex-a", 2),
        ("regex-b", 1),
        ("xregex-d", 1),
    ]);
    sim
}

use crate::consumer::TopicsView;

/// A regular expression subscribes to the whole names it matches, internal topics
/// left out; members by name and by pattern share a group.
#[test]
fn a_regex_subscribes_to_the_topics_it_matches() {
    let mut sim = regex_sim();
    let r = sim.join_regex("regex-.*");
    sim.converge();
    assert_eq!(
        sim.owned_topics(r),
        topics_of(&[("regex-a", 2), ("regex-b", 1)])
    );
    let n = sim.join(&["a"], None);
    sim.converge();
    assert_eq!(sim.owned_topics(n), topics_of(&[("a", 5)]));
    assert_eq!(
        sim.owned_topics(r),
        topics_of(&[("regex-a", 2), ("regex-b", 1)])
    );
    // Everything but the internal topics.
    let all = sim.join_regex(".*");
    sim.converge();
    let owned: usize = sim
        .live()
        .iter()
        .flat_map(|i| sim.owned_topics(*i))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(owned, 5 + 1 + 2 + 1 + 1);
    assert!(sim
        .owned_topics(all)
        .iter()
        .all(|(t, _)| !t.starts_with("__")));
    assert_eq!(sim.group().regexes.len(), 2);
    sim.check_replay();

    // ConsumerGroupDescribe shows the pattern.
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(s(GROUP))];
    let resp = sim
        .coordinator
        .consumer_group_describe(0, &req, &sim.topics);
    let member = resp.groups[0]
        .members
        .iter()
        .find(|m| m.member_id.as_str() == sim.clients[r].member_id)
        .expect("described");
    assert_eq!(member.subscribed_topic_regex.as_deref(), Some("regex-.*"));
    assert!(member.subscribed_topic_names.is_empty());
}

/// A topic created later joins the subscription at the next resolution (at most
/// REGEX_REFRESH_MIN_INTERVAL_MS after the last one); a deleted one leaves at once.
#[test]
fn created_topics_join_and_deleted_topics_leave() {
    let mut sim = regex_sim();
    let r = sim.join_regex("regex-.*");
    let other = sim.join_regex("regex-.*");
    sim.converge();
    let epoch = sim.group().group_epoch;
    let records = sim.regex_records();

    sim.topics.set("regex-c", 4);
    sim.topics.set("other-d", 4);
    for i in [r, other] {
        sim.heartbeat(i, false);
    }
    assert_eq!(
        sim.group().group_epoch,
        epoch,
        "not before the minimum interval"
    );
    sim.tick(topic_regex::REGEX_REFRESH_MIN_INTERVAL_MS);
    sim.converge();
    assert!(sim.group().group_epoch > epoch);
    assert_eq!(
        sim.regex_records(),
        records + 1,
        "one resolution, one record"
    );
    let mut all = sim.owned_topics(r);
    all.extend(sim.owned_topics(other));
    let mut names: Vec<String> = all.into_iter().map(|(t, _)| t).collect();
    names.sort();
    names.dedup();
    assert_eq!(names, vec!["regex-a", "regex-b", "regex-c"]);

    // Deleted: out of the assignment on the next heartbeat, out of the resolution at the
    // next refresh.
    sim.topics.remove("regex-a");
    sim.converge();
    for i in [r, other] {
        assert!(sim.owned_topics(i).iter().all(|(t, _)| t != "regex-a"));
    }
    sim.tick(topic_regex::REGEX_REFRESH_MIN_INTERVAL_MS);
    sim.converge();
    let resolved = &sim.group().regexes["regex-.*"].topics;
    assert!(!resolved.contains("regex-a") && resolved.contains("regex-c"));
    sim.check_replay();
}

/// `group.consumer.regex.refresh.interval.ms` resolves again without topic changes;
/// nothing is resolved more often than that when nothing changes.
#[test]
fn regexes_are_refreshed_on_the_interval() {
    let mut sim = regex_sim();
    sim.coordinator.config.consumer_regex_refresh_interval_ms = 60_000;
    let r = sim.join_regex("regex-.*");
    sim.converge();
    let records = sim.regex_records();
    for _ in 0..5 {
        sim.tick(10_000);
        sim.heartbeat(r, false);
    }
    assert_eq!(sim.regex_records(), records);
    sim.tick(10_000);
    sim.heartbeat(r, false);
    assert_eq!(sim.regex_records(), records + 1);
    assert_eq!(sim.group().regexes["regex-.*"].resolved_at_ms, sim.now);
}

/// The last member with a pattern leaving (or changing it) tombstones its resolution.
#[test]
fn unused_regexes_are_dropped() {
    let mut sim = regex_sim();
    let r = sim.join_regex("regex-.*");
    let n = sim.join(&["a"], None);
    sim.converge();
    sim.clients[r].regex = Some("other-.*".into());
    sim.heartbeat(r, true);
    sim.converge();
    assert_eq!(sim.owned_topics(r), topics_of(&[("other-c", 1)]));
    let keys: Vec<&String> = sim.group().regexes.keys().collect();
    assert_eq!(keys, vec!["other-.*"]);
    sim.check_replay();
    sim.clients[r].epoch = -1;
    sim.heartbeat(r, false);
    sim.clients[r].alive = false;
    assert!(sim.group().regexes.is_empty());
    sim.converge();
    assert_eq!(sim.owned_topics(n), topics_of(&[("a", 5)]));
    sim.check_replay();
}

/// A pattern that is not a regular expression, or compiles too big, is refused with
/// INVALID_REGULAR_EXPRESSION and Kafka's message; nothing is written.
#[test]
fn invalid_regexes_are_refused() {
    let mut sim = regex_sim();
    for pattern in ["regex-(", "a)|(b", "(((a{100}){100}){100})"] {
        let client = Client {
            member_id: "m".into(),
            epoch: 0,
            owned: Assignment::new(),
            alive: true,
            topics: Vec::new(),
            regex: Some(pattern.into()),
            instance: None,
            rack: None,
        };
        let req = client.request(true);
        let (resp, records) =
            sim.coordinator
                .consumer_group_heartbeat(1, &req, "c", "h", &sim.topics, sim.now);
        assert_eq!(
            resp.error_code,
            ResponseError::InvalidRegularExpression.code()
        );
        let message = resp.error_message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "SubscribedTopicRegex `{pattern}` is not a valid regular expression"
            )),
            "{message}"
        );
        assert!(records.is_empty());
    }
    assert!(!sim.coordinator.groups.contains_key(GROUP));
}

/// The member's pattern and the group's resolutions replay from the records, and the
/// replayed group carries on without a rebalance.
#[test]
fn regexes_replay() {
    let mut sim = regex_sim();
    let r = sim.join_regex("regex-.*");
    sim.join(&["a"], None);
    sim.converge();
    sim.check_replay();
    let epoch = sim.group().group_epoch;
    let mut fresh = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for rec in &sim.records {
        fresh.replay(rec).expect("own records decode");
    }
    let cg = fresh.groups[GROUP]
        .consumer
        .as_ref()
        .expect("consumer group");
    let member = &cg.members[&sim.clients[r].member_id];
    assert_eq!(member.subscribed_topic_regex.as_deref(), Some("regex-.*"));
    assert_eq!(
        cg.regexes["regex-.*"].topics,
        ["regex-a", "regex-b"].map(String::from).into()
    );
    // The snapshot (what compaction keeps) holds the resolutions too.
    let mut from_snapshot = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    for rec in sim.coordinator.snapshot(|_| true) {
        from_snapshot.replay(&rec).expect("own records decode");
    }
    let snap = from_snapshot.groups[GROUP]
        .consumer
        .as_ref()
        .expect("consumer group");
    assert_eq!(snap.regexes, sim.group().regexes);
    assert_eq!(snap.members, sim.group().members);
    sim.coordinator = fresh;
    sim.converge();
    assert_eq!(sim.group().group_epoch, epoch, "no rebalance after replay");
    assert_eq!(
        sim.owned_topics(r),
        topics_of(&[("regex-a", 2), ("regex-b", 1)])
    );
}

impl Sim {
    fn join_in_rack(&mut self, topics: &[&str], rack: &str) -> usize {
        let id = format!("member-{}", self.clients.len());
        self.clients.push(Client {
            member_id: id,
            epoch: 0,
            owned: Assignment::new(),
            alive: true,
            topics: topics.iter().map(|t| t.to_string()).collect(),
            regex: None,
            instance: None,
            rack: Some(rack.to_owned()),
        });
        let i = self.clients.len() - 1;
        self.heartbeat(i, true);
        i
    }

    fn epochs(&self) -> (i32, i32) {
        let cg = self.coordinator.groups[GROUP]
            .consumer
            .as_ref()
            .expect("consumer group");
        (cg.group_epoch, cg.assignment_epoch)
    }
}

/// KIP-1101: the group's metadata hash covers the racks of the subscribed partitions'
/// replicas, so when they change the group epoch moves and the assignor runs again.
/// Kafka's `uniform` and `range` do not look at racks, so the assignment stays as it
/// was. Racks of a topic no member subscribes to, or a replica moving to another
/// broker of the same rack, change nothing.
#[test]
fn replica_rack_changes_bump_the_epoch_and_keep_the_assignment() {
    for assignor in ["uniform", "range"] {
        let mut sim = Sim::new(11, assignor);
        for p in 0..5 {
            sim.topics.set_racks("a", p, &["r1", "r2"]);
        }
        let a = sim.join_in_rack(&["a"], "r1");
        let b = sim.join_in_rack(&["a"], "r2");
        sim.converge();
        let (epoch, _) = sim.epochs();
        let before: Vec<Assignment> = [a, b]
            .iter()
            .map(|i| sim.clients[*i].owned.clone())
            .collect();

        sim.topics.set_racks("b", 0, &["r3"]);
        sim.converge();
        assert_eq!(
            sim.epochs(),
            (epoch, epoch),
            "{assignor}: unsubscribed topic"
        );

        sim.topics.set_racks("a", 3, &["r3"]);
        sim.converge();
        assert_eq!(
            sim.epochs(),
            (epoch + 1, epoch + 1),
            "{assignor}: rack change"
        );
        let after: Vec<Assignment> = [a, b]
            .iter()
            .map(|i| sim.clients[*i].owned.clone())
            .collect();
        assert_eq!(before, after, "{assignor}: the assignment moved");

        // Same racks, new metadata version (a replica moved within its rack).
        sim.topics.set_racks("a", 3, &["r3"]);
        sim.converge();
        assert_eq!(
            sim.epochs(),
            (epoch + 1, epoch + 1),
            "{assignor}: same racks"
        );
        // The racks gone (the brokers lost their broker.rack): another epoch.
        sim.topics.2.clear();
        sim.topics.1 += 1;
        sim.converge();
        assert_eq!(sim.epochs().0, epoch + 2, "{assignor}: racks removed");
        sim.check_replay();
    }
}

/// As Kafka's built-in assignors, Brook's do not use racks: the same members with
/// their racks swapped, over partitions whose replicas sit in one rack each, get the
/// same assignment (no rack-local preference), balanced.
#[test]
fn assignments_do_not_depend_on_member_racks() {
    let run = |racks: [&str; 2], assignor: &str| {
        let mut sim = Sim::new(5, assignor);
        for p in 0..5 {
            sim.topics
                .set_racks("a", p, &[if p % 2 == 0 { "r1" } else { "r2" }]);
        }
        let a = sim.join_in_rack(&["a"], racks[0]);
        let b = sim.join_in_rack(&["a"], racks[1]);
        sim.converge();
        [a, b].map(|i| sim.clients[i].owned.clone())
    };
    for assignor in ["uniform", "range"] {
        let one = run(["r1", "r2"], assignor);
        let other = run(["r2", "r1"], assignor);
        assert_eq!(one, other, "{assignor}");
        let sizes = one.map(|o| o.values().map(|p| p.len()).sum::<usize>());
        assert_eq!(sizes.iter().sum::<usize>(), 5);
        assert!(sizes[0].abs_diff(sizes[1]) <= 1, "{assignor}: {sizes:?}");
    }
}

/// A member that comes back with another rack id: its metadata is rewritten (describe
/// and a replay show the new rack) but, as in Kafka, the group epoch does not move —
/// only subscriptions and the subscribed topics' metadata bump it.
#[test]
fn a_member_changing_rack_is_recorded_without_a_new_epoch() {
    let mut sim = Sim::new(13, "uniform");
    let a = sim.join_in_rack(&["a"], "r1");
    sim.join_in_rack(&["a"], "r2");
    sim.converge();
    let epochs = sim.epochs();
    sim.clients[a].rack = Some("r3".into());
    sim.heartbeat(a, true);
    sim.converge();
    assert_eq!(sim.epochs(), epochs);
    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(s(GROUP))];
    let resp = sim
        .coordinator
        .consumer_group_describe(1, &describe, &sim.topics);
    let member = resp.groups[0]
        .members
        .iter()
        .find(|m| m.member_id.as_str() == sim.clients[a].member_id)
        .expect("member described");
    assert_eq!(member.rack_id.as_deref(), Some("r3"));
    sim.check_replay();
}
