//! The controller: turns admin requests, broker heartbeats and ISR changes into
//! metadata records, checked against the latest image. It runs on the node that leads
//! the metadata quorum (any node forwards to it) or, for a single broker, in place.
//! The decisions about replicas and leaders are `brook_meta::controller`'s.

use std::collections::BTreeMap;

use brook_meta::controller::{self, AlterIsrError, PlacementError, ReassignError};
use brook_meta::{MetadataImage, MetadataRecord};
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{
    is_broker_config, is_dynamic_broker_config, topic_config_def, validate_broker_config,
    validate_topic_config, BrokerSettings, ConfigError,
};
use crate::error::{unknown_topic, ApiError};
use crate::mutation_quotas::MutationQuota;
use crate::names::{validate_topic_name, MAX_PARTITIONS_PER_TOPIC, OFFSETS_TOPIC};

/// Producer ids are handed out in blocks; one metadata record per block.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControllerRequest {
    CreateTopic {
        name: String,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
        /// Replicas of each partition, chosen by the client (CreateTopics' assignments);
        /// empty: the controller places them.
        #[serde(default)]
        assignment: Vec<Vec<i32>>,
        validate_only: bool,
        /// The client charged for the partitions (KIP-599); none: not charged.
        #[serde(default)]
        quota: Option<MutationQuota>,
    },
    DeleteTopic {
        name: String,
        #[serde(default)]
        quota: Option<MutationQuota>,
    },
    CreatePartitions {
        name: String,
        total: i32,
        /// Replicas of each new partition, chosen by the client (empty: the controller
        /// places them).
        #[serde(default)]
        assignment: Vec<Vec<i32>>,
        validate_only: bool,
        #[serde(default)]
        quota: Option<MutationQuota>,
    },
    AlterTopicConfigs {
        name: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Dynamic broker configs of one broker, or the cluster defaults (`broker: None`).
    AlterBrokerConfigs {
        broker: Option<i32>,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    /// Dynamic configs of one group (Kafka's GROUP resource).
    AlterGroupConfigs {
        group: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    AllocateProducerIds,
    /// AlterUserScramCredentials: deletions `(user, mechanism code)`, and upsertions
    /// whose keys the broker derived already. `if_absent`: leave existing credentials
    /// (the bootstrap credential, asked at every start).
    AlterScramCredentials {
        deletions: Vec<(String, i8)>,
        upsertions: Vec<brook_meta::ScramUpsertion>,
        #[serde(default)]
        if_absent: bool,
    },
    /// CreateAcls: the ACLs to create (each checked on its own).
    CreateAcls {
        acls: Vec<brook_meta::Acl>,
    },
    /// DeleteAcls: every ACL matching any of the filters is removed.
    DeleteAcls {
        filters: Vec<brook_meta::AclFilter>,
    },
    /// AlterClientQuotas: each entity's changes, checked on their own.
    AlterClientQuotas {
        alterations: Vec<brook_meta::QuotaAlteration>,
        validate_only: bool,
    },
    BrokerHeartbeat {
        id: i32,
        host: String,
        port: i32,
        /// This process of the broker (see `Cluster::incarnation`).
        incarnation: u64,
        /// Its client listeners' advertised endpoints.
        #[serde(default)]
        listeners: Vec<brook_meta::BrokerEndpoint>,
        /// Its `broker.rack`.
        #[serde(default)]
        rack: Option<String>,
    },
    /// ISR changes of partitions `leader` leads (Kafka's AlterPartition), decided
    /// together and committed as one metadata-log append.
    AlterIsr {
        leader: i32,
        /// The leader's process (see `Cluster::incarnation`).
        incarnation: u64,
        partitions: Vec<IsrItem>,
    },
    /// Fence a broker that stopped heartbeating (issued by the controller itself).
    FenceBroker {
        id: i32,
    },
    /// Move leaderships back to preferred replicas (ElectLeaders, or the periodic check).
    ElectPreferred {
        /// `None`: every partition.
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments: per partition, a target replica list (start or
    /// replace a reassignment) or `None` (cancel the one in progress).
    Reassign {
        partitions: Vec<(String, i32, Option<Vec<i32>>)>,
        allow_replication_factor_change: bool,
    },
}

/// One partition's ISR change in an `AlterIsr` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IsrItem {
    pub topic: String,
    pub partition: i32,
    pub leader_epoch: i32,
    /// The partition epoch the leader computed the change from.
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerReply {
    Done,
    TopicId(Uuid),
    /// Producer ids `start..end` are this broker's to hand out.
    ProducerIds {
        start: i64,
        end: i64,
    },
    /// How many metadata records the controller's image holds once this heartbeat's
    /// records are applied; the broker serves partitions only after catching up to it.
    Heartbeat {
        metadata_records: u64,
    },
    /// One `(error code, message)` per partition of a `Reassign`, in request order.
    Reassigned(Vec<(i16, Option<String>)>),
    /// One `(error code, message)` per partition of an `AlterIsr`, in request order, and
    /// how many metadata records the controller's image holds with the accepted changes.
    IsrAltered {
        results: Vec<(i16, Option<String>)>,
        metadata_records: u64,
    },
    /// One `(user, error code, message)` per user of an `AlterScramCredentials`.
    ScramAltered(Vec<(String, i16, Option<String>)>),
    /// One `(error code, message)` per ACL of a `CreateAcls`, in request order.
    AclsCreated(Vec<(i16, Option<String>)>),
    /// Per filter of a `DeleteAcls`: `(error code, message, the ACLs it removed)`.
    AclsDeleted(Vec<(i16, Option<String>, Vec<brook_meta::Acl>)>),
    /// One `(error code, message)` per entry of an `AlterClientQuotas`, in request
    /// order.
    QuotasAltered(Vec<(i16, Option<String>)>),
    /// The outcome of a request charged to a controller mutation quota, and how long
    /// its client is throttled (ms).
    Mutation {
        outcome: Result<Box<ControllerReply>, ApiError>,
        throttle_ms: u64,
    },
}

/// What `req` is charged to a controller mutation quota (KIP-599), decided against
/// `image` as it was before `req`: the client, and the partitions it creates or
/// deletes. `None`: not charged.
pub fn mutation_charge<'a>(
    settings: &BrokerSettings,
    image: &MetadataImage,
    req: &'a ControllerRequest,
) -> Option<(&'a MutationQuota, f64)> {
    let (quota, permits) = match req {
        ControllerRequest::CreateTopic {
            partitions,
            assignment,
            quota,
            ..
        } => {
            let n = match (assignment.len(), *partitions) {
                (0, -1) => settings.num_partitions as i32,
                (0, n) => n,
                (manual, _) => manual as i32,
            };
            (quota, n)
        }
        ControllerRequest::DeleteTopic { name, quota } => {
            (quota, image.topic(name)?.partitions.len() as i32)
        }
        ControllerRequest::CreatePartitions {
            name, total, quota, ..
        } => (quota, total - image.topic(name)?.partitions.len() as i32),
        _ => return None,
    };
    Some((quota.as_ref()?, f64::from(permits.max(0))))
}

/// Decides the records for `req` against `image`. `cluster` is false for a single
/// broker, whose partitions are created without an assignment.
pub fn decide(
    settings: &BrokerSettings,
    image: &MetadataImage,
    cluster: bool,
    req: &ControllerRequest,
) -> Result<(Vec<MetadataRecord>, ControllerReply), ApiError> {
    match req {
        ControllerRequest::CreateTopic {
            name,
            partitions,
            replication_factor,
            configs,
            assignment: manual,
            validate_only,
            ..
        } => {
            validate_topic_name(name)?;
            let (partitions, replication_factor) = match manual.first() {
                Some(first) => (manual.len() as i32, first.len() as i16),
                None => (*partitions, *replication_factor),
            };
            let partitions = if partitions == -1 {
                settings.num_partitions as i32
            } else {
                partitions
            };
            let replication_factor = if replication_factor == -1 {
                if name == OFFSETS_TOPIC {
                    let wanted = settings.offsets_topic_replication_factor.max(1);
                    wanted.min(image.live_brokers().len().max(1) as i64) as i16
                } else {
                    settings.default_replication_factor as i16
                }
            } else {
                replication_factor
            };
            if partitions <= 0 || partitions > MAX_PARTITIONS_PER_TOPIC {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("partitions must be between 1 and {MAX_PARTITIONS_PER_TOPIC}"),
                ));
            }
            for (k, v) in configs {
                validate_topic_config(k, v)?;
            }
            if image.topic(name).is_some() {
                return Err(ApiError::new(
                    ResponseError::TopicAlreadyExists,
                    format!("topic '{name}' already exists"),
                ));
            }
            let assignment = if manual.is_empty() {
                assign(image, cluster, 0, partitions, replication_factor)?
            } else {
                check_manual_assignment(image, cluster, manual)?
            };
            if *validate_only {
                return Ok((Vec::new(), ControllerReply::Done));
            }
            let topic_id = Uuid::new_v4();
            let record = MetadataRecord::TopicCreated {
                name: name.clone(),
                topic_id,
                partitions,
                replication_factor,
                configs: configs.clone(),
                internal: name.starts_with("__"),
                assignment,
            };
            Ok((vec![record], ControllerReply::TopicId(topic_id)))
        }
        ControllerRequest::DeleteTopic { name, .. } => {
            let topic = image.topic(name).ok_or_else(|| unknown_topic(name))?;
            Ok((
                vec![MetadataRecord::TopicDeleted { name: name.clone() }],
                ControllerReply::TopicId(topic.topic_id),
            ))
        }
        ControllerRequest::CreatePartitions {
            name,
            total,
            assignment: manual,
            validate_only,
            ..
        } => {
            let topic = image.topic(name).ok_or_else(|| unknown_topic(name))?;
            let current = topic.partitions.len() as i32;
            if *total <= current {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("topic currently has {current} partitions, which is higher than or equal to the requested {total}"),
                ));
            }
            if *total > MAX_PARTITIONS_PER_TOPIC {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions"),
                ));
            }
            let rf = topic.partitions.first().map_or(1, |p| p.replicas.len()) as i16;
            let assignment = if manual.is_empty() {
                assign(image, cluster, current, total - current, rf)?
            } else {
                let invalid = |m: String| ApiError::new(ResponseError::InvalidReplicaAssignment, m);
                if manual.len() != (total - current) as usize {
                    return Err(invalid(format!(
                        "{} replica lists for {} new partitions",
                        manual.len(),
                        total - current
                    )));
                }
                if manual[0].len() != rf as usize {
                    return Err(invalid(format!(
                        "{} replicas where the topic has a replication factor of {rf}",
                        manual[0].len()
                    )));
                }
                check_manual_assignment(image, cluster, manual)?
            };
            if *validate_only {
                return Ok((Vec::new(), ControllerReply::Done));
            }
            Ok((
                vec![MetadataRecord::PartitionsAdded {
                    name: name.clone(),
                    total: *total,
                    assignment,
                }],
                ControllerReply::Done,
            ))
        }
        ControllerRequest::AlterTopicConfigs {
            name,
            changes,
            validate_only,
        } => {
            for (k, v) in changes {
                match v {
                    Some(v) => validate_topic_config(k, v)?,
                    None => {
                        if topic_config_def(k).is_none() {
                            return Err(ConfigError::Unknown(k.clone()).into());
                        }
                    }
                }
            }
            if image.topic(name).is_none() {
                return Err(unknown_topic(name));
            }
            if *validate_only {
                return Ok((Vec::new(), ControllerReply::Done));
            }
            let records = changes
                .iter()
                .map(|(key, value)| MetadataRecord::TopicConfigSet {
                    name: name.clone(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            Ok((records, ControllerReply::Done))
        }
        ControllerRequest::AlterBrokerConfigs {
            broker,
            changes,
            validate_only,
        } => {
            let fixed: Vec<&str> = changes
                .iter()
                .map(|(k, _)| k.as_str())
                .filter(|k| is_broker_config(k) && !is_dynamic_broker_config(k))
                .collect();
            if !fixed.is_empty() {
                // Kafka's answer for a known, static broker config.
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "Cannot update these configs dynamically: {}",
                        fixed.join(", ")
                    ),
                ));
            }
            for (k, v) in changes {
                match v {
                    Some(v) => validate_broker_config(k, v)?,
                    None if !is_broker_config(k) => {
                        return Err(ConfigError::Unknown(k.clone()).into());
                    }
                    None => {}
                }
            }
            if *validate_only {
                return Ok((Vec::new(), ControllerReply::Done));
            }
            let records = changes
                .iter()
                .map(|(key, value)| MetadataRecord::BrokerConfigSet {
                    broker: *broker,
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            Ok((records, ControllerReply::Done))
        }
        ControllerRequest::AlterGroupConfigs {
            group,
            changes,
            validate_only,
        } => {
            let mut merged = image.group_configs.get(group).cloned().unwrap_or_default();
            for (k, v) in changes {
                if !crate::config::GROUP_CONFIG_NAMES.contains(&k.as_str()) {
                    return Err(ConfigError::Unknown(k.clone()).into());
                }
                match v {
                    Some(v) => merged.insert(k.clone(), v.clone()),
                    None => merged.remove(k),
                };
            }
            crate::config::validate_group_configs(settings, &merged)?;
            if *validate_only {
                return Ok((Vec::new(), ControllerReply::Done));
            }
            let records = changes
                .iter()
                .map(|(key, value)| MetadataRecord::GroupConfigSet {
                    group: group.clone(),
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect();
            Ok((records, ControllerReply::Done))
        }
        ControllerRequest::AllocateProducerIds => {
            let start = image.next_producer_id_block;
            let end = start + PRODUCER_ID_BLOCK_SIZE;
            Ok((
                vec![MetadataRecord::ProducerIdsAllocated {
                    next_block_start: end,
                }],
                ControllerReply::ProducerIds { start, end },
            ))
        }
        ControllerRequest::AlterScramCredentials {
            deletions,
            upsertions,
            if_absent,
        } => {
            let (records, results) = brook_meta::alter_scram_credentials(
                &image.scram,
                deletions,
                upsertions,
                *if_absent,
            );
            let results = results
                .into_iter()
                .map(|(user, r)| match r {
                    Ok(()) => (user, 0, None),
                    Err(e) => (user, scram_error_code(e).code(), Some(e.to_string())),
                })
                .collect();
            Ok((records, ControllerReply::ScramAltered(results)))
        }
        ControllerRequest::CreateAcls { acls } => {
            let (records, results) = brook_meta::create_acls(&image.acls, acls, Uuid::new_v4);
            let results = results
                .into_iter()
                .map(|r| match r {
                    Ok(()) => (0, None),
                    Err(e) => (ResponseError::InvalidRequest.code(), Some(e.to_string())),
                })
                .collect();
            Ok((records, ControllerReply::AclsCreated(results)))
        }
        ControllerRequest::DeleteAcls { filters } => {
            let (records, results) = brook_meta::delete_acls(&image.acls, filters);
            let results = results
                .into_iter()
                .map(|r| match r {
                    Ok(acls) => (0, None, acls),
                    Err(e) => (
                        ResponseError::InvalidRequest.code(),
                        Some(e.to_string()),
                        Vec::new(),
                    ),
                })
                .collect();
            Ok((records, ControllerReply::AclsDeleted(results)))
        }
        ControllerRequest::AlterClientQuotas {
            alterations,
            validate_only,
        } => {
            let (records, results) =
                brook_meta::alter_client_quotas(&image.client_quotas, alterations);
            let results = results
                .into_iter()
                .map(|r| match r {
                    Ok(()) => (0, None),
                    Err(e) => (quota_error_code(&e).code(), Some(e.to_string())),
                })
                .collect();
            let records = if *validate_only { Vec::new() } else { records };
            Ok((records, ControllerReply::QuotasAltered(results)))
        }
        ControllerRequest::BrokerHeartbeat {
            id,
            host,
            port,
            incarnation,
            listeners,
            rack,
        } => {
            let mut records = Vec::new();
            if image.cluster_id.is_empty() {
                records.push(MetadataRecord::ClusterCreated {
                    cluster_id: new_cluster_id(),
                });
            }
            records.extend(controller::broker_heartbeat(
                image,
                *id,
                host,
                *port,
                *incarnation,
                listeners,
                rack.as_deref(),
            ));
            let metadata_records = image.record_count + records.len() as u64;
            Ok((records, ControllerReply::Heartbeat { metadata_records }))
        }
        ControllerRequest::FenceBroker { id } => {
            Ok((controller::fence_broker(image, *id), ControllerReply::Done))
        }
        ControllerRequest::AlterIsr {
            leader,
            incarnation,
            partitions,
        } => {
            let items = partitions.iter().map(|i| {
                let req = controller::IsrRequest {
                    leader: *leader,
                    incarnation: *incarnation,
                    leader_epoch: i.leader_epoch,
                    partition_epoch: i.partition_epoch,
                    isr: &i.isr,
                };
                (i.topic.as_str(), i.partition, req)
            });
            let (records, outcomes) = controller::alter_isr_batch(image, items);
            let results = outcomes
                .into_iter()
                .map(|o| match o {
                    Ok(_) => (0, None),
                    Err(e) => (alter_isr_error_code(&e).code(), Some(e.to_string())),
                })
                .collect();
            let metadata_records = image.record_count + records.len() as u64;
            Ok((
                records,
                ControllerReply::IsrAltered {
                    results,
                    metadata_records,
                },
            ))
        }
        ControllerRequest::ElectPreferred { partitions } => {
            let mut records = Vec::new();
            for (name, topic) in &image.topics {
                for p in &topic.partitions {
                    let wanted = partitions
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|(t, i)| t == name && *i == p.index));
                    if wanted {
                        records.extend(controller::preferred_leader_election(image, name, p));
                    }
                }
            }
            Ok((records, ControllerReply::Done))
        }
        ControllerRequest::Reassign {
            partitions,
            allow_replication_factor_change,
        } => {
            if !cluster {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicaAssignment,
                    "a single broker has nowhere to move replicas to",
                ));
            }
            let mut records = Vec::new();
            let mut results = Vec::with_capacity(partitions.len());
            for (topic, partition, target) in partitions {
                match controller::reassign(
                    image,
                    topic,
                    *partition,
                    target.as_deref(),
                    *allow_replication_factor_change,
                ) {
                    Ok(r) => {
                        records.extend(r);
                        results.push((0, None));
                    }
                    Err(e) => {
                        let code = match e {
                            ReassignError::UnknownPartition => {
                                ResponseError::UnknownTopicOrPartition
                            }
                            ReassignError::InvalidAssignment(_) => {
                                ResponseError::InvalidReplicaAssignment
                            }
                            ReassignError::ReplicationFactorChange { .. } => {
                                ResponseError::InvalidReplicationFactor
                            }
                            ReassignError::NoReassignmentInProgress => {
                                ResponseError::NoReassignmentInProgress
                            }
                        };
                        results.push((code.code(), Some(e.to_string())));
                    }
                }
            }
            Ok((records, ControllerReply::Reassigned(results)))
        }
    }
}

/// Checks a client-chosen assignment as Kafka does: every partition has the same
/// number of replicas, none twice, all of them registered brokers. A single broker
/// accepts only itself (and records no assignment, as for its other topics).
fn check_manual_assignment(
    image: &MetadataImage,
    cluster: bool,
    manual: &[Vec<i32>],
) -> Result<Vec<Vec<i32>>, ApiError> {
    let invalid = |m: String| ApiError::new(ResponseError::InvalidReplicaAssignment, m);
    let rf = manual[0].len();
    for (p, replicas) in manual.iter().enumerate() {
        if replicas.is_empty() {
            return Err(invalid(format!("partition {p} has no replicas")));
        }
        if replicas.len() != rf {
            return Err(invalid(format!(
                "partition {p} has {} replicas, but partition 0 has {rf}",
                replicas.len()
            )));
        }
        for (i, r) in replicas.iter().enumerate() {
            if replicas[..i].contains(r) {
                return Err(invalid(format!("partition {p} lists broker {r} twice")));
            }
            let known = if cluster {
                image.brokers.contains_key(r)
            } else {
                *r == image.node_id
            };
            if !known {
                return Err(invalid(format!(
                    "partition {p} is assigned to broker {r}, which is not registered"
                )));
            }
        }
    }
    Ok(if cluster { manual.to_vec() } else { Vec::new() })
}

fn assign(
    image: &MetadataImage,
    cluster: bool,
    first: i32,
    count: i32,
    replication_factor: i16,
) -> Result<Vec<Vec<i32>>, ApiError> {
    if replication_factor < 1 {
        return Err(ApiError::new(
            ResponseError::InvalidReplicationFactor,
            "replication factor must be larger than 0, or -1 to use the default value",
        ));
    }
    if !cluster {
        if replication_factor != 1 {
            return Err(ApiError::new(
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is larger than the 1 available broker"
                ),
            ));
        }
        return Ok(Vec::new());
    }
    let live = image.live_brokers_with_racks();
    let rf = usize::try_from(replication_factor).unwrap_or(0);
    let seed = rand::random::<u32>() as usize;
    controller::assign_replicas_by_rack(&live, first, count, rf, seed).map_err(|e| match e {
        PlacementError::NotEnoughBrokers { .. } | PlacementError::ZeroReplicationFactor => {
            ApiError::new(ResponseError::InvalidReplicationFactor, e.to_string())
        }
    })
}

pub fn new_cluster_id() -> String {
    Uuid::new_v4().simple().to_string()[..22].to_string()
}

/// The error code an AlterPartition refusal is answered with (Kafka's codes), which the
/// leader maps back to what it does next with `isr_outcome`.
fn quota_error_code(e: &brook_meta::QuotaError) -> ResponseError {
    match e {
        brook_meta::QuotaError::Invalid(_) => ResponseError::InvalidRequest,
        brook_meta::QuotaError::Unsupported(_) => ResponseError::UnsupportedVersion,
    }
}

fn scram_error_code(e: brook_meta::ScramAlterError) -> ResponseError {
    use brook_meta::ScramAlterError::*;
    match e {
        Duplicate => ResponseError::DuplicateResource,
        UnknownMechanism => ResponseError::UnsupportedSaslMechanism,
        NotFound => ResponseError::ResourceNotFound,
        EmptyUser | TooFewIterations | TooManyIterations | EmptySecret => {
            ResponseError::UnacceptableCredential
        }
    }
}

pub fn alter_isr_error_code(e: &AlterIsrError) -> ResponseError {
    match e {
        AlterIsrError::UnknownPartition => ResponseError::UnknownTopicOrPartition,
        AlterIsrError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        AlterIsrError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
        AlterIsrError::StaleVersion { .. } => ResponseError::InvalidUpdateVersion,
        AlterIsrError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch,
        AlterIsrError::InvalidIsr(_) => ResponseError::InvalidRequest,
        AlterIsrError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
    }
}
