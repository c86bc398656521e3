//! A harness that plays the broker: it allocates producer ids, keeps the records and the
//! marker jobs the coordinator hands out, moves the clock, and checks after every call
//! that each response encodes at its API version, that a fresh coordinator replaying the
//! log reaches the same state and deadlines, and that the jobs not yet written are
//! exactly what `pending_markers` would re-send after a restart.

use std::collections::BTreeSet;

use bytes::BytesMut;
use kafka_protocol::error::ResponseError::{self, *};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::metadata::{TxnMetadata, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use super::*;

const NONE: i16 = 0;
const TIMEOUT_MS: i32 = 60_000;
const EXPIRATION_MS: i64 = 3_600_000;
const START_MS: i64 = 1_000_000;
/// The first producer id the harness hands out.
const FIRST_PID: i64 = 5_000;

fn code(error: ResponseError) -> i16 {
    error.code()
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn assert_encodes<T: Encodable + std::fmt::Debug>(response: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(error) = response.encode(&mut buf, version) {
        panic!("response does not encode at v{version}: {error}\n{response:?}");
    }
}

fn tp(topic: &str, partition: i32) -> (String, i32) {
    (topic.to_owned(), partition)
}

/// A transactional producer as the client sees it.
#[derive(Debug, Clone, PartialEq)]
struct Producer {
    id: String,
    pid: i64,
    epoch: i16,
}

impl Producer {
    fn with_epoch(&self, epoch: i16) -> Producer {
        Producer {
            epoch,
            ..self.clone()
        }
    }
}

struct Harness {
    coord: TransactionCoordinator,
    log: Vec<TxnRecord>,
    /// Marker jobs handed out and not yet written.
    markers: Vec<MarkerJob>,
    now: i64,
    next_pid: i64,
    /// Records the last call produced.
    last_records: usize,
}

impl Harness {
    fn new() -> Self {
        Self::with_config(TxnConfig {
            max_timeout_ms: 900_000,
            id_expiration_ms: EXPIRATION_MS,
        })
    }

    fn with_config(config: TxnConfig) -> Self {
        Harness {
            coord: TransactionCoordinator::new(config),
            log: Vec::new(),
            markers: Vec::new(),
            now: START_MS,
            next_pid: FIRST_PID,
            last_records: 0,
        }
    }

    /// Takes a call's effects as the broker would, then checks the invariants.
    fn take(&mut self, effects: TxnEffects) {
        self.last_records = effects.records.len();
        self.log.extend(effects.records);
        self.markers.extend(effects.markers);
        self.check();
    }

    fn check(&self) {
        let mut fresh = TransactionCoordinator::new(self.coord.config().clone());
        for record in &self.log {
            fresh
                .replay(record)
                .expect("the coordinator's records replay");
        }
        assert_eq!(
            fresh.snapshot(|_| true),
            self.coord.snapshot(|_| true),
            "replaying the log gives the live state"
        );
        assert_eq!(fresh.next_deadline_ms(), self.coord.next_deadline_ms());
        let mut outstanding = self.markers.clone();
        outstanding.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        assert_eq!(fresh.pending_markers(|_| true), outstanding);
        assert_eq!(self.coord.pending_markers(|_| true), outstanding);
    }

    fn state(&self, id: &str) -> Option<TxnState> {
        self.coord.txn_state(id)
    }

    fn meta(&self, id: &str) -> TxnMetadata {
        self.coord.txns[id].clone()
    }

    fn fresh_pid(&mut self) -> i64 {
        let pid = self.next_pid;
        self.next_pid += 1;
        pid
    }

    fn init_with(
        &mut self,
        version: i16,
        id: Option<&str>,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> InitProducerIdResponse {
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = id.map(|id| s(id).into());
        request.transaction_timeout_ms = timeout_ms;
        if let Some((pid, epoch)) = expected {
            request.producer_id = pid.into();
            request.producer_epoch = epoch;
        }
        let fresh = self.fresh_pid();
        let (response, effects) = self
            .coord
            .init_producer_id(version, &request, fresh, self.now);
        assert_encodes(&response, version);
        if response.producer_id != fresh {
            // Unused: the broker may hand it out again.
            self.next_pid -= 1;
        }
        self.take(effects);
        response
    }

    /// InitProducerId v4 without a previous producer, which must succeed.
    fn producer(&mut self, id: &str) -> Producer {
        let response = self.init_with(4, Some(id), TIMEOUT_MS, None);
        assert_eq!(response.error_code, NONE, "InitProducerId for {id}");
        Producer {
            id: id.to_owned(),
            pid: *response.producer_id,
            epoch: response.producer_epoch,
        }
    }

    fn add_v(
        &mut self,
        version: i16,
        p: &Producer,
        partitions: &[(&str, i32)],
    ) -> Vec<((String, i32), i16)> {
        let mut request = AddPartitionsToTxnRequest::default();
        request.v3_and_below_transactional_id = s(&p.id).into();
        request.v3_and_below_producer_id = p.pid.into();
        request.v3_and_below_producer_epoch = p.epoch;
        for (topic, partition) in partitions {
            let mut t = AddPartitionsToTxnTopic::default();
            t.name = TopicName(s(topic));
            t.partitions = vec![*partition];
            request.v3_and_below_topics.push(t);
        }
        let exists = |topic: &str, _: i32| !topic.starts_with("missing");
        let (response, effects) = self
            .coord
            .add_partitions(version, &request, &exists, self.now);
        assert_encodes(&response, version);
        self.take(effects);
        flatten(&response)
    }

    /// AddPartitionsToTxn v3: the one error code every partition got.
    fn add(&mut self, p: &Producer, partitions: &[(&str, i32)]) -> i16 {
        let results = self.add_v(3, p, partitions);
        let codes: BTreeSet<i16> = results.iter().map(|(_, c)| *c).collect();
        assert_eq!(codes.len(), 1, "one answer for all: {results:?}");
        codes.into_iter().next().unwrap()
    }

    fn add_offsets_v(&mut self, version: i16, p: &Producer, offsets_partition: i32) -> i16 {
        let mut request = AddOffsetsToTxnRequest::default();
        request.transactional_id = s(&p.id).into();
        request.producer_id = p.pid.into();
        request.producer_epoch = p.epoch;
        request.group_id = s("group").into();
        let (response, effects) =
            self.coord
                .add_offsets(version, &request, offsets_partition, self.now);
        assert_encodes(&response, version);
        self.take(effects);
        response.error_code
    }

    fn end_v(&mut self, version: i16, p: &Producer, commit: bool) -> EndTxnResponse {
        let mut request = EndTxnRequest::default();
        request.transactional_id = s(&p.id).into();
        request.producer_id = p.pid.into();
        request.producer_epoch = p.epoch;
        request.committed = commit;
        let (response, effects) = self.coord.end_txn(version, &request, self.now);
        assert_encodes(&response, version);
        self.take(effects);
        response
    }

    /// EndTxn v3.
    fn end(&mut self, p: &Producer, commit: bool) -> i16 {
        self.end_v(3, p, commit).error_code
    }

    /// Writes every outstanding marker job, as the broker would.
    fn write_markers(&mut self) {
        while !self.markers.is_empty() {
            let job = self.markers.remove(0);
            let effects = self.coord.markers_written(
                &job.transactional_id,
                job.producer_id,
                job.producer_epoch,
                self.now,
            );
            assert_eq!(effects.records.len(), 1, "{job:?} completes");
            self.take(effects);
        }
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let effects = self.coord.tick(self.now);
        self.take(effects);
    }

    fn describe(&self, ids: &[&str]) -> DescribeTransactionsResponse {
        let mut request = DescribeTransactionsRequest::default();
        request.transactional_ids = ids.iter().map(|id| s(id).into()).collect();
        let owns = |id: &str| !id.starts_with("elsewhere");
        let response = self.coord.describe_transactions(&request, &owns);
        assert_encodes(&response, 0);
        response
    }

    fn list(
        &self,
        version: i16,
        states: &[&str],
        pids: &[i64],
        duration_ms: i64,
    ) -> ListTransactionsResponse {
        let mut request = ListTransactionsRequest::default();
        request.state_filters = states.iter().map(|x| s(x)).collect();
        request.producer_id_filters = pids.iter().map(|p| (*p).into()).collect();
        request.duration_filter = duration_ms;
        let response = self.coord.list_transactions(version, &request, self.now);
        assert_encodes(&response, version);
        response
    }

    /// Loads a state for `id` as if replayed from the log.
    fn load(&mut self, id: &str, meta: &TxnMetadata) {
        let record = TxnRecord::state(id, meta);
        self.coord.replay(&record).unwrap();
        self.log.push(record);
        self.check();
    }
}

fn flatten(response: &AddPartitionsToTxnResponse) -> Vec<((String, i32), i16)> {
    response
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| (tp(&t.name, p.partition_index), p.partition_error_code))
        })
        .collect()
}

fn partitions(h: &Harness, id: &str) -> Vec<(String, i32)> {
    h.meta(id).partitions.into_iter().collect()
}

// ---- InitProducerId ----

#[test]
fn idempotent_producers_get_a_fresh_id_and_no_state() {
    for version in 0..=5 {
        let mut h = Harness::new();
        let response = h.init_with(version, None, 0, None);
        assert_eq!(response.error_code, NONE, "v{version}");
        assert_eq!(*response.producer_id, FIRST_PID);
        assert_eq!(response.producer_epoch, 0);
        assert!(h.log.is_empty(), "nothing stored");
        assert_eq!(h.coord.next_deadline_ms(), None);
    }
}

#[test]
fn a_new_id_starts_at_epoch_zero_and_each_init_bumps_it() {
    for version in 0..=5 {
        let mut h = Harness::new();
        let response = h.init_with(version, Some("t"), TIMEOUT_MS, None);
        assert_eq!(response.error_code, NONE);
        assert_eq!(
            (*response.producer_id, response.producer_epoch),
            (FIRST_PID, 0)
        );
        assert_eq!(h.state("t"), Some(TxnState::Empty));
        assert_eq!(h.last_records, 1);
        for epoch in 1..4 {
            let response = h.init_with(version, Some("t"), TIMEOUT_MS, None);
            assert_eq!(response.error_code, NONE);
            assert_eq!(
                (*response.producer_id, response.producer_epoch),
                (FIRST_PID, epoch),
                "v{version}: same producer id, next epoch"
            );
            assert_eq!(h.last_records, 1);
        }
        let meta = h.meta("t");
        assert_eq!(meta.last_producer_epoch, NO_PRODUCER_EPOCH);
        assert_eq!(meta.last_producer_id, FIRST_PID);
    }
}

#[test]
fn init_rejects_bad_requests() {
    let mut h = Harness::new();
    // (version, id, timeout, expected producer, error)
    type Case<'a> = (i16, Option<&'a str>, i32, Option<(i64, i16)>, ResponseError);
    let cases: &[Case] = &[
        (4, Some("t"), 0, None, InvalidTransactionTimeout),
        (4, Some("t"), -5, None, InvalidTransactionTimeout),
        (4, Some("t"), 900_001, None, InvalidTransactionTimeout),
        (4, Some(""), TIMEOUT_MS, None, InvalidRequest),
        (
            4,
            Some("t"),
            TIMEOUT_MS,
            Some((7, NO_PRODUCER_EPOCH)),
            InvalidRequest,
        ),
        (
            4,
            Some("t"),
            TIMEOUT_MS,
            Some((NO_PRODUCER_ID, 3)),
            InvalidRequest,
        ),
        (
            3,
            None,
            TIMEOUT_MS,
            Some((NO_PRODUCER_ID, 3)),
            InvalidRequest,
        ),
    ];
    for (version, id, timeout, expected, error) in cases {
        let response = h.init_with(*version, *id, *timeout, *expected);
        assert_eq!(
            response.error_code,
            code(*error),
            "{version} {id:?} {timeout} {expected:?}"
        );
        assert_eq!(*response.producer_id, NO_PRODUCER_ID);
        assert_eq!(response.producer_epoch, NO_PRODUCER_EPOCH);
    }
    assert!(h.log.is_empty());
    // Before v3 the producer fields do not exist, so they cannot be half set.
    let response = h.init_with(2, Some("t"), 900_000, Some((NO_PRODUCER_ID, 3)));
    assert_eq!(response.error_code, NONE);
}

#[test]
fn init_waits_for_markers_being_written() {
    let mut h = Harness::new();
    for commit in [true, false] {
        let p = h.producer("t");
        assert_eq!(h.add(&p, &[("a", 0)]), NONE);
        assert_eq!(h.end(&p, commit), NONE);
        let logged = h.log.len();
        let response = h.init_with(4, Some("t"), TIMEOUT_MS, None);
        assert_eq!(response.error_code, code(ConcurrentTransactions));
        assert_eq!(h.log.len(), logged, "nothing written");
        h.write_markers();
    }
}

#[test]
fn init_on_an_ongoing_transaction_fences_and_aborts_it() {
    for version in [0, 3, 4, 5] {
        let mut h = Harness::new();
        let old = h.producer("t");
        assert_eq!(h.add(&old, &[("a", 0), ("b", 1)]), NONE);

        let response = h.init_with(version, Some("t"), TIMEOUT_MS, None);
        assert_eq!(
            response.error_code,
            code(ConcurrentTransactions),
            "v{version}"
        );
        assert_eq!(h.state("t"), Some(TxnState::PrepareAbort));
        assert_eq!(
            h.markers,
            vec![MarkerJob {
                transactional_id: "t".into(),
                producer_id: old.pid,
                producer_epoch: old.epoch + 1,
                commit: false,
                partitions: vec![tp("a", 0), tp("b", 1)],
            }],
            "the abort markers carry the bumped epoch"
        );
        assert_eq!(h.meta("t").last_producer_epoch, NO_PRODUCER_EPOCH);

        // The old producer is fenced; the new one waits for the abort.
        assert_eq!(h.add(&old, &[("c", 0)]), code(ProducerFenced));
        assert_eq!(h.end(&old, true), code(ProducerFenced));
        assert_eq!(
            h.end_v(1, &old, true).error_code,
            code(InvalidProducerEpoch)
        );
        let retry = h.init_with(version, Some("t"), TIMEOUT_MS, None);
        assert_eq!(retry.error_code, code(ConcurrentTransactions));
        assert_eq!(h.markers.len(), 1, "no second abort");

        h.write_markers();
        assert_eq!(h.state("t"), Some(TxnState::CompleteAbort));
        let retry = h.init_with(version, Some("t"), TIMEOUT_MS, None);
        assert_eq!(retry.error_code, NONE);
        assert_eq!(
            (*retry.producer_id, retry.producer_epoch),
            (old.pid, old.epoch + 2)
        );
        assert_eq!(h.state("t"), Some(TxnState::Empty));
        assert!(h.meta("t").partitions.is_empty());
    }
}

#[test]
fn kip_360_producers_resume_with_the_next_epoch_and_retries_are_answered_again() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    assert_eq!(h.end(&p, false), NONE);
    h.write_markers();

    // The producer names itself: the epoch goes up and its old one is remembered.
    let bumped = h.init_with(4, Some("t"), TIMEOUT_MS, Some((p.pid, p.epoch)));
    assert_eq!(bumped.error_code, NONE);
    assert_eq!(
        (*bumped.producer_id, bumped.producer_epoch),
        (p.pid, p.epoch + 1)
    );
    assert_eq!(h.meta("t").last_producer_epoch, p.epoch);

    // Its answer was lost: the retry names the old epoch again and gets the same answer.
    for _ in 0..2 {
        let retry = h.init_with(4, Some("t"), TIMEOUT_MS, Some((p.pid, p.epoch)));
        assert_eq!(retry.error_code, NONE);
        assert_eq!(
            (*retry.producer_id, retry.producer_epoch),
            (p.pid, p.epoch + 1)
        );
    }

    // Anything else is fenced: an older epoch, another producer id.
    let cases: &[(i16, (i64, i16), ResponseError)] = &[
        (4, (p.pid, p.epoch + 5), ProducerFenced),
        (4, (p.pid + 1, p.epoch + 1), ProducerFenced),
        (5, (p.pid + 1, p.epoch + 1), ProducerFenced),
        (3, (p.pid + 1, p.epoch + 1), InvalidProducerEpoch),
    ];
    for (version, expected, error) in cases {
        let response = h.init_with(*version, Some("t"), TIMEOUT_MS, Some(*expected));
        assert_eq!(response.error_code, code(*error), "v{version} {expected:?}");
    }
    assert_eq!(h.coord.producer("t"), Some((p.pid, p.epoch + 1)));

    // A producer whose id expired gets a new one, whatever it names.
    let response = h.init_with(4, Some("new"), TIMEOUT_MS, Some((77, 12)));
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.producer_epoch, 0);
    assert_ne!(*response.producer_id, 77);
}

#[test]
fn an_exhausted_epoch_moves_to_a_fresh_producer_id() {
    let mut h = Harness::new();
    let mut meta = TxnMetadata::new(42, TIMEOUT_MS, h.now);
    meta.producer_epoch = i16::MAX - 2;
    h.load("t", &meta);

    let last = h.init_with(4, Some("t"), TIMEOUT_MS, None);
    assert_eq!(
        (*last.producer_id, last.producer_epoch),
        (42, i16::MAX - 1),
        "the last epoch a producer may hold"
    );
    let fresh = h.next_pid;
    let rotated = h.init_with(4, Some("t"), TIMEOUT_MS, None);
    assert_eq!(rotated.error_code, NONE);
    assert_eq!((*rotated.producer_id, rotated.producer_epoch), (fresh, 0));
    let meta = h.meta("t");
    assert_eq!(meta.last_producer_id, 42);
    assert_eq!(meta.last_producer_epoch, NO_PRODUCER_EPOCH);

    // The rotated producer bumps normally, and the old id is fenced.
    let next = h.init_with(4, Some("t"), TIMEOUT_MS, Some((fresh, 0)));
    assert_eq!((*next.producer_id, next.producer_epoch), (fresh, 1));
    let stale = h.init_with(4, Some("t"), TIMEOUT_MS, Some((42, 3)));
    assert_eq!(stale.error_code, code(ProducerFenced));
}

#[test]
fn a_kip_360_rotation_can_be_retried() {
    let mut h = Harness::new();
    let mut meta = TxnMetadata::new(42, TIMEOUT_MS, h.now);
    meta.producer_epoch = i16::MAX - 1;
    h.load("t", &meta);

    let fresh = h.next_pid;
    let rotated = h.init_with(4, Some("t"), TIMEOUT_MS, Some((42, i16::MAX - 1)));
    assert_eq!((*rotated.producer_id, rotated.producer_epoch), (fresh, 0));
    assert_eq!(h.meta("t").last_producer_epoch, i16::MAX - 1);
    for _ in 0..2 {
        let retry = h.init_with(4, Some("t"), TIMEOUT_MS, Some((42, i16::MAX - 1)));
        assert_eq!(retry.error_code, NONE);
        assert_eq!((*retry.producer_id, retry.producer_epoch), (fresh, 0));
    }
    assert_eq!(h.next_pid, fresh + 1, "retries use no new producer id");
    // The old producer id with an epoch that was not exhausted is someone else.
    let stale = h.init_with(4, Some("t"), TIMEOUT_MS, Some((42, 100)));
    assert_eq!(stale.error_code, code(ProducerFenced));
}

#[test]
fn fencing_at_the_last_epoch_uses_the_reserved_one_then_rotates() {
    let mut h = Harness::new();
    let mut meta = TxnMetadata::new(42, TIMEOUT_MS, h.now);
    meta.producer_epoch = i16::MAX - 1;
    h.load("t", &meta);
    let p = Producer {
        id: "t".into(),
        pid: 42,
        epoch: i16::MAX - 1,
    };
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    let response = h.init_with(4, Some("t"), TIMEOUT_MS, None);
    assert_eq!(response.error_code, code(ConcurrentTransactions));
    assert_eq!(h.markers[0].producer_epoch, i16::MAX);
    h.write_markers();
    let fresh = h.next_pid;
    let rotated = h.init_with(4, Some("t"), TIMEOUT_MS, None);
    assert_eq!((*rotated.producer_id, rotated.producer_epoch), (fresh, 0));
}

#[test]
fn init_takes_the_new_timeout() {
    let mut h = Harness::new();
    h.producer("t");
    h.init_with(4, Some("t"), 5_000, None);
    assert_eq!(h.meta("t").timeout_ms, 5_000);
    let p = h.producer("t");
    assert_eq!(h.meta("t").timeout_ms, TIMEOUT_MS);
    assert_eq!(p.epoch, 2);
}

// ---- AddPartitionsToTxn and AddOffsetsToTxn ----

#[test]
fn adding_partitions_starts_a_transaction_and_only_new_ones_are_written() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.coord.next_deadline_ms(), Some(START_MS + EXPIRATION_MS));
    h.now += 10;
    assert_eq!(h.add(&p, &[("a", 0), ("b", 2), ("a", 1)]), NONE);
    assert_eq!(h.state("t"), Some(TxnState::Ongoing));
    assert_eq!(h.last_records, 1);
    let meta = h.meta("t");
    assert_eq!(meta.txn_start_ms, Some(START_MS + 10));
    assert_eq!(
        h.coord.next_deadline_ms(),
        Some(START_MS + 10 + i64::from(TIMEOUT_MS) + 1)
    );

    h.now += 10;
    assert_eq!(h.add(&p, &[("a", 1), ("b", 2)]), NONE);
    assert_eq!(h.last_records, 0, "nothing new");
    assert_eq!(h.add(&p, &[("a", 1), ("c", 0)]), NONE);
    assert_eq!(h.last_records, 1);
    assert_eq!(
        partitions(&h, "t"),
        vec![tp("a", 0), tp("a", 1), tp("b", 2), tp("c", 0)]
    );
    let meta = h.meta("t");
    assert_eq!(meta.txn_start_ms, Some(START_MS + 10), "the start stays");
    assert_eq!(meta.last_update_ms, START_MS + 20);

    assert_eq!(h.add_offsets_v(3, &p, 7), NONE);
    assert_eq!(h.last_records, 1);
    assert!(partitions(&h, "t").contains(&tp("__consumer_offsets", 7)));
    assert_eq!(h.add_offsets_v(3, &p, 7), NONE);
    assert_eq!(h.last_records, 0);
}

#[test]
fn adding_nothing_to_an_idle_id_changes_nothing() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add_v(3, &p, &[]), vec![]);
    assert_eq!(h.last_records, 0);
    assert_eq!(h.state("t"), Some(TxnState::Empty));
}

#[test]
fn add_partitions_answers_every_partition_with_the_same_error() {
    let mut h = Harness::new();
    h.producer("t");
    let q = h.producer("other");
    let p = h.producer("t");
    let stale = p.with_epoch(p.epoch - 1);
    let newer = p.with_epoch(p.epoch + 1);
    let unknown = Producer {
        id: "nobody".into(),
        ..p.clone()
    };
    let wrong_pid = Producer {
        pid: q.pid,
        ..p.clone()
    };
    let empty_id = Producer {
        id: String::new(),
        ..p.clone()
    };
    // (version, producer, error)
    let cases: &[(i16, &Producer, ResponseError)] = &[
        (3, &unknown, InvalidProducerIdMapping),
        (3, &wrong_pid, InvalidProducerIdMapping),
        (3, &stale, ProducerFenced),
        (2, &stale, ProducerFenced),
        (1, &stale, InvalidProducerEpoch),
        (0, &stale, InvalidProducerEpoch),
        (3, &newer, ProducerFenced),
        (3, &empty_id, InvalidRequest),
    ];
    for (version, producer, error) in cases {
        let results = h.add_v(*version, producer, &[("a", 0), ("b", 0)]);
        assert_eq!(
            results,
            vec![(tp("a", 0), code(*error)), (tp("b", 0), code(*error))],
            "v{version} {producer:?}"
        );
        assert_eq!(h.last_records, 0);
    }
    assert_eq!(h.state("t"), Some(TxnState::Empty));

    // While markers are written, partitions wait.
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    assert_eq!(h.end(&p, true), NONE);
    assert_eq!(h.add(&p, &[("b", 0)]), code(ConcurrentTransactions));
    assert_eq!(h.add_offsets_v(3, &p, 1), code(ConcurrentTransactions));
    h.write_markers();
    assert_eq!(h.add(&p, &[("b", 0)]), NONE);
}

#[test]
fn a_missing_partition_fails_the_whole_request() {
    for version in 0..=3 {
        let mut h = Harness::new();
        let p = h.producer("t");
        let results = h.add_v(version, &p, &[("a", 0), ("missing", 3), ("b", 1)]);
        assert_eq!(
            results,
            vec![
                (tp("a", 0), code(OperationNotAttempted)),
                (tp("b", 1), code(OperationNotAttempted)),
                (tp("missing", 3), code(UnknownTopicOrPartition)),
            ]
        );
        assert_eq!(h.state("t"), Some(TxnState::Empty));
        assert_eq!(h.last_records, 0);
    }
}

#[test]
fn add_partitions_from_brokers_is_not_supported() {
    for version in [4, 5] {
        let mut h = Harness::new();
        let mut request = AddPartitionsToTxnRequest::default();
        request.v3_and_below_transactional_id = s("t").into();
        let (response, effects) =
            h.coord
                .add_partitions(version, &request, &|_: &str, _: i32| true, h.now);
        assert_eq!(response.error_code, code(UnsupportedVersion));
        assert!(effects.is_empty());
        assert_encodes(&response, version);
    }
}

#[test]
fn add_offsets_maps_producer_fenced_for_old_clients() {
    let mut h = Harness::new();
    h.producer("t");
    let p = h.producer("t");
    let stale = p.with_epoch(p.epoch - 1);
    for (version, error) in [
        (0, InvalidProducerEpoch),
        (1, InvalidProducerEpoch),
        (2, ProducerFenced),
        (4, ProducerFenced),
    ] {
        assert_eq!(
            h.add_offsets_v(version, &stale, 3),
            code(error),
            "v{version}"
        );
    }
    let unknown = Producer {
        id: "nobody".into(),
        ..p.clone()
    };
    assert_eq!(
        h.add_offsets_v(3, &unknown, 3),
        code(InvalidProducerIdMapping)
    );
    assert_eq!(h.state("t"), Some(TxnState::Empty));
}

// ---- EndTxn and markers ----

#[test]
fn commit_and_abort_go_through_prepare_to_complete() {
    for commit in [true, false] {
        let mut h = Harness::new();
        let p = h.producer("t");
        assert_eq!(h.add(&p, &[("b", 1), ("a", 0)]), NONE);
        assert_eq!(h.add_offsets_v(3, &p, 4), NONE);
        h.now += 5;
        assert_eq!(h.end(&p, commit), NONE);
        let prepare = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        assert_eq!(h.state("t"), Some(prepare));
        assert_eq!(h.last_records, 1);
        assert_eq!(
            h.markers,
            vec![MarkerJob {
                transactional_id: "t".into(),
                producer_id: p.pid,
                producer_epoch: p.epoch,
                commit,
                partitions: vec![tp("__consumer_offsets", 4), tp("a", 0), tp("b", 1)],
            }]
        );
        assert_eq!(
            h.coord.next_deadline_ms(),
            None,
            "no deadline while marking"
        );

        // Retries while the markers are written.
        assert_eq!(h.end(&p, commit), code(ConcurrentTransactions));
        assert_eq!(h.end(&p, !commit), code(InvalidTxnState));
        assert_eq!(h.markers.len(), 1);

        h.now += 5;
        h.write_markers();
        let complete = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        let meta = h.meta("t");
        assert_eq!(meta.state, complete);
        assert!(meta.partitions.is_empty());
        assert_eq!(
            meta.txn_start_ms,
            Some(START_MS),
            "kept for DescribeTransactions"
        );
        assert_eq!(meta.last_update_ms, START_MS + 10);
        assert_eq!(
            h.coord.next_deadline_ms(),
            Some(START_MS + 10 + EXPIRATION_MS)
        );

        // Retries after completion.
        assert_eq!(h.end(&p, commit), NONE);
        assert_eq!(h.last_records, 0);
        assert_eq!(h.end(&p, !commit), code(InvalidTxnState));

        // The next transaction starts afresh.
        h.now += 5;
        assert_eq!(h.add(&p, &[("c", 0)]), NONE);
        let meta = h.meta("t");
        assert_eq!(meta.state, TxnState::Ongoing);
        assert_eq!(meta.txn_start_ms, Some(START_MS + 15));
        assert_eq!(partitions(&h, "t"), vec![tp("c", 0)]);
    }
}

#[test]
fn end_txn_errors() {
    let mut h = Harness::new();
    h.producer("t");
    let p = h.producer("t");
    let q = h.producer("other");
    let stale = p.with_epoch(p.epoch - 1);
    let wrong_pid = Producer {
        pid: q.pid,
        ..p.clone()
    };
    let unknown = Producer {
        id: "nobody".into(),
        ..p.clone()
    };
    let empty_id = Producer {
        id: String::new(),
        ..p.clone()
    };
    let cases: &[(i16, &Producer, ResponseError)] = &[
        (3, &p, InvalidTxnState),
        (3, &unknown, InvalidProducerIdMapping),
        (3, &wrong_pid, InvalidProducerIdMapping),
        (3, &empty_id, InvalidRequest),
        (0, &stale, InvalidProducerEpoch),
        (1, &stale, InvalidProducerEpoch),
        (2, &stale, ProducerFenced),
        (4, &stale, ProducerFenced),
    ];
    for (version, producer, error) in cases {
        for commit in [true, false] {
            let response = h.end_v(*version, producer, commit);
            assert_eq!(response.error_code, code(*error), "v{version} {producer:?}");
            assert_eq!(h.last_records, 0);
        }
    }
}

#[test]
fn end_txn_v5_reports_the_producer() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    let response = h.end_v(5, &p, true);
    assert_eq!(response.error_code, NONE);
    assert_eq!(
        (*response.producer_id, response.producer_epoch),
        (p.pid, p.epoch)
    );
    let response = h.end_v(5, &p, false);
    assert_eq!(response.error_code, code(InvalidTxnState));
    assert_eq!(
        (*response.producer_id, response.producer_epoch),
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH)
    );
}

#[test]
fn a_transaction_without_partitions_completes_at_once() {
    for commit in [true, false] {
        let mut h = Harness::new();
        let p = h.producer("t");
        let mut meta = h.meta("t");
        meta.state = TxnState::Ongoing;
        meta.txn_start_ms = Some(h.now);
        h.load("t", &meta);
        assert_eq!(h.end(&p, commit), NONE);
        let expected = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        assert_eq!(h.state("t"), Some(expected));
        assert!(h.markers.is_empty());
        assert_eq!(h.last_records, 1);
    }
}

#[test]
fn markers_written_for_another_producer_or_state_is_ignored() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    let cases: &[(&str, i64, i16)] = &[("t", p.pid, p.epoch), ("nobody", p.pid, p.epoch)];
    for (id, pid, epoch) in cases {
        let effects = h.coord.markers_written(id, *pid, *epoch, h.now);
        assert!(effects.is_empty(), "Ongoing is not waiting for markers");
    }
    assert_eq!(h.end(&p, true), NONE);
    for (pid, epoch) in [
        (p.pid, p.epoch - 1),
        (p.pid, p.epoch + 1),
        (p.pid + 1, p.epoch),
    ] {
        let effects = h.coord.markers_written("t", pid, epoch, h.now);
        assert!(effects.is_empty(), "{pid} {epoch}");
    }
    assert_eq!(h.state("t"), Some(TxnState::PrepareCommit));
    h.write_markers();
    let effects = h.coord.markers_written("t", p.pid, p.epoch, h.now);
    assert!(effects.is_empty(), "already complete");
}

// ---- Timeouts and expiry ----

#[test]
fn a_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let mut h = Harness::new();
    let p = h.producer("t");
    h.advance(100);
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    h.advance(1_000);
    assert_eq!(
        h.add(&p, &[("b", 0)]),
        NONE,
        "adding does not extend the timeout"
    );
    let started = START_MS + 100;
    let deadline = started + i64::from(TIMEOUT_MS) + 1;
    assert_eq!(h.coord.next_deadline_ms(), Some(deadline));

    h.advance(deadline - 1 - h.now);
    assert_eq!(
        h.state("t"),
        Some(TxnState::Ongoing),
        "start + timeout is not past"
    );
    h.advance(1);
    assert_eq!(h.state("t"), Some(TxnState::PrepareAbort));
    assert_eq!(
        h.markers,
        vec![MarkerJob {
            transactional_id: "t".into(),
            producer_id: p.pid,
            producer_epoch: p.epoch + 1,
            commit: false,
            partitions: vec![tp("a", 0), tp("b", 0)],
        }]
    );
    assert_eq!(h.last_records, 1);

    // The zombie producer is fenced, before and after the markers.
    assert_eq!(h.end(&p, true), code(ProducerFenced));
    h.write_markers();
    assert_eq!(h.state("t"), Some(TxnState::CompleteAbort));
    assert_eq!(h.end(&p, true), code(ProducerFenced));
    assert_eq!(h.add(&p, &[("a", 0)]), code(ProducerFenced));
    let recovered = h.init_with(4, Some("t"), TIMEOUT_MS, Some((p.pid, p.epoch)));
    assert_eq!(
        recovered.error_code,
        code(ProducerFenced),
        "as Kafka, without KIP-890"
    );
    let next = h.producer("t");
    assert_eq!(next.epoch, p.epoch + 2);
}

#[test]
fn a_timed_out_transaction_is_aborted_once() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    h.advance(i64::from(TIMEOUT_MS) + 1);
    assert_eq!(h.markers.len(), 1);
    for _ in 0..3 {
        h.advance(i64::from(TIMEOUT_MS) * 10);
        assert_eq!(h.last_records, 0);
    }
    assert_eq!(h.markers.len(), 1);
    assert_eq!(h.state("t"), Some(TxnState::PrepareAbort));
}

#[test]
fn idle_ids_expire_and_come_back_with_a_new_producer_id() {
    let mut h = Harness::new();
    let p = h.producer("idle");
    let done = h.producer("done");
    assert_eq!(h.add(&done, &[("a", 0)]), NONE);
    assert_eq!(h.end(&done, true), NONE);
    h.write_markers();
    let busy = h.producer("busy");
    h.advance(EXPIRATION_MS - 1);
    assert_eq!(h.add(&busy, &[("a", 0)]), NONE);
    // An ongoing transaction times out rather than expiring; it then waits for markers.
    h.advance(1);
    let expired: Vec<_> = h.log[h.log.len() - h.last_records..]
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| r.transactional_id().unwrap())
        .collect();
    assert_eq!(expired, vec!["done".to_string(), "idle".to_string()]);
    assert_eq!(h.state("idle"), None);
    assert_eq!(h.state("done"), None);
    assert_eq!(h.state("busy"), Some(TxnState::Ongoing));
    h.advance(i64::from(TIMEOUT_MS) + 1);
    assert_eq!(h.state("busy"), Some(TxnState::PrepareAbort));
    h.advance(EXPIRATION_MS * 2);
    assert_eq!(
        h.state("busy"),
        Some(TxnState::PrepareAbort),
        "waits for markers"
    );
    h.write_markers();
    h.advance(EXPIRATION_MS);
    assert_eq!(h.state("busy"), None);
    assert_eq!(h.coord.next_deadline_ms(), None);

    // The old producer is unknown; a new InitProducerId gets a new producer id.
    assert_eq!(h.add(&p, &[("a", 0)]), code(InvalidProducerIdMapping));
    let fresh = h.next_pid;
    let again = h.producer("idle");
    assert_eq!((again.pid, again.epoch), (fresh, 0));
}

#[test]
fn activity_postpones_expiry() {
    let mut h = Harness::new();
    h.producer("t");
    h.advance(EXPIRATION_MS - 10);
    h.producer("t");
    h.advance(EXPIRATION_MS - 10);
    assert!(h.state("t").is_some());
    h.advance(10);
    assert_eq!(h.state("t"), None);
}

// ---- Replay, snapshot, unload ----

#[test]
fn replay_restores_every_state_and_resends_pending_markers() {
    let mut h = Harness::new();
    let empty = h.producer("empty");
    let ongoing = h.producer("ongoing");
    assert_eq!(h.add(&ongoing, &[("a", 0)]), NONE);
    let committing = h.producer("committing");
    assert_eq!(h.add(&committing, &[("a", 1), ("b", 0)]), NONE);
    assert_eq!(h.end(&committing, true), NONE);
    let aborting = h.producer("aborting");
    assert_eq!(h.add(&aborting, &[("c", 0)]), NONE);
    assert_eq!(h.end(&aborting, false), NONE);
    // The harness checks replay after every call; check the jobs by hand once.
    let mut fresh = TransactionCoordinator::new(h.coord.config().clone());
    for record in &h.log {
        fresh.replay(record).unwrap();
    }
    let jobs = fresh.pending_markers(|_| true);
    assert_eq!(
        jobs.iter()
            .map(|j| (j.transactional_id.as_str(), j.commit))
            .collect::<Vec<_>>(),
        vec![("aborting", false), ("committing", true)]
    );
    assert_eq!(
        fresh.pending_markers(|id| id.starts_with('c')).len(),
        1,
        "filtered by partition"
    );
    // The restarted coordinator goes on where the old one stopped.
    h.coord = fresh;
    h.write_markers();
    assert_eq!(h.state("committing"), Some(TxnState::CompleteCommit));
    assert_eq!(h.state("aborting"), Some(TxnState::CompleteAbort));
    assert_eq!(h.end(&ongoing, true), NONE);
    assert_eq!(h.add(&empty, &[("z", 0)]), NONE);
}

#[test]
fn an_ongoing_transaction_replayed_after_its_timeout_is_aborted_at_the_next_tick() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add(&p, &[("a", 0)]), NONE);
    let mut fresh = TransactionCoordinator::new(h.coord.config().clone());
    for record in &h.log {
        fresh.replay(record).unwrap();
    }
    h.coord = fresh;
    h.advance(i64::from(TIMEOUT_MS) * 3);
    assert_eq!(h.state("t"), Some(TxnState::PrepareAbort));
    assert_eq!(h.markers[0].producer_epoch, p.epoch + 1);
}

#[test]
fn replay_applies_tombstones_and_rejects_garbage_without_change() {
    let mut h = Harness::new();
    h.producer("a");
    h.producer("b");
    let before = h.coord.snapshot(|_| true);
    let garbage = [
        TxnRecord {
            key: bytes::Bytes::from_static(&[0, 3, 0, 0]),
            value: None,
        },
        TxnRecord {
            key: TxnRecord::tombstone("a").key,
            value: Some(bytes::Bytes::from_static(&[0, 0, 1])),
        },
    ];
    for record in &garbage {
        assert!(h.coord.replay(record).is_err());
    }
    assert_eq!(h.coord.snapshot(|_| true), before);

    h.coord.replay(&TxnRecord::tombstone("a")).unwrap();
    assert_eq!(h.state("a"), None);
    h.coord.replay(&TxnRecord::tombstone("never")).unwrap();
    assert_eq!(h.coord.snapshot(|_| true).len(), 1);
    assert_eq!(
        h.coord.next_deadline_ms(),
        Some(START_MS + EXPIRATION_MS),
        "b's expiry is still scheduled"
    );
}

#[test]
fn snapshot_and_unload_select_ids() {
    let mut h = Harness::new();
    for id in ["a1", "a2", "b1"] {
        let p = h.producer(id);
        assert_eq!(h.add(&p, &[("t", 0)]), NONE);
    }
    let snapshot = h.coord.snapshot(|id| id.starts_with('a'));
    let ids: Vec<_> = snapshot
        .iter()
        .map(|r| r.transactional_id().unwrap())
        .collect();
    assert_eq!(ids, vec!["a1", "a2"]);
    // Replaying the snapshot after the log changes nothing.
    let mut fresh = TransactionCoordinator::new(h.coord.config().clone());
    for record in h.log.iter().chain(&snapshot) {
        fresh.replay(record).unwrap();
    }
    assert_eq!(fresh.snapshot(|_| true), h.coord.snapshot(|_| true));

    assert_eq!(h.coord.unload(|id| id.starts_with('a')), 2);
    assert_eq!(h.state("a1"), None);
    assert_eq!(h.state("b1"), Some(TxnState::Ongoing));
    assert_eq!(h.coord.unload(|id| id.starts_with('a')), 0);
    // The unloaded ids' timeouts are gone with them: only b1 times out.
    let effects = h.coord.tick(h.now + i64::from(TIMEOUT_MS) + 1);
    assert_eq!(effects.markers.len(), 1);
    assert_eq!(effects.markers[0].transactional_id, "b1");
    assert_eq!(
        h.coord.markers_written("a1", 0, 0, h.now),
        TxnEffects::default()
    );
}

// ---- DescribeTransactions, ListTransactions, verification ----

#[test]
fn describe_transactions_reports_state_and_partitions() {
    let mut h = Harness::new();
    h.producer("empty");
    h.advance(7);
    let p = h.producer("ongoing");
    assert_eq!(h.add(&p, &[("b", 1), ("a", 3), ("a", 0)]), NONE);
    let response = h.describe(&["ongoing", "empty", "unknown", "elsewhere-1", ""]);
    let states = &response.transaction_states;
    assert_eq!(states.len(), 5);

    let ongoing = &states[0];
    assert_eq!(ongoing.error_code, NONE);
    assert_eq!(ongoing.transactional_id.as_str(), "ongoing");
    assert_eq!(ongoing.transaction_state.as_str(), "Ongoing");
    assert_eq!(ongoing.transaction_timeout_ms, TIMEOUT_MS);
    assert_eq!(ongoing.transaction_start_time_ms, START_MS + 7);
    assert_eq!(
        (*ongoing.producer_id, ongoing.producer_epoch),
        (p.pid, p.epoch)
    );
    let topics: Vec<(String, Vec<i32>)> = ongoing
        .topics
        .iter()
        .map(|t| (t.topic.as_str().to_owned(), t.partitions.clone()))
        .collect();
    assert_eq!(
        topics,
        vec![("a".to_string(), vec![0, 3]), ("b".to_string(), vec![1])]
    );

    let empty = &states[1];
    assert_eq!(empty.error_code, NONE);
    assert_eq!(empty.transaction_state.as_str(), "Empty");
    assert_eq!(empty.transaction_start_time_ms, -1);
    assert!(empty.topics.is_empty());

    let errors: Vec<(&str, i16)> = states[2..]
        .iter()
        .map(|s| (s.transactional_id.as_str(), s.error_code))
        .collect();
    assert_eq!(
        errors,
        vec![
            ("unknown", code(TransactionalIdNotFound)),
            ("elsewhere-1", code(NotCoordinator)),
            ("", code(InvalidRequest)),
        ]
    );
}

#[test]
fn list_transactions_filters() {
    let mut h = Harness::new();
    let empty = h.producer("empty");
    h.advance(1_000);
    let old = h.producer("old");
    assert_eq!(h.add(&old, &[("a", 0)]), NONE);
    h.advance(1_000);
    let young = h.producer("young");
    assert_eq!(h.add(&young, &[("a", 0)]), NONE);
    assert_eq!(h.end(&young, true), NONE);
    h.advance(500);

    let listed = |r: &ListTransactionsResponse| -> Vec<(String, i64, String)> {
        assert_eq!(r.error_code, NONE);
        r.transaction_states
            .iter()
            .map(|t| {
                (
                    t.transactional_id.as_str().to_owned(),
                    *t.producer_id,
                    t.transaction_state.to_string(),
                )
            })
            .collect()
    };
    let row = |id: &str, p: &Producer, state: &str| (id.to_string(), p.pid, state.to_string());
    let all = vec![
        row("empty", &empty, "Empty"),
        row("old", &old, "Ongoing"),
        row("young", &young, "PrepareCommit"),
    ];
    assert_eq!(listed(&h.list(0, &[], &[], -1)), all);
    assert_eq!(
        listed(&h.list(1, &["Ongoing", "PrepareCommit"], &[], -1)),
        all[1..].to_vec()
    );
    assert_eq!(
        listed(&h.list(1, &[], &[old.pid], -1)),
        vec![all[1].clone()]
    );
    // Running longer than 1 s: the old one, and (as Kafka) ids without a transaction.
    assert_eq!(
        listed(&h.list(1, &[], &[], 1_000)),
        vec![all[0].clone(), all[1].clone()]
    );
    // v0 has no duration filter.
    assert_eq!(listed(&h.list(0, &[], &[], 1_000)), all);
    // Names are exact; unknown ones are reported and match nothing; Dead is known.
    let response = h.list(1, &["ongoing", "Dead", "Bogus"], &[], -1);
    assert_eq!(listed(&response), vec![]);
    let unknown: Vec<String> = response
        .unknown_state_filters
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(unknown, vec!["ongoing".to_string(), "Bogus".to_string()]);

    // v2: no pattern (or an empty one) is no filter; a pattern is not supported.
    assert_eq!(listed(&h.list(2, &[], &[], -1)), all);
    let mut request = ListTransactionsRequest::default();
    request.transactional_id_pattern = Some(s(""));
    assert_eq!(
        h.coord.list_transactions(2, &request, h.now).error_code,
        NONE
    );
    request.transactional_id_pattern = Some(s("o.*"));
    let response = h.coord.list_transactions(2, &request, h.now);
    assert_eq!(response.error_code, code(InvalidRequest));
    assert!(response.transaction_states.is_empty());
}

#[test]
fn verify_partition_checks_the_producer_and_the_transaction() {
    let mut h = Harness::new();
    let p = h.producer("t");
    assert_eq!(h.add_offsets_v(3, &p, 9), NONE);
    let offsets = "__consumer_offsets";
    type Case<'a> = (&'a str, i64, i16, &'a str, i32, Result<(), ResponseError>);
    let cases: &[Case] = &[
        ("t", p.pid, p.epoch, offsets, 9, Ok(())),
        ("t", p.pid, p.epoch, offsets, 8, Err(TransactionAbortable)),
        ("t", p.pid, p.epoch - 1, offsets, 9, Err(ProducerFenced)),
        (
            "t",
            p.pid + 1,
            p.epoch,
            offsets,
            9,
            Err(InvalidProducerIdMapping),
        ),
        (
            "u",
            p.pid,
            p.epoch,
            offsets,
            9,
            Err(InvalidProducerIdMapping),
        ),
    ];
    for (id, pid, epoch, topic, partition, expected) in cases {
        assert_eq!(
            h.coord
                .verify_partition(id, *pid, *epoch, topic, *partition),
            *expected,
            "{id} {pid} {epoch} {topic}-{partition}"
        );
    }
    assert_eq!(h.end(&p, true), NONE);
    assert_eq!(
        h.coord.verify_partition("t", p.pid, p.epoch, offsets, 9),
        Err(ConcurrentTransactions)
    );
}

#[test]
fn many_producers_and_transactions_keep_the_log_and_state_in_step() {
    // A deterministic mix of every operation over a few ids; the harness checks replay
    // and pending markers after each call.
    let mut h = Harness::new();
    let ids = ["p0", "p1", "p2"];
    let mut producers: Vec<Producer> = ids.iter().map(|id| h.producer(id)).collect();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut seen = BTreeSet::new();
    for _ in 0..400 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = (seed % 3) as usize;
        let p = producers[i].clone();
        match (seed >> 8) % 7 {
            0 => {
                let response = h.init_with(4, Some(&p.id), TIMEOUT_MS, None);
                if response.error_code == NONE {
                    producers[i].pid = *response.producer_id;
                    producers[i].epoch = response.producer_epoch;
                }
            }
            1 | 2 => {
                let partition = ((seed >> 16) % 4) as i32;
                h.add(&p, &[("t", partition)]);
            }
            3 => {
                h.add_offsets_v(3, &p, 1);
            }
            4 => {
                h.end(&p, (seed >> 20) & 1 == 0);
            }
            5 => h.write_markers(),
            _ => h.advance(((seed >> 24) % 40_000) as i64),
        }
        if let Some(meta) = h.coord.txns.get(&p.id) {
            assert!(meta.producer_epoch >= p.epoch || meta.producer_id != p.pid);
            seen.insert(meta.state.name());
        }
    }
    assert_eq!(seen.len(), 6, "every state was reached: {seen:?}");
}
