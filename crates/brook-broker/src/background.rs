//! The broker's periodic loops, spawned by `server`: log maintenance (time-based
//! flushes and rolls, retention) and the coordinators' timers (group sessions and
//! rebalances, transaction timeouts, then the release of what departed share group
//! members held).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::router::Services;

/// How often flush.ms and segment.ms deadlines are checked.
const LOG_TICK_INTERVAL: Duration = Duration::from_millis(100);
/// At most this many partitions' periodic log work per tick (the rest wait for the
/// next), so one tick never holds its blocking thread for long.
const MAINTENANCE_PER_TICK: usize = 2_000;
/// When log maintenance failed, it is tried again this much later.
const MAINTENANCE_RETRY_MS: i64 = 1_000;

/// How often the coordinators' timers (group sessions and rebalances, transaction
/// timeouts) are checked: their own loop, so a flush or retention pass over many
/// partitions never makes a session expire late.
const COORDINATOR_TICK_INTERVAL: Duration = Duration::from_millis(20);

pub(crate) async fn coordinator_timers(
    services: Arc<Services>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(COORDINATOR_TICK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let (groups, txns) = (services.groups.clone(), services.txns.clone());
        // Records they write go through the partition's append (and maybe its fsync).
        let txn_tick = tokio::task::spawn_blocking(move || {
            groups.tick();
            txns.tick()
        })
        .await;
        if let Ok(Some(outcome)) = txn_tick {
            tokio::spawn(services.txns.clone().after_tick(outcome));
        }
        // Share group members whose session expired: release what they hold.
        crate::handlers::share_group::release_departed(&services.groups, &services.shares).await;
    }
}

/// Time-based flushes and rolls (`flush.ms`, `segment.ms`) and retention: disk work,
/// so on the blocking pool.
pub(crate) async fn maintenance_loop(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let settings = &services.settings;
    let retention_every =
        Duration::from_millis(settings.log_retention_check_interval_ms.max(1) as u64);
    let mut tick = tokio::time::interval(LOG_TICK_INTERVAL);
    let mut retention = tokio::time::interval(retention_every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                // Only the partitions whose deadline came (see `maintenance`).
                let replicas = services.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let now = now_ms();
                    for p in replicas.maintenance_due(now, MAINTENANCE_PER_TICK) {
                        let next = p.maintain(now).unwrap_or_else(|e| {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed");
                            Some(now + MAINTENANCE_RETRY_MS)
                        });
                        replicas.maintained(&p, next);
                    }
                }).await;
            }
            _ = retention.tick() => {
                let replicas = services.replicas.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for p in replicas.all() {
                        match p.with_log(|log| log.enforce_retention(now_ms())) {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                            Err(e) => tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
                        }
                    }
                }).await;
            }
            _ = shutdown.changed() => break,
        }
    }
}
