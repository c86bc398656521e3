//! A FetchResponse encoder that leaves record bytes in their segment files.
//!
//! `kafka-protocol` encodes a response into one buffer, which would copy every record
//! batch out of the page cache and into that buffer. This encoder writes everything
//! around the records itself and yields a list of [`Chunk`]s: encoded bytes, and file
//! ranges the connection sends with `sendfile(2)`. The bytes on the wire are exactly
//! those of `brook_protocol::request::encode_response` for the same response with the
//! records inline (a differential test below checks every version).
//!
//! Field order and encodings follow `vendor/kafka-protocol/src/messages/fetch_response.rs`;
//! the small nested structs (aborted transactions, tagged-field structs, node endpoints)
//! are encoded by `kafka-protocol` itself.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

use anyhow::{bail, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;

/// Inline records at least this long become their own chunk instead of being copied.
const INLINE_COPY_MAX_BYTES: usize = 4096;

/// A byte range of a file, sent without copying it through user space.
#[derive(Debug, Clone)]
pub struct FileRegion {
    pub file: Arc<File>,
    pub position: u64,
    pub len: usize,
}

/// The records of partition `partition` of topic `topic` (indexes into
/// `FetchResponse::responses` and its `partitions`), to be sent from a file. The
/// partition's `records` in the response must be `Some` (its content is ignored).
#[derive(Debug, Clone)]
pub struct RecordsRegion {
    pub topic: usize,
    pub partition: usize,
    pub region: FileRegion,
}

/// One piece of a response frame, in order.
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    File(FileRegion),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::Bytes(b) => b.len(),
            Chunk::File(r) => r.len,
        }
    }
}

/// Encodes a complete Fetch response frame (size prefix, response header, body) as
/// chunks. `regions` must be in response order, one per partition at most.
pub fn encode_fetch_response(
    version: i16,
    correlation_id: i32,
    response: &FetchResponse,
    regions: &[RecordsRegion],
) -> Result<Vec<Chunk>> {
    if !(4..=18).contains(&version) {
        bail!("FetchResponse v{version} is not supported");
    }
    let flexible = version >= 12;
    let mut out = Chunks {
        chunks: vec![Chunk::Bytes(Bytes::new())], // the size prefix, filled in last
        buf: BytesMut::with_capacity(256 + 64 * regions.len()),
        total: 0,
    };
    let buf = &mut out.buf;
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(buf, ApiKey::Fetch.response_header_version(version))?;
    buf.put_i32(response.throttle_time_ms);
    if version >= 7 {
        buf.put_i16(response.error_code);
        buf.put_i32(response.session_id);
    } else if response.session_id != 0 {
        bail!("session_id is not available in FetchResponse v{version}");
    }
    put_len(&mut out.buf, flexible, Some(response.responses.len()))?;
    let mut regions = regions.iter().peekable();
    for (ti, topic) in response.responses.iter().enumerate() {
        let buf = &mut out.buf;
        if version <= 12 {
            put_string(buf, flexible, topic.topic.0.as_bytes())?;
        }
        if version >= 13 {
            buf.put_slice(topic.topic_id.as_bytes());
        }
        put_len(buf, flexible, Some(topic.partitions.len()))?;
        for (pi, partition) in topic.partitions.iter().enumerate() {
            let region = match regions.peek() {
                Some(r) if r.topic == ti && r.partition == pi => regions.next().map(|r| &r.region),
                _ => None,
            };
            encode_partition(&mut out, version, partition, region)?;
        }
        if flexible {
            put_tagged_fields(&mut out.buf, 0, &topic.unknown_tagged_fields, 0..)?;
        }
    }
    if let Some(r) = regions.next() {
        bail!(
            "records region for topic {} partition {} matches no partition of the response",
            r.topic,
            r.partition
        );
    }
    if flexible {
        let buf = &mut out.buf;
        let endpoints = version >= 16 && !response.node_endpoints.is_empty();
        put_uvarint(
            buf,
            count(response.unknown_tagged_fields.len() + usize::from(endpoints))?,
        );
        if endpoints {
            let mut size = uvarint_len(count(response.node_endpoints.len() + 1)?);
            for e in &response.node_endpoints {
                size += e.compute_size(version)?;
            }
            put_uvarint(buf, 0);
            put_uvarint(buf, count(size)?);
            put_len(buf, true, Some(response.node_endpoints.len()))?;
            for e in &response.node_endpoints {
                e.encode(buf, version)?;
            }
        }
        write_unknown_tagged_fields(buf, &response.unknown_tagged_fields, 1..)?;
    }
    out.finish()
}

struct Chunks {
    chunks: Vec<Chunk>,
    buf: BytesMut,
    total: usize,
}

impl Chunks {
    fn push(&mut self, chunk: Chunk) {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.total += bytes.len();
            self.chunks.push(Chunk::Bytes(bytes));
        }
        self.total += chunk.len();
        self.chunks.push(chunk);
    }

    fn finish(mut self) -> Result<Vec<Chunk>> {
        if !self.buf.is_empty() {
            let bytes = self.buf.split().freeze();
            self.total += bytes.len();
            self.chunks.push(Chunk::Bytes(bytes));
        }
        let Ok(len) = i32::try_from(self.total) else {
            bail!("response of {} bytes is too large for a frame", self.total);
        };
        self.chunks[0] = Chunk::Bytes(Bytes::copy_from_slice(&len.to_be_bytes()));
        Ok(self.chunks)
    }
}

fn encode_partition(
    out: &mut Chunks,
    version: i16,
    p: &PartitionData,
    region: Option<&FileRegion>,
) -> Result<()> {
    let flexible = version >= 12;
    let buf = &mut out.buf;
    buf.put_i32(p.partition_index);
    buf.put_i16(p.error_code);
    buf.put_i64(p.high_watermark);
    buf.put_i64(p.last_stable_offset);
    if version >= 5 {
        buf.put_i64(p.log_start_offset);
    }
    put_len(
        buf,
        flexible,
        p.aborted_transactions.as_ref().map(|a| a.len()),
    )?;
    for txn in p.aborted_transactions.iter().flatten() {
        txn.encode(buf, version)?;
    }
    if version >= 11 {
        buf.put_i32(p.preferred_read_replica.0);
    } else if p.preferred_read_replica.0 != -1 {
        bail!("preferred_read_replica is not available in FetchResponse v{version}");
    }
    match region {
        Some(region) => {
            if p.records.is_none() {
                bail!("a partition sent from a file has null records");
            }
            put_len(buf, flexible, Some(region.len))?;
            if region.len > 0 {
                out.push(Chunk::File(region.clone()));
            }
        }
        None => {
            put_len(buf, flexible, p.records.as_ref().map(|r| r.len()))?;
            match &p.records {
                Some(r) if r.len() >= INLINE_COPY_MAX_BYTES => out.push(Chunk::Bytes(r.clone())),
                Some(r) => buf.put_slice(r),
                None => {}
            }
        }
    }
    if flexible {
        let buf = &mut out.buf;
        let diverging = p.diverging_epoch != Default::default();
        let leader = p.current_leader != Default::default();
        let snapshot = p.snapshot_id != Default::default();
        let known = usize::from(diverging) + usize::from(leader) + usize::from(snapshot);
        put_uvarint(buf, count(p.unknown_tagged_fields.len() + known)?);
        if diverging {
            put_tagged_struct(buf, 0, &p.diverging_epoch, version)?;
        }
        if leader {
            put_tagged_struct(buf, 1, &p.current_leader, version)?;
        }
        if snapshot {
            put_tagged_struct(buf, 2, &p.snapshot_id, version)?;
        }
        write_unknown_tagged_fields(buf, &p.unknown_tagged_fields, 3..)?;
    }
    Ok(())
}

fn count(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| anyhow::anyhow!("{n} is too large to encode"))
}

fn put_uvarint(buf: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        buf.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    buf.put_u8(value as u8);
}

fn uvarint_len(value: u32) -> usize {
    match value {
        0x0..=0x7f => 1,
        0x80..=0x3fff => 2,
        0x4000..=0x1fffff => 3,
        0x200000..=0xfffffff => 4,
        _ => 5,
    }
}

/// An array length or a BYTES / COMPACT_BYTES length prefix (`None`: null): INT32, or
/// a compact UNSIGNED_VARINT of n + 1.
fn put_len(buf: &mut BytesMut, compact: bool, len: Option<usize>) -> Result<()> {
    match (compact, len) {
        (true, None) => put_uvarint(buf, 0),
        (true, Some(n)) => {
            if n >= u32::MAX as usize {
                bail!("a length of {n} is too long to encode");
            }
            put_uvarint(buf, n as u32 + 1)
        }
        (false, None) => buf.put_i32(-1),
        (false, Some(n)) => {
            let Ok(n) = i32::try_from(n) else {
                bail!("a length of {n} is too long to encode");
            };
            buf.put_i32(n)
        }
    }
    Ok(())
}

/// A non-null STRING / COMPACT_STRING.
fn put_string(buf: &mut BytesMut, compact: bool, s: &[u8]) -> Result<()> {
    if compact {
        if s.len() >= u32::MAX as usize {
            bail!("string of {} bytes is too long to encode", s.len());
        }
        put_uvarint(buf, s.len() as u32 + 1);
    } else {
        let Ok(n) = i16::try_from(s.len()) else {
            bail!("string of {} bytes is too long to encode", s.len());
        };
        buf.put_i16(n);
    }
    buf.put_slice(s);
    Ok(())
}

fn put_tagged_struct<T: Encodable>(
    buf: &mut BytesMut,
    tag: u32,
    value: &T,
    version: i16,
) -> Result<()> {
    put_uvarint(buf, tag);
    put_uvarint(buf, count(value.compute_size(version)?)?);
    value.encode(buf, version)
}

/// A tagged-field section holding only unknown fields.
fn put_tagged_fields(
    buf: &mut BytesMut,
    known: usize,
    unknown: &BTreeMap<i32, Bytes>,
    range: std::ops::RangeFrom<i32>,
) -> Result<()> {
    put_uvarint(buf, count(unknown.len() + known)?);
    write_unknown_tagged_fields(buf, unknown, range)
}

/// As `kafka-protocol` writes them: only the tags in `range`, though all are counted.
fn write_unknown_tagged_fields(
    buf: &mut BytesMut,
    unknown: &BTreeMap<i32, Bytes>,
    range: std::ops::RangeFrom<i32>,
) -> Result<()> {
    for (&tag, value) in unknown.range(range) {
        put_uvarint(buf, tag as u32);
        put_uvarint(buf, count(value.len())?);
        buf.put_slice(value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::FileExt;

    use brook_protocol::request::encode_response;
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
        SnapshotId,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, ResponseKind, TopicName};
    use kafka_protocol::protocol::StrBytes;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn flatten(chunks: &[Chunk]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            match chunk {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(r) => {
                    let mut buf = vec![0; r.len];
                    r.file.read_exact_at(&mut buf, r.position).unwrap();
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    fn reference(version: i16, correlation_id: i32, response: &FetchResponse) -> Vec<u8> {
        encode_response(
            ApiKey::Fetch,
            version,
            correlation_id,
            &ResponseKind::Fetch(response.clone()),
        )
        .unwrap()
        .to_vec()
    }

    fn random_bytes(rng: &mut StdRng, max: usize) -> Bytes {
        let len = if rng.gen_bool(0.2) {
            rng.gen_range(0..=max)
        } else {
            rng.gen_range(0..=max.min(300))
        };
        Bytes::from((0..len).map(|_| rng.gen()).collect::<Vec<u8>>())
    }

    fn random_string(rng: &mut StdRng) -> StrBytes {
        let len = rng.gen_range(0..40);
        StrBytes::from_string((0..len).map(|_| rng.gen_range('a'..='z')).collect())
    }

    /// A random response valid at `version` (fields a version lacks keep their defaults,
    /// as the handler leaves them).
    fn random_response(rng: &mut StdRng, version: i16) -> FetchResponse {
        let mut response = FetchResponse::default()
            .with_throttle_time_ms(rng.gen_range(-1..1000))
            .with_error_code(rng.gen_range(-1..120));
        if version >= 7 {
            response.session_id = rng.gen();
        }
        for _ in 0..rng.gen_range(0..5) {
            let mut topic = FetchableTopicResponse::default()
                .with_topic(TopicName(random_string(rng)))
                .with_topic_id(uuid::Uuid::from_u128(rng.gen()));
            for _ in 0..rng.gen_range(0..6) {
                let mut p = PartitionData::default()
                    .with_partition_index(rng.gen_range(0..1000))
                    .with_error_code(if rng.gen_bool(0.7) {
                        0
                    } else {
                        rng.gen_range(1..120)
                    })
                    .with_high_watermark(rng.gen_range(-1..i64::MAX))
                    .with_last_stable_offset(rng.gen_range(-1..1 << 40))
                    .with_log_start_offset(rng.gen_range(-1..1 << 40));
                p.aborted_transactions = match rng.gen_range(0..3) {
                    0 => None,
                    1 => Some(Vec::new()),
                    _ => Some(
                        (0..rng.gen_range(1..4))
                            .map(|_| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(rng.gen()))
                                    .with_first_offset(rng.gen())
                            })
                            .collect(),
                    ),
                };
                if version >= 11 && rng.gen_bool(0.5) {
                    p.preferred_read_replica = BrokerId(rng.gen_range(-1..10));
                }
                if version >= 12 {
                    if rng.gen_bool(0.3) {
                        p.diverging_epoch = EpochEndOffset::default()
                            .with_epoch(rng.gen_range(-1..100))
                            .with_end_offset(rng.gen_range(-1..1 << 40));
                    }
                    if rng.gen_bool(0.3) {
                        p.current_leader = LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(rng.gen_range(-1..10)))
                            .with_leader_epoch(rng.gen_range(-1..100));
                    }
                    if rng.gen_bool(0.3) {
                        p.snapshot_id = SnapshotId::default()
                            .with_end_offset(rng.gen_range(-1..1 << 40))
                            .with_epoch(rng.gen_range(-1..100));
                    }
                    if rng.gen_bool(0.1) {
                        p.unknown_tagged_fields
                            .insert(rng.gen_range(0..200), random_bytes(rng, 20));
                    }
                }
                p.records = if rng.gen_bool(0.1) {
                    None
                } else {
                    Some(random_bytes(rng, 20_000))
                };
                topic.partitions.push(p);
            }
            if version >= 12 && rng.gen_bool(0.1) {
                topic
                    .unknown_tagged_fields
                    .insert(rng.gen_range(0..200), random_bytes(rng, 20));
            }
            response.responses.push(topic);
        }
        // Below v16 both encoders must ignore node endpoints.
        if rng.gen_bool(0.5) {
            for _ in 0..rng.gen_range(0..3) {
                response.node_endpoints.push(
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(rng.gen_range(0..10)))
                        .with_host(random_string(rng))
                        .with_port(rng.gen_range(0..65536))
                        .with_rack(rng.gen_bool(0.5).then(|| random_string(rng))),
                );
            }
        }
        if version >= 12 && rng.gen_bool(0.1) {
            response
                .unknown_tagged_fields
                .insert(rng.gen_range(0..200), random_bytes(rng, 20));
        }
        response
    }

    /// Moves some partitions' records into a file (at random offsets, between filler)
    /// and returns the response with placeholders plus the regions.
    fn to_regions(
        rng: &mut StdRng,
        response: &FetchResponse,
    ) -> (FetchResponse, Vec<RecordsRegion>, tempfile::NamedTempFile) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        let file = Arc::new(tmp.reopen().unwrap());
        let mut placed = response.clone();
        let mut regions = Vec::new();
        for (ti, topic) in placed.responses.iter_mut().enumerate() {
            for (pi, p) in topic.partitions.iter_mut().enumerate() {
                let Some(records) = &p.records else { continue };
                if rng.gen_bool(0.25) {
                    continue; // stays inline
                }
                let filler = random_bytes(rng, 100);
                tmp.write_all(&filler).unwrap();
                let position = tmp.stream_position().unwrap();
                tmp.write_all(records).unwrap();
                regions.push(RecordsRegion {
                    topic: ti,
                    partition: pi,
                    region: FileRegion {
                        file: file.clone(),
                        position,
                        len: records.len(),
                    },
                });
                p.records = Some(Bytes::new());
            }
        }
        tmp.write_all(&random_bytes(rng, 50)).unwrap();
        tmp.flush().unwrap();
        (placed, regions, tmp)
    }

    #[test]
    fn matches_kafka_protocol_for_random_responses() {
        let mut rng = StdRng::seed_from_u64(0x5eed_f37c);
        for version in 4..=16 {
            for _ in 0..150 {
                let response = random_response(&mut rng, version);
                let correlation_id = rng.gen();
                let expected = reference(version, correlation_id, &response);
                // All inline.
                let chunks = encode_fetch_response(version, correlation_id, &response, &[])
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
                assert_eq!(flatten(&chunks), expected, "v{version} inline");
                // Records from a file.
                let (placed, regions, _tmp) = to_regions(&mut rng, &response);
                let chunks = encode_fetch_response(version, correlation_id, &placed, &regions)
                    .unwrap_or_else(|e| panic!("v{version}: {e}"));
                let total: usize = chunks.iter().map(Chunk::len).sum();
                assert_eq!(total, expected.len(), "v{version} chunk lengths");
                assert_eq!(flatten(&chunks), expected, "v{version} from file");
                assert!(chunks
                    .iter()
                    .all(|c| !matches!(c, Chunk::File(r) if r.len == 0)));
            }
        }
    }

    #[test]
    fn empty_response_and_null_records() {
        for version in 4..=16 {
            let empty = FetchResponse::default();
            let chunks = encode_fetch_response(version, 7, &empty, &[]).unwrap();
            assert_eq!(
                flatten(&chunks),
                reference(version, 7, &empty),
                "v{version}"
            );

            let null =
                FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        PartitionData::default().with_records(None),
                        PartitionData::default()
                            .with_partition_index(1)
                            .with_records(Some(Bytes::new())),
                    ])]);
            let chunks = encode_fetch_response(version, -3, &null, &[]).unwrap();
            assert_eq!(
                flatten(&chunks),
                reference(version, -3, &null),
                "v{version}"
            );
        }
    }

    #[test]
    fn rejects_fields_the_version_lacks_and_stray_regions() {
        let mut response = FetchResponse::default();
        response.session_id = 5;
        assert!(encode_fetch_response(6, 1, &response, &[]).is_err());
        let p = PartitionData::default().with_preferred_read_replica(BrokerId(2));
        let response = FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(vec![p]),
        ]);
        assert!(encode_fetch_response(10, 1, &response, &[]).is_err());
        assert!(encode_fetch_response(11, 1, &response, &[]).is_ok());
        let tmp = tempfile::tempfile().unwrap();
        let stray = RecordsRegion {
            topic: 1,
            partition: 0,
            region: FileRegion {
                file: Arc::new(tmp),
                position: 0,
                len: 1,
            },
        };
        assert!(encode_fetch_response(11, 1, &response, &[stray]).is_err());
        assert!(encode_fetch_response(3, 1, &FetchResponse::default(), &[]).is_err());
    }

    #[test]
    fn region_offsets_are_respected() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"xxxxRECORDSyyyy").unwrap();
        tmp.seek(SeekFrom::Start(0)).unwrap();
        let response =
            FetchResponse::default()
                .with_responses(vec![FetchableTopicResponse::default()
                    .with_partitions(vec![PartitionData::default()])]);
        let region = RecordsRegion {
            topic: 0,
            partition: 0,
            region: FileRegion {
                file: Arc::new(tmp),
                position: 4,
                len: 7,
            },
        };
        let chunks = encode_fetch_response(12, 9, &response, &[region]).unwrap();
        let mut inline = response.clone();
        inline.responses[0].partitions[0].records = Some(Bytes::from_static(b"RECORDS"));
        assert_eq!(flatten(&chunks), reference(12, 9, &inline));
    }
}
