//! Client quotas on the request path: what a request counts against its client's
//! quotas (`crate::client_quotas`), and the throttle time its response carries.
//!
//! Produce counts its request's bytes, Fetch its response's bytes, and every request
//! the time its handler kept a thread busy (remote waits excluded). A throttled Fetch
//! is answered with no records, its bytes taken back, as Kafka does; other requests
//! are answered in full. Either way the connection then reads nothing more from the
//! client for the throttle time, or, for a client that does not throttle itself on
//! `throttle_time_ms` ([`client_throttles`]), holds the response back that long. Replica fetches and the controller listener are
//! exempt. A response the controller mutation quota throttled (`crate::mutation_quotas`)
//! mutes the connection the same way.

use std::sync::Arc;
use std::time::Duration;

use brook_meta::{MetadataImage, QuotaKind};
use kafka_protocol::messages::{ApiKey, FetchResponse, RequestKind};

use crate::client_quotas::{self, thread_time_percent, ClientQuotaRates};
use crate::fetch_session::FetchSessions;
use crate::handlers::fetch::{replica_of, FetchReply};
use crate::router::{Response, Services};
use crate::session::Session;

/// A request that counts against its client's quotas.
pub(super) struct Metered<'a> {
    rates: &'a ClientQuotaRates,
    image: Arc<MetadataImage>,
    user: &'a str,
    client_id: String,
    api: ApiKey,
}

/// Whether `request` counts against quotas (none are set: it does not), bounding a
/// Fetch's bytes to what its client's quota allows in one go.
pub(super) fn meter<'a>(
    services: &'a Services,
    session: &'a Session,
    client_id: Option<&str>,
    api: ApiKey,
    request: &mut RequestKind,
) -> Option<Metered<'a>> {
    if session.listener.controller {
        return None;
    }
    let image = services.metadata.image();
    if !client_quotas::active(&image.client_quotas) {
        return None;
    }
    let user = session.principal.name.as_str();
    let client_id = client_id.unwrap_or_default().to_string();
    if let RequestKind::Fetch(r) = request {
        if replica_of(r).is_some() {
            return None;
        }
        let cap =
            services
                .quotas
                .max_in_window(&image.client_quotas, QuotaKind::Fetch, user, &client_id);
        if let Some(cap) = cap {
            let cap = cap.clamp(1.0, i32::MAX as f64) as i32;
            r.max_bytes = r.max_bytes.min(cap);
        }
    }
    Some(Metered {
        rates: &services.quotas,
        image,
        user,
        client_id,
        api,
    })
}

impl Metered<'_> {
    /// Records what the request brought: `request_bytes` (its frame) and `busy` (its
    /// handler's own time), throttling its response as needed. Returns how long the
    /// connection stays muted, in ms.
    pub(super) fn finish(
        self,
        request_bytes: usize,
        busy: Duration,
        response: &mut Option<Response>,
        fetch_sessions: &FetchSessions,
    ) -> u64 {
        let quotas = &self.image.client_quotas;
        let (user, client) = (self.user, self.client_id.as_str());
        let now = self.rates.now_ms();
        let record = |kind, value| self.rates.record(quotas, kind, user, client, value, now);
        let fetched = match (&*response, self.api) {
            (Some(Response::Fetch(reply)), ApiKey::Fetch) => Some(fetch_bytes(reply)),
            _ => None,
        };
        let bandwidth = match (self.api, fetched) {
            (ApiKey::Produce, _) => record(QuotaKind::Produce, request_bytes as f64),
            (ApiKey::Fetch, Some(bytes)) => record(QuotaKind::Fetch, bytes as f64),
            _ => 0,
        };
        let request = record(QuotaKind::Request, thread_time_percent(busy));
        let throttle = bandwidth.max(request);
        // A controller mutation quota (KIP-599) may have throttled the response
        // already; the longer wait holds.
        let mutation = response
            .as_ref()
            .map_or(0, |r| r.throttle_time_ms().max(0) as u64);
        if throttle <= mutation {
            return mutation;
        }
        // The records are not sent, so they do not count. An incremental fetch session
        // goes on: the empty answer keeps its id, and the next fetch reads and answers
        // the withheld partitions again. Otherwise (a sessionless fetch, or the one that
        // opened the session) the answer carries session id 0, and a client in a
        // session starts over with a full fetch.
        let withheld = match (fetched, response.as_ref()) {
            (Some(bytes), Some(Response::Fetch(reply))) => {
                let id = reply.response.session_id;
                let kept = id != 0 && fetch_sessions.unsend(id, &reply.response);
                Some((bytes, if kept { id } else { 0 }))
            }
            _ => None,
        };
        if let Some((bytes, session_id)) = withheld {
            self.rates
                .unrecord(quotas, QuotaKind::Fetch, user, client, bytes as f64, now);
            *response = Some(Response::Fetch(FetchReply {
                response: FetchResponse::default().with_session_id(session_id),
                records: Vec::new(),
            }));
        }
        if let Some(r) = response.as_mut() {
            r.set_throttle_time_ms(throttle.min(i32::MAX as u64) as i32);
        }
        tracing::debug!(
            user,
            client_id = client,
            throttle_ms = throttle,
            bandwidth,
            request,
            "client quota exceeded: throttling"
        );
        throttle
    }
}

/// The record bytes a Fetch response carries: from segment files, and any held in
/// the response itself.
fn fetch_bytes(reply: &FetchReply) -> usize {
    let inline: usize = reply
        .response
        .responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .sum();
    inline + reply.records.iter().map(|r| r.region.len).sum::<usize>()
}

/// Whether a client throttles itself on a response's `throttle_time_ms` (KIP-219), by
/// Kafka's `shouldClientThrottle` of each response: from these versions on, the broker
/// sends the response at once and then mutes the connection; before them (and for the
/// APIs Kafka never marked) it holds the response back for the throttle time instead.
pub(super) fn client_throttles(api: ApiKey, version: i16) -> bool {
    use ApiKey::*;
    let since = match api {
        AlterPartitionReassignments
        | AlterUserScramCredentials
        | DescribeTopicPartitions
        | DescribeUserScramCredentials
        | ElectLeaders
        | ListPartitionReassignments => 0,
        IncrementalAlterConfigs | OffsetDelete => 0,
        AddOffsetsToTxn
        | AddPartitionsToTxn
        | AlterConfigs
        | AlterReplicaLogDirs
        | CreateAcls
        | CreateDelegationToken
        | CreatePartitions
        | DeleteAcls
        | DeleteGroups
        | DeleteRecords
        | DescribeAcls
        | DescribeDelegationToken
        | DescribeLogDirs
        | EndTxn
        | ExpireDelegationToken
        | InitProducerId
        | RenewDelegationToken
        | TxnOffsetCommit => 1,
        ApiVersions | DeleteTopics | DescribeConfigs | DescribeGroups | FindCoordinator
        | Heartbeat | LeaveGroup | ListGroups | SyncGroup => 2,
        CreateTopics | JoinGroup | ListOffsets => 3,
        OffsetCommit | OffsetFetch => 4,
        Metadata | Produce => 6,
        Fetch => 8,
        _ => return false,
    };
    version >= since
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_versions_and_unmarked_apis_are_throttled_by_the_broker() {
        assert!(client_throttles(ApiKey::Produce, 6));
        assert!(!client_throttles(ApiKey::Produce, 5));
        assert!(client_throttles(ApiKey::Fetch, 8));
        assert!(!client_throttles(ApiKey::Fetch, 7));
        assert!(client_throttles(ApiKey::ElectLeaders, 0));
        // Kafka never marked these: the broker delays their responses.
        assert!(!client_throttles(ApiKey::DescribeClientQuotas, 1));
        assert!(!client_throttles(ApiKey::ConsumerGroupHeartbeat, 0));
    }
}
