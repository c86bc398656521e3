//! KIP-932 share groups: ShareGroupHeartbeat and ShareGroupDescribe. The decisions are
//! `brook-coord`'s; this module gives them the topics of the applied metadata image,
//! appends the records and answers, and tells `Shares` which members left.

use brook_coord::Effects;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{
    ShareGroupDescribeRequest, ShareGroupDescribeResponse, ShareGroupHeartbeatRequest,
    ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::clock::now_ms;
use crate::groups::Groups;
use crate::handlers::RequestContext;
use crate::image_topics::ImageTopics;
use crate::metadata::MetadataView;
use crate::shares::Shares;

pub async fn heartbeat(
    groups: &Groups,
    shares: &Shares,
    meta: &MetadataView,
    ctx: &RequestContext,
    req: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let fail = |code: i16, message: String| {
        ShareGroupHeartbeatResponse::default()
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
            let (response, records) = c.share_group_heartbeat(
                &req,
                ctx.client_id(),
                &client_host,
                &ImageTopics(&image),
                now_ms(),
            );
            (
                response,
                Effects {
                    replies: vec![],
                    records,
                },
            )
        })
        .await;
    release_departed(groups, shares).await;
    result.unwrap_or_else(|e| fail(e.code, e.message))
}

/// Releases what members that left share groups held, and writes the state that changed.
pub async fn release_departed(groups: &Groups, shares: &Shares) {
    let departed = groups.read_mut(|c| c.take_departed_share_members());
    if departed.is_empty() {
        return;
    }
    let changed = shares.members_departed(&departed);
    for (group, _) in &departed {
        let keys: Vec<_> = changed
            .iter()
            .filter(|k| &k.group == group)
            .cloned()
            .collect();
        let _ = shares.persist(group, keys).await;
    }
}

pub fn describe(
    groups: &Groups,
    meta: &MetadataView,
    req: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let image = meta.image();
    let mut response = groups.read(|g| {
        g.coordinator
            .share_group_describe(&req, &ImageTopics(&image))
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
