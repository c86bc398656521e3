//! Log compaction (`cleanup.policy=compact`): keep the last record of every key.
//!
//! A pass has three steps, so appends and fetches never wait on it:
//!
//! 1. [`Log::plan_clean`] (under the caller's lock, cheap): picks the sealed segments
//!    below the cleanable end (never the active segment; never at or past the bound the
//!    caller gives, its last stable offset and high watermark; never records younger
//!    than `min.compaction.lag.ms`) when the dirty part (past the cleaner checkpoint) is
//!    at least `min.cleanable.dirty.ratio` of the log, or older than
//!    `max.compaction.lag.ms`. It shares their files.
//! 2. [`CleanJob::run`] (no lock): walks every batch header of the log for transaction
//!    outcomes and each producer's last batch, builds an offset map (key hash → last
//!    offset, bounded: `max_map_entries`) over the dirty part, then writes each picked
//!    segment again, beside the original, as `{base}.log.cleaned.tmp`, fsynced.
//! 3. [`Log::install_clean`] (under the lock): oldest first, renames each cleaned file
//!    over its original and reloads it, then moves the cleaner checkpoint.
//!
//! What a cleaned segment keeps: every record that is the last of its key, records
//! without a key, every batch of a transaction not decided yet, and each producer's
//! last data batch and last marker whole (so idempotence and transaction state survive
//! a restart, which rebuilds them from batch headers). Records of aborted transactions
//! go. Tombstones and transaction markers follow KIP-534: the first pass that keeps
//! one stamps its batch with a delete horizon (`now + delete.retention.ms`, in the base
//! timestamp, record timestamps re-encoded as deltas from it); a later pass after the
//! horizon removes the tombstone, or the marker once no record of its transaction is
//! left. A pass is due when the earliest horizon passes, however clean the log (each
//! pass keeps it in `cleaner-delete-horizon`). A batch that loses some
//! records is re-encoded with the rest at their offsets (keys, values and headers
//! copied as bytes); where whole batches go, one empty batch spans their offsets, so
//! offsets stay dense within the segment and every invariant recovery checks still
//! holds (consumers skip empty batches, as with Kafka's).
//!
//! Crash safety: the original stays until the rename, which replaces it atomically.
//! Renames go oldest segment first, so a crash between two leaves a prefix cleaned: a
//! record removed from an older segment was superseded by one in a later segment that
//! is either the original or a cleaned one that kept it, and a tombstone is dropped only
//! after every older value of its key was dropped in an earlier pass. Leftover
//! `.cleaned.tmp` files are swept up at open. A batch that fails its CRC stops the pass
//! and nothing is installed.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brook_protocol::batch::{control_type, verify_crc, BatchHeader, ControlType};
use brook_protocol::compact::{emptied, empty_batch, keyed_records, retain, KeyedRecord, Retained};
use twox_hash::XxHash3_128;

use crate::checkpoint::{self, sync_dir, TEMP_SUFFIX};
use crate::error::{IoContext, LogError};
use crate::log::Log;
use crate::reader::{HeaderWalker, WalkError, SCAN_WINDOW_BYTES};
use crate::segment::Segment;

/// Where each partition keeps its cleaner checkpoint (Kafka keeps one per log dir).
pub const CLEANER_OFFSET_FILE: &str = "cleaner-offset-checkpoint";
/// The earliest delete horizon the last pass left (absent: none), so a restart still
/// knows when the next pass is due.
pub const CLEANER_HORIZON_FILE: &str = "cleaner-delete-horizon";

/// The cleaner's settings for one log (Kafka's names in the broker).
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `delete.retention.ms`: how long a tombstone or transaction marker stays after the
    /// first cleaning pass that reached it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a log whose oldest dirty record is older than this is
    /// cleaned whatever its dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_ratio: f64,
    /// Keys one pass can hold (`log.cleaner.dedupe.buffer.size` / 24 bytes, as Kafka).
    pub max_map_entries: usize,
    /// `log.cleaner.io.max.bytes.per.second` (read and written), 0: unlimited.
    pub io_max_bytes_per_second: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_ratio: 0.5,
            max_map_entries: 128 * 1024 * 1024 / 24,
            io_max_bytes_per_second: 0,
        }
    }
}

/// The largest batch a pass reads into memory; a bigger one stops the pass.
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// One segment as the pass saw it when planned.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub base: i64,
    pub path: PathBuf,
    pub file: Arc<File>,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// A pass planned by [`Log::plan_clean`]; run it without the log's lock.
#[derive(Debug)]
pub struct CleanJob {
    pub(crate) dir: PathBuf,
    /// The sealed segments to rewrite, oldest first (all below `end`).
    pub(crate) sources: Vec<Source>,
    /// Every segment of the log (the active one up to its size then), for the walk
    /// that finds transaction outcomes and producers' last batches.
    pub(crate) whole_log: Vec<Source>,
    pub(crate) first_dirty: i64,
    /// Where the cleanable part ends (a segment boundary: the active segment's base at
    /// most).
    pub(crate) limit: i64,
    pub(crate) config: CleanerConfig,
    pub(crate) now_ms: i64,
}

/// What a pass wrote, for [`Log::install_clean`].
#[derive(Debug)]
pub struct Cleaned {
    pub(crate) segments: Vec<(Source, PathBuf)>,
    /// The cleaner checkpoint once installed: everything below it has been cleaned.
    pub(crate) end: i64,
    pub stats: CleanStats,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    /// Where the next pass's dirty part starts.
    pub end_offset: i64,
    /// The earliest delete horizon of a tombstone or marker this pass kept: a pass is
    /// due then, however clean the log is.
    pub next_delete_horizon: Option<i64>,
}

impl CleanJob {
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty
    }

    /// Where the segment starting at `base` ends: the next source's base, or the limit.
    fn next_base(&self, base: i64) -> i64 {
        self.sources
            .iter()
            .map(|s| s.base)
            .find(|&b| b > base)
            .unwrap_or(self.limit)
            .min(self.limit)
    }

    /// Builds the offset map and writes the cleaned segments beside the originals.
    pub fn run(self) -> Result<Cleaned, LogError> {
        let mut io = Throttle::new(self.config.io_max_bytes_per_second);
        let outcomes = Outcomes::scan(&self.whole_log, &mut io)?;
        let (map, end) = self.offset_map(&outcomes, &mut io)?;
        let mut stats = CleanStats {
            end_offset: end,
            ..CleanStats::default()
        };
        let mut written = Vec::new();
        let mut txns = TxnsWithData::default();
        let result = (|| {
            for source in self.sources.iter().filter(|s| s.base < end) {
                let tmp = cleaned_path(&self.dir, source.base);
                let removed = self.rewrite(
                    source, &tmp, end, &map, &outcomes, &mut txns, &mut stats, &mut io,
                )?;
                written.push((source.clone(), tmp));
                stats.segments += 1;
                stats.bytes_before += source.size;
                stats.records_removed += removed;
            }
            Ok::<_, LogError>(())
        })();
        if let Err(e) = result {
            for source in &self.sources {
                let _ = std::fs::remove_file(cleaned_path(&self.dir, source.base));
            }
            return Err(e);
        }
        for (_, tmp) in &written {
            stats.bytes_after += std::fs::metadata(tmp).map_or(0, |m| m.len());
        }
        Ok(Cleaned {
            segments: written,
            end,
            stats,
        })
    }

    /// Key hash → last offset over the dirty part. Stops before a segment that would
    /// overflow the map (the first dirty segment is always taken whole); returns the
    /// map and the end of what it covers.
    fn offset_map(
        &self,
        outcomes: &Outcomes,
        io: &mut Throttle,
    ) -> Result<(HashMap<u128, i64>, i64), LogError> {
        let mut map: HashMap<u128, i64> = HashMap::new();
        let dirty: Vec<&Source> = self
            .sources
            .iter()
            .filter(|s| self.next_base(s.base) > self.first_dirty)
            .collect();
        let mut end = dirty.first().map_or(self.first_dirty, |s| s.base);
        for (i, source) in dirty.iter().enumerate() {
            let mut keys: Vec<(u128, i64)> = Vec::new();
            for_each_batch(source, io, |header, bytes| {
                if header.is_control() || !outcomes.visible(header) {
                    return Ok(());
                }
                let records = keyed_records(bytes)
                    .map_err(|e| LogError::corrupt(&source.path, e.to_string()))?;
                for r in records {
                    if r.offset < self.first_dirty {
                        continue;
                    }
                    if let Some(key) = &r.key {
                        keys.push((XxHash3_128::oneshot(key), r.offset));
                    }
                }
                Ok(())
            })?;
            if i > 0 && map.len() + keys.len() > self.config.max_map_entries {
                break;
            }
            map.extend(keys);
            end = self.next_base(source.base);
        }
        Ok((map, end.max(self.first_dirty)))
    }

    /// Writes `source` cleaned to `tmp` (fsynced); returns how many records went.
    /// `txns` carries, from one segment to the next, which producers' transactions
    /// still have records in the cleaned log.
    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &self,
        source: &Source,
        tmp: &Path,
        end: i64,
        map: &HashMap<u128, i64>,
        outcomes: &Outcomes,
        txns: &mut TxnsWithData,
        stats: &mut CleanStats,
        io: &mut Throttle,
    ) -> Result<u64, LogError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .io_context("creating", tmp)?;
        let mut out = Output {
            writer: BufWriter::with_capacity(1 << 20, file),
            filler: None,
            path: tmp.to_path_buf(),
        };
        let mut original_end = source.base;
        let now = self.now_ms;
        // KIP-534: a tombstone or marker first reached now may go from this moment on.
        let new_horizon = now.saturating_add(self.config.delete_retention_ms.max(0));
        let expired = |h: &BatchHeader| h.delete_horizon().is_some_and(|t| t <= now);
        let mut removed = 0u64;
        let corrupt = |e: &dyn std::fmt::Display| LogError::corrupt(&source.path, e.to_string());
        for_each_batch(source, io, |header, bytes| {
            original_end = header.next_offset();
            let pid = header.producer_id;
            if header.base_offset >= end {
                txns.saw(header);
                stats.note_horizon(header.delete_horizon());
                return out.batch(bytes);
            }
            if header.is_control() {
                let had_data = txns.ended(pid);
                let marker = matches!(
                    control_type(bytes),
                    Ok(ControlType::Commit | ControlType::Abort)
                );
                if !marker {
                    return out.batch(bytes);
                }
                // A marker goes once its horizon has passed and its transaction has no
                // record left, unless it is the producer's last (it holds its epoch).
                let removable = !had_data && !outcomes.is_last_marker_of_producer(header);
                if removable && expired(header) {
                    removed += header.record_count.max(0) as u64;
                    return out.fill(header);
                }
                let stamped =
                    retain(bytes, |_| true, Some(new_horizon)).map_err(|e| corrupt(&e))?;
                return match stamped {
                    Retained::Some(marked) => {
                        if removable {
                            stats.note_horizon(Some(new_horizon));
                        }
                        out.batch(&marked)
                    }
                    _ => {
                        if removable {
                            stats.note_horizon(header.delete_horizon());
                        }
                        out.batch(bytes)
                    }
                };
            }
            if outcomes.undecided(header) {
                txns.saw(header);
                stats.note_horizon(header.delete_horizon());
                return out.batch(bytes);
            }
            // A producer's last batch always keeps its header, records or not (its
            // epoch and sequence are read from it at start-up).
            let last_of_producer = outcomes.is_last_of_producer(header);
            let mut drop_records = |out: &mut Output, txns: &mut TxnsWithData| {
                removed += header.record_count.max(0) as u64;
                if last_of_producer {
                    txns.saw(header);
                    out.batch(&emptied(header))
                } else {
                    out.fill(header)
                }
            };
            if !outcomes.visible(header) {
                return drop_records(&mut out, txns);
            }
            let keep = |r: &KeyedRecord| {
                let Some(key) = &r.key else { return true };
                let latest = map
                    .get(&XxHash3_128::oneshot(key))
                    .is_none_or(|&last| r.offset >= last);
                latest && !(r.tombstone && expired(header))
            };
            match retain(bytes, keep, Some(new_horizon)).map_err(|e| corrupt(&e))? {
                Retained::All => {
                    txns.saw(header);
                    stats.note_horizon(header.delete_horizon());
                    out.batch(bytes)
                }
                Retained::None => drop_records(&mut out, txns),
                Retained::Some(kept) => {
                    let new = BatchHeader::parse(&kept).map_err(|e| corrupt(&e))?;
                    txns.saw(&new);
                    stats.note_horizon(new.delete_horizon());
                    removed += (header.record_count - new.record_count).max(0) as u64;
                    out.batch(&kept)
                }
            }
        })?;
        out.finish()?;
        check_cleaned(tmp, source.base, original_end)?;
        Ok(removed)
    }
}

/// Producers whose current transaction still has records in the cleaned log: their
/// marker must stay (a reader needs it to decide those records).
#[derive(Default)]
struct TxnsWithData(HashSet<i64>);

impl TxnsWithData {
    /// A transactional data batch stays (whole, in part, or its header alone: a reader
    /// rebuilding producer state from it needs the marker too).
    fn saw(&mut self, header: &BatchHeader) {
        if header.is_transactional() && !header.is_control() {
            self.0.insert(header.producer_id);
        }
        if header.is_control() {
            self.0.remove(&header.producer_id);
        }
    }

    /// A marker ends the producer's transaction: did any of its records stay?
    fn ended(&mut self, producer_id: i64) -> bool {
        self.0.remove(&producer_id)
    }
}

impl CleanStats {
    fn note_horizon(&mut self, horizon: Option<i64>) {
        if let Some(h) = horizon {
            self.next_delete_horizon = Some(self.next_delete_horizon.map_or(h, |n| n.min(h)));
        }
    }
}

/// Checks a cleaned file before it may replace its original: every batch whole and
/// CRC-valid, offsets dense from `base` to `end` (what recovery will check).
fn check_cleaned(path: &Path, base: i64, end: i64) -> Result<(), LogError> {
    let file = File::open(path).io_context("opening", path)?;
    let size = file
        .metadata()
        .io_context("reading metadata of", path)?
        .len();
    let source = Source {
        base,
        path: path.to_path_buf(),
        file: Arc::new(file),
        size,
        last_modified_ms: 0,
    };
    let mut next = base;
    for_each_batch(&source, &mut Throttle::new(0), |header, _| {
        if header.base_offset != next {
            return Err(LogError::corrupt(
                path,
                format!(
                    "cleaned batch at offset {} where {next} was expected",
                    header.base_offset
                ),
            ));
        }
        next = header.next_offset();
        Ok(())
    })?;
    if next != end {
        return Err(LogError::corrupt(
            path,
            format!("cleaned segment ends at {next}, the original at {end}"),
        ));
    }
    Ok(())
}

/// The path a pass writes segment `base` to (a temp name: swept up at open).
fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.cleaned{TEMP_SUFFIX}"))
}

/// A cleaned segment being written: whole batches, and runs of removed offsets merged
/// into one empty batch per leader epoch.
struct Output {
    writer: BufWriter<File>,
    /// (first, last, leader epoch) of removed offsets not written yet.
    filler: Option<(i64, i64, i32)>,
    path: PathBuf,
}

impl Output {
    fn batch(&mut self, bytes: &[u8]) -> Result<(), LogError> {
        self.flush_filler()?;
        self.writer
            .write_all(bytes)
            .io_context("writing", &self.path)
    }

    fn fill(&mut self, header: &BatchHeader) -> Result<(), LogError> {
        self.fill_range(
            header.base_offset,
            header.last_offset(),
            header.partition_leader_epoch,
        )
    }

    fn fill_range(&mut self, first: i64, last: i64, epoch: i32) -> Result<(), LogError> {
        match &mut self.filler {
            Some((_, end, e))
                if *end + 1 == first && *e == epoch && last - *end < i64::from(i32::MAX) / 2 =>
            {
                *end = last;
                Ok(())
            }
            _ => {
                self.flush_filler()?;
                self.filler = Some((first, last, epoch));
                Ok(())
            }
        }
    }

    fn flush_filler(&mut self) -> Result<(), LogError> {
        if let Some((first, last, epoch)) = self.filler.take() {
            self.writer
                .write_all(&empty_batch(first, last, epoch))
                .io_context("writing", &self.path)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<(), LogError> {
        self.flush_filler()?;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| e.into_error())
            .io_context("writing", &self.path)?;
        file.sync_all().io_context("syncing", &self.path)
    }
}

/// Transaction outcomes and each producer's last batch, from every header of the log.
struct Outcomes {
    aborted: HashSet<(i64, i64)>,
    undecided: HashSet<(i64, i64)>,
    last_of_producer: HashMap<i64, i64>,
    /// Each producer's last control batch: it carries the producer's newest epoch.
    last_marker_of_producer: HashMap<i64, i64>,
}

impl Outcomes {
    fn scan(whole_log: &[Source], io: &mut Throttle) -> Result<Outcomes, LogError> {
        let mut open: HashMap<i64, Vec<i64>> = HashMap::new();
        let mut outcomes = Outcomes {
            aborted: HashSet::new(),
            undecided: HashSet::new(),
            last_of_producer: HashMap::new(),
            last_marker_of_producer: HashMap::new(),
        };
        for source in whole_log {
            let mut walker = HeaderWalker::new(&source.file, 0, source.size, SCAN_WINDOW_BYTES);
            while let Some((position, header)) = next_header(&mut walker, source)? {
                io.account(header.total_size() as u64);
                if !header.has_producer_id() {
                    continue;
                }
                let pid = header.producer_id;
                if header.is_control() {
                    outcomes
                        .last_marker_of_producer
                        .insert(pid, header.base_offset);
                    let bytes = read_batch(source, position, &header)?;
                    let ended = open.remove(&pid).unwrap_or_default();
                    if control_type(&bytes) == Ok(ControlType::Abort) {
                        outcomes.aborted.extend(ended.into_iter().map(|b| (pid, b)));
                    }
                    continue;
                }
                outcomes.last_of_producer.insert(pid, header.base_offset);
                if header.is_transactional() {
                    open.entry(pid).or_default().push(header.base_offset);
                }
            }
        }
        outcomes.undecided = open
            .into_iter()
            .flat_map(|(pid, bases)| bases.into_iter().map(move |b| (pid, b)))
            .collect();
        Ok(outcomes)
    }

    /// Whether a data batch's records count: not part of an aborted or open transaction.
    fn visible(&self, header: &BatchHeader) -> bool {
        !header.is_transactional()
            || !(self
                .aborted
                .contains(&(header.producer_id, header.base_offset))
                || self.undecided(header))
    }

    fn undecided(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self
                .undecided
                .contains(&(header.producer_id, header.base_offset))
    }

    fn is_last_marker_of_producer(&self, header: &BatchHeader) -> bool {
        self.last_marker_of_producer.get(&header.producer_id) == Some(&header.base_offset)
    }

    fn is_last_of_producer(&self, header: &BatchHeader) -> bool {
        header.has_producer_id()
            && self.last_of_producer.get(&header.producer_id) == Some(&header.base_offset)
    }
}

fn next_header(
    walker: &mut HeaderWalker<'_>,
    source: &Source,
) -> Result<Option<(u64, BatchHeader)>, LogError> {
    walker.next_header().map_err(|e| match e {
        WalkError::Malformed { .. } | WalkError::Io(_) => e.into_log_error(&source.path),
    })
}

fn read_batch(source: &Source, position: u64, header: &BatchHeader) -> Result<Vec<u8>, LogError> {
    let size = header.total_size();
    if size > MAX_BATCH_BYTES {
        return Err(LogError::corrupt(
            &source.path,
            format!("batch at byte {position} is {size} bytes, more than the cleaner reads"),
        ));
    }
    let mut bytes = vec![0; size];
    source
        .file
        .read_exact_at(&mut bytes, position)
        .io_context("reading batch from", &source.path)?;
    verify_crc(&bytes).map_err(|e| {
        LogError::corrupt(
            &source.path,
            format!("at byte {position}: {e}; not cleaned"),
        )
    })?;
    Ok(bytes)
}

/// Calls `f` with every batch of `source` (CRC checked).
fn for_each_batch(
    source: &Source,
    io: &mut Throttle,
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let mut walker = HeaderWalker::new(&source.file, 0, source.size, SCAN_WINDOW_BYTES);
    while let Some((position, header)) = next_header(&mut walker, source)? {
        let bytes = read_batch(source, position, &header)?;
        io.account(bytes.len() as u64);
        f(&header, &bytes)?;
    }
    Ok(())
}

/// `log.cleaner.io.max.bytes.per.second`: sleeps whenever the pass is ahead of it.
struct Throttle {
    limit: u64,
    started: Instant,
    bytes: u64,
}

impl Throttle {
    fn new(limit: u64) -> Self {
        Throttle {
            limit,
            started: Instant::now(),
            bytes: 0,
        }
    }

    fn account(&mut self, bytes: u64) {
        if self.limit == 0 {
            return;
        }
        self.bytes += bytes;
        let due = Duration::from_secs_f64(self.bytes as f64 / self.limit as f64);
        if let Some(ahead) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

impl Log {
    /// Everything below this offset has been cleaned at least once.
    pub fn cleaner_checkpoint(&self) -> i64 {
        self.cleaner_checkpoint
    }

    /// Plans a cleaning pass, if this log is due one: see the module docs. `upper_bound`
    /// is the caller's limit (its last stable offset and high watermark: records not
    /// stable yet are never cleaned).
    pub fn plan_clean(
        &self,
        upper_bound: i64,
        config: &CleanerConfig,
        now_ms: i64,
    ) -> Option<CleanJob> {
        let active_base = self.active.segment().base_offset();
        let mut limit = upper_bound.min(active_base);
        if config.min_compaction_lag_ms > 0 {
            let young = self.sealed.iter().find(|s| {
                now_ms.saturating_sub(s.largest_timestamp_ms()) < config.min_compaction_lag_ms
            });
            if let Some(young) = young {
                limit = limit.min(young.base_offset());
            }
        }
        let taken: Vec<&Segment> = self
            .sealed
            .iter()
            .take_while(|s| s.next_offset() <= limit)
            .collect();
        // The cleanable part ends where the first segment not taken starts.
        let limit = self
            .sealed
            .get(taken.len())
            .map_or(active_base, |s| s.base_offset());
        let first_dirty = self.cleaner_checkpoint.max(self.log_start_offset);
        let total: u64 = taken.iter().map(|s| s.size_bytes()).sum();
        let dirty: Vec<&&Segment> = taken
            .iter()
            .filter(|s| s.next_offset() > first_dirty)
            .collect();
        let dirty_bytes: u64 = dirty.iter().map(|s| s.size_bytes()).sum();
        // Tombstones or markers whose delete horizon has passed: a pass is due even
        // in a log with nothing dirty.
        let horizon_due = self.next_delete_horizon.is_some_and(|h| h <= now_ms);
        if total == 0 || (dirty_bytes == 0 && !horizon_due) {
            return None;
        }
        let ratio = dirty_bytes as f64 / total as f64;
        let overdue = dirty.first().is_some_and(|s| {
            now_ms.saturating_sub(s.largest_timestamp_ms()) > config.max_compaction_lag_ms
        });
        if ratio < config.min_cleanable_ratio && !overdue && !horizon_due {
            return None;
        }
        let source = |s: &Segment| Source {
            base: s.base_offset(),
            path: s.path().to_path_buf(),
            file: Arc::clone(s.file()),
            size: s.size_bytes(),
            last_modified_ms: s.last_modified_ms(),
        };
        Some(CleanJob {
            dir: self.dir.clone(),
            sources: taken.iter().map(|s| source(s)).collect(),
            whole_log: self
                .sealed
                .iter()
                .chain(std::iter::once(self.active.segment()))
                .map(source)
                .collect(),
            first_dirty,
            limit,
            config: config.clone(),
            now_ms,
        })
    }

    /// Puts the cleaned segments in place of their originals, oldest first, skipping
    /// any original that changed since the pass was planned (deleted by retention,
    /// truncated), then moves the cleaner checkpoint.
    pub fn install_clean(&mut self, cleaned: Cleaned) -> Result<CleanStats, LogError> {
        let policy = self.config.index_policy();
        let mut installed = 0;
        for (source, tmp) in cleaned.segments {
            let position = self.sealed.iter().position(|s| {
                s.base_offset() == source.base
                    && Arc::ptr_eq(s.file(), &source.file)
                    && s.size_bytes() == source.size
            });
            let Some(i) = position else {
                let _ = std::fs::remove_file(&tmp);
                continue;
            };
            // Retention by time falls back on the last write: keep the original's.
            let modified = std::time::UNIX_EPOCH
                + Duration::from_millis(u64::try_from(source.last_modified_ms).unwrap_or(0));
            File::options()
                .write(true)
                .open(&tmp)
                .and_then(|f| f.set_modified(modified))
                .io_context("setting the modification time of", &tmp)?;
            std::fs::rename(&tmp, &source.path).io_context("renaming", &tmp)?;
            sync_dir(&self.dir)?;
            let scanned = Segment::scan(&self.dir, source.base, &policy, self.now_ms)?;
            self.sealed[i] = scanned.repair(true)?;
            installed += 1;
        }
        sync_dir(&self.dir)?;
        if installed > 0 && self.next_delete_horizon != cleaned.stats.next_delete_horizon {
            self.next_delete_horizon = cleaned.stats.next_delete_horizon;
            match self.next_delete_horizon {
                Some(h) => checkpoint::write_offset(&self.dir, CLEANER_HORIZON_FILE, h)?,
                None => checkpoint::remove_if_exists(&self.dir.join(CLEANER_HORIZON_FILE))?,
            }
        }
        if installed > 0 && cleaned.end > self.cleaner_checkpoint {
            self.cleaner_checkpoint = cleaned.end;
            checkpoint::write_offset(&self.dir, CLEANER_OFFSET_FILE, cleaned.end)?;
        }
        Ok(cleaned.stats)
    }
}
