use super::*;
use crate::LogError;

#[test]
fn truncate_to_drops_everything_from_the_containing_batch() {
    // Batches of 5 records: offsets 0-4, 5-9, ... 495-499, over many segments.
    let build = |dir: &Path| {
        let mut log = open(dir, small_config());
        append_many(&mut log, 100, 5);
        log
    };
    let dir = tempfile::tempdir().unwrap();
    let bases = build(dir.path()).segment_base_offsets();
    let (second, last) = (bases[1], *bases.last().unwrap());
    // (target, expected log end, expected segments)
    let cases = [
        (500, 500, bases.len()),
        (1_000, 500, bases.len()),
        (498, 495, bases.len()),
        (last + 5, last + 5, bases.len()),
        (last, last, bases.len()),
        (second + 7, second + 5, 2),
        (second, second, 2),
        (3, 0, 1),
        (0, 0, 1),
    ];
    for (target, end, segments) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut log = build(dir.path());
        log.truncate_to(target).unwrap();
        let case = format!("truncate_to({target})");
        assert_eq!(log.log_end_offset(), end, "{case}");
        assert_eq!(log.segment_count(), segments, "{case}");
        assert!(log.recovery_point() <= end, "{case}");
        assert_contents(&log, 0, end);
        for &gone in bases.iter().filter(|&&b| b > end) {
            assert!(
                !log_file(dir.path(), gone).exists(),
                "{case}: segment {gone}"
            );
        }
        assert_eq!(append(&mut log, &[1, 2]).base_offset, end, "{case}");
        assert_eq!(
            log.offset_for_timestamp(0).unwrap().map(|(o, _)| o),
            Some(0),
            "{case}"
        );
        drop(log);
        let log = open(dir.path(), small_config());
        assert_contents(&log, 0, end + 2);
        log.close().unwrap();
        let log = open(dir.path(), small_config());
        assert_eq!(log.recovered_segments(), 0, "{case}");
        assert_contents(&log, 0, end + 2);
    }
}

#[test]
fn truncate_below_the_first_segment_restarts_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 100, 5);
    log.delete_records_before(300).unwrap();
    let first = log.segment_base_offsets()[0];
    log.truncate_to(first - 1).unwrap();
    assert_eq!(log.segment_base_offsets(), [first - 1]);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (first - 1, first - 1)
    );
    assert_eq!(append(&mut log, &[1]).base_offset, first - 1);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (first - 1, first)
    );

    let mut log = log;
    let result = log.truncate_to(-1);
    assert!(matches!(result, Err(LogError::OffsetOutOfRange { .. })));
}

#[test]
fn truncate_inside_the_log_start_batch_lowers_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 10, 5);
    log.delete_records_before(12).unwrap();
    log.truncate_to(13).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 10));
}
