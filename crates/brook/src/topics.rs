//! `brook topic describe|alter-config|add-partitions|trim`: a topic's layout and
//! configs, and the admin requests that change them.

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use brook_protocol::kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use brook_protocol::kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use brook_protocol::kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use brook_protocol::kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use brook_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use brook_protocol::kafka_protocol::messages::*;

use crate::cli::Connect;
use crate::client::Client;
use crate::tools::{check, layout, offsets_of, s, Leaders};

/// Kafka's ConfigResource type of a topic.
const TOPIC_RESOURCE: i8 = 2;

fn ids(v: &[BrokerId]) -> String {
    let ids: Vec<String> = v.iter().map(|b| b.0.to_string()).collect();
    ids.join(",")
}

/// Kafka's names of a DescribeConfigs config source.
fn source_name(source: i8) -> &'static str {
    match source {
        1 => "DYNAMIC_TOPIC_CONFIG",
        2 => "DYNAMIC_BROKER_CONFIG",
        3 => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        4 => "STATIC_BROKER_CONFIG",
        5 => "DEFAULT_CONFIG",
        6 => "DYNAMIC_BROKER_LOGGER_CONFIG",
        _ => "UNKNOWN",
    }
}

pub async fn describe(bootstrap: &Connect, name: &str) -> Result<()> {
    let mut client = Client::connect(bootstrap).await?;
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(s(name))))
        ]))
        .with_allow_auto_topic_creation(false);
    let meta: MetadataResponse = client.request(12, req).await?;
    let t = meta
        .topics
        .first()
        .ok_or_else(|| anyhow!("no metadata for topic '{name}'"))?;
    check(t.error_code, &format!("Metadata of topic '{name}'"), None)?;
    let mut parts: Vec<_> = t.partitions.iter().collect();
    parts.sort_by_key(|p| p.partition_index);
    let partitions: Vec<i32> = parts.iter().map(|p| p.partition_index).collect();
    let offsets = offsets_of(&mut client, bootstrap, name, &partitions).await?;
    let resource = DescribeConfigsResource::default()
        .with_resource_type(TOPIC_RESOURCE)
        .with_resource_name(s(name))
        .with_configuration_keys(None);
    let req = DescribeConfigsRequest::default().with_resources(vec![resource]);
    let resp: DescribeConfigsResponse = client.request(4, req).await?;
    let mut configs = Vec::new();
    for r in &resp.results {
        check(
            r.error_code,
            &format!("DescribeConfigs of topic '{name}'"),
            r.error_message.as_ref(),
        )?;
        configs.extend(r.configs.iter());
    }
    configs.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    let overrides: Vec<String> = configs
        .iter()
        .filter(|c| c.config_source == 1)
        .map(|c| {
            let value = c.value.as_ref().map_or("", |v| v.as_str());
            format!("{}={value}", c.name.as_str())
        })
        .collect();
    println!(
        "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
        t.topic_id,
        partitions.len(),
        parts.first().map_or(0, |p| p.replica_nodes.len()),
        overrides.join(",")
    );
    println!(
        "{:>10} {:>8} {:>16} {:>16} {:>12}  {:<12} {:<12} OFFLINE",
        "Partition", "Leader", "LogStartOffset", "HighWatermark", "Records", "Replicas", "Isr"
    );
    for p in &parts {
        let i = p.partition_index;
        let (start, end) = offsets.get(&i).copied().unwrap_or((-1, -1));
        println!(
            "{i:>10} {:>8} {start:>16} {end:>16} {:>12}  {:<12} {:<12} {}",
            p.leader_id.0,
            end - start,
            ids(&p.replica_nodes),
            ids(&p.isr_nodes),
            if p.offline_replicas.is_empty() {
                "-".to_string()
            } else {
                ids(&p.offline_replicas)
            },
        );
    }
    println!();
    let width = configs.iter().map(|c| c.name.len()).max().unwrap_or(0);
    println!("{:<width$}  {:<40} SOURCE", "CONFIG", "VALUE");
    for c in configs {
        let value = match (&c.value, c.is_sensitive) {
            (_, true) => "(sensitive)",
            (Some(v), _) => v.as_str(),
            (None, _) => "(null)",
        };
        println!(
            "{:<width$}  {value:<40} {}",
            c.name.as_str(),
            source_name(c.config_source)
        );
    }
    Ok(())
}

pub async fn alter_config(
    bootstrap: &Connect,
    name: &str,
    set: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<()> {
    if set.is_empty() && delete.is_empty() {
        anyhow::bail!("nothing to change: give --set NAME=VALUE and/or --delete NAME");
    }
    let mut client = Client::connect(bootstrap).await?;
    // Kafka's AlterConfigOp: 0 SET, 1 DELETE.
    let mut ops: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(s(k))
                .with_config_operation(0)
                .with_value(Some(s(v)))
        })
        .collect();
    ops.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(s(k))
            .with_config_operation(1)
            .with_value(None)
    }));
    let resource = AlterConfigsResource::default()
        .with_resource_type(TOPIC_RESOURCE)
        .with_resource_name(s(name))
        .with_configs(ops);
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![resource]);
    let resp: IncrementalAlterConfigsResponse = client.request(1, req).await?;
    for r in resp.responses {
        check(
            r.error_code,
            &format!("IncrementalAlterConfigs of topic '{name}'"),
            r.error_message.as_ref(),
        )?;
    }
    for (k, v) in set {
        println!("Set {k}={v} on topic {name}.");
    }
    for k in delete {
        println!("Deleted {k} from topic {name}.");
    }
    Ok(())
}

pub async fn add_partitions(bootstrap: &Connect, name: &str, total: i32) -> Result<()> {
    let mut client = Client::connect(bootstrap).await?;
    let topic = CreatePartitionsTopic::default()
        .with_name(TopicName(s(name)))
        .with_count(total)
        .with_assignments(None);
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let resp: CreatePartitionsResponse = client.request(3, req).await?;
    for r in resp.results {
        check(
            r.error_code,
            &format!("CreatePartitions of topic '{name}'"),
            r.error_message.as_ref(),
        )?;
    }
    println!("Topic {name} now has {total} partitions.");
    Ok(())
}

/// DeleteRecords, asked of the partition's leader.
pub async fn trim(bootstrap: &Connect, name: &str, partition: i32, before: i64) -> Result<()> {
    let mut client = Client::connect(bootstrap).await?;
    let layout = layout(&mut client, name, false).await?;
    let mut leaders = Leaders::new(bootstrap)?;
    let leader = leaders.of(&layout, partition).await?;
    let topic = DeleteRecordsTopic::default()
        .with_name(TopicName(s(name)))
        .with_partitions(vec![DeleteRecordsPartition::default()
            .with_partition_index(partition)
            .with_offset(before)]);
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(30_000);
    let resp: DeleteRecordsResponse = leader.request(2, req).await?;
    for t in resp.topics {
        for p in t.partitions {
            check(
                p.error_code,
                &format!("DeleteRecords of {name}-{}", p.partition_index),
                None,
            )?;
            println!(
                "Partition {name}-{} now starts at offset {}.",
                p.partition_index, p.low_watermark
            );
        }
    }
    Ok(())
}
