//! Request time per API, split as Kafka's RequestMetrics: the families, one API's
//! handles, and the split of one request's clock readings.

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::histogram::LatencyHistogram;

/// API keys below this get request time histograms (Kafka's keys end in the 90s).
const API_KEY_SLOTS: usize = 128;
/// Internal RPC kinds below this get request time histograms (Brook has six).
const INTERNAL_KIND_SLOTS: usize = 16;
/// Request time histogram slots: every API key, then every internal RPC kind.
pub(super) const REQUEST_SLOTS: usize = API_KEY_SLOTS + INTERNAL_KIND_SLOTS;

/// What a timed request was: a Kafka API (SASL's included), or one of Brook's
/// inter-broker RPCs on the controller listener, which are not Kafka APIs and are
/// labelled `Internal:<Kind>` (a fixed set of kinds, so the series stay bounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimedApi {
    Kafka(ApiKey),
    /// An internal RPC kind (`peer::KIND_*`) and its name.
    Internal {
        kind: u8,
        name: &'static str,
    },
}

impl TimedApi {
    /// Its histograms' slot; `None` beyond the slots (never for Kafka's keys).
    #[inline]
    pub(super) fn slot(self) -> Option<usize> {
        let slot = match self {
            TimedApi::Kafka(api) => usize::try_from(api as i16).ok()?,
            TimedApi::Internal { kind, .. } => API_KEY_SLOTS + kind as usize,
        };
        (slot < REQUEST_SLOTS).then_some(slot)
    }

    /// The `api` label: `Produce`, `SaslAuthenticate`, `Internal:Raft`.
    fn label(self) -> String {
        match self {
            TimedApi::Kafka(api) => format!("{api:?}"),
            TimedApi::Internal { name, .. } => format!("Internal:{name}"),
        }
    }
}

/// Where one request's time went (Kafka's RequestMetrics), measured by the connection
/// in nanoseconds of `clock::monotonic_ns`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTimes {
    /// From the frame's last byte read until its handler started (header checks and
    /// decoding: Brook has no request queue, pipelined requests wait in the socket).
    pub queue_ns: u64,
    /// The handler's own work and the response's encoding.
    pub local_ns: u64,
    /// Waiting on other parties (`request_time::waiting_on_others`).
    pub remote_ns: u64,
    /// Writing the response to the socket, flush included (zero without a response).
    pub response_send_ns: u64,
    /// The response's `throttle_time_ms`.
    pub throttle_ns: u64,
    /// From the frame's last byte read until its response was flushed.
    pub total_ns: u64,
}

impl RequestTimes {
    /// The split of a request received (its frame's last byte read) at `received_ns`,
    /// whose handler ran from `handler_started_ns` to `handled_ns` (response encoded)
    /// and waited `remote_ns` of it on others, and whose response was flushed at
    /// `sent_ns`. The parts add up to the total.
    #[inline]
    pub fn split(
        received_ns: u64,
        handler_started_ns: u64,
        handled_ns: u64,
        sent_ns: u64,
        remote_ns: u64,
        throttle_time_ms: i32,
    ) -> RequestTimes {
        let handling_ns = handled_ns.saturating_sub(handler_started_ns);
        RequestTimes {
            queue_ns: handler_started_ns.saturating_sub(received_ns),
            local_ns: handling_ns.saturating_sub(remote_ns),
            remote_ns: remote_ns.min(handling_ns),
            response_send_ns: sent_ns.saturating_sub(handled_ns),
            throttle_ns: throttle_time_ms.max(0) as u64 * 1_000_000,
            total_ns: sent_ns.saturating_sub(received_ns),
        }
    }
}

/// One API's request time histograms.
pub(super) struct RequestHistograms {
    queue: LatencyHistogram,
    local: LatencyHistogram,
    remote: LatencyHistogram,
    response_send: LatencyHistogram,
    throttle: LatencyHistogram,
    total: LatencyHistogram,
}

impl RequestHistograms {
    /// Records one request's times: at most twelve relaxed atomic additions, no lock.
    #[inline]
    pub(super) fn observe(&self, times: &RequestTimes) {
        self.queue.observe_ns(times.queue_ns);
        self.local.observe_ns(times.local_ns);
        self.remote.observe_ns(times.remote_ns);
        self.response_send.observe_ns(times.response_send_ns);
        self.throttle.observe_ns(times.throttle_ns);
        self.total.observe_ns(times.total_ns);
    }
}

type HistogramFamily = Family<ApiLabel, LatencyHistogram>;

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
            let f = HistogramFamily::default();
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
                "Time a request waits on others: acks=all replication, fetch long-poll, parked JoinGroup/SyncGroup, offset commit replication, the controller and other brokers, by API",
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

    pub(super) fn for_api(&self, api: TimedApi) -> RequestHistograms {
        let label = ApiLabel { api: api.label() };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_splits_into_parts_that_add_up() {
        let received = 5_000_000_000;
        let ms = |ms: u64| ms * 1_000_000;
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
                queue_ns: ms(2),
                local_ns: ms(98),
                remote_ns: ms(400),
                response_send_ns: ms(30),
                throttle_ns: ms(7),
                total_ns: ms(530),
            }
        );
        assert_eq!(
            t.queue_ns + t.local_ns + t.remote_ns + t.response_send_ns,
            t.total_ns
        );
        // Remote time is part of the handler's: never more, never a negative local.
        let t = RequestTimes::split(
            received,
            received,
            received + ms(1),
            received + ms(1),
            ms(5),
            -1,
        );
        assert_eq!((t.local_ns, t.remote_ns, t.throttle_ns), (0, ms(1), 0));
    }

    #[test]
    fn request_times_are_series_per_api_under_kafkas_parts() {
        let mut registry = Registry::default();
        let families = RequestFamilies::register(&mut registry);
        let produce = families.for_api(TimedApi::Kafka(ApiKey::Produce));
        produce.observe(&RequestTimes {
            remote_ns: 250_000_000,
            total_ns: 300_000_000,
            ..RequestTimes::default()
        });
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

    #[test]
    fn internal_rpcs_have_slots_and_labels_of_their_own() {
        let raft = TimedApi::Internal {
            kind: 0,
            name: "Raft",
        };
        assert_eq!(raft.label(), "Internal:Raft");
        assert_eq!(raft.slot(), Some(API_KEY_SLOTS));
        assert_ne!(raft.slot(), TimedApi::Kafka(ApiKey::Produce).slot());
        let sasl = TimedApi::Kafka(ApiKey::SaslAuthenticate);
        assert_eq!(sasl.label(), "SaslAuthenticate");
        assert_eq!(sasl.slot(), Some(ApiKey::SaslAuthenticate as i16 as usize));
        let beyond = TimedApi::Internal {
            kind: INTERNAL_KIND_SLOTS as u8,
            name: "Later",
        };
        assert_eq!(beyond.slot(), None, "no series beyond the bounded slots");
    }
}
