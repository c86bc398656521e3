//! Client quota usage, read at scrape time (Kafka's per user/client-id quota metrics:
//! `byte-rate`/`request-time` and `throttle-time` of the Produce, Fetch and Request
//! quota types). Only clients a quota covers have series, one per rate the quota keeps
//! (clients sharing a user-level quota share it), at most as many as
//! `client_quotas` keeps.

use std::sync::Arc;

use brook_meta::QuotaKind;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::client_quotas::ClientQuotaRates;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    quota: String,
    user: String,
    client_id: String,
}

/// The quota rates' collector.
pub(super) struct QuotaCollector {
    pub(super) rates: Arc<ClientQuotaRates>,
}

impl std::fmt::Debug for QuotaCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuotaCollector").finish_non_exhaustive()
    }
}

impl Collector for QuotaCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let usage = self.rates.snapshot();
        let labels = |kind: QuotaKind, user: &str, client_id: &str| QuotaLabels {
            quota: kind.key().to_string(),
            user: user.to_string(),
            client_id: client_id.to_string(),
        };
        let mut rate = encoder.encode_descriptor(
            "brook_client_quota_rate",
            "A client quota's current rate: bytes per second (producer_byte_rate, consumer_byte_rate) or percent of a thread (request_percentage), over the quota's windows",
            None,
            MetricType::Gauge,
        )?;
        for u in &usage {
            rate.encode_family(&labels(u.kind, &u.user, &u.client_id))?
                .encode_gauge(&u.rate)?;
        }
        let mut throttled = encoder.encode_descriptor(
            "brook_client_quota_throttle_time_seconds",
            "Throttle time a client quota has given its clients",
            None,
            MetricType::Counter,
        )?;
        for u in &usage {
            throttled
                .encode_family(&labels(u.kind, &u.user, &u.client_id))?
                .encode_counter::<NoLabelSet, _, u64>(&(u.throttled_ms as f64 / 1000.0), None)?;
        }
        Ok(())
    }
}
