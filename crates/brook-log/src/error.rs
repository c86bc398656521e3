//! The log's error type. The broker maps it to Kafka error codes in one place.

use std::io;
use std::path::{Path, PathBuf};

use brook_protocol::batch::BatchError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    /// A filesystem call failed; `context` says which and on what file.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The offset is below the log start offset or above the log end offset.
    #[error("offset {offset} is out of range: log start offset {start}, log end offset {end}")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// Bytes already in the log do not parse. Recovery truncates a torn tail; this is
    /// returned when damage is found later, in data that recovery trusted.
    #[error("corrupt log segment {}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// A segment file recovery cannot place in the log: its first batch is intact but
    /// not at the offset its name says, or it claims offsets another segment holds.
    /// Recovery cannot tell which bytes are the log's, so it opens nothing and changes
    /// no segment: deleting or cutting either file could destroy acknowledged records.
    #[error(
        "cannot open the log: segment file {} does not fit in it ({reason}); no segment \
         was changed. Move the file that does not belong out of the partition directory",
        path.display()
    )]
    MisplacedSegment { path: PathBuf, reason: String },
    /// The bytes handed to `append` are not whole v2 batches.
    #[error("invalid record batch in append: {0}")]
    InvalidBatch(#[from] BatchError),
    /// Assigning offsets to the append would overflow `i64` or a segment's `u32`
    /// relative offsets.
    #[error("cannot assign {count} offsets starting at {next_offset}")]
    OffsetOverflow { next_offset: i64, count: i64 },
}

impl LogError {
    pub(crate) fn corrupt(path: &Path, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

/// Attaches "what were we doing, on which file" to an `io::Error`.
pub(crate) trait IoContext<T> {
    fn io_context(self, what: &str, path: &Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn io_context(self, what: &str, path: &Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            context: format!("{what} {}", path.display()),
            source,
        })
    }
}
