//! The message browser, `GET /topics/{topic}/messages`: records of one partition from
//! an offset (absolute, `-N` before the end, `earliest`, `latest`) or a timestamp
//! (ListOffsets, as a consumer seeking would), read by the Fetch handler exactly as a
//! consumer's fetch is (leader only, up to the high watermark; `read_committed` stops
//! at the last stable offset and drops aborted transactions as Kafka's consumer does).
//! The default is `read_uncommitted`, like `kafka-console-consumer`.
//!
//! Bounded: at most [`MAX_RECORDS`] records and [`MAX_BYTES`] of batches per call,
//! [`MAX_FETCHES`] fetches, and [`super::super::limits::MAX_BROWSE_READS`] calls at
//! once. The reads count as consumer traffic in `/metrics`, like any fetch.

use std::collections::{BTreeSet, VecDeque};

use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, RawQuery, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use brook_protocol::batch::{control_type, BatchHeader, BatchIter, ControlType};
use brook_protocol::records::{decode_batches, ConsumedRecord};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, RequestKind};
use serde::Serialize;

use super::groups::{list_offsets, EARLIEST, LATEST};
use super::{ok, path_param, query_pairs, v, ApiFailure, Kafka, State};
use crate::admin_http::limits::PeerAddr;
use crate::fetch_encode::RecordsRegion;
use crate::handlers::topic_name;
use crate::router;

/// Most records one call returns.
pub const MAX_RECORDS: usize = 500;
/// Most bytes of record batches one call reads (and of keys, values and headers it
/// returns).
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
const DEFAULT_RECORDS: usize = 50;
const DEFAULT_BYTES: usize = 1024 * 1024;
/// Fetches one call makes at most (a read that holds only control batches or records
/// before the start offset moves on with another).
const MAX_FETCHES: usize = 8;

/// Where to start and what to return, from the query string.
#[derive(Debug, PartialEq)]
struct Browse {
    partition: i32,
    start: Start,
    max_records: usize,
    max_bytes: usize,
    read_committed: bool,
}

#[derive(Debug, PartialEq, Clone, Copy)]
enum Start {
    Offset(i64),
    /// This many records before the end.
    FromEnd(i64),
    Earliest,
    Latest,
    Timestamp(i64),
}

fn parse(query: Option<&str>) -> Result<Browse, ApiFailure> {
    let mut b = Browse {
        partition: 0,
        start: Start::FromEnd(DEFAULT_RECORDS as i64),
        max_records: DEFAULT_RECORDS,
        max_bytes: DEFAULT_BYTES,
        read_committed: false,
    };
    let number = |name: &str, value: &str| {
        value
            .parse::<i64>()
            .map_err(|_| ApiFailure::invalid(format!("{name} must be an integer, not '{value}'")))
    };
    let mut offset_given = false;
    for (name, value) in query_pairs(query) {
        match name.as_str() {
            "partition" => {
                b.partition = i32::try_from(number(&name, &value)?)
                    .map_err(|_| ApiFailure::invalid("partition out of range"))?
            }
            "offset" => {
                offset_given = true;
                b.start = match value.as_str() {
                    "earliest" | "beginning" => Start::Earliest,
                    "latest" | "end" => Start::Latest,
                    _ => match number(&name, &value)? {
                        n if n < 0 => Start::FromEnd(n.saturating_neg()),
                        n => Start::Offset(n),
                    },
                }
            }
            "timestamp" => {
                let ts = number(&name, &value)?;
                if ts < 0 {
                    return Err(ApiFailure::invalid(
                        "timestamp must be ≥ 0 (ms since the epoch)",
                    ));
                }
                b.start = Start::Timestamp(ts);
            }
            "max_records" => b.max_records = bounded(&name, number(&name, &value)?, MAX_RECORDS)?,
            "max_bytes" => b.max_bytes = bounded(&name, number(&name, &value)?, MAX_BYTES)?,
            "isolation" => {
                b.read_committed = match value.as_str() {
                    "read_uncommitted" => false,
                    "read_committed" => true,
                    _ => {
                        return Err(ApiFailure::invalid(
                            "isolation is read_uncommitted or read_committed",
                        ))
                    }
                }
            }
            _ => return Err(ApiFailure::invalid(format!("unknown parameter '{name}'"))),
        }
    }
    if offset_given && matches!(b.start, Start::Timestamp(_)) {
        return Err(ApiFailure::invalid("give offset or timestamp, not both"));
    }
    if !offset_given && b.start == Start::FromEnd(DEFAULT_RECORDS as i64) {
        b.start = Start::FromEnd(b.max_records as i64);
    }
    Ok(b)
}

fn bounded(name: &str, n: i64, max: usize) -> Result<usize, ApiFailure> {
    match usize::try_from(n) {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiFailure::invalid(format!(
            "{name} must be between 1 and {max}"
        ))),
    }
}

#[derive(Debug, Serialize)]
struct Page {
    topic: String,
    partition: i32,
    isolation: &'static str,
    /// The offset reading started from (resolved from `offset` or `timestamp`).
    start_offset: i64,
    /// Where the next page (or a live tail's next poll) starts.
    next_offset: i64,
    log_start_offset: i64,
    high_watermark: i64,
    last_stable_offset: i64,
    records: Vec<Message>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Message {
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Option<Data>,
    value: Option<Data>,
    headers: Vec<Header>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Header {
    key: String,
    value: Option<Data>,
}

/// Bytes as text when they are UTF-8, else base64 (the console shows them as hex).
#[derive(Debug, Serialize, PartialEq)]
struct Data {
    encoding: &'static str,
    data: String,
    /// The full size in bytes.
    size: usize,
    /// Cut to the call's `max_bytes`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

fn data(bytes: &[u8], max: usize) -> Data {
    let size = bytes.len();
    let (shown, truncated) = if size > max {
        (&bytes[..max], true)
    } else {
        (bytes, false)
    };
    // A cut may split a UTF-8 sequence: text only if what is shown is valid whole.
    match std::str::from_utf8(shown) {
        Ok(text) => Data {
            encoding: "text",
            data: text.to_string(),
            size,
            truncated,
        },
        Err(_) => Data {
            encoding: "base64",
            data: base64::engine::general_purpose::STANDARD.encode(shown),
            size,
            truncated,
        },
    }
}

fn message(r: ConsumedRecord, max_field_bytes: usize) -> (Message, usize) {
    let mut size = 0;
    let mut field = |b: Option<Bytes>| {
        b.map(|b| {
            size += b.len();
            data(&b, max_field_bytes)
        })
    };
    let key = field(r.key);
    let value = field(r.value);
    let headers = r
        .headers
        .into_iter()
        .map(|(k, v)| Header {
            value: field(v),
            key: k,
        })
        .collect();
    let m = Message {
        offset: r.offset,
        timestamp: r.timestamp_ms,
        timestamp_type: if r.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        },
        key,
        value,
        headers,
    };
    (m, size)
}

pub async fn messages(
    Extract(state): Extract<State>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    topic: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiFailure> {
    let topic = path_param(topic)?;
    let b = parse(query.as_deref())?;
    let known = state
        .metadata
        .image()
        .partition(&topic, b.partition)
        .is_some();
    if !known {
        return Err(ApiFailure::kafka(
            kafka_protocol::error::ResponseError::UnknownTopicOrPartition.code(),
            Some(&format!("no partition {} of topic '{topic}'", b.partition)),
        ));
    }
    let _slot = state
        .browse_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| {
            ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BROWSER_BUSY",
                "too many message-browser reads at once; retry shortly",
            )
        })?;
    let k = Kafka::new(&state, peer);
    let start = resolve_start(&k, &topic, &b).await?;
    let page = read(&k, &topic, &b, start).await?;
    ok(&page)
}

/// The offset a browse starts from.
async fn resolve_start(k: &Kafka<'_>, topic: &str, b: &Browse) -> Result<i64, ApiFailure> {
    let one = |ts: i64| async move {
        let found = list_offsets(k, topic, &[b.partition], ts, b.read_committed).await?;
        found
            .first()
            .map(|f| f.offset)
            .ok_or_else(|| ApiFailure::internal("ListOffsets gave no partition"))
    };
    Ok(match b.start {
        Start::Offset(o) => o,
        Start::Earliest => one(EARLIEST).await?,
        Start::Latest => one(LATEST).await?,
        Start::FromEnd(n) => {
            let earliest = one(EARLIEST).await?;
            (one(LATEST).await?.saturating_sub(n)).max(earliest)
        }
        // No record at or after it: the end, where new records will appear.
        Start::Timestamp(ts) => match one(ts).await? {
            o if o >= 0 => o,
            _ => one(LATEST).await?,
        },
    })
}

/// Fetches from `start` until the page is full, the bytes are spent or the readable
/// end is reached.
async fn read(k: &Kafka<'_>, topic: &str, b: &Browse, start: i64) -> Result<Page, ApiFailure> {
    let mut filter = AbortFilter::default();
    let mut page = Page {
        topic: topic.to_string(),
        partition: b.partition,
        isolation: if b.read_committed {
            "read_committed"
        } else {
            "read_uncommitted"
        },
        start_offset: start,
        next_offset: start,
        log_start_offset: -1,
        high_watermark: -1,
        last_stable_offset: -1,
        records: Vec::new(),
    };
    let mut bytes_left = b.max_bytes;
    let mut shown_bytes = 0usize;
    for _ in 0..MAX_FETCHES {
        let (data, batches) = fetch(k, topic, b, page.next_offset, bytes_left).await?;
        page.log_start_offset = data.log_start_offset;
        page.high_watermark = data.high_watermark;
        page.last_stable_offset = data.last_stable_offset;
        if let Some(aborted) = &data.aborted_transactions {
            filter.add(aborted.iter().map(|a| (a.first_offset, a.producer_id.0)));
        }
        if batches.is_empty() {
            break;
        }
        bytes_left = bytes_left.saturating_sub(batches.len());
        let mut full = false;
        for item in BatchIter::new(&batches) {
            let Ok((header, range)) = item else { break };
            let batch = batches.slice(range);
            if !filter.keep(&header, &batch, b.read_committed) {
                page.next_offset = page.next_offset.max(header.next_offset());
                continue;
            }
            let records = decode_batches(batch).map_err(|e| {
                tracing::warn!(%topic, partition = b.partition, error = %e, "browse: a batch does not decode");
                ApiFailure::kafka(
                    kafka_protocol::error::ResponseError::CorruptMessage.code(),
                    Some(&format!("the batch at offset {} does not decode: {e}", header.base_offset)),
                )
            })?;
            let from = page.next_offset;
            for r in records.into_iter().filter(|r| r.offset >= from) {
                let offset = r.offset;
                let (m, size) = message(r, b.max_bytes);
                page.records.push(m);
                shown_bytes += size;
                page.next_offset = offset + 1;
                if page.records.len() >= b.max_records || shown_bytes >= b.max_bytes {
                    full = true;
                    break;
                }
            }
            if full {
                break;
            }
            page.next_offset = page.next_offset.max(header.next_offset());
        }
        if full || bytes_left == 0 {
            break;
        }
    }
    Ok(page)
}

/// One consumer fetch (no wait) of the partition from `offset`: its data and the
/// whole batches read.
async fn fetch(
    k: &Kafka<'_>,
    topic: &str,
    b: &Browse,
    offset: i64,
    max_bytes: usize,
) -> Result<(PartitionData, Bytes), ApiFailure> {
    let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX);
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(max_bytes)
        .with_isolation_level(i8::from(b.read_committed))
        .with_topics(vec![FetchTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(b.partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(max_bytes)])]);
    let reply = match k
        .send(ApiKey::Fetch, v::FETCH, RequestKind::Fetch(request))
        .await
    {
        Some(router::Response::Fetch(reply)) => reply,
        _ => return Err(ApiFailure::internal("Fetch gave no answer")),
    };
    let data = reply
        .response
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or_else(|| ApiFailure::internal("Fetch gave no partition"))?;
    if data.error_code != 0 {
        let e = super::name_of(data.error_code);
        return Err(ApiFailure::kafka(
            data.error_code,
            Some(&format!(
                "{e} reading offset {offset} (log start {}, high watermark {})",
                data.log_start_offset, data.high_watermark
            )),
        ));
    }
    let inline = data.records.clone().unwrap_or_default();
    let batches = read_regions(reply.records, inline).await?;
    Ok((data, batches))
}

/// The bytes of the file regions a fetch left in segment files (read on the blocking
/// pool), after any bytes the response held itself.
async fn read_regions(regions: Vec<RecordsRegion>, inline: Bytes) -> Result<Bytes, ApiFailure> {
    if regions.is_empty() {
        return Ok(inline);
    }
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::FileExt;
        let total = inline.len() + regions.iter().map(|r| r.region.len).sum::<usize>();
        let mut out = BytesMut::with_capacity(total);
        out.extend_from_slice(&inline);
        for r in regions {
            let at = out.len();
            out.resize(at + r.region.len, 0);
            r.region
                .file
                .read_exact_at(&mut out[at..], r.region.position)?;
        }
        Ok::<_, std::io::Error>(out.freeze())
    })
    .await
    .map_err(|e| ApiFailure::internal(format!("read task failed: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "browse: reading a segment failed");
        ApiFailure::kafka(
            kafka_protocol::error::ResponseError::KafkaStorageError.code(),
            Some(&format!("reading the log failed: {e}")),
        )
    })
}

/// What a `read_committed` consumer skips: batches of transactions the fetch said were
/// aborted (from their first offset until their ABORT marker), and control batches.
/// A `read_uncommitted` read skips control batches only.
#[derive(Default)]
struct AbortFilter {
    /// (first offset, producer id), in offset order, not yet reached.
    pending: VecDeque<(i64, i64)>,
    seen: BTreeSet<(i64, i64)>,
    /// Producers whose aborted transaction the read is inside.
    aborting: BTreeSet<i64>,
}

impl AbortFilter {
    fn add(&mut self, aborted: impl Iterator<Item = (i64, i64)>) {
        let mut fresh: Vec<(i64, i64)> = aborted.filter(|a| self.seen.insert(*a)).collect();
        fresh.sort_unstable();
        self.pending.extend(fresh);
    }

    fn keep(&mut self, header: &BatchHeader, batch: &[u8], read_committed: bool) -> bool {
        if header.is_control() {
            if read_committed && matches!(control_type(batch), Ok(ControlType::Abort)) {
                self.aborting.remove(&header.producer_id);
            }
            return false;
        }
        if !read_committed {
            return true;
        }
        while let Some(&(first, producer)) = self.pending.front() {
            if first > header.last_offset() {
                break;
            }
            self.pending.pop_front();
            self.aborting.insert(producer);
        }
        !(header.is_transactional() && self.aborting.contains(&header.producer_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::records::{encode_batch_with, encode_marker, ProducerInfo, Record};

    #[test]
    fn query_strings_parse_and_are_bounded() {
        let b = parse(None).unwrap();
        assert_eq!(b.start, Start::FromEnd(50));
        assert_eq!(
            (b.max_records, b.max_bytes, b.read_committed),
            (50, 1 << 20, false)
        );
        let b = parse(Some("partition=2&offset=-10&max_records=5")).unwrap();
        assert_eq!(
            (b.partition, b.start, b.max_records),
            (2, Start::FromEnd(10), 5)
        );
        assert_eq!(parse(Some("offset=7")).unwrap().start, Start::Offset(7));
        assert_eq!(
            parse(Some("offset=earliest")).unwrap().start,
            Start::Earliest
        );
        assert_eq!(
            parse(Some("max_records=20")).unwrap().start,
            Start::FromEnd(20)
        );
        assert_eq!(
            parse(Some("timestamp=1000")).unwrap().start,
            Start::Timestamp(1000)
        );
        assert!(
            parse(Some("isolation=read_committed"))
                .unwrap()
                .read_committed
        );
        for bad in [
            "max_records=501",
            "max_records=0",
            "max_bytes=99999999",
            "offset=x",
            "timestamp=-1",
            "partition=99999999999",
            "offset=1&timestamp=5",
            "isolation=dirty",
            "colour=blue",
        ] {
            assert_eq!(
                parse(Some(bad)).unwrap_err().error(),
                "INVALID_REQUEST",
                "{bad}"
            );
        }
    }

    #[test]
    fn bytes_show_as_text_when_utf8_else_base64_and_are_cut() {
        assert_eq!(
            serde_json::to_value(data(b"hello", 100)).unwrap(),
            serde_json::json!({"encoding": "text", "data": "hello", "size": 5})
        );
        let d = data(&[0xff, 0x00, 0x01], 100);
        assert_eq!((d.encoding, d.data.as_str()), ("base64", "/wAB"));
        let d = data(b"abcdef", 3);
        assert_eq!((d.data.as_str(), d.size, d.truncated), ("abc", 6, true));
        // A cut inside a UTF-8 sequence falls back to base64 rather than lying.
        let d = data("é".as_bytes(), 1);
        assert_eq!(d.encoding, "base64");
    }

    fn txn_batch(base: i64, producer_id: i64) -> Bytes {
        let producer = ProducerInfo {
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            transactional: true,
        };
        let records = vec![Record {
            value: Some(Bytes::from_static(b"v")),
            ..Default::default()
        }];
        let mut b = encode_batch_with(&records, brook_protocol::batch::Compression::None, producer)
            .unwrap();
        brook_protocol::batch::stamp(&mut b, base, 0);
        Bytes::from(b)
    }

    #[test]
    fn read_committed_skips_aborted_transactions_until_their_marker() {
        let aborted = txn_batch(0, 7);
        let committed = txn_batch(1, 8);
        let mut marker = encode_marker(7, 0, false, 0, 0).unwrap();
        brook_protocol::batch::stamp(&mut marker, 2, 0);
        let later = txn_batch(3, 7);
        let mut f = AbortFilter::default();
        f.add([(0, 7)].into_iter());
        let h = |b: &[u8]| BatchHeader::parse(b).unwrap();
        assert!(!f.keep(&h(&aborted), &aborted, true));
        assert!(f.keep(&h(&committed), &committed, true));
        assert!(
            !f.keep(&h(&marker), &marker, true),
            "control batches never show"
        );
        assert!(
            f.keep(&h(&later), &later, true),
            "the marker ended the aborted transaction"
        );
        let mut f = AbortFilter::default();
        f.add([(0, 7)].into_iter());
        assert!(
            f.keep(&h(&aborted), &aborted, false),
            "read_uncommitted shows everything"
        );
    }
}
