//! Walking the records of a v2 batch to check they are what its header says, as Kafka's
//! broker does before it appends: the declared count of records is there (no fewer, no
//! more, no trailing bytes), each record's fields fit its declared length, offset deltas
//! run 0, 1, 2, ..., and a compacted topic gets a key on every record.
//!
//! Compressed batches are walked through a streaming decoder, so checking one costs the
//! codec's buffers, never the whole decompressed batch (bounded by
//! [`RecordRules::max_decompressed_bytes`] so a small "zip bomb" is refused).

use std::io::{BufRead, BufReader, Read};

use thiserror::Error;

use crate::batch::{BatchHeader, Compression, BATCH_HEADER_LEN};
use crate::compression::{snappy_decompress_into, CodecError};

/// What the records of a batch must satisfy besides their framing.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    /// Every record carries a non-null key (`cleanup.policy=compact`).
    pub require_keys: bool,
    /// A compressed batch may inflate to at most this many bytes.
    pub max_decompressed_bytes: usize,
}

#[derive(Debug, Error)]
pub enum RecordCheckError {
    /// The records are not what the header declares (Kafka: INVALID_RECORD).
    #[error("invalid record: {0}")]
    Invalid(String),
    /// The compressed payload does not decompress (Kafka: CORRUPT_MESSAGE).
    #[error(transparent)]
    Codec(#[from] CodecError),
}

fn invalid(message: impl Into<String>) -> RecordCheckError {
    RecordCheckError::Invalid(message.into())
}

/// Checks the records of one whole batch (`batch` starts at its base offset field).
pub fn check_records(
    batch: &[u8],
    header: &BatchHeader,
    rules: &RecordRules,
) -> Result<(), RecordCheckError> {
    let records = batch
        .get(BATCH_HEADER_LEN..header.total_size())
        .ok_or_else(|| invalid("batch shorter than its header"))?;
    let count = header.record_count;
    match header.compression() {
        Compression::None => walk(&mut Slice(records), count, rules),
        Compression::Snappy => {
            // Inflated whole (a contiguous walk is twice as fast as a block-by-block
            // one for small records) into a buffer kept per thread: a fresh one per
            // batch costs an allocation and page faults on every byte.
            thread_local! {
                static SNAPPY: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            SNAPPY.with(|cell| {
                let mut buf = cell.borrow_mut();
                let limit = rules.max_decompressed_bytes;
                let checked = match snappy_decompress_into(records, &mut buf, limit) {
                    Ok(len) => walk(&mut Slice(&buf[..len]), count, rules),
                    Err(CodecError::TooLarge) => Err(too_large(limit)),
                    Err(e) => Err(e.into()),
                };
                // An unusually large batch does not pin its buffer.
                if buf.len() > SNAPPY_KEEP_BYTES {
                    *buf = Vec::new();
                }
                checked
            })
        }
        Compression::Zstd => {
            // A decoding context costs ~20 µs to create: keep one per thread.
            thread_local! {
                static ZSTD: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
                    const { std::cell::RefCell::new(None) };
            }
            ZSTD.with(|cell| {
                let mut cell = cell.borrow_mut();
                let context = cell.get_or_insert_with(zstd::zstd_safe::DCtx::create);
                // A context reused after a failed frame starts clean.
                let _ = context.reset(zstd::zstd_safe::ResetDirective::SessionOnly);
                let reader = zstd::stream::read::Decoder::with_context(records, context);
                let mut source = stream(reader, Compression::Zstd, rules);
                let checked = walk(&mut source, count, rules);
                drop(source);
                checked
            })
        }
        Compression::Gzip => {
            let reader = flate2::read::GzDecoder::new(records);
            walk(&mut stream(reader, Compression::Gzip, rules), count, rules)
        }
        Compression::Lz4 => {
            let reader = lz4_flex::frame::FrameDecoder::new(records);
            walk(&mut stream(reader, Compression::Lz4, rules), count, rules)
        }
    }
}

/// A streaming decoder's output, read through a small buffer (a large one costs more to
/// set up than a small batch takes to check) and bounded.
fn stream<R: Read>(reader: R, codec: Compression, rules: &RecordRules) -> Stream<R> {
    let limit = rules.max_decompressed_bytes as u64;
    Stream {
        reader: BufReader::with_capacity(8 * 1024, reader.take(limit + 1)),
        read: 0,
        limit,
        codec,
    }
}

fn too_large(limit: usize) -> RecordCheckError {
    invalid(format!("batch decompresses to more than {limit} bytes"))
}

/// Bytes to walk, uncompressed.
trait Source {
    /// The next byte, `None` at the end.
    fn byte(&mut self) -> Result<Option<u8>, RecordCheckError>;
    /// Skips `n` bytes; false if fewer are left.
    fn skip(&mut self, n: usize) -> Result<bool, RecordCheckError>;
    fn at_end(&mut self) -> Result<bool, RecordCheckError>;
}

struct Slice<'a>(&'a [u8]);

impl Source for Slice<'_> {
    fn byte(&mut self) -> Result<Option<u8>, RecordCheckError> {
        let Some((&b, rest)) = self.0.split_first() else {
            return Ok(None);
        };
        self.0 = rest;
        Ok(Some(b))
    }

    fn skip(&mut self, n: usize) -> Result<bool, RecordCheckError> {
        if n > self.0.len() {
            return Ok(false);
        }
        self.0 = &self.0[n..];
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, RecordCheckError> {
        Ok(self.0.is_empty())
    }
}

struct Stream<R> {
    reader: BufReader<std::io::Take<R>>,
    read: u64,
    limit: u64,
    codec: Compression,
}

impl<R: Read> Stream<R> {
    fn fill(&mut self) -> Result<&[u8], RecordCheckError> {
        let codec = self.codec;
        self.reader.fill_buf().map_err(|e| {
            CodecError::Corrupt {
                codec,
                message: e.to_string(),
            }
            .into()
        })
    }

    fn consumed(&mut self, n: usize) -> Result<(), RecordCheckError> {
        self.reader.consume(n);
        self.read += n as u64;
        if self.read > self.limit {
            return Err(too_large(self.limit as usize));
        }
        Ok(())
    }
}

impl<R: Read> Source for Stream<R> {
    fn byte(&mut self) -> Result<Option<u8>, RecordCheckError> {
        let Some(&b) = self.fill()?.first() else {
            return Ok(None);
        };
        self.consumed(1)?;
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: usize) -> Result<bool, RecordCheckError> {
        while n > 0 {
            let available = self.fill()?.len();
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(n);
            self.consumed(step)?;
            n -= step;
        }
        Ok(true)
    }

    fn at_end(&mut self) -> Result<bool, RecordCheckError> {
        Ok(self.fill()?.is_empty())
    }
}

/// The most a thread keeps of its snappy buffer between batches.
const SNAPPY_KEEP_BYTES: usize = 8 << 20;

/// A zigzag varint of at most `max_bytes` bytes (5 for int32, 10 for int64).
fn varint(src: &mut impl Source, max_bytes: u32, what: &str) -> Result<i64, RecordCheckError> {
    let mut raw: u64 = 0;
    for i in 0..max_bytes {
        let b = src
            .byte()?
            .ok_or_else(|| invalid(format!("records end inside {what}")))?;
        raw |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(invalid(format!("{what} is not a valid varint")))
}

/// Counts bytes taken from a source, so a record's fields can be checked against its
/// declared length.
struct Counted<'s, S> {
    src: &'s mut S,
    taken: usize,
}

impl<S: Source> Source for Counted<'_, S> {
    fn byte(&mut self) -> Result<Option<u8>, RecordCheckError> {
        let b = self.src.byte()?;
        self.taken += usize::from(b.is_some());
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> Result<bool, RecordCheckError> {
        let ok = self.src.skip(n)?;
        if ok {
            self.taken += n;
        }
        Ok(ok)
    }

    fn at_end(&mut self) -> Result<bool, RecordCheckError> {
        self.src.at_end()
    }
}

/// A length-prefixed byte field; `nullable` allows length -1. Returns whether present.
fn field(
    src: &mut impl Source,
    remaining: usize,
    nullable: bool,
    what: &str,
) -> Result<bool, RecordCheckError> {
    let len = varint(src, 5, what)?;
    if len == -1 && nullable {
        return Ok(false);
    }
    if len < 0 {
        return Err(invalid(format!("{what} has length {len}")));
    }
    let len = len as usize;
    if len > remaining || !src.skip(len)? {
        return Err(invalid(format!("{what} runs past its record")));
    }
    Ok(true)
}

fn walk(src: &mut impl Source, count: i32, rules: &RecordRules) -> Result<(), RecordCheckError> {
    for index in 0..count {
        if src.at_end()? {
            return Err(invalid(format!(
                "the batch declares {count} records but holds {index}"
            )));
        }
        let length = varint(src, 5, "record length")?;
        if length <= 0 {
            return Err(invalid(format!("record {index} has length {length}")));
        }
        let length = length as usize;
        let mut rec = Counted { src, taken: 0 };
        let left = |rec: &Counted<'_, _>| length.saturating_sub(rec.taken);
        rec.byte()?
            .ok_or_else(|| invalid("records end inside a record's attributes"))?;
        varint(&mut rec, 10, "timestamp delta")?;
        let delta = varint(&mut rec, 5, "offset delta")?;
        if delta != i64::from(index) {
            return Err(invalid(format!("record {index} has offset delta {delta}")));
        }
        let remaining = left(&rec);
        let has_key = field(&mut rec, remaining, true, "a record key")?;
        if rules.require_keys && !has_key {
            return Err(invalid("a compacted topic accepts only records with a key"));
        }
        let remaining = left(&rec);
        field(&mut rec, remaining, true, "a record value")?;
        let headers = varint(&mut rec, 5, "header count")?;
        if headers < 0 {
            return Err(invalid(format!("record {index} has {headers} headers")));
        }
        for _ in 0..headers {
            let remaining = left(&rec);
            field(&mut rec, remaining, false, "a header key")?;
            let remaining = left(&rec);
            field(&mut rec, remaining, true, "a header value")?;
            if rec.taken > length {
                break;
            }
        }
        if rec.taken != length {
            return Err(invalid(format!(
                "record {index} declares {length} bytes but its fields take {}",
                rec.taken
            )));
        }
    }
    if !src.at_end()? {
        return Err(invalid(format!(
            "bytes follow the {count} records the batch declares"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::batch::{compute_crc, BatchHeader};
    use crate::records::{encode_batch, Record};

    const RULES: RecordRules = RecordRules {
        require_keys: false,
        max_decompressed_bytes: 1 << 20,
    };

    fn records(n: usize, keyed: bool) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                key: keyed.then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(vec![b'v'; i % 300])),
                headers: vec![("h".into(), Some(Bytes::from_static(b"x")))],
                timestamp_ms: 1_000 + i as i64,
            })
            .collect()
    }

    fn check(batch: &[u8], rules: &RecordRules) -> Result<(), RecordCheckError> {
        let header = BatchHeader::parse(batch).unwrap();
        check_records(batch, &header, rules)
    }

    /// Rewrites the record count (and CRC) of an encoded batch.
    fn with_count(mut batch: Vec<u8>, count: i32) -> Vec<u8> {
        batch[57..61].copy_from_slice(&count.to_be_bytes());
        batch[23..27].copy_from_slice(&(count - 1).to_be_bytes());
        let crc = compute_crc(&batch);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    }

    #[test]
    fn well_formed_batches_pass_with_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            // 1,000 records are ~150 KiB: several 32 KiB snappy blocks, records across
            // their edges.
            let batch = encode_batch(&records(1_000, true), codec).unwrap();
            check(&batch, &RULES).unwrap();
            let keyed = RecordRules {
                require_keys: true,
                ..RULES
            };
            check(&batch, &keyed).unwrap();
        }
    }

    #[test]
    fn a_count_that_lies_is_refused() {
        for codec in [Compression::None, Compression::Zstd] {
            let batch = encode_batch(&records(3, false), codec).unwrap().to_vec();
            assert!(matches!(
                check(&with_count(batch.clone(), 4), &RULES),
                Err(RecordCheckError::Invalid(_))
            ));
            assert!(matches!(
                check(&with_count(batch.clone(), 2), &RULES),
                Err(RecordCheckError::Invalid(_))
            ));
            assert!(matches!(
                check(&with_count(batch, i32::MAX), &RULES),
                Err(RecordCheckError::Invalid(_))
            ));
        }
    }

    #[test]
    fn garbage_records_and_a_false_codec_flag_are_refused() {
        let mut garbage = encode_batch(&records(3, false), Compression::None)
            .unwrap()
            .to_vec();
        for b in &mut garbage[BATCH_HEADER_LEN..] {
            *b = 0xff;
        }
        assert!(check(&garbage, &RULES).is_err());
        // Uncompressed records flagged as gzip.
        let mut flagged = encode_batch(&records(3, false), Compression::None)
            .unwrap()
            .to_vec();
        flagged[22] |= 1;
        assert!(matches!(
            check(&flagged, &RULES),
            Err(RecordCheckError::Codec(_))
        ));
        // An empty records section.
        let empty = encode_batch(&records(1, false), Compression::None).unwrap();
        let mut cut = empty[..BATCH_HEADER_LEN].to_vec();
        cut[8..12].copy_from_slice(&((BATCH_HEADER_LEN - 12) as i32).to_be_bytes());
        assert!(check(&cut, &RULES).is_err());
    }

    #[test]
    fn keyless_records_on_a_compacted_topic_are_refused() {
        let batch = encode_batch(&records(2, false), Compression::Lz4).unwrap();
        let keyed = RecordRules {
            require_keys: true,
            ..RULES
        };
        assert!(matches!(
            check(&batch, &keyed),
            Err(RecordCheckError::Invalid(m)) if m.contains("key")
        ));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_bound() {
        let big: Vec<Record> = (0..64)
            .map(|_| Record {
                value: Some(Bytes::from(vec![0u8; 64 * 1024])),
                ..Record::default()
            })
            .collect();
        for codec in [Compression::Zstd, Compression::Snappy] {
            let batch = encode_batch(&big, codec).unwrap();
            assert!(batch.len() < 256 * 1024, "{codec:?}");
            assert!(matches!(
                check(&batch, &RULES),
                Err(RecordCheckError::Invalid(m)) if m.contains("decompresses")
            ));
        }
    }
}
