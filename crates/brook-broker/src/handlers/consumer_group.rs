//! KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe. The
//! decisions are `brook-coord`'s; this module gives them the topics of the applied
//! metadata image, appends the records and answers.

use brook_coord::TopicsView;
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
use crate::image_topics::ImageTopics;
use crate::metadata::MetadataView;

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
