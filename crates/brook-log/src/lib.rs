//! One partition's log on disk: segments, sparse indexes, recovery, retention and the
//! flush policy. A pure library: no networking, no async runtime, no threads.
//!
//! Start reading at [`Log`]. The broker keeps each `Log` behind a lock, appends
//! batches it has validated, and serves fetches from [`ReadSlice`]s (a file range it
//! reads after releasing the lock).
//!
//! # On disk
//!
//! A partition directory holds:
//!
//! - `{base_offset:020}.log`: whole v2 record batches, exactly as produced, with base
//!   offset and leader epoch stamped in place (both outside the CRC). A batch never
//!   spans two segments; offsets are dense within a segment and increase across
//!   segments. Two segments are adjacent (one ends where the next begins) unless
//!   recovery dropped damaged data between them: then the log has a gap there, reads
//!   at an offset inside it return the next segment's first batch, and a follower
//!   copying such a log continues past the gap in a new segment.
//! - `{base_offset:020}.index`: sparse offset index, 8-byte entries (relative offset
//!   `u32`, byte position `u32`), one per `index.interval.bytes` of log.
//! - `{base_offset:020}.timeindex`: sparse time index, 12-byte entries (timestamp
//!   `i64`, relative offset `u32`), added at the same points when the segment's max
//!   timestamp has grown, plus a closing entry when the segment is sealed. See
//!   `index.rs` for the exact invariants.
//! - `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`: text files
//!   `"0\n{offset}\n"` (format version, offset), replaced atomically.
//! - `clean-shutdown`: present only between [`Log::close`] and the next [`Log::open`].
//!
//! All integers are big-endian. Indexes live in memory (about 20 bytes per
//! `index.interval.bytes` of log) and their files are written when a segment is sealed,
//! truncated, rebuilt or closed: they are append-only between those events.
//!
//! # Crash safety
//!
//! Writes go to the page cache with `pwritev` at the end of the active segment; an
//! append returns once the bytes are in the file, so a *process* crash (SIGKILL) loses
//! nothing that was acknowledged. What survives an *OS* crash or power loss depends on
//! the flush policy, which the caller carries out: `append` and `tick` never fsync;
//! [`Log::flush_messages_due`] and [`Log::sync_wanted`] say what is owed, and
//! [`Log::take_sync`] / [`PendingSync::run`] / [`Log::finish_sync`] let the caller run
//! the fsync without the lock it keeps the log behind (the broker does, so appends go
//! on during a sync and concurrent appenders share one). [`Log::sync_if_wanted`] does
//! all three in place. With the broker:
//!
//! | policy | guarantee |
//! |---|---|
//! | `flush.messages = 1` | every append is fsynced before it is acknowledged |
//! | `flush.messages = N` | at most N-1 unflushed offsets can be lost |
//! | `flush.ms = T` | data older than about T (plus the tick interval) is durable |
//! | defaults (never) | the OS writes back; the unflushed tail can be lost |
//!
//! Whatever is lost costs only the segment it was in: recovery cuts that segment at
//! its first torn or corrupt batch and keeps every later segment whose batches are
//! intact, at their offsets. After a crash the torn tail of the active segment is such
//! a cut, as it always was.
//!
//! The **recovery point** is the offset below which all log bytes are fsynced and every
//! segment wholly below it has complete, fsynced index files. It only moves forward
//! after the fsyncs that justify it (a rolled segment is fsynced when the caller next
//! runs what [`Log::sync_wanted`] asks for, not on the append path), and it is lowered durably before a
//! truncation starts. Its checkpoint is written on [`Log::flush`], at least every
//! minute from `tick` when it moved, and on close; a stale checkpoint is safe, it only
//! makes recovery scan more.
//!
//! On [`Log::open`] the clean-shutdown marker is removed (durably) before anything
//! else. Then every segment file is read, and only then is anything changed:
//!
//! - after a clean shutdown every segment is *trusted*: loaded from its index files,
//!   which are checked against a walk over every batch header (lengths, dense
//!   offsets, each index entry on the batch it names). No CRC is computed: the walk
//!   costs about what the broker's own walk at open (producer state) costs;
//! - otherwise segments wholly below the recovery point are trusted the same way, and
//!   the segment holding the recovery point and every later one are *recovered*: each
//!   batch is checked (header, magic, length within the file, CRC-32C, base offset
//!   exactly where the previous batch ended);
//! - a trusted segment that does not hold up (damaged headers, index files missing,
//!   of the wrong length or inconsistent) is recovered instead, with a warning;
//! - a segment file that cannot be placed (its first batch is intact but not at the
//!   offset its name says, or its intact offsets overlap another file's) makes the
//!   open fail with [`LogError::MisplacedSegment`] naming it: nothing is cut or
//!   deleted, since recovery cannot tell which bytes are the log's;
//! - each recovered segment is cut at its first bad batch (a warning names the file,
//!   the byte position and the offsets kept), its indexes are rebuilt and written
//!   atomically, and the result is fsynced. Later segments are kept; a gap between
//!   two segments is logged;
//! - the log never ends below the recovery point checkpoint: offsets below it were
//!   fsynced and may have been acknowledged (and committed by consumers), so if
//!   damage or a missing file took the end below it, the log continues at the
//!   recovery point in a new segment. A reader inside that hole gets nothing until
//!   the next append, then that record.
//!
//! Damage the open does not look for (a flipped byte inside a trusted segment's
//! records, covered only by the CRC) is reported by `brook check-log`; clients see
//! the CRC failure when they read it.
//!
//! Every length read from disk is checked against the bytes really present before it
//! is used; reads go through a bounded window, so a corrupt length never causes a
//! large allocation. Checkpoints and rebuilt indexes are written to a temp file,
//! fsynced and renamed, then the directory is fsynced. Segments are deleted oldest
//! first by retention and newest first by truncation, so a crash part-way never
//! leaves a hole; stray temp and index files are swept up on open. Recovery deletes
//! no segment that holds a batch, except those wholly below the log start offset
//! (already deleted as far as readers know).

mod check;
mod checkpoint;
mod clean;
mod config;
mod error;
mod index;
mod log;
mod reader;
mod recovery;
mod segment;
mod slice;
mod stamp;

pub use brook_protocol::batch::BatchHeader;
pub use check::{check_dir, is_partition_dir, CheckReport};
pub use clean::{CleanEnd, CleanJob, CleanStats, Cleaned, CleanedSegment, CleanerConfig};
pub use config::{LogConfig, MAX_SEGMENT_BYTES, NO_TIMESTAMP};
pub use error::LogError;
pub use log::{AppendInfo, Log, PendingSync, RECOVERY_POINT_CHECKPOINT_INTERVAL_MS};
pub use slice::ReadSlice;
pub use stamp::appended_headers;

#[cfg(test)]
mod tests;
