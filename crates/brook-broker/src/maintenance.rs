//! When each partition's log next owes periodic work, so the maintenance tick visits
//! only the partitions that owe something.
//!
//! A log's periodic work (fsync of newly sealed segments, `flush.ms` fsyncs,
//! `segment.ms` rolls of idle segments, recovery-point checkpoints) has a deadline the
//! log computes ([`brook_log::Log::next_maintenance_ms`]). [`Maintenance`] keeps one
//! deadline per registered partition in a queue ordered by time: the tick takes the
//! partitions that are due, runs their work, and puts each back with its next
//! deadline. An idle broker with 10,000 partitions then does nothing per tick, where
//! visiting every partition every 100 ms was most of its work.
//!
//! A deadline only moves earlier between visits when the log rolls (its sealed segment
//! wants an fsync), when a log gets its first unflushed record, or when the topic's
//! config changes; the partition reports those through its [`Slot`]. The queue holds
//! its partitions until they are [`Maintenance::forget`]-ten (the replica set does that
//! when it removes or closes one), so it is generic over what it holds and knows
//! nothing of partitions.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// An item's place in the queue: a stable id and its deadline (`NOT_QUEUED` when it has
/// none).
#[derive(Debug)]
pub struct Slot {
    id: u64,
    due_ms: AtomicI64,
}

const NOT_QUEUED: i64 = i64::MAX;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Default for Slot {
    fn default() -> Self {
        Slot {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            due_ms: AtomicI64::new(NOT_QUEUED),
        }
    }
}

impl Slot {
    /// Whether no deadline is queued for the item.
    pub fn is_idle(&self) -> bool {
        self.due_ms.load(Ordering::Relaxed) == NOT_QUEUED
    }
}

/// What the queue holds: anything with a [`Slot`].
pub trait Scheduled {
    fn maintenance_slot(&self) -> &Slot;
}

struct Queue<T> {
    by_time: BTreeSet<(i64, u64)>,
    members: HashMap<u64, Arc<T>>,
}

/// The deadlines of every registered item's periodic work.
pub struct Maintenance<T> {
    queue: Mutex<Queue<T>>,
}

impl<T> Default for Maintenance<T> {
    fn default() -> Self {
        Maintenance {
            queue: Mutex::new(Queue {
                by_time: BTreeSet::new(),
                members: HashMap::new(),
            }),
        }
    }
}

impl<T: Scheduled> Maintenance<T> {
    /// Holds `item` and queues its first visit for `at_ms`.
    pub fn register(&self, item: Arc<T>, at_ms: Option<i64>) {
        let slot_id = item.maintenance_slot().id;
        self.queue.lock().members.insert(slot_id, item.clone());
        self.schedule(item.maintenance_slot(), at_ms);
    }

    /// Lets go of `item`: it is never visited again.
    pub fn forget(&self, item: &T) {
        let slot = item.maintenance_slot();
        let mut queue = self.queue.lock();
        queue.members.remove(&slot.id);
        let due = slot.due_ms.swap(NOT_QUEUED, Ordering::Relaxed);
        if due != NOT_QUEUED {
            queue.by_time.remove(&(due, slot.id));
        }
    }

    /// Lets go of everything (the broker is closing its partitions).
    pub fn clear(&self) {
        let mut queue = self.queue.lock();
        for item in queue.members.values() {
            item.maintenance_slot()
                .due_ms
                .store(NOT_QUEUED, Ordering::Relaxed);
        }
        queue.members.clear();
        queue.by_time.clear();
    }

    /// Queues the work of the item in `slot` for `at_ms` unless it is already due
    /// sooner. A deadline of `i64::MAX` (or none) means never; an item not registered
    /// is not queued.
    pub fn schedule(&self, slot: &Slot, at_ms: Option<i64>) {
        let Some(at_ms) = at_ms.filter(|t| *t < NOT_QUEUED) else {
            return;
        };
        let mut queue = self.queue.lock();
        if !queue.members.contains_key(&slot.id) {
            return;
        }
        let current = slot.due_ms.load(Ordering::Relaxed);
        if current <= at_ms {
            return;
        }
        if current != NOT_QUEUED {
            queue.by_time.remove(&(current, slot.id));
        }
        queue.by_time.insert((at_ms, slot.id));
        slot.due_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Takes the items due at `now_ms` out of the queue (at most `limit`, the earliest
    /// first; the rest stay for the next tick). They stay registered: give each its
    /// next deadline with [`Maintenance::schedule`].
    pub fn take_due(&self, now_ms: i64, limit: usize) -> Vec<Arc<T>> {
        let mut queue = self.queue.lock();
        let mut due = Vec::new();
        while due.len() < limit {
            let Some(&(at, id)) = queue.by_time.first() else {
                break;
            };
            if at > now_ms {
                break;
            }
            queue.by_time.pop_first();
            if let Some(item) = queue.members.get(&id) {
                item.maintenance_slot()
                    .due_ms
                    .store(NOT_QUEUED, Ordering::Relaxed);
                due.push(item.clone());
            }
        }
        due
    }

    /// How many items have a deadline queued.
    pub fn queued(&self) -> usize {
        self.queue.lock().by_time.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Item(Slot, u32);

    impl Scheduled for Item {
        fn maintenance_slot(&self) -> &Slot {
            &self.0
        }
    }

    fn item(n: u32) -> Arc<Item> {
        Arc::new(Item(Slot::default(), n))
    }

    fn names(items: &[Arc<Item>]) -> Vec<u32> {
        items.iter().map(|i| i.1).collect()
    }

    #[test]
    fn items_come_out_when_due_earliest_first_and_once() {
        let m = Maintenance::default();
        let (a, b, c) = (item(0), item(1), item(2));
        m.register(a.clone(), Some(300));
        m.register(b.clone(), Some(100));
        m.register(c.clone(), None);
        m.schedule(&a.0, Some(200)); // earlier: moves
        m.schedule(&b.0, Some(500)); // later: ignored
        assert_eq!(m.queued(), 2);
        assert!(m.take_due(99, 10).is_empty());
        assert_eq!(names(&m.take_due(250, 10)), vec![1, 0]);
        assert!(a.0.is_idle() && c.0.is_idle());
        assert_eq!(m.queued(), 0);
        // Still registered: they can be queued again.
        m.schedule(&c.0, Some(1));
        assert_eq!(names(&m.take_due(1, 10)), vec![2]);
    }

    #[test]
    fn the_limit_leaves_the_rest_and_forgotten_items_are_let_go() {
        let m = Maintenance::default();
        let items: Vec<_> = (0..5).map(item).collect();
        for (i, it) in items.iter().enumerate() {
            m.register(it.clone(), Some(i as i64));
        }
        assert_eq!(names(&m.take_due(10, 2)), vec![0, 1]);
        assert_eq!(m.queued(), 3);
        m.forget(&items[2]);
        assert_eq!(Arc::strong_count(&items[2]), 1, "the queue let go of it");
        m.schedule(&items[2].0, Some(0)); // not registered any more: ignored
        assert_eq!(names(&m.take_due(10, 10)), vec![3, 4]);
        m.clear();
        assert!(items.iter().all(|i| Arc::strong_count(i) == 1));
    }
}
