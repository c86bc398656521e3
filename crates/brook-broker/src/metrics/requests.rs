//! Request time per API, split as Kafka's RequestMetrics: the families, one API's
//! handles, and the split of one request's clock readings.

use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// API keys below this get request time histograms (Kafka's keys end in the 90s).
pub(super) const API_KEY_SLOTS: usize = 128;

/// Where one request's time went (Kafka's RequestMetrics), measured by the connection.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestTimes {
    /// From the frame's last byte read until its handler started (header checks and
    /// decoding: Brook has no request queue, pipelined requests wait in the socket).
    pub queue: Duration,
    /// The handler's own work and the response's encoding.
    pub local: Duration,
    /// Waiting on other parties (`request_time::waiting_on_others`).
    pub remote: Duration,
    /// Writing the response to the socket, flush included (zero without a response).
    pub response_send: Duration,
    /// The response's `throttle_time_ms`.
    pub throttle: Duration,
    /// From the frame's last byte read until its response was flushed.
    pub total: Duration,
}

impl RequestTimes {
    /// The split of a request received (its frame's last byte read) at `received`,
    /// whose handler ran from `handler_started` to `handled` (response encoded) and
    /// waited `remote` of it on others, and whose response was flushed at `sent`. The
    /// parts add up to the total.
    pub fn split(
        received: Instant,
        handler_started: Instant,
        handled: Instant,
        sent: Instant,
        remote: Duration,
        throttle_time_ms: i32,
    ) -> RequestTimes {
        let handling = handled.saturating_duration_since(handler_started);
        RequestTimes {
            queue: handler_started.saturating_duration_since(received),
            local: handling.saturating_sub(remote),
            remote: remote.min(handling),
            response_send: sent.saturating_duration_since(handled),
            throttle: Duration::from_millis(throttle_time_ms.max(0) as u64),
            total: sent.saturating_duration_since(received),
        }
    }
}

/// One API's request time histograms.
pub(super) struct RequestHistograms {
    pub(super) queue: Histogram,
    pub(super) local: Histogram,
    pub(super) remote: Histogram,
    pub(super) response_send: Histogram,
    pub(super) throttle: Histogram,
    pub(super) total: Histogram,
}

type HistogramFamily = Family<ApiLabel, Histogram, fn() -> Histogram>;

/// The families behind [`RequestHistograms`], registered once.
pub(super) struct RequestFamilies {
    queue: HistogramFamily,
    local: HistogramFamily,
    remote: HistogramFamily,
    response_send: HistogramFamily,
    throttle: HistogramFamily,
    total: HistogramFamily,
}

impl RequestFamilies {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let mut family = |name: &str, help: &str| {
            let f = HistogramFamily::new_with_constructor(latency_histogram);
            registry.register(name, help, f.clone());
            f
        };
        RequestFamilies {
            queue: family(
                "brook_request_queue_time_seconds",
                "From a request's last byte read until its handler starts (header checks, decoding), by API",
            ),
            local: family(
                "brook_request_local_time_seconds",
                "A request's own work in its handler, response encoding included, by API",
            ),
            remote: family(
                "brook_request_remote_time_seconds",
                "Time a request waits on others: acks=all replication, fetch long-poll, parked JoinGroup/SyncGroup, offset commit replication, by API",
            ),
            response_send: family(
                "brook_request_response_send_time_seconds",
                "Writing a request's response to the socket, by API",
            ),
            throttle: family(
                "brook_request_throttle_time_seconds",
                "The throttle_time_ms of a request's response (client quotas), by API",
            ),
            total: family(
                "brook_request_total_time_seconds",
                "From a request's last byte read until its response is flushed, by API (_count: requests answered)",
            ),
        }
    }

    pub(super) fn for_api(&self, api: ApiKey) -> RequestHistograms {
        let label = ApiLabel {
            api: format!("{api:?}"),
        };
        let get = |family: &HistogramFamily| family.get_or_create(&label).clone();
        RequestHistograms {
            queue: get(&self.queue),
            local: get(&self.local),
            remote: get(&self.remote),
            response_send: get(&self.response_send),
            throttle: get(&self.throttle),
            total: get(&self.total),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabel {
    api: String,
}

/// Request latency buckets: 100 µs to about 26 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_splits_into_parts_that_add_up() {
        let received = Instant::now();
        let ms = Duration::from_millis;
        let t = RequestTimes::split(
            received,
            received + ms(2),
            received + ms(500),
            received + ms(530),
            ms(400),
            7,
        );
        assert_eq!(
            t,
            RequestTimes {
                queue: ms(2),
                local: ms(98),
                remote: ms(400),
                response_send: ms(30),
                throttle: ms(7),
                total: ms(530),
            }
        );
        assert_eq!(t.queue + t.local + t.remote + t.response_send, t.total);
        // Remote time is part of the handler's: never more, never a negative local.
        let t = RequestTimes::split(
            received,
            received,
            received + ms(1),
            received + ms(1),
            ms(5),
            -1,
        );
        assert_eq!((t.local, t.remote, t.throttle), (ms(0), ms(1), ms(0)));
    }

    #[test]
    fn request_times_are_series_per_api_under_kafkas_parts() {
        let mut registry = Registry::default();
        let families = RequestFamilies::register(&mut registry);
        let produce = families.for_api(ApiKey::Produce);
        produce.remote.observe(0.25);
        produce.total.observe(0.3);
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
        for part in [
            "queue",
            "local",
            "remote",
            "response_send",
            "throttle",
            "total",
        ] {
            let count = format!("brook_request_{part}_time_seconds_count{{api=\"Produce\"}} ");
            assert!(out.contains(&count), "{count} missing from\n{out}");
        }
        assert!(out.contains("brook_request_remote_time_seconds_sum{api=\"Produce\"} 0.25"));
        // Only APIs that were asked for have series.
        assert!(!out.contains("api=\"Fetch\""));
    }
}
