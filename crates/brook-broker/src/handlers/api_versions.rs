use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::ApiVersionsResponse;

use crate::apis::supported_apis;

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
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}
