use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Acls, ClientQuotas, MetadataRecord, ScramCredentials};

/// "No leader": every replica in the ISR is fenced (no unclean election).
pub const NO_LEADER: i32 = -1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub index: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change of leader, ISR or replicas.
    #[serde(default)]
    pub partition_epoch: i32,
    /// Every replica, preferred leader first. During a reassignment: the target
    /// replicas followed by the ones being removed.
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment is adding (copying the log, not yet all in the ISR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    /// Replicas a reassignment will drop once every target replica is in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas a reassignment is moving to (all of them when there is none).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replicas before the ongoing reassignment started (all of them when there is none).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub replication_factor: i16,
    pub partitions: Vec<PartitionImage>,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub fenced: bool,
    /// The registered process of this broker (see `MetadataRecord::BrokerRegistered`).
    #[serde(default)]
    pub incarnation: u64,
    /// Every client listener's advertised endpoint; empty for a broker registered
    /// before listeners had names (`host`/`port` then serve every listener).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<BrokerEndpoint>,
    /// Its `broker.rack`, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
}

/// A broker's advertised endpoint on one named listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub listener: String,
    pub host: String,
    pub port: i32,
}

impl BrokerImage {
    /// The endpoint clients of listener `name` reach this broker at; `None` if the
    /// broker has no such listener (Kafka leaves it out of Metadata then).
    pub fn endpoint(&self, name: &str) -> Option<(&str, i32)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|e| e.listener == name)
            .map(|e| (e.host.as_str(), e.port))
    }
}

/// The topics of an image: a persistent map, cheap to clone and to compare with an
/// older copy (see [`MetadataImage::topic_changes`]).
pub type TopicMap = imbl::OrdMap<String, Arc<TopicImage>>;

/// One topic that differs between two images.
#[derive(Debug, Clone, Copy)]
pub enum TopicChange<'a> {
    Added(&'a TopicImage),
    Changed {
        before: &'a TopicImage,
        after: &'a TopicImage,
    },
    Removed(&'a TopicImage),
}

/// The state obtained by applying every metadata record in order.
///
/// Every change makes a new image (the Raft state machine per applied batch, the file
/// store per append), so cloning must not cost O(topics): the topic maps are persistent
/// (a clone shares their nodes, a change copies only the path to what it changes) and
/// each topic is an `Arc`, copied by `Arc::make_mut` only when a change reaches it.
/// Both serialize exactly as the `BTreeMap<String, TopicImage>` and
/// `HashMap<Uuid, String>` they replaced, so older snapshots still load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: TopicMap,
    pub topic_names_by_id: imbl::HashMap<Uuid, String>,
    pub next_producer_id_block: i64,
    /// Registered brokers. Empty for a single node, which serves every partition itself.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// The node that holds partitions created without an explicit assignment
    /// (a single-node cluster).
    pub node_id: i32,
    /// How many records have been applied: the same on every node at the same point of
    /// the log, so a broker can tell whether it has caught up with the controller.
    #[serde(default)]
    pub record_count: u64,
    /// Dynamic broker configs (Kafka names): the cluster-wide defaults, and per broker.
    #[serde(default, skip_serializing_if = "BrokerConfigs::is_empty")]
    pub broker_configs: BrokerConfigs,
    /// SCRAM credentials by user and mechanism (salted keys only).
    #[serde(default, skip_serializing_if = "ScramCredentials::is_empty")]
    pub scram: ScramCredentials,
    /// ACLs by id, indexed by resource for the authorizer.
    #[serde(default, skip_serializing_if = "Acls::is_empty")]
    pub acls: Acls,
    /// Client quotas by entity (user, client id, IP, and their defaults).
    #[serde(default, skip_serializing_if = "ClientQuotas::is_empty")]
    pub client_quotas: ClientQuotas,
    /// Dynamic group configs (Kafka's GROUP resource) by group id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_configs: BTreeMap<String, BTreeMap<String, String>>,
}

/// Dynamic broker configs, set at run time with AlterConfigs on the BROKER resource.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerConfigs {
    /// The cluster-wide defaults (Kafka's empty broker name, `--entity-default`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub defaults: BTreeMap<String, String>,
    /// Per broker id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_broker: BTreeMap<i32, BTreeMap<String, String>>,
}

impl BrokerConfigs {
    pub fn is_empty(&self) -> bool {
        self.defaults.is_empty() && self.per_broker.is_empty()
    }

    /// The configs of `broker`, or the defaults for `None`.
    pub fn of(&self, broker: Option<i32>) -> Option<&BTreeMap<String, String>> {
        match broker {
            None => Some(&self.defaults),
            Some(id) => self.per_broker.get(&id),
        }
    }

    /// The value of `key` that applies on `broker` (its own, else the default) and
    /// whether it is the broker's own.
    pub fn get(&self, broker: i32, key: &str) -> Option<(&str, bool)> {
        if let Some(v) = self.per_broker.get(&broker).and_then(|c| c.get(key)) {
            return Some((v, true));
        }
        self.defaults.get(key).map(|v| (v.as_str(), false))
    }

    /// Whether what applies on `broker` differs between `self` and `other`.
    pub fn differ_for(&self, other: &BrokerConfigs, broker: i32) -> bool {
        self.defaults != other.defaults
            || self.per_broker.get(&broker) != other.per_broker.get(&broker)
    }
}

impl MetadataImage {
    pub fn new(node_id: i32) -> Self {
        MetadataImage {
            node_id,
            ..Default::default()
        }
    }

    /// The topics that differ between `before` (the topics of an earlier image) and
    /// this image. Parts of the two maps that are still shared are skipped without
    /// being visited, so the cost follows the number of changes, not of topics.
    pub fn topic_changes<'a>(
        &'a self,
        before: &'a TopicMap,
    ) -> impl Iterator<Item = TopicChange<'a>> + 'a {
        before.diff(&self.topics).map(|item| match item {
            imbl::ordmap::DiffItem::Add(_, t) => TopicChange::Added(t),
            imbl::ordmap::DiffItem::Update { old, new } => TopicChange::Changed {
                before: old.1,
                after: new.1,
            },
            imbl::ordmap::DiffItem::Remove(_, t) => TopicChange::Removed(t),
        })
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name).map(Arc::as_ref)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id.get(id).and_then(|n| self.topic(n))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionImage> {
        self.topic(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
    }

    /// The topic to change, made this image's own (copied if a clone still shares it).
    fn topic_mut(&mut self, name: &str) -> Option<&mut TopicImage> {
        self.topics.get_mut(name).map(Arc::make_mut)
    }

    fn partition_mut(&mut self, topic: &str, index: i32) -> Option<&mut PartitionImage> {
        self.topic_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(index).ok()?))
    }

    /// Brokers that may lead partitions and receive new replicas, by id.
    pub fn live_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }

    /// The live brokers with their racks.
    pub fn live_brokers_with_racks(&self) -> Vec<(i32, Option<&str>)> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, b.rack.as_deref()))
            .collect()
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    fn new_partition(&self, index: i32, replicas: Option<&Vec<i32>>) -> PartitionImage {
        let replicas = match replicas {
            Some(r) if !r.is_empty() => r.clone(),
            _ => vec![self.node_id],
        };
        PartitionImage {
            index,
            leader: replicas[0],
            leader_epoch: 0,
            partition_epoch: 0,
            isr: replicas.clone(),
            replicas,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Applies one record. Records that do not fit the image (e.g. a config for a topic
    /// deleted since) are ignored: the log is the truth and replay must be total.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.record_count += 1;
        match record {
            MetadataRecord::ClusterCreated { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
                internal,
                assignment,
            } => {
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    replication_factor: *replication_factor,
                    partitions: (0..*partitions)
                        .map(|i| self.new_partition(i, assignment.get(i as usize)))
                        .collect(),
                    configs: configs.clone(),
                    internal: *internal,
                };
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(name.clone(), Arc::new(topic));
            }
            MetadataRecord::PartitionsAdded {
                name,
                total,
                assignment,
            } => {
                let new: Vec<PartitionImage> = match self.topic(name) {
                    Some(t) => {
                        let from = t.partitions.len() as i32;
                        (from..*total)
                            .map(|i| self.new_partition(i, assignment.get((i - from) as usize)))
                            .collect()
                    }
                    None => return,
                };
                if let Some(t) = self.topic_mut(name) {
                    t.partitions.extend(new);
                }
            }
            MetadataRecord::TopicConfigSet { name, key, value } => {
                if let Some(t) = self.topic_mut(name) {
                    match value {
                        Some(v) => t.configs.insert(key.clone(), v.clone()),
                        None => t.configs.remove(key),
                    };
                }
            }
            MetadataRecord::BrokerConfigSet { broker, key, value } => {
                let configs = match broker {
                    None => &mut self.broker_configs.defaults,
                    Some(id) => self.broker_configs.per_broker.entry(*id).or_default(),
                };
                match value {
                    Some(v) => configs.insert(key.clone(), v.clone()),
                    None => configs.remove(key),
                };
                if let Some(id) = broker {
                    if self
                        .broker_configs
                        .per_broker
                        .get(id)
                        .is_some_and(|c| c.is_empty())
                    {
                        self.broker_configs.per_broker.remove(id);
                    }
                }
            }
            MetadataRecord::GroupConfigSet { group, key, value } => {
                let configs = self.group_configs.entry(group.clone()).or_default();
                match value {
                    Some(v) => configs.insert(key.clone(), v.clone()),
                    None => configs.remove(key),
                };
                if configs.is_empty() {
                    self.group_configs.remove(group);
                }
            }
            MetadataRecord::ScramCredentialSet {
                user,
                mechanism,
                credential,
            } => self.scram.set(user, *mechanism, credential.clone()),
            MetadataRecord::ScramCredentialRemoved { user, mechanism } => {
                self.scram.remove(user, *mechanism)
            }
            MetadataRecord::AclCreated { id, acl } => {
                self.acls.insert(*id, acl.clone(), self.record_count)
            }
            MetadataRecord::AclRemoved { id } => self.acls.remove(id, self.record_count),
            MetadataRecord::ClientQuotaSet { entity, key, value } => {
                self.client_quotas.apply(entity, key, *value)
            }
            MetadataRecord::TopicDeleted { name } => {
                if let Some(t) = self.topics.remove(name) {
                    self.topic_names_by_id.remove(&t.topic_id);
                }
            }
            MetadataRecord::ProducerIdsAllocated { next_block_start } => {
                self.next_producer_id_block = self.next_producer_id_block.max(*next_block_start);
            }
            MetadataRecord::BrokerRegistered {
                id,
                host,
                port,
                incarnation,
                listeners,
                rack,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerImage {
                        id: *id,
                        host: host.clone(),
                        port: *port,
                        fenced: false,
                        incarnation: *incarnation,
                        listeners: listeners.clone(),
                        rack: rack.clone(),
                    },
                );
            }
            MetadataRecord::BrokerFenced { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::BrokerUnfenced { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::PartitionChanged {
                topic,
                partition,
                leader,
                leader_epoch,
                isr,
                replicas,
            } => {
                let Some(p) = self.partition_mut(topic, *partition) else {
                    return;
                };
                p.leader = *leader;
                p.leader_epoch = *leader_epoch;
                p.isr = isr.clone();
                if let Some(r) = replicas {
                    // A new replica set ends any reassignment.
                    p.replicas = r.clone();
                    p.adding_replicas.clear();
                    p.removing_replicas.clear();
                }
                p.partition_epoch += 1;
            }
            MetadataRecord::PartitionReassigning {
                topic,
                partition,
                replicas,
                adding,
                removing,
            } => {
                let Some(p) = self.partition_mut(topic, *partition) else {
                    return;
                };
                p.replicas = replicas.clone();
                p.adding_replicas = adding.clone();
                p.removing_replicas = removing.clone();
                p.partition_epoch += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    /// The records behind `testdata/image-btreemap.json`.
    fn records() -> Vec<MetadataRecord> {
        vec![
            MetadataRecord::ClusterCreated {
                cluster_id: "c1".into(),
            },
            MetadataRecord::BrokerRegistered {
                id: 1,
                host: "h1".into(),
                port: 9092,
                incarnation: 7,
                listeners: vec![],
                rack: None,
            },
            MetadataRecord::BrokerRegistered {
                id: 2,
                host: "h2".into(),
                port: 9093,
                incarnation: 8,
                listeners: vec![],
                rack: None,
            },
            MetadataRecord::BrokerFenced { id: 2 },
            MetadataRecord::TopicCreated {
                name: "a".into(),
                topic_id: id(1),
                partitions: 2,
                replication_factor: 2,
                configs: BTreeMap::from([("retention.ms".to_string(), "10".to_string())]),
                internal: false,
                assignment: vec![vec![1, 2], vec![2, 1]],
            },
            MetadataRecord::TopicCreated {
                name: "__consumer_offsets".into(),
                topic_id: id(2),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
                internal: true,
                assignment: Vec::new(),
            },
            MetadataRecord::PartitionChanged {
                topic: "a".into(),
                partition: 1,
                leader: 1,
                leader_epoch: 1,
                isr: vec![1],
                replicas: None,
            },
            MetadataRecord::PartitionReassigning {
                topic: "a".into(),
                partition: 0,
                replicas: vec![1, 3, 2],
                adding: vec![3],
                removing: vec![2],
            },
            MetadataRecord::ProducerIdsAllocated {
                next_block_start: 1000,
            },
        ]
    }

    fn image() -> MetadataImage {
        let mut image = MetadataImage::new(1);
        for r in &records() {
            image.apply(r);
        }
        image
    }

    /// Metadata snapshots on disk and Raft snapshots sent between nodes were written when
    /// the topics were a `BTreeMap<String, TopicImage>` and the ids a `HashMap`: the
    /// fixture is such an image, serialized by that code.
    #[test]
    fn dynamic_broker_configs_are_set_per_broker_and_cluster_wide() {
        let mut image = MetadataImage::new(1);
        let set = |broker, key: &str, value: Option<&str>| MetadataRecord::BrokerConfigSet {
            broker,
            key: key.into(),
            value: value.map(Into::into),
        };
        image.apply(&set(None, "log.retention.ms", Some("10")));
        image.apply(&set(Some(2), "log.retention.ms", Some("20")));
        assert_eq!(
            image.broker_configs.get(1, "log.retention.ms"),
            Some(("10", false))
        );
        assert_eq!(
            image.broker_configs.get(2, "log.retention.ms"),
            Some(("20", true))
        );
        let before = image.broker_configs.clone();
        image.apply(&set(Some(2), "log.retention.ms", None));
        assert!(image.broker_configs.per_broker.is_empty());
        assert!(image.broker_configs.differ_for(&before, 2));
        assert!(!image.broker_configs.differ_for(&before, 1));
        // Survives a snapshot round trip; an image without any still loads.
        let json = serde_json::to_string(&image).unwrap();
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back.broker_configs, image.broker_configs);
    }

    #[test]
    fn scram_credentials_are_set_replaced_removed_and_survive_snapshots_and_the_log() {
        use crate::{ScramCredential, ScramMechanism};
        let cred = |n: u8| ScramCredential {
            salt: vec![n; 16],
            stored_key: vec![n + 1; 32],
            server_key: vec![n + 2; 32],
            iterations: 4096,
        };
        let set = |user: &str, m, c| MetadataRecord::ScramCredentialSet {
            user: user.into(),
            mechanism: m,
            credential: c,
        };
        let mut image = MetadataImage::new(1);
        let records = [
            set("alice", ScramMechanism::Sha512, cred(1)),
            set("alice", ScramMechanism::Sha256, cred(2)),
            set("bob", ScramMechanism::Sha256, cred(3)),
            set("alice", ScramMechanism::Sha512, cred(4)),
            MetadataRecord::ScramCredentialRemoved {
                user: "bob".into(),
                mechanism: ScramMechanism::Sha256,
            },
            // Removing what is not there is ignored: replay must be total.
            MetadataRecord::ScramCredentialRemoved {
                user: "carol".into(),
                mechanism: ScramMechanism::Sha256,
            },
        ];
        for r in &records {
            // Every record survives the log's JSON encoding unchanged.
            let line = serde_json::to_string(r).unwrap();
            assert!(!line.contains("password"));
            assert_eq!(&serde_json::from_str::<MetadataRecord>(&line).unwrap(), r);
            image.apply(r);
        }
        assert_eq!(
            image.scram.get("alice", ScramMechanism::Sha512),
            Some(&cred(4))
        );
        assert_eq!(
            image.scram.get("alice", ScramMechanism::Sha256),
            Some(&cred(2))
        );
        assert!(!image.scram.users.contains_key("bob"));
        assert!(
            !format!("{:?}", cred(1)).contains("1, 1"),
            "keys stay out of Debug"
        );
        let json = serde_json::to_string(&image).unwrap();
        assert!(json.contains("SCRAM-SHA-512"));
        let back: MetadataImage = serde_json::from_str(&json).unwrap();
        assert_eq!(back, image);
        // An image without credentials serializes as before.
        assert!(!serde_json::to_string(&MetadataImage::new(1))
            .unwrap()
            .contains("scram"));
    }

    #[test]
    fn an_image_serialized_with_std_maps_still_loads_and_serializes_the_same() {
        let old = include_str!("../testdata/image-btreemap.json");
        let loaded: MetadataImage = serde_json::from_str(old).unwrap();
        assert_eq!(loaded, image());
        let old: serde_json::Value = serde_json::from_str(old).unwrap();
        assert_eq!(serde_json::to_value(&loaded).unwrap(), old);
    }

    #[test]
    fn a_change_to_a_clone_copies_only_the_topic_it_changes() {
        let before = image();
        let mut after = before.clone();
        after.apply(&MetadataRecord::TopicConfigSet {
            name: "a".into(),
            key: "retention.ms".into(),
            value: Some("20".into()),
        });
        after.apply(&MetadataRecord::PartitionChanged {
            topic: "a".into(),
            partition: 0,
            leader: 3,
            leader_epoch: 1,
            isr: vec![1, 3],
            replicas: None,
        });
        assert_eq!(before, image());
        assert_ne!(before, after);
        assert_eq!(before.topic("a").unwrap().configs["retention.ms"], "10");
        assert_eq!(after.topic("a").unwrap().configs["retention.ms"], "20");
        assert_eq!(before.partition("a", 0).unwrap().leader, 1);
        assert_eq!(after.partition("a", 0).unwrap().leader, 3);
        assert!(!Arc::ptr_eq(&before.topics["a"], &after.topics["a"]));
        assert!(Arc::ptr_eq(
            &before.topics["__consumer_offsets"],
            &after.topics["__consumer_offsets"]
        ));

        after.apply(&MetadataRecord::TopicDeleted {
            name: "__consumer_offsets".into(),
        });
        assert!(after.topic_by_id(&id(2)).is_none());
        assert_eq!(
            before.topic_by_id(&id(2)).unwrap().name,
            "__consumer_offsets"
        );
    }

    #[test]
    fn topic_changes_lists_exactly_the_topics_that_differ() {
        let before = image();
        let mut after = before.clone();
        after.apply(&MetadataRecord::TopicConfigSet {
            name: "a".into(),
            key: "retention.ms".into(),
            value: Some("20".into()),
        });
        after.apply(&MetadataRecord::TopicDeleted {
            name: "__consumer_offsets".into(),
        });
        after.apply(&MetadataRecord::TopicCreated {
            name: "b".into(),
            topic_id: id(3),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
            assignment: Vec::new(),
        });
        let mut seen: Vec<String> = after
            .topic_changes(&before.topics)
            .map(|c| match c {
                TopicChange::Added(t) => format!("+{}", t.name),
                TopicChange::Changed { before, after } => {
                    format!(
                        "~{} {}->{}",
                        after.name, before.configs["retention.ms"], after.configs["retention.ms"]
                    )
                }
                TopicChange::Removed(t) => format!("-{}", t.name),
            })
            .collect();
        seen.sort();
        assert_eq!(seen, ["+b", "-__consumer_offsets", "~a 10->20"]);
        assert_eq!(after.topic_changes(&after.topics.clone()).count(), 0);
    }
}
