//! A request latency histogram without a lock: one atomic counter per bucket and one
//! for the sum, in integer nanoseconds. An observation is two atomic additions and
//! a bucket index computed from the value's bit length, where prometheus-client's
//! `Histogram` takes a mutex and scans its bounds. It renders through
//! prometheus-client's encoder exactly as that `Histogram` with the same buckets did.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::histogram::exponential_buckets;
use prometheus_client::metrics::{MetricType, TypedMetric};

/// The first bucket's upper bound: 100 µs.
const FIRST_BOUND_NS: u64 = 100_000;
/// Upper bounds doubling from [`FIRST_BOUND_NS`] (the last about 26 s), then `+Inf`.
const BOUNDS: usize = 19;

/// Request latencies: buckets of 100 µs to about 26 s, doubling. Clones share counts.
#[derive(Clone, Debug, Default)]
pub(super) struct LatencyHistogram(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    buckets: [AtomicU64; BOUNDS + 1],
    /// The sum of the observations, in nanoseconds (584 years before it wraps).
    sum_ns: AtomicU64,
}

impl LatencyHistogram {
    /// Counts one observation of `ns` nanoseconds.
    #[inline]
    pub(super) fn observe_ns(&self, ns: u64) {
        self.0.buckets[bucket(ns)].fetch_add(1, Ordering::Relaxed);
        // Throttle and remote times are mostly zero: no atomic addition for nothing.
        if ns != 0 {
            self.0.sum_ns.fetch_add(ns, Ordering::Relaxed);
        }
    }
}

/// The bucket `ns` falls in: bucket `k` holds (100 µs·2^(k−1), 100 µs·2^k], bucket 0
/// everything up to 100 µs, bucket [`BOUNDS`] what is above the last bound. The
/// bounds are integers, so a value on a bound lands where the f64 comparison of
/// prometheus-client's `Histogram` put it (`upper_bound >= v`).
#[inline]
fn bucket(ns: u64) -> usize {
    // Most phases of most requests take less than the first bound.
    if ns <= FIRST_BOUND_NS {
        return 0;
    }
    let steps = (ns - 1) / FIRST_BOUND_NS;
    ((u64::BITS - steps.leading_zeros()) as usize).min(BOUNDS)
}

impl TypedMetric for LatencyHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for LatencyHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        // The bounds as prometheus-client computes them, so they print the same.
        let bounds = exponential_buckets(FIRST_BOUND_NS as f64 / 1e9, 2.0, BOUNDS as u16)
            .chain(std::iter::once(f64::INFINITY));
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        // The count is the buckets' total, so `+Inf` and `_count` always agree.
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::EncodeLabelSet;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::histogram::Histogram;
    use prometheus_client::registry::Registry;
    use std::time::Duration;

    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Label {
        api: String,
    }

    /// `observations` (label, ns) rendered by a [`LatencyHistogram`] family and by a
    /// prometheus-client `Histogram` family with the buckets request times had.
    fn render_both(observations: &[(&str, u64)]) -> (String, String) {
        let new = Family::<Label, LatencyHistogram>::default();
        let old = Family::<Label, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 19))
        });
        for &(api, ns) in observations {
            let label = Label { api: api.into() };
            new.get_or_create(&label).observe_ns(ns);
            old.get_or_create(&label)
                .observe(Duration::from_nanos(ns).as_secs_f64());
        }
        let render = |register: &dyn Fn(&mut Registry)| {
            let mut registry = Registry::default();
            register(&mut registry);
            let mut out = String::new();
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap();
            out
        };
        let help = "Request time";
        (
            render(&|r| r.register("brook_request_time_seconds", help, new.clone())),
            render(&|r| r.register("brook_request_time_seconds", help, old.clone())),
        )
    }

    #[test]
    fn renders_exactly_as_prometheus_clients_histogram() {
        // Multiples of 2^-9 s (1,953,125 ns) add up exactly in f64 too, so the sums
        // print the same; they reach every bucket, +Inf included.
        let step = 1_953_125;
        let mut observations: Vec<(&str, u64)> = [0, 1, 2, 3, 7, 50, 100, 1000, 13_422, 15_360]
            .iter()
            .map(|k| ("Produce", k * step))
            .collect();
        // Values on, below and above bounds (below 1 s, where `as_secs_f64` rounds
        // once), each alone in its series so the sum is the value.
        for (api, ns) in [
            ("A", 1),
            ("B", 99_999),
            ("C", 100_000),
            ("D", 100_001),
            ("E", 200_000),
            ("F", 200_001),
            ("G", 409_600_000),
            ("H", 819_200_000),
            ("I", 819_200_001),
            ("J", 123_456_789),
        ] {
            observations.push((api, ns));
        }
        let (new, old) = render_both(&observations);
        // Series come in the family's hash map order, different in each family.
        let lines = |text: &str| {
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            lines.sort();
            lines
        };
        assert_eq!(lines(&new), lines(&old));
        assert!(new.contains("brook_request_time_seconds_bucket{api=\"Produce\",le=\"+Inf\"} 10\n"));
    }

    #[test]
    fn values_land_in_the_bucket_of_their_upper_bound() {
        for (ns, expected) in [
            (0, 0),
            (100_000, 0),
            (100_001, 1),
            (200_000, 1),
            (200_001, 2),
            (FIRST_BOUND_NS << 18, 18),
            ((FIRST_BOUND_NS << 18) + 1, BOUNDS),
            (u64::MAX, BOUNDS),
        ] {
            assert_eq!(bucket(ns), expected, "{ns} ns");
        }
    }
}
