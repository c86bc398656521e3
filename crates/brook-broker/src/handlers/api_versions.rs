use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::protocol::StrBytes;

use crate::apis::supported_apis;

/// The feature flag of the group coordinator's protocols and its level here: 1 = the
/// consumer rebalance protocol (KIP-848) is on, as in Kafka 4.
const GROUP_VERSION_FEATURE: &str = "group.version";
const GROUP_VERSION: i16 = 1;
/// KIP-932: `share.version` 1 turns share groups on (Kafka 4.1+); admin tools look
/// for it before they describe or alter share groups.
const SHARE_VERSION_FEATURE: &str = "share.version";
const SHARE_VERSION: i16 = 1;
/// Brook's features never change at run time, so their epoch is a constant.
const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// The ApiVersions answer: every implemented API and its version range.
/// Also sent, as v0, with UNSUPPORTED_VERSION when a client asks for a version Brook
/// does not know (KIP-511), so the client can retry with one it does.
pub fn response(error_code: i16) -> ApiVersionsResponse {
    let api_keys = supported_apis()
        .map(|(key, min, max)| {
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    // KIP-848: Kafka enables the consumer protocol with `group.version` 1, and clients
    // (the Java admin client, librdkafka) look for it. ApiVersions v3+ carries features.
    let features = [
        (GROUP_VERSION_FEATURE, GROUP_VERSION),
        (SHARE_VERSION_FEATURE, SHARE_VERSION),
    ];
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
        .with_supported_features(
            features
                .iter()
                .map(|(name, level)| {
                    SupportedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version(0)
                        .with_max_version(*level)
                })
                .collect(),
        )
        .with_finalized_features_epoch(FINALIZED_FEATURES_EPOCH)
        .with_finalized_features(
            features
                .iter()
                .map(|(name, level)| {
                    FinalizedFeatureKey::default()
                        .with_name(StrBytes::from_static_str(name))
                        .with_min_version_level(*level)
                        .with_max_version_level(*level)
                })
                .collect(),
        )
}
