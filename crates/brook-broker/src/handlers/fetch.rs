//! Fetch: read whole batches from each partition; long-poll until `min_bytes` are
//! available or `max_wait_ms` passes, woken only by changes to the partitions asked for
//! (no idle sleeping).
//!
//! Records are not read here: each partition's batches stay a range of its segment file,
//! which the connection sends with `sendfile(2)` (see [`crate::fetch_encode`]).

use std::sync::Arc;
use std::time::Duration;

use brook_log::ReadSlice;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId, TopicName};
use tokio::time::Instant;

use super::session_fetch::{self, Authorize, Reader};
use super::topic_name;
use crate::clock::now_ms;
use crate::fetch_encode::{FileRegion, RecordsRegion};
use crate::fetch_session::{self, FetchSessions, Kind, FINAL_EPOCH, INITIAL_EPOCH};
use crate::metadata::MetadataView;
use crate::metrics::BrokerMetrics;
use crate::partition::{FetchedAt, FollowerRead, Partition};
use crate::replicas::Replicas;

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

/// A fetch's bounds: (deadline of its long poll, min bytes, max bytes).
pub(super) fn bounds(req: &FetchRequest, version: i16) -> (Instant, usize, usize) {
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_CAP_MS) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let max_bytes = if version >= 3 {
        (req.max_bytes.max(0) as usize).min(FETCH_MAX_BYTES)
    } else {
        FETCH_MAX_BYTES
    };
    (deadline, min_bytes, max_bytes)
}

/// Whether a fetch is served in an incremental fetch session: a consumer's of v7+, or
/// a follower's naming topics (v7-v12, as Brook's own fetchers do), that does not end
/// its session, and fits in the sessions' bounds if it opens one. Any other fetch is
/// answered in full with session id 0.
pub fn in_session(req: &FetchRequest, version: i16) -> bool {
    let (versions, kind) = if replica_of(req).is_some() {
        (7..13, Kind::Follower)
    } else {
        (7..i16::MAX, Kind::Consumer)
    };
    let named = || req.topics.iter().map(|t| t.partitions.len()).sum();
    versions.contains(&version)
        && req.session_epoch != FINAL_EPOCH
        && (req.session_epoch != INITIAL_EPOCH || fetch_session::has_room(kind, named()))
}

/// The follower a fetch comes from (v15+ moved its id into ReplicaState; the field a
/// version does not carry decodes as -1).
pub fn replica_of(req: &FetchRequest) -> Option<i32> {
    let id = req.replica_id.0.max(req.replica_state.replica_id.0);
    (id >= 0).then_some(id)
}

/// Serves a Fetch, in a session if `in_session` (as [`in_session`] decided before the
/// request was authorized). `authorize` is asked about READ on each topic of a
/// consumer's session; a sessionless fetch was authorized before (unauthorized topics
/// removed).
pub async fn handle(
    (replicas, meta): (&Replicas, &MetadataView),
    metrics: &BrokerMetrics,
    (mut req, sessions): (FetchRequest, &FetchSessions),
    version: i16,
    (in_session, authorize): (bool, Authorize<'_>),
) -> FetchReply {
    req.topics = dedup(std::mem::take(&mut req.topics), version);
    let replica = replica_of(&req);
    if in_session {
        let reader = match replica {
            Some(id) => Reader::Replica(id),
            None => Reader::Consumer {
                read_committed: req.isolation_level == 1,
            },
        };
        let reply =
            session_fetch::handle((replicas, meta), req, version, reader, sessions, authorize)
                .await;
        if replica.is_none() {
            let names: Vec<Option<String>> = reply
                .response
                .responses
                .iter()
                .map(|t| Some(t.topic.0.to_string()).filter(|n| !n.is_empty()))
                .collect();
            count_consumer_fetch(metrics, &names, &reply.response.responses, &reply.records);
        }
        return reply;
    }
    if req.session_id != 0 {
        sessions.close(req.session_id);
    }
    let (deadline, min_bytes, max_bytes) = bounds(&req, version);
    let topics = resolve_topics(meta, &req.topics, version);
    // READ_COMMITTED (1): stop at the last stable offset, list aborted transactions.
    let read_committed = replica.is_none() && req.isolation_level == 1;
    // Each partition's replica, looked up per read with one lock and one topic lookup
    // per topic (a follower's fetch names thousands), not by name per partition.
    let resolve = || -> Vec<Vec<Option<Arc<Partition>>>> {
        req.topics
            .iter()
            .zip(&topics)
            .map(|(t, name)| match name {
                Some(name) => {
                    replicas.topic_partitions(name, t.partitions.iter().map(|p| p.partition))
                }
                None => vec![None; t.partitions.len()],
            })
            .collect()
    };
    let mut held = resolve();
    // Subscribed before the first read, so a change right after it is not missed; only
    // the partitions asked for can wake this fetch.
    let mut changes: Vec<_> = held
        .iter()
        .flatten()
        .flatten()
        .map(|p| p.data_changes())
        .collect();
    loop {
        let (responses, records, total_bytes, any_error) = read_all(
            meta,
            &req.topics,
            &topics,
            &held,
            max_bytes,
            replica,
            read_committed,
        );
        if total_bytes >= min_bytes || any_error || Instant::now() >= deadline {
            if replica.is_none() {
                count_consumer_fetch(metrics, &topics, &responses, &records);
            }
            return FetchReply {
                response: FetchResponse::default().with_responses(responses),
                records,
            };
        }
        // Waiting on producers (or the deadline): the request's remote time.
        let changed = wait_for_change(&mut changes, deadline);
        let woken = crate::request_time::waiting_on_others(changed).await;
        // A partition deleted or created meanwhile is answered as it now is.
        held = resolve();
        if woken {
            for rx in &mut changes {
                rx.borrow_and_update();
            }
        }
    }
}

/// Waits until one of the partitions changes (true) or `deadline` passes (false, and
/// the next read is the last).
async fn wait_for_change(
    changes: &mut [tokio::sync::watch::Receiver<u64>],
    deadline: Instant,
) -> bool {
    if changes.is_empty() {
        tokio::time::sleep_until(deadline).await;
        return false;
    }
    let any = futures_util::future::select_all(changes.iter_mut().map(|rx| Box::pin(rx.changed())));
    tokio::select! {
        _ = any => true,
        _ = tokio::time::sleep_until(deadline) => false,
    }
}

/// Each partition once, as Kafka's fetch map keeps it: a partition listed again (in
/// the same or a repeated topic) replaces the earlier request for it in its place, so
/// a request that lists one partition 100,000 times reads and waits on it once.
fn dedup(topics: Vec<FetchTopic>, version: i16) -> Vec<FetchTopic> {
    let key = |t: &FetchTopic| {
        if version >= 13 {
            t.topic_id.to_string()
        } else {
            t.topic.0.to_string()
        }
    };
    let mut out: Vec<FetchTopic> = Vec::new();
    let mut topic_at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut seen: std::collections::HashMap<(usize, i32), usize> = std::collections::HashMap::new();
    for mut t in topics {
        let partitions = std::mem::take(&mut t.partitions);
        let ti = *topic_at.entry(key(&t)).or_insert_with(|| {
            out.push(t);
            out.len() - 1
        });
        for p in partitions {
            match seen.get(&(ti, p.partition)) {
                Some(&pi) => out[ti].partitions[pi] = p,
                None => {
                    seen.insert((ti, p.partition), out[ti].partitions.len());
                    out[ti].partitions.push(p);
                }
            }
        }
    }
    out
}

/// The topic name for each requested topic (v13+ identifies topics by id).
fn resolve_topics(meta: &MetadataView, topics: &[FetchTopic], version: i16) -> Vec<Option<String>> {
    let image = meta.image();
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
}

fn read_all(
    meta: &MetadataView,
    topics: &[FetchTopic],
    names: &[Option<String>],
    held: &[Vec<Option<Arc<Partition>>>],
    max_bytes: usize,
    replica: Option<i32>,
    read_committed: bool,
) -> (Vec<FetchableTopicResponse>, Vec<RecordsRegion>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let mut records = Vec::new();
    let now = now_ms();
    let responses = topics
        .iter()
        .zip(names)
        .zip(held)
        .enumerate()
        .map(|(ti, ((t, name), held))| {
            let partitions = t
                .partitions
                .iter()
                .zip(held)
                .enumerate()
                .map(|(pi, (p, partition))| {
                    let ask = Ask {
                        name: name.as_deref(),
                        partition: partition.as_ref(),
                        p,
                        budget: max_bytes.saturating_sub(total),
                        first: total == 0,
                    };
                    let (data, slice) =
                        read_partition(meta, &ask, replica, read_committed, now.into());
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

/// Kafka's BrokerTopicMetrics for a consumer's fetch (a follower's is replication):
/// requests and failed requests per topic, bytes of records sent.
fn count_consumer_fetch(
    metrics: &BrokerMetrics,
    names: &[Option<String>],
    responses: &[FetchableTopicResponse],
    records: &[RecordsRegion],
) {
    if !metrics.requests_enabled() {
        return;
    }
    // One lookup per topic, not one per file region sent.
    let counters: Vec<_> = names
        .iter()
        .map(|name| metrics.topic(name.as_deref()?))
        .collect();
    for (counters, topic) in counters.iter().zip(responses) {
        if let Some(counters) = counters {
            counters.fetch_request(topic.partitions.iter().any(|p| p.error_code != 0));
        }
    }
    for r in records {
        if let Some(Some(counters)) = counters.get(r.topic) {
            counters.sent(r.region.len as u64);
        }
    }
}

/// One partition of a fetch: its topic's name (None: an unknown topic id), this
/// broker's replica of it, what was asked, and the bytes the answer may still take.
pub(super) struct Ask<'a> {
    pub name: Option<&'a str>,
    pub partition: Option<&'a Arc<Partition>>,
    pub p: &'a FetchPartition,
    pub budget: usize,
    pub first: bool,
}

/// One partition's answer; its records, if any, are the returned file range (the
/// `records` of the data is then an empty placeholder).
pub(super) fn read_partition(
    meta: &MetadataView,
    ask: &Ask<'_>,
    replica: Option<i32>,
    read_committed: bool,
    at: FetchedAt,
) -> (PartitionData, Option<ReadSlice>) {
    let Ask {
        name,
        p,
        budget,
        first,
        ..
    } = *ask;
    let base = PartitionData::default()
        .with_partition_index(p.partition)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1);
    let partition = match ask.partition {
        Some(partition) => partition,
        None if name.is_none() => {
            return (
                base.with_error_code(ResponseError::UnknownTopicId.code()),
                None,
            )
        }
        None if meta.is_cluster() && name.is_some_and(|n| meta.image().topic(n).is_some()) => {
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
            at,
        );
        return match fetched {
            Err(refused) => (base.with_error_code(refused.0), None),
            // A moved high watermark wakes the consumers parked on this partition.
            Ok((read, log_start, hw, _moved)) => {
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
