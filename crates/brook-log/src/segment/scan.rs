//! Reading a segment at open: trusted (index files checked against a walk over every
//! batch header) or scanned batch by batch for recovery, which checks every segment
//! file this way before [`Scanned::repair`] changes any.

use std::path::Path;
use std::sync::Arc;

use brook_protocol::batch::{BatchHeader, BATCH_HEADER_LEN};

use super::{MaxTimestamp, Segment, MAX_RELATIVE_OFFSET};
use crate::config::{IndexPolicy, NO_TIMESTAMP};
use crate::error::{IoContext, LogError};
use crate::index::{Index, OffsetEntry, TimeEntry};
use crate::reader::{HeaderWalker, WalkError, SCAN_WINDOW_BYTES};

impl Segment {
    /// Loads a segment recovery trusts: its indexes from their files, checked against a
    /// walk over every batch header. `Ok(Err(reason))` when the index files or the
    /// headers do not hold up, and the segment must be checked batch by batch.
    pub fn load_trusted(
        dir: &Path,
        base_offset: i64,
        now_ms: i64,
    ) -> Result<Result<Segment, String>, LogError> {
        let (mut segment, file_size) = Segment::open_existing(dir, base_offset, now_ms)?;
        segment.size_bytes = file_size;
        // Each entry names a distinct batch, plus one closing time-index entry.
        let max_entries =
            usize::try_from(file_size / BATCH_HEADER_LEN as u64 + 2).unwrap_or(usize::MAX);
        let offsets = Index::read_file(segment.offsets.path(), max_entries)?;
        let times = Index::read_file(segment.times.path(), max_entries)?;
        let (Some(offsets), Some(times)) = (offsets, times) else {
            return Ok(Err("index file missing or of invalid length".into()));
        };
        segment.offsets = Index::loaded(segment.offsets.path().to_path_buf(), offsets);
        segment.times = Index::loaded(segment.times.path().to_path_buf(), times);
        let checked = segment
            .offsets
            .validate(file_size)
            .and_then(|()| segment.times.validate());
        if let Err(reason) = checked {
            return Ok(Err(reason));
        }
        match segment.walk_loaded() {
            Ok(walked) => {
                segment.next_offset = walked.next_offset;
                segment.max_timestamp = walked.max_timestamp;
                segment.bytes_since_index = walked.bytes_since_index;
                Ok(Ok(segment))
            }
            Err(WalkError::Malformed { position, reason }) => {
                Ok(Err(format!("at byte {position}: {reason}")))
            }
            Err(WalkError::Io(e)) => Err(e).io_context("reading", &segment.path),
        }
    }

    /// Walks every batch header of a segment loaded from its index files (no CRC: that
    /// is recovery's) and checks the indexes against them: each offset-index entry at
    /// the start of the batch it names, each time-index entry at a batch whose running
    /// max timestamp it holds. So a damaged length, offset or index entry anywhere in
    /// the segment is found at open, where recovery can cut just the damaged part, not
    /// by a reader later. The broker walks the same headers right after open to rebuild
    /// producer state, so the pass costs little more than that walk did alone.
    fn walk_loaded(&self) -> Result<Walked, WalkError> {
        let mut walker = self.walker(0);
        let mut offset_entries = self.offsets.entries().iter().peekable();
        let mut time_entries = self.times.entries().iter().peekable();
        let mut walked = Walked {
            next_offset: self.base_offset,
            max_timestamp: MaxTimestamp {
                timestamp_ms: NO_TIMESTAMP,
                batch_base_offset: self.base_offset,
            },
            bytes_since_index: self.size_bytes,
        };
        while let Some((position, header)) = walker.next_header()? {
            let malformed = |reason: String| WalkError::Malformed { position, reason };
            check_batch_offsets(self.base_offset, walked.next_offset, position, &header)
                .map_err(malformed)?;
            if header.max_timestamp > walked.max_timestamp.timestamp_ms {
                walked.max_timestamp = MaxTimestamp {
                    timestamp_ms: header.max_timestamp,
                    batch_base_offset: header.base_offset,
                };
            }
            let at_position = |e: &&OffsetEntry| u64::from(e.position) == position;
            if let Some(entry) = offset_entries.next_if(at_position) {
                if self.base_offset + i64::from(entry.relative_offset) != header.base_offset {
                    return Err(malformed(format!(
                        "offset index entry {entry:?} does not name the batch there, at offset {}",
                        header.base_offset
                    )));
                }
                walked.bytes_since_index = self.size_bytes - position;
            }
            let at_batch = |e: &&TimeEntry| {
                self.base_offset + i64::from(e.relative_offset) == header.base_offset
            };
            if let Some(entry) = time_entries.next_if(at_batch) {
                if entry.timestamp_ms != walked.max_timestamp.timestamp_ms {
                    return Err(malformed(format!(
                        "time index entry {entry:?} does not hold the max timestamp {} up to its batch",
                        walked.max_timestamp.timestamp_ms
                    )));
                }
            }
            walked.next_offset = header.next_offset();
        }
        let position = self.size_bytes;
        if let Some(entry) = offset_entries.next() {
            return Err(WalkError::Malformed {
                position,
                reason: format!("offset index entry {entry:?} is not at a batch start"),
            });
        }
        if let Some(entry) = time_entries.next() {
            return Err(WalkError::Malformed {
                position,
                reason: format!("time index entry {entry:?} names no batch of the segment"),
            });
        }
        Ok(walked)
    }

    /// Checks every batch of a segment file (framing, CRC-32C, offsets dense from the
    /// base) and rebuilds its indexes in memory, changing nothing on disk: recovery
    /// first makes sure every segment file fits in the log, then [`Scanned::repair`]
    /// cuts the file at the first bad batch.
    ///
    /// Refuses a file whose first batch is whole and intact but not at the offset its
    /// name says: those bytes belong elsewhere (a copied or misnamed file), and cutting
    /// them off would destroy them. A torn or damaged first batch is damage as anywhere.
    pub fn scan(
        dir: &Path,
        base_offset: i64,
        policy: &IndexPolicy,
        now_ms: i64,
    ) -> Result<Scanned, LogError> {
        let (mut segment, file_size) = Segment::open_existing(dir, base_offset, now_ms)?;
        let file = Arc::clone(&segment.file);
        let mut walker = HeaderWalker::new(&file, 0, file_size, SCAN_WINDOW_BYTES);
        let damage = loop {
            let checked = walker.next_header().and_then(|found| match found {
                Some((position, header)) => walker
                    .verify_crc(position, &header)
                    .map(|()| Some((position, header))),
                None => Ok(None),
            });
            let (position, header) = match checked {
                Ok(Some(found)) => found,
                Ok(None) => break None,
                Err(WalkError::Malformed { position, reason }) => break Some((position, reason)),
                Err(WalkError::Io(e)) => return Err(e).io_context("reading", &segment.path),
            };
            if position == 0 && header.base_offset != base_offset {
                return Err(LogError::MisplacedSegment {
                    path: segment.path.clone(),
                    reason: format!(
                        "its first batch is intact but starts at offset {}",
                        header.base_offset
                    ),
                });
            }
            let expected = segment.next_offset;
            if let Err(reason) = check_batch_offsets(base_offset, expected, position, &header) {
                break Some((position, reason));
            }
            segment.track_batch(position, &header, policy);
        };
        Ok(Scanned {
            segment,
            file_size,
            damage,
        })
    }
}

/// What a walk over every header of a segment loaded from its index files found.
struct Walked {
    next_offset: i64,
    max_timestamp: MaxTimestamp,
    bytes_since_index: u64,
}

/// Why the batch at `position` cannot follow the ones before it in a segment starting
/// at `base_offset`, where `expected` is the offset after the previous batch.
pub(super) fn check_batch_offsets(
    base_offset: i64,
    expected: i64,
    position: u64,
    header: &BatchHeader,
) -> Result<(), String> {
    // Base offsets sit outside the CRC, so density is the only check they get. Offsets
    // within a segment are dense, compacted ones included (the cleaner keeps each kept
    // batch's span over what it removed); a gap can only lie between two segments.
    if header.base_offset != expected {
        return Err(format!(
            "batch base offset {} where offset {expected} was expected",
            header.base_offset
        ));
    }
    if header.last_offset() - base_offset > MAX_RELATIVE_OFFSET {
        return Err(format!(
            "offset {} is too far above the segment base",
            header.last_offset()
        ));
    }
    if position > u64::from(u32::MAX) {
        return Err("segment is larger than 4 GiB".into());
    }
    Ok(())
}

/// A segment [`Segment::scan`] checked batch by batch, its file not changed yet.
#[derive(Debug)]
pub struct Scanned {
    /// The batches before the first bad one, indexed in memory.
    segment: Segment,
    file_size: u64,
    /// Where the first bad batch starts (the file is cut there), and why it is bad.
    damage: Option<(u64, String)>,
}

impl Scanned {
    /// The segment as it will be once repaired: its end is that of the intact batches.
    pub fn segment(&self) -> &Segment {
        &self.segment
    }

    /// The log's last segment, found whole: it stays as it is on disk, its indexes
    /// (rebuilt in memory) and data counted as not yet fsynced, so the usual flush
    /// policy writes them like any appended data. Nothing is written at open: a broker
    /// restarting after kill -9 with 10,000 partitions would otherwise create, fsync and
    /// rename two index files and a checkpoint per partition. A crash before the next
    /// sync finds the segment above the recovery point and checks it again. A damaged
    /// segment goes through [`Scanned::repair`] instead (see [`Scanned::is_whole`]).
    pub fn into_unsynced(self) -> Segment {
        debug_assert!(self.is_whole());
        let mut segment = self.segment;
        segment.mark_unsynced();
        segment
    }

    /// No bad batch was found: nothing to cut.
    pub fn is_whole(&self) -> bool {
        self.damage.is_none()
    }

    /// Cuts the file at the first bad batch (the only bytes recovery drops), fsyncs it
    /// and rewrites both indexes atomically (the caller syncs the directory). `sealed`:
    /// a later segment follows, so the time index gets its closing entry, as on seal.
    pub fn repair(self, sealed: bool) -> Result<Segment, LogError> {
        let Scanned {
            mut segment,
            file_size,
            damage,
        } = self;
        if let Some((position, reason)) = &damage {
            tracing::warn!(
                segment = %segment.path.display(),
                position,
                dropped_bytes = file_size - position,
                kept_offsets = %format!("{}..{}", segment.base_offset, segment.next_offset),
                reason = %reason,
                "truncating log segment at its first invalid batch"
            );
            segment
                .file
                .set_len(*position)
                .io_context("truncating", &segment.path)?;
        }
        segment
            .file
            .sync_data()
            .io_context("syncing", &segment.path)?;
        if sealed {
            segment.index_max_timestamp();
        }
        segment.offsets.rewrite()?;
        segment.times.rewrite()?;
        Ok(segment)
    }
}
