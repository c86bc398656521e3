//! A segment's two sparse indexes, kept in memory and mirrored in append-only files.
//!
//! - Offset index (`.index`, 8-byte entries, big-endian `relative_offset: u32`,
//!   `position: u32`): the batch starting at byte `position` of the segment has base
//!   offset `segment base + relative_offset`. Lookups give the nearest batch start at
//!   or before a wanted offset (or byte position); a short header walk does the rest.
//! - Time index (`.timeindex`, 12-byte entries, `timestamp_ms: i64`,
//!   `relative_offset: u32`): `timestamp_ms` is the largest timestamp in the segment up
//!   to and including the batch whose base offset is `relative_offset`, and every
//!   earlier batch's largest timestamp is strictly smaller. So a search for the first
//!   record with timestamp >= T may start at the batch of the last entry with
//!   `timestamp_ms <= T`. Both fields strictly increase.
//!
//! The files are written only when a segment is sealed, closed, truncated or rebuilt;
//! the active segment's in-memory entries are rebuilt by recovery after a crash.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::NO_TIMESTAMP;
use crate::error::{IoContext, LogError};

pub trait IndexEntry: Copy + std::fmt::Debug {
    /// Encoded size on disk.
    const SIZE: usize;
    fn encode_into(&self, out: &mut Vec<u8>);
    /// `bytes` is exactly `SIZE` long.
    fn decode(bytes: &[u8]) -> Self;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32_at(bytes, 0),
            position: u32_at(bytes, 4),
        }
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(bytes: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[..8]);
        TimeEntry {
            timestamp_ms: i64::from_be_bytes(ts),
            relative_offset: u32_at(bytes, 8),
        }
    }
}

/// Entries in memory plus how many of them the file already holds.
#[derive(Debug)]
pub struct Index<E> {
    path: PathBuf,
    entries: Vec<E>,
    /// The file holds exactly `entries[..persisted]` once `persist` has run.
    persisted: usize,
}

impl<E: IndexEntry> Index<E> {
    pub fn empty(path: PathBuf) -> Self {
        Index {
            path,
            entries: Vec::new(),
            persisted: 0,
        }
    }

    /// An index whose entries all came from its file.
    pub fn loaded(path: PathBuf, entries: Vec<E>) -> Self {
        let persisted = entries.len();
        Index {
            path,
            entries,
            persisted,
        }
    }

    /// Reads the index file. `None` when it is missing, its length is not a whole number
    /// of entries, or it holds more than `max_entries` (so a corrupt file can never make
    /// us allocate more than the segment could justify).
    pub fn read_file(path: &Path, max_entries: usize) -> Result<Option<Vec<E>>, LogError> {
        let mut file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).io_context("opening index", path),
        };
        let len_bytes = file.metadata().io_context("reading size of", path)?.len();
        let entry_size = E::SIZE as u64;
        if len_bytes % entry_size != 0 || len_bytes / entry_size > max_entries as u64 {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(len_bytes as usize);
        file.read_to_end(&mut bytes)
            .io_context("reading index", path)?;
        if bytes.len() as u64 != len_bytes {
            return Ok(None);
        }
        Ok(Some(bytes.chunks_exact(E::SIZE).map(E::decode).collect()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn entries(&self) -> &[E] {
        &self.entries
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }
    pub fn push(&mut self, entry: E) {
        self.entries.push(entry);
    }

    /// Keeps the first `len` entries; the file follows at the next `persist`.
    pub fn truncate(&mut self, len: usize) {
        self.entries.truncate(len);
        self.persisted = self.persisted.min(len);
    }

    /// Makes the file hold exactly the in-memory entries by cutting it back to the
    /// persisted prefix and appending the rest; fsyncs if asked. Returns the file (to
    /// fsync later) and its path.
    pub fn persist(&mut self, fsync: bool) -> Result<(Arc<File>, PathBuf), LogError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .io_context("opening index", &self.path)?;
        let persisted_bytes = (self.persisted * E::SIZE) as u64;
        file.set_len(persisted_bytes)
            .io_context("truncating index", &self.path)?;
        let pending = self.encode(self.persisted);
        file.write_all_at(&pending, persisted_bytes)
            .io_context("writing index", &self.path)?;
        if fsync {
            file.sync_data().io_context("syncing index", &self.path)?;
        }
        self.persisted = self.entries.len();
        Ok((Arc::new(file), self.path.clone()))
    }

    /// Replaces the file atomically (temp file, fsync, rename) so a crash leaves either
    /// the old file or the complete new one. The caller syncs the directory.
    pub fn rewrite(&mut self) -> Result<(), LogError> {
        crate::checkpoint::write_atomically(&self.path, &self.encode(0))?;
        self.persisted = self.entries.len();
        Ok(())
    }

    pub fn delete_file(&self) -> Result<(), LogError> {
        crate::checkpoint::remove_if_exists(&self.path)
    }

    fn encode(&self, from: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.entries.len() - from) * E::SIZE);
        for entry in &self.entries[from..] {
            entry.encode_into(&mut out);
        }
        out
    }
}

impl Index<OffsetEntry> {
    /// The last entry whose offset is at or before `relative_offset`.
    pub fn floor_offset(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// The last entry whose batch starts at or before `position`.
    pub fn floor_position(&self, position: u32) -> Option<OffsetEntry> {
        let n = self.entries.partition_point(|e| e.position <= position);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries for batches at or after byte `position`.
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
        self.truncate(keep);
    }

    /// Checks what can be checked without reading the log: strictly increasing offsets
    /// and positions, all inside the segment.
    pub fn validate(&self, log_size_bytes: u64) -> Result<(), String> {
        for pair in self.entries.windows(2) {
            if pair[1].relative_offset <= pair[0].relative_offset
                || pair[1].position <= pair[0].position
            {
                return Err(format!("offset index entries out of order: {pair:?}"));
            }
        }
        match self.entries.last() {
            Some(last) if u64::from(last.position) >= log_size_bytes => Err(format!(
                "offset index entry {last:?} points past the segment's {log_size_bytes} bytes"
            )),
            _ => Ok(()),
        }
    }
}

impl Index<TimeEntry> {
    /// The last entry whose timestamp is at or before `timestamp_ms`.
    pub fn floor_timestamp(&self, timestamp_ms: i64) -> Option<TimeEntry> {
        let n = self
            .entries
            .partition_point(|e| e.timestamp_ms <= timestamp_ms);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries for batches at or after `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.truncate(keep);
    }

    /// Strictly increasing timestamps (all real ones) and offsets.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(first) = self.entries.first() {
            if first.timestamp_ms <= NO_TIMESTAMP {
                return Err(format!("time index entry {first:?} has no timestamp"));
            }
        }
        for pair in self.entries.windows(2) {
            if pair[1].timestamp_ms <= pair[0].timestamp_ms
                || pair[1].relative_offset <= pair[0].relative_offset
            {
                return Err(format!("time index entries out of order: {pair:?}"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn offsets(entries: &[(u32, u32)]) -> Index<OffsetEntry> {
        let entries = entries
            .iter()
            .map(|&(relative_offset, position)| OffsetEntry {
                relative_offset,
                position,
            })
            .collect();
        Index::loaded(PathBuf::from("unused"), entries)
    }

    #[test]
    fn floor_lookups() {
        let index = offsets(&[(10, 100), (20, 200), (30, 300)]);
        let cases: &[(u32, Option<u32>)] = &[
            (0, None),
            (9, None),
            (10, Some(100)),
            (19, Some(100)),
            (20, Some(200)),
            (1_000, Some(300)),
        ];
        for &(offset, want) in cases {
            assert_eq!(
                index.floor_offset(offset).map(|e| e.position),
                want,
                "{offset}"
            );
        }
        assert_eq!(index.floor_position(250).unwrap().relative_offset, 20);
        assert_eq!(index.floor_position(99), None);
    }

    #[test]
    fn validation_rejects_disorder_and_overrun() {
        assert!(offsets(&[(1, 10), (2, 20)]).validate(21).is_ok());
        assert!(offsets(&[(1, 10), (2, 20)]).validate(20).is_err());
        assert!(offsets(&[(2, 10), (2, 20)]).validate(100).is_err());
        assert!(offsets(&[(1, 20), (2, 10)]).validate(100).is_err());
        let times = |e: &[(i64, u32)]| {
            let entries = e
                .iter()
                .map(|&(timestamp_ms, relative_offset)| TimeEntry {
                    timestamp_ms,
                    relative_offset,
                })
                .collect();
            Index::loaded(PathBuf::from("unused"), entries)
        };
        assert!(times(&[(5, 0), (6, 3)]).validate().is_ok());
        assert!(times(&[(5, 0), (5, 3)]).validate().is_err());
        assert!(times(&[(-1, 0)]).validate().is_err());
    }

    #[test]
    fn persist_appends_and_truncates_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut index = Index::<OffsetEntry>::empty(path.clone());
        for i in 0..4 {
            index.push(OffsetEntry {
                relative_offset: i,
                position: i * 10,
            });
        }
        index.persist(true).unwrap();
        index.truncate(2);
        index.push(OffsetEntry {
            relative_offset: 7,
            position: 70,
        });
        index.persist(false).unwrap();
        let back = Index::<OffsetEntry>::read_file(&path, 100)
            .unwrap()
            .unwrap();
        assert_eq!(back, index.entries());
        assert_eq!(Index::<OffsetEntry>::read_file(&path, 2).unwrap(), None);
        fs::write(&path, [0u8; 9]).unwrap();
        assert_eq!(Index::<OffsetEntry>::read_file(&path, 100).unwrap(), None);
    }
}
