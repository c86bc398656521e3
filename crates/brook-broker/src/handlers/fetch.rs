//! Fetch: read whole batches from each partition; long-poll until `min_bytes` are
//! available or `max_wait_ms` passes, woken by appends (no idle sleeping).
//!
//! Records are not read here: each partition's batches stay a range of its segment file,
//! which the connection sends with `sendfile(2)` (see [`crate::fetch_encode`]).

use std::sync::Arc;
use std::time::Duration;

use brook_log::ReadSlice;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::time::Instant;

use super::topic_name;
use crate::fetch_encode::{FileRegion, RecordsRegion};
use crate::partition::FollowerRead;
use crate::shared::{now_ms, Shared};

/// Longest long-poll Brook honours, whatever the client asks.
const MAX_WAIT_CAP_MS: i32 = 30_000;
/// Kafka's `fetch.max.bytes` broker default (response size cap).
const FETCH_MAX_BYTES: usize = 55 * 1024 * 1024;

/// A Fetch response whose records are still in segment files: the partitions named by
/// `records` hold an empty placeholder in `response`.
#[derive(Debug)]
pub struct FetchReply {
    pub response: FetchResponse,
    /// In response order.
    pub records: Vec<RecordsRegion>,
}

pub async fn handle(shared: &Arc<Shared>, req: FetchRequest, version: i16) -> FetchReply {
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
    // READ_COMMITTED (1): stop at the last stable offset, list aborted transactions.
    let read_committed = replica.is_none() && req.isolation_level == 1;
    loop {
        let notified = shared.data_appended.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (responses, records, total_bytes, any_error) = read_all(
            shared,
            &req.topics,
            &topics,
            max_bytes,
            replica,
            read_committed,
        );
        if total_bytes >= min_bytes || any_error || Instant::now() >= deadline {
            return FetchReply {
                response: FetchResponse::default().with_responses(responses),
                records,
            };
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
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, Vec<RecordsRegion>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut records = Vec::new();
    let responses = topics
        .iter()
        .zip(names)
        .enumerate()
        .map(|(ti, (t, name))| {
            let partitions = t
                .partitions
                .iter()
                .enumerate()
                .map(|(pi, p)| {
                    let (data, slice) = read_partition(
                        shared,
                        name.as_deref(),
                        p,
                        max_bytes.saturating_sub(total),
                        total == 0,
                        replica,
                        read_committed,
                    );
                    total += data.records.as_ref().map_or(0, |r| r.len());
                    if let Some(slice) = slice.filter(|s| !s.is_empty()) {
                        total += slice.len;
                        records.push(RecordsRegion {
                            topic: ti,
                            partition: pi,
                            region: FileRegion {
                                file: slice.file,
                                position: slice.position,
                                len: slice.len,
                            },
                        });
                    }
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
    (responses, records, total, any_error)
}

/// One partition's answer; its records, if any, are the returned file range (the
/// `records` of the data is then an empty placeholder).
fn read_partition(
    shared: &Shared,
    name: Option<&str>,
    p: &kafka_protocol::messages::fetch_request::FetchPartition,
    budget: usize,
    first: bool,
    replica: Option<i32>,
    read_committed: bool,
) -> (PartitionData, Option<ReadSlice>) {
    let base = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    let partition = match name.and_then(|n| shared.partition(n, p.partition)) {
        Some(partition) => partition,
        None if name.is_none() => {
            return (
                base.with_error_code(ResponseError::UnknownTopicId.code()),
                None,
            )
        }
        None if shared.is_cluster() && name.is_some_and(|n| shared.image().topic(n).is_some()) => {
            // The topic exists but this broker holds no replica of the partition.
            return (
                base.with_error_code(ResponseError::NotLeaderOrFollower.code()),
                None,
            );
        }
        None => {
            return (
                base.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                None,
            )
        }
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
            Err(refused) => (base.with_error_code(refused.0), None),
            Ok((read, log_start, hw, moved)) => {
                if moved {
                    // Consumers wait for the high watermark, not the log end.
                    shared.data_appended.notify_waiters();
                }
                let base = base
                    .with_high_watermark(hw)
                    .with_last_stable_offset(hw)
                    .with_log_start_offset(log_start)
                    .with_records(Some(Bytes::new()));
                match read {
                    FollowerRead::Diverging { epoch, end_offset } => {
                        let mut data = base;
                        data.diverging_epoch.epoch = epoch;
                        data.diverging_epoch.end_offset = end_offset;
                        (data, None)
                    }
                    FollowerRead::Records(slice) => (base, Some(slice)),
                }
            }
        };
    }
    // Nothing is read here: the connection sends the slice's file range from the page
    // cache (sendfile), so no blocking-pool hop is needed.
    match partition.read_committed(
        p.fetch_offset,
        limit,
        first,
        p.current_leader_epoch,
        read_committed,
    ) {
        Err(refused) => {
            let (log_start, hw) = partition.offsets();
            (
                base.with_error_code(refused.0)
                    .with_high_watermark(hw)
                    .with_last_stable_offset(partition.last_stable_offset())
                    .with_log_start_offset(log_start),
                None,
            )
        }
        Ok(read) => {
            let aborted = read.aborted.map(|list| {
                list.into_iter()
                    .map(|a| {
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(a.producer_id))
                            .with_first_offset(a.first_offset)
                    })
                    .collect()
            });
            (
                base.with_high_watermark(read.high_watermark)
                    .with_last_stable_offset(read.last_stable_offset)
                    .with_log_start_offset(read.log_start_offset)
                    .with_aborted_transactions(aborted)
                    .with_records(Some(Bytes::new())),
                read.slice,
            )
        }
    }
}
