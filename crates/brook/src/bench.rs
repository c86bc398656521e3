//! `brook bench produce|consume|e2e`: a load generator built on Brook's own client,
//! with a progress bar and a report of throughput and latency percentiles.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::{BufMut, Bytes, BytesMut};
use clap::{Args, Subcommand};
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::cli::Connect;
use crate::client::Client;
use crate::tools::{compression, offsets_of, partitions_of, Producer};
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::records::{encode_batch, Record};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Produce as fast as possible and report throughput and per-request latency.
    Produce(ProduceBench),
    /// Read a topic from the beginning as fast as possible.
    Consume(ConsumeBench),
    /// Produce at a fixed rate while consuming; report end-to-end latency.
    E2e(E2eBench),
}

#[derive(Args, Clone)]
pub struct Common {
    #[arg(long, default_value = "brook-bench")]
    pub topic: String,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub connect: Connect,
}

#[derive(Args)]
pub struct ProduceBench {
    #[command(flatten)]
    pub common: Common,
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Records per batch (one batch per request).
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    pub acks: i16,
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 5)]
    pub in_flight: usize,
    /// Stop after this many seconds even if not all records were sent.
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
}

#[derive(Args)]
pub struct ConsumeBench {
    #[command(flatten)]
    pub common: Common,
    /// Stop after this many records (default: everything up to the current end).
    #[arg(long)]
    pub records: Option<u64>,
    #[arg(long, default_value_t = 1024 * 1024)]
    pub partition_max_bytes: i32,
    #[arg(long, default_value_t = 120)]
    pub max_seconds: u64,
}

#[derive(Args)]
pub struct E2eBench {
    #[command(flatten)]
    pub common: Common,
    /// Records per second to produce.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
    pub acks: i16,
}

#[derive(Serialize)]
struct Report {
    kind: &'static str,
    records: u64,
    bytes: u64,
    seconds: f64,
    records_per_sec: f64,
    mb_per_sec: f64,
    latency_ms: Option<Percentiles>,
}

#[derive(Serialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Percentiles {
            p50: ms(h.value_at_quantile(0.50)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

/// Largest batch `bench e2e` sends (Kafka's default max.message.bytes is ~1 MiB).
const E2E_MAX_BATCH_BYTES: usize = 256 * 1024;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

fn progress(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} records ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!(
        "{}: {} records, {:.1} MB in {:.2} s = {:.0} records/s, {:.1} MB/s",
        report.kind,
        report.records,
        report.bytes as f64 / 1e6,
        report.seconds,
        report.records_per_sec,
        report.mb_per_sec
    );
    if let Some(l) = &report.latency_ms {
        println!(
            "latency ms: p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            l.p50, l.p99, l.p999, l.max
        );
    }
    Ok(())
}

fn report(
    kind: &'static str,
    records: u64,
    bytes: u64,
    elapsed: Duration,
    h: Option<&Histogram<u64>>,
) -> Report {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    Report {
        kind,
        records,
        bytes,
        seconds,
        records_per_sec: records as f64 / seconds,
        mb_per_sec: bytes as f64 / 1e6 / seconds,
        latency_ms: h.and_then(Percentiles::of),
    }
}

pub async fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Produce(b) => produce(b).await,
        BenchCommand::Consume(b) => consume(b).await,
        BenchCommand::E2e(b) => e2e(b).await,
    }
}

fn payload(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

async fn produce(b: ProduceBench) -> Result<()> {
    let codec = compression(&b.compression)?;
    let mut client = Client::connect(&b.common.connect).await?;
    let partitions = partitions_of(&mut client, &b.common.topic, true).await?;
    let value = payload(b.record_size);
    let mut producer = Producer::new(
        client,
        b.common.topic.clone(),
        b.acks,
        codec,
        b.in_flight.max(1),
    );
    let mut latency = histogram();
    let mut sent_at = std::collections::VecDeque::new();
    let bar = progress(b.records, b.common.quiet);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(b.max_seconds);
    let mut sent = 0u64;
    let mut next_partition = 0usize;
    while sent < b.records && Instant::now() < deadline {
        let n = (b.records - sent).min(b.batch_size as u64) as usize;
        let now_ms = crate::tools::chrono_ms();
        let records: Vec<Record> = (0..n)
            .map(|_| Record {
                key: None,
                value: Some(value.clone()),
                headers: vec![],
                timestamp_ms: now_ms,
            })
            .collect();
        let batch = encode_batch(&records, codec)?.freeze();
        while producer.client.in_flight() >= producer.max_in_flight {
            producer.receive_one().await?;
            let t: Instant = sent_at.pop_front().expect("one send time per request");
            latency.saturating_record(t.elapsed().as_micros() as u64);
        }
        sent_at.push_back(Instant::now());
        producer
            .send_encoded(partitions[next_partition % partitions.len()], batch)
            .await?;
        if b.acks == 0 {
            sent_at.pop_back();
        }
        next_partition += 1;
        sent += n as u64;
        bar.set_position(sent);
    }
    while producer.client.in_flight() > 0 {
        producer.receive_one().await?;
        let t: Instant = sent_at.pop_front().expect("one send time per request");
        latency.saturating_record(t.elapsed().as_micros() as u64);
    }
    bar.finish_and_clear();
    let r = report(
        "produce",
        sent,
        sent * b.record_size as u64,
        started.elapsed(),
        (b.acks != 0).then_some(&latency),
    );
    print(&r, b.common.json)
}

fn fetch_request(
    topic: &str,
    positions: &BTreeMap<i32, i64>,
    partition_max_bytes: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let parts = positions
        .iter()
        .map(|(p, off)| {
            FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*off)
                .with_partition_max_bytes(partition_max_bytes)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(parts)])
}

/// Walks the batch headers of a fetched chunk: (records, bytes, next offset) without
/// decoding records, as a consumer that only counts would.
fn scan(data: &[u8], position: i64) -> (u64, u64, i64) {
    let (mut records, mut bytes, mut next) = (0u64, 0u64, position);
    for (h, range) in brook_protocol::batch::BatchIter::new(data).map_while(Result::ok) {
        if h.last_offset() < position {
            continue;
        }
        records += (h.last_offset() - h.base_offset.max(position) + 1) as u64;
        bytes += range.len() as u64;
        next = h.next_offset();
    }
    (records, bytes, next)
}

async fn consume(b: ConsumeBench) -> Result<()> {
    let mut client = Client::connect(&b.common.connect).await?;
    let partitions = partitions_of(&mut client, &b.common.topic, false).await?;
    let offsets = offsets_of(&mut client, &b.common.connect, &b.common.topic, &partitions).await?;
    let available: u64 = offsets.values().map(|(s, e)| (e - s) as u64).sum();
    let target = b.records.unwrap_or(available).min(available);
    if target == 0 {
        bail!("topic '{}' has no records to consume", b.common.topic);
    }
    let ends: BTreeMap<i32, i64> = offsets.iter().map(|(p, (_, e))| (*p, *e)).collect();
    let mut positions: BTreeMap<i32, i64> = offsets.iter().map(|(p, (s, _))| (*p, *s)).collect();
    let bar = progress(target, b.common.quiet);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(b.max_seconds);
    let (mut records, mut bytes) = (0u64, 0u64);
    while records < target && Instant::now() < deadline {
        positions.retain(|p, off| *off < ends[p]);
        let req = fetch_request(&b.common.topic, &positions, b.partition_max_bytes, 500);
        let resp: FetchResponse = client.request(12, req).await?;
        for t in resp.responses {
            for p in t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "fetch error {} on partition {}",
                        p.error_code,
                        p.partition_index
                    );
                }
                let Some(data) = p.records else { continue };
                let Some(position) = positions.get_mut(&p.partition_index) else {
                    continue;
                };
                let (n, size, next) = scan(&data, *position);
                records += n;
                bytes += size;
                *position = next;
            }
        }
        bar.set_position(records.min(target));
    }
    bar.finish_and_clear();
    let r = report("consume", records, bytes, started.elapsed(), None);
    print(&r, b.common.json)
}

async fn e2e(b: E2eBench) -> Result<()> {
    let mut client = Client::connect(&b.common.connect).await?;
    let partitions = partitions_of(&mut client, &b.common.topic, true).await?;
    let offsets = offsets_of(&mut client, &b.common.connect, &b.common.topic, &partitions).await?;
    let start = Instant::now();
    let total = b.rate * b.seconds;
    let connect = b.common.connect.clone();
    let topic = b.common.topic.clone();
    let consumer = tokio::spawn(async move {
        let mut client = Client::connect(&connect).await?;
        let mut positions: BTreeMap<i32, i64> =
            offsets.iter().map(|(p, (_, e))| (*p, *e)).collect();
        let mut latency = histogram();
        let mut seen = 0u64;
        let deadline = Instant::now() + Duration::from_secs(b.seconds + 10);
        while seen < total && Instant::now() < deadline {
            let req = fetch_request(&topic, &positions, 1024 * 1024, 100);
            let resp: FetchResponse = client.request(12, req).await?;
            for t in resp.responses {
                for p in t.partitions {
                    let Some(data) = p.records else { continue };
                    let position = positions
                        .get_mut(&p.partition_index)
                        .expect("requested partition");
                    for r in brook_protocol::records::decode_batches(data)? {
                        if r.offset < *position {
                            continue;
                        }
                        *position = r.offset + 1;
                        if let Some(v) = r.value.filter(|v| v.len() >= 8) {
                            let sent_us = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
                            let now_us = start.elapsed().as_micros() as u64;
                            latency.saturating_record(now_us.saturating_sub(sent_us).max(1));
                        }
                        seen += 1;
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>((seen, latency))
    });
    let mut producer = Producer::new(
        client,
        b.common.topic.clone(),
        b.acks,
        brook_protocol::batch::Compression::None,
        5,
    );
    let bar = progress(total, b.common.quiet);
    let filler = payload(b.record_size.max(8) - 8);
    let interval = Duration::from_secs_f64(1.0 / b.rate.max(1) as f64);
    let mut sent = 0u64;
    let mut next_partition = 0usize;
    while sent < total {
        let due = start + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(due.into()).await;
        // Send everything that is due now as one batch, as a linger-free producer would.
        // At most E2E_MAX_BATCH_BYTES per batch, so a broker that falls behind never
        // receives a batch over its max.message.bytes.
        let max_batch = (E2E_MAX_BATCH_BYTES / b.record_size.max(8)).max(1) as u64;
        let due_now = ((start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64 + 1)
            .min(total)
            .max(sent + 1)
            .min(sent + max_batch);
        let now_us = start.elapsed().as_micros() as u64;
        let records: Vec<Record> = (sent..due_now)
            .map(|_| {
                let mut v = BytesMut::with_capacity(8 + filler.len());
                v.put_u64(now_us);
                v.put_slice(&filler);
                Record {
                    key: None,
                    value: Some(v.freeze()),
                    headers: vec![],
                    timestamp_ms: crate::tools::chrono_ms(),
                }
            })
            .collect();
        sent = due_now;
        producer
            .send(partitions[next_partition % partitions.len()], records)
            .await?;
        next_partition += 1;
        while producer.client.in_flight() > 1 {
            producer.receive_one().await?;
        }
        bar.set_position(sent);
    }
    producer.drain().await?;
    bar.finish_and_clear();
    let (seen, latency) = consumer.await??;
    let r = report(
        "e2e",
        seen,
        seen * b.record_size as u64,
        start.elapsed(),
        Some(&latency),
    );
    print(&r, b.common.json)
}
