//! Opening a partition directory: which segments to trust, which to check batch by
//! batch, and what to throw away.
//!
//! A segment is trusted (indexes loaded, only the tail after the last offset-index
//! entry walked) after a clean shutdown, or when the next segment starts at or below
//! the recovery point. Every other segment, from the one holding the recovery point
//! on, is recovered: each batch is checked and the segment is cut at the first bad
//! one. After a cut, or a gap between two segments, later segments are deleted, so
//! the log is always one contiguous run of valid batches.

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use crate::checkpoint::{
    self, read_offset, remove_if_exists, sync_dir, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE,
    TEMP_SUFFIX,
};
use crate::config::LogConfig;
use crate::error::{IoContext, LogError};
use crate::segment::{
    parse_segment_name, segment_path, ActiveSegment, Segment, INDEX_SUFFIX, LOG_SUFFIX,
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
}

/// Loads (and if needed repairs) the log in `dir`, creating the directory if missing.
/// The clean-shutdown marker is removed first, so a crash while opening, or any time
/// later, makes the next open recover from the recovery point.
pub fn load(dir: &Path, config: &LogConfig, now_ms: i64) -> Result<LoadedLog, LogError> {
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
    let (sealed, active, log_start_offset) =
        apply_log_start(dir, segments, log_start_checkpoint, now_ms)?;
    Ok(LoadedLog {
        sealed,
        active,
        log_start_offset,
        recovery_point_checkpoint,
        log_start_checkpoint,
        clean_shutdown,
        recovered_segments,
    })
}

/// Settles the log start offset (the checkpoint, but never below the first segment),
/// deletes segments wholly below it, and picks the active segment. With no segments,
/// or a log start past the recovered end (its data was lost), the log restarts empty
/// at the log start offset.
fn apply_log_start(
    dir: &Path,
    mut segments: Vec<Segment>,
    log_start_checkpoint: Option<i64>,
    now_ms: i64,
) -> Result<(VecDeque<Segment>, ActiveSegment, i64), LogError> {
    let first_base = segments.first().map_or(0, Segment::base_offset);
    let log_start_offset = log_start_checkpoint.unwrap_or(first_base).max(first_base);
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
        let active = ActiveSegment::create(dir, log_start_offset, now_ms)?;
        return Ok((VecDeque::new(), active, log_start_offset));
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
    let active = ActiveSegment::reopen(last, now_ms)?;
    Ok((segments.into(), active, log_start_offset))
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

/// Loads segments oldest first, stopping (and deleting the rest) after the first one
/// that had to be cut or that does not end where the next one starts.
fn load_segments(
    dir: &Path,
    bases: &[i64],
    trust: Trust,
    config: &LogConfig,
    now_ms: i64,
) -> Result<(Vec<Segment>, usize), LogError> {
    let policy = config.index_policy();
    let mut segments = Vec::with_capacity(bases.len());
    let mut recovered = 0;
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let loaded = if trust.trusts(next_base) {
            Segment::load_trusted(dir, base, next_base, now_ms)?
        } else {
            Err("not below the recovery point".to_string())
        };
        let (segment, truncated) = match loaded {
            Ok(segment) => (segment, false),
            Err(reason) => {
                tracing::debug!(dir = %dir.display(), base, %reason, "recovering segment");
                recovered += 1;
                Segment::recover(dir, base, next_base, &policy, now_ms)?
            }
        };
        let gap = next_base.is_some_and(|next| segment.next_offset() != next);
        segments.push(segment);
        if truncated || gap {
            let later = &bases[i + 1..];
            if !later.is_empty() {
                tracing::warn!(
                    dir = %dir.display(),
                    segments = later.len(),
                    "deleting segments after a truncated or incomplete one"
                );
            }
            for &later_base in later.iter().rev() {
                delete_segment_files(dir, later_base)?;
            }
            break;
        }
    }
    if recovered > 0 {
        sync_dir(dir)?;
    }
    Ok((segments, recovered))
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

fn delete_segment_files(dir: &Path, base_offset: i64) -> Result<(), LogError> {
    for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        remove_if_exists(&segment_path(dir, base_offset, suffix))?;
    }
    Ok(())
}

fn delete_newest_first(
    dir: &Path,
    segments: impl DoubleEndedIterator<Item = Segment>,
) -> Result<(), LogError> {
    for segment in segments.rev() {
        segment.delete_files()?;
    }
    sync_dir(dir)
}
