//! A Fetch in an incremental fetch session (KIP-227; the session's state is
//! [`crate::fetch_session`]): a follower's replica fetch, or a consumer's.
//!
//! The request names only the partitions whose fetch position moved (all of them when
//! it opens the session); the session keeps the others. Each round reads the named
//! partitions and those whose inbox slot was marked since (records appended, high
//! watermark, last stable offset or log start moved, leadership changed), and answers
//! those the client has something to learn from. A long poll waits on the session's
//! inbox alone, so a round costs work in proportion to what changed, not to what the
//! session holds.
//!
//! A consumer's READ authorization is checked per topic of the session at each fetch
//! (not per partition): partitions of a refused topic are answered
//! TOPIC_AUTHORIZATION_FAILED while it is refused, and read again once it is not.

use std::collections::HashMap;
use std::sync::Arc;

use brook_log::ReadSlice;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse};
use tokio::time::Instant;
use uuid::Uuid;

use super::fetch::{bounds, read_partition, Ask, FetchReply};
use super::topic_name;
use crate::clock::now_ms;
use crate::fetch_encode::{FileRegion, RecordsRegion};
use crate::fetch_session::{FetchSessions, Full, Kind, SessionState, TopicKey, INITIAL_EPOCH};
use crate::metadata::MetadataView;
use crate::partition::{FetchedAt, Partition};
use crate::replicas::Replicas;

/// One partition of the answer: topic name (empty for an unknown topic id), topic id
/// (nil in a session by name), index, data, and its records' file range.
type Row = (Arc<str>, Uuid, i32, PartitionData, Option<ReadSlice>);

/// Who fetches, which decides what a read returns.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    /// A follower (its broker id).
    Replica(i32),
    /// A consumer, at READ_COMMITTED or not.
    Consumer { read_committed: bool },
}

/// Whether a consumer may READ a topic (None: no authorizer).
pub type Authorize<'a> = Option<&'a (dyn Fn(&str) -> bool + Sync)>;

/// TOPIC_AUTHORIZATION_FAILED.
const TOPIC_DENIED: i16 = 29;

pub async fn handle(
    (replicas, meta): (&Replicas, &MetadataView),
    req: FetchRequest,
    version: i16,
    reader: Reader,
    sessions: &FetchSessions,
    authorize: Authorize<'_>,
) -> FetchReply {
    let (deadline, min_bytes, max_bytes) = bounds(&req, version);
    let now = now_ms();
    let by_id = version >= 13;
    let (mut state, full) = if req.session_epoch == INITIAL_EPOCH {
        if req.session_id != 0 {
            sessions.close(req.session_id);
        }
        let kind = match reader {
            Reader::Replica(_) => Kind::Follower,
            Reader::Consumer { .. } => Kind::Consumer,
        };
        (SessionState::new(sessions.new_id(), kind, now, by_id), true)
    } else {
        match sessions.take(req.session_id) {
            None => return refused(ResponseError::FetchSessionIdNotFound),
            Some(s) if s.next_epoch != req.session_epoch => {
                sessions.put(s);
                return refused(ResponseError::InvalidFetchSessionEpoch);
            }
            Some(s) if s.by_id != by_id => {
                sessions.put(s);
                return refused(ResponseError::FetchSessionTopicIdError);
            }
            Some(s) => (s, false),
        }
    };
    // A follower has fetched every partition of the session since its last request.
    let fetching_since_ms =
        (!full && matches!(reader, Reader::Replica(_))).then_some(state.last_request_ms);
    state.last_request_ms = now;
    if !full {
        state.advance_epoch();
    }
    let key = |name: &str, id: Uuid| {
        if by_id {
            TopicKey::Id(id)
        } else {
            TopicKey::Name(Arc::from(name))
        }
    };
    for t in &req.forgotten_topics_data {
        let topic = key(&t.topic.0, t.topic_id);
        for &index in &t.partitions {
            state.forget(&topic, index);
        }
    }
    let image = meta.image();
    let mut round = Round {
        meta,
        reader,
        full,
        at: FetchedAt {
            now_ms: now,
            fetching_since_ms,
        },
        max_bytes,
        total: 0,
        any_error: false,
        denied: Vec::new(),
        answers: HashMap::new(),
        others: Vec::new(),
    };
    // READ on each topic the session holds or the request names, once per topic.
    if let Some(may_read) = authorize {
        let was_denied = std::mem::take(&mut state.denied);
        let mut denied: Vec<Arc<str>> = state
            .topic_names()
            .filter(|name| !may_read(name))
            .cloned()
            .collect();
        for t in &req.topics {
            let name = if by_id {
                image.topic_by_id(&t.topic_id).map(|t| t.name.as_str())
            } else {
                Some(&*t.topic.0)
            };
            if let Some(name) = name.filter(|n| !denied.iter().any(|d| &**d == *n)) {
                if !may_read(name) {
                    denied.push(Arc::from(name));
                }
            }
        }
        // Allowed again: read whether or not anything changed.
        let allowed: Vec<Arc<str>> = was_denied
            .into_iter()
            .filter(|name| !denied.contains(name))
            .collect();
        let mut again = state.slots_of(&allowed);
        again.extend(state.slots_of(&denied));
        for slot in again {
            state.inbox().mark(slot);
        }
        state.denied = denied.clone();
        round.denied = denied;
    }
    let mut pending = Vec::new();
    for t in &req.topics {
        let name = if by_id {
            image.topic_by_id(&t.topic_id).map(|t| t.name.clone())
        } else {
            Some(t.topic.0.to_string())
        };
        let Some(name) = name else {
            // An unknown topic id: answered, not kept.
            for p in &t.partitions {
                state.forget(&TopicKey::Id(t.topic_id), p.partition);
                round.other((None, t.topic_id), None, p);
            }
            continue;
        };
        let topic = key(&name, t.topic_id);
        let held = replicas.topic_partitions(&name, t.partitions.iter().map(|p| p.partition));
        for (p, partition) in t.partitions.iter().zip(held) {
            match &partition {
                Some(partition) => match state.upsert(&topic, partition, p) {
                    Ok(slot) => pending.push(slot),
                    // Past the sessions' bounds: the session ends (dropped here), and
                    // the client starts over with a full fetch, answered without a
                    // session if there is still no room.
                    Err(Full) => return refused(ResponseError::FetchSessionIdNotFound),
                },
                None => {
                    // Unknown here: answered, not kept.
                    state.forget(&topic, p.partition);
                    round.other((Some(&name), t.topic_id), None, p);
                }
            }
        }
    }
    drop(image);
    let marked = state.inbox().take();
    if full {
        pending = state.all_slots();
    } else {
        pending.extend(marked);
    }
    let mut deferred = Vec::new();
    loop {
        // A partition both named and marked is read once; partitions take turns.
        state.in_turn(&mut pending);
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
    reader: Reader,
    /// The session's first fetch: every partition is answered.
    full: bool,
    at: FetchedAt,
    max_bytes: usize,
    total: usize,
    any_error: bool,
    /// Topics the consumer may not READ (by name).
    denied: Vec<Arc<str>>,
    /// By slot: the latest read of each partition with news.
    answers: HashMap<u32, (PartitionData, Option<ReadSlice>)>,
    /// Partitions answered but not in the session.
    others: Vec<Row>,
}

impl Round<'_> {
    fn read(
        &mut self,
        name: Option<&str>,
        partition: Option<&Arc<Partition>>,
        p: &FetchPartition,
    ) -> (PartitionData, Option<ReadSlice>) {
        if name.is_some_and(|n| self.denied.iter().any(|d| &**d == n)) {
            self.any_error = true;
            return (denied(p.partition), None);
        }
        let ask = Ask {
            name,
            partition,
            p,
            budget: self.max_bytes.saturating_sub(self.total),
            first: self.total == 0,
        };
        let (replica, read_committed) = match self.reader {
            Reader::Replica(id) => (Some(id), false),
            Reader::Consumer { read_committed } => (None, read_committed),
        };
        let (data, slice) = read_partition(self.meta, &ask, replica, read_committed, self.at);
        let slice = slice.filter(|s| !s.is_empty());
        self.total += slice.as_ref().map_or(0, |s| s.len);
        self.any_error |= data.error_code != 0 || data.diverging_epoch.epoch >= 0;
        (data, slice)
    }

    /// A partition named in the request but not kept in the session: its topic's name
    /// (None: an unknown topic id) and id.
    fn other(
        &mut self,
        (name, id): (Option<&str>, Uuid),
        partition: Option<&Arc<Partition>>,
        p: &FetchPartition,
    ) {
        let (data, slice) = self.read(name, partition, p);
        self.others.push((
            Arc::from(name.unwrap_or_default()),
            id,
            p.partition,
            data,
            slice,
        ));
    }

    /// Reads the partition in `slot` and keeps the answer if it has news. False: the
    /// response is full, read it (again) next time.
    fn visit(&mut self, replicas: &Replicas, state: &mut SessionState, slot: u32) -> bool {
        let Some(entry) = state.entry_mut(slot) else {
            return true; // forgotten meanwhile
        };
        if entry.partition.is_retired() {
            let (name, index) = (entry.partition.topic.clone(), entry.partition.index);
            let (key, id, request) = (entry.key.clone(), entry.topic_id(), entry.request.clone());
            // The topic of the same name, and (in a session by id) the same id: a topic
            // deleted and created again is another topic.
            let current = replicas.get(&name, index).filter(|_| {
                !state.by_id
                    || self
                        .meta
                        .image()
                        .topic(&name)
                        .is_some_and(|t| t.topic_id == id)
            });
            match current {
                Some(current) => {
                    // Replaces a partition already kept: never past the bounds.
                    let _ = state.upsert(&key, &current, &request);
                }
                None => {
                    state.forget(&key, index);
                    self.answers.remove(&slot);
                    // The topic named as the client named it: still there (this broker
                    // no longer has the replica: NOT_LEADER_OR_FOLLOWER), or not
                    // (UNKNOWN_TOPIC_ID, or by name UNKNOWN_TOPIC_OR_PARTITION).
                    let exists = !state.by_id
                        || self
                            .meta
                            .image()
                            .topic(&name)
                            .is_some_and(|t| t.topic_id == id);
                    self.other((exists.then_some(&*name), id), None, &request);
                    return true;
                }
            }
        }
        // Past the response's size: the partition is read next round. A full response
        // still names it (without records), as it names every partition of the session:
        // the Java client drops a full response that leaves one out, records and all.
        let over = self.total >= self.max_bytes;
        if over && !self.full {
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
        // What is left of the response is less than the partition may take (and it is
        // not the first, which gets its first batch whatever its size): a batch that did
        // not fit is read next round, or the client, whose position did not move, would
        // never name the partition again and nothing would mark it.
        let cut = self.total > 0
            && self.max_bytes.saturating_sub(self.total)
                < entry.request.partition_max_bytes.max(0) as usize;
        let (data, slice) = self.read(Some(&partition.topic), Some(&partition), &entry.request);
        let error = data.error_code != 0 || data.diverging_epoch.epoch >= 0;
        let slice_none = slice.is_none();
        let told = (
            data.high_watermark,
            data.last_stable_offset,
            data.log_start_offset,
        );
        if self.full || slice.is_some() || error || entry.told != Some(told) {
            entry.told = (!error).then_some(told);
            self.answers.insert(slot, (data, slice));
        } else if let Some(earlier) = earlier {
            self.total += earlier_len;
            self.answers.insert(slot, earlier);
        }
        if !slice_none {
            state.to_back(slot);
        }
        let read_again = over || (cut && slice_none && !error);
        !read_again
    }

    /// The response: the session id and the partitions with news, by topic and index.
    fn reply(self, state: &mut SessionState) -> FetchReply {
        let mut rows: Vec<Row> = self.others;
        for (slot, (data, slice)) in self.answers {
            if let Some(entry) = state.entry_mut(slot) {
                let p = &entry.partition;
                rows.push((p.topic.clone(), entry.topic_id(), p.index, data, slice));
            }
        }
        rows.sort_by(|a, b| (&*a.0, a.1, a.2).cmp(&(&*b.0, b.1, b.2)));
        let mut responses: Vec<FetchableTopicResponse> = Vec::new();
        let mut records = Vec::new();
        let mut current: Option<(Arc<str>, Uuid)> = None;
        for (topic, id, _, data, slice) in rows {
            if current
                .as_ref()
                .is_none_or(|(t, i)| (&**t, *i) != (&*topic, id))
            {
                responses.push(
                    FetchableTopicResponse::default()
                        .with_topic(topic_name(&topic))
                        .with_topic_id(id),
                );
                current = Some((topic, id));
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

/// A partition of a topic the consumer may not READ.
fn denied(index: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_error_code(TOPIC_DENIED)
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
}
