//! Connection creation rates (KIP-612), as Kafka's `ConnectionQuotas` enforces them.
//!
//! Two limits, each a sampled rate like the client quotas' (`quota.window.num` windows
//! of `quota.window.size.seconds`):
//! - `max.connection.creation.rate`, for the client listeners together: past it, the
//!   listener accepts its next connection only after the delay that brings the rate
//!   back (at most one window), so a burst of connections is spread out, not refused;
//! - the `connection_creation_rate` quota of the client's IP (or the IPs' default), set
//!   with AlterClientQuotas: a connection past it is not served; it is held open for
//!   the throttle time and then closed, so a client reconnecting in a loop is slowed
//!   down rather than spinning. It then does not count against either rate.
//!
//! A listener may also have a rate of its own
//! (`listener.name.<l>.max.connection.creation.rate`): it gets its own `ConnectionRates`
//! and uses its broker-wide rate. The controller listener is exempt.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use parking_lot::Mutex;

use crate::client_quotas::{QuotaWindows, Rate};

/// The most per-IP rates kept at once; idle ones are dropped first, then all.
const MAX_IP_RATES: usize = 100_000;

/// The connection creation rates of the listeners that share them.
pub struct ConnectionRates {
    windows: QuotaWindows,
    epoch: Instant,
    inner: Mutex<Rates>,
}

#[derive(Default)]
struct Rates {
    broker: Rate,
    per_ip: HashMap<IpAddr, Rate>,
}

impl ConnectionRates {
    pub fn new(windows: QuotaWindows) -> Self {
        ConnectionRates {
            windows,
            epoch: Instant::now(),
            inner: Mutex::default(),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The longest a connection is delayed or held (Kafka: one quota window).
    fn bound(&self, throttle_ms: u64) -> u64 {
        throttle_ms.min(self.windows.window.as_millis() as u64)
    }

    /// Counts a new connection against `max.connection.creation.rate` (`None`: no
    /// limit); how long to wait before serving it, in ms.
    pub fn record_broker(&self, limit: Option<f64>, now_ms: u64) -> u64 {
        let Some(limit) = limit else {
            return 0;
        };
        let mut rates = self.inner.lock();
        rates.broker.record(&self.windows, 1.0, now_ms);
        let throttle = rates.broker.throttle_ms(&self.windows, limit, now_ms);
        self.bound(throttle)
    }

    /// Takes back a connection [`ConnectionRates::record_broker`] counted (it was not
    /// served).
    pub fn forget_one(&self, now_ms: u64) {
        self.inner.lock().broker.record(&self.windows, -1.0, now_ms);
    }

    /// Counts a new connection from `ip` against its `connection_creation_rate` quota
    /// (`None`: none). `Some(ms)`: the connection is over the quota, so it is not
    /// served; close it after that long. It is then taken back from both rates.
    pub fn record_ip(
        &self,
        ip: IpAddr,
        limit: Option<f64>,
        broker_limited: bool,
        now_ms: u64,
    ) -> Option<u64> {
        let limit = limit?;
        let mut rates = self.inner.lock();
        if !rates.per_ip.contains_key(&ip) && rates.per_ip.len() >= MAX_IP_RATES {
            let span = self.windows.window.as_millis() as u64 * u64::from(self.windows.samples);
            rates
                .per_ip
                .retain(|_, r| now_ms.saturating_sub(r.last_record_ms()) < span);
            if rates.per_ip.len() >= MAX_IP_RATES {
                tracing::warn!(
                    rates = rates.per_ip.len(),
                    "connection creation rates: too many addresses measured at once; resetting them"
                );
                rates.per_ip.clear();
            }
        }
        let rate = rates.per_ip.entry(ip).or_default();
        rate.record(&self.windows, 1.0, now_ms);
        let throttle = rate.throttle_ms(&self.windows, limit, now_ms);
        if throttle == 0 {
            return None;
        }
        rate.record(&self.windows, -1.0, now_ms);
        if broker_limited {
            rates.broker.record(&self.windows, -1.0, now_ms);
        }
        Some(self.bound(throttle))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const W: QuotaWindows = QuotaWindows {
        window: Duration::from_secs(1),
        samples: 2,
    };

    #[test]
    fn the_broker_rate_delays_connections_by_at_most_a_window() {
        let r = ConnectionRates::new(W);
        // 5 per second, judged over at least one window: the 6th within it waits.
        for _ in 0..5 {
            assert_eq!(r.record_broker(Some(5.0), 0), 0);
        }
        assert_eq!(r.record_broker(Some(5.0), 0), 200);
        // However far over, the delay is bounded to one window.
        for _ in 0..100 {
            r.record_broker(Some(5.0), 0);
        }
        assert_eq!(r.record_broker(Some(5.0), 0), 1000);
        // No limit: nothing recorded, no delay.
        assert_eq!(r.record_broker(None, 0), 0);
    }

    #[test]
    fn an_ip_over_its_quota_is_closed_and_not_counted() {
        let r = ConnectionRates::new(W);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(r.record_ip(a, Some(3.0), false, 0), None);
        }
        assert_eq!(r.record_ip(a, Some(3.0), false, 0), Some(333));
        // Refused connections are taken back: the next is judged the same.
        assert_eq!(r.record_ip(a, Some(3.0), false, 0), Some(333));
        // Another address has its own rate.
        assert_eq!(r.record_ip(b, Some(3.0), false, 0), None);
        // No quota: never refused.
        assert_eq!(r.record_ip(a, None, false, 0), None);
        // Two windows later the rate has come down.
        assert_eq!(r.record_ip(a, Some(3.0), false, 2_500), None);
    }

    #[test]
    fn a_refused_connection_is_taken_back_from_the_broker_rate() {
        let r = ConnectionRates::new(W);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(r.record_broker(Some(2.0), 0), 0);
        assert_eq!(r.record_ip(a, Some(1.0), true, 0), None);
        // The second from `a` is refused, and does not count against the broker.
        assert_eq!(r.record_broker(Some(2.0), 0), 0);
        assert!(r.record_ip(a, Some(1.0), true, 0).is_some());
        assert_eq!(r.record_broker(Some(2.0), 0), 0);
        assert_eq!(r.record_broker(Some(2.0), 0), 500);
    }
}
