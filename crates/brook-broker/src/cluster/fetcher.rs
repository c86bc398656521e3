//! Replica fetchers: one task per leader this broker follows partitions of, copying
//! the leader's log as Kafka's replica fetcher does (Fetch with this broker's replica
//! id, from each partition's log end, with the last fetched epoch so the leader can
//! report divergence). [`apply_fetched`] is the follower's decision on each partition's
//! answer; the simulation calls it too.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use brook_meta::NO_LEADER;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::clock::now_ms;
use crate::names::TopicPartition;
use crate::partition::Partition;
use crate::peer::{PeerConn, PeerNet};
use crate::replicas::{LeadershipDelta, Replicas};

/// Replica fetch sizes (Kafka's `replica.fetch.max.bytes` / `replica.fetch.response.max.bytes`).
const REPLICA_FETCH_PARTITION_MAX_BYTES: i32 = 1024 * 1024;
const REPLICA_FETCH_MAX_BYTES: i32 = 10 * 1024 * 1024;
/// `replica.fetch.wait.max.ms`.
const REPLICA_FETCH_WAIT_MS: i32 = 500;

/// The partitions one fetcher follows, and a version that moves with every change.
type Followed = Arc<Mutex<(u64, BTreeSet<TopicPartition>)>>;

struct Fetcher {
    partitions: Followed,
    task: JoinHandle<()>,
}

pub struct Fetchers {
    node_id: i32,
    net: Arc<PeerNet>,
    replicas: Arc<Replicas>,
    /// The leader of every partition this broker follows.
    followed: Mutex<HashMap<TopicPartition, i32>>,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl Fetchers {
    pub fn new(node_id: i32, net: Arc<PeerNet>, replicas: Arc<Replicas>) -> Self {
        Fetchers {
            node_id,
            net,
            replicas,
            followed: Mutex::new(HashMap::new()),
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Starts, stops and retargets fetchers after a change of leaderships.
    pub fn update(&self, delta: &LeadershipDelta) {
        if delta.is_empty() {
            return;
        }
        let mut followed = self.followed.lock();
        for key in delta.removed.iter().chain(&delta.leading) {
            followed.remove(key);
        }
        for (key, leader) in &delta.following {
            match fetch_target(self.node_id, *leader) {
                Some(leader) => followed.insert(key.clone(), leader),
                None => followed.remove(key),
            };
        }
        let mut wanted: HashMap<i32, BTreeSet<TopicPartition>> = HashMap::new();
        for (key, leader) in followed.iter() {
            wanted.entry(*leader).or_default().insert(key.clone());
        }
        drop(followed);
        let mut fetchers = self.fetchers.lock();
        fetchers.retain(|leader, f| {
            let keep = wanted.contains_key(leader);
            if !keep {
                f.task.abort();
            }
            keep
        });
        for (leader, set) in wanted {
            match fetchers.get(&leader) {
                Some(f) => {
                    let mut followed = f.partitions.lock();
                    followed.0 += 1;
                    followed.1 = set;
                }
                None => {
                    let partitions = Arc::new(Mutex::new((1, set)));
                    let task = tokio::spawn(fetch_loop(
                        self.replicas.clone(),
                        self.net.clone(),
                        self.node_id,
                        leader,
                        partitions.clone(),
                    ));
                    fetchers.insert(leader, Fetcher { partitions, task });
                }
            }
        }
    }

    pub fn stop(&self) {
        for (_, f) in self.fetchers.lock().drain() {
            f.task.abort();
        }
    }
}

/// The leader broker `node_id` fetches a partition from while metadata names `leader`
/// as its leader: none when it leads itself or nobody does.
pub fn fetch_target(node_id: i32, leader: i32) -> Option<i32> {
    (leader != node_id && leader != NO_LEADER).then_some(leader)
}

/// What a follower sends for a partition: (fetch offset = log end, last fetched
/// epoch, current leader epoch, log start offset).
type Position = (i64, i32, i32, i64);

/// The replica fetch naming `partitions[i]` for each `i` in `named` (in order; the
/// partitions are sorted by topic, as the fetcher keeps them) at `positions[i]`, and
/// dropping `forgotten` (sorted), in fetch session `session_id` at `epoch` (0 and 0:
/// none yet; see [`FollowerSession`]).
pub fn fetch_request(
    node_id: i32,
    partitions: &[Arc<Partition>],
    named: &[usize],
    positions: &[Option<Position>],
    (session_id, epoch): (i32, i32),
    forgotten: &[(Arc<str>, i32)],
) -> FetchRequest {
    let mut forgotten_topics: Vec<ForgottenTopic> = Vec::new();
    for (topic, index) in forgotten {
        if forgotten_topics
            .last()
            .is_none_or(|t| *t.topic.0 != **topic)
        {
            forgotten_topics.push(
                ForgottenTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string()))),
            );
        }
        forgotten_topics
            .last_mut()
            .expect("just pushed")
            .partitions
            .push(*index);
    }
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut current: Option<&Arc<str>> = None;
    for &i in named {
        let p = &partitions[i];
        let Some((fetch_offset, last_epoch, leader_epoch, log_start)) = positions[i] else {
            continue;
        };
        if current != Some(&p.topic) {
            current = Some(&p.topic);
            topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(p.topic.to_string()))),
            );
        }
        topics.last_mut().expect("just pushed").partitions.push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(last_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(REPLICA_FETCH_PARTITION_MAX_BYTES),
        );
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(node_id))
        .with_max_wait_ms(REPLICA_FETCH_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(REPLICA_FETCH_MAX_BYTES)
        .with_session_id(session_id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten_topics)
}

/// A fetcher's incremental fetch session with its leader (KIP-227): the first fetch
/// names every partition followed and opens the session; each later one names only
/// the partitions whose position moved since the leader last heard it (checked among
/// those the last answer touched), so a round costs in proportion to what changed. Any
/// change of the followed set, a lost connection, or a session error starts over with
/// a full fetch.
struct FollowerSession {
    /// The leader's id for the session (0: none).
    id: i32,
    /// The epoch of the next fetch (0: open a session).
    epoch: i32,
    /// Per followed partition, the position the leader's session holds for it (and the
    /// leader epoch its answers apply in); None: to be named in the next fetch.
    sent: Vec<Option<Position>>,
    /// Partitions whose position may have moved: checked before the next fetch.
    touched: Vec<usize>,
    /// Partitions no longer followed, to drop from the leader's session.
    forgotten: Vec<(Arc<str>, i32)>,
}

impl FollowerSession {
    fn new() -> Self {
        FollowerSession {
            id: 0,
            epoch: 0,
            sent: Vec::new(),
            touched: Vec::new(),
            forgotten: Vec::new(),
        }
    }

    /// Starts over with a full fetch of `count` partitions (the leader closes the old
    /// session when the full fetch names it).
    fn reset(&mut self, count: usize) {
        self.epoch = 0;
        self.sent = vec![None; count];
        self.touched.clear();
        self.forgotten.clear();
    }

    /// The followed set changed from `old` to `new` (both sorted): partitions kept
    /// keep what the leader holds of them, new ones are named in the next fetch, gone
    /// ones are forgotten. Every partition's position is checked before the next fetch
    /// (a leadership change may have moved its leader epoch).
    fn retarget(&mut self, old: &[Arc<Partition>], new: &[Arc<Partition>]) {
        if self.epoch == 0 {
            self.reset(new.len());
            return;
        }
        let mut sent = vec![None; new.len()];
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            let order = match (old.get(i), new.get(j)) {
                (Some(o), Some(n)) => partition_key(o).cmp(&partition_key(n)),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    self.forgotten.push((old[i].topic.clone(), old[i].index));
                    i += 1;
                }
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    if Arc::ptr_eq(&old[i], &new[j]) {
                        sent[j] = self.sent[i];
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        self.sent = sent;
        self.touched = (0..new.len()).collect();
    }

    /// The next fetch: which partitions it names, with their positions recorded.
    fn next_request(&mut self, node_id: i32, partitions: &[Arc<Partition>]) -> FetchRequest {
        let named: Vec<usize> = if self.epoch == 0 {
            self.touched.clear();
            (0..partitions.len()).collect()
        } else {
            let mut named: Vec<usize> = self.touched.drain(..).collect();
            named.sort_unstable();
            named.dedup();
            named
        };
        let mut moved = Vec::with_capacity(named.len());
        for i in named {
            let position = partitions[i].follower_position();
            if self.epoch == 0 || self.sent[i] != Some(position) {
                self.sent[i] = Some(position);
                moved.push(i);
            }
        }
        let forgotten = std::mem::take(&mut self.forgotten);
        fetch_request(
            node_id,
            partitions,
            &moved,
            &self.sent,
            (self.id, self.epoch),
            &forgotten,
        )
    }

    /// Takes the leader's answer to the fetch just sent: its session id (0: the
    /// leader keeps none, so every fetch is a full one) and the next epoch.
    fn answered(&mut self, session_id: i32) {
        if self.epoch == 0 {
            self.id = session_id;
            if session_id == 0 {
                return;
            }
        }
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
    }
}

/// The partitions a fetcher follows, resolved to their replicas once per change of the
/// set (not once per fetch: with thousands of partitions the lookups by name were a
/// good part of each round's work). Sorted by topic and index.
struct Wanted {
    version: u64,
    partitions: Vec<Arc<Partition>>,
}

fn partition_key(p: &Arc<Partition>) -> (&str, i32) {
    (&p.topic, p.index)
}

/// Where a response's partition `topic`-`index` is among the partitions asked for
/// (`asked`, sorted by `key`): found by position, as the leader answers in request
/// order (`at` is the next expected position), or else by a binary search.
fn locate<T>(
    asked: &[T],
    key: impl Fn(&T) -> (&str, i32),
    at: &mut usize,
    topic: &str,
    index: i32,
) -> Option<usize> {
    let found = match asked.get(*at) {
        Some(p) if key(p) == (topic, index) => *at,
        _ => asked
            .binary_search_by(|p| key(p).cmp(&(topic, index)))
            .ok()?,
    };
    *at = found + 1;
    Some(found)
}

async fn fetch_loop(
    replicas: Arc<Replicas>,
    net: Arc<PeerNet>,
    node_id: i32,
    leader: i32,
    partitions: Followed,
) {
    let Some(addr) = net.address(leader).map(str::to_string) else {
        tracing::error!(
            leader,
            "no address for the leader in controller.quorum.voters"
        );
        return;
    };
    let mut conn: Option<PeerConn> = None;
    let mut backoff = Duration::from_millis(50);
    let mut wanted = Wanted {
        version: 0,
        partitions: Vec::new(),
    };
    let mut session = FollowerSession::new();
    loop {
        {
            let followed = partitions.lock();
            // A replica created after the set changed (metadata applied in two steps)
            // is picked up by the next round: resolve again while any is missing.
            if followed.0 != wanted.version || wanted.partitions.len() != followed.1.len() {
                wanted.version = followed.0;
                let resolved = replicas.get_many(followed.1.iter());
                let same = resolved.len() == wanted.partitions.len()
                    && resolved
                        .iter()
                        .zip(&wanted.partitions)
                        .all(|(a, b)| Arc::ptr_eq(a, b));
                if !same {
                    session.retarget(&wanted.partitions, &resolved);
                    wanted.partitions = resolved;
                } else {
                    session.touched = (0..wanted.partitions.len()).collect();
                }
            }
        }
        if wanted.partitions.is_empty() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let req = session.next_request(node_id, &wanted.partitions);
        let attempt = async {
            if conn.is_none() {
                conn = Some(net.connect(&addr).await?);
            }
            conn.as_mut().expect("connected").fetch(req).await
        };
        let response = match tokio::time::timeout(
            Duration::from_millis(REPLICA_FETCH_WAIT_MS as u64 + 5_000),
            attempt,
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                conn = None;
                session.reset(wanted.partitions.len());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(1000));
                continue;
            }
            Err(_) => {
                conn = None;
                session.reset(wanted.partitions.len());
                continue;
            }
        };
        backoff = Duration::from_millis(50);
        if response.error_code != 0 {
            // FETCH_SESSION_ID_NOT_FOUND or INVALID_FETCH_SESSION_EPOCH (the leader
            // restarted, or the session was replaced): start over in full.
            tracing::debug!(
                leader,
                error_code = response.error_code,
                "replica fetch session"
            );
            session.reset(wanted.partitions.len());
            if response.error_code != ResponseError::FetchSessionIdNotFound.code()
                && response.error_code != ResponseError::InvalidFetchSessionEpoch.code()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            continue;
        }
        session.answered(response.session_id);
        let mut errors = false;
        let mut owed_syncs = Vec::new();
        let now = now_ms();
        let mut at = 0;
        for topic in response.responses {
            for pd in topic.partitions {
                let Some(slot) = locate(
                    &wanted.partitions,
                    partition_key,
                    &mut at,
                    &topic.topic.0,
                    pd.partition_index,
                ) else {
                    continue; // not asked for
                };
                let p = &wanted.partitions[slot];
                // The leader epoch the leader holds this partition's fetch in.
                let Some((_, _, fetched_epoch, _)) = session.sent[slot] else {
                    continue;
                };
                session.touched.push(slot);
                match apply_fetched(p, fetched_epoch, &pd, now) {
                    Ok(Fetched::Appended(Some(end))) => owed_syncs.push((p.clone(), end)),
                    Ok(_) => {}
                    Err(e) => {
                        errors = true;
                        // Named again in the next fetch, so the leader answers it again.
                        session.sent[slot] = None;
                        tracing::debug!(topic = %topic.topic.0, partition = pd.partition_index, leader, error = %e, "replica fetch");
                    }
                }
            }
        }
        // flush.messages: the records are fsynced (on the blocking pool) before the next
        // fetch tells the leader this replica has them.
        if !owed_syncs.is_empty() {
            let synced = tokio::task::spawn_blocking(move || {
                owed_syncs
                    .iter()
                    .all(|(p, end)| match p.sync_replicated(*end) {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "replica log flush failed");
                            false
                        }
                    })
            })
            .await;
            errors |= !matches!(synced, Ok(true));
        }
        if errors {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What [`apply_fetched`] did with one partition of a replica fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched {
    /// The records (possibly none) were appended and the high watermark taken;
    /// `Some(end)`: an fsync up to `end` is owed (see [`Partition::append_replicated`]).
    Appended(Option<i64>),
    /// The leader reported divergence: the log was cut back to where it agrees with the
    /// leader's (`truncate_diverging`; there may have been nothing to cut).
    Diverged,
    /// The leader's log starts past this replica's log end: the log was emptied and
    /// restarted at the leader's log start (`reset_to`).
    Reset,
}

/// The follower's handling of one partition of a replica fetch response fetched in
/// leader epoch `fetched_epoch`: append the records, truncate on divergence, or jump to
/// the leader's log start when it has moved past this replica's log end.
pub fn apply_fetched(
    p: &Partition,
    fetched_epoch: i32,
    pd: &PartitionData,
    now_ms: i64,
) -> Result<Fetched, String> {
    if pd.error_code == ResponseError::OffsetOutOfRange.code() {
        let (_, leo) = p.log_offsets();
        if pd.log_start_offset > leo {
            return p
                .reset_to(fetched_epoch, pd.log_start_offset)
                .map(|()| Fetched::Reset)
                .map_err(|e| e.to_string());
        }
        return Err(format!(
            "offset out of range (leader log start {})",
            pd.log_start_offset
        ));
    }
    if pd.error_code != 0 {
        return Err(format!("error code {}", pd.error_code));
    }
    if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
        return p
            .truncate_diverging(
                fetched_epoch,
                pd.diverging_epoch.epoch,
                pd.diverging_epoch.end_offset,
            )
            .map(|()| Fetched::Diverged)
            .map_err(|e| e.to_string());
    }
    let records: &[u8] = pd.records.as_deref().unwrap_or(&[]);
    p.append_replicated(
        fetched_epoch,
        brook_protocol::batch::whole_batches(records),
        pd.high_watermark,
        pd.log_start_offset,
        now_ms,
    )
    .map(Fetched::Appended)
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use brook_protocol::batch::Compression;
    use brook_protocol::records::{encode_batch, Record};

    use super::{locate, FollowerSession};
    use crate::partition::Partition;

    const NOW: i64 = 1_700_000_000_000;

    /// Partition `topic`-`index` on broker 1, which follows broker 2.
    fn followed(dir: &std::path::Path, topic: &str, index: i32) -> Arc<Partition> {
        crate::partition::open_for_test(dir, (topic, index), 1, &[2, 1], NOW)
    }

    fn named(req: &kafka_protocol::messages::FetchRequest) -> Vec<(String, i32, i64)> {
        req.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition, p.fetch_offset))
            })
            .collect()
    }

    #[test]
    fn a_session_names_only_partitions_whose_position_moved() {
        let dir = tempfile::tempdir().unwrap();
        let ps = vec![
            followed(&dir.path().join("a0"), "a", 0),
            followed(&dir.path().join("a1"), "a", 1),
            followed(&dir.path().join("b0"), "b", 0),
        ];
        let mut s = FollowerSession::new();
        s.reset(ps.len());
        let full = s.next_request(1, &ps);
        assert_eq!((full.session_id, full.session_epoch), (0, 0));
        assert_eq!(named(&full).len(), 3);
        s.answered(77);

        // Answered about a-1 without records: its position did not move.
        s.touched.push(1);
        let req = s.next_request(1, &ps);
        assert_eq!((req.session_id, req.session_epoch), (77, 1));
        assert!(named(&req).is_empty());
        s.answered(77);

        // a-1 got a record: named, at its new position.
        let record = Record {
            value: Some(bytes::Bytes::from_static(b"v")),
            timestamp_ms: NOW,
            ..Record::default()
        };
        let batch = encode_batch(&[record], Compression::None).unwrap().freeze();
        ps[1].append_replicated(0, &batch, 0, 0, NOW).unwrap();
        s.touched.push(1);
        let req = s.next_request(1, &ps);
        assert_eq!(req.session_epoch, 2);
        assert_eq!(named(&req), vec![("a".to_string(), 1, 1)]);
        s.answered(77);

        // The followed set changes: b-0 is forgotten, c-0 named, a-0 and a-1 kept.
        let c = followed(&dir.path().join("c0"), "c", 0);
        let new = vec![ps[0].clone(), ps[1].clone(), c];
        s.retarget(&ps, &new);
        let req = s.next_request(1, &new);
        assert_eq!(req.session_epoch, 3);
        assert_eq!(named(&req), vec![("c".to_string(), 0, 0)]);
        let forgotten: Vec<_> = req
            .forgotten_topics_data
            .iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
            .collect();
        assert_eq!(forgotten, vec![("b".to_string(), vec![0])]);

        // A lost connection or a session error: a full fetch again, naming the old id
        // (so the leader closes it).
        s.reset(new.len());
        let req = s.next_request(1, &new);
        assert_eq!((req.session_id, req.session_epoch), (77, 0));
        assert_eq!(named(&req).len(), 3);
        assert!(req.forgotten_topics_data.is_empty());
    }

    #[test]
    fn a_response_partition_is_found_in_order_or_by_search() {
        let asked = [("a", 0), ("a", 1), ("b", 0), ("c", 5)];
        fn key<'a>(p: &'a (&'static str, i32)) -> (&'a str, i32) {
            *p
        }
        let mut at = 0;
        // In request order: by position.
        assert_eq!(locate(&asked, key, &mut at, "a", 0), Some(0));
        assert_eq!(locate(&asked, key, &mut at, "a", 1), Some(1));
        // Out of order (one left out, or answered elsewhere): by search.
        assert_eq!(locate(&asked, key, &mut at, "c", 5), Some(3));
        assert_eq!(locate(&asked, key, &mut at, "b", 0), Some(2));
        assert_eq!(at, 3);
        // Not asked for.
        assert_eq!(locate(&asked, key, &mut at, "b", 1), None);
        assert_eq!(locate(&asked, key, &mut at, "z", 0), None);
    }
}
