//! One segment: a `.log` file of whole batches plus its offset and time indexes.
//!
//! [`Segment`] is what every segment can do (reads, lookups, loading, sync, delete).
//! [`ActiveSegment`] wraps the one segment that takes appends; sealing it gives back a
//! plain `Segment`, so a sealed segment cannot be appended to by construction.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use brook_protocol::batch::BatchHeader;
use brook_protocol::records::decode_batches;
use bytes::Bytes;

mod scan;

use scan::check_batch_offsets;
pub use scan::Scanned;

use crate::checkpoint::{remove_if_exists, sync_dir};
use crate::config::{IndexPolicy, LogConfig, NO_TIMESTAMP};

/// Control batches larger than this are passed to visitors without their bytes (a
/// transaction marker is under 100 bytes).
const MAX_CONTROL_BATCH_BYTES: usize = 4096;
use crate::error::{IoContext, LogError};
use crate::index::{Index, OffsetEntry, TimeEntry};
use crate::reader::{HeaderWalker, WalkError, HEADER_WINDOW_BYTES};
use crate::slice::ReadSlice;
use crate::stamp::Stamped;

pub const LOG_SUFFIX: &str = ".log";
pub const INDEX_SUFFIX: &str = ".index";
pub const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Relative offsets are stored as `u32`; like Kafka, Brook keeps them within `i32`.
const MAX_RELATIVE_OFFSET: i64 = i32::MAX as i64;

/// `00000000000000000042.log` and friends.
pub fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Parses a file name made by [`segment_path`] with the given suffix.
pub fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The largest timestamp in a segment and the base offset of the first batch that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxTimestamp {
    pub timestamp_ms: i64,
    pub batch_base_offset: i64,
}

/// Why the active segment rolls before an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollReason {
    SegmentBytes,
    SegmentMs,
    IndexFull,
    OffsetRange,
}

#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    path: PathBuf,
    file: Arc<File>,
    size_bytes: u64,
    next_offset: i64,
    offsets: Index<OffsetEntry>,
    times: Index<TimeEntry>,
    max_timestamp: MaxTimestamp,
    /// Log bytes since the last indexed batch started (or since the segment start).
    bytes_since_index: u64,
    /// Wall-clock time of the last append; retention's fallback for segments without
    /// timestamps.
    last_modified_ms: i64,
    unsynced_data: bool,
    unsynced_indexes: bool,
}

impl Segment {
    fn with_file(dir: &Path, base_offset: i64, file: File, last_modified_ms: i64) -> Segment {
        Segment {
            base_offset,
            path: segment_path(dir, base_offset, LOG_SUFFIX),
            file: Arc::new(file),
            size_bytes: 0,
            next_offset: base_offset,
            offsets: Index::empty(segment_path(dir, base_offset, INDEX_SUFFIX)),
            times: Index::empty(segment_path(dir, base_offset, TIME_INDEX_SUFFIX)),
            max_timestamp: MaxTimestamp {
                timestamp_ms: NO_TIMESTAMP,
                batch_base_offset: base_offset,
            },
            bytes_since_index: 0,
            last_modified_ms,
            unsynced_data: false,
            unsynced_indexes: false,
        }
    }

    /// Opens an existing segment file with empty indexes and no batches accounted for.
    fn open_existing(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<(Segment, u64), LogError> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .io_context("opening segment", &path)?;
        let metadata = file.metadata().io_context("reading metadata of", &path)?;
        let modified_ms = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(now_ms, |d| i64::try_from(d.as_millis()).unwrap_or(now_ms));
        Ok((
            Segment::with_file(dir, base_offset, file, modified_ms),
            metadata.len(),
        ))
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
    pub fn max_timestamp(&self) -> MaxTimestamp {
        self.max_timestamp
    }
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }
    /// Wall-clock time of the last write (the file's modification time at open).
    pub(crate) fn last_modified_ms(&self) -> i64 {
        self.last_modified_ms
    }
    pub fn needs_sync(&self) -> bool {
        self.unsynced_data || self.unsynced_indexes
    }

    /// The timestamp retention.ms compares: the largest record timestamp, or the time
    /// of the last append when the segment has none.
    pub fn largest_timestamp_ms(&self) -> i64 {
        if self.max_timestamp.timestamp_ms > NO_TIMESTAMP {
            self.max_timestamp.timestamp_ms
        } else {
            self.last_modified_ms
        }
    }

    fn relative(&self, offset: i64) -> u32 {
        offset
            .saturating_sub(self.base_offset)
            .clamp(0, i64::from(u32::MAX)) as u32
    }

    fn walker(&self, start: u64) -> HeaderWalker<'_> {
        HeaderWalker::new(&self.file, start, self.size_bytes, HEADER_WINDOW_BYTES)
    }

    fn next_header(
        &self,
        walker: &mut HeaderWalker<'_>,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        walker
            .next_header()
            .map_err(|e| e.into_log_error(&self.path))
    }

    /// A header walk from an offset-index entry (or the segment start). Only the last
    /// entry is checked on load, so the walk checks that the entry's position really
    /// holds the batch it names: a damaged entry gives `Corrupt`, never wrong batches.
    fn walk_from(&self, entry: Option<OffsetEntry>) -> Result<HeaderWalker<'_>, LogError> {
        let Some(entry) = entry else {
            return Ok(self.walker(0));
        };
        let position = u64::from(entry.position);
        let mut walker = self.walker(position);
        let expected = self.base_offset + i64::from(entry.relative_offset);
        match self.next_header(&mut walker)? {
            Some((_, header)) if header.base_offset == expected => {
                walker.rewind(position);
                Ok(walker)
            }
            _ => Err(LogError::corrupt(
                &self.path,
                format!("offset index entry {entry:?} does not point at offset {expected}"),
            )),
        }
    }

    /// The first batch whose last offset is at or after `offset` (the batch containing
    /// it in a dense log), found from the nearest offset-index entry.
    pub fn translate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let entry = self.offsets.floor_offset(self.relative(offset));
        let mut walker = self.walk_from(entry)?;
        while let Some((position, header)) = self.next_header(&mut walker)? {
            if header.next_offset() > offset {
                return Ok(Some((position, header)));
            }
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset`, ending at or before
    /// `limit_offset` and within `max_bytes` (but at least one batch if
    /// `min_one_message`). `None` if this segment has nothing at or after `offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit_offset: i64,
        min_one_message: bool,
    ) -> Result<Option<ReadSlice>, LogError> {
        let Some((start, first)) = self.translate(offset)? else {
            return Ok(None);
        };
        if first.next_offset() > limit_offset {
            return Ok(Some(self.empty_slice(start, offset)));
        }
        let limit_end = match self.translate(limit_offset)? {
            Some((position, _)) => position,
            None => self.size_bytes,
        };
        let max_end = limit_end.min(start.saturating_add(max_bytes as u64));
        let (mut end, mut next_offset) = self.last_boundary_within(start, max_end)?;
        if end == start {
            if !min_one_message {
                return Ok(Some(self.empty_slice(start, offset)));
            }
            end = start + first.total_size() as u64;
            next_offset = first.next_offset();
        }
        Ok(Some(ReadSlice {
            file: Arc::clone(&self.file),
            position: start,
            len: (end - start) as usize,
            first_offset: first.base_offset,
            next_offset_hint: next_offset,
        }))
    }

    pub fn empty_slice(&self, position: u64, offset: i64) -> ReadSlice {
        ReadSlice {
            file: Arc::clone(&self.file),
            position,
            len: 0,
            first_offset: offset,
            next_offset_hint: offset,
        }
    }

    /// The last batch boundary at or before `max_end` (and at or after the batch start
    /// `start`), with the offset that follows it. Jumps close with the offset index by
    /// position, so a large read walks only about `index.interval.bytes` of headers.
    fn last_boundary_within(&self, start: u64, max_end: u64) -> Result<(u64, i64), LogError> {
        if max_end >= self.size_bytes {
            return Ok((self.size_bytes, self.next_offset));
        }
        let entry = self
            .offsets
            .floor_position(max_end.min(u64::from(u32::MAX)) as u32)
            .filter(|e| u64::from(e.position) >= start);
        let mut walker = match entry {
            Some(_) => self.walk_from(entry)?,
            None => self.walker(start),
        };
        loop {
            let position = walker.position();
            match self.next_header(&mut walker)? {
                None => return Ok((position, self.next_offset)),
                Some((_, header)) if position + header.total_size() as u64 > max_end => {
                    return Ok((position, header.base_offset))
                }
                Some(_) => {}
            }
        }
    }

    /// Calls `visit` with the header of every batch from the one containing `from_offset`.
    ///
    /// Control batches (transaction markers, a few dozen bytes) also come whole, so the
    /// caller can read their record without a second pass.
    pub fn visit_headers(
        &self,
        from_offset: i64,
        visit: &mut impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<(), LogError> {
        let Some((start, _)) = self.translate(from_offset)? else {
            return Ok(());
        };
        let mut walker = self.walker(start);
        let mut control = Vec::new();
        while let Some((position, header)) = self.next_header(&mut walker)? {
            if header.is_control() && header.total_size() <= MAX_CONTROL_BATCH_BYTES {
                // The header walk checked that the whole batch lies inside the file.
                control.resize(header.total_size(), 0);
                self.file
                    .read_exact_at(&mut control, position)
                    .io_context("reading control batch from", &self.path)?;
                visit(&header, Some(&control));
            } else {
                visit(&header, None);
            }
        }
        Ok(())
    }

    /// The first record at or after `min_offset` with timestamp >= `target_ms`, as
    /// `(offset, timestamp)`. Starts at the batch the time index vouches for.
    pub fn find_offset_by_timestamp(
        &self,
        target_ms: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let from = self
            .times
            .floor_timestamp(target_ms)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            })
            .max(min_offset);
        let Some((start, _)) = self.translate(from)? else {
            return Ok(None);
        };
        let mut walker = self.walker(start);
        while let Some((position, header)) = self.next_header(&mut walker)? {
            if header.max_timestamp < target_ms || header.next_offset() <= min_offset {
                continue;
            }
            let found = self.exact_record(position, &header, min_offset, |ts| ts >= target_ms)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// `(timestamp, offset)` of the first record at or after `min_offset` carrying the
    /// segment's largest timestamp.
    pub fn max_timestamp_record(&self, min_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        let MaxTimestamp {
            timestamp_ms,
            batch_base_offset,
        } = self.max_timestamp;
        if timestamp_ms <= NO_TIMESTAMP {
            return Ok(None);
        }
        let Some((start, _)) = self.translate(batch_base_offset.max(min_offset))? else {
            return Ok(None);
        };
        let mut walker = self.walker(start);
        while let Some((position, header)) = self.next_header(&mut walker)? {
            if header.max_timestamp != timestamp_ms {
                continue;
            }
            let found =
                self.exact_record(position, &header, min_offset, |ts| ts == timestamp_ms)?;
            let (offset, _) = found.unwrap_or((header.last_offset(), timestamp_ms));
            return Ok(Some((timestamp_ms, offset)));
        }
        Ok(None)
    }

    /// The first record of the batch at `position` with offset >= `min_offset` whose
    /// timestamp satisfies `wanted`, as `(offset, timestamp)`. A LogAppendTime batch
    /// gives every record the batch's max timestamp, so it needs no decoding.
    fn exact_record(
        &self,
        position: u64,
        header: &BatchHeader,
        min_offset: i64,
        wanted: impl Fn(i64) -> bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        if header.is_log_append_time() {
            let found = wanted(header.max_timestamp)
                .then(|| (header.base_offset.max(min_offset), header.max_timestamp));
            return Ok(found);
        }
        // The header walk checked that the whole batch lies inside the file.
        let mut bytes = vec![0; header.total_size()];
        self.file
            .read_exact_at(&mut bytes, position)
            .io_context("reading batch from", &self.path)?;
        let records = decode_batches(Bytes::from(bytes))
            .map_err(|e| LogError::corrupt(&self.path, format!("at byte {position}: {e}")))?;
        Ok(records
            .iter()
            .find(|r| r.offset >= min_offset && wanted(r.timestamp_ms))
            .map(|r| (r.offset, r.timestamp_ms)))
    }

    fn indexes_full(&self, policy: &IndexPolicy) -> bool {
        self.offsets.len() >= policy.max_offset_entries
            || self.times.len() >= policy.max_time_entries
    }

    /// Accounts for one batch written at `position`: size, next offset, the running
    /// max timestamp, and index entries every `index.interval.bytes`. Appends and
    /// recovery share this, so a rebuilt index equals the one appends built.
    fn track_batch(&mut self, position: u64, header: &BatchHeader, policy: &IndexPolicy) {
        let index_here = self.bytes_since_index >= policy.interval_bytes
            && !self.indexes_full(policy)
            && position <= u64::from(u32::MAX);
        if header.max_timestamp > self.max_timestamp.timestamp_ms {
            self.max_timestamp = MaxTimestamp {
                timestamp_ms: header.max_timestamp,
                batch_base_offset: header.base_offset,
            };
        }
        if index_here {
            self.offsets.push(OffsetEntry {
                relative_offset: self.relative(header.base_offset),
                position: position as u32,
            });
            self.index_max_timestamp();
            self.bytes_since_index = 0;
        }
        let size = header.total_size() as u64;
        self.bytes_since_index += size;
        self.size_bytes = position + size;
        self.next_offset = header.next_offset();
    }

    /// Adds a time-index entry if the running max timestamp is newer than the last one.
    fn index_max_timestamp(&mut self) {
        let last = self.times.last().map_or(NO_TIMESTAMP, |e| e.timestamp_ms);
        if self.max_timestamp.timestamp_ms > last {
            self.times.push(TimeEntry {
                timestamp_ms: self.max_timestamp.timestamp_ms,
                relative_offset: self.relative(self.max_timestamp.batch_base_offset),
            });
        }
    }

    /// Recomputes the end, the running max timestamp and the index interval counter by
    /// walking headers from the last offset-index entry, given indexes that are correct
    /// for the bytes before it and `size_bytes` set to the segment's end.
    ///
    /// At an indexed batch the running max equals the last time-index entry written so
    /// far, so starting from the last time entry and walking from the last offset entry
    /// sees every batch that could raise it.
    fn rescan_tail(&mut self) -> Result<(), WalkError> {
        let last_indexed = self.offsets.last().copied();
        let start = last_indexed.map_or(0, |e| u64::from(e.position));
        self.next_offset =
            self.base_offset + last_indexed.map_or(0, |e| i64::from(e.relative_offset));
        self.max_timestamp = self.times.last().map_or(
            MaxTimestamp {
                timestamp_ms: NO_TIMESTAMP,
                batch_base_offset: self.base_offset,
            },
            |e| MaxTimestamp {
                timestamp_ms: e.timestamp_ms,
                batch_base_offset: self.base_offset + i64::from(e.relative_offset),
            },
        );
        let file = Arc::clone(&self.file);
        let mut walker = HeaderWalker::new(&file, start, self.size_bytes, HEADER_WINDOW_BYTES);
        while let Some((position, header)) = walker.next_header()? {
            check_batch_offsets(self.base_offset, self.next_offset, position, &header)
                .map_err(|reason| WalkError::Malformed { position, reason })?;
            if header.max_timestamp > self.max_timestamp.timestamp_ms {
                self.max_timestamp = MaxTimestamp {
                    timestamp_ms: header.max_timestamp,
                    batch_base_offset: header.base_offset,
                };
            }
            self.next_offset = header.next_offset();
        }
        let last_timed = self
            .times
            .last()
            .map(|e| self.base_offset + i64::from(e.relative_offset));
        if last_timed.is_some_and(|offset| offset >= self.next_offset) {
            return Err(WalkError::Malformed {
                position: self.size_bytes,
                reason: "time index points past the end of the segment".into(),
            });
        }
        self.bytes_since_index = self.size_bytes - start;
        Ok(())
    }

    /// Drops every batch from the one containing `offset`; durable before returning.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        let Some((cut, header)) = self.translate(offset)? else {
            return Ok(());
        };
        self.file
            .set_len(cut)
            .io_context("truncating", &self.path)?;
        self.file.sync_data().io_context("syncing", &self.path)?;
        self.size_bytes = cut;
        self.offsets.truncate_to_position(cut);
        self.times
            .truncate_to_offset(self.relative(header.base_offset));
        self.rescan_tail()
            .map_err(|e| e.into_log_error(&self.path))?;
        self.offsets.persist(false)?;
        self.times.persist(false)?;
        self.unsynced_indexes = true;
        Ok(())
    }

    /// fsyncs the log file and, if asked, brings the index files up to date and fsyncs
    /// them too.
    pub fn sync(&mut self, include_indexes: bool) -> Result<(), LogError> {
        if self.unsynced_data {
            self.file.sync_data().io_context("syncing", &self.path)?;
            self.unsynced_data = false;
        }
        if include_indexes && self.unsynced_indexes {
            self.offsets.persist(true)?;
            self.times.persist(true)?;
            self.unsynced_indexes = false;
        }
        Ok(())
    }

    /// Starts a sync to run outside the log's lock: the log file if it has unsynced
    /// data and, if asked, the index files brought up to date (written now, fsynced by
    /// whoever runs the returned files). Until [`Segment::mark_unsynced`], the segment
    /// counts as synced.
    pub fn begin_sync(
        &mut self,
        include_indexes: bool,
    ) -> Result<Vec<(Arc<File>, PathBuf)>, LogError> {
        let mut files = Vec::new();
        if self.unsynced_data {
            files.push((Arc::clone(&self.file), self.path.clone()));
            self.unsynced_data = false;
        }
        if include_indexes && self.unsynced_indexes {
            files.push(self.offsets.persist(false)?);
            files.push(self.times.persist(false)?);
            self.unsynced_indexes = false;
        }
        Ok(files)
    }

    /// A sync begun with [`Segment::begin_sync`] failed: everything is owed again.
    pub fn mark_unsynced(&mut self) {
        self.unsynced_data = true;
        self.unsynced_indexes = true;
    }

    /// Deletes the segment's files (log first: an index without its log is swept up on
    /// the next open). Readers holding the `Arc<File>` can still finish.
    pub fn delete_files(&self) -> Result<(), LogError> {
        remove_if_exists(&self.path)?;
        self.offsets.delete_file()?;
        self.times.delete_file()
    }
}

/// The segment that takes appends.
#[derive(Debug)]
pub struct ActiveSegment {
    segment: Segment,
    /// When segment.ms starts counting: the first append's wall-clock time (after a
    /// restart, the first batch's timestamp if it has one, capped at now).
    roll_basis_ms: Option<i64>,
}

impl ActiveSegment {
    /// Creates an empty segment file (replacing any stale file of that name: nothing at
    /// or above the log end offset is ours) and syncs the directory.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> Result<ActiveSegment, LogError> {
        let active = Self::create_unsynced(dir, base_offset, now_ms)?;
        sync_dir(dir)?;
        Ok(active)
    }

    /// [`ActiveSegment::create`] without the directory fsync: for a brand-new log, whose
    /// directories are fsynced before its first data fsync instead (see
    /// `Log::take_sync`), so creating many partitions costs no fsync each.
    pub fn create_unsynced(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<ActiveSegment, LogError> {
        let path = segment_path(dir, base_offset, LOG_SUFFIX);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .io_context("creating segment", &path)?;
        let segment = Segment::with_file(dir, base_offset, file, now_ms);
        segment.offsets.delete_file()?;
        segment.times.delete_file()?;
        Ok(ActiveSegment {
            segment,
            roll_basis_ms: None,
        })
    }

    /// Makes a segment loaded at start-up the active one. segment.ms keeps counting
    /// from its first batch's timestamp (capped at now), as Kafka does.
    pub fn reopen(segment: Segment, now_ms: i64) -> Result<ActiveSegment, LogError> {
        let first = segment.translate(segment.base_offset)?;
        let roll_basis_ms = first.map(|(_, header)| match header.max_timestamp {
            ts if ts > NO_TIMESTAMP => ts.min(now_ms),
            _ => now_ms,
        });
        Ok(ActiveSegment {
            segment,
            roll_basis_ms,
        })
    }

    /// Makes a sealed segment active again because the log is being truncated into it;
    /// segment.ms restarts from now.
    pub fn reopen_for_truncation(segment: Segment, now_ms: i64) -> ActiveSegment {
        let roll_basis_ms = (!segment.is_empty()).then_some(now_ms);
        ActiveSegment {
            segment,
            roll_basis_ms,
        }
    }

    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    pub fn segment_mut(&mut self) -> &mut Segment {
        &mut self.segment
    }

    /// Whether an append of `append_bytes` ending at `last_offset` must go to a new
    /// segment. An empty segment takes any append, however large.
    pub fn roll_reason(
        &self,
        append_bytes: u64,
        last_offset: i64,
        config: &LogConfig,
        now_ms: i64,
    ) -> Option<RollReason> {
        let segment = &self.segment;
        if segment.is_empty() {
            return None;
        }
        if segment.size_bytes + append_bytes > config.effective_segment_bytes() {
            Some(RollReason::SegmentBytes)
        } else if self.time_roll_due(config, now_ms) {
            Some(RollReason::SegmentMs)
        } else if segment.indexes_full(&config.index_policy()) {
            Some(RollReason::IndexFull)
        } else if last_offset - segment.base_offset > MAX_RELATIVE_OFFSET {
            Some(RollReason::OffsetRange)
        } else {
            None
        }
    }

    /// When segment.ms will have passed since the segment's first append (`None` for
    /// an empty segment).
    pub fn time_roll_at(&self, config: &LogConfig) -> Option<i64> {
        if self.segment.is_empty() {
            return None;
        }
        self.roll_basis_ms
            .map(|basis| basis.saturating_add(config.segment_ms).saturating_add(1))
    }

    /// segment.ms has passed since the segment's first append.
    pub fn time_roll_due(&self, config: &LogConfig, now_ms: i64) -> bool {
        !self.segment.is_empty()
            && self
                .roll_basis_ms
                .is_some_and(|basis| now_ms.saturating_sub(basis) > config.segment_ms)
    }

    /// Writes whole, stamped batches at the end and indexes them. On a failed write the
    /// file is cut back so no partial batch stays behind.
    pub fn append(
        &mut self,
        batches: &Stamped<'_>,
        policy: &IndexPolicy,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let segment = &mut self.segment;
        let position = segment.size_bytes;
        if let Err(e) = write_all_vectored_at(&segment.file, &mut batches.io_slices(), position) {
            let _ = segment.file.set_len(position);
            return Err(e).io_context("appending to", &segment.path);
        }
        for (start, header) in batches.headers() {
            segment.track_batch(position + start as u64, header, policy);
        }
        segment.unsynced_data = true;
        segment.last_modified_ms = now_ms;
        self.roll_basis_ms.get_or_insert(now_ms);
        Ok(())
    }

    /// Writes the closing time-index entry (the segment's max timestamp) and every
    /// pending index entry to the files, without fsync: recovery trusts these files
    /// only once a later fsync has moved the recovery point past the segment, or a
    /// clean shutdown has synced them.
    pub fn finish_indexes(&mut self) -> Result<(), LogError> {
        let segment = &mut self.segment;
        segment.index_max_timestamp();
        segment.offsets.persist(false)?;
        segment.times.persist(false)?;
        segment.unsynced_indexes = true;
        Ok(())
    }

    /// Drops every batch from the one containing `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        self.segment.truncate_to(offset)?;
        if self.segment.is_empty() {
            self.roll_basis_ms = None;
        }
        Ok(())
    }

    /// Seals the segment: it takes no more appends. Call `finish_indexes` first.
    pub fn into_sealed(self) -> Segment {
        self.segment
    }
}

/// The most buffers one `pwritev` takes (Linux's `IOV_MAX`).
const MAX_IO_SLICES: usize = 1024;

/// `pwritev` until every byte of `slices` is in the file from `position` on.
fn write_all_vectored_at(
    file: &File,
    mut slices: &mut [IoSlice<'_>],
    mut position: u64,
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let batch = &slices[..slices.len().min(MAX_IO_SLICES)];
        let offset = i64::try_from(position).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "file position beyond i64")
        })?;
        match nix::sys::uio::pwritev(file, batch, offset) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => {
                position += written as u64;
                IoSlice::advance_slices(&mut slices, written);
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
