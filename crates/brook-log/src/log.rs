//! [`Log`]: one partition's segments, offsets, flushing and retention.

use std::collections::VecDeque;
use std::fs::File;
use std::iter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use brook_protocol::batch::BatchHeader;

use crate::checkpoint::{self, LOG_START_OFFSET_FILE, RECOVERY_POINT_FILE};
use crate::config::{LogConfig, NO_TIMESTAMP};
use crate::error::{IoContext, LogError};
use crate::recovery;
use crate::segment::{ActiveSegment, Segment};
use crate::slice::ReadSlice;
use crate::stamp::Stamped;

/// How often `tick` rewrites the recovery-point checkpoint when it has moved
/// (Kafka's `log.flush.offset.checkpoint.interval.ms` default). A stale checkpoint is
/// safe: recovery just scans more.
pub const RECOVERY_POINT_CHECKPOINT_INTERVAL_MS: i64 = 60_000;

/// fsyncs a [`Log`] owes, taken out of it ([`Log::take_sync`]) so they can run
/// without the lock the caller keeps the log behind, while appends go on.
#[derive(Debug)]
#[must_use = "the recovery point moves only when the job is handed to Log::finish_sync"]
pub struct PendingSync {
    /// Directories to fsync first: a new log's own and its parent's, whose entries
    /// must be durable before its data counts as durable.
    pub(crate) dirs: Vec<PathBuf>,
    files: Vec<(Arc<File>, PathBuf)>,
    /// The recovery point once every file is synced.
    up_to: i64,
    /// Every written byte (`flush.messages`/`flush.ms`), not only sealed segments.
    all: bool,
    generation: u64,
    taken_ms: i64,
}

impl PendingSync {
    /// fsyncs the files (log data and sealed segments' index files).
    pub fn run(&self) -> Result<(), LogError> {
        for dir in &self.dirs {
            checkpoint::sync_dir(dir)?;
        }
        for (file, path) in &self.files {
            file.sync_data().io_context("syncing", path)?;
        }
        Ok(())
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The largest batch max timestamp appended (the append time for LogAppendTime).
    pub max_timestamp: i64,
    pub log_append_time_ms: Option<i64>,
}

/// One partition's log on disk. Not thread-safe by itself: the broker keeps each
/// `Log` behind a lock and reads [`ReadSlice`]s outside it.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Segments that take no more appends, oldest first; all below `active`.
    pub(crate) sealed: VecDeque<Segment>,
    pub(crate) active: ActiveSegment,
    pub(crate) log_start_offset: i64,
    /// Everything below it has been compacted (see `clean.rs`).
    pub(crate) cleaner_checkpoint: i64,
    /// The earliest delete horizon the last cleaning pass left in the log
    /// (`cleaner-delete-horizon`).
    pub(crate) next_delete_horizon: Option<i64>,
    /// Everything below it is fsynced, and segments wholly below it have durable index
    /// files. Never above the log end offset.
    recovery_point: i64,
    checkpointed_recovery_point: i64,
    /// Moves whenever truncation lowers the recovery point, so a [`PendingSync`]
    /// taken before cannot raise it over bytes the job never saw.
    pub(crate) generation: u64,
    last_flush_ms: i64,
    last_checkpoint_ms: i64,
    /// The latest clock reading a caller passed in (flush has none of its own).
    pub(crate) now_ms: i64,
    recovered_segments: usize,
    /// A new log's directory and its parent are not fsynced yet (see
    /// [`PendingSync::dirs`]).
    dirs_unsynced: bool,
}

impl Log {
    /// Opens the log in `dir` (creating it if missing), recovering after a crash.
    pub fn open(dir: &Path, config: LogConfig, now_ms: i64) -> Result<Log, LogError> {
        let loaded = recovery::load(dir, &config, now_ms)?;
        let log_end_offset = loaded.active.segment().next_offset();
        // Recovery fsynced what it repaired; trusted segments were already durable. An
        // active segment recovery left as it was is durable up to the old recovery
        // point at most.
        let recovery_point = if loaded.active.segment().needs_sync() {
            let base = loaded.active.segment().base_offset();
            loaded
                .recovery_point_checkpoint
                .unwrap_or(0)
                .clamp(base, log_end_offset.max(base))
        } else {
            log_end_offset
        };
        let mut log = Log {
            dir: dir.to_path_buf(),
            config,
            sealed: loaded.sealed,
            active: loaded.active,
            log_start_offset: loaded.log_start_offset,
            cleaner_checkpoint: checkpoint::read_offset(dir, crate::clean::CLEANER_OFFSET_FILE)?
                .unwrap_or(0),
            next_delete_horizon: checkpoint::read_offset(dir, crate::clean::CLEANER_HORIZON_FILE)?,
            recovery_point,
            // A missing checkpoint reads as 0, so a new log needs none written.
            checkpointed_recovery_point: loaded.recovery_point_checkpoint.unwrap_or(0),
            generation: 0,
            last_flush_ms: now_ms,
            last_checkpoint_ms: now_ms,
            now_ms,
            recovered_segments: loaded.recovered_segments,
            dirs_unsynced: loaded.new_dir,
        };
        log.checkpoint_recovery_point()?;
        // A missing checkpoint reads as the first segment's base.
        let implied_start = log.segment_at(0).base_offset();
        if loaded.log_start_checkpoint.unwrap_or(implied_start) != log.log_start_offset {
            checkpoint::write_offset(&log.dir, LOG_START_OFFSET_FILE, log.log_start_offset)?;
        }
        if log.recovered_segments > 0 {
            tracing::info!(
                dir = %log.dir.display(),
                segments = log.segment_count(),
                log_start_offset = log.log_start_offset,
                log_end_offset,
                clean_shutdown = loaded.clean_shutdown,
                recovered_segments = log.recovered_segments,
                "recovered log"
            );
        } else {
            tracing::debug!(
                dir = %log.dir.display(),
                segments = log.segment_count(),
                log_start_offset = log.log_start_offset,
                log_end_offset,
                clean_shutdown = loaded.clean_shutdown,
                "opened log"
            );
        }
        Ok(log)
    }

    #[cfg(test)]
    pub(crate) fn roll_for_test(&mut self, now_ms: i64) {
        self.roll(now_ms).unwrap();
    }

    /// Takes effect from the next append or tick; existing segments are not rewritten.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to assign.
    pub fn log_end_offset(&self) -> i64 {
        self.active.segment().next_offset()
    }

    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// How many segments the last `open` checked batch by batch.
    pub fn recovered_segments(&self) -> usize {
        self.recovered_segments
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments().map(Segment::size_bytes).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.sealed.len() + 1
    }

    /// Base offsets of all segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments().map(Segment::base_offset).collect()
    }

    /// Appends whole v2 batches, already validated (framing, CRC) by the caller.
    ///
    /// Stamps base offsets (consecutive from the log end) and `leader_epoch` on their
    /// way to the file, leaving `batches` as it is (see `stamp.rs`), and with
    /// `log_append_time = Some(now)` marks each batch LogAppendTime. The
    /// batches go to one segment: it rolls first if they would not fit (size, age,
    /// full index, offset range). The fsync `flush.messages` may then ask for is the
    /// caller's ([`Log::flush_messages_due`]).
    pub fn append(
        &mut self,
        batches: &[u8],
        leader_epoch: i32,
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.now_ms = now_ms;
        let stamped = Stamped::new(
            batches,
            self.log_end_offset(),
            leader_epoch,
            log_append_time,
        )?;
        self.write(&stamped, now_ms)?;
        Ok(stamped.info())
    }

    /// Appends batches copied from a partition leader (a follower's append): offsets,
    /// leader epochs and timestamps are kept as the leader wrote them. Offsets must be
    /// dense and the first batch must start at the log end, or past it where the
    /// leader's log has a gap (its recovery dropped damaged data): the batches then
    /// start a segment of their own, as in the leader's log. Otherwise nothing is
    /// written.
    pub fn append_replicated(
        &mut self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        self.now_ms = now_ms;
        let stamped = Stamped::as_written(batches)?;
        let log_end_offset = self.log_end_offset();
        let first = stamped
            .headers()
            .next()
            .map_or(log_end_offset, |(_, h)| h.base_offset);
        let mut next = first.max(log_end_offset);
        for (_, header) in stamped.headers() {
            if header.base_offset != next {
                return Err(LogError::corrupt(
                    &self.dir,
                    format!(
                        "replicated batch starts at offset {} where offset {next} was expected \
                         (the log ends at {log_end_offset})",
                        header.base_offset
                    ),
                ));
            }
            next = header.next_offset();
        }
        if first > log_end_offset {
            self.skip_to(first, now_ms)?;
        }
        self.write(&stamped, now_ms)?;
        Ok(stamped.info())
    }

    /// Continues the log at `offset`, past its end, in a new segment, so that offsets
    /// stay dense within every segment and the gap lies between two of them.
    fn skip_to(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        tracing::warn!(
            dir = %self.dir.display(),
            missing_offsets = %format!("{}..{offset}", self.log_end_offset()),
            "the leader's log has a gap here; continuing past it"
        );
        if self.sealed.is_empty() && self.active.segment().is_empty() {
            return self.truncate_fully_and_start_at(offset);
        }
        if self.active.segment().is_empty() {
            let next = ActiveSegment::create(&self.dir, offset, now_ms)?;
            // It holds no batch: nothing is lost with it.
            std::mem::replace(&mut self.active, next)
                .into_sealed()
                .delete_files()?;
            return checkpoint::sync_dir(&self.dir);
        }
        self.roll_to(offset, now_ms)
    }

    /// Writes stamped batches to one segment, rolling first if they would not fit
    /// (size, age, full index, offset range). The fsync `flush.messages` asks for is the
    /// caller's to run, outside its lock: see [`Log::flush_messages_due`].
    fn write(&mut self, stamped: &Stamped<'_>, now_ms: i64) -> Result<(), LogError> {
        let last_offset = stamped.info().last_offset;
        let roll = self
            .active
            .roll_reason(stamped.len() as u64, last_offset, &self.config, now_ms);
        if let Some(reason) = roll {
            tracing::debug!(dir = %self.dir.display(), ?reason, "rolling segment");
            self.roll(now_ms)?;
        }
        self.active
            .append(stamped, &self.config.index_policy(), now_ms)
    }

    /// `flush.messages` offsets or more were appended since the last fsync.
    pub fn flush_messages_due(&self) -> bool {
        let unflushed = self.log_end_offset() - self.recovery_point;
        unflushed > 0
            && u64::try_from(unflushed).unwrap_or(0) >= self.config.flush_interval_messages
    }

    /// What the flush policy asks to fsync at `now_ms`: `Some(true)` everything
    /// (`flush.messages` or `flush.ms` reached), `Some(false)` the segments sealed
    /// since the last sync (Kafka flushes a rolled segment in the background), `None`
    /// nothing.
    pub fn sync_wanted(&self, now_ms: i64) -> Option<bool> {
        let unflushed = self.log_end_offset() > self.recovery_point;
        if self.flush_messages_due()
            || (unflushed
                && now_ms.saturating_sub(self.last_flush_ms) >= self.config.flush_interval_ms)
        {
            Some(true)
        } else if self.sealed.iter().any(Segment::needs_sync) {
            Some(false)
        } else {
            None
        }
    }

    /// Takes the fsyncs owed so far (every written byte with `all`, else the sealed
    /// segments), for the caller to [`PendingSync::run`] without holding its lock and
    /// hand back to [`Log::finish_sync`]. Appends may go on meanwhile. Sealed segments'
    /// index files are written now, and fsynced by the job.
    pub fn take_sync(&mut self, all: bool, now_ms: i64) -> Result<PendingSync, LogError> {
        self.now_ms = now_ms;
        let mut files = Vec::new();
        for segment in &mut self.sealed {
            files.extend(segment.begin_sync(true)?);
        }
        let up_to = if all {
            // The active segment's index files are not synced: after a crash it is
            // always recovered.
            files.extend(self.active.segment_mut().begin_sync(false)?);
            self.log_end_offset()
        } else {
            self.active.segment().base_offset()
        };
        let dirs = if self.dirs_unsynced {
            std::iter::once(self.dir.clone())
                .chain(self.dir.parent().map(Path::to_path_buf))
                .collect()
        } else {
            Vec::new()
        };
        Ok(PendingSync {
            dirs,
            files,
            up_to,
            all,
            generation: self.generation,
            taken_ms: now_ms,
        })
    }

    /// Completes a job from [`Log::take_sync`]: on success the recovery point moves up
    /// to what the job covered (unless the log was truncated meanwhile); on failure
    /// every segment counts as unsynced again and the error is returned.
    pub fn finish_sync(
        &mut self,
        job: PendingSync,
        outcome: Result<(), LogError>,
    ) -> Result<(), LogError> {
        if let Err(e) = outcome {
            for segment in &mut self.sealed {
                segment.mark_unsynced();
            }
            self.active.segment_mut().mark_unsynced();
            return Err(e);
        }
        if !job.dirs.is_empty() {
            self.dirs_unsynced = false;
        }
        if job.generation == self.generation {
            let covered = job.up_to.min(self.log_end_offset());
            self.recovery_point = self.recovery_point.max(covered);
        }
        if job.all {
            self.last_flush_ms = self.last_flush_ms.max(job.taken_ms);
        }
        Ok(())
    }

    /// Runs what [`Log::sync_wanted`] asks for, here and now (holding `self`).
    pub fn sync_if_wanted(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.now_ms = now_ms;
        match self.sync_wanted(now_ms) {
            Some(all) => self.sync_now(all),
            None => Ok(()),
        }
    }

    fn sync_now(&mut self, all: bool) -> Result<(), LogError> {
        let job = self.take_sync(all, self.now_ms)?;
        let outcome = job.run();
        self.finish_sync(job, outcome)
    }

    /// Empties the log and restarts it at `offset` (a follower that fell behind the
    /// leader's log start offset).
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        self.recovery_point = self.recovery_point.min(offset);
        self.generation += 1;
        self.checkpoint_recovery_point()?;
        self.truncate_fully_and_start_at(offset)
    }

    /// Whole batches starting with the one containing `offset`, up to `max_bytes`
    /// (at least one batch if `min_one_message`), never reaching
    /// `max_offset_exclusive` (e.g. the high watermark). Stays within one segment; an
    /// empty slice means nothing is readable yet.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset_exclusive: Option<i64>,
        min_one_message: bool,
    ) -> Result<ReadSlice, LogError> {
        self.check_in_range(offset)?;
        let log_end_offset = self.log_end_offset();
        let limit = max_offset_exclusive.map_or(log_end_offset, |m| m.min(log_end_offset));
        let first = self.segment_index_for(offset);
        if offset < limit {
            for segment in self.segments().skip(first) {
                if let Some(slice) = segment.read(offset, max_bytes, limit, min_one_message)? {
                    return Ok(slice);
                }
            }
        }
        let segment = self.segment_at(first);
        Ok(segment.empty_slice(segment.size_bytes(), offset))
    }

    /// ListOffsets by timestamp: the first record at or after the log start offset with
    /// timestamp >= `timestamp_ms`, as `(offset, timestamp)`.
    pub fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<(i64, i64)>, LogError> {
        let candidates = self.segments().filter(|s| {
            s.next_offset() > self.log_start_offset
                && s.max_timestamp().timestamp_ms >= timestamp_ms
        });
        for segment in candidates {
            let found = segment.find_offset_by_timestamp(timestamp_ms, self.log_start_offset)?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// ListOffsets MAX_TIMESTAMP: `(timestamp, offset)` of the first record carrying the
    /// largest timestamp in the log. `None` for an empty log or one without timestamps.
    pub fn max_timestamp_and_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        let mut best: Option<&Segment> = None;
        for segment in self.segments() {
            let live = segment.next_offset() > self.log_start_offset;
            let newer = match best {
                Some(b) => segment.max_timestamp().timestamp_ms > b.max_timestamp().timestamp_ms,
                None => true,
            };
            if live && newer && segment.max_timestamp().timestamp_ms > NO_TIMESTAMP {
                best = Some(segment);
            }
        }
        match best {
            Some(segment) => segment.max_timestamp_record(self.log_start_offset),
            None => Ok(None),
        }
    }

    /// DeleteRecords: moves the log start offset up to `offset` (durably, before any
    /// file is deleted) and deletes sealed segments wholly below it. Returns the new
    /// log start offset (the low watermark).
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if offset < 0 || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        if offset > self.log_start_offset {
            self.set_log_start_offset(offset)?;
            let now_ms = self.now_ms;
            self.delete_oldest_segments(now_ms, "log start offset", |segment, is_active| {
                !is_active && segment.next_offset() <= offset
            })?;
        }
        Ok(self.log_start_offset)
    }

    /// Deletes segments past `retention.ms`, then past `retention.bytes`, then wholly
    /// below the log start offset, oldest first. If every segment is to go, a non-empty
    /// active segment is rolled first, so the log keeps an (empty) active segment at the
    /// log end. Returns how many segments were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        self.now_ms = now_ms;
        let mut deleted = 0;
        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            deleted += self.delete_oldest_segments(now_ms, "retention.ms", |segment, _| {
                now_ms.saturating_sub(segment.largest_timestamp_ms()) > retention_ms
            })?;
        }
        let retention_bytes = self.config.retention_bytes;
        if retention_bytes >= 0 {
            let mut excess_bytes =
                i64::try_from(self.size_bytes()).unwrap_or(i64::MAX) - retention_bytes;
            deleted += self.delete_oldest_segments(now_ms, "retention.bytes", |segment, _| {
                let size = segment.size_bytes() as i64;
                let deletable = excess_bytes - size >= 0;
                if deletable {
                    excess_bytes -= size;
                }
                deletable
            })?;
        }
        let log_start_offset = self.log_start_offset;
        deleted +=
            self.delete_oldest_segments(now_ms, "log start offset", |segment, is_active| {
                !is_active && segment.next_offset() <= log_start_offset
            })?;
        Ok(deleted)
    }

    /// When [`Log::tick`] or [`Log::sync_wanted`] next has something to do, if ever:
    /// sealed segments to fsync (now), a `flush.ms` fsync, a `segment.ms` roll, or a
    /// recovery-point checkpoint. The broker keeps one deadline per log, so its
    /// periodic maintenance visits only the logs that owe something (at 10,000
    /// partitions, visiting each every 100 ms was most of an idle broker's work).
    /// Appends can only make it earlier by rolling, or by giving a log without a
    /// deadline its first unflushed record; the broker checks for those.
    pub fn next_maintenance_ms(&self) -> Option<i64> {
        if self.sealed.iter().any(Segment::needs_sync) {
            return Some(self.now_ms);
        }
        let flush = (self.log_end_offset() > self.recovery_point).then(|| {
            self.last_flush_ms
                .saturating_add(self.config.flush_interval_ms)
        });
        let roll = self.active.time_roll_at(&self.config);
        let checkpoint = (self.recovery_point != self.checkpointed_recovery_point).then(|| {
            self.last_checkpoint_ms
                .saturating_add(RECOVERY_POINT_CHECKPOINT_INTERVAL_MS)
        });
        [flush, roll, checkpoint].into_iter().flatten().min()
    }

    /// The base offset of the active segment: it changes when the log rolls.
    pub fn active_base_offset(&self) -> i64 {
        self.active.segment().base_offset()
    }

    /// Periodic work: roll by `segment.ms` and checkpoint the recovery point every
    /// [`RECOVERY_POINT_CHECKPOINT_INTERVAL_MS`]. The fsyncs `flush.ms` and sealed
    /// segments ask for are the caller's to run, outside its lock: see
    /// [`Log::sync_wanted`].
    pub fn tick(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.now_ms = now_ms;
        if self.active.time_roll_due(&self.config, now_ms) {
            tracing::debug!(dir = %self.dir.display(), "rolling segment: segment.ms");
            self.roll(now_ms)?;
        }
        if now_ms.saturating_sub(self.last_checkpoint_ms) >= RECOVERY_POINT_CHECKPOINT_INTERVAL_MS {
            self.checkpoint_recovery_point()?;
        }
        Ok(())
    }

    /// fsyncs everything written, moves the recovery point to the log end and
    /// checkpoints it.
    pub fn flush(&mut self) -> Result<(), LogError> {
        self.sync_all()?;
        self.checkpoint_recovery_point()
    }

    /// Drops every batch from the one containing `offset` on (so the log may end below
    /// `offset`). Below the first segment, the log is emptied and restarts at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        if offset < 0 {
            return Err(self.out_of_range(offset));
        }
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        // Lowered durably first: a crash part-way makes recovery re-check the rest.
        self.generation += 1;
        if offset < self.recovery_point {
            self.recovery_point = offset;
            self.checkpoint_recovery_point()?;
        }
        // What is appended again from `offset` on is dirty: the next cleaning pass must
        // see it (a tombstone never in a pass's map could otherwise go while older
        // values of its key stay).
        if offset < self.cleaner_checkpoint {
            self.cleaner_checkpoint = offset;
            checkpoint::write_offset(&self.dir, crate::clean::CLEANER_OFFSET_FILE, offset)?;
        }
        if offset < self.segment_at(0).base_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.active.segment().base_offset() > offset {
            let previous = self
                .sealed
                .pop_back()
                .expect("a segment starts at or below offset");
            let reopened = ActiveSegment::reopen_for_truncation(previous, self.now_ms);
            std::mem::replace(&mut self.active, reopened)
                .into_sealed()
                .delete_files()?;
        }
        self.active.truncate_to(offset)?;
        checkpoint::sync_dir(&self.dir)?;
        let log_end_offset = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(log_end_offset);
        self.checkpoint_recovery_point()?;
        if self.log_start_offset > log_end_offset {
            self.set_log_start_offset(log_end_offset)?;
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset, "truncated log");
        Ok(())
    }

    /// The headers of every batch from the one containing `from_offset` to the end.
    pub fn batch_headers_from(&self, from_offset: i64) -> Result<Vec<BatchHeader>, LogError> {
        let mut headers = Vec::new();
        self.visit_batch_headers_from(from_offset, |h| headers.push(*h))?;
        Ok(headers)
    }

    /// Like [`Log::batch_headers_from`] without collecting: reads only the 61-byte
    /// headers, through a small window.
    pub fn visit_batch_headers_from(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader),
    ) -> Result<(), LogError> {
        self.visit_batches_from(from_offset, |h, _| visit(h))
    }

    /// Like [`Log::visit_batch_headers_from`], and control batches (transaction
    /// markers) come with their bytes.
    pub fn visit_batches_from(
        &self,
        from_offset: i64,
        mut visit: impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<(), LogError> {
        let first = self.segment_index_for(from_offset);
        for segment in self.segments().skip(first) {
            segment.visit_headers(from_offset, &mut visit)?;
        }
        Ok(())
    }

    /// Flushes everything, index files included, checkpoints and writes the
    /// clean-shutdown marker, so the next open loads without scanning.
    pub fn close(mut self) -> Result<(), LogError> {
        self.active.finish_indexes()?;
        self.sync_sealed()?;
        self.active.segment_mut().sync(true)?;
        self.recovery_point = self.log_end_offset();
        self.checkpoint_recovery_point()?;
        checkpoint::write_clean_shutdown(&self.dir)?;
        tracing::debug!(dir = %self.dir.display(), "closed log");
        Ok(())
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).io_context("deleting log directory", &dir)
    }

    fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.sealed.iter().chain(iter::once(self.active.segment()))
    }

    fn segment_at(&self, index: usize) -> &Segment {
        self.sealed.get(index).unwrap_or(self.active.segment())
    }

    /// Index (in `segments()`) of the last segment starting at or below `offset`.
    fn segment_index_for(&self, offset: i64) -> usize {
        if self.active.segment().base_offset() <= offset {
            return self.sealed.len();
        }
        self.sealed
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1)
    }

    fn check_in_range(&self, offset: i64) -> Result<(), LogError> {
        if offset < self.log_start_offset || offset > self.log_end_offset() {
            return Err(self.out_of_range(offset));
        }
        Ok(())
    }

    fn out_of_range(&self, offset: i64) -> LogError {
        LogError::OffsetOutOfRange {
            offset,
            start: self.log_start_offset,
            end: self.log_end_offset(),
        }
    }

    /// Seals the active segment and starts a new one at the log end. The sealed
    /// segment is fsynced later (next flush or tick), not on the append path.
    fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        self.roll_to(self.log_end_offset(), now_ms)
    }

    /// Like [`Log::roll`], the new segment starting at `base_offset` (at or past the
    /// log end).
    fn roll_to(&mut self, base_offset: i64, now_ms: i64) -> Result<(), LogError> {
        debug_assert!(
            !self.active.segment().is_empty(),
            "rolling an empty segment"
        );
        debug_assert!(base_offset >= self.log_end_offset());
        self.active.finish_indexes()?;
        let next = ActiveSegment::create(&self.dir, base_offset, now_ms)?;
        let sealed = std::mem::replace(&mut self.active, next).into_sealed();
        self.sealed.push_back(sealed);
        Ok(())
    }

    /// fsyncs sealed segments that need it; the recovery point may then reach the
    /// active segment's base.
    fn sync_sealed(&mut self) -> Result<(), LogError> {
        self.sync_now(false)
    }

    /// fsyncs every written byte; the recovery point reaches the log end.
    fn sync_all(&mut self) -> Result<(), LogError> {
        self.sync_now(true)
    }

    fn checkpoint_recovery_point(&mut self) -> Result<(), LogError> {
        if self.recovery_point != self.checkpointed_recovery_point {
            checkpoint::write_offset(&self.dir, RECOVERY_POINT_FILE, self.recovery_point)?;
            self.checkpointed_recovery_point = self.recovery_point;
        }
        self.last_checkpoint_ms = self.now_ms;
        Ok(())
    }

    fn set_log_start_offset(&mut self, offset: i64) -> Result<(), LogError> {
        if offset != self.log_start_offset {
            checkpoint::write_offset(&self.dir, LOG_START_OFFSET_FILE, offset)?;
            self.log_start_offset = offset;
        }
        Ok(())
    }

    /// Deletes the longest run of oldest segments for which `deletable(segment,
    /// is_active)` holds (an empty active segment never counts), rolling first if that
    /// run includes the active segment. The log start offset follows.
    fn delete_oldest_segments(
        &mut self,
        now_ms: i64,
        reason: &str,
        mut deletable: impl FnMut(&Segment, bool) -> bool,
    ) -> Result<usize, LogError> {
        let sealed_count = self.sealed.len();
        let count = self
            .segments()
            .enumerate()
            .take_while(|&(i, segment)| {
                let is_active = i == sealed_count;
                !(is_active && segment.is_empty()) && deletable(segment, is_active)
            })
            .count();
        if count == 0 {
            return Ok(0);
        }
        if count > sealed_count {
            self.roll(now_ms)?;
        }
        for _ in 0..count {
            let segment = self.sealed.pop_front().expect("counted above");
            segment.delete_files()?;
        }
        let first_base = self.segment_at(0).base_offset();
        if first_base > self.log_start_offset {
            self.set_log_start_offset(first_base)?;
        }
        tracing::info!(
            dir = %self.dir.display(),
            segments = count,
            reason,
            log_start_offset = self.log_start_offset,
            "deleted segments"
        );
        Ok(count)
    }

    /// Drops every segment and starts an empty log at `offset`.
    fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.active.segment().delete_files()?;
        for segment in self.sealed.drain(..).rev() {
            segment.delete_files()?;
        }
        self.active = ActiveSegment::create(&self.dir, offset, self.now_ms)?;
        self.generation += 1;
        if offset < self.cleaner_checkpoint {
            self.cleaner_checkpoint = offset;
            checkpoint::write_offset(&self.dir, crate::clean::CLEANER_OFFSET_FILE, offset)?;
        }
        self.recovery_point = offset;
        self.checkpoint_recovery_point()?;
        self.set_log_start_offset(offset)?;
        tracing::info!(dir = %self.dir.display(), offset, "truncated log fully");
        Ok(())
    }
}
