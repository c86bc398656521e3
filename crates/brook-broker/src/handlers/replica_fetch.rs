//! A follower's Fetch in an incremental fetch session (KIP-227; the session's state is
//! [`crate::fetch_session`]).
//!
//! The request names only the partitions whose fetch position moved (all of them when
//! it opens the session); the session keeps the others. Each round reads the named
//! partitions and those whose inbox slot was marked since (records appended, high
//! watermark or log start moved, leadership changed), and answers those the follower
//! has something to learn from. A long poll waits on the session's inbox alone, so a
//! round costs work in proportion to what changed, not to what the session holds.

use std::collections::HashMap;
use std::sync::Arc;

use brook_log::ReadSlice;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;

use super::fetch::{bounds, read_partition, Ask, FetchReply};
use super::topic_name;
use crate::clock::now_ms;
use crate::fetch_encode::{FileRegion, RecordsRegion};
use crate::fetch_session::{Full, ReplicaFetchSessions, SessionState, INITIAL_EPOCH};
use crate::metadata::MetadataView;
use crate::partition::{FetchedAt, Partition};
use crate::replicas::Replicas;

/// One partition of the answer: topic, index, data, and its records' file range.
type Row = (Arc<str>, i32, PartitionData, Option<ReadSlice>);

pub async fn handle(
    replicas: &Replicas,
    meta: &MetadataView,
    req: FetchRequest,
    version: i16,
    replica: i32,
    sessions: &ReplicaFetchSessions,
) -> FetchReply {
    let (deadline, min_bytes, max_bytes) = bounds(&req, version);
    let now = now_ms();
    let (mut state, full) = if req.session_epoch == INITIAL_EPOCH {
        if req.session_id != 0 {
            sessions.close(req.session_id);
        }
        (SessionState::new(sessions.new_id(), now), true)
    } else {
        match sessions.take(req.session_id) {
            None => return refused(ResponseError::FetchSessionIdNotFound),
            Some(s) if s.next_epoch != req.session_epoch => {
                sessions.put(s);
                return refused(ResponseError::InvalidFetchSessionEpoch);
            }
            Some(s) => (s, false),
        }
    };
    // The follower has fetched every partition of the session since its last request.
    let fetching_since_ms = (!full).then_some(state.last_request_ms);
    state.last_request_ms = now;
    if !full {
        state.advance_epoch();
    }
    for t in &req.forgotten_topics_data {
        for &index in &t.partitions {
            state.forget(&t.topic.0, index);
        }
    }
    let mut round = Round {
        meta,
        replica,
        full,
        at: FetchedAt {
            now_ms: now,
            fetching_since_ms,
        },
        max_bytes,
        total: 0,
        any_error: false,
        answers: HashMap::new(),
        others: Vec::new(),
    };
    let mut pending = Vec::new();
    for t in &req.topics {
        let held = replicas.topic_partitions(&t.topic.0, t.partitions.iter().map(|p| p.partition));
        for (p, partition) in t.partitions.iter().zip(held) {
            match &partition {
                Some(partition) => match state.upsert(partition, p) {
                    Ok(slot) => pending.push(slot),
                    // Past the sessions' bounds: the session ends (dropped here), and
                    // the follower starts over with a full fetch, answered without a
                    // session if there is still no room.
                    Err(Full) => return refused(ResponseError::FetchSessionIdNotFound),
                },
                None => {
                    // Unknown here: answered, not kept.
                    state.forget(&t.topic.0, p.partition);
                    round.other(&t.topic.0, None, p);
                }
            }
        }
    }
    let marked = state.inbox().take();
    if full {
        pending = state.all_slots();
    } else {
        pending.extend(marked);
    }
    let mut deferred = Vec::new();
    loop {
        // A partition both named and marked is read once.
        pending.sort_unstable();
        pending.dedup();
        for slot in pending.drain(..) {
            if !round.visit(replicas, &mut state, slot) {
                deferred.push(slot);
            }
        }
        if round.total >= min_bytes || round.any_error || Instant::now() >= deadline {
            break;
        }
        let inbox = state.inbox().clone();
        crate::request_time::waiting_on_others(async {
            tokio::select! {
                _ = inbox.changed() => {}
                _ = tokio::time::sleep_until(deadline) => {}
            }
        })
        .await;
        round.at.now_ms = now_ms();
        pending = inbox.take();
    }
    // Partitions past the response's size are read by the next round.
    for slot in deferred {
        state.inbox().mark(slot);
    }
    let reply = round.reply(&mut state);
    sessions.put(state);
    reply
}

/// A session's error answer (no partitions, session id 0).
fn refused(error: ResponseError) -> FetchReply {
    FetchReply {
        response: FetchResponse::default().with_error_code(error.code()),
        records: Vec::new(),
    }
}

/// The answer being gathered over a request's reads.
struct Round<'a> {
    meta: &'a MetadataView,
    replica: i32,
    /// The session's first fetch: every partition is answered.
    full: bool,
    at: FetchedAt,
    max_bytes: usize,
    total: usize,
    any_error: bool,
    /// By slot: the latest read of each partition with news.
    answers: HashMap<u32, (PartitionData, Option<ReadSlice>)>,
    /// Partitions answered but not in the session.
    others: Vec<Row>,
}

impl Round<'_> {
    fn read(
        &mut self,
        topic: &str,
        partition: Option<&Arc<Partition>>,
        p: &kafka_protocol::messages::fetch_request::FetchPartition,
    ) -> (PartitionData, Option<ReadSlice>) {
        let ask = Ask {
            name: Some(topic),
            partition,
            p,
            budget: self.max_bytes.saturating_sub(self.total),
            first: self.total == 0,
        };
        let (data, slice) = read_partition(self.meta, &ask, Some(self.replica), false, self.at);
        let slice = slice.filter(|s| !s.is_empty());
        self.total += slice.as_ref().map_or(0, |s| s.len);
        self.any_error |= data.error_code != 0 || data.diverging_epoch.epoch >= 0;
        (data, slice)
    }

    /// A partition named in the request but not kept in the session.
    fn other(
        &mut self,
        topic: &str,
        partition: Option<&Arc<Partition>>,
        p: &kafka_protocol::messages::fetch_request::FetchPartition,
    ) {
        let (data, slice) = self.read(topic, partition, p);
        self.others
            .push((Arc::from(topic), p.partition, data, slice));
    }

    /// Reads the partition in `slot` and keeps the answer if it has news. False: the
    /// response is full, read it next time.
    fn visit(&mut self, replicas: &Replicas, state: &mut SessionState, slot: u32) -> bool {
        let Some(entry) = state.entry_mut(slot) else {
            return true; // forgotten meanwhile
        };
        if entry.partition.is_retired() {
            let (topic, index) = (entry.partition.topic.clone(), entry.partition.index);
            let request = entry.request.clone();
            match replicas.get(&topic, index) {
                Some(current) => {
                    // Replaces a partition already kept: never past the bounds.
                    let _ = state.upsert(&current, &request);
                }
                None => {
                    state.forget(&topic, index);
                    self.answers.remove(&slot);
                    self.other(&topic, None, &request);
                    return true;
                }
            }
        }
        if self.total >= self.max_bytes {
            return false;
        }
        // A partition read again in the same request: its newer read replaces the
        // earlier (whose bytes no longer count), unless it brings nothing new.
        let earlier = self.answers.remove(&slot);
        let earlier_len = earlier
            .as_ref()
            .and_then(|(_, s)| s.as_ref())
            .map_or(0, |s| s.len);
        self.total -= earlier_len;
        let entry = state.entry_mut(slot).expect("present above");
        let partition = entry.partition.clone();
        let (data, slice) = self.read(&partition.topic, Some(&partition), &entry.request);
        let error = data.error_code != 0 || data.diverging_epoch.epoch >= 0;
        let told = (data.high_watermark, data.log_start_offset);
        if self.full || slice.is_some() || error || entry.told != Some(told) {
            entry.told = (!error).then_some(told);
            self.answers.insert(slot, (data, slice));
        } else if let Some(earlier) = earlier {
            self.total += earlier_len;
            self.answers.insert(slot, earlier);
        }
        true
    }

    /// The response: the session id and the partitions with news, by topic and index.
    fn reply(self, state: &mut SessionState) -> FetchReply {
        let mut rows: Vec<Row> = self.others;
        for (slot, (data, slice)) in self.answers {
            if let Some(entry) = state.entry_mut(slot) {
                let p = &entry.partition;
                rows.push((p.topic.clone(), p.index, data, slice));
            }
        }
        rows.sort_by(|a, b| (&*a.0, a.1).cmp(&(&*b.0, b.1)));
        let mut responses: Vec<FetchableTopicResponse> = Vec::new();
        let mut records = Vec::new();
        let mut current: Option<Arc<str>> = None;
        for (topic, _, data, slice) in rows {
            if current.as_deref() != Some(&*topic) {
                responses.push(FetchableTopicResponse::default().with_topic(topic_name(&topic)));
                current = Some(topic);
            }
            let ti = responses.len() - 1;
            let partitions = &mut responses[ti].partitions;
            if let Some(slice) = slice {
                records.push(RecordsRegion {
                    topic: ti,
                    partition: partitions.len(),
                    region: FileRegion {
                        file: slice.file,
                        position: slice.position,
                        len: slice.len,
                    },
                });
            }
            partitions.push(data);
        }
        FetchReply {
            response: FetchResponse::default()
                .with_session_id(state.id)
                .with_responses(responses),
            records,
        }
    }
}
