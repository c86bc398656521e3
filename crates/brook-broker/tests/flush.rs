//! The flush policy on real log files: with `flush.messages=1` every append says it owes
//! an fsync (`Appended::sync_due`, never run on the appending thread) and
//! `Partition::sync_appended` makes it durable before it is acknowledged, also when
//! several producers append at once and share fsyncs (group commit), and the bytes on
//! disk are the producers' own.

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_broker::config::BrokerConfig;
use brook_broker::partition::{Partition, SyncFor};
use brook_meta::PartitionImage;
use brook_protocol::batch::{verify_crc, BatchIter, Compression};
use brook_protocol::records::{decode_batches, encode_batch, Record};
use bytes::Bytes;

const NOW: i64 = 1_700_000_000_000;

fn leader(dir: &std::path::Path, overrides: &[(&str, &str)]) -> Partition {
    let broker = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    let overrides: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = Arc::new(broker.topic_config(&overrides, brook_broker::config::Dynamic::none()));
    let p = Partition::open(dir, Arc::from("t"), 0, 1, config, NOW).unwrap();
    p.apply_leadership(
        &PartitionImage {
            index: 0,
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            isr: vec![1],
            replicas: vec![1],
            adding_replicas: vec![],
            removing_replicas: vec![],
        },
        NOW,
    );
    p
}

fn batch(tag: &str, n: usize) -> Bytes {
    let records: Vec<Record> = (0..n)
        .map(|i| Record {
            value: Some(Bytes::from(format!("{tag}-{i}"))),
            timestamp_ms: NOW,
            ..Record::default()
        })
        .collect();
    encode_batch(&records, Compression::None).unwrap().freeze()
}

#[test]
fn concurrent_appends_are_each_fsynced_before_they_return() {
    let dir = tempfile::tempdir().unwrap();
    let p = Arc::new(leader(dir.path(), &[("flush.messages", "1")]));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let p = Arc::clone(&p);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let appended = p.append(&batch(&format!("{t}/{i}"), 3), NOW, None).unwrap();
                    assert!(
                        appended.sync_due,
                        "flush.messages=1 owes an fsync per append"
                    );
                    p.sync_appended(&appended).unwrap();
                    let durable = p.with_log(|log| log.recovery_point());
                    assert!(
                        durable >= appended.next_offset,
                        "acknowledged up to {} but fsynced only below {durable}",
                        appended.next_offset
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (start, end) = p.log_offsets();
    assert_eq!((start, end), (0, 600));
    assert_eq!(p.with_log(|log| log.recovery_point()), 600);

    // Every record is there once, in its producer's order, and every batch on disk
    // carries its offsets with an intact CRC.
    let bytes = p
        .with_log(|log| log.read(0, 1 << 24, None, true))
        .unwrap()
        .read_bytes()
        .unwrap();
    let mut next = 0;
    for item in BatchIter::new(&bytes) {
        let (h, range) = item.unwrap();
        assert_eq!(h.base_offset, next);
        verify_crc(&bytes[range]).unwrap();
        next = h.next_offset();
    }
    let records = decode_batches(bytes).unwrap();
    assert!(records
        .iter()
        .enumerate()
        .all(|(i, r)| r.offset == i as i64));
    let values: Vec<String> = records
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(values.len(), 600);
    for t in 0..4 {
        let mine: Vec<&String> = values
            .iter()
            .filter(|v| v.starts_with(&format!("{t}/")))
            .collect();
        let want: Vec<String> = (0..50)
            .flat_map(|i| (0..3).map(move |r| format!("{t}/{i}-{r}")))
            .collect();
        assert_eq!(mine, want.iter().collect::<Vec<_>>());
    }
}

#[test]
fn by_default_appends_leave_fsync_to_the_tick() {
    let dir = tempfile::tempdir().unwrap();
    let p = leader(dir.path(), &[("flush.ms", "1000")]);
    let appended = p.append(&batch("a", 5), NOW, None).unwrap();
    assert_eq!(appended.next_offset, 5);
    assert!(!appended.sync_due);
    assert_eq!(
        p.with_log(|log| log.recovery_point()),
        0,
        "not fsynced on append"
    );
    p.sync_log(SyncFor::Tick(NOW + 999)).unwrap();
    assert_eq!(
        p.with_log(|log| log.recovery_point()),
        0,
        "flush.ms not reached"
    );
    p.sync_log(SyncFor::Tick(NOW + 1_000)).unwrap();
    assert_eq!(
        p.with_log(|log| log.recovery_point()),
        5,
        "flush.ms reached"
    );
}
