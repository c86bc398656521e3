use brook_protocol::batch::Compression;

use super::*;

/// Appends batches with noisy, mostly rising timestamps (some LogAppendTime, some
/// gzip) and returns every record's `(offset, timestamp)`.
fn build_log(log: &mut Log, batches: usize) -> Vec<(i64, i64)> {
    let mut model = Vec::new();
    let mut seed: u64 = 42;
    let mut noise = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as i64 % 80 - 40
    };
    for i in 0..batches {
        let first = log.log_end_offset();
        let count = 1 + i % 4;
        let timestamps: Vec<i64> = (first..first + count as i64)
            .map(|o| 1_000 + o * 10 + noise())
            .collect();
        let compression = if i % 5 == 0 {
            Compression::Gzip
        } else {
            Compression::None
        };
        let batch = batch_at(first, &timestamps, compression);
        let append_time = (i % 7 == 3).then(|| 1_000 + first * 10);
        log.append(&batch, 0, append_time, NOW_MS).unwrap();
        for (j, ts) in timestamps.iter().enumerate() {
            model.push((first + j as i64, append_time.unwrap_or(*ts)));
        }
    }
    model
}

fn expected_for_timestamp(model: &[(i64, i64)], log_start: i64, target: i64) -> Option<(i64, i64)> {
    model
        .iter()
        .copied()
        .find(|&(offset, ts)| offset >= log_start && ts >= target)
}

fn expected_max(model: &[(i64, i64)]) -> Option<(i64, i64)> {
    let max = model.iter().map(|&(_, ts)| ts).max()?;
    let offset = model.iter().find(|&&(_, ts)| ts == max)?.0;
    Some((max, offset))
}

fn check_against_model(log: &Log, model: &[(i64, i64)], stage: &str) {
    let start = log.log_start_offset();
    let min = model.iter().map(|&(_, ts)| ts).min().unwrap();
    let max = model.iter().map(|&(_, ts)| ts).max().unwrap();
    for target in (min - 20..=max + 20).step_by(3) {
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            expected_for_timestamp(model, start, target),
            "{stage}: target {target}"
        );
    }
    assert_eq!(
        log.max_timestamp_and_offset().unwrap(),
        expected_max(model),
        "{stage}"
    );
}

#[test]
fn timestamp_lookups_match_a_brute_force_model_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 150,
        ..small_config()
    };
    let mut log = open(dir.path(), config.clone());
    let model = build_log(&mut log, 200);
    assert!(log.segment_count() > 5);
    check_against_model(&log, &model, "live");
    log.close().unwrap();
    let log = open(dir.path(), config.clone());
    assert_eq!(log.recovered_segments(), 0);
    check_against_model(&log, &model, "after clean close");
    drop(log); // no clean-shutdown marker: the next open recovers
    let log = open(dir.path(), config.clone());
    assert!(log.recovered_segments() > 0);
    check_against_model(&log, &model, "after unclean shutdown");
    let mut log = log;
    log.delete_records_before(333).unwrap();
    check_against_model(&log, &model, "after delete records");
}

#[test]
fn offset_for_timestamp_finds_the_exact_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default());
    append(&mut log, &[10, 30, 20, 40]);
    let batch = batch_at(4, &[1, 2, 3], Compression::Lz4);
    log.append(&batch, 0, Some(50), NOW_MS).unwrap();
    append(&mut log, &[45, 60]);
    let cases = [
        (0, Some((0, 10))),
        (10, Some((0, 10))),
        (11, Some((1, 30))),
        (25, Some((1, 30))),
        (31, Some((3, 40))),
        (41, Some((4, 50))),
        (50, Some((4, 50))),
        (51, Some((8, 60))),
        (61, None),
    ];
    for (target, want) in cases {
        assert_eq!(
            log.offset_for_timestamp(target).unwrap(),
            want,
            "target {target}"
        );
    }
    assert_eq!(log.max_timestamp_and_offset().unwrap(), Some((60, 8)));
    log.delete_records_before(2).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((2, 20)));
    log.delete_records_before(5).unwrap();
    assert_eq!(
        log.offset_for_timestamp(0).unwrap(),
        Some((5, 50)),
        "append-time batch"
    );
}

#[test]
fn empty_log_has_no_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default());
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp_and_offset().unwrap(), None);
}
