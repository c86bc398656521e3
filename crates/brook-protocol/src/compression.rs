//! Kafka's four codecs, plugged into `kafka-protocol`'s record codec through its
//! custom-compression hooks (its own LZ4 is a slow C binding; `lz4_flex` is used instead).

use std::io::{Read, Write};

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::batch::Compression;

/// xerial snappy-java stream header used by Kafka's clients.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// Upper bound on a decompressed batch, so a small "zip bomb" cannot exhaust memory.
pub const MAX_DECOMPRESSED_BYTES: usize = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("{codec:?} decompression failed: {message}")]
    Corrupt { codec: Compression, message: String },
    #[error("decompressed size exceeds {MAX_DECOMPRESSED_BYTES} bytes")]
    TooLarge,
    #[error("{codec:?} compression failed: {message}")]
    Compress { codec: Compression, message: String },
}

fn corrupt(codec: Compression, e: impl std::fmt::Display) -> CodecError {
    CodecError::Corrupt {
        codec,
        message: e.to_string(),
    }
}

fn read_bounded(codec: Compression, reader: impl Read) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    reader
        .take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| corrupt(codec, e))?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(CodecError::TooLarge);
    }
    Ok(out)
}

pub fn decompress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, CodecError> {
    match codec {
        Compression::None => Ok(input.to_vec()),
        Compression::Gzip => read_bounded(codec, flate2::read::GzDecoder::new(input)),
        Compression::Lz4 => read_bounded(codec, lz4_flex::frame::FrameDecoder::new(input)),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input).map_err(|e| corrupt(codec, e))?;
            read_bounded(codec, decoder)
        }
        Compression::Snappy => snappy_decompress(input),
    }
}

/// The compressed blocks of a snappy payload as Kafka's clients frame it: xerial's
/// stream (a 16-byte header, then length-prefixed blocks of at most 32 KiB), or one raw
/// block when the header is absent.
pub(crate) struct SnappyBlocks<'a> {
    rest: &'a [u8],
    xerial: bool,
}

impl<'a> SnappyBlocks<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        match input.strip_prefix(&XERIAL_MAGIC) {
            // magic, then version and compatible version (4 bytes each)
            Some(rest) => SnappyBlocks {
                rest: rest.get(8..).unwrap_or_default(),
                xerial: true,
            },
            None => SnappyBlocks {
                rest: input,
                xerial: false,
            },
        }
    }
}

impl<'a> Iterator for SnappyBlocks<'a> {
    type Item = Result<&'a [u8], CodecError>;

    fn next(&mut self) -> Option<Self::Item> {
        let codec = Compression::Snappy;
        if !self.xerial {
            let block = std::mem::take(&mut self.rest);
            return (!block.is_empty()).then_some(Ok(block));
        }
        if self.rest.is_empty() {
            return None;
        }
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            self.rest = &[];
            return Some(Err(corrupt(codec, "truncated xerial block length")));
        };
        let len = u32::from_be_bytes(*len) as usize;
        let Some(block) = rest.get(..len) else {
            self.rest = &[];
            return Some(Err(corrupt(codec, "truncated xerial block")));
        };
        self.rest = &rest[len..];
        Some(Ok(block))
    }
}

fn snappy_decompress(input: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    let len = snappy_decompress_into(input, &mut out, MAX_DECOMPRESSED_BYTES)?;
    out.truncate(len);
    Ok(out)
}

/// Decompresses a snappy payload into the front of `out`, which only grows (so a buffer
/// kept between calls is neither reallocated nor zeroed again); returns the length.
/// More than `limit` bytes is [`CodecError::TooLarge`].
pub(crate) fn snappy_decompress_into(
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, CodecError> {
    let codec = Compression::Snappy;
    let mut decoder = snap::raw::Decoder::new();
    let mut at = 0;
    for block in SnappyBlocks::new(input) {
        let block = block?;
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
        if len > limit - at {
            return Err(CodecError::TooLarge);
        }
        if out.len() < at + len {
            out.resize(at + len, 0);
        }
        at += decoder
            .decompress(block, &mut out[at..at + len])
            .map_err(|e| corrupt(codec, e))?;
    }
    Ok(at)
}

pub fn compress(codec: Compression, input: &[u8], out: &mut impl BufMut) -> Result<(), CodecError> {
    compress_at(codec, None, input, out)
}

/// Compresses at `level` (Kafka's `compression.<codec>.level`; `None`: the codec's
/// default). gzip takes 1-9 and zstd its own range; lz4 has one level here (lz4_flex
/// has no high-compression mode) and snappy none.
pub fn compress_at(
    codec: Compression,
    level: Option<i32>,
    input: &[u8],
    out: &mut impl BufMut,
) -> Result<(), CodecError> {
    let fail = |e: std::io::Error| CodecError::Compress {
        codec,
        message: e.to_string(),
    };
    match codec {
        Compression::None => out.put_slice(input),
        Compression::Gzip => {
            let level = level
                .filter(|l| (1..=9).contains(l))
                .map_or_else(flate2::Compression::default, |l| {
                    flate2::Compression::new(l as u32)
                });
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), level);
            enc.write_all(input).map_err(fail)?;
            out.put_slice(&enc.finish().map_err(fail)?);
        }
        Compression::Lz4 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
            enc.write_all(input).map_err(fail)?;
            let buf = enc.finish().map_err(|e| CodecError::Compress {
                codec,
                message: e.to_string(),
            })?;
            out.put_slice(&buf);
        }
        Compression::Zstd => {
            let level = level.unwrap_or(ZSTD_DEFAULT_LEVEL);
            out.put_slice(&zstd::bulk::compress(input, level).map_err(fail)?)
        }
        Compression::Snappy => {
            out.put_slice(&XERIAL_MAGIC);
            out.put_i32(1);
            out.put_i32(1);
            let mut enc = snap::raw::Encoder::new();
            for chunk in input.chunks(XERIAL_BLOCK_BYTES) {
                let block = enc.compress_vec(chunk).map_err(|e| CodecError::Compress {
                    codec,
                    message: e.to_string(),
                })?;
                out.put_u32(block.len() as u32);
                out.put_slice(&block);
            }
        }
    }
    Ok(())
}

pub(crate) fn to_kp(c: Compression) -> kafka_protocol::records::Compression {
    use kafka_protocol::records::Compression as K;
    match c {
        Compression::None => K::None,
        Compression::Gzip => K::Gzip,
        Compression::Snappy => K::Snappy,
        Compression::Lz4 => K::Lz4,
        Compression::Zstd => K::Zstd,
    }
}

pub(crate) fn from_kp(c: kafka_protocol::records::Compression) -> Compression {
    use kafka_protocol::records::Compression as K;
    match c {
        K::None => Compression::None,
        K::Gzip => Compression::Gzip,
        K::Snappy => Compression::Snappy,
        K::Lz4 => Compression::Lz4,
        K::Zstd => Compression::Zstd,
    }
}

/// Adapter for `kafka-protocol`'s decoder hook.
pub(crate) fn kp_decompress(
    buf: &mut Bytes,
    c: kafka_protocol::records::Compression,
) -> anyhow::Result<Bytes> {
    Ok(Bytes::from(decompress(from_kp(c), buf)?))
}

/// Adapter for `kafka-protocol`'s encoder hook.
/// Kafka's default zstd level.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// The compressor kafka-protocol's encoder calls, at `level`.
pub(crate) fn kp_compressor(
    level: Option<i32>,
) -> impl Fn(&mut BytesMut, &mut BytesMut, kafka_protocol::records::Compression) -> anyhow::Result<()>
{
    move |input, out, c| Ok(compress_at(from_kp(c), level, input, out)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_change_the_output_and_still_round_trip() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 16 + b'a')
            .collect();
        for (codec, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, 1, 19)] {
            let (mut fast, mut small) = (Vec::new(), Vec::new());
            compress_at(codec, Some(low), &data, &mut fast).unwrap();
            compress_at(codec, Some(high), &data, &mut small).unwrap();
            assert!(
                small.len() < fast.len(),
                "{codec:?}: {} !< {}",
                small.len(),
                fast.len()
            );
            assert_eq!(decompress(codec, &small).unwrap(), data);
        }
    }

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_be_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut out = BytesMut::new();
            compress(codec, &data, &mut out).unwrap();
            assert_eq!(decompress(codec, &out).unwrap(), data, "{codec:?}");
        }
    }

    #[test]
    fn raw_snappy_without_the_xerial_frame_is_read_too() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i % 97) as u8).collect();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        assert_eq!(decompress(Compression::Snappy, &raw).unwrap(), data);
        // A truncated xerial stream is an error, not a short result.
        let mut framed = BytesMut::new();
        compress(Compression::Snappy, &data, &mut framed).unwrap();
        assert!(decompress(Compression::Snappy, &framed[..framed.len() - 3]).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(
                decompress(codec, b"\x82SNAPPY\0garbage-garbage").is_err(),
                "{codec:?}"
            );
        }
    }
}
