//! The leader epoch cache: where each leader epoch begins in the log, which is how a
//! follower finds where its log and the leader's part (Kafka's truncation by leader
//! epoch).

/// `(epoch, start offset)` of every leader epoch in the log, oldest first.
#[derive(Debug, Default, Clone)]
pub struct EpochCache(Vec<(i32, i64)>);

impl EpochCache {
    pub(super) fn record(&mut self, epoch: i32, start_offset: i64) {
        match self.0.last() {
            Some(&(last, _)) if last >= epoch => {}
            _ => self.0.push((epoch, start_offset)),
        }
    }

    pub(super) fn truncate_from(&mut self, offset: i64) {
        self.0.retain(|&(_, start)| start < offset);
    }

    pub fn latest(&self) -> Option<i32> {
        self.0.last().map(|&(e, _)| e)
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset where it
    /// ends (the next epoch's start, or the log end for the latest epoch);
    /// `(-1, -1)` if every epoch in the log is newer.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        match self.0.iter().rposition(|&(e, _)| e <= requested) {
            None => (-1, -1),
            Some(i) if i + 1 == self.0.len() => (self.0[i].0, log_end),
            Some(i) => (self.0[i].0, self.0[i + 1].1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Epoch 1 from 0, epoch 3 from 10, epoch 4 from 25.
    fn cache() -> EpochCache {
        let mut c = EpochCache::default();
        c.record(1, 0);
        c.record(1, 5);
        c.record(3, 10);
        c.record(4, 25);
        c
    }

    #[test]
    fn only_a_newer_epoch_starts_an_entry() {
        let mut c = cache();
        c.record(2, 30);
        c.record(4, 30);
        assert_eq!(c.0, vec![(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.latest(), Some(4));
        assert_eq!(EpochCache::default().latest(), None);
    }

    #[test]
    fn end_offsets() {
        let c = cache();
        assert_eq!(c.end_offset_for(1, 40), (1, 10));
        // An epoch the log has no record of ends where the next known one starts.
        assert_eq!(c.end_offset_for(2, 40), (1, 10));
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(4, 40), (4, 40));
        assert_eq!(c.end_offset_for(9, 40), (4, 40));
        assert_eq!(c.end_offset_for(0, 40), (-1, -1));
        assert_eq!(EpochCache::default().end_offset_for(5, 0), (-1, -1));
    }

    #[test]
    fn truncation_drops_the_epochs_that_start_at_or_after_it() {
        let mut c = cache();
        c.truncate_from(25);
        assert_eq!(c.0, vec![(1, 0), (3, 10)]);
        c.truncate_from(11);
        assert_eq!(c.0, vec![(1, 0), (3, 10)]);
        c.truncate_from(0);
        assert_eq!(c.latest(), None);
    }
}
