use brook_protocol::batch::{verify_crc, BatchHeader, Compression};
use brook_protocol::records::decode_batches;

use super::*;
use crate::LogError;

#[test]
fn append_stamps_offsets_epoch_and_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut two_batches = batch_bytes(3, 100, 5);
    two_batches.extend(batch_bytes(2, 200, 5));
    let info = log.append(&two_batches, 7, None, NOW_MS).unwrap();
    let want = AppendInfo {
        base_offset: 0,
        last_offset: 4,
        max_timestamp: 201,
        log_append_time_ms: None,
    };
    assert_eq!(info, want);
    let stamped: Vec<(i64, i32)> = log
        .batch_headers_from(0)
        .unwrap()
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(stamped, [(0, 7), (3, 7)]);
    let on_disk = log
        .read(0, 1 << 20, None, true)
        .unwrap()
        .read_bytes()
        .unwrap();
    assert_eq!(on_disk.len(), two_batches.len());
    let unstamped = BatchHeader::parse(&two_batches).unwrap();
    assert_eq!(
        (unstamped.base_offset, unstamped.partition_leader_epoch),
        (0, -1),
        "the caller's buffer is left as it was"
    );
    let first = unstamped.total_size();
    assert_eq!(
        (&on_disk[16..first], &on_disk[first + 16..]),
        (&two_batches[16..first], &two_batches[first + 16..]),
        "past each batch's stamped prefix, the bytes are the caller's"
    );
    let seen: Vec<(i64, i32)> = crate::appended_headers(&two_batches, &info, 7)
        .map(|(h, _)| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(seen, stamped, "appended_headers tells what was written");

    let batch = batch_bytes(2, 100, 5);
    let info = log.append(&batch, 8, Some(NOW_MS), NOW_MS).unwrap();
    assert_eq!(
        (
            info.base_offset,
            info.max_timestamp,
            info.log_append_time_ms
        ),
        (5, NOW_MS, Some(NOW_MS))
    );
    assert_eq!(
        BatchHeader::parse(&batch).unwrap().max_timestamp,
        101,
        "LogAppendTime stamps a copy, not the caller's buffer"
    );
    let bytes = log
        .read(5, 1 << 20, None, true)
        .unwrap()
        .read_bytes()
        .unwrap();
    verify_crc(&bytes).unwrap();
    let on_disk = BatchHeader::parse(&bytes).unwrap();
    assert!(on_disk.is_log_append_time());
    assert_eq!(on_disk.max_timestamp, NOW_MS);
    assert_eq!(log.log_end_offset(), 7);
}

#[test]
fn one_append_of_more_batches_than_one_pwritev_takes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    let mut many = Vec::new();
    for i in 0..700 {
        many.extend(batch_bytes(1 + i % 3, 100 + i as i64, 5));
    }
    let info = log.append(&many, 3, None, NOW_MS).unwrap();
    let headers = log.batch_headers_from(0).unwrap();
    assert_eq!(headers.len(), 700);
    let mut next = 0;
    for h in &headers {
        assert_eq!((h.base_offset, h.partition_leader_epoch), (next, 3));
        next = h.next_offset();
    }
    assert_eq!(info.last_offset + 1, next);
    let bytes = log
        .read(0, 1 << 24, None, true)
        .unwrap()
        .read_bytes()
        .unwrap();
    assert_eq!(bytes.len(), many.len());
    for item in brook_protocol::batch::BatchIter::new(&bytes) {
        let (_, range) = item.unwrap();
        verify_crc(&bytes[range]).unwrap();
    }
}

#[test]
fn invalid_appends_are_rejected_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_many(&mut log, 1, 2);
    let good = batch_bytes(2, 0, 4);
    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let mut trailing = good.clone();
    trailing.extend_from_slice(&good[..10]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("torn", good[..good.len() - 1].to_vec()),
        ("trailing garbage", trailing),
        ("bad magic", bad_magic),
        ("zeros", vec![0; 100]),
    ];
    for (name, bytes) in cases {
        let result = log.append(&bytes, 0, None, NOW_MS);
        assert!(
            matches!(result, Err(LogError::InvalidBatch(_))),
            "{name}: {result:?}"
        );
        assert_eq!(log.log_end_offset(), 2, "{name}");
    }
    assert_contents(&log, 0, 2);
}

#[test]
fn round_trip_across_segment_rolls() {
    // (segment.bytes, index.interval.bytes, records per batch)
    let cases = [
        (1, 0, 1),
        (500, 0, 3),
        (2_000, 200, 5),
        (4_096, 4_096, 2),
        (1 << 30, 100, 7),
    ];
    for (segment_bytes, index_interval_bytes, per_batch) in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes,
            index_interval_bytes,
            ..small_config()
        };
        let mut log = open(dir.path(), config.clone());
        append_many(&mut log, 150, per_batch);
        let end = 150 * per_batch as i64;
        assert_eq!(log.log_end_offset(), end);
        assert_contents(&log, 0, end);
        let case = format!("{segment_bytes}/{index_interval_bytes}");
        if segment_bytes <= 4_096 {
            assert!(log.segment_count() > 1, "{case}");
        }
        for offset in 0..end {
            let slice = log.read(offset, 1, None, true).unwrap();
            assert!(
                slice.first_offset <= offset && offset < slice.next_offset_hint,
                "{case} offset {offset}: {slice:?}"
            );
            assert_eq!(
                slice.next_offset_hint - slice.first_offset,
                per_batch as i64
            );
        }
        let sizes_match = log.size_bytes()
            == log
                .segment_base_offsets()
                .iter()
                .map(|&b| std::fs::metadata(log_file(dir.path(), b)).unwrap().len())
                .sum::<u64>();
        assert!(sizes_match, "{case}");
        log.close().unwrap();
        let log = open(dir.path(), config);
        assert_contents(&log, 0, end);
    }
}

#[test]
fn read_from_the_middle_of_a_batch_returns_the_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 20, 10);
    for offset in [0, 5, 9, 10, 15, 123, 199] {
        let slice = log.read(offset, 1, None, true).unwrap();
        let batch_start = offset / 10 * 10;
        assert_eq!(
            (slice.first_offset, slice.next_offset_hint),
            (batch_start, batch_start + 10),
            "offset {offset}"
        );
        let records = decode_batches(slice.read_bytes().unwrap()).unwrap();
        assert_eq!(records.first().unwrap().offset, batch_start);
    }
}

/// (offset, max_bytes, max_offset_exclusive, min_one_message) -> (first, next) offsets.
type ReadCase = (i64, usize, Option<i64>, bool, (i64, i64));

#[test]
fn read_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append_many(&mut log, 10, 2); // ten batches: offsets 0-1, 2-3, ...
    let sizes: Vec<usize> = log
        .batch_headers_from(0)
        .unwrap()
        .iter()
        .map(|h| h.total_size())
        .collect();
    let bytes_between = |first: i64, next: i64| -> usize {
        sizes[first as usize / 2..next as usize / 2].iter().sum()
    };
    let cases: &[ReadCase] = &[
        (0, usize::MAX, None, true, (0, 20)),
        (0, bytes_between(0, 6), None, true, (0, 6)),
        (0, bytes_between(0, 6) - 1, None, true, (0, 4)),
        (0, 1, None, true, (0, 2)),
        (0, 1, None, false, (0, 0)),
        (3, bytes_between(2, 6), None, true, (2, 6)),
        (0, usize::MAX, Some(6), true, (0, 6)),
        (0, usize::MAX, Some(7), true, (0, 6)),
        (5, usize::MAX, Some(5), true, (5, 5)),
        (4, usize::MAX, Some(5), true, (4, 4)),
        (0, usize::MAX, Some(100), true, (0, 20)),
        (20, usize::MAX, None, true, (20, 20)),
    ];
    for &(offset, max_bytes, limit, min_one, (first, next)) in cases {
        let slice = log.read(offset, max_bytes, limit, min_one).unwrap();
        let case = format!("read({offset}, {max_bytes}, {limit:?}, {min_one})");
        if first == next {
            assert!(slice.is_empty(), "{case}: {slice:?}");
            continue;
        }
        assert_eq!(
            (slice.first_offset, slice.next_offset_hint),
            (first, next),
            "{case}"
        );
        assert_eq!(slice.len, bytes_between(first, next), "{case}");
        let records = decode_batches(slice.read_bytes().unwrap()).unwrap();
        assert_eq!(records.len() as i64, next - first, "{case}");
    }
}

#[test]
fn reads_outside_the_log_are_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 10, 10);
    log.delete_records_before(30).unwrap();
    for offset in [-1, 0, 29, 101, i64::MAX] {
        let result = log.read(offset, 100, None, true);
        assert!(
            matches!(
                result,
                Err(LogError::OffsetOutOfRange {
                    start: 30,
                    end: 100,
                    ..
                })
            ),
            "{offset}: {result:?}"
        );
    }
    assert!(log.read(30, 100, None, true).is_ok());
    assert!(log.read(100, 100, None, true).unwrap().is_empty());
}

#[test]
fn segments_roll_on_size_time_and_full_index() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: 1_000,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    let batch = batch_at(0, &[1], Compression::None);
    log.append(&batch, 0, None, NOW_MS).unwrap();
    log.tick(NOW_MS + 1_000).unwrap();
    assert_eq!(log.segment_count(), 1, "segment.ms not yet exceeded");
    let batch = batch_at(1, &[2], Compression::None);
    log.append(&batch, 0, None, NOW_MS + 1_001).unwrap();
    assert_eq!(
        log.segment_base_offsets(),
        [0, 1],
        "rolled before the append"
    );
    log.tick(NOW_MS + 2_002).unwrap();
    assert_eq!(
        log.segment_base_offsets(),
        [0, 1, 2],
        "tick rolls an old segment"
    );
    log.tick(NOW_MS + 10_000).unwrap();
    assert_eq!(log.segment_count(), 3, "an empty segment never rolls");

    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 0,
        segment_index_bytes: 24, // two time-index entries
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config);
    append_many(&mut log, 9, 1);
    assert_eq!(log.segment_base_offsets(), [0, 2, 4, 6, 8]);
    assert_contents(&log, 0, 9);

    log.set_config(LogConfig {
        segment_bytes: 1,
        ..LogConfig::default()
    });
    append_many(&mut log, 3, 1);
    assert_eq!(
        log.segment_base_offsets(),
        [0, 2, 4, 6, 8, 9, 10, 11],
        "set_config applies"
    );
}

#[test]
fn read_slice_outlives_deleted_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 50, 5);
    let slice = log.read(0, 1 << 20, None, true).unwrap();
    log.delete_records_before(log.log_end_offset()).unwrap();
    assert!(!log_file(dir.path(), 0).exists());
    let records = decode_batches(slice.read_bytes().unwrap()).unwrap();
    assert_eq!(records[0].value, Some(value_for(0)));
}

#[test]
fn batch_headers_from_any_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 80, 5);
    assert!(log.segment_count() > 3);
    for (from, first_base) in [(0, 0), (7, 5), (100, 100), (399, 395), (400, -1)] {
        let headers = log.batch_headers_from(from).unwrap();
        let bases: Vec<i64> = headers.iter().map(|h| h.base_offset).collect();
        let want: Vec<i64> = if first_base < 0 {
            vec![]
        } else {
            (first_base..400).step_by(5).collect()
        };
        assert_eq!(bases, want, "from {from}");
    }
}

#[test]
fn flush_policies_move_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let every_append = LogConfig {
        flush_interval_messages: 1,
        ..small_config()
    };
    let mut log = open(dir.path(), every_append);
    for _ in 0..30 {
        append_many(&mut log, 1, 3);
        assert!(
            log.flush_messages_due(),
            "append leaves the fsync to its caller"
        );
        assert_eq!(log.sync_wanted(NOW_MS), Some(true));
        log.sync_if_wanted(NOW_MS).unwrap();
        assert_eq!(log.recovery_point(), log.log_end_offset());
        assert!(!log.flush_messages_due());
    }

    let dir = tempfile::tempdir().unwrap();
    let by_time = LogConfig {
        flush_interval_ms: 1_000,
        ..small_config()
    };
    let mut log = open(dir.path(), by_time);
    append_many(&mut log, 3, 3);
    assert_eq!(log.recovery_point(), 0);
    log.sync_if_wanted(NOW_MS + 999).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.sync_if_wanted(NOW_MS + 1_000).unwrap();
    assert_eq!(log.recovery_point(), 9);

    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 30, 3);
    assert!(log.segment_count() > 1);
    assert_eq!(log.recovery_point(), 0, "never flushed by policy");
    assert_eq!(log.sync_wanted(NOW_MS), Some(false), "sealed segments only");
    log.sync_if_wanted(NOW_MS).unwrap();
    let active_base = *log.segment_base_offsets().last().unwrap();
    assert_eq!(
        log.recovery_point(),
        active_base,
        "rolled segments are fsynced when asked"
    );
    assert_eq!(log.sync_wanted(NOW_MS), None);
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 90);
}

#[test]
fn a_sync_taken_out_covers_only_what_was_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 4, 3);
    let job = log.take_sync(true, NOW_MS).unwrap();
    // Appends go on while the job runs without the log.
    append_many(&mut log, 2, 3);
    let outcome = job.run();
    log.finish_sync(job, outcome).unwrap();
    assert_eq!(
        (log.recovery_point(), log.log_end_offset()),
        (12, 18),
        "up to the end when the job was taken"
    );

    // A truncation while a job is out: the job must not raise the recovery point
    // over offsets written after the truncation.
    let job = log.take_sync(true, NOW_MS).unwrap();
    log.truncate_to(9).unwrap();
    append_many(&mut log, 5, 3);
    let outcome = job.run();
    log.finish_sync(job, outcome).unwrap();
    assert_eq!(
        log.recovery_point(),
        9,
        "lowered by the truncation, not raised by the job"
    );
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());

    // A failed job: everything counts as owed again.
    append_many(&mut log, 1, 3);
    let job = log.take_sync(true, NOW_MS).unwrap();
    let failed = Err(LogError::corrupt(
        dir.path(),
        "injected fsync failure".to_string(),
    ));
    assert!(log.finish_sync(job, failed).is_err());
    assert!(log.recovery_point() < log.log_end_offset());
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());
}

/// The deadline the broker's maintenance queue keeps for a log: sealed segments to
/// fsync now, else the earliest of `flush.ms`, `segment.ms` and the recovery-point
/// checkpoint; nothing for a clean, empty log.
#[test]
fn the_next_maintenance_deadline_is_the_earliest_thing_owed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_interval_ms: 5_000,
        segment_ms: 60_000,
        ..small_config()
    };
    let mut log = open(dir.path(), config);
    assert_eq!(log.next_maintenance_ms(), None, "empty and clean");
    append_many(&mut log, 1, 3);
    // Unflushed: flush.ms from the last flush (the open); the roll comes later.
    assert_eq!(log.next_maintenance_ms(), Some(NOW_MS + 5_000));
    log.sync_if_wanted(NOW_MS + 5_000).unwrap();
    assert_eq!(log.recovery_point(), 3);
    // Flushed, not yet checkpointed: the checkpoint (60 s after the open) and the roll
    // (60 s after the first append, +1) are both owed; the earlier one comes first.
    let next = log.next_maintenance_ms().unwrap();
    assert_eq!(next, NOW_MS + 60_000);
    log.tick(next).unwrap();
    assert_eq!(log.next_maintenance_ms(), Some(NOW_MS + 60_001), "the roll");
    log.tick(NOW_MS + 60_001).unwrap();
    assert_eq!(log.segment_count(), 2, "rolled by segment.ms");
    // The sealed segment's data is durable, its finished indexes are not yet.
    assert_eq!(log.next_maintenance_ms(), Some(NOW_MS + 60_001));
    log.sync_if_wanted(NOW_MS + 60_001).unwrap();
    assert_eq!(log.next_maintenance_ms(), None, "all done");
    append_many(&mut log, 30, 3);
    assert!(log.segment_count() > 2);
    assert_eq!(
        log.next_maintenance_ms(),
        Some(NOW_MS),
        "a rolled segment wants its fsync at once (the appends' time)"
    );
}

#[test]
fn a_new_log_fsyncs_its_directories_with_its_first_data_not_at_creation() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("topic-0");
    let mut log = open(&dir, small_config());
    append_many(&mut log, 2, 3);
    // The first job owes the new directory's entry and its first segment's.
    let job = log.take_sync(true, NOW_MS).unwrap();
    assert_eq!(job.dirs, vec![dir.clone(), parent.path().to_path_buf()]);
    // A failed job leaves them owed.
    let failed = crate::LogError::Corrupt {
        path: dir.clone(),
        reason: "test".into(),
    };
    log.finish_sync(job, Err(failed)).unwrap_err();
    let job = log.take_sync(true, NOW_MS).unwrap();
    assert_eq!(job.dirs.len(), 2);
    let outcome = job.run();
    log.finish_sync(job, outcome).unwrap();
    assert_eq!(log.recovery_point(), log.log_end_offset());
    append_many(&mut log, 1, 3);
    assert!(log.take_sync(true, NOW_MS).unwrap().dirs.is_empty());

    // A log opened on an existing directory owes nothing of the kind.
    drop(log);
    let mut log = open(&dir, small_config());
    append_many(&mut log, 1, 3);
    assert!(log.take_sync(true, NOW_MS).unwrap().dirs.is_empty());
}
