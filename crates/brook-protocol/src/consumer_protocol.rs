//! The consumer protocol's embedded messages: the subscription a classic consumer sends
//! as its JoinGroup metadata, and the assignment the leader hands out in SyncGroup. Both
//! are an `i16` version followed by that version of `ConsumerProtocolSubscription` /
//! `ConsumerProtocolAssignment`. A version newer than the newest known is read as the
//! newest (its extra fields come after the known ones), as Kafka reads them.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// The newest ConsumerProtocolSubscription / ConsumerProtocolAssignment version.
pub const MAX_VERSION: i16 = 3;

/// A decoded subscription.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub topics: Vec<String>,
    /// Partitions the member owned when it joined (v1+), by topic name.
    pub owned: Vec<(String, Vec<i32>)>,
    pub rack_id: Option<String>,
}

/// Partitions by topic name, in the message's order.
pub type Assigned = Vec<(String, Vec<i32>)>;

/// The version prefix, clamped to [`MAX_VERSION`], and the bytes after it; `None` for
/// fewer than two bytes or a negative version.
pub fn split_version(bytes: &[u8]) -> Option<(i16, Bytes)> {
    let (head, rest) = bytes.split_first_chunk::<2>()?;
    let version = i16::from_be_bytes(*head);
    (version >= 0).then(|| (version.min(MAX_VERSION), Bytes::copy_from_slice(rest)))
}

/// Reads a subscription; `None` when the bytes are not one.
pub fn decode_subscription(bytes: &[u8]) -> Option<Subscription> {
    let (version, mut rest) = split_version(bytes)?;
    let s = ConsumerProtocolSubscription::decode(&mut rest, version).ok()?;
    Some(Subscription {
        topics: s.topics.iter().map(|t| t.to_string()).collect(),
        owned: s
            .owned_partitions
            .into_iter()
            .map(|tp| (tp.topic.to_string(), tp.partitions))
            .collect(),
        rack_id: s.rack_id.map(|r| r.to_string()),
    })
}

/// Reads an assignment; empty bytes are an empty assignment (what a member gets before
/// the leader assigned anything), `None` when the bytes are not one.
pub fn decode_assignment(bytes: &[u8]) -> Option<Assigned> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let (version, mut rest) = split_version(bytes)?;
    let a = ConsumerProtocolAssignment::decode(&mut rest, version).ok()?;
    Some(
        a.assigned_partitions
            .into_iter()
            .map(|tp| (tp.topic.to_string(), tp.partitions))
            .collect(),
    )
}

/// Writes an assignment at `version` (clamped to 0..=[`MAX_VERSION`]).
pub fn encode_assignment<S: AsRef<str>>(
    version: i16,
    assigned: impl IntoIterator<Item = (S, Vec<i32>)>,
) -> Bytes {
    let version = version.clamp(0, MAX_VERSION);
    let value = ConsumerProtocolAssignment::default().with_assigned_partitions(
        assigned
            .into_iter()
            .map(|(topic, partitions)| {
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.as_ref().to_owned())))
                    .with_partitions(partitions)
            })
            .collect(),
    );
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    // Every field exists in every version: encoding cannot fail.
    value
        .encode(&mut buf, version)
        .expect("a consumer protocol assignment encodes at any version");
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as Owned;

    fn subscription(version: i16, topics: &[&str]) -> Bytes {
        let s = ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| StrBytes::from_string(t.to_string()))
                    .collect(),
            )
            .with_owned_partitions(vec![Owned::default()
                .with_topic(TopicName(StrBytes::from_static_str("o")))
                .with_partitions(vec![1])])
            .with_rack_id(Some(StrBytes::from_static_str("r1")));
        let mut buf = BytesMut::new();
        buf.put_i16(version);
        s.encode(&mut buf, version).unwrap();
        buf.freeze()
    }

    #[test]
    fn subscriptions_of_each_version_decode() {
        let v0 = decode_subscription(&subscription(0, &["a", "b"])).unwrap();
        assert_eq!(v0.topics, ["a", "b"]);
        assert!(v0.owned.is_empty() && v0.rack_id.is_none());
        let v3 = decode_subscription(&subscription(3, &["c"])).unwrap();
        assert_eq!(v3.topics, ["c"]);
        assert_eq!(v3.owned, [("o".to_string(), vec![1])]);
        assert_eq!(v3.rack_id.as_deref(), Some("r1"));
        // A newer version is read as the newest known one; its extra fields follow.
        let mut v9 = BytesMut::from(&subscription(3, &["d"])[..]);
        v9[..2].copy_from_slice(&9i16.to_be_bytes());
        v9.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(decode_subscription(&v9).unwrap().topics, ["d"]);
    }

    #[test]
    fn garbage_is_none_not_a_panic() {
        for bad in [&[][..], &[0], &[0xff, 0xff, 0, 0], &[0, 0, 0, 0, 0, 9]] {
            assert_eq!(decode_subscription(bad), None, "{bad:?}");
        }
        assert_eq!(decode_assignment(&[0]), None);
        assert_eq!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]), None);
        assert_eq!(decode_assignment(&[]), Some(vec![]));
    }

    #[test]
    fn assignments_round_trip_at_every_version() {
        for version in [-1, 0, 1, 3, 7] {
            let bytes = encode_assignment(version, [("t", vec![0, 2]), ("u", vec![1])]);
            assert_eq!(
                i16::from_be_bytes([bytes[0], bytes[1]]),
                version.clamp(0, MAX_VERSION)
            );
            assert_eq!(
                decode_assignment(&bytes).unwrap(),
                [("t".to_string(), vec![0, 2]), ("u".to_string(), vec![1])]
            );
        }
    }
}
