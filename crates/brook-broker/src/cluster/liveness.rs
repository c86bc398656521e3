//! Liveness: every broker heartbeats to the controller and serves partitions only once
//! its metadata has caught up with the controller's (Kafka brokers start fenced); the
//! controller fences brokers that stop heartbeating and moves leaderships back to
//! preferred replicas now and then.

use std::sync::Arc;
use std::time::Duration;

use brook_meta::MetadataImage;
use tokio::sync::watch;

use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::controller::{ControllerReply, ControllerRequest};
use crate::controller_client::ControllerClient;
use crate::metadata::MetadataView;

/// Who this broker is to the controller.
#[derive(Debug, Clone)]
pub struct Registration {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    /// Every client listener's advertised endpoint.
    pub listeners: Vec<brook_meta::BrokerEndpoint>,
    /// This process among the broker's lives (Kafka's broker epoch): registered by the
    /// heartbeats, carried by ISR changes so the controller refuses a dead process's.
    pub incarnation: u64,
    /// Its `broker.rack`.
    pub rack: Option<String>,
}

/// Whether a broker whose heartbeat was answered with `controller_records` may serve:
/// its image holds everything the controller had applied, and shows it live.
pub fn caught_up(image: &MetadataImage, controller_records: u64, node_id: i32) -> bool {
    image.record_count >= controller_records && image.is_live(node_id)
}

/// Heartbeats every `broker.heartbeat.interval.ms`; sets `ready` once caught up.
pub async fn heartbeat_loop(
    controller: Arc<ControllerClient>,
    metadata: MetadataView,
    me: Registration,
    settings: Arc<BrokerSettings>,
    ready: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(settings.broker_heartbeat_interval_ms.max(10) as u64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let req = ControllerRequest::BrokerHeartbeat {
            id: me.node_id,
            host: me.host.clone(),
            port: me.port,
            incarnation: me.incarnation,
            listeners: me.listeners.clone(),
            rack: me.rack.clone(),
        };
        match controller.request(req).await {
            Ok(ControllerReply::Heartbeat { metadata_records }) => {
                if !*ready.borrow()
                    && caught_up(&metadata.committed(), metadata_records, me.node_id)
                {
                    tracing::info!(
                        node = me.node_id,
                        "caught up with the controller; serving partitions"
                    );
                    ready.send_replace(true);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "heartbeat to the controller failed"),
        }
    }
}

/// On the quorum leader: fence brokers that stopped heartbeating, and move leaderships
/// back to preferred replicas every `leader.imbalance.check.interval.seconds`.
pub async fn controller_loop(
    controller: Arc<ControllerClient>,
    node_id: i32,
    settings: Arc<BrokerSettings>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(quorum) = controller.quorum().cloned() else {
        return;
    };
    let session_ms = settings.broker_session_timeout_ms.max(100);
    let rebalance = settings.auto_leader_rebalance_enable;
    let rebalance_every_ms = settings.leader_imbalance_check_interval_seconds.max(1) * 1000;
    let mut last_rebalance = now_ms();
    let mut was_controller = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        if !quorum.is_leader() {
            was_controller = false;
            continue;
        }
        let now = now_ms();
        let image = quorum.image();
        if !was_controller {
            was_controller = true;
            // A new controller gives every broker a full session before fencing it.
            controller.reset_liveness(&image, now);
            tracing::info!(node = node_id, "became the active controller");
        }
        for id in controller.expired_brokers(&image, now, session_ms) {
            tracing::warn!(
                broker = id,
                session_timeout_ms = session_ms,
                "fencing broker that stopped heartbeating"
            );
            if let Err(e) = controller
                .request(ControllerRequest::FenceBroker { id })
                .await
            {
                tracing::warn!(broker = id, error = %e, "fencing failed");
            }
        }
        if rebalance && now - last_rebalance >= rebalance_every_ms {
            last_rebalance = now;
            if let Err(e) = controller
                .request(ControllerRequest::ElectPreferred { partitions: None })
                .await
            {
                tracing::warn!(error = %e, "preferred leader election failed");
            }
        }
    }
}
