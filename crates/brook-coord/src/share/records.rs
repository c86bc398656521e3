//! Share group records of `__consumer_offsets`: Kafka 4's layout for the group's
//! membership, and one record type of Brook's own for a share-partition's state.
//!
//! Keys and values are encoded as the consumer group records are (`consumer::records`):
//! an i16 record type, then the key's fields with i16-length strings; a value is an i16
//! version (0) followed by its fields in Kafka's flexible encoding.
//!
//! ```text
//! type 10  ShareGroupMemberMetadata          key: group, member  value: rack id, client id,
//!                                                                 client host, subscribed topic names
//! type 11  ShareGroupMetadata                key: group          value: epoch, metadata hash
//! type 12  ShareGroupTargetAssignmentMetadata key: group         value: assignment epoch
//! type 13  ShareGroupTargetAssignmentMember  key: group, member  value: [topic id, partitions]
//! type 14  ShareGroupCurrentMemberAssignment key: group, member  value: member epoch,
//!                                                                 previous epoch, state (i8), partitions
//! type 9, 15 (ShareGroupPartitionMetadata, ShareGroupStatePartitionMetadata): read and ignored
//! type 100 Brook's share-partition state     key: group, topic id (16 bytes), partition (i32)
//!          value: start offset (i64), then [first offset (i64), last offset (i64),
//!          state (i8: 0 available, 2 acknowledged, 4 archived), delivery count (i16)]
//! ```
//!
//! Kafka keeps share-partition state in `__share_group_state`, written by a share
//! coordinator; Brook keeps it beside the group's other records (see `share::partition`).

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use crate::consumer::records::{
    len_u32, put_compact_nullable, put_compact_string, put_partitions, put_short_string,
    put_uvarint, Flex,
};
use crate::consumer::Assignment;
use crate::records::RecordError;

pub(crate) const PARTITION_METADATA: i16 = 9;
pub(crate) const MEMBER_METADATA: i16 = 10;
pub(crate) const METADATA: i16 = 11;
pub(crate) const TARGET_METADATA: i16 = 12;
pub(crate) const TARGET_MEMBER: i16 = 13;
pub(crate) const CURRENT_ASSIGNMENT: i16 = 14;
pub(crate) const STATE_PARTITION_METADATA: i16 = 15;
pub(crate) const PARTITION_STATE: i16 = 100;

const VALUE_VERSION: i16 = 0;

/// The key of a share group record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShareKey {
    /// Types 9 and 15: Kafka's, not written by Brook, skipped on replay.
    Ignored {
        kind: i16,
        group: String,
    },
    MemberMetadata {
        group: String,
        member: String,
    },
    Metadata {
        group: String,
    },
    TargetMetadata {
        group: String,
    },
    TargetMember {
        group: String,
        member: String,
    },
    CurrentAssignment {
        group: String,
        member: String,
    },
    PartitionState {
        group: String,
        topic: Uuid,
        partition: i32,
    },
}

impl ShareKey {
    pub(crate) fn group(&self) -> &str {
        match self {
            ShareKey::Ignored { group, .. }
            | ShareKey::MemberMetadata { group, .. }
            | ShareKey::Metadata { group }
            | ShareKey::TargetMetadata { group }
            | ShareKey::TargetMember { group, .. }
            | ShareKey::CurrentAssignment { group, .. }
            | ShareKey::PartitionState { group, .. } => group,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        match self {
            ShareKey::Ignored { kind, group } => {
                buf.put_i16(*kind);
                put_short_string(&mut buf, group);
            }
            ShareKey::Metadata { group } => {
                buf.put_i16(METADATA);
                put_short_string(&mut buf, group);
            }
            ShareKey::TargetMetadata { group } => {
                buf.put_i16(TARGET_METADATA);
                put_short_string(&mut buf, group);
            }
            ShareKey::MemberMetadata { group, member }
            | ShareKey::TargetMember { group, member }
            | ShareKey::CurrentAssignment { group, member } => {
                let kind = match self {
                    ShareKey::MemberMetadata { .. } => MEMBER_METADATA,
                    ShareKey::TargetMember { .. } => TARGET_MEMBER,
                    _ => CURRENT_ASSIGNMENT,
                };
                buf.put_i16(kind);
                put_short_string(&mut buf, group);
                put_short_string(&mut buf, member);
            }
            ShareKey::PartitionState {
                group,
                topic,
                partition,
            } => {
                buf.put_i16(PARTITION_STATE);
                put_short_string(&mut buf, group);
                buf.put_slice(topic.as_bytes());
                buf.put_i32(*partition);
            }
        }
        buf.freeze()
    }

    /// Decodes the fields after the record type `kind` (9 to 15, 100).
    pub(crate) fn decode(kind: i16, bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Flex::new(bytes);
        let group = r.short_string()?;
        let key = match kind {
            PARTITION_METADATA | STATE_PARTITION_METADATA => ShareKey::Ignored { kind, group },
            METADATA => ShareKey::Metadata { group },
            TARGET_METADATA => ShareKey::TargetMetadata { group },
            MEMBER_METADATA => ShareKey::MemberMetadata {
                group,
                member: r.short_string()?,
            },
            TARGET_MEMBER => ShareKey::TargetMember {
                group,
                member: r.short_string()?,
            },
            CURRENT_ASSIGNMENT => ShareKey::CurrentAssignment {
                group,
                member: r.short_string()?,
            },
            PARTITION_STATE => ShareKey::PartitionState {
                group,
                topic: r.uuid()?,
                partition: r.i32()?,
            },
            other => return Err(RecordError::UnknownKeyType(other)),
        };
        match r.remaining() {
            0 => Ok(key),
            n => Err(RecordError::TrailingKeyBytes(n)),
        }
    }
}

/// ShareGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberMetadata {
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
}

/// One range of a share-partition's in-flight records as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    /// 0 available, 2 acknowledged, 4 archived (Kafka's RecordState codes).
    pub state: i8,
    pub delivery_count: i16,
}

/// A share-partition's durable state: where it starts and what past that start is no
/// longer plainly available.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredPartitionState {
    pub start_offset: i64,
    pub batches: Vec<StoredBatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ShareValue {
    /// Types 9 and 15: not decoded.
    Ignored,
    MemberMetadata(MemberMetadata),
    Metadata {
        epoch: i32,
        metadata_hash: i64,
    },
    TargetMetadata {
        assignment_epoch: i32,
    },
    TargetMember(Assignment),
    CurrentAssignment {
        member_epoch: i32,
        previous_member_epoch: i32,
        assigned: Assignment,
    },
    PartitionState(StoredPartitionState),
}

/// The member state a share group member's current assignment record carries: always
/// stable (0), share groups have no revocation.
const MEMBER_STATE_STABLE: i8 = 0;

impl ShareValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(VALUE_VERSION);
        match self {
            ShareValue::Ignored => {}
            ShareValue::MemberMetadata(m) => {
                put_compact_nullable(&mut buf, m.rack_id.as_deref());
                put_compact_string(&mut buf, &m.client_id);
                put_compact_string(&mut buf, &m.client_host);
                put_uvarint(&mut buf, len_u32(m.subscribed_topic_names.len()) + 1);
                for name in &m.subscribed_topic_names {
                    put_compact_string(&mut buf, name);
                }
            }
            ShareValue::Metadata {
                epoch,
                metadata_hash,
            } => {
                buf.put_i32(*epoch);
                buf.put_i64(*metadata_hash);
            }
            ShareValue::TargetMetadata { assignment_epoch } => buf.put_i32(*assignment_epoch),
            ShareValue::TargetMember(a) => put_partitions(&mut buf, a),
            ShareValue::CurrentAssignment {
                member_epoch,
                previous_member_epoch,
                assigned,
            } => {
                buf.put_i32(*member_epoch);
                buf.put_i32(*previous_member_epoch);
                buf.put_i8(MEMBER_STATE_STABLE);
                put_partitions(&mut buf, assigned);
            }
            ShareValue::PartitionState(s) => {
                buf.put_i64(s.start_offset);
                put_uvarint(&mut buf, len_u32(s.batches.len()) + 1);
                for b in &s.batches {
                    buf.put_i64(b.first_offset);
                    buf.put_i64(b.last_offset);
                    buf.put_i8(b.state);
                    buf.put_i16(b.delivery_count);
                    put_uvarint(&mut buf, 0);
                }
            }
        }
        if !matches!(self, ShareValue::Ignored) {
            put_uvarint(&mut buf, 0);
        }
        buf.freeze()
    }

    pub(crate) fn decode(key: &ShareKey, bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Flex::new(bytes);
        match r.i16()? {
            VALUE_VERSION => {}
            other => return Err(RecordError::UnknownValueVersion(other)),
        }
        let value = match key {
            ShareKey::Ignored { .. } => return Ok(ShareValue::Ignored),
            ShareKey::MemberMetadata { .. } => {
                let rack_id = r.compact_nullable()?;
                let client_id = r.compact_string()?;
                let client_host = r.compact_string()?;
                let mut subscribed_topic_names = Vec::new();
                for _ in 0..r.compact_len()? {
                    subscribed_topic_names.push(r.compact_string()?);
                }
                ShareValue::MemberMetadata(MemberMetadata {
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                })
            }
            ShareKey::Metadata { .. } => ShareValue::Metadata {
                epoch: r.i32()?,
                metadata_hash: r.i64()?,
            },
            ShareKey::TargetMetadata { .. } => ShareValue::TargetMetadata {
                assignment_epoch: r.i32()?,
            },
            ShareKey::TargetMember { .. } => ShareValue::TargetMember(r.partitions()?),
            ShareKey::CurrentAssignment { .. } => {
                let member_epoch = r.i32()?;
                let previous_member_epoch = r.i32()?;
                r.i8()?;
                ShareValue::CurrentAssignment {
                    member_epoch,
                    previous_member_epoch,
                    assigned: r.partitions()?,
                }
            }
            ShareKey::PartitionState { .. } => {
                let start_offset = r.i64()?;
                let mut batches = Vec::new();
                for _ in 0..r.compact_len()? {
                    batches.push(StoredBatch {
                        first_offset: r.i64()?,
                        last_offset: r.i64()?,
                        state: r.i8()?,
                        delivery_count: r.i16()?,
                    });
                    r.tagged_fields()?;
                }
                ShareValue::PartitionState(StoredPartitionState {
                    start_offset,
                    batches,
                })
            }
        };
        r.tagged_fields()?;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cases() -> Vec<(ShareKey, ShareValue)> {
        let topic = Uuid::from_u128(7);
        let assignment: Assignment = [(topic, [0, 2].into_iter().collect())].into();
        let g = || "g".to_string();
        let m = || "m".to_string();
        vec![
            (
                ShareKey::MemberMetadata {
                    group: g(),
                    member: m(),
                },
                ShareValue::MemberMetadata(MemberMetadata {
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["t".into()],
                }),
            ),
            (
                ShareKey::Metadata { group: g() },
                ShareValue::Metadata {
                    epoch: 3,
                    metadata_hash: -9,
                },
            ),
            (
                ShareKey::TargetMetadata { group: g() },
                ShareValue::TargetMetadata {
                    assignment_epoch: 3,
                },
            ),
            (
                ShareKey::TargetMember {
                    group: g(),
                    member: m(),
                },
                ShareValue::TargetMember(assignment.clone()),
            ),
            (
                ShareKey::CurrentAssignment {
                    group: g(),
                    member: m(),
                },
                ShareValue::CurrentAssignment {
                    member_epoch: 3,
                    previous_member_epoch: 2,
                    assigned: assignment,
                },
            ),
            (
                ShareKey::PartitionState {
                    group: g(),
                    topic,
                    partition: 4,
                },
                ShareValue::PartitionState(StoredPartitionState {
                    start_offset: 10,
                    batches: vec![StoredBatch {
                        first_offset: 12,
                        last_offset: 15,
                        state: 2,
                        delivery_count: 1,
                    }],
                }),
            ),
        ]
    }

    #[test]
    fn round_trip_and_truncation() {
        for (key, value) in cases() {
            let kb = key.encode();
            let kind = i16::from_be_bytes([kb[0], kb[1]]);
            assert_eq!(ShareKey::decode(kind, &kb[2..]).unwrap(), key);
            let vb = value.encode();
            assert_eq!(ShareValue::decode(&key, &vb).unwrap(), value);
            for cut in 0..vb.len() {
                assert!(
                    ShareValue::decode(&key, &vb[..cut]).is_err(),
                    "{key:?} cut {cut}"
                );
            }
        }
    }
}
