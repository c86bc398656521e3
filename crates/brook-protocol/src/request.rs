//! Request decoding and response encoding on top of `kafka-protocol`.
//!
//! `kafka-protocol`'s header decoder fails on an unknown API key, and some handlers must
//! answer versions the codec cannot decode (ApiVersions' KIP-511 fallback), so the key,
//! version and correlation id are peeked from the raw bytes first.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use thiserror::Error;

/// The fixed prefix of every request header: api key, api version, correlation id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderPeek {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("request too short for a header ({0} bytes)")]
    Truncated(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("malformed {api:?} v{version} request: {source}")]
    Malformed {
        api: ApiKey,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
}

#[derive(Debug, Error)]
#[error("cannot encode {api:?} v{version} response: {source}")]
pub struct EncodeError {
    pub api: ApiKey,
    pub version: i16,
    #[source]
    pub source: anyhow::Error,
}

/// Reads api key, version and correlation id without decoding anything else.
pub fn peek_header(frame: &[u8]) -> Result<HeaderPeek, DecodeError> {
    if frame.len() < 8 {
        return Err(DecodeError::Truncated(frame.len()));
    }
    Ok(HeaderPeek {
        api_key: i16::from_be_bytes([frame[0], frame[1]]),
        api_version: i16::from_be_bytes([frame[2], frame[3]]),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    })
}

/// Decodes the header and body of a request whose version the caller has already
/// checked against what Brook supports. Record payloads stay zero-copy slices of `frame`.
pub fn decode_request(mut frame: Bytes) -> Result<(RequestHeader, RequestKind), DecodeError> {
    let peek = peek_header(&frame)?;
    let api =
        ApiKey::try_from(peek.api_key).map_err(|_| DecodeError::UnknownApiKey(peek.api_key))?;
    let malformed = |source| DecodeError::Malformed {
        api,
        version: peek.api_version,
        source,
    };
    let header_version = api.request_header_version(peek.api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(malformed)?;
    let body = RequestKind::decode(api, &mut frame, peek.api_version).map_err(malformed)?;
    Ok((header, body))
}

/// Builds one frame: a size prefix, then whatever `encode` writes.
fn framed(
    capacity: usize,
    encode: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    encode(&mut buf)?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// Bytes to reserve for a response, so a large fetch response is encoded into one
/// buffer instead of one that doubles its way up (copying the records each time).
fn size_hint(body: &ResponseKind) -> usize {
    const OVERHEAD_BYTES: usize = 256;
    match body {
        ResponseKind::Fetch(r) => {
            let records: usize = r
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| p.records.as_ref().map_or(0, |b| b.len()) + 64)
                .sum();
            records + OVERHEAD_BYTES
        }
        _ => OVERHEAD_BYTES,
    }
}

/// Encodes a complete response frame: size prefix, response header, body.
pub fn encode_response(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<BytesMut, EncodeError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    framed(size_hint(body), |buf| {
        header.encode(buf, api.response_header_version(version))?;
        body.encode(buf, version)
    })
    .map_err(|source| EncodeError {
        api,
        version,
        source,
    })
}

/// Encodes a request frame (used by Brook's own client tools).
pub fn encode_request(header: &RequestHeader, body: &RequestKind) -> Result<BytesMut, EncodeError> {
    let api = ApiKey::try_from(header.request_api_key).unwrap_or(ApiKey::ApiVersions);
    let version = header.request_api_version;
    framed(256, |buf| {
        header.encode(buf, api.request_header_version(version))?;
        body.encode(buf, version)
    })
    .map_err(|source| EncodeError {
        api,
        version,
        source,
    })
}

/// Decodes a response frame body (without size prefix) for Brook's own client tools.
pub fn decode_response(
    api: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, ResponseKind), DecodeError> {
    let malformed = |source| DecodeError::Malformed {
        api,
        version,
        source,
    };
    let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))
        .map_err(malformed)?;
    let body = ResponseKind::decode(api, &mut frame, version).map_err(malformed)?;
    if frame.has_remaining() {
        // Trailing bytes are tolerated, as Kafka's own clients do.
    }
    Ok((header.correlation_id, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    #[test]
    fn round_trip_request() {
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::ApiVersions as i16)
            .with_request_api_version(3)
            .with_correlation_id(7);
        let body = RequestKind::ApiVersions(ApiVersionsRequest::default());
        let frame = encode_request(&header, &body).unwrap();
        let frame = frame.freeze().slice(4..);
        let peek = peek_header(&frame).unwrap();
        assert_eq!(
            peek,
            HeaderPeek {
                api_key: 18,
                api_version: 3,
                correlation_id: 7
            }
        );
        let (h, b) = decode_request(frame).unwrap();
        assert_eq!(h.correlation_id, 7);
        assert!(matches!(b, RequestKind::ApiVersions(_)));
    }

    #[test]
    fn huge_array_length_is_an_error_not_an_allocation() {
        // Produce v3 whose topic array claims i32::MAX entries in a 22-byte frame.
        let mut f = Vec::new();
        f.extend_from_slice(&0i16.to_be_bytes());
        f.extend_from_slice(&3i16.to_be_bytes());
        f.extend_from_slice(&1i32.to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes());
        f.extend_from_slice(&(-1i16).to_be_bytes());
        f.extend_from_slice(&1i16.to_be_bytes());
        f.extend_from_slice(&1000i32.to_be_bytes());
        f.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode_request(Bytes::from(f)),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn short_and_unknown() {
        assert!(matches!(
            peek_header(&[0, 1]),
            Err(DecodeError::Truncated(2))
        ));
        let mut f = vec![0x27, 0x0f, 0, 0, 0, 0, 0, 1];
        f.extend_from_slice(&[0, 0]);
        assert!(matches!(
            decode_request(Bytes::from(f)),
            Err(DecodeError::UnknownApiKey(9999))
        ));
    }
}
