//! One topic's traffic counters (Kafka's BrokerTopicMetrics): `metrics` creates and
//! registers them, a [`Partition`](crate::partition::Partition) keeps its topic's
//! handle once a produce has found it, so the request path finds them without a map
//! lookup.
//!
//! A leaf: any module may use it, it uses none.

use prometheus_client::metrics::counter::Counter;

/// Per-topic counters, one handle each.
#[derive(Default)]
pub struct TopicCounters {
    pub(crate) messages_in: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) produce_requests: Counter,
    pub(crate) failed_produce_requests: Counter,
    pub(crate) fetch_requests: Counter,
    pub(crate) failed_fetch_requests: Counter,
}

impl TopicCounters {
    /// A produce of `records` records in `bytes` bytes appended.
    pub fn appended(&self, records: u64, bytes: u64) {
        self.messages_in.inc_by(records);
        self.bytes_in.inc_by(bytes);
    }

    pub fn produce_request(&self, failed: bool) {
        self.produce_requests.inc();
        if failed {
            self.failed_produce_requests.inc();
        }
    }

    pub fn fetch_request(&self, failed: bool) {
        self.fetch_requests.inc();
        if failed {
            self.failed_fetch_requests.inc();
        }
    }

    pub fn sent(&self, bytes: u64) {
        self.bytes_out.inc_by(bytes);
    }
}
