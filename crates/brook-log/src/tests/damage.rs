//! Damage on disk costs at most the damaged part (issue 14, item 2). Recovery cuts a
//! damaged segment at its first bad batch and keeps every later segment whose batches
//! are intact, at their offsets (the log then has a gap, which reads step over); it
//! never hands out an offset below the recovery point again; and a segment file it
//! cannot place is refused, with nothing changed on disk, rather than deleted.

use std::fs;
use std::os::unix::fs::FileExt;

use super::*;
use crate::segment::{INDEX_SUFFIX, TIME_INDEX_SUFFIX};
use crate::{check_dir, LogError};

/// A batch found in a segment file from its 12-byte prefix (base offset, length).
#[derive(Debug, Clone, Copy)]
struct RawBatch {
    position: u64,
    base_offset: i64,
}

/// The batches of a segment file, read without the crate's own code.
fn raw_batches(path: &Path) -> Vec<RawBatch> {
    let bytes = fs::read(path).unwrap();
    let mut batches = Vec::new();
    let mut position = 0;
    while position + 12 <= bytes.len() {
        let base_offset = i64::from_be_bytes(bytes[position..position + 8].try_into().unwrap());
        let length = i32::from_be_bytes(bytes[position + 8..position + 12].try_into().unwrap());
        batches.push(RawBatch {
            position: position as u64,
            base_offset,
        });
        position += 12 + length as usize;
    }
    batches
}

/// Three segments of 5-record batches, the last holding four batches. Returns the
/// segment bases and the log end offset; the log is left open for the caller to close
/// or crash.
fn three_segments(dir: &Path) -> (Log, Vec<i64>, i64) {
    let mut log = open(dir, small_config());
    while log.segment_count() < 3 {
        append_many(&mut log, 1, 5);
    }
    append_many(&mut log, 3, 5);
    let bases = log.segment_base_offsets();
    assert_eq!(bases.len(), 3);
    let end = log.log_end_offset();
    (log, bases, end)
}

/// Offsets `from..to` minus the ones in `lost`.
fn offsets_without(from: i64, to: i64, lost: std::ops::Range<i64>) -> Vec<i64> {
    (from..to).filter(|o| !lost.contains(o)).collect()
}

/// Every offset the log serves from its start, each checked to hold its own value.
fn readable_offsets(log: &Log) -> Vec<i64> {
    let records = read_records(log, log.log_start_offset());
    for r in &records {
        assert_eq!(
            r.value.as_ref(),
            Some(&value_for(r.offset)),
            "offset {}",
            r.offset
        );
    }
    records.iter().map(|r| r.offset).collect()
}

/// The bytes of each segment file; none for a file that is gone (recovery deletes a
/// segment only when it holds no batch and lies below the log start).
fn segment_bytes(dir: &Path, bases: &[i64]) -> Vec<Vec<u8>> {
    bases
        .iter()
        .map(|&b| fs::read(log_file(dir, b)).unwrap_or_default())
        .collect()
}

fn write_at(path: &Path, position: u64, bytes: &[u8]) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, position).unwrap();
}

/// What reopening the damaged directory gives: the offsets a reader sees, the log end,
/// and the offset the next append gets. Also checks what must hold for every case:
/// another clean restart changes nothing and `check-log` is satisfied.
fn reopen_and_observe(dir: &Path) -> (Vec<i64>, i64, i64) {
    let mut log = open(dir, small_config());
    let kept = readable_offsets(&log);
    let end = log.log_end_offset();
    let appended = append(&mut log, &[1]).base_offset;
    log.close().unwrap();
    let log = open(dir, small_config());
    assert_eq!(
        log.recovered_segments(),
        0,
        "a clean restart trusts what recovery left"
    );
    let mut again = kept.clone();
    again.push(appended);
    assert_eq!(readable_offsets(&log), again);
    drop(log);
    let report = check_dir(dir).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    (kept, end, appended)
}

/// (a) A clean shutdown, then a damaged batch-length field in one batch: only that
/// segment's batches from the damaged one on are lost; the log end stays, so no
/// acknowledged offset is handed out again.
#[test]
fn damaged_batch_length_after_a_clean_shutdown_costs_only_the_rest_of_that_segment() {
    // (segment, which batch in it, new length field)
    let cases: &[(usize, &str, i32)] = &[
        (0, "first", i32::MAX),
        (0, "middle", i32::MAX),
        (0, "middle", 1),
        (0, "last", i32::MAX),
        (1, "first", i32::MAX),
        (1, "middle", 49),
        (2, "middle", i32::MAX),
        (2, "last", 0),
    ];
    for &(segment, which, length) in cases {
        let case = format!("segment {segment}, {which} batch, length {length}");
        let dir = tempfile::tempdir().unwrap();
        let (log, bases, end) = three_segments(dir.path());
        log.close().unwrap();
        let path = log_file(dir.path(), bases[segment]);
        let batches = raw_batches(&path);
        let victim = match which {
            "first" => batches[0],
            "middle" => batches[batches.len() / 2],
            _ => *batches.last().unwrap(),
        };
        let segment_end = bases.get(segment + 1).copied().unwrap_or(end);
        let before = segment_bytes(dir.path(), &bases);
        write_at(&path, victim.position + 8, &length.to_be_bytes());

        let (kept, log_end, appended) = reopen_and_observe(dir.path());
        assert_eq!(
            kept,
            offsets_without(0, end, victim.base_offset..segment_end),
            "{case}"
        );
        assert_eq!((log_end, appended), (end, end), "{case}: log end");
        let after = segment_bytes(dir.path(), &bases);
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            if i == segment {
                assert_eq!(
                    a.len() as u64,
                    victim.position,
                    "{case}: cut at the bad batch"
                );
            } else if i + 1 < bases.len() {
                assert_eq!(a, b, "{case}: segment {i} untouched");
            }
        }
    }
}

/// (b) A missing middle segment: the segments around it are kept, with a gap between.
#[test]
fn missing_middle_segment_leaves_a_gap_and_keeps_later_segments() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, bases, end) = three_segments(dir.path());
        if clean {
            log.close().unwrap();
        } else {
            log.flush().unwrap();
            drop(log);
        }
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            fs::remove_file(segment_path(dir.path(), bases[1], suffix)).unwrap();
        }
        let (kept, log_end, appended) = reopen_and_observe(dir.path());
        assert_eq!(
            kept,
            offsets_without(0, end, bases[1]..bases[2]),
            "clean {clean}"
        );
        assert_eq!((log_end, appended), (end, end), "clean {clean}");
    }
}

/// (b') Missing segments at the end: the log continues at the recovery point, never
/// below it, so offsets that were acknowledged are not handed out again.
#[test]
fn missing_last_segments_do_not_bring_offsets_back() {
    let dir = tempfile::tempdir().unwrap();
    let (log, bases, end) = three_segments(dir.path());
    log.close().unwrap();
    for &base in &bases[1..] {
        fs::remove_file(log_file(dir.path(), base)).unwrap();
    }
    let (kept, log_end, appended) = reopen_and_observe(dir.path());
    assert_eq!(kept, (0..bases[1]).collect::<Vec<_>>());
    assert_eq!((log_end, appended), (end, end));
}

/// (c) A gap between segments (the first lost its last batches): later segments stay.
#[test]
fn offset_gap_between_segments_keeps_later_segments() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let (log, bases, end) = three_segments(dir.path());
        if clean {
            log.close().unwrap();
        } else {
            drop(log); // never flushed: every segment is checked
        }
        let path = log_file(dir.path(), bases[0]);
        let batches = raw_batches(&path);
        let cut = batches[batches.len() - 2];
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut.position)
            .unwrap();
        let (kept, log_end, appended) = reopen_and_observe(dir.path());
        assert_eq!(
            kept,
            offsets_without(0, end, cut.base_offset..bases[1]),
            "clean {clean}"
        );
        assert_eq!((log_end, appended), (end, end), "clean {clean}");
    }
}

/// (d) A segment file that does not fit (its first batch is not at the offset its name
/// says, or it lies inside another segment's offsets): the log is not opened, the
/// error names the file, and nothing on disk changes. Without the file, everything is
/// there.
#[test]
fn stray_segment_files_are_refused_and_nothing_is_deleted() {
    type Stray = fn(dir: &Path, bases: &[i64], end: i64) -> PathBuf;
    let cases: &[(&str, Stray)] = &[
        (
            "copy of the last segment named inside the middle one",
            |dir, bases, _| {
                let stray = log_file(dir, bases[1] + 7);
                fs::copy(log_file(dir, bases[2]), &stray).unwrap();
                stray
            },
        ),
        (
            "empty file named inside the middle segment",
            |dir, bases, _| {
                let stray = log_file(dir, bases[1] + 7);
                fs::write(&stray, b"").unwrap();
                stray
            },
        ),
        (
            "copy of the first segment named beyond the end",
            |dir, bases, end| {
                let stray = log_file(dir, end + 1_000);
                fs::copy(log_file(dir, bases[0]), &stray).unwrap();
                stray
            },
        ),
    ];
    for &(name, make_stray) in cases {
        for clean in [true, false] {
            let case = format!("{name}, clean {clean}");
            let dir = tempfile::tempdir().unwrap();
            let (mut log, bases, end) = three_segments(dir.path());
            if clean {
                log.close().unwrap();
            } else {
                log.flush().unwrap();
                drop(log);
            }
            let stray = make_stray(dir.path(), &bases, end);
            let before = segment_bytes(dir.path(), &bases);
            let stray_bytes = fs::read(&stray).unwrap();

            let err = Log::open(dir.path(), small_config(), NOW_MS).unwrap_err();
            match &err {
                LogError::MisplacedSegment { path, .. } => {
                    assert_eq!(path, &stray, "{case}: {err}")
                }
                other => panic!("{case}: {other}"),
            }
            assert!(
                err.to_string().contains(&stray.display().to_string()),
                "{err}"
            );
            assert_eq!(segment_bytes(dir.path(), &bases), before, "{case}");
            assert_eq!(fs::read(&stray).unwrap(), stray_bytes, "{case}");

            fs::remove_file(&stray).unwrap();
            let (kept, log_end, _) = reopen_and_observe(dir.path());
            assert_eq!(kept, (0..end).collect::<Vec<_>>(), "{case}");
            assert_eq!(log_end, end, "{case}");
        }
    }
}

/// (d') An empty segment file beyond the end fits: it is where the log continues.
#[test]
fn empty_segment_file_beyond_the_end_is_where_the_log_continues() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _, end) = three_segments(dir.path());
    log.close().unwrap();
    fs::write(log_file(dir.path(), end + 100), b"").unwrap();
    let (kept, log_end, appended) = reopen_and_observe(dir.path());
    assert_eq!(kept, (0..end).collect::<Vec<_>>());
    assert_eq!((log_end, appended), (end + 100, end + 100));
}

/// (e) After a crash, a torn tail of the active segment (never flushed) is cut as
/// before: the unflushed, unacknowledged-by-fsync bytes are the damaged part.
#[test]
fn torn_tail_of_the_active_segment_after_a_crash_is_still_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, bases, _) = three_segments(dir.path());
    log.flush().unwrap();
    let flushed = log.log_end_offset();
    append_many(&mut log, 3, 5);
    drop(log); // crash
    let path = log_file(dir.path(), bases[2]);
    let last = *raw_batches(&path).last().unwrap();
    let len = fs::metadata(&path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    let (kept, log_end, appended) = reopen_and_observe(dir.path());
    assert!(last.base_offset >= flushed);
    assert_eq!(kept, (0..last.base_offset).collect::<Vec<_>>());
    assert_eq!((log_end, appended), (last.base_offset, last.base_offset));
}

/// After a crash, damage in a sealed segment that was never flushed cuts that segment;
/// later segments, intact, stay.
#[test]
fn damage_in_an_unflushed_sealed_segment_keeps_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 100, 2);
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    assert!(bases.len() > 4);
    drop(log); // never flushed: every segment is recovered
    let path = log_file(dir.path(), bases[2]);
    let victim = raw_batches(&path)[2];
    write_at(&path, victim.position + 40, &[0xAB, 0xCD]);
    let (kept, log_end, appended) = reopen_and_observe(dir.path());
    assert_eq!(kept, offsets_without(0, end, victim.base_offset..bases[3]));
    assert_eq!((log_end, appended), (end, end));
    for &later in &bases[3..] {
        assert!(log_file(dir.path(), later).exists());
        assert!(segment_path(dir.path(), later, INDEX_SUFFIX).exists());
    }
}

/// A gap left by recovery: a read inside it gets the next segment's first batch, and
/// the walks the broker makes at open (headers, timestamps) and truncation step over
/// it too.
#[test]
fn reads_walks_and_truncation_step_over_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let (log, bases, end) = three_segments(dir.path());
    log.close().unwrap();
    fs::remove_file(log_file(dir.path(), bases[1])).unwrap();
    let mut log = open(dir.path(), small_config());

    let slice = log.read(bases[1] + 3, 4096, None, true).unwrap();
    assert_eq!(slice.first_offset, bases[2]);
    let at_gap_limit = log.read(bases[1] + 3, 4096, Some(bases[2]), true).unwrap();
    assert!(at_gap_limit.is_empty(), "nothing readable below the limit");
    let headers: Vec<i64> = log
        .batch_headers_from(0)
        .unwrap()
        .iter()
        .map(|h| h.base_offset)
        .collect();
    assert!(headers.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(headers.iter().filter(|&&o| o == bases[2]).count(), 1);
    assert_eq!(
        log.offset_for_timestamp(bases[1] + 1)
            .unwrap()
            .map(|(o, _)| o),
        Some(bases[2]),
        "timestamps are offsets here: the first record at or after one in the gap"
    );

    log.truncate_to(bases[1] + 3).unwrap();
    assert_eq!(
        log.log_end_offset(),
        bases[1],
        "the log ends where the gap began"
    );
    assert_eq!(append(&mut log, &[1]).base_offset, bases[1]);
    assert!(end > bases[1]);
}

/// Missing last segments: the log continues at the recovery point; a reader inside
/// the hole gets nothing until records arrive, then the first of them.
#[test]
fn a_hole_at_the_end_reads_empty_until_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let (log, bases, end) = three_segments(dir.path());
    log.close().unwrap();
    fs::remove_file(log_file(dir.path(), bases[2])).unwrap();
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.segment_base_offsets(), [bases[0], bases[1], end]);
    assert!(log.read(bases[2], 4096, None, true).unwrap().is_empty());
    append(&mut log, &[1]);
    let slice = log.read(bases[2], 4096, None, true).unwrap();
    assert_eq!((slice.first_offset, slice.next_offset_hint), (end, end + 1));
}

/// A follower copying a leader whose log has a gap: it continues past the gap in a
/// segment of its own and ends up with the leader's offsets.
#[test]
fn a_follower_replicates_across_a_gap_in_the_leaders_log() {
    let leader_dir = tempfile::tempdir().unwrap();
    let (log, bases, end) = three_segments(leader_dir.path());
    log.close().unwrap();
    fs::remove_file(log_file(leader_dir.path(), bases[1])).unwrap();
    let leader = open(leader_dir.path(), small_config());

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(follower_dir.path(), small_config());
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let bytes = leader
            .read(offset, 700, None, true)
            .unwrap()
            .read_bytes()
            .unwrap();
        offset = follower
            .append_replicated(&bytes, NOW_MS)
            .unwrap()
            .last_offset
            + 1;
    }
    assert_eq!(follower.log_end_offset(), end);
    assert_eq!(readable_offsets(&follower), readable_offsets(&leader));
    assert!(follower.segment_base_offsets().contains(&bases[2]));

    // Starting past the log end is allowed, overlapping it is not.
    let again = leader
        .read(0, 700, None, true)
        .unwrap()
        .read_bytes()
        .unwrap();
    assert!(matches!(
        follower.append_replicated(&again, NOW_MS),
        Err(LogError::Corrupt { .. })
    ));
    drop(follower);
    let follower = open(follower_dir.path(), small_config());
    assert_eq!(readable_offsets(&follower), readable_offsets(&leader));
}

/// An empty follower whose first fetch lands past a gap at the leader's log start.
#[test]
fn an_empty_follower_starts_past_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    let mut batch = batch_at(500, &[1, 2], brook_protocol::batch::Compression::None);
    batch[..8].copy_from_slice(&500i64.to_be_bytes()); // as the leader stamped it
    let info = log.append_replicated(&batch, NOW_MS).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (500, 501));
    assert_eq!(log.segment_base_offsets(), [500]);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 502));
    assert_contents(&log, 500, 502);
}
