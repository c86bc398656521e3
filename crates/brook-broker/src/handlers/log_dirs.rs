//! DescribeLogDirs: the broker's one data directory, each partition replica in it with
//! its size on disk, and (v4) the file system's total and usable bytes, as
//! `kafka-log-dirs --describe` and `kafka-reassign-partitions` read them.

use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::replicas::Replicas;

pub fn describe(
    replicas: &Replicas,
    req: DescribeLogDirsRequest,
    _version: i16,
) -> DescribeLogDirsResponse {
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index)),
    };
    let mut partitions = replicas.all();
    partitions.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for p in partitions.iter().filter(|p| wanted(&p.topic, p.index)) {
        let size = p.with_log(|log| log.size_bytes());
        let (_, hw) = p.offsets();
        let (_, leo) = p.log_offsets();
        let entry = DescribeLogDirsPartition::default()
            .with_partition_index(p.index)
            .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
            .with_offset_lag((hw - leo).max(0))
            .with_is_future_key(false);
        match topics.last_mut() {
            Some(t) if t.name.0.as_str() == &*p.topic => t.partitions.push(entry),
            _ => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&p.topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let dir = replicas.data_dir();
    let (total, usable) = disk_space(dir).unwrap_or((-1, -1));
    let dir_name = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let result = DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(dir_name.to_string_lossy()))
        .with_topics(topics)
        .with_total_bytes(total)
        .with_usable_bytes(usable);
    DescribeLogDirsResponse::default().with_results(vec![result])
}

/// (total, available to us) bytes of the file system holding `dir`.
fn disk_space(dir: &Path) -> Option<(i64, i64)> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    let block = s.fragment_size() as i64;
    Some((
        (s.blocks() as i64).saturating_mul(block),
        (s.blocks_available() as i64).saturating_mul(block),
    ))
}
