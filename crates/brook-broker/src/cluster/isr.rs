//! The leader's side of ISR maintenance: every so often each partition this broker
//! leads decides (`Partition::isr_change`) whether to ask the controller to shrink or
//! expand its ISR, and treats the answer as [`isr_outcome`] says.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::controller::ControllerRequest;
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;
use crate::partition::IsrOutcome;
use crate::replicas::Replicas;

/// How often leaders check their ISR, given `replica.lag.time.max.ms`.
pub fn check_interval_ms(max_lag_ms: i64) -> i64 {
    (max_lag_ms / 4).clamp(50, 1000)
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let image = metadata.committed();
        let now = now_ms();
        for p in replicas.all() {
            let Some(change) = p.isr_change(now, max_lag_ms, |r| image.is_live(r)) else {
                continue;
            };
            let isr = change.isr;
            let isr_before = image
                .topic(&p.topic)
                .and_then(|t| t.partitions.get(p.index as usize))
                .map_or(0, |q| q.isr.len());
            tracing::info!(topic = %p.topic, partition = p.index, ?isr, "asking the controller to change the ISR");
            let req = ControllerRequest::AlterIsr {
                topic: p.topic.to_string(),
                partition: p.index,
                leader: replicas.node_id(),
                incarnation,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                isr: isr.clone(),
            };
            let controller = controller.clone();
            let replicas = replicas.clone();
            tokio::spawn(async move {
                let outcome = match controller.request(req).await {
                    Ok(_) => {
                        let stats = replicas.stats();
                        match isr.len().cmp(&isr_before) {
                            std::cmp::Ordering::Less => stats.isr_shrinks.inc(),
                            std::cmp::Ordering::Greater => stats.isr_expands.inc(),
                            std::cmp::Ordering::Equal => 0,
                        };
                        // Let metadata show it first, so the next check starts from the
                        // new ISR.
                        controller.settle_isr(&p.topic, p.index, &isr).await;
                        IsrOutcome::Accepted
                    }
                    Err(e) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "ISR change refused");
                        isr_outcome(e.code)
                    }
                };
                p.isr_change_done(&isr, outcome);
            });
        }
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
