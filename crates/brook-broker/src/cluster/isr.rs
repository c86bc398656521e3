//! The leader's side of ISR maintenance: every so often each partition this broker
//! leads decides (`Partition::isr_change`) whether to ask the controller to shrink or
//! expand its ISR; the changes due are sent together, as Kafka's AlterPartition
//! manager does (one request for many partitions, at most one request in flight, the
//! controller committing them together), and each partition's answer is treated as
//! [`isr_outcome`] says.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::controller::{ControllerReply, ControllerRequest, IsrItem};
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;
use crate::partition::{IsrOutcome, Partition};
use crate::replicas::Replicas;

/// At most this many partitions' ISR changes in one request to the controller; the
/// rest wait for the next check.
pub const MAX_ISR_BATCH: usize = 10_000;
/// And at most about this many bytes of them (topic names can be long), well within
/// one metadata-log append even when each change also finishes a reassignment.
const MAX_ISR_BATCH_BYTES: usize = 4 << 20;

/// About what one change weighs in the request and in the metadata log (JSON).
fn weight(item: &IsrItem) -> usize {
    item.topic.len() + 12 * item.isr.len() + 96
}

/// How often leaders check their ISR, given `replica.lag.time.max.ms`.
pub fn check_interval_ms(max_lag_ms: i64) -> i64 {
    (max_lag_ms / 4).clamp(50, 1000)
}

/// One partition's change in the request under way.
struct Pending {
    partition: Arc<Partition>,
    item: IsrItem,
    /// The ISR's size in this broker's image when the change was computed.
    isr_before: usize,
}

/// On every broker: ask the controller to shrink or expand the ISR of partitions it leads.
pub async fn isr_loop(
    replicas: Arc<Replicas>,
    controller: Arc<ControllerClient>,
    metadata: MetadataView,
    max_lag_ms: i64,
    incarnation: u64,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_lag_ms = max_lag_ms.max(1);
    let mut tick =
        tokio::time::interval(Duration::from_millis(check_interval_ms(max_lag_ms) as u64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let image = metadata.committed();
        let now = now_ms();
        let mut batch = Vec::new();
        let mut bytes = 0;
        for p in replicas.all() {
            if batch.len() >= MAX_ISR_BATCH || bytes >= MAX_ISR_BATCH_BYTES {
                break;
            }
            let Some(change) = p.isr_change(now, max_lag_ms, |r| image.is_live(r)) else {
                continue;
            };
            let isr_before = image
                .topic(&p.topic)
                .and_then(|t| t.partitions.get(p.index as usize))
                .map_or(0, |q| q.isr.len());
            tracing::debug!(topic = %p.topic, partition = p.index, isr = ?change.isr, "asking the controller to change the ISR");
            let item = IsrItem {
                topic: p.topic.to_string(),
                partition: p.index,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: change.isr,
            };
            bytes += weight(&item);
            batch.push(Pending {
                item,
                partition: p,
                isr_before,
            });
        }
        if batch.is_empty() {
            continue;
        }
        // The next check waits for this request's answer: one in flight at a time.
        tokio::select! {
            _ = alter_isr(&replicas, &controller, incarnation, batch) => {}
            _ = shutdown.changed() => break,
        }
    }
}

/// Sends `batch` to the controller in one request and reports each partition's
/// outcome to it.
async fn alter_isr(
    replicas: &Replicas,
    controller: &ControllerClient,
    incarnation: u64,
    batch: Vec<Pending>,
) {
    match &batch[..] {
        [one] => {
            tracing::info!(topic = %one.item.topic, partition = one.item.partition, isr = ?one.item.isr, "asking the controller to change the ISR")
        }
        _ => tracing::info!(
            partitions = batch.len(),
            "asking the controller to change the ISR of partitions"
        ),
    }
    let req = ControllerRequest::AlterIsr {
        leader: replicas.node_id(),
        incarnation,
        partitions: batch.iter().map(|p| p.item.clone()).collect(),
    };
    let results = match controller.request(req).await {
        Ok(ControllerReply::IsrAltered {
            results,
            metadata_records,
        }) if results.len() == batch.len() => {
            if results.iter().any(|(code, _)| *code == 0) {
                // Let metadata show the accepted changes first, so the next check starts
                // from the new ISRs.
                controller.settle_records(metadata_records).await;
            }
            results
        }
        other => {
            let (code, message) = match other {
                Ok(reply) => (
                    ResponseError::UnknownServerError.code(),
                    format!("unexpected controller reply {reply:?}"),
                ),
                Err(e) => (e.code, e.message),
            };
            tracing::warn!(partitions = batch.len(), error = %message, "ISR change request failed");
            vec![(code, Some(message)); batch.len()]
        }
    };
    let stats = replicas.stats();
    let mut refused = 0;
    for (p, (code, message)) in batch.iter().zip(results) {
        let outcome = if code == 0 {
            match p.item.isr.len().cmp(&p.isr_before) {
                std::cmp::Ordering::Less => stats.isr_shrinks.inc(),
                std::cmp::Ordering::Greater => stats.isr_expands.inc(),
                std::cmp::Ordering::Equal => 0,
            };
            IsrOutcome::Accepted
        } else {
            refused += 1;
            tracing::debug!(topic = %p.item.topic, partition = p.item.partition, error = message.as_deref().unwrap_or(""), "ISR change refused");
            isr_outcome(code)
        };
        p.partition.isr_change_done(&p.item.isr, outcome);
    }
    if refused > 0 {
        tracing::warn!(
            partitions = batch.len(),
            refused,
            "the controller refused ISR changes"
        );
    }
}

/// How a leader must treat a refused ISR change (see [`IsrOutcome`]).
pub fn isr_outcome(code: i16) -> IsrOutcome {
    let is = |e: ResponseError| e.code() == code;
    if is(ResponseError::InvalidUpdateVersion)
        || is(ResponseError::StaleBrokerEpoch)
        || is(ResponseError::FencedLeaderEpoch)
        || is(ResponseError::NotLeaderOrFollower)
    {
        IsrOutcome::Outdated
    } else if is(ResponseError::IneligibleReplica)
        || is(ResponseError::InvalidRequest)
        || is(ResponseError::UnknownTopicOrPartition)
    {
        IsrOutcome::Refused
    } else {
        IsrOutcome::Unknown
    }
}
