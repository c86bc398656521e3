//! Client quota enforcement, as Kafka's `ClientQuotaManager` and
//! `ClientRequestQuotaManager` do it.
//!
//! Each quota in force (`producer_byte_rate`, `consumer_byte_rate`,
//! `request_percentage`, resolved for a `(user, client-id)` pair by
//! `brook_meta::ClientQuotas::resolve`) has a rate of its own, shared by every
//! connection the quota covers (a user-level quota: all that user's clients). A rate is
//! Kafka's: the sum of `quota.window.num` samples of `quota.window.size.seconds` each,
//! over the time they span (at least all but one window, so a first burst is not
//! judged over a few milliseconds). A request that takes its rate over the quota is
//! still served; its response carries the time the client must wait for the rate to
//! come back under the quota (`throttle_time_ms`, KIP-219), and the connection reads
//! nothing more from that client until then (Kafka mutes the channel).
//!
//! Nothing is tracked while no quota is set: the connection asks [`active`] first.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use brook_meta::{ClientQuotas, QuotaKind};

/// `quota.window.size.seconds` and `quota.window.num` (Kafka's defaults: 1 s, 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaWindows {
    pub window: Duration,
    pub samples: u32,
}

impl Default for QuotaWindows {
    fn default() -> Self {
        QuotaWindows {
            window: Duration::from_secs(1),
            samples: 11,
        }
    }
}

impl QuotaWindows {
    /// `quota.window.size.seconds` and `quota.window.num` (2 to 3600 windows).
    pub fn of(settings: &crate::config::BrokerSettings) -> Self {
        QuotaWindows {
            window: Duration::from_secs(settings.quota_window_size_seconds as u64),
            samples: settings.quota_window_num.clamp(2, 3600) as u32,
        }
    }

    fn window_ms(&self) -> u64 {
        (self.window.as_millis() as u64).max(1)
    }
}

/// The most rates kept at once. A client inventing a client id per connection makes a
/// rate per id (when a client-id quota covers it); rates idle for the whole span of
/// the samples are dropped first, and past this even active ones are reset.
const MAX_RATES: usize = 100_000;

/// One sample window: when it started and what was recorded in it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    start_ms: u64,
    value: f64,
}

/// A rate over sampled windows (Kafka's `Rate` over a `SampledStat`).
#[derive(Debug, Clone, Default)]
pub struct Rate {
    /// At most `samples`, oldest first.
    samples: Vec<Sample>,
    last_record_ms: u64,
    /// Every throttle time this rate has given, in ms (Kafka's `throttle-time`
    /// sensor, kept as a total).
    throttled_ms: u64,
}

impl Rate {
    /// Adds `value` at `now_ms`: to the current window, or to a new one starting now
    /// when the current one has run its length.
    pub fn record(&mut self, windows: &QuotaWindows, value: f64, now_ms: u64) {
        self.last_record_ms = now_ms;
        let window = windows.window_ms();
        match self.samples.last_mut() {
            Some(current) if now_ms < current.start_ms.saturating_add(window) => {
                current.value += value;
                return;
            }
            _ => {}
        }
        if self.samples.len() >= windows.samples.max(1) as usize {
            self.samples.remove(0);
        }
        self.samples.push(Sample {
            start_ms: now_ms,
            value,
        });
    }

    /// When something was last recorded (ms).
    pub fn last_record_ms(&self) -> u64 {
        self.last_record_ms
    }

    /// Forgets windows older than the span of all samples.
    fn purge(&mut self, windows: &QuotaWindows, now_ms: u64) {
        let span = windows.window_ms() * u64::from(windows.samples.max(1));
        self.samples
            .retain(|s| now_ms.saturating_sub(s.start_ms) < span);
    }

    /// The time the rate is measured over, in ms: since the oldest window started,
    /// but never less than all windows but one (Kafka's `Rate.windowSize`).
    pub fn window_ms(&mut self, windows: &QuotaWindows, now_ms: u64) -> u64 {
        self.purge(windows, now_ms);
        let window = windows.window_ms();
        let elapsed = self
            .samples
            .first()
            .map_or(0, |s| now_ms.saturating_sub(s.start_ms));
        let min_full = u64::from(windows.samples.max(1) - 1);
        let full = elapsed / window;
        let elapsed = if full < min_full {
            elapsed + (min_full - full) * window
        } else {
            elapsed
        };
        elapsed.max(1)
    }

    /// Units per second.
    pub fn measure(&mut self, windows: &QuotaWindows, now_ms: u64) -> f64 {
        let window_ms = self.window_ms(windows, now_ms);
        let total: f64 = self.samples.iter().map(|s| s.value).sum();
        total / (window_ms as f64 / 1000.0)
    }

    /// How long, in ms, until the rate is back at `limit` with nothing more recorded
    /// (Kafka's `QuotaUtils.throttleTime`); 0 within the quota.
    pub fn throttle_ms(&mut self, windows: &QuotaWindows, limit: f64, now_ms: u64) -> u64 {
        let observed = self.measure(windows, now_ms);
        if observed <= limit {
            return 0;
        }
        let window_ms = self.window_ms(windows, now_ms) as f64;
        if limit <= 0.0 {
            // Nothing is allowed: wait out every window.
            return window_ms as u64;
        }
        let throttle = ((observed - limit) / limit * window_ms).round();
        throttle.min(i32::MAX as f64) as u64
    }
}

/// One rate in use, as the metrics show it ([`ClientQuotaRates::snapshot`]).
#[derive(Debug, Clone, PartialEq)]
pub struct QuotaUsage {
    pub kind: QuotaKind,
    pub user: String,
    pub client_id: String,
    pub rate: f64,
    pub throttled_ms: u64,
}

/// What a rate is kept under: the quota's kind and the tags of the entity it was
/// resolved to.
type RateKey = (QuotaKind, String, String);

/// The rates of every quota in use.
pub struct ClientQuotaRates {
    windows: QuotaWindows,
    /// The origin of the millisecond clock the rates use.
    epoch: Instant,
    rates: Mutex<HashMap<RateKey, Rate>>,
}

/// Whether any client quota is set (nothing is measured otherwise).
pub fn active(quotas: &ClientQuotas) -> bool {
    !quotas.is_empty()
}

impl ClientQuotaRates {
    pub fn new(windows: QuotaWindows) -> Self {
        ClientQuotaRates {
            windows,
            epoch: Instant::now(),
            rates: Mutex::new(HashMap::new()),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Records `value` against the `kind` quota covering `user`/`client_id`, if one
    /// does; the throttle time it earns, in ms (0: within its quota, or none).
    pub fn record(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) -> u64 {
        let throttle = self.with_rate(quotas, kind, user, client_id, now_ms, |rate, limit| {
            rate.record(&self.windows, value, now_ms);
            let throttle = match kind {
                // Kafka bounds request-time throttling to one window.
                QuotaKind::Request => rate
                    .throttle_ms(&self.windows, limit, now_ms)
                    .min(self.windows.window_ms()),
                QuotaKind::Produce | QuotaKind::Fetch | QuotaKind::ControllerMutation => {
                    rate.throttle_ms(&self.windows, limit, now_ms)
                }
            };
            rate.throttled_ms = rate.throttled_ms.saturating_add(throttle);
            throttle
        });
        throttle.unwrap_or(0)
    }

    /// Takes back a value recorded at `now_ms` (a throttled fetch is answered empty,
    /// so its bytes do not count).
    pub fn unrecord(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        value: f64,
        now_ms: u64,
    ) {
        self.with_rate(quotas, kind, user, client_id, now_ms, |rate, _| {
            rate.record(&self.windows, -value, now_ms)
        });
    }

    /// Runs `f` on the rate of the `kind` quota covering `user`/`client_id` (made if
    /// new, within [`MAX_RATES`]) with the quota's limit; `None` when no quota does.
    fn with_rate<T>(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
        now_ms: u64,
        f: impl FnOnce(&mut Rate, f64) -> T,
    ) -> Option<T> {
        let quota = quotas.resolve(kind, user, client_id)?;
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        let key = (kind, quota.user, quota.client_id);
        if !rates.contains_key(&key) && rates.len() >= MAX_RATES {
            let span = self.windows.window_ms() * u64::from(self.windows.samples);
            rates.retain(|_, r| now_ms.saturating_sub(r.last_record_ms) < span);
            if rates.len() >= MAX_RATES {
                tracing::warn!(
                    rates = rates.len(),
                    "client quota rates: too many clients measured at once; resetting them"
                );
                rates.clear();
            }
        }
        Some(f(rates.entry(key).or_default(), quota.limit))
    }

    /// Every rate in use, as the metrics show it: the quota's kind, its user and
    /// client-id tags, the rate now (units per second) and the throttle time it has
    /// given in all (ms).
    pub fn snapshot(&self) -> Vec<QuotaUsage> {
        let now_ms = self.now_ms();
        let mut rates = self.rates.lock().unwrap_or_else(|p| p.into_inner());
        rates
            .iter_mut()
            .map(|((kind, user, client_id), rate)| QuotaUsage {
                kind: *kind,
                user: user.clone(),
                client_id: client_id.clone(),
                rate: rate.measure(&self.windows, now_ms),
                throttled_ms: rate.throttled_ms,
            })
            .collect()
    }

    /// The most a single request may bring without being throttled for sure (Kafka's
    /// `maxValueInQuotaWindow`: the quota over all windows but one); the bytes a fetch
    /// is bounded to.
    pub fn max_in_window(
        &self,
        quotas: &ClientQuotas,
        kind: QuotaKind,
        user: &str,
        client_id: &str,
    ) -> Option<f64> {
        let quota = quotas.resolve(kind, user, client_id)?;
        let span_s = self.windows.window.as_secs_f64() * f64::from(self.windows.samples.max(1) - 1);
        Some(quota.limit * span_s)
    }
}

/// The share of one thread a request's handling took, in Kafka's request-quota unit:
/// percent-seconds (a request that kept a thread busy 10 ms adds 1).
pub fn thread_time_percent(busy: Duration) -> f64 {
    busy.as_secs_f64() * 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_meta::{alter_client_quotas, MetadataRecord, QuotaAlteration};

    const W: QuotaWindows = QuotaWindows {
        window: Duration::from_secs(1),
        samples: 11,
    };

    #[test]
    fn a_rate_is_judged_over_at_least_all_windows_but_one() {
        let mut r = Rate::default();
        r.record(&W, 1000.0, 0);
        // 1000 over the first 10 s, not over 1 ms.
        assert_eq!(r.window_ms(&W, 0), 10_000);
        assert!((r.measure(&W, 0) - 100.0).abs() < 1e-9);
        // Later the span is real.
        for t in 1..=15u64 {
            r.record(&W, 1000.0, t * 1000);
        }
        assert_eq!(r.window_ms(&W, 15_000), 10_000);
        // 11 windows kept: 11,000 over 10 s.
        assert!((r.measure(&W, 15_000) - 1100.0).abs() < 1e-9);
        // All windows age out.
        assert_eq!(r.measure(&W, 40_000), 0.0);
    }

    #[test]
    fn throttle_time_brings_the_rate_back_to_the_quota() {
        let mut r = Rate::default();
        r.record(&W, 2000.0, 0);
        // 2000 over 10 s is 200/s: against 100/s, (200 - 100) / 100 * 10 s.
        assert_eq!(r.throttle_ms(&W, 100.0, 0), 10_000);
        assert_eq!(r.throttle_ms(&W, 200.0, 0), 0);
        // A zero quota waits out the windows rather than dividing by zero.
        assert_eq!(r.throttle_ms(&W, 0.0, 0), 10_000);
        // Once that burst's window has aged out, nothing is throttled.
        assert_eq!(r.throttle_ms(&W, 100.0, 11_000), 0);
    }

    fn quotas(alterations: &[QuotaAlteration]) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        let (records, results) = alter_client_quotas(&q, alterations);
        assert!(results.iter().all(Result::is_ok));
        for r in &records {
            if let MetadataRecord::ClientQuotaSet { entity, key, value } = r {
                q.apply(entity, key, *value);
            }
        }
        q
    }

    #[test]
    fn clients_under_one_user_quota_share_its_rate() {
        let q = quotas(&[QuotaAlteration {
            entity: vec![("user".into(), Some("alice".into()))],
            ops: vec![("producer_byte_rate".into(), Some(1000.0))],
        }]);
        let rates = ClientQuotaRates::new(W);
        // 5,000 bytes over the 10 s minimum span is 500/s: fine.
        assert_eq!(
            rates.record(&q, QuotaKind::Produce, "alice", "a", 5000.0, 0),
            0
        );
        // Another client of alice's takes the shared rate to 1500/s.
        assert_eq!(
            rates.record(&q, QuotaKind::Produce, "alice", "b", 10_000.0, 0),
            5000
        );
        let usage = rates.snapshot();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            (usage[0].kind, usage[0].user.as_str(), usage[0].throttled_ms),
            (QuotaKind::Produce, "alice", 5000)
        );
        // Bob has no quota; fetches are not limited.
        assert_eq!(rates.record(&q, QuotaKind::Produce, "bob", "a", 1e9, 0), 0);
        assert_eq!(rates.record(&q, QuotaKind::Fetch, "alice", "a", 1e9, 0), 0);
        // Taking the bytes back undoes the throttle.
        rates.unrecord(&q, QuotaKind::Produce, "alice", "b", 10_000.0, 0);
        assert_eq!(
            rates.record(&q, QuotaKind::Produce, "alice", "b", 0.0, 0),
            0
        );
        assert_eq!(
            rates.max_in_window(&q, QuotaKind::Produce, "alice", "x"),
            Some(10_000.0)
        );
        assert_eq!(
            rates.max_in_window(&q, QuotaKind::Produce, "bob", "x"),
            None
        );
    }

    #[test]
    fn request_time_throttling_is_bounded_to_one_window() {
        let q = quotas(&[QuotaAlteration {
            entity: vec![("client-id".into(), None)],
            ops: vec![("request_percentage".into(), Some(1.0))],
        }]);
        let rates = ClientQuotaRates::new(W);
        let busy = thread_time_percent(Duration::from_secs(5));
        assert_eq!(
            rates.record(&q, QuotaKind::Request, "u", "c", busy, 0),
            1000
        );
    }
}
