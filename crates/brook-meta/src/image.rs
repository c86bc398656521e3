use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MetadataRecord;

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
}

/// The state obtained by applying every metadata record in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: HashMap<Uuid, String>,
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
}

impl MetadataImage {
    pub fn new(node_id: i32) -> Self {
        MetadataImage {
            node_id,
            ..Default::default()
        }
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(id)
            .and_then(|n| self.topics.get(n))
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<&PartitionImage> {
        self.topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
    }

    fn partition_mut(&mut self, topic: &str, index: i32) -> Option<&mut PartitionImage> {
        self.topics
            .get_mut(topic)
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
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::PartitionsAdded {
                name,
                total,
                assignment,
            } => {
                let new: Vec<PartitionImage> = match self.topics.get(name) {
                    Some(t) => {
                        let from = t.partitions.len() as i32;
                        (from..*total)
                            .map(|i| self.new_partition(i, assignment.get((i - from) as usize)))
                            .collect()
                    }
                    None => return,
                };
                if let Some(t) = self.topics.get_mut(name) {
                    t.partitions.extend(new);
                }
            }
            MetadataRecord::TopicConfigSet { name, key, value } => {
                if let Some(t) = self.topics.get_mut(name) {
                    match value {
                        Some(v) => t.configs.insert(key.clone(), v.clone()),
                        None => t.configs.remove(key),
                    };
                }
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
            } => {
                self.brokers.insert(
                    *id,
                    BrokerImage {
                        id: *id,
                        host: host.clone(),
                        port: *port,
                        fenced: false,
                        incarnation: *incarnation,
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
