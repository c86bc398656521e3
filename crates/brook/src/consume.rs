//! `brook consume`: where to start (`--offset`, a group's committed offsets), how to
//! print each record (kcat-like `--format`, `--json`), when to stop (`--count`,
//! `--exit`, `--timeout-ms`), and committing a group's position.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use brook_protocol::kafka_protocol::error::ResponseError;
use brook_protocol::kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use brook_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use brook_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use brook_protocol::kafka_protocol::messages::*;
use brook_protocol::kafka_protocol::protocol::StrBytes;
use brook_protocol::records::{decode_batches, ConsumedRecord};

use crate::cli::{Connect, ConsumeArgs};
use crate::client::Client;
use crate::member::Member;
use crate::print::{legacy_format, parse_format, write_formatted, write_json, Output};
use crate::tools::{check, layout, offsets_of, Layout, Leaders};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Where to start reading a partition, as kcat's `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
    /// An absolute offset.
    Offset(i64),
    /// This many records before the end.
    FromEnd(i64),
    /// The first record at or after this time (ms since the epoch).
    Time(i64),
}

impl std::str::FromStr for StartAt {
    type Err = String;

    fn from_str(v: &str) -> Result<Self, String> {
        let bad = || format!("'{v}': expected beginning, end, N, -N or @TIMESTAMP_MS");
        Ok(match v {
            "beginning" | "earliest" => StartAt::Beginning,
            "end" | "latest" => StartAt::End,
            _ => {
                if let Some(ts) = v.strip_prefix('@') {
                    StartAt::Time(ts.parse().map_err(|_| bad())?)
                } else if let Some(n) = v.strip_prefix('-') {
                    StartAt::FromEnd(n.parse().map_err(|_| bad())?)
                } else {
                    StartAt::Offset(v.parse().map_err(|_| bad())?)
                }
            }
        })
    }
}

/// The offset of the first record at or after `timestamp_ms` in each partition (the
/// end offset where there is none): ListOffsets asked of each partition's leader.
/// -2 asks for the earliest offset and -1 for the latest, as in Kafka.
pub async fn offsets_for_time(
    client: &mut Client,
    connect: &Connect,
    topic: &str,
    partitions: &[i32],
    timestamp_ms: i64,
) -> Result<BTreeMap<i32, i64>> {
    let layout = layout(client, topic, false).await?;
    let mut leaders = Leaders::new(connect)?;
    let mut out = BTreeMap::new();
    for (_, group) in Leaders::by_leader(&layout, partitions) {
        let leader = leaders.of(&layout, group[0]).await?;
        let parts = group
            .iter()
            .map(|p| {
                ListOffsetsPartition::default()
                    .with_partition_index(*p)
                    .with_timestamp(timestamp_ms)
            })
            .collect();
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(parts)]);
        let resp: ListOffsetsResponse = leader.request(7, req).await?;
        for t in resp.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    &format!("ListOffsets of {topic}-{}", p.partition_index),
                    None,
                )?;
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    if timestamp_ms >= 0 && out.values().any(|o| *o < 0) {
        // No record at or after that time: start at the end, as Kafka's tools do.
        let ends = offsets_of(client, connect, topic, partitions).await?;
        for (p, o) in out.iter_mut() {
            if *o < 0 {
                *o = ends.get(p).map_or(0, |(_, end)| *end);
            }
        }
    }
    Ok(out)
}

/// The first offset to read in each partition for `start`, within (start, end).
async fn resolve(
    client: &mut Client,
    connect: &Connect,
    topic: &str,
    partitions: &[i32],
    bounds: &BTreeMap<i32, (i64, i64)>,
    start: StartAt,
) -> Result<BTreeMap<i32, i64>> {
    let times = match start {
        StartAt::Time(ts) => Some(offsets_for_time(client, connect, topic, partitions, ts).await?),
        _ => None,
    };
    Ok(bounds
        .iter()
        .map(|(p, &(first, end))| {
            let at = match start {
                StartAt::Beginning => first,
                StartAt::End => end,
                StartAt::Offset(o) => o.clamp(first, end),
                StartAt::FromEnd(n) => (end - n).max(first),
                StartAt::Time(_) => times
                    .as_ref()
                    .and_then(|t| t.get(p))
                    .copied()
                    .unwrap_or(end),
            };
            (*p, at)
        })
        .collect())
}

/// A group's committed offsets for `partitions` of `topic` (none: not committed).
pub async fn fetch_committed(
    coordinator: &mut Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partition_indexes(partitions.to_vec())]));
    let resp: OffsetFetchResponse = coordinator.request(7, req).await?;
    check(
        resp.error_code,
        &format!("OffsetFetch of group '{group}'"),
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!(
                    "OffsetFetch of group '{group}' for {topic}-{}",
                    p.partition_index
                ),
                None,
            )?;
            if p.committed_offset >= 0 {
                out.insert(p.partition_index, p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// Commits `offsets` of `topic` for `group` as `(generation, member id)`; (-1, "")
/// is a standalone (simple) consumer, as Kafka's `assign()` + `commitSync()`, which
/// the coordinator refuses while the group has members. Returns the first partition
/// error code (0: all committed).
pub async fn offset_commit(
    coordinator: &mut Client,
    group: &str,
    (generation, member_id): (i32, &str),
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<i16> {
    let parts = offsets
        .iter()
        .map(|(p, o)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
        })
        .collect();
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member_id))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(parts)]);
    let resp: OffsetCommitResponse = coordinator.request(8, req).await?;
    Ok(resp
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| p.error_code)
        .find(|c| *c != 0)
        .unwrap_or(0))
}

/// How a `--group` consumer takes part in its group.
enum Membership {
    /// With `--partition`: reads what it was told and commits as a standalone
    /// consumer (generation -1), as Kafka's `assign()` + `commitSync()`.
    Standalone(Client),
    /// A member of the group: partitions come from the group's assignment.
    Member(Member),
}

/// The group a `--group` consumer reads and commits for.
struct Group {
    name: String,
    membership: Membership,
    committed: BTreeMap<i32, i64>,
}

impl Group {
    fn coordinator(&mut self) -> &mut Client {
        match &mut self.membership {
            Membership::Standalone(c) => c,
            Membership::Member(m) => m.coordinator(),
        }
    }

    /// Commits the positions that changed; `true` when the member must join again.
    async fn commit(&mut self, topic: &str, positions: &BTreeMap<i32, i64>) -> Result<bool> {
        let changed: BTreeMap<i32, i64> = positions
            .iter()
            .filter(|(p, o)| self.committed.get(p) != Some(o))
            .map(|(p, o)| (*p, *o))
            .collect();
        if changed.is_empty() {
            return Ok(false);
        }
        let rejoin = match &mut self.membership {
            Membership::Standalone(c) => {
                let code = offset_commit(c, &self.name, (-1, ""), topic, &changed).await?;
                check(
                    code,
                    &format!("OffsetCommit of group '{}' (standalone)", self.name),
                    None,
                )?;
                false
            }
            Membership::Member(m) => m.commit(&changed).await?,
        };
        if !rejoin {
            self.committed.extend(changed);
        }
        Ok(rejoin)
    }

    async fn heartbeat(&mut self) -> Result<bool> {
        match &mut self.membership {
            Membership::Standalone(_) => Ok(false),
            Membership::Member(m) => m.heartbeat().await,
        }
    }
}

/// Where to start in each of `partitions` (a group's commits first, else `start`) and
/// each one's end offset now (for --exit).
async fn start_positions(
    client: &mut Client,
    args: &ConsumeArgs,
    partitions: &[i32],
    start: StartAt,
    group: Option<&mut Group>,
) -> Result<(BTreeMap<i32, i64>, BTreeMap<i32, i64>)> {
    let bounds = offsets_of(client, &args.connect, &args.topic, partitions).await?;
    let mut positions = resolve(
        client,
        &args.connect,
        &args.topic,
        partitions,
        &bounds,
        start,
    )
    .await?;
    if let Some(g) = group {
        let name = g.name.clone();
        g.committed = fetch_committed(g.coordinator(), &name, &args.topic, partitions).await?;
        // A committed position wins over --offset, as for a Kafka consumer whose
        // auto.offset.reset applies only where nothing is committed.
        positions.extend(g.committed.iter().map(|(p, o)| (*p, *o)));
    }
    let ends = bounds.iter().map(|(p, (_, e))| (*p, *e)).collect();
    Ok((positions, ends))
}

fn at_end(positions: &BTreeMap<i32, i64>, ends: &BTreeMap<i32, i64>) -> bool {
    positions
        .iter()
        .all(|(p, o)| ends.get(p).is_none_or(|e| o >= e))
}

pub async fn consume(args: ConsumeArgs) -> Result<()> {
    let output = if args.json {
        Output::Json
    } else if let Some(f) = &args.format {
        Output::Format(parse_format(f)?)
    } else {
        Output::Format(legacy_format(&args))
    };
    let mut client = Client::connect(&args.connect).await?;
    let mut layout = layout(&mut client, &args.topic, false).await?;
    let mut partitions = match args.partition {
        Some(p) if !layout.partitions.contains(&p) => {
            bail!("topic '{}' has no partition {p}", args.topic)
        }
        Some(p) => vec![p],
        None => layout.partitions.clone(),
    };
    let start = match args.offset {
        Some(o) => o,
        None if args.from_beginning => StartAt::Beginning,
        None => StartAt::End,
    };
    let mut group = match &args.group {
        Some(name) => {
            let coordinator = crate::groups::coordinator(&args.connect, name).await?;
            let membership = if args.partition.is_some() {
                Membership::Standalone(coordinator)
            } else {
                let mut m = Member::new(&args.connect, coordinator, name, &args.topic);
                partitions = m.join().await?;
                Membership::Member(m)
            };
            Some(Group {
                name: name.clone(),
                membership,
                committed: BTreeMap::new(),
            })
        }
        None => None,
    };
    let (mut positions, mut ends) =
        start_positions(&mut client, &args, &partitions, start, group.as_mut()).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last_data = Instant::now();
    let limit = args.count.unwrap_or(u64::MAX);
    let mut leaders = Leaders::new(&args.connect)?;
    let progress = progress_bar(&args, &positions, &ends);
    let stop = stop_on_signal(matches!(
        group.as_ref().map(|g| &g.membership),
        Some(Membership::Member(_))
    ))?;
    while count < limit && !(args.exit && at_end(&positions, &ends)) {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        if let Some(t) = args.timeout_ms {
            if last_data.elapsed() >= Duration::from_millis(t) {
                break;
            }
        }
        let mut round = Round {
            topic: &args.topic,
            output: &output,
            out: &mut out,
            positions: &mut positions,
            count: &mut count,
            limit,
            last_data: &mut last_data,
        };
        let moved = if partitions.is_empty() {
            // A member with nothing assigned: only heartbeats until a rebalance.
            tokio::time::sleep(Duration::from_millis(500)).await;
            false
        } else {
            round.fetch_all(&layout, &partitions, &mut leaders).await?
        };
        out.flush()?;
        progress.set_position(count);
        if let Some(g) = &mut group {
            if g.commit(&args.topic, &positions).await? || g.heartbeat().await? {
                if let Membership::Member(m) = &mut g.membership {
                    partitions = m.join().await?;
                }
                (positions, ends) =
                    start_positions(&mut client, &args, &partitions, start, Some(g)).await?;
            }
        }
        if moved {
            tokio::time::sleep(Duration::from_millis(100)).await;
            match refresh(&mut client, &args, last_data).await {
                Some(l) => layout = l,
                None => return Ok(()),
            }
        }
    }
    progress.finish_and_clear();
    if let Some(g) = &mut group {
        g.commit(&args.topic, &positions).await?;
        if let Membership::Member(m) = &mut g.membership {
            m.leave().await?;
        }
    }
    Ok(())
}

/// For a group member, Ctrl-C or SIGTERM ends the loop (the member then commits and
/// leaves, so its partitions move at once) instead of killing the process.
fn stop_on_signal(member: bool) -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>> {
    use tokio::signal::unix::{signal, SignalKind};
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if member {
        let (mut int, mut term) = (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        );
        let flag = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    Ok(stop)
}

/// With --exit and stdout going to a file or pipe, a bar on stderr (when it is a
/// terminal) counts the records still to read.
fn progress_bar(
    args: &ConsumeArgs,
    positions: &BTreeMap<i32, i64>,
    ends: &BTreeMap<i32, i64>,
) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !args.exit || std::io::stdout().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let total: i64 = positions.iter().map(|(p, o)| (ends[p] - o).max(0)).sum();
    let total = (total as u64).min(args.count.unwrap_or(u64::MAX));
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec}")
            .expect("valid template"),
    );
    bar
}

/// One pass over the partitions' leaders, printing what each returns.
struct Round<'a, W: Write> {
    topic: &'a str,
    output: &'a Output,
    out: &'a mut W,
    positions: &'a mut BTreeMap<i32, i64>,
    count: &'a mut u64,
    limit: u64,
    last_data: &'a mut Instant,
}

impl<W: Write> Round<'_, W> {
    /// Returns whether a leader moved or failed (ask the metadata again).
    async fn fetch_all(
        &mut self,
        layout: &Layout,
        partitions: &[i32],
        leaders: &mut Leaders,
    ) -> Result<bool> {
        // Each leader is asked for the partitions it leads; the long-poll is shared
        // between them so one quiet leader does not hold up the others.
        let groups = Leaders::by_leader(layout, partitions);
        let wait_ms = (500 / groups.len().max(1)) as i32;
        let mut moved = false;
        for (&leader, group) in &groups {
            if leader < 0 {
                moved = true; // being elected: ask the metadata again
                continue;
            }
            let parts = group
                .iter()
                .map(|p| {
                    FetchPartition::default()
                        .with_partition(*p)
                        .with_fetch_offset(self.positions[p])
                        .with_partition_max_bytes(1024 * 1024)
                })
                .collect();
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(wait_ms)
                .with_min_bytes(1)
                .with_max_bytes(50 * 1024 * 1024)
                .with_session_epoch(-1)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(s(self.topic)))
                    .with_partitions(parts)]);
            let fetched = match leaders.of(layout, group[0]).await {
                Ok(c) => c.request::<FetchRequest>(12, req).await,
                Err(e) => Err(e),
            };
            let resp: FetchResponse = match fetched {
                Ok(resp) => resp,
                Err(e) => {
                    // A broker restarting or gone: reconnect, as kcat and Kafka's
                    // consumers do, rather than end the command.
                    eprintln!("warning: {e:#}; reconnecting");
                    leaders.forget(leader);
                    moved = true;
                    continue;
                }
            };
            for t in resp.responses {
                for p in t.partitions {
                    if p.error_code == ResponseError::NotLeaderOrFollower.code() {
                        moved = true; // leadership moved: ask the metadata again
                        continue;
                    }
                    check(
                        p.error_code,
                        &format!("Fetch of {}-{}", self.topic, p.partition_index),
                        None,
                    )?;
                    if let Some(data) = p.records {
                        self.print(p.partition_index, decode_batches(data)?)?;
                    }
                }
            }
        }
        Ok(moved)
    }

    fn print(&mut self, partition: i32, records: Vec<ConsumedRecord>) -> Result<()> {
        let position = self
            .positions
            .get_mut(&partition)
            .ok_or_else(|| anyhow!("unexpected partition {partition} in a Fetch answer"))?;
        for r in records {
            if r.offset < *position || *self.count >= self.limit {
                continue;
            }
            *position = r.offset + 1;
            *self.count += 1;
            *self.last_data = Instant::now();
            match self.output {
                Output::Json => write_json(self.out, self.topic, partition, &r)?,
                Output::Format(pieces) => {
                    write_formatted(self.out, pieces, self.topic, partition, &r)?
                }
            }
        }
        Ok(())
    }
}

/// Fresh metadata after a leader moved, reconnecting to the bootstrap brokers if
/// needed; `None` when `--timeout-ms` (since the last record) ran out meanwhile.
async fn refresh(client: &mut Client, args: &ConsumeArgs, last_data: Instant) -> Option<Layout> {
    loop {
        let fresh = match layout(client, &args.topic, false).await {
            Ok(layout) => Ok(layout),
            Err(_) => match Client::connect(&args.connect).await {
                Ok(c) => {
                    *client = c;
                    layout(client, &args.topic, false).await
                }
                Err(e) => Err(e),
            },
        };
        match fresh {
            Ok(layout) => return Some(layout),
            Err(e) => {
                if let Some(t) = args.timeout_ms {
                    if last_data.elapsed() >= Duration::from_millis(t) {
                        return None;
                    }
                }
                eprintln!("warning: {e:#}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_like_kcat() {
        for (text, want) in [
            ("beginning", StartAt::Beginning),
            ("end", StartAt::End),
            ("42", StartAt::Offset(42)),
            ("-10", StartAt::FromEnd(10)),
            ("@1700000000000", StartAt::Time(1_700_000_000_000)),
        ] {
            assert_eq!(text.parse::<StartAt>(), Ok(want), "{text}");
        }
        assert!("@x".parse::<StartAt>().is_err());
        assert!("soon".parse::<StartAt>().is_err());
    }
}
