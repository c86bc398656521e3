//! The log cleaner against a model: random keys, tombstones and transactions in; the
//! records a reader sees afterwards keep every key's last visible value.

use std::collections::BTreeMap;
use std::fs;

use brook_protocol::batch::Compression;
use brook_protocol::records::{
    decode_batches, encode_batch_with, encode_marker, ProducerInfo, Record,
};
use bytes::Bytes;

use super::*;
use crate::clean::CleanerConfig;

fn keyed(key: &str, value: Option<String>, timestamp_ms: i64) -> Record {
    Record {
        key: Some(Bytes::from(key.to_string())),
        value: value.map(Bytes::from),
        headers: vec![],
        timestamp_ms,
    }
}

fn next_random(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

/// What a reader must still see: key -> (offset, value) of its last visible record.
type Model = BTreeMap<String, (i64, Option<String>)>;

struct Writer {
    model: Model,
    /// Records of the open transaction of producer 7, not in the model yet.
    open_txn: Vec<(String, i64, Option<String>)>,
}

impl Writer {
    fn append(
        &mut self,
        log: &mut Log,
        records: Vec<Record>,
        producer: ProducerInfo,
        codec: Compression,
    ) {
        let first = log.log_end_offset();
        let batch = encode_batch_with(&records, codec, producer).unwrap();
        log.append(&batch, 0, None, NOW_MS).unwrap();
        for (i, r) in records.iter().enumerate() {
            let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let value = r
                .value
                .as_ref()
                .map(|v| String::from_utf8(v.to_vec()).unwrap());
            let offset = first + i as i64;
            if producer.transactional {
                self.open_txn.push((key, offset, value));
            } else {
                self.model.insert(key, (offset, value));
            }
        }
    }

    fn end_txn(&mut self, log: &mut Log, commit: bool) {
        let marker = encode_marker(7, 0, commit, 0, NOW_MS).unwrap();
        log.append(&marker, 0, None, NOW_MS).unwrap();
        for (key, offset, value) in self.open_txn.drain(..) {
            let newer = self.model.get(&key).is_none_or(|(o, _)| *o < offset);
            if commit && newer {
                self.model.insert(key, (offset, value));
            }
        }
    }
}

/// Random keyed writes (some tombstones, some in transactions, mixed codecs).
fn fill(log: &mut Log, seed: u64, batches: usize) -> Writer {
    let mut rng = seed;
    let mut w = Writer {
        model: Model::new(),
        open_txn: Vec::new(),
    };
    let mut sequence = 0;
    for b in 0..batches {
        let n = 1 + next_random(&mut rng) as usize % 4;
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let key = format!("key-{}", next_random(&mut rng) % 40);
                let tombstone = next_random(&mut rng).is_multiple_of(7);
                let value = (!tombstone).then(|| format!("v-{b}-{i}"));
                keyed(&key, value, NOW_MS)
            })
            .collect();
        let codec = [Compression::None, Compression::Lz4, Compression::Zstd][b % 3];
        match next_random(&mut rng) % 10 {
            0 if w.open_txn.is_empty() => {
                let producer = ProducerInfo {
                    producer_id: 7,
                    producer_epoch: 0,
                    base_sequence: sequence,
                    transactional: true,
                };
                sequence += n as i32;
                w.append(log, records, producer, codec);
            }
            1 if !w.open_txn.is_empty() => {
                let commit = next_random(&mut rng).is_multiple_of(2);
                w.end_txn(log, commit);
            }
            _ => w.append(log, records, ProducerInfo::NONE, codec),
        }
    }
    if !w.open_txn.is_empty() {
        w.end_txn(log, false);
    }
    w
}

/// The last record a reader sees for each key (read_committed: aborted ones skipped).
fn visible(log: &Log) -> Model {
    let mut aborted_offsets = std::collections::HashSet::new();
    let mut open: Vec<i64> = Vec::new();
    let mut out = Model::new();
    let mut offset = log.log_start_offset();
    let mut seen: Vec<(String, i64, Option<String>)> = Vec::new();
    loop {
        let slice = log.read(offset, 1 << 20, None, true).unwrap();
        if slice.is_empty() {
            break;
        }
        let bytes = slice.read_bytes().unwrap();
        for item in brook_protocol::batch::BatchIter::new(&bytes) {
            let (header, range) = item.unwrap();
            let batch = &bytes[range];
            if header.is_control() {
                let abort = brook_protocol::batch::control_type(batch)
                    == Ok(brook_protocol::batch::ControlType::Abort);
                if abort {
                    aborted_offsets.extend(open.drain(..));
                } else {
                    open.clear();
                }
                continue;
            }
            for r in decode_batches(Bytes::copy_from_slice(batch)).unwrap() {
                if header.is_transactional() {
                    open.push(r.offset);
                }
                let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                seen.push((key, r.offset, value));
            }
        }
        offset = slice.next_offset_hint;
    }
    for (key, offset, value) in seen {
        if !aborted_offsets.contains(&offset) {
            out.insert(key, (offset, value));
        }
    }
    out
}

fn clean_config() -> CleanerConfig {
    CleanerConfig {
        min_cleanable_ratio: 0.0,
        ..CleanerConfig::default()
    }
}

fn clean(log: &mut Log, config: &CleanerConfig, now_ms: i64) -> Option<crate::CleanStats> {
    let job = log.plan_clean(i64::MAX, config, now_ms)?;
    let cleaned = job.run().unwrap();
    Some(log.install_clean(cleaned).unwrap())
}

fn records_in_log(log: &Log) -> usize {
    let mut n = 0;
    let mut offset = log.log_start_offset();
    loop {
        let slice = log.read(offset, 1 << 20, None, true).unwrap();
        if slice.is_empty() {
            return n;
        }
        n += decode_batches(slice.read_bytes().unwrap()).unwrap().len();
        offset = slice.next_offset_hint;
    }
}

#[test]
fn cleaning_keeps_every_keys_last_visible_record_and_the_offsets() {
    for seed in 0..40u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        let w = fill(&mut log, seed, 300);
        let before_end = log.log_end_offset();
        let before = visible(&log);
        let records_before = records_in_log(&log);
        let stats = clean(&mut log, &clean_config(), NOW_MS).expect("a pass");
        assert!(stats.records_removed > 0, "seed {seed}");
        assert_eq!(log.log_end_offset(), before_end, "seed {seed}");
        let after = visible(&log);
        // Keys whose last record sits in the active segment are not touched; the
        // rest keep exactly their last visible record (tombstones too: they are young).
        assert_eq!(after, before, "seed {seed}");
        assert_eq!(after, w.model, "seed {seed}");
        assert!(records_in_log(&log) < records_before, "seed {seed}");
        // A second pass finds nothing new to do; reopening (clean or not) reads the same.
        assert!(
            clean(&mut log, &clean_config(), NOW_MS).is_none(),
            "seed {seed}"
        );
        if seed.is_multiple_of(2) {
            log.close().unwrap();
        } else {
            drop(log);
        }
        // `brook check-log` finds a compacted log consistent (CRCs, order, indexes).
        let report = crate::check_dir(dir.path()).unwrap();
        assert!(report.is_ok(), "seed {seed}: {:?}", report.problems);
        let mut log = open(dir.path(), small_config());
        assert_eq!(visible(&log), w.model, "seed {seed}: reopened");
        assert_eq!(log.log_end_offset(), before_end, "seed {seed}");
        // Past every delete horizon a pass removes the cleaned part's tombstones and
        // the markers of transactions with nothing left; every live value stays.
        let later = NOW_MS + 2 * 86_400_000;
        let horizon = CleanerConfig {
            max_compaction_lag_ms: 0,
            ..clean_config()
        };
        clean(&mut log, &horizon, later).expect("a pass");
        let cleaned_end = log.cleaner_checkpoint();
        let live: Model = w
            .model
            .iter()
            .filter(|(_, (offset, v))| v.is_some() || *offset >= cleaned_end)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(visible(&log), live, "seed {seed}: past the horizons");
        assert!(
            markers_in_log(&log) <= 1 + open_txns_in(&log),
            "seed {seed}: {} markers left",
            markers_in_log(&log)
        );
        drop(log);
        let report = crate::check_dir(dir.path()).unwrap();
        assert!(report.is_ok(), "seed {seed}: {:?}", report.problems);
        let log = open(dir.path(), small_config());
        assert_eq!(
            visible(&log),
            live,
            "seed {seed}: reopened after the horizons"
        );
    }
}

/// Control batches in the log.
fn markers_in_log(log: &Log) -> usize {
    batches_in_log(log)
        .iter()
        .filter(|(h, _)| h.is_control())
        .count()
}

/// Transactional data batches with records in the log (each may hold its marker).
fn open_txns_in(log: &Log) -> usize {
    batches_in_log(log)
        .iter()
        .filter(|(h, _)| h.is_transactional() && !h.is_control() && h.record_count > 0)
        .count()
}

fn batches_in_log(log: &Log) -> Vec<(brook_protocol::batch::BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    loop {
        let slice = log.read(offset, 1 << 20, None, true).unwrap();
        if slice.is_empty() {
            return out;
        }
        let bytes = slice.read_bytes().unwrap();
        for item in brook_protocol::batch::BatchIter::new(&bytes) {
            let (header, range) = item.unwrap();
            out.push((header, bytes[range].to_vec()));
        }
        offset = slice.next_offset_hint;
    }
}

#[test]
fn markers_get_a_horizon_then_go_once_their_transaction_has_nothing_left() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut w = Writer {
        model: Model::new(),
        open_txn: Vec::new(),
    };
    let txn = |seq| ProducerInfo {
        producer_id: 7,
        producer_epoch: 0,
        base_sequence: seq,
        transactional: true,
    };
    // A committed transaction (keys later overwritten), an aborted one, a committed
    // one whose value stays, then plain writes overwriting the first one's keys.
    let records = |keys: &[&str], v: &str| -> Vec<Record> {
        keys.iter()
            .map(|k| keyed(k, Some(v.to_string()), NOW_MS))
            .collect()
    };
    w.append(
        &mut log,
        records(&["a", "b"], "t1"),
        txn(0),
        Compression::None,
    );
    w.end_txn(&mut log, true);
    w.append(&mut log, records(&["c"], "t2"), txn(2), Compression::Lz4);
    w.end_txn(&mut log, false);
    w.append(&mut log, records(&["d"], "t3"), txn(3), Compression::None);
    w.end_txn(&mut log, true);
    for _ in 0..50 {
        w.append(
            &mut log,
            records(&["a", "b", "e"], "plain"),
            ProducerInfo::NONE,
            Compression::None,
        );
    }
    log.roll_for_test(NOW_MS);
    assert_eq!(markers_in_log(&log), 3);
    let stats = clean(&mut log, &clean_config(), NOW_MS).unwrap();
    assert_eq!(visible(&log), w.model);
    // All three markers stay, stamped with their horizon.
    let markers: Vec<_> = batches_in_log(&log)
        .into_iter()
        .filter(|(h, _)| h.is_control())
        .collect();
    assert_eq!(markers.len(), 3);
    let horizon = NOW_MS + clean_config().delete_retention_ms;
    for (h, bytes) in &markers {
        brook_protocol::batch::verify_crc(bytes).unwrap();
        assert_eq!(h.delete_horizon(), Some(horizon));
    }
    assert_eq!(stats.next_delete_horizon, Some(horizon));
    // Before the horizon nothing is due; after it a pass runs on a clean log and
    // removes the markers of the first two transactions (nothing of theirs is left);
    // the third keeps its marker (its record stays).
    assert!(log
        .plan_clean(i64::MAX, &CleanerConfig::default(), horizon - 1)
        .is_none());
    let strict = CleanerConfig {
        min_cleanable_ratio: 1.0,
        ..CleanerConfig::default()
    };
    clean(&mut log, &strict, horizon).expect("the horizon makes a pass due");
    assert_eq!(visible(&log), w.model);
    assert_eq!(markers_in_log(&log), 1);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(visible(&log), w.model, "reopened");
}

#[test]
fn tombstones_go_once_delete_retention_has_passed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut w = Writer {
        model: Model::new(),
        open_txn: Vec::new(),
    };
    for round in 0..30 {
        for k in 0..10 {
            // Keys 0-4 end deleted, keys 5-9 live.
            let value = (round < 29 || k >= 5).then(|| format!("v{round}-{k}"));
            let records = vec![keyed(&format!("key-{k}"), value, NOW_MS)];
            w.append(&mut log, records, ProducerInfo::NONE, Compression::None);
        }
    }
    log.roll_for_test(NOW_MS);
    // Appends were made at NOW_MS: that is when the segments were last written.
    let now = NOW_MS;
    // Young tombstones stay.
    clean(&mut log, &clean_config(), now).unwrap();
    assert_eq!(visible(&log), w.model);
    // Ten days on, past delete.retention.ms: a pass drops them (the ratio is forced).
    let config = CleanerConfig {
        delete_retention_ms: 86_400_000,
        max_compaction_lag_ms: 0,
        ..clean_config()
    };
    let later = now + 10 * 86_400_000;
    w.append(
        &mut log,
        vec![keyed("key-5", Some("newer".into()), later)],
        ProducerInfo::NONE,
        Compression::None,
    );
    log.roll_for_test(later);
    clean(&mut log, &config, later).unwrap();
    let live: Model = w
        .model
        .iter()
        .filter(|(_, (_, v))| v.is_some())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(live.len(), 5);
    assert_eq!(visible(&log), live, "only the tombstones went");
}

#[test]
fn a_crash_between_renames_or_before_install_loses_no_last_value() {
    for installed in [0usize, 1, 2] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        let w = fill(&mut log, 11, 300);
        let job = log.plan_clean(i64::MAX, &clean_config(), NOW_MS).unwrap();
        let mut cleaned = job.run().unwrap();
        assert!(cleaned.segments.len() > 3);
        // Only the oldest `installed` segments reach their place; the rest stay as
        // temp files, as after a crash mid-way.
        let rest = cleaned.segments.split_off(installed);
        log.install_clean(cleaned).unwrap();
        assert_eq!(visible(&log), w.model, "{installed} installed");
        drop(log);
        for (_, tmp) in &rest {
            assert!(tmp.exists());
        }
        let log = open(dir.path(), small_config());
        for (_, tmp) in &rest {
            assert!(!tmp.exists(), "temp files are swept at open");
        }
        assert_eq!(visible(&log), w.model, "{installed} installed, reopened");
    }
}

#[test]
fn a_damaged_batch_stops_the_pass_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 5, 300);
    let first = log_file(dir.path(), 0);
    let mut bytes = fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    fs::write(&first, &bytes).unwrap();
    let job = log.plan_clean(i64::MAX, &clean_config(), NOW_MS).unwrap();
    let err = job.run().unwrap_err();
    assert!(
        err.to_string().contains("not cleaned") || err.to_string().contains("corrupt"),
        "{err}"
    );
    assert_eq!(
        fs::read(&first).unwrap(),
        bytes,
        "the damaged segment is left as it was"
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("cleaned"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn the_dirty_ratio_and_the_upper_bound_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 9, 300);
    let strict = CleanerConfig {
        min_cleanable_ratio: 1.0,
        ..CleanerConfig::default()
    };
    // Nothing cleaned yet: everything is dirty, the ratio is 1.
    assert!(log.plan_clean(i64::MAX, &strict, NOW_MS).is_some());
    clean(&mut log, &clean_config(), NOW_MS).unwrap();
    assert!(log.plan_clean(i64::MAX, &strict, NOW_MS).is_none());
    // Nothing at or past the bound is ever planned.
    let bound = log.cleaner_checkpoint();
    assert!(log.plan_clean(bound, &clean_config(), NOW_MS).is_none());
}

#[test]
fn segments_with_nothing_to_remove_are_left_in_place() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut w = Writer {
        model: Model::new(),
        open_txn: Vec::new(),
    };
    // Every key written once: a pass has nothing to remove anywhere.
    for i in 0..200 {
        let records = vec![keyed(&format!("unique-{i}"), Some("v".repeat(40)), NOW_MS)];
        w.append(&mut log, records, ProducerInfo::NONE, Compression::None);
    }
    log.roll_for_test(NOW_MS);
    let first = log_file(dir.path(), 0);
    let inode = fs::metadata(&first).unwrap().ino();
    let stats = clean(&mut log, &clean_config(), NOW_MS).expect("a pass");
    assert_eq!((stats.segments, stats.records_removed), (0, 0));
    assert_eq!(fs::metadata(&first).unwrap().ino(), inode, "not rewritten");
    assert_eq!(
        log.cleaner_checkpoint(),
        log.log_end_offset(),
        "yet all of it is clean"
    );
    assert_eq!(visible(&log), w.model);
}

#[test]
fn truncation_below_the_cleaner_checkpoint_lowers_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    fill(&mut log, 3, 200);
    clean(&mut log, &clean_config(), NOW_MS).unwrap();
    let checkpoint = log.cleaner_checkpoint();
    assert!(checkpoint > 10);
    log.truncate_to(checkpoint - 5).unwrap();
    assert!(log.cleaner_checkpoint() <= checkpoint - 5);
    drop(log);
    let log = open(dir.path(), small_config());
    assert!(log.cleaner_checkpoint() <= checkpoint - 5, "durably");
}

/// Recovery that checks a compacted log batch by batch (no recovery point, as after a
/// crash that left it unflushed) keeps every batch: the cleaner leaves no offset gap
/// between batches for the scan to take for damage.
#[test]
fn recovery_keeps_a_compacted_segment_whole() {
    for seed in [1u64, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        let w = fill(&mut log, seed, 300);
        let end = log.log_end_offset();
        let before = batches_in_log(&log).len();
        clean(&mut log, &clean_config(), NOW_MS).expect("a pass");
        let batches = batches_in_log(&log);
        assert!(batches.len() < before, "seed {seed}: batches went");
        // The cleaner keeps offsets dense from batch to batch (a kept batch spans the
        // offsets of the records removed before it), which recovery's scan relies on.
        assert!(
            batches
                .windows(2)
                .all(|w| w[0].0.last_offset() + 1 == w[1].0.base_offset),
            "seed {seed}: offsets dense across batches"
        );
        drop(log);
        std::fs::remove_file(dir.path().join(crate::checkpoint::RECOVERY_POINT_FILE)).ok();
        let log = open(dir.path(), small_config());
        assert!(
            log.recovered_segments() > 1,
            "seed {seed}: checked batch by batch"
        );
        assert_eq!(visible(&log), w.model, "seed {seed}");
        assert_eq!(log.log_end_offset(), end, "seed {seed}");
    }
}
