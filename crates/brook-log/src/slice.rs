//! A byte range of a segment file handed to the network layer.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// Whole batches at `position..position + len` of a segment file.
///
/// The range covers only bytes written before the read returned, and the `Arc<File>`
/// keeps the file readable after retention unlinks it, so the broker may read it after
/// releasing the log's lock. Only [`crate::Log::truncate_to`] (replication) can shorten
/// a file under a slice; reading it then fails with `UnexpectedEof`, and `sendfile(2)`
/// of the range stops short (returns 0 at the new end of file).
///
/// The broker sends fetched ranges with `sendfile` from `file` at `position`, after the
/// handler has returned, so a slice may be read well after the log's lock was released.
#[derive(Debug, Clone)]
pub struct ReadSlice {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
    /// Base offset of the first batch in the slice (it may be below the offset asked
    /// for: a read returns the whole batch containing it). The asked offset if empty.
    pub first_offset: i64,
    /// The offset after the last batch in the slice: where the next read should start.
    pub next_offset_hint: i64,
}

impl ReadSlice {
    /// Copies the range out of the file (`pread`).
    pub fn read_bytes(&self) -> io::Result<Bytes> {
        let mut buf = vec![0; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(Bytes::from(buf))
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
