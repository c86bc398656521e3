//! A metadata log in one file: one record per line, `<crc32c hex> <json>\n`.
//!
//! Appends are fsynced before they are applied, so an acknowledged metadata change
//! survives a crash. A torn or corrupt last line (a crash mid-append) is dropped on
//! open and the file is truncated to the last good record; corruption earlier than the
//! tail is an error, because dropping it would silently lose topics.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

use crate::{MetadataImage, MetadataRecord};

/// No single metadata record is larger than this; a longer line is corruption.
const MAX_RECORD_LINE_BYTES: usize = 1024 * 1024;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("metadata log {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

pub struct FileMetadataLog {
    path: PathBuf,
    /// `None` for an in-memory log (`brook serve --memory`).
    file: Option<File>,
    /// Shared with whoever took it through [`FileMetadataLog::image_arc`]; an append
    /// then makes a new image by a cheap copy-on-write clone of this one.
    image: Arc<MetadataImage>,
}

impl FileMetadataLog {
    /// A log that is never written to disk.
    pub fn in_memory(node_id: i32) -> Self {
        FileMetadataLog {
            path: PathBuf::from("<memory>"),
            file: None,
            image: Arc::new(MetadataImage::new(node_id)),
        }
    }

    /// Opens (or creates) the log at `path` and replays it into an image.
    pub fn open(path: &Path, node_id: i32) -> Result<Self, MetaError> {
        let io = |source| MetaError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut image = MetadataImage::new(node_id);
        let mut good_len = 0u64;
        let mut reader = BufReader::new(&file);
        let mut line_no = 0;
        let mut buf = Vec::new();
        loop {
            let n = next_line(&mut reader, &mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            line_no += 1;
            match parse_line(&buf) {
                Ok(record) => {
                    image.apply(&record);
                    good_len += n as u64;
                }
                Err(reason) => {
                    let mut rest = Vec::new();
                    std::io::Read::read_to_end(&mut reader, &mut rest).map_err(io)?;
                    if !rest.is_empty() {
                        return Err(MetaError::Corrupt {
                            path: path.to_path_buf(),
                            line: line_no,
                            reason,
                        });
                    }
                    tracing::warn!(path = %path.display(), line = line_no, %reason, "dropping torn metadata record at the tail");
                    file.set_len(good_len).map_err(io)?;
                    file.sync_all().map_err(io)?;
                    break;
                }
            }
        }
        Ok(FileMetadataLog {
            path: path.to_path_buf(),
            file: Some(file),
            image: Arc::new(image),
        })
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// The current image, to publish to readers without copying it.
    pub fn image_arc(&self) -> Arc<MetadataImage> {
        self.image.clone()
    }

    /// Durably appends the records, then applies them.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<(), MetaError> {
        if let Some(file) = &mut self.file {
            let mut out = Vec::new();
            for r in records {
                let json = serde_json::to_string(r).expect("metadata records always serialize");
                writeln!(out, "{:08x} {}", crc32c::crc32c(json.as_bytes()), json)
                    .expect("write to vec");
            }
            let io = |source| MetaError::Io {
                path: self.path.clone(),
                source,
            };
            let len_before = file.metadata().map_err(io)?.len();
            if let Err(e) = file.write_all(&out).and_then(|()| file.sync_data()) {
                // A partial line (disk full) would poison every later append: cut it off.
                let _ = file.set_len(len_before);
                return Err(io(e));
            }
        }
        let image = Arc::make_mut(&mut self.image);
        for r in records {
            image.apply(r);
        }
        Ok(())
    }
}

/// What [`check`] found in a metadata log.
#[derive(Debug, Default)]
pub struct MetaCheck {
    pub records: usize,
    /// One line per damaged record: `line N: reason`.
    pub problems: Vec<String>,
}

/// Reads a metadata log without changing it and reports every record that fails its
/// checksum or does not parse (`brook check-log`). A torn last line is reported too; the
/// broker drops it at its next start.
pub fn check(path: &Path) -> Result<MetaCheck, MetaError> {
    let io = |source| MetaError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut reader = BufReader::new(file);
    let mut report = MetaCheck::default();
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        let n = next_line(&mut reader, &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        match parse_line(&buf) {
            Ok(_) => report.records += 1,
            Err(reason) => report.problems.push(format!("line {line_no}: {reason}")),
        }
    }
    Ok(report)
}

/// Reads the next record line into `buf` (at most one byte past the longest a record
/// may be, so a damaged length cannot make it read the whole file); 0 at the end.
fn next_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    buf.clear();
    std::io::Read::take(reader, MAX_RECORD_LINE_BYTES as u64 + 1).read_until(b'\n', buf)
}

fn parse_line(line: &[u8]) -> Result<MetadataRecord, String> {
    let line = line
        .strip_suffix(b"\n")
        .ok_or("missing newline (torn write)")?;
    let text = std::str::from_utf8(line).map_err(|e| e.to_string())?;
    let (crc, json) = text.split_once(' ').ok_or("missing checksum")?;
    let crc = u32::from_str_radix(crc, 16).map_err(|e| e.to_string())?;
    if crc != crc32c::crc32c(json.as_bytes()) {
        return Err("checksum mismatch".into());
    }
    serde_json::from_str(json).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn topic(name: &str, partitions: i32) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            topic_id: uuid::Uuid::new_v4(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            assignment: Vec::new(),
        }
    }

    #[test]
    fn replay_rebuilds_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let mut log = FileMetadataLog::open(&path, 1).unwrap();
        log.append(&[topic("a", 2), topic("b", 1)]).unwrap();
        log.append(&[MetadataRecord::PartitionsAdded {
            name: "a".into(),
            total: 5,
            assignment: Vec::new(),
        }])
        .unwrap();
        log.append(&[MetadataRecord::TopicConfigSet {
            name: "a".into(),
            key: "retention.ms".into(),
            value: Some("10".into()),
        }])
        .unwrap();
        log.append(&[MetadataRecord::TopicDeleted { name: "b".into() }])
            .unwrap();
        let before = log.image().clone();
        drop(log);
        let log = FileMetadataLog::open(&path, 1).unwrap();
        assert_eq!(log.image(), &before);
        assert_eq!(before.topic("a").unwrap().partitions.len(), 5);
        assert!(before.topic("b").is_none());
    }

    #[test]
    fn an_image_taken_as_arc_is_not_changed_by_later_appends() {
        let mut log = FileMetadataLog::in_memory(1);
        log.append(&[topic("a", 1)]).unwrap();
        let taken = log.image_arc();
        log.append(&[topic("b", 1)]).unwrap();
        assert!(taken.topic("b").is_none());
        assert!(log.image().topic("b").is_some());
        assert!(Arc::ptr_eq(&log.image_arc(), &log.image_arc()));
    }

    #[test]
    fn torn_tail_is_dropped_but_earlier_corruption_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.log");
        let mut log = FileMetadataLog::open(&path, 1).unwrap();
        log.append(&[topic("a", 1)]).unwrap();
        drop(log);
        let good = std::fs::read(&path).unwrap();
        std::fs::write(&path, [&good[..], b"0000 {\"type\":\"topic_del"].concat()).unwrap();
        let log = FileMetadataLog::open(&path, 1).unwrap();
        assert!(log.image().topic("a").is_some());
        assert_eq!(std::fs::read(&path).unwrap(), good);

        let mut bad = good.clone();
        bad[3] ^= 1;
        std::fs::write(&path, [&bad[..], &good[..]].concat()).unwrap();
        assert!(matches!(
            FileMetadataLog::open(&path, 1),
            Err(MetaError::Corrupt { line: 1, .. })
        ));
    }
}
