//! The log cleaner's schedule: every `log.cleaner.backoff.ms`, each partition of a
//! topic with `compact` in its `cleanup.policy` gets a pass if it is due one (see
//! `brook_log`'s `clean` module), on `log.cleaner.threads` blocking tasks that share the
//! partitions between them; `__consumer_offsets` and `__transaction_state` included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::replicas::Replicas;

/// Bytes per offset-map entry, as Kafka counts `log.cleaner.dedupe.buffer.size`.
const MAP_ENTRY_BYTES: i64 = 24;

pub async fn run(
    replicas: Arc<Replicas>,
    settings: Arc<BrokerSettings>,
    mut shutdown: watch::Receiver<bool>,
) {
    if !settings.log_cleaner_enable {
        return;
    }
    let threads = settings.log_cleaner_threads.clamp(1, 64) as usize;
    let backoff = Duration::from_millis(settings.log_cleaner_backoff_ms.max(100) as u64);
    let stop = Arc::new(AtomicBool::new(false));
    let mut every = tokio::time::interval(backoff);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = shutdown.changed() => break,
        }
        let passes: Vec<_> = (0..threads)
            .map(|thread| {
                let (replicas, settings, stop) = (replicas.clone(), settings.clone(), stop.clone());
                tokio::task::spawn_blocking(move || {
                    clean_share(&replicas, &settings, &stop, thread, threads)
                })
            })
            .collect();
        let all = futures_util::future::join_all(passes);
        tokio::select! {
            _ = all => {}
            _ = shutdown.changed() => {
                // Stop between partitions; a pass under way finishes (its originals
                // stay until it installs, so stopping in the middle would be safe too).
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
    }
}

/// Cleans the compacted partitions of share `thread` of `threads`.
fn clean_share(
    replicas: &Replicas,
    settings: &BrokerSettings,
    stop: &AtomicBool,
    thread: usize,
    threads: usize,
) {
    let partitions = replicas.all();
    for (i, p) in partitions.iter().enumerate() {
        if i % threads != thread || stop.load(Ordering::Relaxed) {
            continue;
        }
        let topic_config = p.config();
        if !topic_config.compacted {
            continue;
        }
        let mut config = topic_config.cleaner.clone();
        config.max_map_entries =
            (settings.log_cleaner_dedupe_buffer_size / MAP_ENTRY_BYTES).max(1024) as usize;
        config.io_max_bytes_per_second =
            u64::try_from(settings.log_cleaner_io_max_bytes_per_second).unwrap_or(0);
        let started = std::time::Instant::now();
        match p.clean(&config, now_ms()) {
            Ok(None) => {}
            Ok(Some(stats)) => tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                topic = %p.topic,
                partition = p.index,
                segments = stats.segments,
                records_removed = stats.records_removed,
                bytes_before = stats.bytes_before,
                bytes_after = stats.bytes_after,
                cleaned_up_to = stats.end_offset,
                "compacted log"
            ),
            Err(e) => tracing::warn!(
                topic = %p.topic,
                partition = p.index,
                error = %e,
                "log not compacted (left as it was)"
            ),
        }
    }
}
