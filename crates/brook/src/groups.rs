//! `brook group list|describe|delete|reset-offsets`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use brook_protocol::consumer_protocol;
use brook_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use brook_protocol::kafka_protocol::messages::*;
use brook_protocol::kafka_protocol::protocol::StrBytes;
use clap::{Args, Subcommand};

use crate::cli::Connect;
use crate::client::Client;
use crate::consume::offsets_for_time;
use crate::tools::{check, offsets_of, partitions_of};

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List consumer groups and their states.
    List {
        #[command(flatten)]
        connect: Connect,
    },
    /// Show a group's members, committed offsets and lag per partition.
    Describe {
        group: String,
        #[command(flatten)]
        connect: Connect,
    },
    /// Delete groups that have no active members.
    Delete {
        groups: Vec<String>,
        #[command(flatten)]
        connect: Connect,
    },
    /// Move a group's committed offsets (the group must have no active members).
    ResetOffsets(ResetArgs),
}

#[derive(Args)]
pub struct ResetArgs {
    pub group: String,
    #[arg(long)]
    pub topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long, short = 'p')]
    pub partition: Option<i32>,
    #[command(flatten)]
    pub to: ResetTo,
    /// Apply the change (without it, only print the plan, as Kafka's tool does).
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
    /// Only print the plan (the default; as Kafka's tool).
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub connect: Connect,
}

/// Where to move the offsets: exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
pub struct ResetTo {
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// Move by this many records (negative: back).
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// The first offset at or after this time: `2024-05-01T12:00:00Z`, with an optional
    /// `.sss` and `+HH:MM` (no zone: UTC).
    #[arg(long, value_parser = crate::when::parse_datetime_ms)]
    pub to_datetime: Option<i64>,
    /// The first offset at or after this long ago: an ISO-8601 duration, `PT1H`, `P1DT30M`.
    #[arg(long, value_parser = crate::when::parse_duration_ms)]
    pub by_duration: Option<i64>,
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn run(cmd: GroupCommand) -> Result<()> {
    match cmd {
        GroupCommand::List { connect } => list(&connect).await,
        GroupCommand::Describe { group, connect } => describe(&connect, &group).await,
        GroupCommand::Delete { groups, connect } => delete(&connect, groups).await,
        GroupCommand::ResetOffsets(args) => reset(args).await,
    }
}

/// A connection to the broker that coordinates `group` (FindCoordinator, asked of the
/// bootstrap broker; retried while `__consumer_offsets` is being created).
pub async fn coordinator(bootstrap: &Connect, group: &str) -> Result<Client> {
    let mut client = Client::connect(bootstrap).await?;
    let deadline = Instant::now() + bootstrap.timeout();
    loop {
        let req = FindCoordinatorRequest::default()
            .with_key(s(group))
            .with_key_type(0);
        let resp: FindCoordinatorResponse = client.request(1, req).await?;
        let retriable = [COORDINATOR_NOT_AVAILABLE, COORDINATOR_LOAD_IN_PROGRESS];
        if retriable.contains(&resp.error_code) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        check(
            resp.error_code,
            &format!("the coordinator of group '{group}'"),
            resp.error_message.as_ref(),
        )?;
        let address = format!("{}:{}", resp.host.as_str(), resp.port);
        return Client::connect_to(&address, &bootstrap.options()?).await;
    }
}

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;

/// Every group of the cluster: ListGroups asked of each broker (each lists the groups
/// it coordinates), as kafka-consumer-groups does.
async fn list(bootstrap: &Connect) -> Result<()> {
    let mut client = Client::connect(bootstrap).await?;
    let meta: MetadataResponse = client
        .request(12, MetadataRequest::default().with_topics(Some(Vec::new())))
        .await?;
    let mut groups: Vec<(String, String)> = Vec::new();
    let options = bootstrap.options()?;
    for broker in &meta.brokers {
        let address = format!("{}:{}", broker.host.as_str(), broker.port);
        let mut c = Client::connect_to(&address, &options).await?;
        let resp: ListGroupsResponse = c.request(4, ListGroupsRequest::default()).await?;
        check(
            resp.error_code,
            &format!("list groups on broker {}", broker.node_id.0),
            None,
        )?;
        groups.extend(
            resp.groups
                .iter()
                .map(|g| (g.group_id.0.to_string(), g.group_state.to_string())),
        );
    }
    groups.sort();
    groups.dedup();
    println!("{:<40} STATE", "GROUP");
    for (g, state) in groups {
        println!("{g:<40} {state}");
    }
    Ok(())
}

/// Committed offsets of a group: (topic, partition) -> offset.
async fn committed(client: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_topics(None);
    let resp: OffsetFetchResponse = client.request(7, req).await?;
    check(
        resp.error_code,
        &format!("offsets of group '{group}'"),
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// Decodes a consumer-protocol assignment into (topic, partition) pairs.
fn assigned(assignment: &[u8]) -> Vec<(String, i32)> {
    let topics = consumer_protocol::decode_assignment(assignment).unwrap_or_default();
    topics
        .into_iter()
        .flat_map(|(topic, ps)| ps.into_iter().map(move |p| (topic.clone(), p)))
        .collect()
}

/// A member as `describe` shows it, and its assigned partitions.
type Member = (String, Vec<(String, i32)>);

/// A group's state and members: DescribeGroups for a classic group, else
/// ConsumerGroupDescribe for a KIP-848 consumer group (DescribeGroups calls one Dead).
async fn members_of(client: &mut Client, group: &str) -> Result<(String, Vec<Member>)> {
    let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    let resp: DescribeGroupsResponse = client.request(5, req).await?;
    let g = resp
        .groups
        .first()
        .ok_or_else(|| anyhow!("no answer for group '{group}'"))?;
    check(
        g.error_code,
        &format!("DescribeGroups of group '{group}'"),
        g.error_message.as_ref(),
    )?;
    let label = |id: &StrBytes, host: &StrBytes| format!("{} ({})", id.as_str(), host.as_str());
    let state = g.group_state.to_string();
    if state != "Dead" || !g.members.is_empty() {
        let members = g
            .members
            .iter()
            .map(|m| {
                (
                    label(&m.member_id, &m.client_host),
                    assigned(&m.member_assignment),
                )
            })
            .collect();
        return Ok((state, members));
    }
    let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
    let resp: ConsumerGroupDescribeResponse = client.request(0, req).await?;
    match resp.groups.first() {
        Some(cg) if cg.error_code == 0 => {
            let members = cg
                .members
                .iter()
                .map(|m| {
                    let parts = m
                        .assignment
                        .topic_partitions
                        .iter()
                        .flat_map(|tp| {
                            tp.partitions
                                .iter()
                                .map(|p| (tp.topic_name.0.to_string(), *p))
                        })
                        .collect();
                    (label(&m.member_id, &m.client_host), parts)
                })
                .collect();
            Ok((cg.group_state.to_string(), members))
        }
        _ => Ok((state, Vec::new())),
    }
}

async fn describe(bootstrap: &Connect, group: &str) -> Result<()> {
    let mut client = coordinator(bootstrap, group).await?;
    let offsets = committed(&mut client, group).await?;
    let (state, members) = members_of(&mut client, group).await?;
    if state == "Dead" && members.is_empty() && offsets.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut owner: BTreeMap<(String, i32), &str> = BTreeMap::new();
    for (who, parts) in &members {
        for tp in parts {
            owner.insert(tp.clone(), who);
        }
    }
    println!("Group: {group}  State: {state}  Members: {}", members.len());
    // Topics with commits, and those assigned before any commit (as Kafka's tool shows).
    let mut topics: Vec<String> = offsets.keys().map(|(t, _)| t.clone()).collect();
    topics.extend(owner.keys().map(|(t, _)| t.clone()));
    topics.sort();
    topics.dedup();
    let mut total_lag = 0i64;
    println!(
        "{:<30} {:>9} {:>15} {:>15} {:>10}  CONSUMER",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
    );
    for topic in topics {
        let partitions = partitions_of(&mut client, &topic, false).await?;
        let ends = offsets_of(&mut client, bootstrap, &topic, &partitions).await?;
        for p in partitions {
            let end = ends.get(&p).map_or(-1, |(_, e)| *e);
            let current = offsets.get(&(topic.clone(), p)).copied();
            let lag = current.map(|c| (end - c).max(0));
            total_lag += lag.unwrap_or(0);
            let lag = lag.map_or("-".to_string(), |l| l.to_string());
            let who = owner.get(&(topic.clone(), p)).copied().unwrap_or("-");
            let current = current.map_or("-".to_string(), |c| c.to_string());
            println!("{topic:<30} {p:>9} {current:>15} {end:>15} {lag:>10}  {who}");
        }
    }
    println!("Total lag: {total_lag}");
    Ok(())
}

async fn delete(bootstrap: &Connect, groups: Vec<String>) -> Result<()> {
    for group in groups {
        let mut client = coordinator(bootstrap, &group).await?;
        let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]);
        let resp: DeleteGroupsResponse = client.request(2, req).await?;
        for r in resp.results {
            check(
                r.error_code,
                &format!("delete group '{}'", r.group_id.0),
                None,
            )?;
            println!("Deleted group {}.", r.group_id.0);
        }
    }
    Ok(())
}

async fn reset(args: ResetArgs) -> Result<()> {
    let mut client = coordinator(&args.connect, &args.group).await?;
    // As kafka-consumer-groups: offsets of a group with live members cannot be reset
    // (its consumers would overwrite them); say so before printing any plan.
    let (state, members) = members_of(&mut client, &args.group).await?;
    if !members.is_empty() {
        bail!(
            "consumer group '{}' is {state} with {} member(s): stop its consumers before resetting its offsets",
            args.group,
            members.len()
        );
    }
    let mut partitions = partitions_of(&mut client, &args.topic, false).await?;
    if let Some(p) = args.partition {
        if !partitions.contains(&p) {
            bail!("topic '{}' has no partition {p}", args.topic);
        }
        partitions = vec![p];
    }
    let bounds = offsets_of(&mut client, &args.connect, &args.topic, &partitions).await?;
    let current = committed(&mut client, &args.group).await?;
    let to = &args.to;
    let at_time = match (to.to_datetime, to.by_duration) {
        (Some(ts), _) => Some(ts),
        (_, Some(ago_ms)) => Some(crate::tools::chrono_ms() - ago_ms),
        _ => None,
    };
    let by_time = match at_time {
        Some(ts) => {
            Some(offsets_for_time(&mut client, &args.connect, &args.topic, &partitions, ts).await?)
        }
        None => None,
    };
    let mut plan = Vec::new();
    for p in &partitions {
        let (start, end) = bounds[p];
        let now = current
            .get(&(args.topic.clone(), *p))
            .copied()
            .unwrap_or(end);
        let target = if to.to_earliest {
            start
        } else if to.to_latest {
            end
        } else if let Some(o) = to.to_offset {
            o
        } else if let Some(d) = to.shift_by {
            now + d
        } else if let Some(t) = &by_time {
            t.get(p).copied().unwrap_or(end)
        } else {
            bail!("choose one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime, --by-duration");
        };
        let shown = current
            .get(&(args.topic.clone(), *p))
            .map_or("-".to_string(), |c| c.to_string());
        plan.push((*p, shown, target.clamp(start, end)));
    }
    println!(
        "{:<30} {:>9} {:>15} {:>12}",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"
    );
    for (p, now, o) in &plan {
        println!("{:<30} {p:>9} {now:>15} {o:>12}", args.topic);
    }
    if !args.execute {
        println!("Dry run: nothing changed (add --execute to apply).");
        return Ok(());
    }
    let topic = OffsetCommitRequestTopic::default()
        .with_name(TopicName(s(&args.topic)))
        .with_partitions(
            plan.iter()
                .map(|(p, _, o)| {
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*o)
                })
                .collect(),
        );
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&args.group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![topic]);
    let resp: OffsetCommitResponse = client.request(8, req).await?;
    for t in resp.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!(
                    "reset {}-{} (is the group still active?)",
                    t.name.0, p.partition_index
                ),
                None,
            )?;
        }
    }
    println!("Offsets reset.");
    Ok(())
}
