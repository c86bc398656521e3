use super::*;
use crate::LogError;

/// A follower copies a leader's bytes: offsets, epochs and contents come out identical,
/// across segment rolls, and a gap or overlap is refused without writing anything.
#[test]
fn replicated_appends_keep_the_leaders_offsets_and_epochs() {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), small_config());
    for epoch in 0..4 {
        for _ in 0..20 {
            let first = leader.log_end_offset();
            let batch = batch_at(first, &[first, first + 1, first + 2], Compression::None);
            leader.append(&batch, epoch, None, NOW_MS).unwrap();
        }
    }
    let mut follower = open(follower_dir.path(), small_config());
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let bytes = leader
            .read(offset, 700, None, true)
            .unwrap()
            .read_bytes()
            .unwrap();
        let info = follower.append_replicated(&bytes, NOW_MS).unwrap();
        assert_eq!(info.base_offset, offset);
        offset = info.last_offset + 1;
    }
    assert_eq!(follower.log_end_offset(), 240);
    assert_contents(&follower, 0, 240);
    let epochs = |log: &Log| -> Vec<(i64, i32)> {
        log.batch_headers_from(0)
            .unwrap()
            .iter()
            .map(|h| (h.base_offset, h.partition_leader_epoch))
            .collect()
    };
    assert_eq!(epochs(&leader), epochs(&follower));
    assert!(follower.segment_count() > 1);

    // Not at the log end: refused, nothing written.
    let again = leader
        .read(0, 700, None, true)
        .unwrap()
        .read_bytes()
        .unwrap();
    assert!(matches!(
        follower.append_replicated(&again, NOW_MS),
        Err(LogError::Corrupt { .. })
    ));
    assert_eq!(follower.log_end_offset(), 240);
    drop(follower);
    let follower = open(follower_dir.path(), small_config());
    assert_contents(&follower, 0, 240);
}

#[test]
fn reset_to_restarts_an_empty_log_at_the_leaders_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 10, 5);
    log.reset_to(1_000).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_000)
    );
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_000)
    );
}
