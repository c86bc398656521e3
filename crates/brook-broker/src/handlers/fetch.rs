//! Fetch: read whole batches from each partition; long-poll until `min_bytes` are
//! available or `max_wait_ms` passes, woken by appends (no idle sleeping).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use tokio::time::Instant;

use super::topic_name;
use crate::partition::FollowerRead;
use crate::shared::{now_ms, Shared};

/// Longest long-poll Brook honours, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;
/// Kafka's `fetch.max.bytes` broker default (response size cap).
const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

pub async fn handle(shared: &Arc<Shared>, req: FetchRequest, version: i16) -> FetchResponse {
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if version >= 3 {
        (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    };
    let topics = resolve_topics(shared, &req.topics, version);
    // A follower's fetch carries its broker id (v15+ moved it into ReplicaState).
    let replica_id = if version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    let replica = (replica_id >= 0).then_some(replica_id);
    loop {
        let notified = shared.data_appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, total_bytes, any_error) =
            read_all(shared, &req.topics, &topics, max_bytes, replica);
        if total_bytes >= min_bytes || any_error || Instant::now() >= deadline {
            return FetchResponse::default().with_responses(responses);
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// The topic name for each requested topic (v13+ identifies topics by id).
fn resolve_topics(shared: &Shared, topics: &[FetchTopic], version: i16) -> Vec<Option<String>> {
    shared.with_image(|image| {
        topics
            .iter()
            .map(|t| {
                if version >= 13 {
                    image.topic_by_id(&t.topic_id).map(|t| t.name.clone())
                } else {
                    Some(t.topic.0.to_string())
                }
            })
            .collect()
    })
}

fn read_all(
    shared: &Shared,
    topics: &[FetchTopic],
    names: &[Option<String>],
    max_bytes: usize,
    replica: Option<i32>,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let responses = topics
        .iter()
        .zip(names)
        .map(|(t, name)| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let data = read_partition(
                        shared,
                        name.as_deref(),
                        p,
                        max_bytes.saturating_sub(total),
                        total == 0,
                        replica,
                    );
                    total += data.records.as_ref().map_or(0, |r| r.len());
                    any_error |= data.error_code != 0 || data.diverging_epoch.epoch >= 0;
                    data
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(
                    name.as_deref()
                        .map(topic_name)
                        .unwrap_or_else(|| TopicName(Default::default())),
                )
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    (responses, total, any_error)
}

fn read_partition(
    shared: &Shared,
    name: Option<&str>,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    budget: usize,
    first: bool,
    replica: Option<i32>,
) -> PartitionData {
    let base = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    let partition = match name.and_then(|n| shared.partition(n, p.partition)) {
        Some(partition) => partition,
        None if name.is_none() => {
            return base.with_error_code(ResponseError::UnknownTopicId.code())
        }
        None if shared.is_cluster() && name.is_some_and(|n| shared.image().topic(n).is_some()) => {
            // The topic exists but this broker holds no replica of the partition.
            return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
        }
        None => return base.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
    };
    let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
    if let Some(replica) = replica {
        let fetched = partition.follower_fetch(
            replica,
            p.fetch_offset,
            p.last_fetched_epoch,
            p.current_leader_epoch,
            limit,
            now_ms(),
        );
        return match fetched {
            Err(refused) => base.with_error_code(refused.0),
            Ok((read, log_start, hw, moved)) => {
                if moved {
                    // Consumers wait for the high watermark, not the log end.
                    shared.data_appended.notify_waiters();
                }
                let base = base
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(log_start);
                match read {
                    FollowerRead::Diverging { epoch, end_offset } => {
                        let mut data = base.with_records(Some(Bytes::new()));
                        data.diverging_epoch.epoch = epoch;
                        data.diverging_epoch.end_offset = end_offset;
                        data
                    }
                    FollowerRead::Records(slice) => match slice.read_bytes() {
                        Ok(bytes) => base.with_records(Some(bytes)),
                        Err(e) => {
                            tracing::error!(error = %e, "replica fetch read failed");
                            base.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    },
                }
            }
        };
    }
    // Reads come from the page cache almost always; a blocking-pool hop per partition
    // would cost more than the pread.
    match partition.read_committed(p.fetch_offset, limit, first, p.current_leader_epoch) {
        Err(refused) => {
            let (log_start, hw) = partition.offsets();
            base.with_error_code(refused.0)
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start)
        }
        Ok((slice, log_start, hw)) => {
            let base = base
                .with_high_watermark(hw)
                .with_last_stable_offset(hw)
                .with_log_start_offset(log_start);
            let Some(slice) = slice else {
                return base.with_records(Some(Bytes::new()));
            };
            match slice.read_bytes() {
                Ok(bytes) => base.with_records(Some(bytes)),
                Err(e) => {
                    tracing::error!(error = %e, "fetch read failed");
                    base.with_error_code(ResponseError::KafkaStorageError.code())
                }
            }
        }
    }
}
