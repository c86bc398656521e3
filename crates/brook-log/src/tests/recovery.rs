use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;

use super::*;
use crate::checkpoint::{CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE};
use crate::segment::{INDEX_SUFFIX, TIME_INDEX_SUFFIX};

fn index_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    segment_path(dir, base_offset, suffix)
}

/// What the lookups say, to compare a log before and after reopening.
fn lookups(log: &Log) -> Vec<Option<(i64, i64)>> {
    let mut out: Vec<_> = (0..600)
        .step_by(7)
        .map(|ts| log.offset_for_timestamp(ts).unwrap())
        .collect();
    out.push(log.max_timestamp_and_offset().unwrap());
    out
}

#[test]
fn reopen_after_clean_close_keeps_everything_without_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 100, 5);
    let bases = log.segment_base_offsets();
    let before = lookups(&log);
    log.close().unwrap();
    assert!(dir.path().join(CLEAN_SHUTDOWN_FILE).exists());
    let index_bytes: Vec<Vec<u8>> = bases
        .iter()
        .flat_map(|&b| {
            [INDEX_SUFFIX, TIME_INDEX_SUFFIX]
                .map(|s| fs::read(index_file(dir.path(), b, s)).unwrap())
        })
        .collect();

    let mut log = open(dir.path(), small_config());
    assert!(
        !dir.path().join(CLEAN_SHUTDOWN_FILE).exists(),
        "marker removed on open"
    );
    assert_eq!(log.recovered_segments(), 0);
    assert_eq!(log.segment_base_offsets(), bases);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 500));
    assert_eq!(lookups(&log), before);
    assert_contents(&log, 0, 500);
    append_many(&mut log, 100, 5);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    assert_eq!(log.recovered_segments(), 0);
    assert_contents(&log, 0, 1_000);
    let index_bytes_after: Vec<Vec<u8>> = bases
        .iter()
        .flat_map(|&b| {
            [INDEX_SUFFIX, TIME_INDEX_SUFFIX]
                .map(|s| fs::read(index_file(dir.path(), b, s)).unwrap())
        })
        .collect();
    assert_eq!(index_bytes_after, index_bytes, "sealed indexes untouched");
}

fn write_at(path: &Path, position: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, position).unwrap();
}

fn chop(path: &Path, bytes: u64) {
    let len = fs::metadata(path).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len - bytes)
        .unwrap();
}

#[test]
fn torn_or_corrupt_tail_of_the_active_segment_is_truncated() {
    type Damage = fn(path: &Path, last_batch_position: u64, last_batch_size: u64);
    // (name, damage, whether the last batch survives)
    let cases: &[(&str, Damage, bool)] = &[
        ("chop one byte", |p, _, _| chop(p, 1), false),
        (
            "chop into the header",
            |p, _, size| chop(p, size - 30),
            false,
        ),
        ("chop the whole batch", |p, _, size| chop(p, size), false),
        (
            "flip a record byte",
            |p, pos, size| write_at(p, pos + size - 2, &[0xEE]),
            false,
        ),
        (
            "flip the record count",
            |p, pos, _| write_at(p, pos + 60, &[0x7F]),
            false,
        ),
        (
            "huge batch length",
            |p, pos, _| write_at(p, pos + 8, &i32::MAX.to_be_bytes()),
            false,
        ),
        ("bad magic", |p, pos, _| write_at(p, pos + 16, &[9]), false),
        (
            "offset goes backwards",
            |p, pos, _| write_at(p, pos, &0i64.to_be_bytes()),
            false,
        ),
        (
            "zeros after the end",
            |p, pos, size| write_at(p, pos + size, &[0; 100]),
            true,
        ),
        (
            "half a header after the end",
            |p, pos, size| write_at(p, pos + size, &batch_bytes(1, 0, 1)[..40]),
            true,
        ),
    ];
    for &(name, damage, last_survives) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        append_many(&mut log, 60, 3);
        log.flush().unwrap();
        append_many(&mut log, 4, 3);
        let last = *log.batch_headers_from(0).unwrap().last().unwrap();
        let active = log_file(dir.path(), *log.segment_base_offsets().last().unwrap());
        drop(log); // crash: no clean-shutdown marker
        let len = fs::metadata(&active).unwrap().len();
        let size = last.total_size() as u64;
        damage(&active, len - size, size);

        let mut log = open(dir.path(), small_config());
        let end = if last_survives {
            last.next_offset()
        } else {
            last.base_offset
        };
        assert_eq!(log.log_end_offset(), end, "{name}");
        assert_eq!(
            log.recovered_segments(),
            1,
            "{name}: only the active segment"
        );
        let expected_len = if last_survives { len } else { len - size };
        assert_eq!(fs::metadata(&active).unwrap().len(), expected_len, "{name}");
        assert_contents(&log, 0, end);
        assert_eq!(append(&mut log, &[1]).base_offset, end, "{name}");
        log.close().unwrap();
        let log = open(dir.path(), small_config());
        assert_contents(&log, 0, end + 1);
    }
}

#[test]
fn missing_or_damaged_index_files_are_rebuilt() {
    type Damage = fn(index: &Path, timeindex: &Path);
    let cases: &[(&str, Damage)] = &[
        ("offset index missing", |i, _| fs::remove_file(i).unwrap()),
        ("time index missing", |_, t| fs::remove_file(t).unwrap()),
        ("offset index torn", |i, _| chop(i, 3)),
        ("time index torn", |_, t| chop(t, 5)),
        ("offset index out of order", |i, _| {
            write_at(i, 0, &[0xFF; 8])
        }),
        ("last offset entry off a batch start", |i, _| {
            let len = fs::metadata(i).unwrap().len();
            write_at(i, len - 1, &[1])
        }),
        ("middle offset entry off a batch start", |i, _| {
            write_at(i, 15, &[fs::read(i).unwrap()[15] ^ 1])
        }),
        ("middle offset entry names another offset", |i, _| {
            write_at(i, 11, &[fs::read(i).unwrap()[11] ^ 1])
        }),
        ("time index out of order", |_, t| write_at(t, 0, &[0x7F; 8])),
        ("middle time entry names another batch", |_, t| {
            write_at(t, 23, &[fs::read(t).unwrap()[23] ^ 1])
        }),
        ("time entry past the end", |_, t| {
            let len = fs::metadata(t).unwrap().len();
            write_at(t, len - 4, &u32::MAX.to_be_bytes())
        }),
        ("offset index huge", |i, _| {
            OpenOptions::new()
                .write(true)
                .open(i)
                .unwrap()
                .set_len(1 << 40)
                .unwrap()
        }),
    ];
    for &(name, damage) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config());
        append_many(&mut log, 100, 5);
        let before = lookups(&log);
        log.close().unwrap();
        let index = index_file(dir.path(), 0, INDEX_SUFFIX);
        let timeindex = index_file(dir.path(), 0, TIME_INDEX_SUFFIX);
        let original = (fs::read(&index).unwrap(), fs::read(&timeindex).unwrap());
        assert!(
            original.0.len() >= 16 && original.1.len() >= 24,
            "{name}: indexes too small to damage"
        );
        damage(&index, &timeindex);

        let log = open(dir.path(), small_config());
        assert_eq!(log.recovered_segments(), 1, "{name}");
        assert_eq!(lookups(&log), before, "{name}");
        assert_contents(&log, 0, 500);
        let rebuilt = (fs::read(&index).unwrap(), fs::read(&timeindex).unwrap());
        assert!(rebuilt == original, "{name}: rebuilt index differs");
    }
}

#[test]
fn recovery_starts_at_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 100, 5);
    let segments = log.segment_count();
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        log.recovered_segments(),
        segments,
        "never flushed: everything is checked"
    );
    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!(
        log.recovered_segments(),
        1,
        "open checkpoints what it recovered"
    );

    append_many(&mut log, 100, 5);
    log.sync_if_wanted(NOW_MS).unwrap();
    log.tick(NOW_MS + crate::RECOVERY_POINT_CHECKPOINT_INTERVAL_MS)
        .unwrap();
    append_many(&mut log, 1, 5);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_eq!(
        log.recovered_segments(),
        1,
        "tick synced and checkpointed rolled segments"
    );
    assert_contents(&log, 0, 1_005);
}

#[test]
fn stray_files_are_swept_and_bad_checkpoints_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("topic-0");
    let mut log = open(&nested, small_config());
    append_many(&mut log, 10, 5);
    log.close().unwrap();
    let strays = [
        nested.join("recovery-point-offset-checkpoint.tmp"),
        index_file(&nested, 9_999, INDEX_SUFFIX),
        index_file(&nested, 9_999, TIME_INDEX_SUFFIX),
    ];
    for stray in &strays {
        fs::write(stray, b"junk").unwrap();
    }
    fs::write(nested.join(LOG_START_OFFSET_FILE), b"not a checkpoint").unwrap();
    let log = open(&nested, small_config());
    for stray in &strays {
        assert!(!stray.exists(), "{}", stray.display());
    }
    assert_eq!(log.log_start_offset(), 0);
    assert_contents(&log, 0, 50);
}

#[test]
fn log_start_checkpoint_past_the_end_restarts_the_log_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 10, 5);
    drop(log);
    crate::checkpoint::write_offset(dir.path(), LOG_START_OFFSET_FILE, 1_000).unwrap();
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.segment_base_offsets(), [1_000]);
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset()),
        (1_000, 1_000)
    );
    assert!(!log_file(dir.path(), 0).exists());
    assert_eq!(append(&mut log, &[1]).base_offset, 1_000);
}

/// Damage made after open (so not seen by recovery) reads as corrupt, never as wrong
/// batches.
#[test]
fn damage_after_open_reads_as_corrupt_not_as_wrong_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 100, 5);
    log.close().unwrap();
    let log = open(dir.path(), small_config());
    let index = fs::read(index_file(dir.path(), 0, INDEX_SUFFIX)).unwrap();
    let relative_offset = i64::from(u32::from_be_bytes(index[8..12].try_into().unwrap()));
    let victim = log.batch_headers_from(relative_offset + 1).unwrap()[0];
    let position: u64 = log
        .batch_headers_from(0)
        .unwrap()
        .iter()
        .take_while(|h| h.base_offset < victim.base_offset)
        .map(|h| h.total_size() as u64)
        .sum();
    write_at(
        &log_file(dir.path(), 0),
        position + 8,
        &i32::MAX.to_be_bytes(),
    );
    let result = log.read(victim.base_offset, 100, None, true);
    assert!(
        matches!(result, Err(crate::LogError::Corrupt { .. })),
        "{result:?}"
    );
}

/// splitmix64: a tiny seeded generator, so failures replay.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Random damage to one segment of a never-flushed log: the damaged segment keeps a
/// prefix of its batches, every other segment is kept whole, the log end moves only if
/// the last segment was damaged, and a segment that no longer fits is refused with
/// nothing changed.
#[test]
fn random_damage_costs_at_most_the_rest_of_the_damaged_segment() {
    let original = tempfile::tempdir().unwrap();
    let mut log = open(original.path(), small_config());
    append_many(&mut log, 120, 3);
    let bases = log.segment_base_offsets();
    let end = log.log_end_offset();
    drop(log); // never flushed: every segment is recovered on open
    for seed in 0..150u64 {
        let mut rng = seed;
        let dir = tempfile::tempdir().unwrap();
        copy_dir(original.path(), dir.path());
        let which = next_random(&mut rng) as usize % bases.len();
        let (victim, victim_end) = (bases[which], bases.get(which + 1).copied().unwrap_or(end));
        let path = log_file(dir.path(), victim);
        let len = fs::metadata(&path).unwrap().len();
        let at = next_random(&mut rng) % len;
        match next_random(&mut rng) % 3 {
            0 => write_at(&path, at, &[next_random(&mut rng) as u8 | 1]),
            1 => chop(&path, len - at),
            _ => {
                let junk: Vec<u8> = (0..1 + next_random(&mut rng) % 64)
                    .map(|_| next_random(&mut rng) as u8)
                    .collect();
                write_at(&path, at, &junk);
            }
        }
        let damaged = fs::read(&path).unwrap();
        let mut log = match Log::open(dir.path(), small_config(), NOW_MS) {
            Ok(log) => log,
            Err(crate::LogError::MisplacedSegment { path: named, .. }) => {
                assert_eq!(named, path, "seed {seed}");
                assert_eq!(fs::read(&path).unwrap(), damaged, "seed {seed}: unchanged");
                continue;
            }
            Err(e) => panic!("seed {seed}: {e}"),
        };
        let offsets: Vec<i64> = read_records(&log, log.log_start_offset())
            .iter()
            .map(|r| r.offset)
            .collect();
        let kept_of_victim = offsets
            .iter()
            .filter(|o| (victim..victim_end).contains(o))
            .count() as i64;
        let cut = victim + kept_of_victim;
        let expected: Vec<i64> = (0..end)
            .filter(|o| !(cut..victim_end).contains(o))
            .collect();
        assert_eq!(offsets, expected, "seed {seed}: damaged segment {victim}");
        let recovered_end = log.log_end_offset();
        let expected_end = if victim_end == end { cut } else { end };
        assert_eq!(recovered_end, expected_end, "seed {seed}");
        assert_eq!(
            append(&mut log, &[1]).base_offset,
            recovered_end,
            "seed {seed}"
        );
    }
}

/// After a crash, a whole active segment is taken as it is: open writes nothing (no
/// index file, no checkpoint), the recovery point stays where it was, and the data is
/// still unflushed, so a second crash checks it again and a sync then makes it durable.
#[test]
fn a_whole_active_segment_is_recovered_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config());
    append_many(&mut log, 3, 5);
    drop(log); // a crash: no clean-shutdown marker
    let files = |d: &Path| {
        let mut v: Vec<_> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    let before = files(dir.path());
    let mut log = open(dir.path(), small_config());
    assert_eq!(files(dir.path()), before, "open created no file");
    assert_eq!(log.recovered_segments(), 1);
    assert_eq!(log.recovery_point(), 0, "nothing was made durable");
    assert_eq!(log.sync_wanted(NOW_MS + 1), None, "flush.ms is off");
    assert_contents(&log, 0, 15);
    append_many(&mut log, 1, 5);
    let segments = log.segment_count();
    drop(log);
    let mut log = open(dir.path(), small_config());
    assert_eq!(log.recovered_segments(), segments, "checked again");
    assert_contents(&log, 0, 20);
    log.flush().unwrap();
    assert_eq!(log.recovery_point(), 20);
    drop(log);
    let log = open(dir.path(), small_config());
    assert_contents(&log, 0, 20);
    assert_eq!(
        log.recovered_segments(),
        1,
        "only the active segment, as after any crash"
    );
}
