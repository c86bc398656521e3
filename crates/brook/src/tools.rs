//! `brook topic|produce|consume`: client tools built on [`crate::client::Client`].

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use brook_protocol::batch::Compression;
use brook_protocol::kafka_protocol::error::ResponseError;
use brook_protocol::kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig,
};
use brook_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::produce_request::{
    PartitionProduceData, TopicProduceData,
};
use brook_protocol::kafka_protocol::messages::*;
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::records::{encode_batch, Record};
use bytes::Bytes;

use crate::cli::{Connect, ProduceArgs, TopicCommand};
use crate::client::{partition_for_key, Client, ConnectOptions};

pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

pub fn check(code: i16, what: &str, message: Option<&StrBytes>) -> Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = error_name(code);
    match message {
        Some(m) if !m.is_empty() => bail!("{what}: {name}: {}", m.as_str()),
        _ => bail!("{what}: {name}"),
    }
}

/// Kafka's name of an error code, as its tools print it (`TOPIC_ALREADY_EXISTS`).
pub fn error_name(code: i16) -> String {
    let Some(e) = ResponseError::try_from_code(code) else {
        return format!("error {code}");
    };
    let mut out = String::new();
    for (i, c) in format!("{e:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

pub fn parse_pairs(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| anyhow!("expected NAME=VALUE, got '{p}'"))
        })
        .collect()
}

pub fn compression(name: &str) -> Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("unknown compression '{other}' (none, gzip, snappy, lz4, zstd)"),
    })
}

/// A topic's partitions, who leads each, and where those brokers are: one Metadata
/// request. Only producers ask the broker to create a missing topic (as Kafka's
/// producers do); describe and consume must not.
pub struct Layout {
    pub partitions: Vec<i32>,
    pub leader: BTreeMap<i32, i32>,
    pub brokers: BTreeMap<i32, String>,
}

impl Layout {
    /// The leader of `partition` and its address.
    pub fn leader_of(&self, partition: i32) -> Result<(i32, &str)> {
        let node = *self
            .leader
            .get(&partition)
            .ok_or_else(|| anyhow!("no partition {partition}"))?;
        if node < 0 {
            bail!("partition {partition} has no leader right now");
        }
        let address = self.brokers.get(&node).ok_or_else(|| {
            anyhow!("leader {node} of partition {partition} is not in the metadata")
        })?;
        Ok((node, address))
    }
}

pub async fn layout(client: &mut Client, topic: &str, auto_create: bool) -> Result<Layout> {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    let resp: MetadataResponse = client
        .request(12, req.with_allow_auto_topic_creation(auto_create))
        .await?;
    let t = resp
        .topics
        .first()
        .ok_or_else(|| anyhow!("no metadata for topic '{topic}'"))?;
    check(t.error_code, &format!("topic '{topic}'"), None)?;
    let mut partitions: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
    partitions.sort();
    Ok(Layout {
        partitions,
        leader: t
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect(),
        brokers: resp
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect(),
    })
}

pub async fn partitions_of(
    client: &mut Client,
    topic: &str,
    auto_create: bool,
) -> Result<Vec<i32>> {
    Ok(layout(client, topic, auto_create).await?.partitions)
}

/// A connection to each broker asked for, opened on first use: requests about a
/// partition go to its leader (in a cluster the bootstrap broker leads only some).
pub struct Leaders {
    options: ConnectOptions,
    clients: BTreeMap<i32, Client>,
}

impl Leaders {
    pub fn new(connect: &Connect) -> Result<Self> {
        Ok(Leaders {
            options: connect.options()?,
            clients: BTreeMap::new(),
        })
    }

    /// The connection to the leader of `partition` in `layout`.
    pub async fn of(&mut self, layout: &Layout, partition: i32) -> Result<&mut Client> {
        let (node, address) = layout.leader_of(partition)?;
        if !self.clients.contains_key(&node) {
            let client = Client::connect_to(address, &self.options).await?;
            self.clients.insert(node, client);
        }
        Ok(self.clients.get_mut(&node).expect("inserted above"))
    }

    /// Drops the connection to `node` (it failed); the next use reconnects.
    pub fn forget(&mut self, node: i32) {
        self.clients.remove(&node);
    }

    /// Partitions grouped by their leader, in order.
    pub fn by_leader(layout: &Layout, partitions: &[i32]) -> BTreeMap<i32, Vec<i32>> {
        let mut out: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in partitions {
            out.entry(layout.leader.get(p).copied().unwrap_or(-1))
                .or_default()
                .push(*p);
        }
        out
    }
}

/// (earliest, latest) offsets of each partition, asked of each partition's leader.
pub async fn offsets_of(
    client: &mut Client,
    connect: &Connect,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let layout = layout(client, topic, false).await?;
    let mut leaders = Leaders::new(connect)?;
    let mut out = BTreeMap::new();
    for (_, group) in Leaders::by_leader(&layout, partitions) {
        let leader = leaders.of(&layout, group[0]).await?;
        out.extend(offsets_at(leader, topic, &group).await?);
    }
    Ok(out)
}

/// (earliest, latest) offsets of partitions one broker leads.
async fn offsets_at(
    client: &mut Client,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, (i64, i64)>> {
    let mut out: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
    for (which, ts) in [(0, -2i64), (1, -1i64)] {
        let parts = partitions
            .iter()
            .map(|p| {
                ListOffsetsPartition::default()
                    .with_partition_index(*p)
                    .with_timestamp(ts)
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(parts)]);
        let resp: ListOffsetsResponse = client.request(7, req).await?;
        for t in resp.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("offsets of {topic}-{}", p.partition_index),
                    None,
                )?;
                let entry = out.entry(p.partition_index).or_default();
                if which == 0 {
                    entry.0 = p.offset;
                } else {
                    entry.1 = p.offset;
                }
            }
        }
    }
    Ok(out)
}

pub async fn topic(cmd: TopicCommand) -> Result<()> {
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            connect,
        } => {
            let mut client = Client::connect(&connect).await?;
            let configs = parse_pairs(&configs)?
                .into_iter()
                .map(|(k, v)| {
                    CreatableTopicConfig::default()
                        .with_name(s(&k))
                        .with_value(Some(s(&v)))
                })
                .collect();
            let topic = CreatableTopic::default()
                .with_name(topic_name(&name))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)
                .with_configs(configs);
            let req = CreateTopicsRequest::default()
                .with_topics(vec![topic])
                .with_timeout_ms(30_000);
            let resp: CreateTopicsResponse = client.request(7, req).await?;
            for t in resp.topics {
                check(
                    t.error_code,
                    &format!("create topic '{name}'"),
                    t.error_message.as_ref(),
                )?;
                println!("Created topic {name} with {} partitions.", t.num_partitions);
            }
        }
        TopicCommand::List { connect } => {
            let mut client = Client::connect(&connect).await?;
            let resp: MetadataResponse = client
                .request(12, MetadataRequest::default().with_topics(None))
                .await?;
            let mut names: Vec<String> = resp
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        TopicCommand::Describe { name, connect } => {
            crate::topics::describe(&connect, &name).await?
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            connect,
        } => crate::topics::alter_config(&connect, &name, &parse_pairs(&set)?, &delete).await?,
        TopicCommand::AddPartitions {
            name,
            total,
            connect,
        } => crate::topics::add_partitions(&connect, &name, total).await?,
        TopicCommand::Trim {
            name,
            partition,
            before,
            connect,
        } => crate::topics::trim(&connect, &name, partition, before).await?,
        TopicCommand::Delete { name, connect } => {
            let mut client = Client::connect(&connect).await?;
            let req = DeleteTopicsRequest::default()
                .with_topic_names(vec![topic_name(&name)])
                .with_timeout_ms(30_000);
            let resp: DeleteTopicsResponse = client.request(5, req).await?;
            for r in resp.responses {
                check(
                    r.error_code,
                    &format!("delete topic '{name}'"),
                    r.error_message.as_ref(),
                )?;
            }
            println!("Deleted topic {name}.");
        }
    }
    Ok(())
}

struct PendingBatch {
    records: Vec<Record>,
    bytes: usize,
}

pub async fn produce(args: ProduceArgs) -> Result<()> {
    let codec = compression(&args.compression)?;
    if !matches!(args.acks, -1..=1) {
        bail!("--acks must be -1, 0 or 1");
    }
    let mut client = Client::connect(&args.connect).await?;
    let layout = layout(&mut client, &args.topic, true).await?;
    let partitions = layout.partitions.clone();
    let headers = parse_headers(&args.headers)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Option<Bytes>, Bytes)>(10_000);
    let key_separator = args.key_separator.clone();
    let reader = std::thread::spawn(move || -> Result<()> {
        let stdin = std::io::stdin();
        for line in stdin.lock().split(b'\n') {
            let line = line.context("reading stdin")?;
            let (key, value) = match &key_separator {
                Some(sep) => match find(&line, sep.as_bytes()) {
                    Some(i) => (
                        Some(Bytes::copy_from_slice(&line[..i])),
                        Bytes::copy_from_slice(&line[i + sep.len()..]),
                    ),
                    None => (None, Bytes::from(line)),
                },
                None => (None, Bytes::from(line)),
            };
            if tx.blocking_send((key, value)).is_err() {
                break;
            }
        }
        Ok(())
    });
    let started = Instant::now();
    let mut pending: BTreeMap<i32, PendingBatch> = BTreeMap::new();
    let mut round_robin = 0usize;
    let (mut sent_records, mut sent_bytes) = (0u64, 0u64);
    let mut producer = ToLeaders {
        bootstrap: client,
        layout,
        options: args.connect.options()?,
        producers: BTreeMap::new(),
        topic: args.topic.clone(),
        acks: args.acks,
        codec,
    };
    // A count on stderr while stdin is read (drawn only when stderr is a terminal).
    let progress = indicatif::ProgressBar::new_spinner();
    progress.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} records sent {per_sec}")
            .expect("valid template"),
    );
    while let Some((key, value)) = rx.recv().await {
        progress.inc(1);
        // kcat's -Z: an empty key or value is sent as null (a tombstone for a value).
        let key = key.filter(|k| !(args.null_empty && k.is_empty()));
        let value = Some(value).filter(|v| !(args.null_empty && v.is_empty()));
        let partition = match (args.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, partitions.len() as i32),
            (None, None) => partitions[round_robin % partitions.len()],
        };
        let value_len = value.as_ref().map_or(0, |v| v.len());
        sent_bytes += value_len as u64;
        sent_records += 1;
        let now = args.timestamp.unwrap_or_else(chrono_ms);
        let batch = pending.entry(partition).or_insert_with(|| PendingBatch {
            records: Vec::new(),
            bytes: 0,
        });
        batch.bytes += value_len + key.as_ref().map_or(0, |k| k.len());
        batch.records.push(Record {
            key,
            value,
            headers: headers.clone(),
            timestamp_ms: now,
        });
        if batch.records.len() >= args.batch_size || batch.bytes >= 512 * 1024 {
            let batch = pending.remove(&partition).expect("present");
            producer.send(partition, batch.records).await?;
            if args.partition.is_none() {
                round_robin += 1;
            }
        }
    }
    for (partition, batch) in std::mem::take(&mut pending) {
        producer.send(partition, batch.records).await?;
    }
    producer.finish().await?;
    progress.finish_and_clear();
    reader
        .join()
        .map_err(|_| anyhow!("stdin reader panicked"))??;
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "Produced {sent_records} records ({:.1} MB) in {secs:.2} s: {:.0} records/s, {:.1} MB/s",
        sent_bytes as f64 / 1e6,
        sent_records as f64 / secs,
        sent_bytes as f64 / 1e6 / secs
    );
    Ok(())
}

/// `-H NAME=VALUE` headers; a bare `NAME` is a header with a null value.
fn parse_headers(pairs: &[String]) -> Result<Vec<(String, Option<Bytes>)>> {
    Ok(pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(Bytes::copy_from_slice(v.as_bytes()))),
            None => (p.clone(), None),
        })
        .collect())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One [`Producer`] per partition leader, connected on first use: in a cluster each
/// partition's batches go to the broker that leads it. A batch refused because the
/// leader moved is sent again to the new leader once metadata shows it (as Kafka's
/// producers retry), for up to the connection timeout.
struct ToLeaders {
    bootstrap: Client,
    layout: Layout,
    options: ConnectOptions,
    producers: BTreeMap<i32, Producer>,
    topic: String,
    acks: i16,
    codec: Compression,
}

impl ToLeaders {
    async fn send(&mut self, partition: i32, records: Vec<Record>) -> Result<()> {
        let batch = encode_batch(&records, self.codec)?.freeze();
        self.send_encoded(partition, batch).await?;
        if self
            .producers
            .values()
            .any(|p| p.retry.as_ref().is_some_and(|r| !r.failed.is_empty()))
        {
            self.resend_failed().await?;
        }
        Ok(())
    }

    async fn send_encoded(&mut self, partition: i32, batch: Bytes) -> Result<()> {
        let (node, address) = self
            .layout
            .leader_of(partition)
            .with_context(|| format!("topic '{}'", self.topic))?;
        if !self.producers.contains_key(&node) {
            let client = Client::connect_to(address, &self.options).await?;
            let producer = Producer::new(client, self.topic.clone(), self.acks, self.codec, 5);
            self.producers.insert(node, producer.retrying());
        }
        let producer = self.producers.get_mut(&node).expect("inserted above");
        producer.send_encoded(partition, batch).await
    }

    /// Waits for every answer, then sends the refused batches again (in their order)
    /// to the leaders fresh metadata names, until none is refused or time runs out.
    async fn resend_failed(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.options.timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            for p in self.producers.values_mut() {
                p.drain().await?;
            }
            let failed: Vec<_> = self
                .producers
                .values_mut()
                .flat_map(|p| p.take_failed())
                .collect();
            let Some((partition, _, why)) = failed.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                bail!(
                    "produce to {}-{partition}: {why} (gave up after {:?})",
                    self.topic,
                    self.options.timeout
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
            self.layout = layout(&mut self.bootstrap, &self.topic, false).await?;
            for (partition, batch, _) in failed {
                self.send_encoded(partition, batch).await?;
            }
        }
    }

    async fn finish(&mut self) -> Result<()> {
        self.resend_failed().await
    }
}

/// Sends batches with up to `max_in_flight` requests outstanding.
pub struct Producer {
    pub client: Client,
    pub topic: String,
    pub acks: i16,
    pub codec: Compression,
    pub max_in_flight: usize,
    /// With `Some`, batches refused with a retriable error (the partition's leader
    /// moved) are kept here to be sent again instead of failing the run.
    retry: Option<Retry>,
}

/// The batches in flight and those to send again.
#[derive(Default)]
struct Retry {
    in_flight: VecDeque<(i32, Bytes)>,
    failed: Vec<(i32, Bytes, String)>,
}

/// Produce errors a new leader fixes (Kafka's retriable ones for a moved leader).
const RETRIABLE: &[i16] = &[
    5,  // LEADER_NOT_AVAILABLE
    6,  // NOT_LEADER_OR_FOLLOWER
    19, // NOT_ENOUGH_REPLICAS
    20, // NOT_ENOUGH_REPLICAS_AFTER_APPEND
];

impl Producer {
    pub fn new(
        client: Client,
        topic: String,
        acks: i16,
        codec: Compression,
        max_in_flight: usize,
    ) -> Self {
        Producer {
            client,
            topic,
            acks,
            codec,
            max_in_flight,
            retry: None,
        }
    }

    /// Keeps batches refused with a retriable error (see [`Producer::take_failed`]).
    fn retrying(mut self) -> Self {
        self.retry = Some(Retry::default());
        self
    }

    /// The batches refused with a retriable error since the last call, in send order.
    fn take_failed(&mut self) -> Vec<(i32, Bytes, String)> {
        self.retry
            .as_mut()
            .map(|r| std::mem::take(&mut r.failed))
            .unwrap_or_default()
    }

    pub async fn send(&mut self, partition: i32, records: Vec<Record>) -> Result<()> {
        let batch = encode_batch(&records, self.codec)?.freeze();
        self.send_encoded(partition, batch).await
    }

    pub async fn send_encoded(&mut self, partition: i32, batch: Bytes) -> Result<()> {
        while self.client.in_flight() >= self.max_in_flight {
            self.receive_one().await?;
        }
        if let Some(r) = &mut self.retry {
            if self.acks != 0 {
                r.in_flight.push_back((partition, batch.clone()));
            }
        }
        let data = PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(batch));
        let req = ProduceRequest::default()
            .with_acks(self.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(&self.topic))
                .with_partition_data(vec![data])]);
        self.client
            .send(
                ApiKey::Produce,
                9,
                RequestKind::Produce(req),
                self.acks != 0,
            )
            .await?;
        self.client.flush().await
    }

    /// Waits for the oldest response; returns each partition's base offset.
    pub async fn receive_one(&mut self) -> Result<Vec<(i32, i64)>> {
        let ResponseKind::Produce(resp) = self.client.receive().await? else {
            bail!("unexpected response to Produce")
        };
        let sent = self.retry.as_mut().and_then(|r| r.in_flight.pop_front());
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partition_responses {
                if let (Some(r), Some((partition, batch))) = (&mut self.retry, &sent) {
                    if RETRIABLE.contains(&p.error_code) && p.index == *partition {
                        let why = error_name(p.error_code);
                        r.failed.push((*partition, batch.clone(), why));
                        continue;
                    }
                }
                check(
                    p.error_code,
                    &format!("produce to {}-{}", self.topic, p.index),
                    p.error_message.as_ref(),
                )?;
                out.push((p.index, p.base_offset));
            }
        }
        Ok(out)
    }

    pub async fn drain(&mut self) -> Result<()> {
        while self.client.in_flight() > 0 {
            self.receive_one().await?;
        }
        Ok(())
    }
}
