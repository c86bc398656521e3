use super::*;
use crate::LogError;

/// A log of single-record batches whose timestamp is `offset * 10`.
fn timed_log(dir: &Path, config: LogConfig, records: i64) -> Log {
    let mut log = open(dir, config);
    for offset in 0..records {
        append(&mut log, &[offset * 10]);
    }
    log
}

fn segment_sizes(log: &Log) -> Vec<u64> {
    log.segment_base_offsets()
        .iter()
        .map(|&b| std::fs::metadata(log_file(log.dir(), b)).unwrap().len())
        .collect()
}

#[test]
fn retention_by_time_deletes_the_expired_prefix() {
    let retention_ms = 1_000;
    let config = LogConfig {
        retention_ms,
        ..small_config()
    };
    for now_ms in [0, 1_500, 2_000, 2_600, 4_500] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = timed_log(dir.path(), config.clone(), 400);
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 4);
        // Segment i holds offsets bases[i]..bases[i+1]; its largest timestamp is
        // (bases[i+1] - 1) * 10. The active segment never expires at these times.
        let expired = bases
            .windows(2)
            .take_while(|w| now_ms - (w[1] - 1) * 10 > retention_ms)
            .count();
        assert_eq!(
            log.enforce_retention(now_ms).unwrap(),
            expired,
            "now {now_ms}"
        );
        assert_eq!(log.segment_base_offsets(), bases[expired..], "now {now_ms}");
        assert_eq!(log.log_start_offset(), bases[expired]);
        assert_contents(&log, bases[expired], 400);
    }
}

#[test]
fn retention_rolls_an_expired_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: 1_000,
        ..small_config()
    };
    let mut log = timed_log(dir.path(), config, 300);
    let segments = log.segment_count();
    assert_eq!(log.enforce_retention(100_000).unwrap(), segments);
    assert_eq!(log.segment_base_offsets(), [300]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (300, 300));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(
        log.enforce_retention(100_000).unwrap(),
        0,
        "an empty active segment stays"
    );
    append(&mut log, &[100_000]);
    assert_contents(&log, 300, 301);
}

#[test]
fn retention_by_size_keeps_at_least_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let reference = timed_log(dir.path(), small_config(), 300);
    let sizes = segment_sizes(&reference);
    let total: u64 = sizes.iter().sum();
    let cases = [
        -1,
        total as i64,
        total as i64 - 1,
        (total - sizes[0]) as i64,
        (total - sizes[0] - sizes[1]) as i64 + 1,
        *sizes.last().unwrap() as i64,
        1,
        0,
    ];
    for retention_bytes in cases {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            retention_bytes,
            ..small_config()
        };
        let mut log = timed_log(dir.path(), config, 300);
        assert_eq!(segment_sizes(&log), sizes);
        let mut excess = total as i64 - retention_bytes;
        let expected = if retention_bytes < 0 {
            0
        } else {
            sizes
                .iter()
                .take_while(|&&s| {
                    let deletable = excess - s as i64 >= 0;
                    excess -= s as i64 * i64::from(deletable);
                    deletable
                })
                .count()
        };
        assert_eq!(
            log.enforce_retention(NOW_MS).unwrap(),
            expected,
            "{retention_bytes}"
        );
        if retention_bytes >= 0 {
            assert!(
                log.size_bytes() as i64 >= retention_bytes.min(total as i64)
                    || expected == sizes.len()
            );
        }
        assert_eq!(
            log.segment_count(),
            (sizes.len() - expected).max(1),
            "{retention_bytes}"
        );
        assert_contents(&log, log.log_start_offset(), 300);
    }
}

#[test]
fn delete_records_moves_the_log_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = timed_log(dir.path(), small_config(), 300);
    let bases = log.segment_base_offsets();
    let middle = bases[2] + 3;
    assert_eq!(log.delete_records_before(middle).unwrap(), middle);
    assert_eq!(log.segment_base_offsets(), bases[2..]);
    assert_eq!(
        log.delete_records_before(5).unwrap(),
        middle,
        "never moves back"
    );
    assert!(matches!(
        log.read(middle - 1, 100, None, true),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_contents(&log, middle, 300);
    for bad in [-1, 301, i64::MAX] {
        let result = log.delete_records_before(bad);
        assert!(
            matches!(result, Err(LogError::OffsetOutOfRange { .. })),
            "{bad}"
        );
    }

    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), middle, "after clean close");
    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.log_start_offset(), middle, "after unclean shutdown");

    assert_eq!(log.delete_records_before(300).unwrap(), 300);
    assert_eq!(log.segment_count(), 1, "only the active segment is left");
    assert!(log.read(300, 100, None, true).unwrap().is_empty());
    append(&mut log, &[1]);
    assert_contents(&log, 300, 301);
}
