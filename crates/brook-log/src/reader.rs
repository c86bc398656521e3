//! Walking the batches of a segment file through a bounded read window.
//!
//! Every length read from disk is checked against the bytes the segment really has
//! before it is used, and the window never grows past its capacity: a corrupt
//! `batchLength` can make a walk stop, never allocate.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use brook_protocol::batch::{compute_crc, BatchHeader, BATCH_HEADER_LEN};

use crate::error::LogError;

/// Window for header walks on the read path and at start-up.
pub const HEADER_WINDOW_BYTES: usize = 16 * 1024;
/// Window for recovery, which reads and checksums every byte.
pub const SCAN_WINDOW_BYTES: usize = 1024 * 1024;
/// First byte of a v2 batch covered by its CRC-32C (the attributes field).
const CRC_START: usize = 21;

/// Why a walk stopped early.
#[derive(Debug)]
pub enum WalkError {
    Io(io::Error),
    /// The bytes at `position` are not a whole, well-formed batch.
    Malformed {
        position: u64,
        reason: String,
    },
}

impl From<io::Error> for WalkError {
    fn from(e: io::Error) -> Self {
        WalkError::Io(e)
    }
}

impl WalkError {
    /// For data that should be sound (already recovered): damage is corruption.
    pub fn into_log_error(self, path: &Path) -> LogError {
        match self {
            WalkError::Io(source) => LogError::Io {
                context: format!("reading {}", path.display()),
                source,
            },
            WalkError::Malformed { position, reason } => {
                LogError::corrupt(path, format!("at byte {position}: {reason}"))
            }
        }
    }
}

/// The bytes of `file` most recently read, starting at `start`.
struct Window<'a> {
    file: &'a File,
    file_end: u64,
    start: u64,
    buf: Vec<u8>,
    capacity: usize,
}

impl Window<'_> {
    /// Bytes `[position, position + len)`; the caller ensures `len <= capacity` and that
    /// the range lies before `file_end`.
    fn get(&mut self, position: u64, len: usize) -> io::Result<&[u8]> {
        debug_assert!(len <= self.capacity && position + len as u64 <= self.file_end);
        let buffered_end = self.start + self.buf.len() as u64;
        if position < self.start || position + len as u64 > buffered_end {
            let want = (self.file_end - position).min(self.capacity as u64) as usize;
            self.buf.resize(want, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.start = position;
        }
        let from = (position - self.start) as usize;
        Ok(&self.buf[from..from + len])
    }
}

/// Yields `(position, header)` for each batch in `[start, end)` of a segment file.
pub struct HeaderWalker<'a> {
    window: Window<'a>,
    position: u64,
    end: u64,
}

impl<'a> HeaderWalker<'a> {
    pub fn new(file: &'a File, start: u64, end: u64, window_bytes: usize) -> Self {
        debug_assert!(start <= end && window_bytes >= BATCH_HEADER_LEN);
        HeaderWalker {
            window: Window {
                file,
                file_end: end,
                start: 0,
                buf: Vec::new(),
                capacity: window_bytes,
            },
            position: start,
            end,
        }
    }

    /// Goes back to a batch start already walked past; the window stays.
    pub fn rewind(&mut self, position: u64) {
        debug_assert!(position <= self.position);
        self.position = position;
    }

    /// Where the next batch would start.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The next batch's header, after checking that the whole batch is present and its
    /// offsets cannot overflow. Does not check the CRC.
    pub fn next_header(&mut self) -> Result<Option<(u64, BatchHeader)>, WalkError> {
        let position = self.position;
        let available = self.end - position;
        if available == 0 {
            return Ok(None);
        }
        let malformed = |reason: String| WalkError::Malformed { position, reason };
        if available < BATCH_HEADER_LEN as u64 {
            return Err(malformed(format!("torn batch header of {available} bytes")));
        }
        let bytes = self.window.get(position, BATCH_HEADER_LEN)?;
        let header = BatchHeader::parse(bytes).map_err(|e| malformed(e.to_string()))?;
        let size = header.total_size() as u64;
        if size > available {
            return Err(malformed(format!(
                "batch of {size} bytes but only {available} bytes left"
            )));
        }
        let offsets_fit = header
            .base_offset
            .checked_add(i64::from(header.last_offset_delta) + 1)
            .is_some();
        if header.base_offset < 0 || !offsets_fit {
            return Err(malformed(format!(
                "invalid base offset {}",
                header.base_offset
            )));
        }
        self.position += size;
        Ok(Some((position, header)))
    }

    /// Checks the CRC-32C of the batch at `position` (already returned by
    /// `next_header`), streaming batches larger than the window.
    pub fn verify_crc(&mut self, position: u64, header: &BatchHeader) -> Result<(), WalkError> {
        let size = header.total_size();
        let computed = if size <= self.window.capacity {
            compute_crc(self.window.get(position, size)?)
        } else {
            let end = position + size as u64;
            let mut at = position + CRC_START as u64;
            let mut crc = 0;
            while at < end {
                let len = (end - at).min(self.window.capacity as u64) as usize;
                crc = crc32c::crc32c_append(crc, self.window.get(at, len)?);
                at += len as u64;
            }
            crc
        };
        if computed != header.crc {
            return Err(WalkError::Malformed {
                position,
                reason: format!(
                    "CRC mismatch: stored {:#010x}, computed {computed:#010x}",
                    header.crc
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::batch_bytes;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, u64) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        (f, bytes.len() as u64)
    }

    #[test]
    fn walks_batches_and_checks_crc_with_any_window() {
        let mut bytes = batch_bytes(3, 100, 10);
        bytes.extend(batch_bytes(500, 200, 10));
        let (f, len) = file_with(&bytes);
        for window in [BATCH_HEADER_LEN, 100, 4096, SCAN_WINDOW_BYTES] {
            let mut walker = HeaderWalker::new(f.as_file(), 0, len, window);
            let mut counts = vec![];
            while let Some((position, header)) = walker.next_header().unwrap() {
                walker.verify_crc(position, &header).unwrap();
                counts.push(header.record_count);
            }
            assert_eq!(counts, [3, 500], "window {window}");
        }
    }

    #[test]
    fn stops_on_damage_without_panicking() {
        let good = batch_bytes(2, 0, 10);
        let mut huge_length = good.clone();
        huge_length[8..12].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        let mut max_offset = good.clone();
        max_offset[0..8].copy_from_slice(&i64::MAX.to_be_bytes());
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("torn header", good[..30].to_vec()),
            ("torn body", good[..good.len() - 1].to_vec()),
            ("huge length", huge_length),
            ("bad crc", bad_crc),
            ("offset overflow", max_offset),
            ("zeros", vec![0; 200]),
        ];
        for (name, bytes) in cases {
            let (f, len) = file_with(&bytes);
            let mut walker = HeaderWalker::new(f.as_file(), 0, len, HEADER_WINDOW_BYTES);
            let result = walker.next_header().and_then(|h| match h {
                Some((pos, header)) => walker.verify_crc(pos, &header),
                None => Ok(()),
            });
            assert!(
                matches!(result, Err(WalkError::Malformed { position: 0, .. })),
                "{name}: {result:?}"
            );
        }
    }
}
