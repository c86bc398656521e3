//! The durable raft log: vote, entries and the committed hint, in one directory.
//!
//! - `vote.json`: the last vote, replaced atomically and fsynced (file and directory) before
//!   openraft hears it is saved.
//! - `entries.log`: append-only frames `[len: u32 LE][crc32c(payload): u32 LE][payload]`,
//!   each payload the JSON of one [`Frame`]. Appends are fsynced before the log-flushed
//!   callback runs. Truncation (a conflict) cuts the file at the first removed entry; a purge
//!   rewrites it as a `purged` frame followed by the entries kept, then renames it into place.
//!   On open, a torn tail (short header, zero or oversized length, length past the end of the
//!   file, CRC mismatch) is cut off; a frame with a valid CRC that does not decode, or an
//!   index that does not follow its predecessor, is corruption and refuses to open.
//! - `committed.json`: the last committed log id, a hint that lets a restarted node re-apply
//!   committed entries at once. Replaced atomically but not fsynced: losing it only delays
//!   the image until the next commit.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use crate::fsutil::{read_optional, replace_file, sync_dir};
use crate::TypeConfig;

const ENTRIES: &str = "entries.log";
const VOTE: &str = "vote.json";
const COMMITTED: &str = "committed.json";
const HEADER: usize = 8;

/// Largest frame payload accepted from disk or written to it (one log entry's JSON).
pub(crate) const MAX_FRAME: usize = 16 << 20;

/// A failure of Brook's raft storage, with the file and operation it concerns.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is corrupt: {what}", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("log entry {index} encodes to {size} bytes, over the {MAX_FRAME}-byte limit")]
    EntryTooLarge { index: u64, size: usize },
    #[error("log entries out of order: expected index {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    #[error("storage task failed: {0}")]
    Task(String),
    #[error("raft storage in {} is closed", .0.display())]
    Closed(PathBuf),
}

pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// Runs blocking file work off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
}

/// One frame of `entries.log`.
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum FrameRef<'a> {
    /// Everything up to and including this log id was purged (first frame only).
    Purged(&'a LogId<u64>),
    Entry(&'a Entry<TypeConfig>),
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Frame {
    Purged(LogId<u64>),
    Entry(Entry<TypeConfig>),
}

/// Appends one frame to `out`; returns the frame's size.
fn encode_frame(out: &mut Vec<u8>, frame: &FrameRef<'_>) -> Result<usize, StoreError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut *out, frame).map_err(|source| StoreError::Encode {
        what: "log frame",
        source,
    })?;
    let len = out.len() - start - HEADER;
    if len > MAX_FRAME {
        out.truncate(start);
        let index = match frame {
            FrameRef::Entry(e) => e.log_id.index,
            FrameRef::Purged(id) => id.index,
        };
        return Err(StoreError::EntryTooLarge { index, size: len });
    }
    let crc = crc32c::crc32c(&out[start + HEADER..]);
    // `len` fits: it is at most MAX_FRAME.
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out.len() - start)
}

/// Outcome of looking at the bytes where a frame should start.
enum FrameAt<'a> {
    Whole { payload: &'a [u8], size: usize },
    Torn(&'static str),
}

fn frame_at(data: &[u8]) -> FrameAt<'_> {
    if data.len() < HEADER {
        return FrameAt::Torn("short header");
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len == 0 {
        return FrameAt::Torn("zero length");
    }
    if len > MAX_FRAME {
        return FrameAt::Torn("length over the frame limit");
    }
    if len > data.len() - HEADER {
        return FrameAt::Torn("length past the end of the file");
    }
    let payload = &data[HEADER..HEADER + len];
    if crc32c::crc32c(payload) != crc {
        return FrameAt::Torn("checksum mismatch");
    }
    FrameAt::Whole {
        payload,
        size: HEADER + len,
    }
}

/// What `entries.log` holds after recovery.
#[derive(Default)]
pub(crate) struct Scanned {
    pub purged: Option<LogId<u64>>,
    pub entries: BTreeMap<u64, Entry<TypeConfig>>,
    /// Entry index -> offset of its frame.
    pub offsets: BTreeMap<u64, u64>,
    /// Length of the valid prefix.
    pub valid_len: u64,
    /// Why the tail was cut, if it was.
    pub torn: Option<&'static str>,
}

/// Parses the bytes of `entries.log`. Never panics; a torn tail stops the scan.
pub(crate) fn scan(path: &Path, data: &[u8]) -> Result<Scanned, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let mut out = Scanned::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let (payload, size) = match frame_at(&data[pos..]) {
            FrameAt::Whole { payload, size } => (payload, size),
            FrameAt::Torn(why) => {
                out.torn = Some(why);
                break;
            }
        };
        let frame: Frame = serde_json::from_slice(payload)
            .map_err(|e| corrupt(format!("frame at offset {pos} does not decode: {e}")))?;
        match frame {
            Frame::Purged(id) if pos == 0 => out.purged = Some(id),
            Frame::Purged(_) => return Err(corrupt(format!("purge marker at offset {pos}"))),
            Frame::Entry(entry) => {
                let expected = next_index(&out.entries, out.purged.as_ref());
                let index = entry.log_id.index;
                if index != expected {
                    return Err(corrupt(format!(
                        "entry at offset {pos} has index {index}, expected {expected}"
                    )));
                }
                out.offsets.insert(index, pos as u64);
                out.entries.insert(index, entry);
            }
        }
        pos += size;
    }
    out.valid_len = pos as u64;
    Ok(out)
}

/// (entry index, frame size) for each frame of an encoded batch.
type FrameSizes = Vec<(u64, usize)>;

/// Frames for `entries`, which must start at index `first` and be consecutive; with each
/// entry's index and frame size.
fn encode_entries(
    first: u64,
    entries: &[Entry<TypeConfig>],
) -> Result<(Vec<u8>, FrameSizes), StoreError> {
    let mut frames = Vec::new();
    let mut sizes = Vec::with_capacity(entries.len());
    for (expected, entry) in (first..).zip(entries) {
        if entry.log_id.index != expected {
            return Err(StoreError::OutOfOrder {
                expected,
                got: entry.log_id.index,
            });
        }
        let size = encode_frame(&mut frames, &FrameRef::Entry(entry))?;
        sizes.push((expected, size));
    }
    Ok((frames, sizes))
}

fn next_index(entries: &BTreeMap<u64, Entry<TypeConfig>>, purged: Option<&LogId<u64>>) -> u64 {
    match (entries.last_key_value(), purged) {
        (Some((index, _)), _) => index + 1,
        (None, Some(p)) => p.index + 1,
        (None, None) => 0,
    }
}

/// The file side of the log; only touched from blocking tasks, under a mutex.
struct DiskLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    len: u64,
    offsets: BTreeMap<u64, u64>,
    /// Set by [`LogCloser::close`]: an I/O still queued after shutdown must not land.
    closed: bool,
}

fn open_rw(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("opening", path))
}

impl DiskLog {
    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed {
            return Err(StoreError::Closed(self.dir.clone()));
        }
        Ok(())
    }

    fn replace(&self, name: &str, bytes: &[u8], durable: bool) -> Result<(), StoreError> {
        self.check_open()?;
        replace_file(&self.dir, name, bytes, durable)
            .map_err(io_err("saving", &self.dir.join(name)))
    }

    fn append(&mut self, frames: &[u8], sizes: &[(u64, usize)]) -> Result<(), StoreError> {
        self.check_open()?;
        let path = &self.path;
        self.file
            .seek(SeekFrom::Start(self.len))
            .map_err(io_err("seeking in", path))?;
        self.file
            .write_all(frames)
            .map_err(io_err("appending to", path))?;
        self.file.sync_data().map_err(io_err("fsyncing", path))?;
        let mut offset = self.len;
        for &(index, size) in sizes {
            self.offsets.insert(index, offset);
            offset += size as u64;
        }
        self.len = offset;
        Ok(())
    }

    /// Removes entries from `index` on.
    fn truncate(&mut self, index: u64) -> Result<(), StoreError> {
        self.check_open()?;
        let Some((_, &offset)) = self.offsets.range(index..).next() else {
            return Ok(());
        };
        self.file
            .set_len(offset)
            .map_err(io_err("truncating", &self.path))?;
        // sync_all: the new size must be durable before anything is written after it.
        self.file
            .sync_all()
            .map_err(io_err("fsyncing", &self.path))?;
        self.len = offset;
        self.offsets.split_off(&index);
        Ok(())
    }

    /// Rewrites the file as a purge marker plus the frames of the entries after `upto`.
    fn purge(&mut self, upto: &LogId<u64>) -> Result<(), StoreError> {
        self.check_open()?;
        let kept_from = self.offsets.range(upto.index + 1..).next().map(|(_, &o)| o);
        let mut data = Vec::new();
        let marker = encode_frame(&mut data, &FrameRef::Purged(upto))? as u64;
        if let Some(from) = kept_from {
            self.file
                .seek(SeekFrom::Start(from))
                .map_err(io_err("seeking in", &self.path))?;
            (&mut self.file)
                .take(self.len - from)
                .read_to_end(&mut data)
                .map_err(io_err("reading", &self.path))?;
        }
        let tmp = self.dir.join(format!("{ENTRIES}.tmp"));
        let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(&data).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("fsyncing", &tmp))?;
        drop(file);
        fs::rename(&tmp, &self.path).map_err(io_err("renaming over", &self.path))?;
        sync_dir(&self.dir).map_err(io_err("fsyncing", &self.dir))?;
        self.file = open_rw(&self.path)?;
        let kept = self.offsets.split_off(&(upto.index + 1));
        let shift = kept_from.unwrap_or(0);
        self.offsets = kept
            .into_iter()
            .map(|(index, offset)| (index, offset - shift + marker))
            .collect();
        self.len = data.len() as u64;
        Ok(())
    }
}

/// Entries kept in memory for readers (replication tasks read while the store writes).
#[derive(Default)]
struct Cache {
    purged: Option<LogId<u64>>,
    entries: BTreeMap<u64, Entry<TypeConfig>>,
}

impl Cache {
    fn read<RB: RangeBounds<u64>>(&self, range: RB) -> Vec<Entry<TypeConfig>> {
        self.entries.range(range).map(|(_, e)| e.clone()).collect()
    }
}

/// openraft's [`RaftLogStorage`] over a directory.
pub(crate) struct LogStore {
    disk: Arc<Mutex<DiskLog>>,
    cache: Arc<RwLock<Cache>>,
    vote: Option<Vote<u64>>,
    committed: Option<LogId<u64>>,
}

/// Stops a [`LogStore`]'s file I/O for good, after any operation in flight.
pub(crate) struct LogCloser(Arc<Mutex<DiskLog>>);

impl LogCloser {
    pub(crate) async fn close(&self) {
        let disk = self.0.clone();
        let _ = blocking(move || {
            disk.lock().closed = true;
            Ok(())
        })
        .await;
    }
}

/// Reads entries for replication.
pub(crate) struct LogReader {
    cache: Arc<RwLock<Cache>>,
}

impl LogStore {
    pub(crate) fn closer(&self) -> LogCloser {
        LogCloser(self.disk.clone())
    }

    /// Opens (creating if needed) the log in `dir`, cutting a torn tail. Blocking.
    pub(crate) fn open(dir: &Path) -> Result<LogStore, StoreError> {
        fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let vote = match read_optional(dir, VOTE).map_err(io_err("reading", &dir.join(VOTE)))? {
            None => None,
            Some(bytes) => {
                Some(
                    serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                        path: dir.join(VOTE),
                        what: e.to_string(),
                    })?,
                )
            }
        };
        let committed = match read_optional(dir, COMMITTED) {
            Ok(Some(bytes)) => match serde_json::from_slice(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable committed hint");
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "ignoring unreadable committed hint");
                None
            }
        };

        let path = dir.join(ENTRIES);
        let mut file = open_rw(&path)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)
            .map_err(io_err("reading", &path))?;
        let scanned = scan(&path, &data)?;
        if let Some(why) = scanned.torn {
            tracing::warn!(
                file = %path.display(),
                valid = scanned.valid_len,
                cut = data.len() as u64 - scanned.valid_len,
                reason = why,
                "cutting torn tail of the raft log"
            );
            file.set_len(scanned.valid_len)
                .map_err(io_err("truncating", &path))?;
            file.sync_all().map_err(io_err("fsyncing", &path))?;
        }
        // The committed hint must name an entry we hold (or purged): if a damaged tail took
        // it, forget the hint rather than have openraft re-apply entries that are gone.
        let last = scanned
            .entries
            .last_key_value()
            .map(|(_, e)| e.log_id)
            .or(scanned.purged);
        let committed = match committed {
            Some(c)
                if Some(c) > last
                    || scanned.entries.get(&c.index).is_some_and(|e| e.log_id != c) =>
            {
                tracing::warn!(committed = %c, last = ?last, "committed hint is past the log; ignoring it");
                None
            }
            c => c,
        };
        // Make the (possibly just created) files' directory entries durable.
        sync_dir(dir).map_err(io_err("fsyncing", dir))?;
        tracing::info!(
            dir = %dir.display(),
            entries = scanned.entries.len(),
            purged = ?scanned.purged,
            vote = ?vote,
            "opened raft log"
        );

        Ok(LogStore {
            disk: Arc::new(Mutex::new(DiskLog {
                dir: dir.to_path_buf(),
                path,
                file,
                len: scanned.valid_len,
                offsets: scanned.offsets,
                closed: false,
            })),
            cache: Arc::new(RwLock::new(Cache {
                purged: scanned.purged,
                entries: scanned.entries,
            })),
            vote,
            committed,
        })
    }
}

fn write_err(e: StoreError) -> StorageError<u64> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self.cache.read().read(range))
    }
}

impl RaftLogReader<TypeConfig> for LogReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        Ok(self.cache.read().read(range))
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let cache = self.cache.read();
        let last = cache.entries.last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id: cache.purged,
            last_log_id: last.or(cache.purged),
        })
    }

    async fn get_log_reader(&mut self) -> LogReader {
        LogReader {
            cache: self.cache.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let bytes = serde_json::to_vec(vote).map_err(|source| {
            let e = StoreError::Encode {
                what: "vote",
                source,
            };
            StorageError::from(StorageIOError::write_vote(AnyError::new(&e)))
        })?;
        let disk = self.disk.clone();
        blocking(move || disk.lock().replace(VOTE, &bytes, true))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        self.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        Ok(self.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        if committed == self.committed {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&committed).map_err(|source| {
            write_err(StoreError::Encode {
                what: "committed log id",
                source,
            })
        })?;
        let disk = self.disk.clone();
        blocking(move || disk.lock().replace(COMMITTED, &bytes, false))
            .await
            .map_err(write_err)?;
        self.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        Ok(self.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let first = {
            let cache = self.cache.read();
            next_index(&cache.entries, cache.purged.as_ref())
        };
        let encoded = encode_entries(first, &entries);
        let result = match encoded {
            Ok((frames, sizes)) => {
                let disk = self.disk.clone();
                blocking(move || disk.lock().append(&frames, &sizes)).await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                let mut cache = self.cache.write();
                for entry in entries {
                    cache.entries.insert(entry.log_id.index, entry);
                }
                drop(cache);
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "raft log append failed");
                callback.log_io_completed(Err(io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        tracing::info!(from = %log_id, "truncating raft log");
        self.cache.write().entries.split_off(&log_id.index);
        let disk = self.disk.clone();
        blocking(move || disk.lock().truncate(log_id.index))
            .await
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        tracing::debug!(upto = %log_id, "purging raft log");
        let disk = self.disk.clone();
        blocking(move || disk.lock().purge(&log_id))
            .await
            .map_err(write_err)?;
        let mut cache = self.cache.write();
        cache.entries = cache.entries.split_off(&(log_id.index + 1));
        cache.purged = Some(log_id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(vec![brook_meta::MetadataRecord::ClusterCreated {
                cluster_id: format!("c{index}"),
            }]),
        }
    }

    fn encoded(n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..n {
            encode_frame(&mut out, &FrameRef::Entry(&entry(i))).expect("encode");
        }
        out
    }

    #[test]
    fn every_torn_prefix_keeps_the_whole_frames_before_it() {
        let data = encoded(3);
        let path = Path::new("entries.log");
        let whole = scan(path, &data).expect("scan");
        assert_eq!(whole.entries.len(), 3);
        assert!(whole.torn.is_none());
        let ends: Vec<u64> = whole
            .offsets
            .values()
            .copied()
            .skip(1)
            .chain([data.len() as u64])
            .collect();
        for cut in 0..data.len() {
            let s = scan(path, &data[..cut]).expect("a torn tail is not an error");
            let complete = ends.iter().filter(|&&e| e <= cut as u64).count();
            assert_eq!(s.entries.len(), complete, "cut at {cut}");
            assert_eq!(s.valid_len, ends[..complete].last().copied().unwrap_or(0));
        }
    }

    #[test]
    fn garbage_and_zeroes_after_frames_are_torn_tail() {
        let mut data = encoded(2);
        let valid = data.len() as u64;
        data.extend_from_slice(&[0; 64]);
        let s = scan(Path::new("x"), &data).expect("scan");
        assert_eq!((s.entries.len(), s.valid_len), (2, valid));
        data.truncate(valid as usize);
        data.extend_from_slice(&[0xff; 64]);
        let s = scan(Path::new("x"), &data).expect("scan");
        assert_eq!((s.entries.len(), s.valid_len), (2, valid));
        // A flipped payload byte fails the checksum: the frame and everything after is cut.
        let mut data = encoded(3);
        let second = scan(Path::new("x"), &data).expect("scan").offsets[&1] as usize;
        data[second + HEADER + 2] ^= 1;
        let s = scan(Path::new("x"), &data).expect("scan");
        assert_eq!(s.entries.len(), 1);
    }

    #[test]
    fn a_gap_in_indexes_is_corruption() {
        let mut data = Vec::new();
        encode_frame(&mut data, &FrameRef::Entry(&entry(0))).expect("encode");
        encode_frame(&mut data, &FrameRef::Entry(&entry(2))).expect("encode");
        assert!(matches!(
            scan(Path::new("x"), &data),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
