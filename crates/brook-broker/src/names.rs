//! Topic and partition names: validation, limits, the internal topics and how keys map
//! to their partitions.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::error::ApiError;

/// Kafka's limit on topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so a typo cannot open a million files.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// The group coordinator's topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's topic.
pub const TXN_TOPIC: &str = "__transaction_state";

pub type TopicPartition = (Arc<str>, i32);

/// Topics only the broker writes.
pub fn is_internal(topic: &str) -> bool {
    topic == OFFSETS_TOPIC || topic == TXN_TOPIC
}

pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::new(
            ResponseError::InvalidTopicException,
            format!("invalid topic name '{name}': {why}"),
        ))
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return bad("longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return bad("only ASCII alphanumerics, '.', '_' and '-' are allowed");
    }
    Ok(())
}

/// Java's `String.hashCode`, which Kafka uses to map a group or transactional id to a
/// partition of its coordinator's topic.
fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// Kafka's `partitionFor`: the hash masked positive, modulo the partition count.
pub fn coordinator_partition_for(key: &str, partitions: i32) -> i32 {
    (java_hash(key) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_matches_kafka() {
        assert_eq!(java_hash(""), 0);
        assert_eq!(java_hash("a"), 97);
        assert_eq!(java_hash("ab"), 97 * 31 + 98);
        assert!((0..50).contains(&coordinator_partition_for("any-group", 50)));
    }

    #[test]
    fn topic_names() {
        for (name, ok) in [
            ("orders", true),
            ("a.b_c-d", true),
            ("", false),
            ("..", false),
            ("a/b", false),
        ] {
            assert_eq!(validate_topic_name(name).is_ok(), ok, "{name}");
        }
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
