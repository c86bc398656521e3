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
use crate::partition::LEADER_EPOCH;
use crate::shared::Shared;

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
    loop {
        let notified = shared.data_appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, total_bytes, any_error) = read_all(shared, &req.topics, &topics, max_bytes);
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
                    );
                    total += data.records.as_ref().map_or(0, |r| r.len());
                    any_error |= data.error_code != 0;
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
        None => return base.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
    };
    if p.current_leader_epoch > LEADER_EPOCH {
        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
    }
    let (log_start, high_watermark) = partition.offsets();
    let base = base
        .with_high_watermark(high_watermark)
        .with_last_stable_offset(high_watermark)
        .with_log_start_offset(log_start);
    if p.fetch_offset < log_start || p.fetch_offset > high_watermark {
        return base.with_error_code(ResponseError::OffsetOutOfRange.code());
    }
    if p.fetch_offset == high_watermark {
        return base.with_records(Some(Bytes::new()));
    }
    let limit = (p.partition_max_bytes.max(0) as usize).min(budget);
    // Reads come from the page cache almost always; a blocking-pool hop per partition
    // would cost more than the pread.
    let read = partition
        .read(p.fetch_offset, limit, first)
        .and_then(|slice| {
            slice.read_bytes().map_err(|e| brook_log::LogError::Io {
                context: "reading segment".into(),
                source: e,
            })
        });
    match read {
        Ok(bytes) => base.with_records(Some(bytes)),
        Err(brook_log::LogError::OffsetOutOfRange { .. }) => {
            base.with_error_code(ResponseError::OffsetOutOfRange.code())
        }
        Err(e) => {
            tracing::error!(error = %e, "fetch read failed");
            base.with_error_code(ResponseError::KafkaStorageError.code())
        }
    }
}
