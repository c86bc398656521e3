//! The admin JSON API, `/api/v1/...` (listed in the README, "Admin API and console").
//!
//! Reads come from the applied metadata image, the local replicas and the Kafka
//! handlers; every action is a Kafka request handed to `router::dispatch`, exactly as
//! one from a client would be, so it is validated by the same code and fails with the
//! same Kafka error: `{"error": "TOPIC_ALREADY_EXISTS", "code": 36, "message": ...}`
//! with an HTTP status that fits (see [`status_of`]).
//!
//! Actions (any method but GET/HEAD) must carry `X-Brook-Request` and, when the
//! browser sends an `Origin`, come from the listener's own origin: a page elsewhere
//! cannot send that header without a CORS preflight, which this listener never allows.
//! Each request runs as the principal `auth` found (User:ANONYMOUS without
//! `admin.authentication`): its Kafka requests are authorized as that principal's, and
//! its reads of the image show only what it may DESCRIBE.

mod browse;
mod cluster;
mod groups;
mod topics;

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use kafka_protocol::error::ResponseError;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::limits::PeerAddr;
use super::AdminState;
use crate::handlers::RequestContext;
use crate::router::{self, Services};

type State = std::sync::Arc<AdminState>;

/// The header an action must carry (any value; the console sends `1`).
pub const ACTION_HEADER: &str = "x-brook-request";
/// The client id the API's Kafka requests carry (in the broker's logs and group
/// member lists).
const CLIENT_ID: &str = "brook-admin-api";
/// The `timeout_ms` of the API's admin requests.
pub const KAFKA_TIMEOUT_MS: i32 = 30_000;

/// The version of each Kafka request the API sends (each one the broker accepts,
/// tested below).
pub mod v {
    pub const CREATE_TOPICS: i16 = 7;
    pub const DELETE_TOPICS: i16 = 6;
    pub const INCREMENTAL_ALTER_CONFIGS: i16 = 1;
    pub const CREATE_PARTITIONS: i16 = 3;
    pub const DELETE_RECORDS: i16 = 2;
    pub const DESCRIBE_CONFIGS: i16 = 4;
    pub const LIST_GROUPS: i16 = 5;
    pub const DESCRIBE_GROUPS: i16 = 5;
    pub const OFFSET_FETCH: i16 = 8;
    pub const OFFSET_COMMIT: i16 = 8;
    pub const DELETE_GROUPS: i16 = 2;
    pub const LIST_OFFSETS: i16 = 7;
    /// The last version that names topics rather than giving their ids.
    pub const FETCH: i16 = 12;
}

pub fn routes() -> Router<State> {
    Router::new()
        .route("/cluster", get(cluster::describe))
        .route("/stats", get(cluster::stats))
        .route("/topics", get(topics::list).post(topics::create))
        .route(
            "/topics/{topic}",
            get(topics::describe).delete(topics::delete),
        )
        .route("/topics/{topic}/configs", patch(topics::alter_configs))
        .route("/topics/{topic}/partitions", post(topics::add_partitions))
        .route(
            "/topics/{topic}/delete-records",
            post(topics::delete_records),
        )
        .route("/topics/{topic}/messages", get(browse::messages))
        .route("/groups", get(groups::list))
        .route(
            "/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route("/groups/{group}/reset-offsets", post(groups::reset_offsets))
        .fallback(not_found)
        .layer(middleware::from_fn(guard_actions))
}

/// A failed API call: an HTTP status and a JSON body naming the error (Kafka's name
/// when a Kafka handler refused it).
#[derive(Debug, thiserror::Error)]
#[error("{error}: {message}")]
pub struct ApiFailure {
    status: StatusCode,
    error: Cow<'static, str>,
    code: Option<i16>,
    message: String,
}

impl ApiFailure {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> Self {
        ApiFailure {
            status,
            error: Cow::Borrowed(error),
            code: None,
            message: message.into(),
        }
    }

    /// Kafka's INVALID_REQUEST, for malformed input the API itself refuses.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::kafka(ResponseError::InvalidRequest.code(), Some(&message.into()))
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::kafka(
            ResponseError::UnknownServerError.code(),
            Some(&message.into()),
        )
    }

    /// A Kafka error code (non-zero) with the handler's message, or the error's name
    /// when the handler gave none.
    pub fn kafka(code: i16, message: Option<&str>) -> Self {
        let known = ResponseError::try_from_code(code);
        let message = match message {
            Some(m) if !m.is_empty() => m.to_string(),
            _ => name_of(code),
        };
        ApiFailure {
            status: status_of(known),
            error: Cow::Owned(name_of(code)),
            code: Some(code),
            message,
        }
    }

    /// `Ok` for error code 0.
    pub fn check(code: i16, message: Option<&str>) -> Result<(), ApiFailure> {
        if code == 0 {
            Ok(())
        } else {
            Err(Self::kafka(code, message))
        }
    }

    #[cfg(test)]
    pub fn error(&self) -> &str {
        &self.error
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            code: Option<i16>,
            message: &'a str,
        }
        let body = Body {
            error: &self.error,
            code: self.code,
            message: &self.message,
        };
        json(self.status, &body)
    }
}

/// Kafka's name for an error code.
pub fn name_of(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(_)) | None => format!("UNKNOWN_ERROR_{code}"),
        Some(e) => error_name(e),
    }
}

/// Kafka's name for an error (`TopicAlreadyExists` → `TOPIC_ALREADY_EXISTS`).
pub fn error_name(e: ResponseError) -> String {
    let camel = format!("{e:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The HTTP status for a Kafka error: missing things 404, conflicts 409, what a retry
/// may fix (no leader or coordinator here yet, timeouts) 503, broker faults 500, the
/// rest (bad input, policy) 400.
pub fn status_of(e: Option<ResponseError>) -> StatusCode {
    use ResponseError as E;
    match e {
        None => StatusCode::INTERNAL_SERVER_ERROR,
        Some(
            E::UnknownTopicOrPartition
            | E::UnknownTopicId
            | E::GroupIdNotFound
            | E::ResourceNotFound,
        ) => StatusCode::NOT_FOUND,
        Some(
            E::TopicAlreadyExists
            | E::NonEmptyGroup
            | E::GroupSubscribedToTopic
            | E::ReassignmentInProgress
            | E::ConcurrentTransactions,
        ) => StatusCode::CONFLICT,
        Some(E::UnknownServerError | E::KafkaStorageError | E::CorruptMessage) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Some(
            E::TopicAuthorizationFailed
            | E::GroupAuthorizationFailed
            | E::ClusterAuthorizationFailed,
        ) => StatusCode::FORBIDDEN,
        Some(e) if e.is_retriable() => StatusCode::SERVICE_UNAVAILABLE,
        Some(E::NotCoordinator | E::CoordinatorNotAvailable | E::RequestTimedOut) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Some(_) => StatusCode::BAD_REQUEST,
    }
}

/// A JSON response.
pub fn json(status: StatusCode, body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot encode an admin API response");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the response\n",
            )
                .into_response()
        }
    }
}

pub fn ok(body: &impl Serialize) -> Result<Response, ApiFailure> {
    Ok(json(StatusCode::OK, body))
}

async fn not_found() -> ApiFailure {
    ApiFailure::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such API endpoint")
}

/// Refuses an action (any method but GET and HEAD) without [`ACTION_HEADER`], or from
/// another origin, or, once there is authentication, from a caller not allowed to.
async fn guard_actions(request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    if let Err(e) = authorize(request.headers()) {
        tracing::info!(method = %request.method(), path = %request.uri().path(), error = %e, "admin action refused");
        return e.into_response();
    }
    next.run(request).await
}

/// The checks an action passes before it runs. Issue 15 (TLS and SASL) adds the
/// caller's identity here, with the Kafka listeners' authentication options.
pub fn authorize(headers: &HeaderMap) -> Result<(), ApiFailure> {
    if !headers.contains_key(ACTION_HEADER) {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            "MISSING_ACTION_HEADER",
            format!("actions must carry the header {ACTION_HEADER}: 1"),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, rest)| rest);
        if host.is_none() || origin_host != host {
            return Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                "CROSS_ORIGIN_REQUEST",
                "actions are only accepted from the console's own origin",
            ));
        }
    }
    Ok(())
}

/// A JSON body of type `T`; an empty body reads as `{}`. Bodies must say they are
/// JSON (which also makes a cross-origin browser request need a preflight).
pub fn body<T: DeserializeOwned>(
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<T, ApiFailure> {
    let bytes = bytes.map_err(|e| {
        ApiFailure::new(
            e.status(),
            "BAD_REQUEST_BODY",
            format!("{e} (at most {} bytes)", super::limits::MAX_BODY_BYTES),
        )
    })?;
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { &bytes };
    if !bytes.is_empty() && !is_json(headers) && bytes != b"{}" {
        return Err(ApiFailure::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiFailure::invalid(format!("bad JSON body: {e}")))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"))
}

/// The one path parameter (a topic or group name).
pub fn path_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiFailure> {
    path.map(|Path(p)| p)
        .map_err(|e| ApiFailure::invalid(format!("bad path: {e}")))
}

/// `name=value` pairs of a query string, percent-decoded (`+` is a space). At most
/// [`MAX_QUERY_PAIRS`] pairs are read.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    const MAX_QUERY_PAIRS: usize = 32;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .take(MAX_QUERY_PAIRS)
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Sends Kafka requests through the router as a client on `peer` would.
pub struct Kafka<'a> {
    pub services: &'a Services,
    ctx: RequestContext,
}

impl<'a> Kafka<'a> {
    pub fn new(state: &'a AdminState, peer: PeerAddr) -> Self {
        Kafka {
            services: &state.services,
            ctx: RequestContext {
                client_id: Some(kafka_protocol::protocol::StrBytes::from_static_str(
                    CLIENT_ID,
                )),
                peer: peer.0,
                // A client of the first client listener, as the request's caller.
                session: std::sync::Arc::new(crate::session::Session::new(
                    std::sync::Arc::new(crate::session::ListenerInfo {
                        name: state.metadata.client_listener(),
                        protocol: crate::listeners::SecurityProtocol::Plaintext,
                        controller: false,
                    }),
                    super::auth::caller(),
                )),
                fetch_sessions: Default::default(),
            },
        }
    }

    /// Whether the caller may `op` the resource (always, without an authorizer): what
    /// the API's own reads show is what a Kafka client of the same principal could
    /// see.
    pub fn may(
        &self,
        image: &brook_meta::MetadataImage,
        op: crate::access::Op,
        resource_type: brook_meta::ResourceType,
        name: &str,
    ) -> bool {
        let access = &self.services.access;
        !access.enabled()
            || access
                .check(image, &self.ctx)
                .is_some_and(|c| c.allowed_quietly(op, resource_type, name))
    }

    pub async fn send(
        &self,
        api: kafka_protocol::messages::ApiKey,
        version: i16,
        request: kafka_protocol::messages::RequestKind,
    ) -> Option<router::Response> {
        debug_assert!(crate::apis::accepts(api, version), "{api:?} v{version}");
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_client_id(self.ctx.client_id.clone());
        router::dispatch(self.services, &self.ctx, &header, request).await
    }
}

impl Kafka<'_> {
    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.services.metadata.node_id()
    }

    /// The nodes to ask for what each broker owns: every registered broker of a
    /// cluster (fenced ones too: they may still coordinate), this one alone otherwise.
    pub fn brokers(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = if self.services.metadata.is_cluster() {
            self.services
                .metadata
                .image()
                .brokers
                .keys()
                .copied()
                .collect()
        } else {
            vec![]
        };
        if !ids.contains(&self.node_id()) {
            ids.push(self.node_id());
        }
        ids.sort_unstable();
        ids
    }

    /// Sends a request to broker `node`: through this broker's router when it is this
    /// broker, else over the inter-broker RPC to be run there as the same caller,
    /// within [`PEER_TIMEOUT`]. `Err` says which broker did not answer and why.
    pub async fn send_to(
        &self,
        node: i32,
        api: kafka_protocol::messages::ApiKey,
        version: i16,
        request: kafka_protocol::messages::RequestKind,
    ) -> Result<Option<router::Response>, ApiFailure> {
        let peers = self.services.internal.as_ref().map(|i| &i.peers);
        let Some(peers) = peers.filter(|_| node != self.node_id()) else {
            return Ok(self.send(api, version, request).await);
        };
        let unreachable = |why: String| {
            ApiFailure::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "BROKER_UNREACHABLE",
                format!("broker {node} did not answer {api:?}: {why}"),
            )
        };
        let header = kafka_protocol::messages::RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_client_id(self.ctx.client_id.clone());
        let frame = brook_protocol::request::encode_request(&header, &request)
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        let principal = &self.ctx.session.principal;
        let answer = peers
            .kafka(
                node,
                (&principal.principal_type, &principal.name),
                self.ctx.peer,
                &frame[4..],
                PEER_TIMEOUT,
            )
            .await
            .map_err(unreachable)?;
        let (_, body) = brook_protocol::request::decode_response(api, version, answer)
            .map_err(|e| unreachable(e.to_string()))?;
        Ok(Some(router::Response::Kind(body)))
    }
}

/// A broker a cluster-wide answer could not ask: the answer is partial.
#[derive(Debug, Serialize)]
pub struct Unanswered {
    pub broker: i32,
    pub error: String,
    pub message: String,
}

impl Unanswered {
    pub fn new(broker: i32, failure: ApiFailure) -> Self {
        Unanswered {
            broker,
            error: failure.error.into_owned(),
            message: failure.message,
        }
    }
}

/// How long the API waits for another broker's answer.
pub const PEER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `kafka_at!(k, node, DescribeGroups, 5, request)`: as [`kafka!`], on broker `node`
/// ([`Kafka::send_to`]).
macro_rules! kafka_at {
    ($k:expr, $node:expr, $api:ident, $version:expr, $request:expr) => {
        match $k
            .send_to(
                $node,
                kafka_protocol::messages::ApiKey::$api,
                $version,
                kafka_protocol::messages::RequestKind::$api($request),
            )
            .await
        {
            Ok(Some($crate::router::Response::Kind(
                kafka_protocol::messages::ResponseKind::$api(r),
            ))) => Ok(r),
            Err(e) => Err(e),
            Ok(_) => Err($crate::admin_http::api::ApiFailure::internal(concat!(
                stringify!($api),
                " gave no answer"
            ))),
        }
    };
}
use kafka_at;

/// `kafka!(k, CreateTopics, 7, request)`: sends a request through [`Kafka::send`] and
/// returns its typed response, or an internal failure if the router gave none.
macro_rules! kafka {
    ($k:expr, $api:ident, $version:expr, $request:expr) => {
        match $k
            .send(
                kafka_protocol::messages::ApiKey::$api,
                $version,
                kafka_protocol::messages::RequestKind::$api($request),
            )
            .await
        {
            Some($crate::router::Response::Kind(kafka_protocol::messages::ResponseKind::$api(
                r,
            ))) => Ok(r),
            _ => Err($crate::admin_http::api::ApiFailure::internal(concat!(
                stringify!($api),
                " gave no answer"
            ))),
        }
    };
}
use kafka;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names_are_kafkas() {
        let name = |e| error_name(e);
        assert_eq!(
            name(ResponseError::TopicAlreadyExists),
            "TOPIC_ALREADY_EXISTS"
        );
        assert_eq!(
            name(ResponseError::InvalidTopicException),
            "INVALID_TOPIC_EXCEPTION"
        );
        assert_eq!(name(ResponseError::NonEmptyGroup), "NON_EMPTY_GROUP");
        assert_eq!(
            name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
    }

    #[test]
    fn statuses_fit_the_error() {
        let s = |e| status_of(Some(e));
        assert_eq!(s(ResponseError::TopicAlreadyExists), StatusCode::CONFLICT);
        assert_eq!(
            s(ResponseError::UnknownTopicOrPartition),
            StatusCode::NOT_FOUND
        );
        assert_eq!(s(ResponseError::InvalidPartitions), StatusCode::BAD_REQUEST);
        assert_eq!(s(ResponseError::InvalidConfig), StatusCode::BAD_REQUEST);
        assert_eq!(
            s(ResponseError::NotCoordinator),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            s(ResponseError::KafkaStorageError),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn failures_carry_kafkas_name_code_and_message() {
        let f = ApiFailure::kafka(36, Some("Topic 'a' already exists."));
        assert_eq!(f.error(), "TOPIC_ALREADY_EXISTS");
        assert_eq!(f.code, Some(36));
        assert_eq!(f.message, "Topic 'a' already exists.");
        let f = ApiFailure::kafka(36, None);
        assert_eq!(f.message, "TOPIC_ALREADY_EXISTS");
        assert_eq!(ApiFailure::kafka(-7, None).error(), "UNKNOWN_ERROR_-7");
    }

    #[test]
    fn actions_need_the_header_and_the_same_origin() {
        let mut h = HeaderMap::new();
        assert_eq!(authorize(&h).unwrap_err().error(), "MISSING_ACTION_HEADER");
        h.insert(ACTION_HEADER, "1".parse().unwrap());
        assert!(
            authorize(&h).is_ok(),
            "no Origin: not a cross-site browser request"
        );
        h.insert(header::HOST, "127.0.0.1:9644".parse().unwrap());
        h.insert(header::ORIGIN, "http://127.0.0.1:9644".parse().unwrap());
        assert!(authorize(&h).is_ok());
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert_eq!(authorize(&h).unwrap_err().error(), "CROSS_ORIGIN_REQUEST");
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert_eq!(authorize(&h).unwrap_err().error(), "CROSS_ORIGIN_REQUEST");
    }

    #[test]
    fn bodies_must_be_json() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct B {
            count: i32,
        }
        let mut h = HeaderMap::new();
        let b = Bytes::from_static(b"{\"count\": 3}");
        assert_eq!(
            body::<B>(&h, Ok(b.clone())).unwrap_err().error(),
            "UNSUPPORTED_MEDIA_TYPE"
        );
        h.insert(
            header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert_eq!(body::<B>(&h, Ok(b.clone())).unwrap().count, 3);
        let bad = Bytes::from_static(b"{\"count\": \"x\"");
        assert_eq!(
            body::<B>(&h, Ok(bad)).unwrap_err().error(),
            "INVALID_REQUEST"
        );
    }

    #[test]
    fn query_strings_decode() {
        let pairs = query_pairs(Some("a=1&b=x%20y+z&&c"));
        assert_eq!(
            pairs,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x y z".into()),
                ("c".into(), "".into())
            ]
        );
        assert!(query_pairs(None).is_empty());
        assert_eq!(query_pairs(Some(&"a=1&".repeat(100))).len(), 32);
    }

    #[test]
    fn the_api_sends_versions_the_broker_accepts() {
        use kafka_protocol::messages::ApiKey;
        for (api, v) in [
            (ApiKey::CreateTopics, v::CREATE_TOPICS),
            (ApiKey::DeleteTopics, v::DELETE_TOPICS),
            (
                ApiKey::IncrementalAlterConfigs,
                v::INCREMENTAL_ALTER_CONFIGS,
            ),
            (ApiKey::CreatePartitions, v::CREATE_PARTITIONS),
            (ApiKey::DeleteRecords, v::DELETE_RECORDS),
            (ApiKey::DescribeConfigs, v::DESCRIBE_CONFIGS),
            (ApiKey::ListGroups, v::LIST_GROUPS),
            (ApiKey::DescribeGroups, v::DESCRIBE_GROUPS),
            (ApiKey::OffsetFetch, v::OFFSET_FETCH),
            (ApiKey::OffsetCommit, v::OFFSET_COMMIT),
            (ApiKey::DeleteGroups, v::DELETE_GROUPS),
            (ApiKey::ListOffsets, v::LIST_OFFSETS),
            (ApiKey::Fetch, v::FETCH),
        ] {
            assert!(crate::apis::accepts(api, v), "{api:?} v{v}");
        }
    }
}
