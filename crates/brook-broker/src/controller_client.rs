//! `ControllerClient`: runs a controller request where the controller is (in place for
//! a single broker, on this node when it leads the metadata quorum, forwarded to the
//! quorum leader otherwise, retrying while there is none), then waits on the
//! [`MetadataView`] for the applied image that shows the result: no polling.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use brook_meta::{FileMetadataLog, MetadataImage, MetadataRecord};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;
use tokio::sync::watch;
use uuid::Uuid;

use crate::client_quotas::QuotaWindows;
use crate::clock::now_ms;
use crate::config::BrokerSettings;
use crate::controller::{
    decide, mutation_charge, new_cluster_id, ControllerReply, ControllerRequest,
};
use crate::error::{unknown_topic, ApiError};
use crate::metadata::{ImageWatch, MetadataView};
use crate::mutation_quotas::{Charge, MutationBuckets, MutationQuota};
use crate::peer::PeerNet;

/// How long a request forwarded to the controller may take, retries included.
pub const CONTROLLER_DEADLINE: Duration = Duration::from_secs(5);
/// How long a change waits to show in this broker's applied image.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(3);
/// A quorum leader cut off from the others waits forever in openraft 0.9: bound it.
const QUORUM_COMMIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the metadata log lives: one file for a single broker, or the Raft quorum.
pub enum MetaStore {
    File {
        log: Arc<Mutex<FileMetadataLog>>,
        committed: watch::Sender<Arc<MetadataImage>>,
    },
    Raft(Arc<brook_raft::Quorum>),
}

impl MetaStore {
    /// Opens the single-node metadata file (in memory for `--memory`), creating the
    /// cluster id on first start.
    pub fn open_file(
        dir: &std::path::Path,
        node_id: i32,
        persistent: bool,
    ) -> Result<Self, brook_meta::MetaError> {
        let mut log = if persistent {
            FileMetadataLog::open(&dir.join("__metadata.log"), node_id)?
        } else {
            FileMetadataLog::in_memory(node_id)
        };
        if log.image().cluster_id.is_empty() {
            log.append(&[MetadataRecord::ClusterCreated {
                cluster_id: new_cluster_id(),
            }])?;
        }
        let image = log.image_arc();
        Ok(MetaStore::File {
            log: Arc::new(Mutex::new(log)),
            committed: watch::channel(image).0,
        })
    }

    /// A watch of committed images.
    pub fn subscribe(&self) -> ImageWatch {
        match self {
            MetaStore::File { committed, .. } => committed.subscribe(),
            MetaStore::Raft(q) => q.subscribe(),
        }
    }

    pub fn quorum(&self) -> Option<&Arc<brook_raft::Quorum>> {
        match self {
            MetaStore::File { .. } => None,
            MetaStore::Raft(q) => Some(q),
        }
    }
}

pub struct ControllerClient {
    settings: Arc<BrokerSettings>,
    store: MetaStore,
    metadata: MetadataView,
    peers: Option<Arc<PeerNet>>,
    /// Controller decisions run one at a time, each against the latest image.
    turn: tokio::sync::Mutex<()>,
    /// Controller side: when each broker last heartbeated (ms).
    liveness: Mutex<HashMap<i32, i64>>,
    /// The block of producer ids this broker hands out: `(next, end)`.
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Controller side: the token buckets of controller mutation quotas (KIP-599).
    mutations: Arc<MutationBuckets>,
}

impl ControllerClient {
    pub fn new(
        settings: Arc<BrokerSettings>,
        store: MetaStore,
        metadata: MetadataView,
        peers: Option<Arc<PeerNet>>,
    ) -> Self {
        ControllerClient {
            store,
            metadata,
            peers,
            turn: tokio::sync::Mutex::new(()),
            liveness: Mutex::new(HashMap::new()),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            mutations: Arc::new(MutationBuckets::new(QuotaWindows::of(&settings))),
            settings,
        }
    }

    pub fn quorum(&self) -> Option<&Arc<brook_raft::Quorum>> {
        self.store.quorum()
    }

    /// Runs a controller request wherever the controller is; retries while there is
    /// none, up to [`CONTROLLER_DEADLINE`].
    ///
    /// The whole of it is the calling request's remote time, as Kafka counts a
    /// request forwarded to its controller: the controller's queue and decision, the
    /// quorum's commit, and for a single broker the metadata file's append too (the
    /// broker's controller, not the request's handler, does that work).
    pub async fn request(&self, req: ControllerRequest) -> Result<ControllerReply, ApiError> {
        crate::request_time::waiting_on_others(self.request_at_controller(req)).await
    }

    async fn request_at_controller(
        &self,
        req: ControllerRequest,
    ) -> Result<ControllerReply, ApiError> {
        let quorum = match &self.store {
            MetaStore::File { log, committed } => {
                return self.decide_in_file(log, committed, req).await;
            }
            MetaStore::Raft(q) => q.clone(),
        };
        let deadline = tokio::time::Instant::now() + CONTROLLER_DEADLINE;
        loop {
            let attempt = if quorum.is_leader() {
                self.on_leader(&quorum, &req).await
            } else if let (Some(leader), Some(peers)) = (quorum.leader(), &self.peers) {
                peers.forward(leader as i32, &req).await
            } else {
                Err(None)
            };
            match attempt {
                Ok(reply) => return reply,
                Err(why) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(ApiError::new(
                            ResponseError::RequestTimedOut,
                            format!(
                                "no controller answered within {} s{}",
                                CONTROLLER_DEADLINE.as_secs(),
                                why.map(|w| format!(": {w}")).unwrap_or_default()
                            ),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// A single broker's controller: decide and append to the metadata file (which
    /// fsyncs, so on the blocking pool).
    async fn decide_in_file(
        &self,
        log: &Arc<Mutex<FileMetadataLog>>,
        committed: &watch::Sender<Arc<MetadataImage>>,
        req: ControllerRequest,
    ) -> Result<ControllerReply, ApiError> {
        let _turn = self.turn.lock().await;
        let log = log.clone();
        let settings = self.settings.clone();
        let mutations = self.mutations.clone();
        let (reply, image) = tokio::task::spawn_blocking(move || {
            let mut log = log.lock();
            let (records, reply) = decide_charged(&settings, log.image(), false, &req, &mutations)?;
            if records.is_empty() {
                return Ok::<_, ApiError>((reply, None));
            }
            log.append(&records)?;
            Ok((reply, Some(log.image_arc())))
        })
        .await
        .map_err(|e| ApiError::new(ResponseError::UnknownServerError, e.to_string()))??;
        if let Some(image) = image {
            committed.send_replace(image);
        }
        Ok(reply)
    }

    /// Runs `req` on this node as the quorum leader. `Err` means "try again" (not the
    /// leader any more, or the quorum failed), with why.
    pub async fn on_leader(
        &self,
        quorum: &brook_raft::Quorum,
        req: &ControllerRequest,
    ) -> Result<Result<ControllerReply, ApiError>, Option<String>> {
        if let ControllerRequest::BrokerHeartbeat { id, .. } = req {
            self.liveness.lock().insert(*id, now_ms());
        }
        let _turn = self.turn.lock().await;
        let image = quorum.image();
        let (records, reply) =
            match decide_charged(&self.settings, &image, true, req, &self.mutations) {
                Ok(decided) => decided,
                Err(e) => return Ok(Err(e)),
            };
        if !records.is_empty() {
            // Waiting for the other voters: remote time of the request forwarded here.
            let commit = tokio::time::timeout(QUORUM_COMMIT_TIMEOUT, quorum.append(records));
            match crate::request_time::waiting_on_others(commit).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(Some(e.to_string())),
                Err(_) => return Err(Some("the metadata quorum did not commit within 3 s".into())),
            }
        }
        Ok(Ok(reply))
    }

    /// Controller side: every broker of `image` is given a full session from now (a new
    /// controller does not fence brokers it has not heard from yet).
    pub fn reset_liveness(&self, image: &MetadataImage, now_ms: i64) {
        reset_liveness(image, &mut self.liveness.lock(), now_ms);
    }

    /// Controller side: the brokers whose session expired (see [`expired_brokers`]).
    pub fn expired_brokers(&self, image: &MetadataImage, now_ms: i64, session_ms: i64) -> Vec<i32> {
        expired_brokers(image, &mut self.liveness.lock(), now_ms, session_ms)
    }

    /// Waits until this broker has applied an image satisfying `done`.
    async fn settle(&self, done: impl FnMut(&Arc<MetadataImage>) -> bool) {
        if !self.settle_within(SETTLE_TIMEOUT, done).await {
            tracing::debug!("a metadata change did not show here within 3 s");
        }
    }

    /// Waits up to `timeout` for this broker's applied image to pass `done`; whether
    /// it did.
    pub async fn settle_within(
        &self,
        timeout: Duration,
        done: impl FnMut(&Arc<MetadataImage>) -> bool,
    ) -> bool {
        // Waiting for the controller's change to reach this broker: remote time.
        let applied = self.metadata.wait_applied(timeout, done);
        crate::request_time::waiting_on_others(applied).await
    }

    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<i32>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.create_topic_charged(ControllerRequest::CreateTopic {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
            assignment,
            validate_only,
            quota: None,
        })
        .await
        .0
    }

    /// Creates a topic (`req` is a `CreateTopic`), charged to the client its `quota`
    /// names: the outcome, and how long the client is throttled (ms).
    pub async fn create_topic_charged(&self, req: ControllerRequest) -> Charged<()> {
        let ControllerRequest::CreateTopic { name, .. } = &req else {
            return (Err(unexpected_reply()), 0);
        };
        let name = name.clone();
        let (reply, throttle_ms) = charged(self.request(req).await);
        let result = match reply {
            Ok(ControllerReply::TopicId(id)) => {
                tracing::info!(topic = name, "created topic");
                self.settle(|i| i.topic_by_id(&id).is_some()).await;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        (result, throttle_ms)
    }

    /// Deletes a topic, charged to `quota`'s client (none: not charged).
    pub async fn delete_topic(&self, name: &str, quota: Option<MutationQuota>) -> Charged<Uuid> {
        let (reply, throttle_ms) = charged(
            self.request(ControllerRequest::DeleteTopic {
                name: name.to_string(),
                quota,
            })
            .await,
        );
        let result = match reply {
            Ok(ControllerReply::TopicId(id)) => {
                tracing::info!(topic = name, "deleted topic");
                self.settle(|i| i.topic_by_id(&id).is_none()).await;
                Ok(id)
            }
            Ok(_) => Err(unknown_topic(name)),
            Err(e) => Err(e),
        };
        (result, throttle_ms)
    }

    /// Adds partitions to a topic, up to `total`, charged to `quota`'s client.
    pub async fn create_partitions(
        &self,
        name: &str,
        total: i32,
        assignment: Vec<Vec<i32>>,
        validate_only: bool,
        quota: Option<MutationQuota>,
    ) -> Charged<()> {
        let (reply, throttle_ms) = charged(
            self.request(ControllerRequest::CreatePartitions {
                name: name.to_string(),
                total,
                assignment,
                validate_only,
                quota,
            })
            .await,
        );
        if let Err(e) = reply {
            return (Err(e), throttle_ms);
        }
        if !validate_only {
            self.settle(|i| {
                i.topic(name)
                    .is_some_and(|t| t.partitions.len() as i32 >= total)
            })
            .await;
        }
        (Ok(()), throttle_ms)
    }

    /// Applies topic config changes (`None` removes an override); open partitions take
    /// the new effective config when the change is applied.
    pub async fn alter_topic_configs(
        &self,
        name: &str,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let expected = changes.clone();
        self.request(ControllerRequest::AlterTopicConfigs {
            name: name.to_string(),
            changes,
            validate_only,
        })
        .await?;
        if !validate_only {
            self.settle(|i| {
                i.topic(name)
                    .is_none_or(|t| expected.iter().all(|(k, v)| t.configs.get(k) == v.as_ref()))
            })
            .await;
        }
        Ok(())
    }

    /// Sets or removes dynamic broker configs of `broker` (`None`: the cluster
    /// defaults); returns once this broker has applied them.
    pub async fn alter_broker_configs(
        &self,
        broker: Option<i32>,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let expected = changes.clone();
        self.request(ControllerRequest::AlterBrokerConfigs {
            broker,
            changes,
            validate_only,
        })
        .await?;
        if !validate_only {
            self.settle(|i| {
                let configs = i.broker_configs.of(broker);
                expected
                    .iter()
                    .all(|(k, v)| configs.and_then(|c| c.get(k)) == v.as_ref())
            })
            .await;
        }
        Ok(())
    }

    /// Sets or removes dynamic configs of a group; returns once this broker has
    /// applied them.
    pub async fn alter_group_configs(
        &self,
        group: &str,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        let expected = changes.clone();
        self.request(ControllerRequest::AlterGroupConfigs {
            group: group.to_owned(),
            changes,
            validate_only,
        })
        .await?;
        if !validate_only {
            self.settle(|i| {
                let configs = i.group_configs.get(group);
                expected
                    .iter()
                    .all(|(k, v)| configs.and_then(|c| c.get(k)) == v.as_ref())
            })
            .await;
        }
        Ok(())
    }

    /// Sets and removes SCRAM credentials; returns one `(user, error code, message)`
    /// per user, once this broker's applied image shows the changes.
    pub async fn alter_scram_credentials(
        &self,
        deletions: Vec<(String, i8)>,
        upsertions: Vec<brook_meta::ScramUpsertion>,
        if_absent: bool,
    ) -> Result<Vec<(String, i16, Option<String>)>, ApiError> {
        let reply = self
            .request(ControllerRequest::AlterScramCredentials {
                deletions: deletions.clone(),
                upsertions: upsertions.clone(),
                if_absent,
            })
            .await?;
        let ControllerReply::ScramAltered(results) = reply else {
            return Err(ApiError::new(
                ResponseError::UnknownServerError,
                "unexpected controller reply",
            ));
        };
        let done = |user: &str| results.iter().any(|(u, code, _)| u == user && *code == 0);
        self.settle(|i| {
            deletions.iter().all(|(u, m)| {
                !done(u)
                    || brook_meta::ScramMechanism::from_type(*m)
                        .is_none_or(|m| i.scram.get(u, m).is_none())
            }) && upsertions.iter().all(|up| {
                !done(&up.user)
                    || brook_meta::ScramMechanism::from_type(up.mechanism).is_none_or(|m| {
                        i.scram
                            .get(&up.user, m)
                            .is_some_and(|c| if_absent || *c == up.credential)
                    })
            })
        })
        .await;
        Ok(results)
    }

    /// Alters client quotas; one `(error code, message)` per entry, once this broker's
    /// applied image shows the changes.
    pub async fn alter_client_quotas(
        &self,
        alterations: Vec<brook_meta::QuotaAlteration>,
        validate_only: bool,
    ) -> Result<Vec<(i16, Option<String>)>, ApiError> {
        let reply = self
            .request(ControllerRequest::AlterClientQuotas {
                alterations: alterations.clone(),
                validate_only,
            })
            .await?;
        let ControllerReply::QuotasAltered(results) = reply else {
            return Err(unexpected_reply());
        };
        if !validate_only {
            self.settle(|i| {
                alterations
                    .iter()
                    .zip(&results)
                    .filter(|(_, (code, _))| *code == 0)
                    .all(|(a, _)| {
                        let entity = brook_meta::QuotaEntity(a.entity.iter().cloned().collect());
                        let now = i.client_quotas.get(&entity);
                        a.ops
                            .iter()
                            .all(|(key, value)| now.and_then(|q| q.get(key)).map(|v| v.0) == *value)
                    })
            })
            .await;
        }
        Ok(results)
    }

    /// Creates ACLs; one `(error code, message)` per ACL, once this broker's applied
    /// image holds those created.
    pub async fn create_acls(
        &self,
        acls: Vec<brook_meta::Acl>,
    ) -> Result<Vec<(i16, Option<String>)>, ApiError> {
        let reply = self
            .request(ControllerRequest::CreateAcls { acls: acls.clone() })
            .await?;
        let ControllerReply::AclsCreated(results) = reply else {
            return Err(unexpected_reply());
        };
        self.settle(|i| {
            acls.iter()
                .zip(&results)
                .all(|(acl, (code, _))| *code != 0 || i.acls.contains(acl))
        })
        .await;
        Ok(results)
    }

    /// Deletes the ACLs matching each filter; per filter, `(error code, message, the
    /// ACLs removed)`, once this broker's applied image no longer holds them.
    pub async fn delete_acls(
        &self,
        filters: Vec<brook_meta::AclFilter>,
    ) -> Result<Vec<(i16, Option<String>, Vec<brook_meta::Acl>)>, ApiError> {
        let reply = self
            .request(ControllerRequest::DeleteAcls { filters })
            .await?;
        let ControllerReply::AclsDeleted(results) = reply else {
            return Err(unexpected_reply());
        };
        self.settle(|i| {
            results
                .iter()
                .flat_map(|(_, _, acls)| acls)
                .all(|acl| !i.acls.contains(acl))
        })
        .await;
        Ok(results)
    }

    /// Waits (briefly) until this broker has applied the controller's first
    /// `metadata_records` records (see `ControllerReply::IsrAltered`).
    pub async fn settle_records(&self, metadata_records: u64) {
        self.settle(|i| i.record_count >= metadata_records).await;
    }

    /// Hands out a producer id, taking a new block of ids from the controller when one
    /// runs out.
    pub async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            match self.request(ControllerRequest::AllocateProducerIds).await? {
                ControllerReply::ProducerIds { start, end } => *ids = (start, end),
                other => {
                    return Err(ApiError::new(
                        ResponseError::UnknownServerError,
                        format!("unexpected controller reply {other:?}"),
                    ))
                }
            }
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }
}

/// What a new controller knows of the brokers' liveness: every broker of `image` was
/// heard from at `now_ms` (a full session before it can be fenced), nobody else.
pub fn reset_liveness(image: &MetadataImage, last_heard_ms: &mut HashMap<i32, i64>, now_ms: i64) {
    last_heard_ms.clear();
    for &id in image.brokers.keys() {
        last_heard_ms.insert(id, now_ms);
    }
}

/// The controller's liveness decision: the unfenced brokers of `image` not heard from
/// for more than `session_ms` (a broker never heard from counts from `now_ms`).
pub fn expired_brokers(
    image: &MetadataImage,
    last_heard_ms: &mut HashMap<i32, i64>,
    now_ms: i64,
    session_ms: i64,
) -> Vec<i32> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter(|b| now_ms - *last_heard_ms.entry(b.id).or_insert(now_ms) > session_ms)
        .map(|b| b.id)
        .collect()
}

/// The outcome of a request charged to a controller mutation quota, and how long its
/// client is throttled (ms).
pub type Charged<T> = (Result<T, ApiError>, u64);

/// Splits a controller reply into its outcome and throttle time (0 unless it was
/// charged to a controller mutation quota).
fn charged(reply: Result<ControllerReply, ApiError>) -> Charged<ControllerReply> {
    match reply {
        Ok(ControllerReply::Mutation {
            outcome,
            throttle_ms,
        }) => (outcome.map(|r| *r), throttle_ms),
        other => (other, 0),
    }
}

/// [`decide`], then the charge of a topic mutation to its client's controller
/// mutation quota: once its quota is exhausted, a strict client's mutation is refused
/// with THROTTLING_QUOTA_EXCEEDED (and writes nothing).
fn decide_charged(
    settings: &BrokerSettings,
    image: &MetadataImage,
    cluster: bool,
    req: &ControllerRequest,
    mutations: &MutationBuckets,
) -> Result<(Vec<MetadataRecord>, ControllerReply), ApiError> {
    let (records, reply) = decide(settings, image, cluster, req)?;
    let Some((who, permits)) = mutation_charge(settings, image, req) else {
        return Ok((records, reply));
    };
    let now = mutations.now_ms();
    Ok(
        match mutations.charge(&image.client_quotas, who, permits, now) {
            Charge::Allowed { throttle_ms } => (
                records,
                ControllerReply::Mutation {
                    outcome: Ok(Box::new(reply)),
                    throttle_ms,
                },
            ),
            Charge::Refused { throttle_ms } => {
                tracing::debug!(
                    user = who.user,
                    client_id = who.client_id,
                    permits,
                    throttle_ms,
                    "controller mutation quota exhausted: refused"
                );
                (
                    Vec::new(),
                    ControllerReply::Mutation {
                        outcome: Err(ApiError::new(
                            ResponseError::ThrottlingQuotaExceeded,
                            "The throttling quota has been exceeded.",
                        )),
                        throttle_ms,
                    },
                )
            }
        },
    )
}

fn unexpected_reply() -> ApiError {
    ApiError::new(
        ResponseError::UnknownServerError,
        "unexpected controller reply",
    )
}
