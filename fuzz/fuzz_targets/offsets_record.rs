//! Replaying arbitrary `__consumer_offsets` records into the group coordinator, and the
//! same bytes as a `__transaction_state` record into the transaction coordinator.
#![no_main]

use brook_coord::txn::{TransactionCoordinator, TxnConfig, TxnRecord};
use brook_coord::{GroupConfig, GroupCoordinator, OffsetsRecord, TopicsView};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

/// A cluster without topics, for the coordinator's timers.
struct NoTopics;

impl TopicsView for NoTopics {
    fn topic(&self, _name: &str) -> Option<(Uuid, i32)> {
        None
    }
    fn topic_name(&self, _id: &Uuid) -> Option<String> {
        None
    }
    fn each_topic(&self, _each: &mut dyn FnMut(&str, bool)) {}
    fn topics_version(&self) -> i64 {
        0
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize).min(data.len().saturating_sub(1));
    let body = data.get(1..).unwrap_or_default();
    let (key, value) = body.split_at(split.min(body.len()));
    let mut coordinator = GroupCoordinator::with_seed(GroupConfig::default(), 1);
    let record = OffsetsRecord { key: Bytes::copy_from_slice(key), value: (!value.is_empty()).then(|| Bytes::copy_from_slice(value)) };
    let _ = coordinator.replay(&record);
    let _ = coordinator.tick(1_000, &NoTopics);
    let mut txns = TransactionCoordinator::new(TxnConfig::default());
    let record = TxnRecord { key: record.key, value: record.value };
    if txns.replay(&record).is_ok() {
        let _ = txns.pending_markers(|_| true);
        let _ = txns.snapshot(|_| true);
    }
    let _ = txns.tick(i64::MAX / 2);
});
