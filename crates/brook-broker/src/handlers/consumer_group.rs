//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe. The
//! decisions are `brook-coord`'s; this module gives them the topics of the applied
//! metadata image, appends the records and answers.

use brook_coord::TopicsView;
use brook_meta::MetadataImage;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::groups::Groups;
use crate::handlers::RequestContext;
use crate::metadata::MetadataView;
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

/// The image's topics as the principal of one heartbeat sees them: a regular
/// expression resolves only to topics `may_describe` allows (the router's ACL check).
struct HeartbeatTopics<'a> {
    image: ImageTopics<'a>,
    may_describe: &'a (dyn Fn(&str) -> bool + Sync),
}

impl TopicsView for HeartbeatTopics<'_> {
    fn topic(&self, name: &str) -> Option<(Uuid, i32)> {
        self.image.topic(name)
    }

    fn topic_name(&self, id: &Uuid) -> Option<String> {
        self.image.topic_name(id)
    }

    fn each_topic(&self, each: &mut dyn FnMut(&str, bool)) {
        self.image.each_topic(each)
    }

    fn topics_version(&self) -> i64 {
        self.image.topics_version()
    }

    fn may_describe(&self, name: &str) -> bool {
        (self.may_describe)(name)
    }

    fn partition_racks(&self, name: &str, partition: i32) -> Vec<String> {
        self.image.partition_racks(name, partition)
    }
}

/// ConsumerGroupHeartbeat; `may_describe` says which topics the request's principal
/// may DESCRIBE (what a regular expression may resolve to).
pub async fn heartbeat(
    groups: &Groups,
    meta: &MetadataView,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    may_describe: &(dyn Fn(&str) -> bool + Sync),
) -> ConsumerGroupHeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let fail = |code: i16, message: String| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    if !groups.coordinates(&group_id) {
        return fail(
            ResponseError::NotCoordinator.code(),
            format!("This broker does not coordinate group {group_id}."),
        );
    }
    let image = meta.image();
    let client_host = ctx.client_host();
    let result = groups
        .apply(&group_id, |c| {
            c.consumer_group_heartbeat_effects(
                version,
                &req,
                ctx.client_id(),
                &client_host,
                &HeartbeatTopics {
                    image: ImageTopics(&image),
                    may_describe,
                },
                now_ms(),
            )
        })
        .await;
    result.unwrap_or_else(|e| fail(e.code, e.message))
}

pub fn describe(
    groups: &Groups,
    meta: &MetadataView,
    req: ConsumerGroupDescribeRequest,
    version: i16,
) -> ConsumerGroupDescribeResponse {
    let image = meta.image();
    let mut response = groups.read(|g| {
        g.coordinator
            .consumer_group_describe(version, &req, &ImageTopics(&image))
    });
    for g in response.groups.iter_mut() {
        if !groups.coordinates(&g.group_id.0) {
            *g = DescribedGroup::default()
                .with_group_id(g.group_id.clone())
                .with_error_code(ResponseError::NotCoordinator.code());
        } else if req.include_authorized_operations && g.error_code == 0 {
            g.authorized_operations = super::authorized_ops::GROUP;
        }
    }
    response
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
