//! Transactions in one partition, on real log files: the last stable offset, what a
//! `read_committed` consumer is given, markers and their fencing, and that all of it is
//! rebuilt from the log after a restart and on a follower that copied the log.

use std::sync::Arc;

use brook_broker::config::BrokerConfig;
use brook_broker::partition::Partition;
use brook_meta::PartitionImage;
use brook_protocol::batch::{BatchIter, Compression};
use brook_protocol::records::{decode_batches, encode_batch_with, ProducerInfo, Record};
use bytes::Bytes;

const NOW: i64 = 1_700_000_000_000;

fn config() -> Arc<brook_broker::config::TopicConfig> {
    let broker = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    Arc::new(broker.topic_config(&Default::default(), brook_broker::config::Dynamic::none()))
}

fn view(leader: i32, replicas: Vec<i32>) -> PartitionImage {
    PartitionImage {
        index: 0,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
        isr: vec![leader],
        replicas,
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

fn open(dir: &std::path::Path, node: i32) -> Partition {
    Partition::open(dir, Arc::from("t"), 0, node, config(), NOW).unwrap()
}

/// A batch of `n` records from `pid` (transactional or only idempotent) at `seq`.
fn batch(pid: i64, seq: i32, n: usize, transactional: bool, tag: &str) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            value: Some(Bytes::from(format!("{tag}{i}"))),
            timestamp_ms: NOW,
            ..Record::default()
        })
        .collect();
    let producer = ProducerInfo {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
        transactional,
    };
    encode_batch_with(&records, Compression::None, producer)
        .unwrap()
        .freeze()
}

/// The values a `read_committed` consumer keeps from `offset`: records up to the last
/// stable offset, minus those of the aborted transactions listed (as a client skips
/// them), control batches left out.
fn committed_values(p: &Partition, offset: i64) -> Vec<String> {
    let read = p.read_committed(offset, 1 << 20, true, -1, true).unwrap();
    let aborted = read
        .aborted
        .expect("read_committed lists aborted transactions");
    let Some(slice) = read.slice else {
        return vec![];
    };
    let bytes = slice.read_bytes().unwrap();
    let mut out = Vec::new();
    for item in BatchIter::new(&bytes) {
        let (h, range) = item.unwrap();
        if h.is_control() {
            continue;
        }
        let in_aborted = aborted.iter().any(|a| {
            a.producer_id == h.producer_id
                && a.first_offset <= h.base_offset
                && h.base_offset < a.last_offset
        });
        if h.is_transactional() && in_aborted {
            continue;
        }
        for r in decode_batches(bytes.slice(range)).unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    out
}

#[test]
fn open_transactions_bound_the_stable_offset_and_aborts_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), 1);
    p.apply_leadership(&view(1, vec![1]), NOW);

    p.append(&batch(10, 0, 2, true, "a"), NOW, None).unwrap(); // 0..=1, txn of 10
    p.append(&batch(-1, -1, 1, false, "plain"), NOW, None)
        .unwrap(); // 2
    p.append(&batch(11, 0, 2, true, "b"), NOW, None).unwrap(); // 3..=4, txn of 11
    assert_eq!(p.offsets().1, 5, "high watermark");
    assert_eq!(
        p.last_stable_offset(),
        0,
        "the oldest open transaction starts at 0"
    );
    assert!(committed_values(&p, 0).is_empty());
    // read_uncommitted sees everything.
    let all = p.read_committed(0, 1 << 20, true, -1, false).unwrap();
    assert!(all.aborted.is_none());
    assert_eq!(all.slice.unwrap().len, {
        let s = p.read(0, 1 << 20, true).unwrap();
        s.len
    });

    let abort = p.write_marker(10, 0, false, 0, NOW).unwrap();
    assert_eq!(abort.base_offset, 5);
    assert_eq!(p.last_stable_offset(), 3, "producer 11 is still open");
    assert_eq!(committed_values(&p, 0), vec!["plain0"]);

    p.write_marker(11, 0, true, 0, NOW).unwrap(); // 6
    assert_eq!(p.last_stable_offset(), 7);
    assert_eq!(committed_values(&p, 0), vec!["plain0", "b0", "b1"]);

    // A marker from an older producer epoch or an older coordinator is refused.
    p.append(&batch(12, 0, 1, true, "c"), NOW, None).unwrap(); // 7
                                                               // The coordinator (epoch 3) fenced the producer: its abort carries epoch 2.
    p.write_marker(12, 2, false, 3, NOW).unwrap();
    assert!(p.write_marker(12, 1, false, 3, NOW).is_err(), "older epoch");
    assert!(
        p.write_marker(12, 2, false, 2, NOW).is_err(),
        "older coordinator"
    );
    assert_eq!(p.last_stable_offset(), p.offsets().1);

    // Everything is rebuilt from the log after a restart.
    let before = committed_values(&p, 0);
    p.close().unwrap();
    let p = open(dir.path(), 1);
    p.apply_leadership(&view(1, vec![1]), NOW);
    assert_eq!(committed_values(&p, 0), before);
    assert_eq!(p.last_stable_offset(), p.offsets().1);
}

#[test]
fn a_restart_keeps_a_transaction_open_and_followers_know_it() {
    let dir = tempfile::tempdir().unwrap();
    let leader_dir = dir.path().join("leader");
    let p = open(&leader_dir, 1);
    p.apply_leadership(&view(1, vec![1]), NOW);
    p.append(&batch(-1, -1, 1, false, "x"), NOW, None).unwrap(); // 0
    p.append(&batch(20, 0, 3, true, "open"), NOW, None).unwrap(); // 1..=3
    p.append(&batch(-1, -1, 1, false, "y"), NOW, None).unwrap(); // 4
    p.close().unwrap();

    let p = open(&leader_dir, 1);
    p.apply_leadership(&view(1, vec![1]), NOW);
    assert_eq!(p.last_stable_offset(), 1, "still open after the restart");
    assert_eq!(committed_values(&p, 0), vec!["x0"]);

    // A follower that copies the log (with the abort marker) knows the same.
    p.write_marker(20, 0, false, 0, NOW).unwrap(); // 5
    let log = p.read(0, 1 << 20, true).unwrap().read_bytes().unwrap();
    let follower = open(&dir.path().join("follower"), 2);
    follower.apply_leadership(&view(1, vec![1, 2]), NOW);
    follower.append_replicated(0, &log, 6, 0, NOW).unwrap();
    // It becomes the leader: the aborted transaction is skipped there too.
    let mut promoted = view(2, vec![1, 2]);
    promoted.leader_epoch = 1;
    follower.apply_leadership(&promoted, NOW);
    assert_eq!(follower.last_stable_offset(), 6);
    assert_eq!(committed_values(&follower, 0), vec!["x0", "y0"]);
}
