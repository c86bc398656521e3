use std::collections::{BTreeMap, HashMap};

use uuid::Uuid;

use crate::MetadataRecord;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionImage {
    pub index: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub replication_factor: i16,
    pub partitions: Vec<PartitionImage>,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// The state obtained by applying every metadata record in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: HashMap<Uuid, String>,
    pub next_producer_id_block: i64,
    /// The broker that leads every partition in a single-node cluster.
    pub node_id: i32,
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

    fn partition(&self, index: i32) -> PartitionImage {
        PartitionImage {
            index,
            leader: self.node_id,
            leader_epoch: 0,
            replicas: vec![self.node_id],
            isr: vec![self.node_id],
        }
    }

    /// Applies one record. Records that do not fit the image (e.g. a config for a topic
    /// deleted since) are ignored: the log is the truth and replay must be total.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::ClusterCreated { cluster_id } => self.cluster_id = cluster_id.clone(),
            MetadataRecord::TopicCreated {
                name,
                topic_id,
                partitions,
                replication_factor,
                configs,
                internal,
            } => {
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    replication_factor: *replication_factor,
                    partitions: (0..*partitions).map(|i| self.partition(i)).collect(),
                    configs: configs.clone(),
                    internal: *internal,
                };
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(name.clone(), topic);
            }
            MetadataRecord::PartitionsAdded { name, total } => {
                let new: Vec<PartitionImage> = match self.topics.get(name) {
                    Some(t) => (t.partitions.len() as i32..*total)
                        .map(|i| self.partition(i))
                        .collect(),
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
        }
    }
}
