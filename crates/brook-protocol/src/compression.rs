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

fn snappy_decompress(input: &[u8]) -> Result<Vec<u8>, CodecError> {
    let codec = Compression::Snappy;
    let raw = |block: &[u8]| -> Result<Vec<u8>, CodecError> {
        let len = snap::raw::decompress_len(block).map_err(|e| corrupt(codec, e))?;
        if len > MAX_DECOMPRESSED_BYTES {
            return Err(CodecError::TooLarge);
        }
        snap::raw::Decoder::new()
            .decompress_vec(block)
            .map_err(|e| corrupt(codec, e))
    };
    if !input.starts_with(&XERIAL_MAGIC) {
        return raw(input);
    }
    let mut pos = 16;
    let mut out = Vec::new();
    while pos < input.len() {
        if pos + 4 > input.len() {
            return Err(corrupt(codec, "truncated xerial block length"));
        }
        let len = u32::from_be_bytes(input[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        pos += 4;
        let block = input
            .get(pos..pos + len)
            .ok_or_else(|| corrupt(codec, "truncated xerial block"))?;
        out.extend(raw(block)?);
        if out.len() > MAX_DECOMPRESSED_BYTES {
            return Err(CodecError::TooLarge);
        }
        pos += len;
    }
    Ok(out)
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
