//! Records of the internal compacted topic `__consumer_offsets`, the durable copy of the
//! coordinator's state: committed offsets and group metadata.
//!
//! The encoding is Brook's own (not Kafka's), versioned so it can evolve. Everything is
//! big-endian.
//!
//! ```text
//! string   = i32 length, UTF-8 bytes      (length -1 = null, only where "nullable")
//! bytes    = i32 length, raw bytes
//!
//! key      = i16 key type, then
//!   1  offset commit    string group, string topic, i32 partition
//!   2  group metadata   string group
//!
//! value    = i16 value version (0), then
//!   offset commit   i64 offset, i32 leader epoch (-1 = none), string metadata,
//!                   i64 commit timestamp ms, i64 expire timestamp ms (-1 = none)
//!   group metadata  string protocol type ("" = none), i32 generation,
//!                   nullable string protocol name, nullable string leader,
//!                   i64 state timestamp ms (-1 = none), i32 member count, and per member:
//!                   string member id, nullable string group instance id,
//!                   string client id, string client host, i32 rebalance timeout ms,
//!                   i32 session timeout ms, bytes subscription (the member's metadata
//!                   for the group's protocol), bytes assignment
//!
//! A missing value (None) is a tombstone: compaction removes the key.
//! ```
//!
//! Key types 3 to 8 and 16 are consumer groups of the new protocol (KIP-848), which
//! Brook writes in Kafka 4's own format: see `consumer::records`. Key types 10 to 14
//! are share groups (KIP-932), in Kafka 4's format, and 100 a share-partition's state,
//! in Brook's: see `share::records`.
//!
//! Keys are canonical (compaction compares their bytes), so a key with trailing bytes is
//! rejected. A value may carry trailing bytes, which this version ignores: a later
//! version may append fields without breaking older readers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::consumer::records::{ConsumerKey, ConsumerValue};
use crate::share::records::{ShareKey, ShareValue};

const OFFSET_COMMIT_KEY: i16 = 1;
const GROUP_METADATA_KEY: i16 = 2;
const VALUE_VERSION: i16 = 0;

/// A record for `__consumer_offsets`: key bytes and value bytes (None = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetsRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Why a `__consumer_offsets` record could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record ends early: needed {needed} more bytes at offset {at}")]
    Truncated { at: usize, needed: usize },
    #[error("invalid length {length} at offset {at}")]
    InvalidLength { at: usize, length: i32 },
    #[error("string at offset {at} is not UTF-8")]
    InvalidUtf8 { at: usize },
    #[error("unknown key type {0}")]
    UnknownKeyType(i16),
    #[error("unknown value version {0}")]
    UnknownValueVersion(i16),
    #[error("key has {0} trailing bytes")]
    TrailingKeyBytes(usize),
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
    /// A consumer group record (KIP-848), in Kafka's format.
    Consumer(ConsumerKey),
    /// A share group record (KIP-932): Kafka's format, and Brook's share-partition state.
    Share(ShareKey),
}

/// A committed offset as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    pub expire_timestamp_ms: Option<i64>,
}

/// A group's membership as stored after each completed rebalance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol_name: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: Option<i64>,
    pub members: Vec<MemberMetadataValue>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A decoded record value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordValue {
    OffsetCommit(CommittedOffset),
    GroupMetadata(GroupMetadataValue),
    Consumer(ConsumerValue),
    Share(ShareValue),
}

impl OffsetsRecord {
    pub(crate) fn offset_commit(
        group: &str,
        topic: &str,
        partition: i32,
        value: &CommittedOffset,
    ) -> Self {
        OffsetsRecord {
            key: offset_commit_key(group, topic, partition),
            value: Some(encode_offset_commit_value(value)),
        }
    }

    pub(crate) fn offset_commit_tombstone(group: &str, topic: &str, partition: i32) -> Self {
        OffsetsRecord {
            key: offset_commit_key(group, topic, partition),
            value: None,
        }
    }

    pub(crate) fn group_metadata(group: &str, value: &GroupMetadataValue) -> Self {
        OffsetsRecord {
            key: group_metadata_key(group),
            value: Some(encode_group_metadata_value(value)),
        }
    }

    pub(crate) fn group_metadata_tombstone(group: &str) -> Self {
        OffsetsRecord {
            key: group_metadata_key(group),
            value: None,
        }
    }

    /// A consumer group record (a tombstone when `value` is None).
    pub(crate) fn consumer(key: &ConsumerKey, value: Option<&ConsumerValue>) -> Self {
        OffsetsRecord {
            key: key.encode(),
            value: value.map(ConsumerValue::encode),
        }
    }

    /// A share group record (a tombstone when `value` is None).
    pub(crate) fn share(key: &ShareKey, value: Option<&ShareValue>) -> Self {
        OffsetsRecord {
            key: key.encode(),
            value: value.map(ShareValue::encode),
        }
    }

    /// The group the record belongs to: what the broker partitions `__consumer_offsets`
    /// by (Kafka maps a group to partition `hash(group id) % partitions`). None when the
    /// key cannot be read.
    pub fn group_id(&self) -> Option<String> {
        match decode_key(&self.key).ok()? {
            RecordKey::OffsetCommit { group, .. } | RecordKey::GroupMetadata { group } => {
                Some(group)
            }
            RecordKey::Consumer(key) => Some(key.group().to_owned()),
            RecordKey::Share(key) => Some(key.group().to_owned()),
        }
    }

    /// (group, topic, partition) of an offset commit record; None for other records.
    pub fn offset_key(&self) -> Option<(String, String, i32)> {
        match decode_key(&self.key).ok()? {
            RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            } => Some((group, topic, partition)),
            RecordKey::GroupMetadata { .. } | RecordKey::Consumer(_) | RecordKey::Share(_) => None,
        }
    }

    /// Decodes the key and, unless this is a tombstone, the value.
    pub(crate) fn decode(&self) -> Result<(RecordKey, Option<RecordValue>), RecordError> {
        let key = decode_key(&self.key)?;
        let value = match &self.value {
            None => None,
            Some(bytes) => Some(match key {
                RecordKey::OffsetCommit { .. } => {
                    RecordValue::OffsetCommit(decode_offset_commit_value(bytes)?)
                }
                RecordKey::GroupMetadata { .. } => {
                    RecordValue::GroupMetadata(decode_group_metadata_value(bytes)?)
                }
                RecordKey::Consumer(ref key) => {
                    RecordValue::Consumer(ConsumerValue::decode(key, bytes)?)
                }
                RecordKey::Share(ref key) => RecordValue::Share(ShareValue::decode(key, bytes)?),
            }),
        };
        Ok((key, value))
    }
}

fn offset_commit_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 4 + group.len() + 4 + topic.len() + 4);
    buf.put_i16(OFFSET_COMMIT_KEY);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

fn group_metadata_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 4 + group.len());
    buf.put_i16(GROUP_METADATA_KEY);
    put_string(&mut buf, group);
    buf.freeze()
}

fn encode_offset_commit_value(value: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::with_capacity(2 + 8 + 4 + 4 + value.metadata.len() + 16);
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(value.offset);
    buf.put_i32(value.leader_epoch);
    put_string(&mut buf, &value.metadata);
    buf.put_i64(value.commit_timestamp_ms);
    buf.put_i64(value.expire_timestamp_ms.unwrap_or(-1));
    buf.freeze()
}

fn encode_group_metadata_value(value: &GroupMetadataValue) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(VALUE_VERSION);
    put_string(&mut buf, &value.protocol_type);
    buf.put_i32(value.generation);
    put_nullable_string(&mut buf, value.protocol_name.as_deref());
    put_nullable_string(&mut buf, value.leader.as_deref());
    buf.put_i64(value.state_timestamp_ms.unwrap_or(-1));
    buf.put_i32(len_i32(value.members.len()));
    for member in &value.members {
        put_string(&mut buf, &member.member_id);
        put_nullable_string(&mut buf, member.group_instance_id.as_deref());
        put_string(&mut buf, &member.client_id);
        put_string(&mut buf, &member.client_host);
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        put_bytes(&mut buf, &member.subscription);
        put_bytes(&mut buf, &member.assignment);
    }
    buf.freeze()
}

fn decode_key(bytes: &[u8]) -> Result<RecordKey, RecordError> {
    let mut reader = Reader::new(bytes);
    let key = match reader.i16()? {
        OFFSET_COMMIT_KEY => RecordKey::OffsetCommit {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        },
        GROUP_METADATA_KEY => RecordKey::GroupMetadata {
            group: reader.string()?,
        },
        kind @ (3..=8 | 16) => {
            return ConsumerKey::decode(kind, &bytes[2..]).map(RecordKey::Consumer)
        }
        kind @ (9..=15 | 100) => return ShareKey::decode(kind, &bytes[2..]).map(RecordKey::Share),
        other => return Err(RecordError::UnknownKeyType(other)),
    };
    match reader.remaining() {
        0 => Ok(key),
        n => Err(RecordError::TrailingKeyBytes(n)),
    }
}

fn decode_offset_commit_value(bytes: &[u8]) -> Result<CommittedOffset, RecordError> {
    let mut reader = Reader::new(bytes);
    reader.value_version()?;
    Ok(CommittedOffset {
        offset: reader.i64()?,
        leader_epoch: reader.i32()?,
        metadata: reader.string()?,
        commit_timestamp_ms: reader.i64()?,
        expire_timestamp_ms: optional_timestamp(reader.i64()?),
    })
}

fn decode_group_metadata_value(bytes: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut reader = Reader::new(bytes);
    reader.value_version()?;
    let protocol_type = reader.string()?;
    let generation = reader.i32()?;
    let protocol_name = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let state_timestamp_ms = optional_timestamp(reader.i64()?);
    let count = reader.length()?;
    // No pre-allocation from an untrusted count: the loop fails on truncation first.
    let mut members = Vec::new();
    for _ in 0..count {
        members.push(MemberMetadataValue {
            member_id: reader.string()?,
            group_instance_id: reader.nullable_string()?,
            client_id: reader.string()?,
            client_host: reader.string()?,
            rebalance_timeout_ms: reader.i32()?,
            session_timeout_ms: reader.i32()?,
            subscription: reader.bytes()?,
            assignment: reader.bytes()?,
        });
    }
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
    })
}

fn optional_timestamp(ms: i64) -> Option<i64> {
    (ms >= 0).then_some(ms)
}

pub(crate) fn len_i32(len: usize) -> i32 {
    // Every string and byte field comes from a request frame, which the broker bounds
    // far below 2 GiB.
    i32::try_from(len).expect("field longer than i32::MAX bytes")
}

pub(crate) fn put_string(buf: &mut BytesMut, s: &str) {
    put_bytes(buf, s.as_bytes());
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i32(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(len_i32(b.len()));
    buf.put_slice(b);
}

/// A bounds-checked reader: every length is checked against what is left.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, at: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.remaining() < n {
            return Err(RecordError::Truncated {
                at: self.at,
                needed: n - self.remaining(),
            });
        }
        let slice = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn value_version(&mut self) -> Result<(), RecordError> {
        match self.i16()? {
            VALUE_VERSION => Ok(()),
            other => Err(RecordError::UnknownValueVersion(other)),
        }
    }

    /// A non-negative length.
    pub(crate) fn length(&mut self) -> Result<usize, RecordError> {
        let at = self.at;
        let length = self.i32()?;
        usize::try_from(length).map_err(|_| RecordError::InvalidLength { at, length })
    }

    fn nullable_length(&mut self) -> Result<Option<usize>, RecordError> {
        let at = self.at;
        match self.i32()? {
            -1 => Ok(None),
            length => usize::try_from(length)
                .map(Some)
                .map_err(|_| RecordError::InvalidLength { at, length }),
        }
    }

    fn utf8(&mut self, len: usize) -> Result<String, RecordError> {
        let at = self.at;
        let raw = self.take(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidUtf8 { at })
    }

    pub(crate) fn string(&mut self) -> Result<String, RecordError> {
        let len = self.length()?;
        self.utf8(len)
    }

    fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
        match self.nullable_length()? {
            None => Ok(None),
            Some(len) => self.utf8(len).map(Some),
        }
    }

    fn bytes(&mut self) -> Result<Bytes, RecordError> {
        let len = self.length()?;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group_value() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol_name: Some("range".into()),
            leader: Some("c-1".into()),
            state_timestamp_ms: Some(1234),
            members: vec![
                MemberMetadataValue {
                    member_id: "c-1".into(),
                    group_instance_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assign"),
                },
                MemberMetadataValue {
                    member_id: "i-2".into(),
                    group_instance_id: Some("i".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.2".into(),
                    rebalance_timeout_ms: 1,
                    session_timeout_ms: 2,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn records_round_trip() {
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: -1,
            metadata: "méta".into(),
            commit_timestamp_ms: 99,
            expire_timestamp_ms: None,
        };
        let cases = [
            (
                OffsetsRecord::offset_commit("g", "t", 3, &offset),
                RecordKey::OffsetCommit {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 3,
                },
                Some(RecordValue::OffsetCommit(offset.clone())),
            ),
            (
                OffsetsRecord::offset_commit_tombstone("g", "t", 3),
                RecordKey::OffsetCommit {
                    group: "g".into(),
                    topic: "t".into(),
                    partition: 3,
                },
                None,
            ),
            (
                OffsetsRecord::group_metadata("g", &group_value()),
                RecordKey::GroupMetadata { group: "g".into() },
                Some(RecordValue::GroupMetadata(group_value())),
            ),
            (
                OffsetsRecord::group_metadata_tombstone(""),
                RecordKey::GroupMetadata { group: "".into() },
                None,
            ),
        ];
        for (record, key, value) in cases {
            assert_eq!(record.decode(), Ok((key, value)));
        }
    }

    #[test]
    fn group_id_comes_from_the_key() {
        let offset = CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: None,
        };
        let cases = [
            (
                OffsetsRecord::offset_commit("a", "t", 0, &offset),
                Some("a"),
            ),
            (
                OffsetsRecord::offset_commit_tombstone("b", "t", 0),
                Some("b"),
            ),
            (
                OffsetsRecord::group_metadata("c", &group_value()),
                Some("c"),
            ),
            (OffsetsRecord::group_metadata_tombstone(""), Some("")),
            (
                OffsetsRecord {
                    key: Bytes::from_static(&[0, 9]),
                    value: None,
                },
                None,
            ),
        ];
        for (record, group) in cases {
            assert_eq!(record.group_id().as_deref(), group);
        }
    }

    #[test]
    fn the_same_key_encodes_to_the_same_bytes() {
        let a = OffsetsRecord::offset_commit_tombstone("g", "t", 0);
        let offset = CommittedOffset {
            offset: 1,
            leader_epoch: 0,
            metadata: String::new(),
            commit_timestamp_ms: 0,
            expire_timestamp_ms: Some(5),
        };
        let b = OffsetsRecord::offset_commit("g", "t", 0, &offset);
        assert_eq!(a.key, b.key);
        assert_ne!(a.key, OffsetsRecord::group_metadata_tombstone("g").key);
    }

    #[test]
    fn malformed_records_are_errors_not_panics() {
        let good = OffsetsRecord::group_metadata("group", &group_value());
        let value = good.value.clone().unwrap();
        // Every truncation of the key and of the value fails cleanly.
        for cut in 0..good.key.len() {
            let record = OffsetsRecord {
                key: good.key.slice(..cut),
                value: None,
            };
            assert!(record.decode().is_err(), "key cut at {cut}");
        }
        for cut in 0..value.len() {
            let record = OffsetsRecord {
                key: good.key.clone(),
                value: Some(value.slice(..cut)),
            };
            assert!(record.decode().is_err(), "value cut at {cut}");
        }
        type Case<'a> = (&'a [u8], Option<&'a [u8]>, RecordError);
        let cases: [Case; 4] = [
            (&[0, 99], None, RecordError::UnknownKeyType(99)),
            (
                &[0, 2, 0, 0, 0, 0, 7],
                None,
                RecordError::TrailingKeyBytes(1),
            ),
            (
                &[0, 2, 0xff, 0xff, 0xff, 0xfe],
                None,
                RecordError::InvalidLength { at: 2, length: -2 },
            ),
            (
                &[0, 2, 0, 0, 0, 0],
                Some(&[0, 1]),
                RecordError::UnknownValueVersion(1),
            ),
        ];
        for (key, value, error) in cases {
            let record = OffsetsRecord {
                key: Bytes::copy_from_slice(key),
                value: value.map(Bytes::copy_from_slice),
            };
            assert_eq!(record.decode(), Err(error));
        }
        let bad_utf8 = OffsetsRecord {
            key: Bytes::from_static(&[0, 2, 0, 0, 0, 1, 0xff]),
            value: None,
        };
        assert_eq!(bad_utf8.decode(), Err(RecordError::InvalidUtf8 { at: 6 }));
    }

    #[test]
    fn values_may_grow_at_the_end() {
        let good = OffsetsRecord::group_metadata("group", &group_value());
        let mut longer = BytesMut::from(&good.value.clone().unwrap()[..]);
        longer.put_slice(b"future field");
        let record = OffsetsRecord {
            key: good.key.clone(),
            value: Some(longer.freeze()),
        };
        assert_eq!(record.decode(), good.decode());
    }
}
