//! When each partition's log next owes periodic work, so the maintenance tick visits
//! only the partitions that owe something.
//!
//! A log's periodic work (fsync of newly sealed segments, `flush.ms` fsyncs,
//! `segment.ms` rolls of idle segments, recovery-point checkpoints) has a deadline the
//! log computes ([`brook_log::Log::next_maintenance_ms`]). [`Maintenance`] keeps one
//! deadline per partition in a queue ordered by time: the tick takes the partitions
//! that are due, runs their work, and puts each back with its next deadline. An idle
//! broker with 10,000 partitions then does nothing per tick, where visiting every
//! partition every 100 ms was most of its work.
//!
//! A deadline only moves earlier between visits when the log rolls (its sealed
//! segment wants an fsync), when a log without a deadline gets its first unflushed
//! record, or when the topic's config changes; the partition reports those with
//! [`Partition::wake_maintenance`](crate::partition::Partition).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::partition::Partition;

/// A partition's place in the queue: a stable id and its deadline (`NOT_QUEUED` when
/// it has none).
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
    /// Whether the partition has no deadline queued (so an append must give it one).
    pub fn is_idle(&self) -> bool {
        self.due_ms.load(Ordering::Relaxed) == NOT_QUEUED
    }
}

#[derive(Default)]
struct Queue {
    by_time: BTreeSet<(i64, u64)>,
    partitions: HashMap<u64, Weak<Partition>>,
}

/// The deadlines of every partition's periodic work.
#[derive(Default)]
pub struct Maintenance {
    queue: Mutex<Queue>,
}

impl Maintenance {
    /// Queues `partition`'s work for `at_ms` unless it is already due sooner. A
    /// deadline of `i64::MAX` (or none) means never.
    pub fn schedule(&self, partition: &Arc<Partition>, at_ms: Option<i64>) {
        self.schedule_weak(
            partition.maintenance_slot(),
            Arc::downgrade(partition),
            at_ms,
        );
    }

    /// [`Maintenance::schedule`] for a partition known by its slot and a weak handle.
    pub(crate) fn schedule_weak(
        &self,
        slot: &Slot,
        partition: Weak<Partition>,
        at_ms: Option<i64>,
    ) {
        let Some(at_ms) = at_ms.filter(|t| *t < NOT_QUEUED) else {
            return;
        };
        let mut queue = self.queue.lock();
        let current = slot.due_ms.load(Ordering::Relaxed);
        if current <= at_ms {
            return;
        }
        if current != NOT_QUEUED {
            queue.by_time.remove(&(current, slot.id));
        }
        queue.by_time.insert((at_ms, slot.id));
        queue.partitions.insert(slot.id, partition);
        slot.due_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Takes the partitions due at `now_ms` out of the queue (at most `limit`, the
    /// earliest first; the rest stay for the next tick). Partitions dropped since they
    /// were queued are forgotten.
    pub fn take_due(&self, now_ms: i64, limit: usize) -> Vec<Arc<Partition>> {
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
            let Some(weak) = queue.partitions.remove(&id) else {
                continue;
            };
            if let Some(p) = weak.upgrade() {
                p.maintenance_slot()
                    .due_ms
                    .store(NOT_QUEUED, Ordering::Relaxed);
                due.push(p);
            }
        }
        due
    }

    /// How many partitions have a deadline queued.
    pub fn queued(&self) -> usize {
        self.queue.lock().by_time.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;

    fn partition(dir: &std::path::Path, index: i32) -> Arc<Partition> {
        let config = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None)
            .topic_config(&Default::default(), crate::config::Dynamic::none());
        Arc::new(
            Partition::open(
                &dir.join(format!("t-{index}")),
                Arc::from("t"),
                index,
                1,
                Arc::new(config),
                0,
            )
            .unwrap(),
        )
    }

    #[test]
    fn partitions_come_out_when_due_earliest_first_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let m = Maintenance::default();
        let (a, b, c) = (
            partition(dir.path(), 0),
            partition(dir.path(), 1),
            partition(dir.path(), 2),
        );
        m.schedule(&a, Some(300));
        m.schedule(&b, Some(100));
        m.schedule(&c, None);
        m.schedule(&a, Some(200)); // earlier: moves
        m.schedule(&b, Some(500)); // later: ignored
        assert_eq!(m.queued(), 2);
        assert!(m.take_due(99, 10).is_empty());
        let due = m.take_due(250, 10);
        assert_eq!(due.iter().map(|p| p.index).collect::<Vec<_>>(), vec![1, 0]);
        assert!(a.maintenance_slot().is_idle() && c.maintenance_slot().is_idle());
        assert_eq!(m.queued(), 0);
    }

    #[test]
    fn the_limit_leaves_the_rest_for_later_and_dropped_partitions_go() {
        let dir = tempfile::tempdir().unwrap();
        let m = Maintenance::default();
        let ps: Vec<_> = (0..5).map(|i| partition(dir.path(), i)).collect();
        for (i, p) in ps.iter().enumerate() {
            m.schedule(p, Some(i as i64));
        }
        let due = m.take_due(10, 2);
        assert_eq!(due.iter().map(|p| p.index).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(m.queued(), 3);
        drop(ps);
        drop(due); // nothing holds the partitions but `m`'s weak handles
        assert!(m.take_due(10, 2).is_empty());
        assert_eq!(m.queued(), 0);
    }
}
