//! Controller mutation quotas (KIP-599), as Kafka's `ControllerMutationQuotaManager`
//! enforces them on the controller.
//!
//! CreateTopics, CreatePartitions and DeleteTopics are charged a token per partition
//! they create or delete, against the `controller_mutation_rate` quota of the client's
//! `(user, client-id)` (resolved like every client quota). Each quota has a token bucket
//! that refills at the quota's rate up to a burst of `quota.window.num` ×
//! `quota.window.size.seconds` × the quota, and starts full. A request may take the
//! bucket below zero; while it is below zero:
//! - clients that know KIP-599 (CreateTopics v6+, DeleteTopics v5+, CreatePartitions
//!   v3+) are refused each further topic with THROTTLING_QUOTA_EXCEEDED, and told how
//!   long the bucket takes to come back to zero (`throttle_time_ms`);
//! - older clients are served, and their response is throttled for that long.
//!
//! The buckets live on the controller, so the quota holds across the cluster: every
//! broker forwards these requests there.

use std::collections::HashMap;
use std::time::Instant;

use brook_meta::{ClientQuotas, QuotaKind};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::client_quotas::QuotaWindows;

/// Whom a mutating controller request is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MutationQuota {
    pub user: String,
    pub client_id: String,
    /// A request past the quota is refused (the client's version knows
    /// THROTTLING_QUOTA_EXCEEDED), rather than served and throttled.
    pub strict: bool,
}

impl MutationQuota {
    /// A request's client, strict from `strict_since` (Kafka's `newQuotaFor`).
    pub fn of(user: &str, client_id: &str, version: i16, strict_since: i16) -> Self {
        MutationQuota {
            user: user.to_string(),
            client_id: client_id.to_string(),
            strict: version >= strict_since,
        }
    }
}

/// What charging a mutation came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The mutation goes ahead; its response is throttled for this long (ms; 0: not).
    Allowed { throttle_ms: u64 },
    /// The quota was already exhausted: the mutation is refused with
    /// THROTTLING_QUOTA_EXCEEDED, and the client should wait this long (ms).
    Refused { throttle_ms: u64 },
}

/// Kafka's `TokenBucket`.
#[derive(Debug, Clone, Copy)]
struct TokenBucket {
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    fn refill(&mut self, rate: f64, burst: f64, now_ms: u64) {
        let elapsed_s = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.tokens = (self.tokens + rate * elapsed_s).min(burst);
        self.last_ms = self.last_ms.max(now_ms);
    }

    /// How long until the bucket is back at zero, in ms (0: it is not below).
    fn throttle_ms(&self, rate: f64) -> u64 {
        if self.tokens >= 0.0 {
            return 0;
        }
        if rate <= 0.0 {
            return i32::MAX as u64;
        }
        (-self.tokens / rate * 1000.0).round().min(i32::MAX as f64) as u64
    }
}

/// The most buckets kept at once (one per client a quota covers). A full bucket is
/// the same as none, so full ones are dropped first; past this all are reset.
const MAX_BUCKETS: usize = 100_000;

/// The token buckets of every controller mutation quota in use.
pub struct MutationBuckets {
    windows: QuotaWindows,
    epoch: Instant,
    buckets: Mutex<HashMap<(String, String), TokenBucket>>,
}

impl MutationBuckets {
    pub fn new(windows: QuotaWindows) -> Self {
        MutationBuckets {
            windows,
            epoch: Instant::now(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Charges `permits` partition mutations to `who` at `now_ms`.
    pub fn charge(
        &self,
        quotas: &ClientQuotas,
        who: &MutationQuota,
        permits: f64,
        now_ms: u64,
    ) -> Charge {
        let Some(quota) = quotas.resolve(QuotaKind::ControllerMutation, &who.user, &who.client_id)
        else {
            return Charge::Allowed { throttle_ms: 0 };
        };
        let rate = quota.limit;
        let burst = f64::from(self.windows.samples) * self.windows.window.as_secs_f64() * rate;
        let mut buckets = self.buckets.lock();
        let key = (quota.user, quota.client_id);
        if !buckets.contains_key(&key) && buckets.len() >= MAX_BUCKETS {
            // A bucket back at its burst holds nothing a new one would not.
            buckets.retain(|_, b| {
                b.refill(rate, burst, now_ms);
                b.tokens < burst
            });
            if buckets.len() >= MAX_BUCKETS {
                tracing::warn!(
                    buckets = buckets.len(),
                    "controller mutation quotas: too many clients measured at once; resetting them"
                );
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key).or_insert(TokenBucket {
            tokens: burst,
            last_ms: now_ms,
        });
        bucket.refill(rate, burst, now_ms);
        if who.strict && bucket.tokens < 0.0 {
            return Charge::Refused {
                throttle_ms: bucket.throttle_ms(rate),
            };
        }
        bucket.tokens = (bucket.tokens - permits).min(burst);
        Charge::Allowed {
            // Kafka's strict quota throttles only the refused; the permissive one
            // throttles whatever takes the bucket below zero.
            throttle_ms: if who.strict {
                0
            } else {
                bucket.throttle_ms(rate)
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use brook_meta::{alter_client_quotas, MetadataRecord, QuotaAlteration};

    const W: QuotaWindows = QuotaWindows {
        window: Duration::from_secs(1),
        samples: 11,
    };

    fn quotas(entity: Vec<(String, Option<String>)>, rate: f64) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        let alteration = QuotaAlteration {
            entity,
            ops: vec![("controller_mutation_rate".into(), Some(rate))],
        };
        let (records, results) = alter_client_quotas(&q, &[alteration]);
        assert!(results.iter().all(Result::is_ok));
        for r in &records {
            if let MetadataRecord::ClientQuotaSet { entity, key, value } = r {
                q.apply(entity, key, *value);
            }
        }
        q
    }

    fn who(user: &str, client_id: &str, strict: bool) -> MutationQuota {
        MutationQuota {
            user: user.into(),
            client_id: client_id.into(),
            strict,
        }
    }

    #[test]
    fn a_strict_quota_lets_a_burst_through_then_refuses_until_refilled() {
        let q = quotas(vec![("user".into(), Some("alice".into()))], 1.0);
        let b = MutationBuckets::new(W);
        let alice = who("alice", "admin", true);
        // The bucket starts full: 11 tokens. A 20-partition topic goes through and
        // leaves it at -9.
        assert_eq!(
            b.charge(&q, &alice, 20.0, 0),
            Charge::Allowed { throttle_ms: 0 }
        );
        // The next is refused: 9 tokens at 1/s is 9 s away.
        assert_eq!(
            b.charge(&q, &alice, 1.0, 0),
            Charge::Refused { throttle_ms: 9000 }
        );
        // Refused mutations cost nothing: 4 s later, 5 s remain.
        assert_eq!(
            b.charge(&q, &alice, 1.0, 4000),
            Charge::Refused { throttle_ms: 5000 }
        );
        // At zero the bucket is not below: allowed again.
        assert_eq!(
            b.charge(&q, &alice, 1.0, 9000),
            Charge::Allowed { throttle_ms: 0 }
        );
        // A client without a quota is never charged.
        let bob = who("bob", "admin", true);
        for _ in 0..100 {
            assert_eq!(
                b.charge(&q, &bob, 100.0, 9000),
                Charge::Allowed { throttle_ms: 0 }
            );
        }
    }

    #[test]
    fn a_permissive_quota_serves_and_throttles() {
        let q = quotas(vec![("client-id".into(), None)], 2.0);
        let b = MutationBuckets::new(W);
        let old = who("u", "old-admin", false);
        // Burst 22: 30 partitions leave -8, 4 s at 2/s.
        assert_eq!(
            b.charge(&q, &old, 30.0, 0),
            Charge::Allowed { throttle_ms: 4000 }
        );
        assert_eq!(
            b.charge(&q, &old, 2.0, 0),
            Charge::Allowed { throttle_ms: 5000 }
        );
        // Refilling stops at the burst.
        assert_eq!(
            b.charge(&q, &old, 0.0, 1_000_000),
            Charge::Allowed { throttle_ms: 0 }
        );
        assert_eq!(
            b.charge(&q, &old, 22.0, 1_000_000),
            Charge::Allowed { throttle_ms: 0 }
        );
        assert_eq!(
            b.charge(&q, &old, 1.0, 1_000_000),
            Charge::Allowed { throttle_ms: 500 }
        );
    }

    #[test]
    fn clients_under_a_default_client_id_quota_have_buckets_of_their_own() {
        let q = quotas(vec![("client-id".into(), None)], 1.0);
        let b = MutationBuckets::new(W);
        assert_eq!(
            b.charge(&q, &who("u", "a", true), 12.0, 0),
            Charge::Allowed { throttle_ms: 0 }
        );
        assert!(matches!(
            b.charge(&q, &who("u", "a", true), 1.0, 0),
            Charge::Refused { .. }
        ));
        assert_eq!(
            b.charge(&q, &who("u", "b", true), 1.0, 0),
            Charge::Allowed { throttle_ms: 0 }
        );
    }

    #[test]
    fn a_zero_quota_allows_one_mutation_then_none() {
        let q = quotas(vec![("user".into(), None)], 0.0);
        let b = MutationBuckets::new(W);
        let u = who("u", "c", true);
        assert_eq!(b.charge(&q, &u, 1.0, 0), Charge::Allowed { throttle_ms: 0 });
        assert_eq!(
            b.charge(&q, &u, 1.0, 60_000),
            Charge::Refused {
                throttle_ms: i32::MAX as u64
            }
        );
    }
}
