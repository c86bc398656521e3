//! A leader's append without a copy: the broker assigns offsets and the leader epoch
//! to batches it received, and both fields sit in the first 16 bytes of a batch,
//! outside the CRC. So the file gets, per batch, a freshly stamped 16-byte prefix
//! followed by the rest of the caller's bytes, in one vectored write; the caller's
//! buffer (the request) is never copied or changed.
//!
//! LogAppendTime is the exception: it rewrites the attributes and max timestamp, which
//! the CRC covers, so those batches are copied and stamped whole.

use std::borrow::Cow;
use std::io::IoSlice;
use std::ops::Range;

use brook_protocol::batch::{
    self, BatchError, BatchHeader, BatchIter, ATTR_LOG_APPEND_TIME, BATCH_HEADER_LEN,
};

use crate::config::NO_TIMESTAMP;
use crate::error::LogError;
use crate::log::AppendInfo;

/// Base offset (8), batch length (4), partition leader epoch (4): what stamping
/// changes when the timestamps stay the client's.
const PREFIX_LEN: usize = 16;

/// Most offsets one append may take: a segment's relative offsets must fit in `i32`.
const MAX_OFFSETS_PER_APPEND: i64 = i32::MAX as i64;

/// Batches ready to be written at the log end.
pub(crate) struct Stamped<'a> {
    bytes: Cow<'a, [u8]>,
    /// Per batch: its range in `bytes`, its header as written, and the prefix written
    /// in place of the first 16 bytes (`None` when `bytes` is already stamped).
    batches: Vec<(Range<usize>, BatchHeader, Option<[u8; PREFIX_LEN]>)>,
    info: AppendInfo,
}

impl<'a> Stamped<'a> {
    /// Checks that `bytes` is whole v2 batches, then assigns consecutive offsets from
    /// `first_offset`, the leader epoch, and LogAppendTime if given.
    pub(crate) fn new(
        bytes: &'a [u8],
        first_offset: i64,
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> Result<Self, LogError> {
        if bytes.is_empty() {
            return Err(BatchError::Truncated {
                need: BATCH_HEADER_LEN,
                have: 0,
            }
            .into());
        }
        let mut batches = Vec::new();
        let mut offset_count: i64 = 0;
        for item in BatchIter::new(bytes) {
            let (header, range) = item?;
            offset_count += i64::from(header.last_offset_delta) + 1;
            batches.push((range, header, None));
        }
        let overflow = LogError::OffsetOverflow {
            next_offset: first_offset,
            count: offset_count,
        };
        if offset_count > MAX_OFFSETS_PER_APPEND {
            return Err(overflow);
        }
        let Some(end_offset) = first_offset.checked_add(offset_count) else {
            return Err(overflow);
        };

        let mut bytes = Cow::Borrowed(bytes);
        let mut next_offset = first_offset;
        let mut max_timestamp = NO_TIMESTAMP;
        for (range, header, prefix) in &mut batches {
            stamp_header(header, next_offset, leader_epoch, log_append_time);
            match log_append_time {
                Some(now_ms) => {
                    let batch = &mut bytes.to_mut()[range.clone()];
                    batch::stamp(batch, next_offset, leader_epoch);
                    batch::set_log_append_time(batch, now_ms);
                    header.crc = batch::BatchHeader::parse(batch)?.crc;
                }
                None => {
                    let mut stamped = [0; PREFIX_LEN];
                    stamped.copy_from_slice(&bytes[range.start..range.start + PREFIX_LEN]);
                    batch::stamp(&mut stamped, next_offset, leader_epoch);
                    *prefix = Some(stamped);
                }
            }
            max_timestamp = max_timestamp.max(header.max_timestamp);
            next_offset = header.next_offset();
        }
        debug_assert_eq!(next_offset, end_offset);
        Ok(Self {
            bytes,
            batches,
            info: AppendInfo {
                base_offset: first_offset,
                last_offset: end_offset - 1,
                max_timestamp,
                log_append_time_ms: log_append_time,
            },
        })
    }

    /// Batches another log already stamped (a follower's copy), written as they are.
    pub(crate) fn as_written(bytes: &'a [u8]) -> Result<Self, BatchError> {
        let batches = BatchIter::new(bytes)
            .map(|item| item.map(|(header, range)| (range, header, None)))
            .collect::<Result<Vec<_>, _>>()?;
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(BatchError::Truncated {
                need: BATCH_HEADER_LEN,
                have: bytes.len(),
            });
        };
        let info = AppendInfo {
            base_offset: first.1.base_offset,
            last_offset: last.1.next_offset() - 1,
            max_timestamp: batches
                .iter()
                .map(|(_, h, _)| h.max_timestamp)
                .fold(NO_TIMESTAMP, i64::max),
            log_append_time_ms: None,
        };
        Ok(Self {
            bytes: Cow::Borrowed(bytes),
            batches,
            info,
        })
    }

    pub(crate) fn info(&self) -> AppendInfo {
        self.info
    }

    /// Bytes the batches take on disk.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Each batch's position relative to the first and its header as written.
    pub(crate) fn headers(&self) -> impl Iterator<Item = (usize, &BatchHeader)> {
        self.batches.iter().map(|(range, h, _)| (range.start, h))
    }

    /// The bytes to write, in order: per batch the stamped prefix and the rest, or
    /// runs of already stamped bytes.
    pub(crate) fn io_slices(&self) -> Vec<IoSlice<'_>> {
        let mut slices = Vec::with_capacity(self.batches.len() * 2);
        let mut written = 0;
        for (range, _, prefix) in &self.batches {
            if let Some(prefix) = prefix {
                if written < range.start {
                    slices.push(IoSlice::new(&self.bytes[written..range.start]));
                }
                slices.push(IoSlice::new(prefix));
                written = range.start + PREFIX_LEN;
            }
        }
        if written < self.bytes.len() {
            slices.push(IoSlice::new(&self.bytes[written..]));
        }
        slices
    }
}

/// The header a batch has once stamped: what [`Stamped::new`] writes.
fn stamp_header(
    header: &mut BatchHeader,
    base_offset: i64,
    leader_epoch: i32,
    log_append_time: Option<i64>,
) {
    header.base_offset = base_offset;
    header.partition_leader_epoch = leader_epoch;
    if let Some(now_ms) = log_append_time {
        header.attributes |= ATTR_LOG_APPEND_TIME;
        header.max_timestamp = now_ms;
    }
}

/// The batches of `bytes` with their headers as [`crate::Log::append`] wrote them
/// (`info` is what it returned): for the caller's bookkeeping after an append, as the
/// caller's bytes themselves are left unstamped. Only the CRC is the caller's: a
/// LogAppendTime batch was written with a new one.
pub fn appended_headers<'b>(
    bytes: &'b [u8],
    info: &AppendInfo,
    leader_epoch: i32,
) -> impl Iterator<Item = (BatchHeader, &'b [u8])> + 'b {
    let log_append_time = info.log_append_time_ms;
    let mut next_offset = info.base_offset;
    BatchIter::new(bytes).map_while(move |item| {
        let (mut header, range) = item.ok()?;
        stamp_header(&mut header, next_offset, leader_epoch, log_append_time);
        next_offset = header.next_offset();
        Some((header, &bytes[range]))
    })
}
