//! Incremental fetch sessions (KIP-227) for followers' and consumers' fetches: the
//! session state a broker keeps per connection.
//!
//! Without a session, a client of thousands of partitions names every one of them in
//! every fetch and is answered about every one, however few changed; with one round per
//! produce burst, that is work proportional to all partitions, again and again. In a
//! session the client names only the partitions whose fetch position moved (and those
//! it drops); the broker keeps the rest, registered with each partition's
//! [`ChangeInbox`] once, so it reads only partitions that changed; and the answer
//! carries only partitions with records, an error, a divergence, or a high watermark,
//! last stable offset or log start the client was not told yet. The handler is
//! `handlers::session_fetch`.
//!
//! A session names its topics as its fetches do: by name (Fetch v7-v12) or by topic id
//! (v13+, KIP-516); a fetch of the other kind is refused with
//! FETCH_SESSION_TOPIC_ID_ERROR, as Kafka refuses it.
//!
//! One session per connection (a follower's fetcher and a consumer's fetcher each use
//! one connection per broker, and a new connection starts a new session). A session
//! holds only partitions this broker has, at most [`MAX_SESSION_PARTITIONS`];
//! followers' sessions together at most [`MAX_FOLLOWER_SESSION_PARTITIONS`] and
//! consumers' at most [`MAX_CONSUMER_SESSION_PARTITIONS`]: a full fetch that would pass
//! a bound is answered without a session (session id 0, as Kafka answers when its
//! session cache is full), and an incremental one that would is refused with
//! FETCH_SESSION_ID_NOT_FOUND (the client then fetches in full). So a client naming
//! partitions over many connections cannot make the broker keep more than a bounded
//! number, and consumers filling theirs cannot take followers' sessions away (Kafka's
//! cache protects followers' sessions from eviction by consumers' the same way).
//!
//! Partitions take turns: a session reads its partitions in the order they last
//! returned records, least recent first, so when a response fills up the partitions
//! left out go first next time (Kafka moves a partition that returned records to the
//! end of its session the same way). Without it the first partitions of a session
//! would take every response while they have records, and the others would wait.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::FetchResponse;
use parking_lot::Mutex;
use uuid::Uuid;

use crate::partition::{ChangeInbox, Partition};

/// A request's session epoch that opens a new session (KIP-227).
pub const INITIAL_EPOCH: i32 = 0;
/// A request's session epoch outside any session (a full, sessionless fetch).
pub const FINAL_EPOCH: i32 = -1;
/// The most partitions one session keeps.
pub const MAX_SESSION_PARTITIONS: usize = 200_000;
/// The most partitions all followers' sessions of this process keep together.
pub const MAX_FOLLOWER_SESSION_PARTITIONS: usize = 500_000;
/// The most partitions all consumers' sessions of this process keep together.
pub const MAX_CONSUMER_SESSION_PARTITIONS: usize = 500_000;

/// Whose session: a follower's or a consumer's, each kind with its own bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Follower,
    Consumer,
}

/// Partitions kept by all followers' sessions of this process, and by consumers'.
static KEPT_BY_FOLLOWERS: AtomicUsize = AtomicUsize::new(0);
static KEPT_BY_CONSUMERS: AtomicUsize = AtomicUsize::new(0);

impl Kind {
    fn kept(self) -> &'static AtomicUsize {
        match self {
            Kind::Follower => &KEPT_BY_FOLLOWERS,
            Kind::Consumer => &KEPT_BY_CONSUMERS,
        }
    }

    fn bound(self) -> usize {
        match self {
            Kind::Follower => MAX_FOLLOWER_SESSION_PARTITIONS,
            Kind::Consumer => MAX_CONSUMER_SESSION_PARTITIONS,
        }
    }
}

/// Whether a new session of `partitions` fits.
pub fn has_room(kind: Kind, partitions: usize) -> bool {
    partitions <= MAX_SESSION_PARTITIONS
        && kind.kept().load(Ordering::Relaxed) + partitions <= kind.bound()
}

/// A session past [`MAX_SESSION_PARTITIONS`], or its kind's sessions past their bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// How a session's fetches name a topic: by name (v7-v12) or by id (v13+).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Name(Arc<str>),
    Id(Uuid),
}

/// What a client was last told of a partition, without an error: high watermark, last
/// stable offset, log start.
pub type Told = (i64, i64, i64);

/// One partition of a session: how the client names its topic, this broker's replica,
/// the client's last request for it, and what the client was last told of it.
pub struct Entry {
    pub key: TopicKey,
    pub partition: Arc<Partition>,
    pub request: FetchPartition,
    pub told: Option<Told>,
    /// When it last returned records (or joined the session): its place in the turns.
    turn: u64,
}

impl Entry {
    /// The topic id the client named (nil in a session by name).
    pub fn topic_id(&self) -> Uuid {
        match self.key {
            TopicKey::Id(id) => id,
            TopicKey::Name(_) => Uuid::nil(),
        }
    }
}

/// A live session: its partitions by slot (the number each partition marks in the
/// session's inbox), and where each partition's slot is.
pub struct SessionState {
    pub id: i32,
    pub next_epoch: i32,
    kind: Kind,
    /// Topics named by id (Fetch v13+), not by name.
    pub by_id: bool,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    slots: HashMap<(TopicKey, i32), u32>,
    /// Partitions held per topic name (what READ is authorized on).
    topics: HashMap<Arc<str>, usize>,
    /// Topics a consumer was refused READ on at its last fetch.
    pub denied: Vec<Arc<str>>,
    inbox: Arc<ChangeInbox>,
    /// The last turn handed out (see the module's comment).
    next_turn: u64,
    /// When the follower's previous request came (it has been fetching every partition
    /// of the session since, without a break).
    pub last_request_ms: i64,
}

impl std::fmt::Debug for SessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionState")
            .field("id", &self.id)
            .field("next_epoch", &self.next_epoch)
            .field("partitions", &self.slots.len())
            .finish()
    }
}

impl SessionState {
    pub fn new(id: i32, kind: Kind, now_ms: i64, by_id: bool) -> Self {
        SessionState {
            id,
            next_epoch: 1,
            kind,
            by_id,
            entries: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            topics: HashMap::new(),
            denied: Vec::new(),
            inbox: Arc::default(),
            next_turn: 0,
            last_request_ms: now_ms,
        }
    }

    pub fn inbox(&self) -> &Arc<ChangeInbox> {
        &self.inbox
    }

    /// Puts `slots` in the order to read them: each once, least recent turn first.
    pub fn in_turn(&self, slots: &mut Vec<u32>) {
        // By (turn, slot): a slot listed twice sorts next to itself.
        slots.sort_by_cached_key(|&slot| {
            let turn = self.entries.get(slot as usize).and_then(Option::as_ref);
            (turn.map_or(u64::MAX, |e| e.turn), slot)
        });
        slots.dedup();
    }

    /// The partition in `slot` returned records: it goes after every other.
    pub fn to_back(&mut self, slot: u32) {
        let turn = self.take_turn();
        if let Some(entry) = self.entry_mut(slot) {
            entry.turn = turn;
        }
    }

    fn take_turn(&mut self) -> u64 {
        self.next_turn += 1;
        self.next_turn
    }

    /// Every slot in use, in slot order.
    pub fn all_slots(&self) -> Vec<u32> {
        self.slots_where(|_| true)
    }

    /// The slots of the partitions of `topics` (by name), in slot order.
    pub fn slots_of(&self, topics: &[Arc<str>]) -> Vec<u32> {
        if topics.is_empty() {
            return Vec::new();
        }
        self.slots_where(|e| topics.contains(&e.partition.topic))
    }

    fn slots_where(&self, keep: impl Fn(&Entry) -> bool) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&s| self.entries[s as usize].as_ref().is_some_and(&keep))
            .collect()
    }

    /// The names of the topics the session holds partitions of.
    pub fn topic_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.topics.keys()
    }

    pub fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize)?.as_mut()
    }

    /// Adds `partition` (its topic named as `topic`) with the client's request for it,
    /// or updates the request of a partition already held (registered with its inbox
    /// once).
    pub fn upsert(
        &mut self,
        topic: &TopicKey,
        partition: &Arc<Partition>,
        request: &FetchPartition,
    ) -> Result<u32, Full> {
        let key = (topic.clone(), partition.index);
        if let Some(&slot) = self.slots.get(&key) {
            let inbox = self.inbox.clone();
            let entry = self.entry_mut(slot).expect("a listed slot holds an entry");
            if !Arc::ptr_eq(&entry.partition, partition) {
                entry.partition.unlisten(&inbox);
                partition.listen(&inbox, slot);
                entry.partition = partition.clone();
                entry.told = None;
            }
            entry.request = request.clone();
            return Ok(slot);
        }
        if self.slots.len() >= MAX_SESSION_PARTITIONS {
            return Err(Full);
        }
        let kept = self.kind.kept();
        if kept.fetch_add(1, Ordering::Relaxed) >= self.kind.bound() {
            kept.fetch_sub(1, Ordering::Relaxed);
            return Err(Full);
        }
        let entry = Entry {
            key: topic.clone(),
            partition: partition.clone(),
            request: request.clone(),
            told: None,
            turn: self.take_turn(),
        };
        *self.topics.entry(partition.topic.clone()).or_default() += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.entries[slot as usize] = Some(entry);
                slot
            }
            None => {
                self.entries.push(Some(entry));
                (self.entries.len() - 1) as u32
            }
        };
        partition.listen(&self.inbox, slot);
        self.slots.insert(key, slot);
        Ok(slot)
    }

    /// Drops `topic`-`index` from the session (a forgotten partition, or one this
    /// broker no longer has).
    pub fn forget(&mut self, topic: &TopicKey, index: i32) {
        if let Some(slot) = self.slots.remove(&(topic.clone(), index)) {
            if let Some(entry) = self.entries[slot as usize].take() {
                entry.partition.unlisten(&self.inbox);
                let name = &entry.partition.topic;
                if let Some(n) = self.topics.get_mut(name) {
                    *n -= 1;
                    if *n == 0 {
                        self.topics.remove(name);
                    }
                }
            }
            self.free.push(slot);
            self.kind.kept().fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The partitions of `response`, an answer that was not sent (its client was
    /// throttled): as if never told, and read again by the next fetch.
    fn unsend(&mut self, response: &FetchResponse) {
        for t in &response.responses {
            let key = if self.by_id {
                TopicKey::Id(t.topic_id)
            } else {
                TopicKey::Name(Arc::from(&**t.topic))
            };
            for p in &t.partitions {
                if let Some(&slot) = self.slots.get(&(key.clone(), p.partition_index)) {
                    if let Some(entry) = self.entry_mut(slot) {
                        entry.told = None;
                    }
                    self.inbox.mark(slot);
                }
            }
        }
    }

    /// The epoch expected after this one (1 again after the largest, as Kafka wraps it).
    pub fn advance_epoch(&mut self) {
        self.next_epoch = if self.next_epoch == i32::MAX {
            1
        } else {
            self.next_epoch + 1
        };
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.inbox.close();
        for entry in self.entries.iter().flatten() {
            entry.partition.unlisten(&self.inbox);
        }
        self.kind
            .kept()
            .fetch_sub(self.slots.len(), Ordering::Relaxed);
    }
}

/// The fetch session of one connection, out while a fetch uses it.
#[derive(Default)]
pub struct FetchSessions {
    state: Mutex<Option<SessionState>>,
}

impl std::fmt::Debug for FetchSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchSessions")
            .field("state", &*self.state.lock())
            .finish()
    }
}

impl FetchSessions {
    /// The session `id` for a fetch to use (None: no such session, or another fetch on
    /// this connection has it).
    pub fn take(&self, id: i32) -> Option<SessionState> {
        let mut state = self.state.lock();
        if state.as_ref().is_some_and(|s| s.id == id) {
            state.take()
        } else {
            None
        }
    }

    /// Keeps `session` for the connection's next fetch (replacing any other).
    pub fn put(&self, session: SessionState) {
        let old = self.state.lock().replace(session);
        drop(old);
    }

    /// Ends session `id`, if it is this connection's.
    pub fn close(&self, id: i32) {
        let old = self.take(id);
        drop(old);
    }

    /// The answer `response` of session `id` is withheld (its client was throttled) and
    /// an empty one sent instead: the session goes on, and its next fetch reads and
    /// answers those partitions again (Kafka keeps the session of a throttled
    /// incremental fetch too). False, and the session ends, when the fetch opened it: a
    /// client drops an empty answer to a full fetch as incomplete. False too when `id`
    /// is not this connection's session (or another fetch has it out).
    pub fn unsend(&self, id: i32, response: &FetchResponse) -> bool {
        let mut state = self.state.lock();
        let Some(session) = state.as_mut().filter(|s| s.id == id) else {
            return false;
        };
        // Epoch 1 is still expected only after the fetch that opened the session.
        if session.next_epoch != 1 {
            session.unsend(response);
            return true;
        }
        let opened = state.take();
        drop(state);
        drop(opened);
        false
    }

    /// A new session id: positive, and not the one this connection has.
    pub fn new_id(&self) -> i32 {
        let current = self.state.lock().as_ref().map(|s| s.id);
        loop {
            let id = rand::random::<i32>() & i32::MAX;
            if id > 0 && Some(id) != current {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000;

    fn led_partition(dir: &std::path::Path, topic: &str, index: i32) -> Arc<Partition> {
        crate::partition::open_for_test(dir, (topic, index), 1, &[1, 2], NOW)
    }

    #[test]
    fn a_session_hears_only_its_changed_partitions_until_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let a = led_partition(&dir.path().join("a"), "t", 0);
        let b = led_partition(&dir.path().join("b"), "t", 1);
        let mut state = SessionState::new(9, Kind::Follower, NOW, false);
        let asked = FetchPartition::default();
        let t = TopicKey::Name(Arc::from("t"));
        let slot_a = state.upsert(&t, &a, &asked).unwrap();
        let slot_b = state.upsert(&t, &b, &asked).unwrap();
        assert_eq!(
            state.upsert(&t, &a, &asked),
            Ok(slot_a),
            "kept, not added twice"
        );
        assert_eq!(state.all_slots().len(), 2);
        assert!(state.inbox().take().is_empty());

        a.retire(); // any change of what a fetch of it returns
        assert_eq!(state.inbox().take(), vec![slot_a]);
        b.retire();
        a.retire();
        assert_eq!(state.inbox().take(), vec![slot_b, slot_a]);

        // Forgotten: no longer heard, and its slot is reused.
        state.forget(&t, 0);
        a.retire();
        assert!(state.inbox().take().is_empty());
        let c = led_partition(&dir.path().join("c"), "u", 0);
        let u = TopicKey::Name(Arc::from("u"));
        assert_eq!(state.upsert(&u, &c, &asked), Ok(slot_a));
        assert_eq!(state.all_slots(), vec![0, 1]);
        assert_eq!(state.slots_of(&[Arc::from("u")]), vec![slot_a]);
        let mut names: Vec<_> = state.topic_names().map(|n| n.to_string()).collect();
        names.sort();
        assert_eq!(names, ["t", "u"]);
        state.forget(&t, 1);
        assert_eq!(state.topic_names().count(), 1, "t has no partition left");

        // Ended: the partitions drop the inbox.
        let inbox = state.inbox().clone();
        drop(state);
        b.retire();
        assert!(inbox.take().is_empty());
        assert!(!inbox.mark(0), "closed");
    }

    #[test]
    fn a_session_by_topic_id_keeps_partitions_under_the_id_they_were_named_by() {
        let dir = tempfile::tempdir().unwrap();
        let a = led_partition(&dir.path().join("a"), "t", 0);
        let mut state = SessionState::new(3, Kind::Consumer, NOW, true);
        let (old_id, new_id) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let asked = FetchPartition::default();
        let slot = state.upsert(&TopicKey::Id(old_id), &a, &asked).unwrap();
        assert_eq!(state.entry_mut(slot).unwrap().topic_id(), old_id);
        // The same name under another id (the topic deleted and created again) is
        // another partition.
        let b = led_partition(&dir.path().join("b"), "t", 0);
        let again = state.upsert(&TopicKey::Id(new_id), &b, &asked).unwrap();
        assert_ne!(slot, again);
        // Forgotten by the id it was named by; the name alone does not reach it.
        state.forget(&TopicKey::Name(Arc::from("t")), 0);
        assert_eq!(state.all_slots().len(), 2);
        state.forget(&TopicKey::Id(old_id), 0);
        assert_eq!(state.all_slots(), vec![again]);
    }

    #[test]
    fn partitions_take_turns_by_when_they_last_returned_records() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = SessionState::new(4, Kind::Consumer, NOW, true);
        let asked = FetchPartition::default();
        let t = TopicKey::Id(Uuid::from_u128(7));
        let slots: Vec<u32> = (0..3)
            .map(|i| {
                let p = led_partition(&dir.path().join(i.to_string()), "t", i);
                state.upsert(&t, &p, &asked).unwrap()
            })
            .collect();
        let mut order = vec![slots[2], slots[0], slots[1], slots[0]];
        state.in_turn(&mut order);
        assert_eq!(order, slots, "each once, in the order they joined");
        state.to_back(slots[0]);
        let mut order = state.all_slots();
        state.in_turn(&mut order);
        assert_eq!(order, vec![slots[1], slots[2], slots[0]]);
        state.to_back(slots[1]);
        state.in_turn(&mut order);
        assert_eq!(order, vec![slots[2], slots[0], slots[1]]);
        // A slot reused by a partition joining later takes the last turn.
        state.forget(&t, 2);
        let p = led_partition(&dir.path().join("3"), "t", 3);
        assert_eq!(state.upsert(&t, &p, &asked), Ok(slots[2]));
        state.in_turn(&mut order);
        assert_eq!(order, vec![slots[0], slots[1], slots[2]]);
    }

    #[test]
    fn a_withheld_answer_is_read_again_unless_it_opened_the_session() {
        use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
        let dir = tempfile::tempdir().unwrap();
        let a = led_partition(&dir.path().join("a"), "t", 0);
        let asked = FetchPartition::default();
        let t = TopicKey::Name(Arc::from("t"));
        let answer =
            FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
                .with_topic(kafka_protocol::messages::TopicName(
                    kafka_protocol::protocol::StrBytes::from_static_str("t"),
                ))
                .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let sessions = FetchSessions::default();
        let mut opened = SessionState::new(5, Kind::Consumer, NOW, false);
        opened.upsert(&t, &a, &asked).unwrap();
        sessions.put(opened);
        assert!(
            !sessions.unsend(5, &answer),
            "an empty answer to a full fetch"
        );
        assert!(sessions.take(5).is_none(), "the session ended");

        let mut going = SessionState::new(6, Kind::Consumer, NOW, false);
        let slot = going.upsert(&t, &a, &asked).unwrap();
        going.entry_mut(slot).unwrap().told = Some((1, 1, 0));
        going.advance_epoch();
        sessions.put(going);
        assert!(
            !sessions.unsend(7, &answer),
            "not this connection's session"
        );
        assert!(sessions.unsend(6, &answer));
        let mut going = sessions.take(6).expect("the session goes on");
        assert_eq!(going.inbox().take(), vec![slot], "read again");
        assert_eq!(going.entry_mut(slot).unwrap().told, None, "told nothing");
    }

    #[test]
    fn sessions_are_bounded() {
        assert!(has_room(Kind::Consumer, MAX_SESSION_PARTITIONS));
        assert!(!has_room(Kind::Consumer, MAX_SESSION_PARTITIONS + 1));
        assert!(!has_room(
            Kind::Follower,
            MAX_FOLLOWER_SESSION_PARTITIONS + 1
        ));
        assert!(!has_room(
            Kind::Consumer,
            MAX_CONSUMER_SESSION_PARTITIONS + 1
        ));
    }

    #[test]
    fn a_connection_keeps_one_session_and_hands_it_to_one_fetch_at_a_time() {
        let sessions = FetchSessions::default();
        let id = sessions.new_id();
        assert!(id > 0);
        sessions.put(SessionState::new(id, Kind::Consumer, NOW, false));
        assert!(sessions.take(id + 1).is_none());
        let mut s = sessions.take(id).expect("the session");
        assert!(sessions.take(id).is_none(), "out while a fetch uses it");
        s.advance_epoch();
        assert_eq!(s.next_epoch, 2);
        s.next_epoch = i32::MAX;
        s.advance_epoch();
        assert_eq!(s.next_epoch, 1, "wraps to 1, as Kafka's");
        sessions.put(s);
        sessions.close(id);
        assert!(sessions.take(id).is_none());
    }
}
