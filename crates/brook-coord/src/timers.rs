//! Deadlines by key, in the manner of Kafka's coordinator timer: scheduling a key again
//! replaces its deadline, cancelling forgets it, and `due` lists what has expired.
//!
//! The group coordinator keys its deadlines by [`TimerKey`]; the transaction coordinator
//! by transactional id (one deadline per id).

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

/// What a deadline is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TimerKey {
    /// A member's session (or a pending member's wait for its second JoinGroup, or a new
    /// member's join timeout): on expiry the member is removed unless it is alive.
    Heartbeat { group: String, member: String },
    /// The end of a group's join phase (rebalance timeout or initial delay).
    Join { group: String },
    /// The end of a group's sync phase: members that have not sent SyncGroup by then are
    /// removed.
    Sync { group: String },
    /// A consumer-protocol member's session (KIP-848): on expiry the member is removed.
    ConsumerSession { group: String, member: String },
    /// A consumer-protocol member's time to revoke partitions (its rebalance timeout):
    /// on expiry, if it still has not, it is removed.
    ConsumerRevocation { group: String, member: String },
    /// A classic member of a consumer group that was told to rejoin (Kafka's consumer
    /// group join timeout): unless it sends JoinGroup within its rebalance timeout, it
    /// is removed.
    ClassicJoin { group: String, member: String },
    /// A classic member of a consumer group that joined: unless it sends SyncGroup
    /// within its rebalance timeout, it is removed.
    ClassicSync { group: String, member: String },
    /// A share group member's session (KIP-932): on expiry the member is removed.
    ShareSession { group: String, member: String },
    /// The periodic search for expired offsets.
    OffsetRetention,
}

#[derive(Debug)]
pub(crate) struct Timers<K = TimerKey> {
    deadline_by_key: HashMap<K, i64>,
    by_deadline: BTreeSet<(i64, K)>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            deadline_by_key: HashMap::new(),
            by_deadline: BTreeSet::new(),
        }
    }
}

impl<K: Clone + Ord + Hash> Timers<K> {
    pub(crate) fn schedule(&mut self, key: K, deadline_ms: i64) {
        if let Some(old) = self.deadline_by_key.insert(key.clone(), deadline_ms) {
            self.by_deadline.remove(&(old, key.clone()));
        }
        self.by_deadline.insert((deadline_ms, key));
    }

    pub(crate) fn cancel(&mut self, key: &K) {
        if let Some(old) = self.deadline_by_key.remove(key) {
            self.by_deadline.remove(&(old, key.clone()));
        }
    }

    pub(crate) fn is_scheduled(&self, key: &K) -> bool {
        self.deadline_by_key.contains_key(key)
    }

    pub(crate) fn next_deadline_ms(&self) -> Option<i64> {
        self.by_deadline.first().map(|(deadline, _)| *deadline)
    }

    /// Removes and returns the keys due at `now_ms`, earliest first. Keys scheduled while
    /// the caller handles these are not included, even if already due: they wait for the
    /// next call, so a zero timeout cannot make one tick loop forever.
    pub(crate) fn take_due(&mut self, now_ms: i64) -> Vec<K> {
        let mut due = Vec::new();
        while let Some((deadline, _)) = self.by_deadline.first() {
            if *deadline > now_ms {
                break;
            }
            let (_, key) = self.by_deadline.pop_first().expect("first exists");
            self.deadline_by_key.remove(&key);
            due.push(key);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(group: &str) -> TimerKey {
        TimerKey::Join {
            group: group.into(),
        }
    }

    #[test]
    fn rescheduling_replaces_and_cancel_forgets() {
        let mut timers = Timers::default();
        timers.schedule(join("a"), 10);
        timers.schedule(join("b"), 5);
        timers.schedule(join("a"), 20);
        assert_eq!(timers.next_deadline_ms(), Some(5));
        assert_eq!(timers.take_due(10), vec![join("b")]);
        assert!(timers.is_scheduled(&join("a")));
        timers.cancel(&join("a"));
        assert_eq!(timers.take_due(100), Vec::<TimerKey>::new());
        assert_eq!(timers.next_deadline_ms(), None);
    }

    #[test]
    fn due_keys_come_out_earliest_first() {
        let mut timers = Timers::default();
        timers.schedule(join("late"), 3);
        timers.schedule(TimerKey::OffsetRetention, 1);
        timers.schedule(join("early"), 2);
        assert_eq!(
            timers.take_due(3),
            vec![TimerKey::OffsetRetention, join("early"), join("late")]
        );
    }
}
