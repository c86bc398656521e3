//! Small files beside the segments: offset checkpoints and the clean-shutdown marker,
//! all replaced atomically (temp file, fsync, rename, fsync the directory).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{IoContext, LogError};

/// Every offset below it is on disk and every segment wholly below it has complete,
/// durable index files.
pub const RECOVERY_POINT_FILE: &str = "recovery-point-offset-checkpoint";
/// The log start offset, when DeleteRecords moved it inside a segment.
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";
/// Present only between a clean `close` and the next `open`.
pub const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Suffix of files being written atomically; stray ones are deleted on open.
pub const TEMP_SUFFIX: &str = ".tmp";

const CHECKPOINT_VERSION: &str = "0";
/// A checkpoint is two short lines; anything longer is corrupt.
const MAX_CHECKPOINT_BYTES: u64 = 64;

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let tmp = temp_path(path);
    let mut file = File::create(&tmp).io_context("creating", &tmp)?;
    file.write_all(bytes).io_context("writing", &tmp)?;
    file.sync_all().io_context("syncing", &tmp)?;
    drop(file);
    fs::rename(&tmp, path).io_context("renaming into place", path)?;
    Ok(())
}

/// Makes creations, renames and deletions in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), LogError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .io_context("syncing directory", dir)
}

pub fn remove_if_exists(path: &Path) -> Result<(), LogError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).io_context("deleting", path),
        _ => Ok(()),
    }
}

/// Writes an offset checkpoint: a version line and the offset.
pub fn write_offset(dir: &Path, name: &str, offset: i64) -> Result<(), LogError> {
    let text = format!("{CHECKPOINT_VERSION}\n{offset}\n");
    write_atomically(&dir.join(name), text.as_bytes())?;
    sync_dir(dir)
}

/// Reads an offset checkpoint; `None` if it is missing or unreadable (with a warning),
/// which every caller treats as "no information", never as an error.
pub fn read_offset(dir: &Path, name: &str) -> Result<Option<i64>, LogError> {
    let path = dir.join(name);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).io_context("opening checkpoint", &path),
    };
    let mut text = String::new();
    let read = file.take(MAX_CHECKPOINT_BYTES).read_to_string(&mut text);
    let parsed = read.ok().and_then(|_| parse_offset(&text));
    if parsed.is_none() {
        tracing::warn!(path = %path.display(), "ignoring malformed checkpoint file");
    }
    Ok(parsed)
}

fn parse_offset(text: &str) -> Option<i64> {
    let mut lines = text.lines();
    if lines.next()? != CHECKPOINT_VERSION {
        return None;
    }
    let offset = lines.next()?.trim().parse::<i64>().ok()?;
    (lines.next().is_none() && offset >= 0).then_some(offset)
}

/// Writes the clean-shutdown marker durably.
pub fn write_clean_shutdown(dir: &Path) -> Result<(), LogError> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .and_then(|f| f.sync_all())
        .io_context("writing clean-shutdown marker", &path)?;
    sync_dir(dir)
}

/// Removes the clean-shutdown marker durably; returns whether it was there.
pub fn take_clean_shutdown(dir: &Path) -> Result<bool, LogError> {
    let path = dir.join(CLEAN_SHUTDOWN_FILE);
    if !path.exists() {
        return Ok(false);
    }
    remove_if_exists(&path)?;
    sync_dir(dir)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), None);
        write_offset(dir.path(), "cp", 42).unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), Some(42));
        for garbage in ["", "0\n", "1\n5\n", "0\n-3\n", "0\nx\n", "0\n5\n6\n"] {
            fs::write(dir.path().join("cp"), garbage).unwrap();
            assert_eq!(read_offset(dir.path(), "cp").unwrap(), None, "{garbage:?}");
        }
        fs::write(dir.path().join("cp"), vec![b'9'; 10_000]).unwrap();
        assert_eq!(read_offset(dir.path(), "cp").unwrap(), None);
    }

    #[test]
    fn clean_shutdown_marker() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!take_clean_shutdown(dir.path()).unwrap());
        write_clean_shutdown(dir.path()).unwrap();
        assert!(take_clean_shutdown(dir.path()).unwrap());
        assert!(!take_clean_shutdown(dir.path()).unwrap());
    }
}
