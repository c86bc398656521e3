//! Incremental fetch sessions (KIP-227) for followers' replica fetches: the session
//! state a leader keeps per connection.
//!
//! Without a session, a follower of thousands of partitions names every one of them in
//! every fetch and is answered about every one, however few changed; with one round per
//! produce burst, that is work proportional to all partitions, again and again. In a
//! session the follower names only the partitions whose fetch position moved (and
//! those it drops); the leader keeps the rest, registered with each partition's
//! [`ChangeInbox`] once, so it reads only partitions that changed; and the answer
//! carries only partitions with records, an error, a divergence, or a high watermark
//! or log start the follower was not told yet. The handler is
//! `handlers::replica_fetch`.
//!
//! One session per connection (a follower's fetcher uses one connection per leader,
//! and a new connection starts a new session). A session holds only partitions this
//! broker has, at most [`MAX_SESSION_PARTITIONS`], and all sessions together at most
//! [`MAX_TOTAL_SESSION_PARTITIONS`]: a full fetch that would pass either is answered
//! without a session (session id 0, as Kafka answers when its session cache is full),
//! and an incremental one that would is refused with FETCH_SESSION_ID_NOT_FOUND (the
//! follower then fetches in full). So a client naming partitions over many
//! connections cannot make the broker keep more than a bounded number. Consumers'
//! fetches stay sessionless.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kafka_protocol::messages::fetch_request::FetchPartition;
use parking_lot::Mutex;

use crate::partition::{ChangeInbox, Partition};

/// A request's session epoch that opens a new session (KIP-227).
pub const INITIAL_EPOCH: i32 = 0;
/// A request's session epoch outside any session (a full, sessionless fetch).
pub const FINAL_EPOCH: i32 = -1;
/// The most partitions one session keeps; past it, further partitions are answered
/// when named but not kept (the follower names them again).
pub const MAX_SESSION_PARTITIONS: usize = 200_000;
/// The most partitions all sessions of this process keep together.
pub const MAX_TOTAL_SESSION_PARTITIONS: usize = 1_000_000;

/// Partitions kept by all sessions of this process.
static KEPT: AtomicUsize = AtomicUsize::new(0);

/// Whether a new session of `partitions` fits.
pub fn has_room(partitions: usize) -> bool {
    partitions <= MAX_SESSION_PARTITIONS
        && KEPT.load(Ordering::Relaxed) + partitions <= MAX_TOTAL_SESSION_PARTITIONS
}

/// A session past [`MAX_SESSION_PARTITIONS`], or all past
/// [`MAX_TOTAL_SESSION_PARTITIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// One partition of a session: this broker's replica, the follower's last request for
/// it, and what the follower was last told of it.
pub struct Entry {
    pub partition: Arc<Partition>,
    pub request: FetchPartition,
    /// (high watermark, log start) last answered without an error.
    pub told: Option<(i64, i64)>,
}

/// A live session: its partitions by slot (the number each partition marks in the
/// session's inbox), and where each partition's slot is.
pub struct SessionState {
    pub id: i32,
    pub next_epoch: i32,
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    slots: HashMap<(Arc<str>, i32), u32>,
    inbox: Arc<ChangeInbox>,
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
    pub fn new(id: i32, now_ms: i64) -> Self {
        SessionState {
            id,
            next_epoch: 1,
            entries: Vec::new(),
            free: Vec::new(),
            slots: HashMap::new(),
            inbox: Arc::default(),
            last_request_ms: now_ms,
        }
    }

    pub fn inbox(&self) -> &Arc<ChangeInbox> {
        &self.inbox
    }

    /// Every slot in use, in slot order.
    pub fn all_slots(&self) -> Vec<u32> {
        (0..self.entries.len() as u32)
            .filter(|&s| self.entries[s as usize].is_some())
            .collect()
    }

    pub fn entry_mut(&mut self, slot: u32) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize)?.as_mut()
    }

    /// Adds `partition` with the follower's request for it, or updates the request of
    /// a partition already held (registered with its inbox once).
    pub fn upsert(
        &mut self,
        partition: &Arc<Partition>,
        request: &FetchPartition,
    ) -> Result<u32, Full> {
        let key = (partition.topic.clone(), partition.index);
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
        if KEPT.fetch_add(1, Ordering::Relaxed) >= MAX_TOTAL_SESSION_PARTITIONS {
            KEPT.fetch_sub(1, Ordering::Relaxed);
            return Err(Full);
        }
        let entry = Entry {
            partition: partition.clone(),
            request: request.clone(),
            told: None,
        };
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
    pub fn forget(&mut self, topic: &str, index: i32) {
        let key: (Arc<str>, i32) = (Arc::from(topic), index);
        if let Some(slot) = self.slots.remove(&key) {
            if let Some(entry) = self.entries[slot as usize].take() {
                entry.partition.unlisten(&self.inbox);
            }
            self.free.push(slot);
            KEPT.fetch_sub(1, Ordering::Relaxed);
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
        KEPT.fetch_sub(self.slots.len(), Ordering::Relaxed);
    }
}

/// The replica fetch session of one connection, out while a fetch uses it.
#[derive(Default)]
pub struct ReplicaFetchSessions {
    state: Mutex<Option<SessionState>>,
}

impl std::fmt::Debug for ReplicaFetchSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaFetchSessions")
            .field("state", &*self.state.lock())
            .finish()
    }
}

impl ReplicaFetchSessions {
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
        let mut state = SessionState::new(9, NOW);
        let asked = FetchPartition::default();
        let slot_a = state.upsert(&a, &asked).unwrap();
        let slot_b = state.upsert(&b, &asked).unwrap();
        assert_eq!(
            state.upsert(&a, &asked),
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
        state.forget("t", 0);
        a.retire();
        assert!(state.inbox().take().is_empty());
        let c = led_partition(&dir.path().join("c"), "u", 0);
        assert_eq!(state.upsert(&c, &asked), Ok(slot_a));
        assert_eq!(state.all_slots(), vec![0, 1]);

        // Ended: the partitions drop the inbox.
        let inbox = state.inbox().clone();
        drop(state);
        b.retire();
        assert!(inbox.take().is_empty());
        assert!(!inbox.mark(0), "closed");
    }

    #[test]
    fn sessions_are_bounded() {
        assert!(has_room(MAX_SESSION_PARTITIONS));
        assert!(!has_room(MAX_SESSION_PARTITIONS + 1));
        assert!(!has_room(MAX_TOTAL_SESSION_PARTITIONS + 1));
    }

    #[test]
    fn a_connection_keeps_one_session_and_hands_it_to_one_fetch_at_a_time() {
        let sessions = ReplicaFetchSessions::default();
        let id = sessions.new_id();
        assert!(id > 0);
        sessions.put(SessionState::new(id, NOW));
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
