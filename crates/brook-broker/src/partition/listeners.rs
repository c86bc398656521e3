//! Change listeners: how a fetch session with thousands of partitions learns which of
//! them changed without asking each one.
//!
//! A session registers its [`ChangeInbox`] with each partition once, under a slot
//! number of its own. Whenever what a fetch of the partition could return changes
//! (records, high watermark, log start, leadership), the partition marks its slot in
//! every registered inbox and wakes the inbox's waiter. The session then reads only
//! the marked partitions: work proportional to what changed, not to what it follows.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Slots marked since the last [`ChangeInbox::take`], each once.
#[derive(Default)]
struct Marks {
    marked: Vec<bool>,
    dirty: Vec<u32>,
    closed: bool,
}

/// One session's inbox of changed partitions.
#[derive(Default)]
pub struct ChangeInbox {
    marks: Mutex<Marks>,
    notify: Notify,
}

impl std::fmt::Debug for ChangeInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let marks = self.marks.lock();
        f.debug_struct("ChangeInbox")
            .field("dirty", &marks.dirty.len())
            .field("closed", &marks.closed)
            .finish()
    }
}

impl ChangeInbox {
    /// Marks `slot` changed and wakes the waiter. False once the inbox is closed: the
    /// partition then drops its registration.
    pub fn mark(&self, slot: u32) -> bool {
        let mut marks = self.marks.lock();
        if marks.closed {
            return false;
        }
        let i = slot as usize;
        if marks.marked.len() <= i {
            marks.marked.resize(i + 1, false);
        }
        if !marks.marked[i] {
            marks.marked[i] = true;
            marks.dirty.push(slot);
        }
        drop(marks);
        // A permit is kept when nobody waits, so a mark between `take` and `changed`
        // is never missed.
        self.notify.notify_one();
        true
    }

    /// The slots marked since the last call, in the order they were first marked.
    pub fn take(&self) -> Vec<u32> {
        let mut marks = self.marks.lock();
        let dirty = std::mem::take(&mut marks.dirty);
        for &slot in &dirty {
            marks.marked[slot as usize] = false;
        }
        dirty
    }

    /// Waits for a mark (it may have been taken already: call [`ChangeInbox::take`]).
    pub async fn changed(&self) {
        self.notify.notified().await;
    }

    /// No more marks: partitions still registered drop the inbox at their next change.
    pub fn close(&self) {
        let mut marks = self.marks.lock();
        marks.closed = true;
        marks.dirty.clear();
        marks.marked = Vec::new();
    }
}

/// The inboxes registered with one partition.
#[derive(Default)]
pub(super) struct Listeners {
    inboxes: Mutex<Vec<(Arc<ChangeInbox>, u32)>>,
}

impl Listeners {
    pub(super) fn add(&self, inbox: &Arc<ChangeInbox>, slot: u32) {
        let mut inboxes = self.inboxes.lock();
        match inboxes.iter_mut().find(|(i, _)| Arc::ptr_eq(i, inbox)) {
            Some(entry) => entry.1 = slot,
            None => inboxes.push((inbox.clone(), slot)),
        }
    }

    pub(super) fn remove(&self, inbox: &Arc<ChangeInbox>) {
        self.inboxes.lock().retain(|(i, _)| !Arc::ptr_eq(i, inbox));
    }

    pub(super) fn notify(&self) {
        let mut inboxes = self.inboxes.lock();
        if !inboxes.is_empty() {
            inboxes.retain(|(inbox, slot)| inbox.mark(*slot));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_slot_is_taken_once_per_change_burst_and_closed_inboxes_are_dropped() {
        let inbox = Arc::new(ChangeInbox::default());
        let listeners = Listeners::default();
        listeners.add(&inbox, 7);
        listeners.notify();
        listeners.notify();
        assert_eq!(inbox.take(), vec![7]);
        assert!(inbox.take().is_empty());
        listeners.notify();
        assert_eq!(inbox.take(), vec![7]);
        // Registered again under another slot: the new slot is marked.
        listeners.add(&inbox, 3);
        listeners.notify();
        assert_eq!(inbox.take(), vec![3]);
        inbox.close();
        listeners.notify();
        assert!(listeners.inboxes.lock().is_empty());
        assert!(inbox.take().is_empty());
    }

    #[tokio::test]
    async fn a_mark_before_the_wait_is_not_missed() {
        let inbox = Arc::new(ChangeInbox::default());
        assert!(inbox.mark(0));
        tokio::time::timeout(std::time::Duration::from_secs(5), inbox.changed())
            .await
            .expect("woken by the earlier mark");
        assert_eq!(inbox.take(), vec![0]);
    }
}
