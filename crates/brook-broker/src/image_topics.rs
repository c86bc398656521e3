//! The group coordinator's view of the topics: the applied metadata image, as
//! `brook-coord`'s [`TopicsView`].

use brook_coord::TopicsView;
use brook_meta::MetadataImage;
use uuid::Uuid;

use crate::names;

/// The coordinator's view of the topics: the applied metadata image.
pub(crate) struct ImageTopics<'a>(pub(crate) &'a MetadataImage);

impl TopicsView for ImageTopics<'_> {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.topic(name).map(|t| {
            (
                t.topic_id,
                i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
            )
        })
    }

    fn topic_name(&self, id: &Uuid) -> Option<String> {
        self.0.topic_by_id(id).map(|t| t.name.clone())
    }

    fn each_topic(&self, each: &mut dyn FnMut(&str, bool)) {
        for (name, topic) in self.0.topics.iter() {
            each(name, topic.internal || names::is_internal(name));
        }
    }

    /// The image's record count: it grows with every metadata change, topics included.
    fn topics_version(&self) -> i64 {
        i64::try_from(self.0.record_count).unwrap_or(i64::MAX)
    }

    /// The `broker.rack` of every broker holding a replica (adding and removing
    /// replicas of a reassignment included), distinct and sorted.
    fn partition_racks(&self, name: &str, partition: i32) -> Vec<String> {
        let Some(p) = self.0.partition(name, partition) else {
            return Vec::new();
        };
        let mut racks: Vec<String> = p
            .replicas
            .iter()
            .filter_map(|id| self.0.brokers.get(id)?.rack.clone())
            .collect();
        racks.sort_unstable();
        racks.dedup();
        racks
    }
}

#[cfg(test)]
mod tests {
    use brook_meta::MetadataRecord;

    use super::*;

    #[test]
    fn partition_racks_are_the_distinct_racks_of_the_replicas() {
        let mut image = MetadataImage::new(1);
        for (id, rack) in [(1, Some("b")), (2, Some("a")), (3, Some("b")), (4, None)] {
            image.apply(&MetadataRecord::BrokerRegistered {
                id,
                host: "127.0.0.1".into(),
                port: 9092,
                incarnation: 1,
                listeners: Vec::new(),
                rack: rack.map(str::to_owned),
            });
        }
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            topic_id: Uuid::new_v4(),
            partitions: 3,
            replication_factor: 2,
            configs: Default::default(),
            internal: false,
            assignment: vec![vec![1, 3], vec![3, 2], vec![4]],
        });
        let topics = ImageTopics(&image);
        assert_eq!(topics.partition_racks("t", 0), ["b"]);
        assert_eq!(topics.partition_racks("t", 1), ["a", "b"]);
        assert!(topics.partition_racks("t", 2).is_empty(), "no rack");
        assert!(topics.partition_racks("t", 3).is_empty(), "no partition");
        assert!(topics.partition_racks("u", 0).is_empty(), "no topic");
    }
}
