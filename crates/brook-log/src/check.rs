//! Offline, read-only verification of a partition directory (`brook check-log`).
//!
//! Unlike [`crate::Log::open`], this never repairs anything: it reports every segment
//! whose batches are malformed, fail their CRC-32C, or are not dense from the offset
//! in the file's name, every segment that overlaps the one before it, and every index
//! entry that does not point at the batch it claims. A gap between two segments is not
//! a problem: it is what recovery leaves where it dropped damaged data.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use crate::checkpoint::{read_offset, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::error::{IoContext, LogError};
use crate::index::{Index, OffsetEntry, TimeEntry};
use crate::reader::{HeaderWalker, SCAN_WINDOW_BYTES};
use crate::segment::{parse_segment_name, segment_path};

/// What a check found in one partition directory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub dir: PathBuf,
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    /// First offset held in the segments (before the log-start checkpoint is applied).
    pub first_offset: Option<i64>,
    /// Next offset after the last batch.
    pub end_offset: Option<i64>,
    pub log_start_checkpoint: Option<i64>,
    pub recovery_point_checkpoint: Option<i64>,
    pub problems: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Whether `dir` looks like a partition directory (holds segment files).
pub fn is_partition_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .any(|e| parse_segment_name(&e.file_name().to_string_lossy(), ".log").is_some())
        })
        .unwrap_or(false)
}

fn segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)
        .io_context("listing", dir)?
        .flatten()
        .filter_map(|e| parse_segment_name(&e.file_name().to_string_lossy(), ".log"))
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Verifies every segment, CRC and index of one partition directory.
pub fn check_dir(dir: &Path) -> Result<CheckReport, LogError> {
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        log_start_checkpoint: read_offset(dir, LOG_START_OFFSET_FILE)?,
        recovery_point_checkpoint: read_offset(dir, RECOVERY_POINT_FILE)?,
        ..CheckReport::default()
    };
    let bases = segment_bases(dir)?;
    report.segments = bases.len();
    let mut previous_end: Option<i64> = None;
    for base in bases {
        if let Some(end) = previous_end.filter(|&end| end > base) {
            report.problems.push(format!(
                "{}: starts at offset {base}, inside the previous segment (which ends at {end})",
                segment_file_name(dir, base)
            ));
        }
        let end = check_segment(dir, base, &mut report)?;
        previous_end = end.or(previous_end);
    }
    report.end_offset = previous_end;
    if let (Some(start), Some(end)) = (report.log_start_checkpoint, report.end_offset) {
        if start > end {
            report.problems.push(format!(
                "log start checkpoint {start} is beyond the log end {end}"
            ));
        }
    }
    Ok(report)
}

fn segment_file_name(dir: &Path, base: i64) -> String {
    segment_path(dir, base, ".log")
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Walks one segment; returns the offset after its last batch (None if empty).
fn check_segment(dir: &Path, base: i64, report: &mut CheckReport) -> Result<Option<i64>, LogError> {
    let path = segment_path(dir, base, ".log");
    let file = File::open(&path).io_context("opening", &path)?;
    let size = file.metadata().io_context("reading size of", &path)?.len();
    report.bytes += size;
    let name = segment_file_name(dir, base);
    let mut walker = HeaderWalker::new(&file, 0, size, SCAN_WINDOW_BYTES);
    let mut next = base;
    let mut batch_at: HashMap<u64, i64> = HashMap::new();
    let mut last = None;
    loop {
        let (position, header) = match walker.next_header() {
            Ok(Some(found)) => found,
            Ok(None) => break,
            Err(e) => {
                report
                    .problems
                    .push(format!("{name}: {}", e.into_log_error(&path)));
                break;
            }
        };
        if let Err(e) = walker.verify_crc(position, &header) {
            report
                .problems
                .push(format!("{name}: {}", e.into_log_error(&path)));
            break;
        }
        if header.base_offset != next {
            report.problems.push(format!(
                "{name}: batch at byte {position} starts at offset {}, expected {next}",
                header.base_offset
            ));
        }
        report.first_offset.get_or_insert(header.base_offset);
        report.batches += 1;
        report.records += header.record_count.max(0) as u64;
        batch_at.insert(position, header.base_offset);
        next = header.next_offset();
        last = Some(next);
    }
    // Index entries past the first damaged batch cannot be judged; the damage is reported.
    check_indexes(dir, base, size, walker.position(), &batch_at, &name, report)?;
    Ok(last)
}

fn check_indexes(
    dir: &Path,
    base: i64,
    size: u64,
    walked_to: u64,
    batch_at: &HashMap<u64, i64>,
    name: &str,
    report: &mut CheckReport,
) -> Result<(), LogError> {
    let max_entries = (size / 8 + 2) as usize;
    let offset_path = segment_path(dir, base, ".index");
    match Index::<OffsetEntry>::read_file(&offset_path, max_entries)? {
        None if offset_path.exists() => report
            .problems
            .push(format!("{name}: offset index is malformed")),
        None => {}
        Some(entries) => {
            let index = Index::loaded(offset_path, entries.clone());
            if let Err(reason) = index.validate(size) {
                report
                    .problems
                    .push(format!("{name}: offset index: {reason}"));
            }
            for e in entries
                .into_iter()
                .filter(|e| (e.position as u64) < walked_to)
            {
                match batch_at.get(&(e.position as u64)) {
                    Some(offset) if *offset == base + e.relative_offset as i64 => {}
                    Some(offset) => report.problems.push(format!(
                        "{name}: index entry for offset {} points at a batch with offset {offset}",
                        base + e.relative_offset as i64
                    )),
                    None => report.problems.push(format!(
                        "{name}: index entry points at byte {}, not a batch start",
                        e.position
                    )),
                }
            }
        }
    }
    let time_path = segment_path(dir, base, ".timeindex");
    match Index::<TimeEntry>::read_file(&time_path, max_entries)? {
        None if time_path.exists() => report
            .problems
            .push(format!("{name}: time index is malformed")),
        None => {}
        Some(entries) => {
            if let Err(reason) = Index::loaded(time_path, entries).validate() {
                report
                    .problems
                    .push(format!("{name}: time index: {reason}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::append_many;
    use crate::{Log, LogConfig};

    #[test]
    fn a_sound_log_passes_and_damage_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        };
        let mut log = Log::open(dir.path(), config, 0).unwrap();
        append_many(&mut log, 200, 3);
        log.close().unwrap();
        let report = check_dir(dir.path()).unwrap();
        assert!(report.is_ok(), "{:?}", report.problems);
        assert_eq!((report.records, report.end_offset), (600, Some(600)));
        assert!(report.segments > 1);

        let first = segment_path(dir.path(), 0, ".log");
        let mut bytes = std::fs::read(&first).unwrap();
        // The last byte belongs to the last batch's records, which the CRC covers.
        let at = bytes.len() - 1;
        bytes[at] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let report = check_dir(dir.path()).unwrap();
        assert!(!report.is_ok(), "{report:?}");
    }
}
