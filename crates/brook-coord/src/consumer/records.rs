//! Consumer group records of `__consumer_offsets`, encoded as Kafka 4 writes them.
//!
//! A key is an i16 record type (Kafka's key version) followed by the key's fields in
//! Kafka's non-flexible encoding (strings with an i16 length). A value is an i16 version
//! (0) followed by its fields in Kafka's flexible encoding (unsigned varint lengths plus
//! one, 16-byte uuids, a tagged-field section at the end of each struct).
//!
//! ```text
//! type 3  ConsumerGroupMetadata              key: group         value: epoch, tagged
//!                                                                0 metadata hash, 1 creation time
//! type 4  ConsumerGroupPartitionMetadata     key: group         (read and ignored: Kafka
//!                                                                4.1+ no longer writes it)
//! type 5  ConsumerGroupMemberMetadata        key: group, member value: instance id, rack id,
//!         client id, client host, subscribed topic names, regex, rebalance timeout, assignor
//! type 6  ConsumerGroupTargetAssignmentMetadata key: group      value: assignment epoch
//! type 7  ConsumerGroupTargetAssignmentMember key: group, member value: [topic id, partitions]
//! type 8  ConsumerGroupCurrentMemberAssignment key: group, member value: member epoch,
//!         previous member epoch, state (i8), assigned and pending-revocation partitions
//! type 16 ConsumerGroupRegularExpression     key: group, regex  value: topic names,
//!         version (i64, the metadata it was resolved against), timestamp (i64 ms)
//! ```
//!
//! Brook writes no tagged fields except the group's metadata hash and creation time
//! (the hash is Brook's own function, see [`super::metadata_hash`]); unknown tagged
//! fields are skipped on read, and trailing bytes after a value are ignored as Kafka's
//! readers of a newer version's value would.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::{Assignment, ClassicMeta, MemberState};
use crate::records::RecordError;

pub(crate) const METADATA: i16 = 3;
pub(crate) const PARTITION_METADATA: i16 = 4;
pub(crate) const MEMBER_METADATA: i16 = 5;
pub(crate) const TARGET_METADATA: i16 = 6;
pub(crate) const TARGET_MEMBER: i16 = 7;
pub(crate) const CURRENT_ASSIGNMENT: i16 = 8;
pub(crate) const REGULAR_EXPRESSION: i16 = 16;

/// The value version every consumer group record uses.
const VALUE_VERSION: i16 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerKey {
    Metadata { group: String },
    PartitionMetadata { group: String },
    MemberMetadata { group: String, member: String },
    TargetMetadata { group: String },
    TargetMember { group: String, member: String },
    CurrentAssignment { group: String, member: String },
    RegularExpression { group: String, regex: String },
}

impl ConsumerKey {
    pub(crate) fn group(&self) -> &str {
        match self {
            ConsumerKey::Metadata { group }
            | ConsumerKey::PartitionMetadata { group }
            | ConsumerKey::MemberMetadata { group, .. }
            | ConsumerKey::TargetMetadata { group }
            | ConsumerKey::TargetMember { group, .. }
            | ConsumerKey::CurrentAssignment { group, .. }
            | ConsumerKey::RegularExpression { group, .. } => group,
        }
    }

    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let (kind, group, member) = match self {
            ConsumerKey::Metadata { group } => (METADATA, group, None),
            ConsumerKey::PartitionMetadata { group } => (PARTITION_METADATA, group, None),
            ConsumerKey::MemberMetadata { group, member } => (MEMBER_METADATA, group, Some(member)),
            ConsumerKey::TargetMetadata { group } => (TARGET_METADATA, group, None),
            ConsumerKey::TargetMember { group, member } => (TARGET_MEMBER, group, Some(member)),
            ConsumerKey::CurrentAssignment { group, member } => {
                (CURRENT_ASSIGNMENT, group, Some(member))
            }
            ConsumerKey::RegularExpression { group, regex } => {
                (REGULAR_EXPRESSION, group, Some(regex))
            }
        };
        buf.put_i16(kind);
        put_short_string(&mut buf, group);
        if let Some(member) = member {
            put_short_string(&mut buf, member);
        }
        buf.freeze()
    }

    /// Decodes the fields after the record type `kind` (3 to 8, 16).
    pub(crate) fn decode(kind: i16, bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Flex::new(bytes);
        let group = r.short_string()?;
        let key = match kind {
            METADATA => ConsumerKey::Metadata { group },
            PARTITION_METADATA => ConsumerKey::PartitionMetadata { group },
            TARGET_METADATA => ConsumerKey::TargetMetadata { group },
            MEMBER_METADATA => ConsumerKey::MemberMetadata {
                group,
                member: r.short_string()?,
            },
            TARGET_MEMBER => ConsumerKey::TargetMember {
                group,
                member: r.short_string()?,
            },
            CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment {
                group,
                member: r.short_string()?,
            },
            REGULAR_EXPRESSION => ConsumerKey::RegularExpression {
                group,
                regex: r.short_string()?,
            },
            other => return Err(RecordError::UnknownKeyType(other)),
        };
        match r.remaining() {
            0 => Ok(key),
            n => Err(RecordError::TrailingKeyBytes(n)),
        }
    }
}

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// ClassicMemberMetadata (tagged field 0): present for a member that uses the
    /// classic protocol (JoinGroup, SyncGroup, Heartbeat) in a consumer group.
    pub classic: Option<ClassicMeta>,
}

/// ConsumerGroupCurrentMemberAssignmentValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConsumerValue {
    Metadata {
        epoch: i32,
        metadata_hash: i64,
        creation_time_ms: i64,
    },
    /// Kafka's pre-4.1 subscription metadata: nothing here depends on it.
    PartitionMetadata,
    MemberMetadata(MemberMetadata),
    TargetMetadata {
        assignment_epoch: i32,
    },
    TargetMember(Assignment),
    CurrentAssignment(CurrentAssignment),
    /// ConsumerGroupRegularExpressionValue: what a group's pattern resolved to.
    RegularExpression {
        topics: Vec<String>,
        version: i64,
        timestamp_ms: i64,
    },
}

impl ConsumerValue {
    pub(crate) fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i16(VALUE_VERSION);
        match self {
            ConsumerValue::Metadata {
                epoch,
                metadata_hash,
                creation_time_ms,
            } => {
                buf.put_i32(*epoch);
                // Two tagged fields: 0 = metadata hash, 1 = creation time (8 bytes each).
                put_uvarint(&mut buf, 2);
                for (tag, v) in [(0u32, *metadata_hash), (1, *creation_time_ms)] {
                    put_uvarint(&mut buf, tag);
                    put_uvarint(&mut buf, 8);
                    buf.put_i64(v);
                }
            }
            ConsumerValue::PartitionMetadata => {
                put_uvarint(&mut buf, 1); // no topics
                put_uvarint(&mut buf, 0);
            }
            ConsumerValue::MemberMetadata(m) => {
                put_compact_nullable(&mut buf, m.instance_id.as_deref());
                put_compact_nullable(&mut buf, m.rack_id.as_deref());
                put_compact_string(&mut buf, &m.client_id);
                put_compact_string(&mut buf, &m.client_host);
                put_uvarint(&mut buf, len_u32(m.subscribed_topic_names.len()) + 1);
                for name in &m.subscribed_topic_names {
                    put_compact_string(&mut buf, name);
                }
                put_compact_nullable(&mut buf, m.subscribed_topic_regex.as_deref());
                buf.put_i32(m.rebalance_timeout_ms);
                put_compact_nullable(&mut buf, m.server_assignor.as_deref());
                match &m.classic {
                    None => put_uvarint(&mut buf, 0),
                    Some(classic) => {
                        let mut field = BytesMut::new();
                        put_classic(&mut field, classic);
                        put_uvarint(&mut buf, 1);
                        put_uvarint(&mut buf, 0);
                        put_uvarint(&mut buf, len_u32(field.len()));
                        buf.extend_from_slice(&field);
                    }
                }
            }
            ConsumerValue::TargetMetadata { assignment_epoch } => {
                buf.put_i32(*assignment_epoch);
                put_uvarint(&mut buf, 0);
            }
            ConsumerValue::TargetMember(a) => {
                put_partitions(&mut buf, a);
                put_uvarint(&mut buf, 0);
            }
            ConsumerValue::CurrentAssignment(c) => {
                buf.put_i32(c.member_epoch);
                buf.put_i32(c.previous_member_epoch);
                buf.put_i8(c.state.code());
                put_partitions(&mut buf, &c.assigned);
                put_partitions(&mut buf, &c.pending_revocation);
                put_uvarint(&mut buf, 0);
            }
            ConsumerValue::RegularExpression {
                topics,
                version,
                timestamp_ms,
            } => {
                put_uvarint(&mut buf, len_u32(topics.len()) + 1);
                for name in topics {
                    put_compact_string(&mut buf, name);
                }
                buf.put_i64(*version);
                buf.put_i64(*timestamp_ms);
                put_uvarint(&mut buf, 0);
            }
        }
        buf.freeze()
    }

    pub(crate) fn decode(key: &ConsumerKey, bytes: &[u8]) -> Result<Self, RecordError> {
        let mut r = Flex::new(bytes);
        match r.i16()? {
            VALUE_VERSION => {}
            other => return Err(RecordError::UnknownValueVersion(other)),
        }
        Ok(match key {
            ConsumerKey::Metadata { .. } => {
                let epoch = r.i32()?;
                let (mut metadata_hash, mut creation_time_ms) = (0, -1);
                for (tag, mut field) in r.tagged_fields()? {
                    match tag {
                        0 => metadata_hash = field.i64()?,
                        1 => creation_time_ms = field.i64()?,
                        _ => {}
                    }
                }
                ConsumerValue::Metadata {
                    epoch,
                    metadata_hash,
                    creation_time_ms,
                }
            }
            ConsumerKey::PartitionMetadata { .. } => ConsumerValue::PartitionMetadata,
            ConsumerKey::MemberMetadata { .. } => {
                let instance_id = r.compact_nullable()?;
                let rack_id = r.compact_nullable()?;
                let client_id = r.compact_string()?;
                let client_host = r.compact_string()?;
                let mut subscribed_topic_names = Vec::new();
                for _ in 0..r.compact_len()? {
                    subscribed_topic_names.push(r.compact_string()?);
                }
                let subscribed_topic_regex = r.compact_nullable()?;
                let rebalance_timeout_ms = r.i32()?;
                let server_assignor = r.compact_nullable()?;
                let mut classic = None;
                for (tag, mut field) in r.tagged_fields()? {
                    if tag == 0 {
                        classic = Some(read_classic(&mut field)?);
                    }
                }
                ConsumerValue::MemberMetadata(MemberMetadata {
                    instance_id,
                    rack_id,
                    client_id,
                    client_host,
                    subscribed_topic_names,
                    subscribed_topic_regex,
                    rebalance_timeout_ms,
                    server_assignor,
                    classic,
                })
            }
            ConsumerKey::TargetMetadata { .. } => {
                let assignment_epoch = r.i32()?;
                r.tagged_fields()?;
                ConsumerValue::TargetMetadata { assignment_epoch }
            }
            ConsumerKey::TargetMember { .. } => {
                let assignment = r.partitions()?;
                r.tagged_fields()?;
                ConsumerValue::TargetMember(assignment)
            }
            ConsumerKey::CurrentAssignment { .. } => {
                let member_epoch = r.i32()?;
                let previous_member_epoch = r.i32()?;
                let at = r.at;
                let code = r.i8()?;
                let state = MemberState::from_code(code).ok_or(RecordError::InvalidLength {
                    at,
                    length: i32::from(code),
                })?;
                let assigned = r.partitions()?;
                let pending_revocation = r.partitions()?;
                r.tagged_fields()?;
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch,
                    previous_member_epoch,
                    state,
                    assigned,
                    pending_revocation,
                })
            }
            ConsumerKey::RegularExpression { .. } => {
                let mut topics = Vec::new();
                for _ in 0..r.compact_len()? {
                    topics.push(r.compact_string()?);
                }
                let version = r.i64()?;
                let timestamp_ms = r.i64()?;
                r.tagged_fields()?;
                ConsumerValue::RegularExpression {
                    topics,
                    version,
                    timestamp_ms,
                }
            }
        })
    }
}

/// ClassicMemberMetadata: session timeout, then the supported protocols (name,
/// metadata bytes), each struct with its own empty tagged-field section.
fn put_classic(buf: &mut BytesMut, c: &ClassicMeta) {
    buf.put_i32(c.session_timeout_ms);
    put_uvarint(buf, len_u32(c.protocols.len()) + 1);
    for (name, metadata) in &c.protocols {
        put_compact_string(buf, name);
        put_uvarint(buf, len_u32(metadata.len()) + 1);
        buf.extend_from_slice(metadata);
        put_uvarint(buf, 0);
    }
    put_uvarint(buf, 0);
}

fn read_classic(r: &mut Flex<'_>) -> Result<ClassicMeta, RecordError> {
    let session_timeout_ms = r.i32()?;
    let mut protocols = Vec::new();
    for _ in 0..r.compact_len()? {
        let name = r.compact_string()?;
        let len = r.compact_len()?;
        let metadata = Bytes::copy_from_slice(r.take(len)?);
        r.tagged_fields()?;
        protocols.push((name, metadata));
    }
    r.tagged_fields()?;
    Ok(ClassicMeta {
        session_timeout_ms,
        protocols,
    })
}

pub(crate) fn len_u32(len: usize) -> u32 {
    // Every list comes from a bounded request frame.
    u32::try_from(len).expect("list longer than u32::MAX")
}

pub(crate) fn put_short_string(buf: &mut BytesMut, s: &str) {
    // Group ids and member ids come from requests whose strings have i16 lengths.
    let len = i16::try_from(s.len()).expect("key string longer than i16::MAX");
    buf.put_i16(len);
    buf.put_slice(s.as_bytes());
}

pub(crate) fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

pub(crate) fn put_compact_string(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, len_u32(s.len()) + 1);
    buf.put_slice(s.as_bytes());
}

pub(crate) fn put_compact_nullable(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => put_uvarint(buf, 0),
        Some(s) => put_compact_string(buf, s),
    }
}

/// `[]TopicPartitions`: topic id, `[]int32` partitions, tagged fields.
pub(crate) fn put_partitions(buf: &mut BytesMut, a: &Assignment) {
    put_uvarint(buf, len_u32(a.len()) + 1);
    for (topic, partitions) in a {
        buf.put_slice(topic.as_bytes());
        put_uvarint(buf, len_u32(partitions.len()) + 1);
        for p in partitions {
            buf.put_i32(*p);
        }
        put_uvarint(buf, 0);
    }
}

/// A bounds-checked reader of Kafka's flexible encoding.
pub(crate) struct Flex<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Flex<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Flex { bytes, at: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
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

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(i8::from_be_bytes(self.array()?))
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

    pub(crate) fn uvarint(&mut self) -> Result<u32, RecordError> {
        let at = self.at;
        let mut value: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.array::<1>()?[0];
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength { at, length: -1 })
    }

    pub(crate) fn utf8(&mut self, len: usize) -> Result<String, RecordError> {
        let at = self.at;
        std::str::from_utf8(self.take(len)?)
            .map(str::to_owned)
            .map_err(|_| RecordError::InvalidUtf8 { at })
    }

    pub(crate) fn short_string(&mut self) -> Result<String, RecordError> {
        let at = self.at;
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| RecordError::InvalidLength {
            at,
            length: i32::from(len),
        })?;
        self.utf8(len)
    }

    /// A compact length (N+1 on the wire; 0 is null), checked against what is left.
    pub(crate) fn compact_nullable_len(&mut self) -> Result<Option<usize>, RecordError> {
        let at = self.at;
        let raw = self.uvarint()?;
        if raw == 0 {
            return Ok(None);
        }
        let len = (raw - 1) as usize;
        if len > self.remaining() {
            return Err(RecordError::InvalidLength {
                at,
                length: i32::try_from(raw).unwrap_or(i32::MAX),
            });
        }
        Ok(Some(len))
    }

    pub(crate) fn compact_len(&mut self) -> Result<usize, RecordError> {
        let at = self.at;
        self.compact_nullable_len()?
            .ok_or(RecordError::InvalidLength { at, length: 0 })
    }

    pub(crate) fn compact_string(&mut self) -> Result<String, RecordError> {
        let len = self.compact_len()?;
        self.utf8(len)
    }

    pub(crate) fn compact_nullable(&mut self) -> Result<Option<String>, RecordError> {
        match self.compact_nullable_len()? {
            None => Ok(None),
            Some(len) => self.utf8(len).map(Some),
        }
    }

    pub(crate) fn uuid(&mut self) -> Result<Uuid, RecordError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    /// The tagged-field section: (tag, a reader over its bytes).
    pub(crate) fn tagged_fields(&mut self) -> Result<Vec<(u32, Flex<'a>)>, RecordError> {
        let count = self.uvarint()?;
        let mut fields = Vec::new();
        for _ in 0..count {
            let tag = self.uvarint()?;
            let at = self.at;
            let size = self.uvarint()? as usize;
            if size > self.remaining() {
                return Err(RecordError::InvalidLength {
                    at,
                    length: i32::try_from(size).unwrap_or(i32::MAX),
                });
            }
            fields.push((tag, Flex::new(self.take(size)?)));
        }
        Ok(fields)
    }

    pub(crate) fn partitions(&mut self) -> Result<Assignment, RecordError> {
        let mut a = Assignment::new();
        for _ in 0..self.compact_len()? {
            let topic = self.uuid()?;
            let mut partitions = std::collections::BTreeSet::new();
            for _ in 0..self.compact_len()? {
                partitions.insert(self.i32()?);
            }
            self.tagged_fields()?;
            if !partitions.is_empty() {
                a.entry(topic).or_default().extend(partitions);
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment() -> Assignment {
        Assignment::from([
            (Uuid::from_u64_pair(1, 2), [0, 3, 7].into()),
            (Uuid::from_u64_pair(3, 4), [1].into()),
        ])
    }

    fn cases() -> Vec<(ConsumerKey, ConsumerValue)> {
        let g = || "group".to_string();
        let m = || "member-1".to_string();
        vec![
            (
                ConsumerKey::Metadata { group: g() },
                ConsumerValue::Metadata {
                    epoch: 9,
                    metadata_hash: -5,
                    creation_time_ms: 1234,
                },
            ),
            (
                ConsumerKey::MemberMetadata {
                    group: g(),
                    member: m(),
                },
                ConsumerValue::MemberMetadata(MemberMetadata {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into(), "é".into()],
                    subscribed_topic_regex: None,
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("range".into()),
                    classic: None,
                }),
            ),
            (
                ConsumerKey::MemberMetadata {
                    group: g(),
                    member: m(),
                },
                ConsumerValue::MemberMetadata(MemberMetadata {
                    instance_id: None,
                    rack_id: None,
                    client_id: "classic".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into()],
                    subscribed_topic_regex: None,
                    rebalance_timeout_ms: 300_000,
                    server_assignor: None,
                    classic: Some(ClassicMeta {
                        session_timeout_ms: 45_000,
                        protocols: vec![
                            ("range".into(), Bytes::from_static(&[0, 3, 0, 0, 0, 1])),
                            ("cooperative-sticky".into(), Bytes::new()),
                        ],
                    }),
                }),
            ),
            (
                ConsumerKey::TargetMetadata { group: g() },
                ConsumerValue::TargetMetadata {
                    assignment_epoch: 4,
                },
            ),
            (
                ConsumerKey::TargetMember {
                    group: g(),
                    member: m(),
                },
                ConsumerValue::TargetMember(assignment()),
            ),
            (
                ConsumerKey::CurrentAssignment {
                    group: g(),
                    member: m(),
                },
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch: 5,
                    previous_member_epoch: 4,
                    state: MemberState::UnrevokedPartitions,
                    assigned: assignment(),
                    pending_revocation: Assignment::new(),
                }),
            ),
            (
                ConsumerKey::RegularExpression {
                    group: g(),
                    regex: "regex-.*".into(),
                },
                ConsumerValue::RegularExpression {
                    topics: vec!["regex-a".into(), "regex-b".into()],
                    version: 42,
                    timestamp_ms: 1_700_000_000_000,
                },
            ),
        ]
    }

    #[test]
    fn round_trip_and_truncation() {
        for (key, value) in cases() {
            let k = key.encode();
            let kind = i16::from_be_bytes([k[0], k[1]]);
            assert_eq!(ConsumerKey::decode(kind, &k[2..]), Ok(key.clone()));
            let v = value.encode();
            assert_eq!(ConsumerValue::decode(&key, &v), Ok(value.clone()));
            for cut in 0..v.len() {
                assert!(
                    ConsumerValue::decode(&key, &v[..cut]).is_err(),
                    "{key:?} cut at {cut}"
                );
            }
            for cut in 0..k.len() - 2 {
                assert!(ConsumerKey::decode(kind, &k[2..2 + cut]).is_err());
            }
        }
    }

    /// Bytes Kafka 4.4's own serializer produces for these records (the layout of the
    /// JSON schemas in the group-coordinator module), spelled out by hand.
    #[test]
    fn kafka_layout() {
        let key = ConsumerKey::CurrentAssignment {
            group: "g".into(),
            member: "m".into(),
        };
        assert_eq!(&key.encode()[..], &[0, 8, 0, 1, b'g', 0, 1, b'm']);
        let value = ConsumerValue::TargetMetadata {
            assignment_epoch: 3,
        };
        assert_eq!(&value.encode()[..], &[0, 0, 0, 0, 0, 3, 0]);
        let t = Uuid::from_u64_pair(0, 1);
        let value = ConsumerValue::TargetMember(Assignment::from([(t, [2].into())]));
        let mut expected = vec![0, 0, 2];
        expected.extend_from_slice(t.as_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, 2, 0, 0]);
        assert_eq!(&value.encode()[..], &expected[..]);
        let key = ConsumerKey::RegularExpression {
            group: "g".into(),
            regex: "r.*".into(),
        };
        assert_eq!(
            &key.encode()[..],
            &[0, 16, 0, 1, b'g', 0, 3, b'r', b'.', b'*']
        );
        let value = ConsumerValue::RegularExpression {
            topics: vec!["t".into()],
            version: 1,
            timestamp_ms: 2,
        };
        assert_eq!(
            &value.encode()[..],
            &[0, 0, 2, 2, b't', 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0]
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let key = ConsumerKey::MemberMetadata {
            group: "g".into(),
            member: "m".into(),
        };
        for bytes in [
            &[0u8, 0, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0, 1],
            &[0, 0, 5],
        ] {
            assert!(ConsumerValue::decode(&key, bytes).is_err());
        }
        assert!(ConsumerKey::decode(5, &[0xff, 0xff]).is_err());
    }
}
