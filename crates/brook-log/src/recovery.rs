//! Opening a partition directory: which segments to trust, which to check batch by
//! batch, and what a damaged one costs.
//!
//! A segment is trusted (indexes loaded and checked against a walk over its headers)
//! after a clean shutdown, or when the next segment starts at or below the recovery
//! point. Every other segment, and any trusted one that does not hold up, is checked
//! batch by batch and cut at its first bad batch. That cut is all damage costs: later
//! segments whose batches are intact are kept at their offsets, so the log may have a
//! gap between two segments (reads step over it), and the log never ends below the
//! recovery point, so offsets that were durable are never handed out again.
//!
//! Every segment file is read before any is changed: a file that cannot be placed in
//! the log (its first intact batch is not at the offset its name says, or its offsets
//! overlap another file's) makes the open fail with nothing cut or deleted.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::{
    self, read_offset, remove_if_exists, sync_dir, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
    TEMP_SUFFIX,
};
use crate::config::{IndexPolicy, LogConfig};
use crate::error::{IoContext, LogError};
use crate::segment::{
    parse_segment_name, segment_path, ActiveSegment, Scanned, Segment, INDEX_SUFFIX, LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
};

/// What `Log::open` starts from.
#[derive(Debug)]
pub struct LoadedLog {
    pub sealed: VecDeque<Segment>,
    pub active: ActiveSegment,
    pub log_start_offset: i64,
    /// The checkpoints as found on disk.
    pub recovery_point_checkpoint: Option<i64>,
    pub log_start_checkpoint: Option<i64>,
    pub clean_shutdown: bool,
    /// Segments checked batch by batch (and their indexes rebuilt).
    pub recovered_segments: usize,
    /// The directory was made just now, and neither it nor its first segment's entry
    /// is fsynced yet: the log's first data fsync must sync them first.
    pub new_dir: bool,
}

/// Loads (and if needed repairs) the log in `dir`, creating the directory if missing.
/// The clean-shutdown marker is removed first, so a crash while opening, or any time
/// later, makes the next open recover from the recovery point.
pub fn load(dir: &Path, config: &LogConfig, now_ms: i64) -> Result<LoadedLog, LogError> {
    let new_dir = !dir.exists();
    fs::create_dir_all(dir).io_context("creating log directory", dir)?;
    let clean_shutdown = checkpoint::take_clean_shutdown(dir)?;
    let bases = list_segments(dir)?;
    let recovery_point_checkpoint = read_offset(dir, RECOVERY_POINT_FILE)?;
    let log_start_checkpoint = read_offset(dir, LOG_START_OFFSET_FILE)?;
    let trust = Trust {
        clean_shutdown,
        recovery_point: recovery_point_checkpoint.unwrap_or(0),
    };
    let (segments, recovered_segments) = load_segments(dir, &bases, trust, config, now_ms)?;
    let ends = Ends {
        log_start_checkpoint,
        recovery_point_checkpoint,
        new_dir,
    };
    let (sealed, active, log_start_offset) = ends.settle(dir, segments, now_ms)?;
    Ok(LoadedLog {
        sealed,
        active,
        log_start_offset,
        recovery_point_checkpoint,
        log_start_checkpoint,
        clean_shutdown,
        recovered_segments,
        new_dir,
    })
}

/// The checkpoints that bound the recovered log at either end.
#[derive(Debug, Clone, Copy)]
struct Ends {
    log_start_checkpoint: Option<i64>,
    /// Offsets below it were fsynced, so they may have been acknowledged.
    recovery_point_checkpoint: Option<i64>,
    new_dir: bool,
}

impl Ends {
    /// Settles the log start offset (the checkpoint, but never below the first segment),
    /// deletes segments wholly below it, and picks the active segment. With no segments,
    /// or a log start past the recovered end (its data was deleted by retention or
    /// DeleteRecords), the log restarts empty at the log start offset, or at the
    /// recovery point if that is higher.
    fn settle(
        self,
        dir: &Path,
        mut segments: Vec<Segment>,
        now_ms: i64,
    ) -> Result<(VecDeque<Segment>, ActiveSegment, i64), LogError> {
        let first_base = segments.first().map_or(0, Segment::base_offset);
        let log_start_offset = self
            .log_start_checkpoint
            .unwrap_or(first_base)
            .max(first_base);
        let log_end_offset = segments.last().map_or(first_base, Segment::next_offset);
        if segments.is_empty() || log_start_offset > log_end_offset {
            if !segments.is_empty() {
                tracing::warn!(
                    dir = %dir.display(),
                    log_start_offset,
                    log_end_offset,
                    "log start offset is past the recovered log end; starting an empty log at it"
                );
            }
            delete_newest_first(dir, segments.drain(..))?;
            let start = log_start_offset.max(self.recovery_point_checkpoint.unwrap_or(0));
            if start > log_start_offset {
                tracing::warn!(
                    dir = %dir.display(),
                    recovery_point = start,
                    "no segment file left; the log restarts at its recovery point, so \
                     offsets that were durable are not handed out again"
                );
            }
            let active = if self.new_dir {
                ActiveSegment::create_unsynced(dir, start, now_ms)?
            } else {
                ActiveSegment::create(dir, start, now_ms)?
            };
            return Ok((VecDeque::new(), active, start));
        }
        let below_start = segments[..segments.len() - 1]
            .iter()
            .take_while(|s| s.next_offset() <= log_start_offset)
            .count();
        for segment in segments.drain(..below_start) {
            segment.delete_files()?;
        }
        let last = segments
            .pop()
            .expect("the last segment is never below the log start");
        let mut sealed: VecDeque<Segment> = segments.into();
        let active = self.continue_log(dir, &mut sealed, last, now_ms)?;
        let first_base = sealed
            .front()
            .map_or(active.segment().base_offset(), Segment::base_offset);
        Ok((sealed, active, log_start_offset.max(first_base)))
    }

    /// Makes `last` the active segment, unless damage or a missing file took the log's
    /// end below the recovery point: those offsets were fsynced and may have been
    /// acknowledged (consumers may have committed them), so the log continues at the
    /// recovery point in a new segment and never hands them out again. `last` is
    /// sealed, or deleted if it holds no batch.
    fn continue_log(
        self,
        dir: &Path,
        sealed: &mut VecDeque<Segment>,
        last: Segment,
        now_ms: i64,
    ) -> Result<ActiveSegment, LogError> {
        let end = last.next_offset();
        let Some(recovery_point) = self.recovery_point_checkpoint.filter(|&rp| rp > end) else {
            return ActiveSegment::reopen(last, now_ms);
        };
        tracing::warn!(
            segment = %last.path().display(),
            recovered_end = end,
            recovery_point,
            "the log ends below its recovery point; continuing at the recovery point so \
             offsets that were durable are not handed out again"
        );
        if last.is_empty() {
            last.delete_files()?;
        } else {
            let mut last = ActiveSegment::reopen(last, now_ms)?;
            last.finish_indexes()?;
            let mut last = last.into_sealed();
            last.sync(true)?;
            sealed.push_back(last);
        }
        ActiveSegment::create(dir, recovery_point, now_ms)
    }
}

#[derive(Debug, Clone, Copy)]
struct Trust {
    clean_shutdown: bool,
    recovery_point: i64,
}

impl Trust {
    fn trusts(&self, next_base_offset: Option<i64>) -> bool {
        self.clean_shutdown || next_base_offset.is_some_and(|next| next <= self.recovery_point)
    }
}

/// A segment as read at open, before anything on disk changes.
#[derive(Debug)]
enum Loaded {
    Trusted(Segment),
    Scanned(Scanned),
}

impl Loaded {
    fn segment(&self) -> &Segment {
        match self {
            Loaded::Trusted(segment) => segment,
            Loaded::Scanned(scanned) => scanned.segment(),
        }
    }
}

/// Loads every segment, oldest first: reads them all, checks that they fit together,
/// then cuts damaged ones at their first bad batch and rebuilds their indexes. Returns
/// the segments and how many were checked batch by batch.
fn load_segments(
    dir: &Path,
    bases: &[i64],
    trust: Trust,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(Vec<Segment>, usize), LogError> {
    let policy = config.index_policy();
    let mut loaded = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        loaded.push(load_segment(
            dir,
            base,
            trust.trusts(next_base),
            &policy,
            now_ms,
        )?);
    }
    check_no_overlap(&loaded)?;
    let count = loaded.len();
    let mut segments = Vec::with_capacity(count);
    let (mut recovered, mut repaired) = (0, 0);
    for (i, segment) in loaded.into_iter().enumerate() {
        let last = i + 1 == count;
        segments.push(match segment {
            Loaded::Trusted(segment) => segment,
            Loaded::Scanned(scanned) => {
                recovered += 1;
                // The last segment, if whole, becomes the active one as it is.
                if last && scanned.is_whole() {
                    scanned.into_unsynced()
                } else {
                    repaired += 1;
                    scanned.repair(!last)?
                }
            }
        });
    }
    if repaired > 0 {
        sync_dir(dir)?;
    }
    warn_about_gaps(&segments);
    Ok((segments, recovered))
}

/// Reads one segment: from its index files if `trusted` and they hold up, else batch by
/// batch. Changes nothing on disk.
fn load_segment(
    dir: &Path,
    base: i64,
    trusted: bool,
    policy: &IndexPolicy,
    now_ms: i64,
) -> Result<Loaded, LogError> {
    if trusted {
        match Segment::load_trusted(dir, base, now_ms)? {
            Ok(segment) => return Ok(Loaded::Trusted(segment)),
            Err(reason) => tracing::warn!(
                segment = %segment_path(dir, base, LOG_SUFFIX).display(),
                %reason,
                "segment or its indexes damaged since they were made durable; checking it batch by batch"
            ),
        }
    } else {
        tracing::debug!(dir = %dir.display(), base, "recovering segment above the recovery point");
    }
    Segment::scan(dir, base, policy, now_ms).map(Loaded::Scanned)
}

/// Refuses segment files whose intact offsets overlap: two files claim the same
/// offsets and recovery cannot tell which holds the log's records, so it changes
/// neither. The later file is named; the reason names the earlier one.
fn check_no_overlap(loaded: &[Loaded]) -> Result<(), LogError> {
    for pair in loaded.windows(2) {
        let (earlier, later) = (pair[0].segment(), pair[1].segment());
        if earlier.next_offset() > later.base_offset() {
            return Err(LogError::MisplacedSegment {
                path: later.path().to_path_buf(),
                reason: format!(
                    "{} already holds offsets {}..{}",
                    earlier.path().display(),
                    earlier.base_offset(),
                    earlier.next_offset()
                ),
            });
        }
    }
    Ok(())
}

/// Offsets between two segments that no file holds (lost to damage or a missing file).
/// Reads step over them to the next segment.
fn warn_about_gaps(segments: &[Segment]) {
    for pair in segments.windows(2) {
        let (earlier, later) = (&pair[0], &pair[1]);
        if earlier.next_offset() < later.base_offset() {
            tracing::warn!(
                segment = %later.path().display(),
                missing_offsets = %format!("{}..{}", earlier.next_offset(), later.base_offset()),
                "no segment holds these offsets; reads continue at this segment"
            );
        }
    }
}

/// Base offsets of the `.log` files, sorted; sweeps up temp files and index files
/// whose log file is gone.
fn list_segments(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut indexes: Vec<(i64, PathBuf)> = Vec::new();
    let mut strays = Vec::new();
    for entry in fs::read_dir(dir).io_context("listing", dir)? {
        let entry = entry.io_context("listing", dir)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TEMP_SUFFIX) {
            strays.push(entry.path());
        } else if let Some(base) = parse_segment_name(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_name(name, INDEX_SUFFIX)
            .or_else(|| parse_segment_name(name, TIME_INDEX_SUFFIX))
        {
            indexes.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    let known: HashSet<i64> = bases.iter().copied().collect();
    strays.extend(
        indexes
            .into_iter()
            .filter(|(base, _)| !known.contains(base))
            .map(|(_, path)| path),
    );
    for path in &strays {
        tracing::debug!(path = %path.display(), "deleting stray file");
        remove_if_exists(path)?;
    }
    if !strays.is_empty() {
        sync_dir(dir)?;
    }
    Ok(bases)
}

fn delete_newest_first(
    dir: &Path,
    segments: impl DoubleEndedIterator<Item = Segment>,
) -> Result<(), LogError> {
    let mut deleted = false;
    for segment in segments.rev() {
        segment.delete_files()?;
        deleted = true;
    }
    if deleted {
        sync_dir(dir)?;
    }
    Ok(())
}
