//! Which API versions Brook implements, in one table. ApiVersions advertises exactly
//! this table and the connection refuses what it does not cover.

use kafka_protocol::messages::ApiKey;

/// (API, lowest, highest) version Brook implements.
///
/// Produce is advertised from v0 as Kafka 4 does (librdkafka decides which codecs it may
/// use from the advertised minimum), but v0–v2 requests are refused: they predate
/// record batch v2.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 4, 16),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // KIP-848 consumer groups, at Kafka 4.4's versions.
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // KIP-932 share groups, at Kafka 4.4's versions: ShareFetch/ShareAcknowledge v2
    // (a Brook patch of the vendored codec) add the record_limit acquire mode
    // (KIP-1206) and RENEW acknowledgements (KIP-1222).
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    // Share group offsets for admin tools; DescribeShareGroupOffsets v1 (with lag) is
    // a Brook patch of the vendored codec.
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    // SECURITY_DISABLED without `authorizer.class.name`, as Kafka without an authorizer.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Answered by the connection's SASL state machine on SASL listeners; elsewhere (and
    // once authenticated) ILLEGAL_SASL_STATE, as Kafka's request handler answers.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The versions Brook advertises for every API it implements.
pub fn supported_apis() -> impl Iterator<Item = (ApiKey, i16, i16)> {
    SUPPORTED.iter().copied()
}

/// The advertised range of `api`, if Brook implements it.
pub fn advertised(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|(_, min, max)| (*min, *max))
}

/// Whether a request of this version can be decoded and answered.
pub fn accepts(api: ApiKey, version: i16) -> bool {
    match advertised(api) {
        Some((min, max)) => version >= min.max(api.valid_versions().min) && version <= max,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised version can be decoded, so a client that picks any of them gets
    /// an answer rather than a closed connection. Produce alone advertises v0-v2 it
    /// refuses with an error response (see `SUPPORTED`).
    #[test]
    fn every_advertised_version_is_decodable() {
        for (api, min, max) in supported_apis() {
            let codec = api.valid_versions();
            assert!(
                max <= codec.max,
                "{api:?} advertises v{max} > codec v{}",
                codec.max
            );
            if api != ApiKey::Produce {
                assert!(
                    min >= codec.min,
                    "{api:?} advertises v{min} < codec v{}",
                    codec.min
                );
            }
        }
    }
}
