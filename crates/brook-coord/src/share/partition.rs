//! One share-partition's delivery state (KIP-932's SharePartition), as a pure state
//! machine: which records of a partition a share group has handed out, to whom, how
//! often, and which it is done with.
//!
//! The window runs from the share-partition start offset (SPSO, `start`) to the end
//! offset (SPEO, `end`: the next offset never acquired). Every record in it that the
//! log holds is in `records` with its state:
//!
//! ```text
//!              acquire (delivery count + 1, lock until now + lock duration)
//!   AVAILABLE ───────────────────────────────────────────────► ACQUIRED
//!       ▲                                                        │ │ │
//!       │  RELEASE, or the lock expires (count < limit)          │ │ │
//!       └────────────────────────────────────────────────────────┘ │ │
//!                        ACCEPT                                    │ │
//!   ACKNOWLEDGED ◄─────────────────────────────────────────────────┘ │
//!                        REJECT, or RELEASE/expiry at the limit      │
//!   ARCHIVED ◄───────────────────────────────────────────────────────┘
//! ```
//!
//! Offsets in the window absent from `records` are not records (a compacted gap, or
//! the control batch of a transaction, which is archived as it is passed). The start
//! moves over acknowledged and archived records and over gaps; it never passes an
//! available or acquired record. The window holds at most `max_in_flight` offsets
//! (`group.share.partition.max.record.locks`), so its memory is bounded.
//!
//! Only a member that acquired a record may acknowledge it; anything else is
//! INVALID_RECORD_STATE and changes nothing (an acknowledgement batch is checked whole
//! before it is applied).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::{StoredBatch, StoredPartitionState};

/// Kafka's acknowledge types (ShareFetch/ShareAcknowledge `AcknowledgeTypes`).
pub const ACK_GAP: i8 = 0;
pub const ACK_ACCEPT: i8 = 1;
pub const ACK_RELEASE: i8 = 2;
pub const ACK_REJECT: i8 = 3;
pub const ACK_RENEW: i8 = 4;

/// How a fetch acquires records (ShareFetch v2 `ShareAcquireMode`, KIP-1206; the
/// client's `share.acquire.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcquireMode {
    /// `batch_optimized` (0, and all a v1 request can ask for): whole log batches;
    /// `max_records` is reached at a batch boundary, so it may be exceeded to finish
    /// the batch it falls in.
    #[default]
    BatchOptimized,
    /// `record_limit` (1): never more than `max_records` records, even mid-batch.
    RecordLimit,
}

impl AcquireMode {
    /// The wire code's mode, None for an unknown code.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(AcquireMode::BatchOptimized),
            1 => Some(AcquireMode::RecordLimit),
            _ => None,
        }
    }
}

/// Kafka's RecordState codes, as stored.
const STORED_AVAILABLE: i8 = 0;
const STORED_ACKNOWLEDGED: i8 = 2;
const STORED_ARCHIVED: i8 = 4;

/// The settings a share-partition follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePartitionConfig {
    /// `group.share.record.lock.duration.ms`: how long an acquisition lasts.
    pub lock_duration_ms: i64,
    /// `group.share.delivery.count.limit`: deliveries before a record is archived.
    pub delivery_count_limit: i16,
    /// `group.share.partition.max.record.locks`: the most offsets in flight.
    pub max_in_flight: i64,
}

impl Default for SharePartitionConfig {
    fn default() -> Self {
        SharePartitionConfig {
            lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            max_in_flight: 2_000,
        }
    }
}

/// Where a record is in its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordState {
    Available,
    Acquired { member: Arc<str>, deadline_ms: i64 },
    Acknowledged,
    Archived,
}

impl RecordState {
    fn is_done(&self) -> bool {
        matches!(self, RecordState::Acknowledged | RecordState::Archived)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    state: RecordState,
    delivery_count: i16,
}

/// A range of records acquired in one fetch, all with the same delivery count
/// (ShareFetch's `AcquiredRecords`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acquired {
    pub first_offset: i64,
    pub last_offset: i64,
    pub delivery_count: i16,
}

/// A batch of the log as a fetch read it: its offsets and whether it is a control
/// batch (a transaction marker, never delivered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBatch {
    pub first_offset: i64,
    pub last_offset: i64,
    pub control: bool,
}

/// Why an acknowledgement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// INVALID_RECORD_STATE: a record not acquired by this member (or not in flight).
    #[error("offset {0} is not a record acquired by this member")]
    InvalidRecordState(i64),
    /// INVALID_REQUEST: a malformed batch (types that do not match its range, an
    /// unknown type, last before first).
    #[error("{0}")]
    InvalidRequest(&'static str),
}

/// One share-partition's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePartition {
    config: SharePartitionConfig,
    start: i64,
    end: i64,
    records: BTreeMap<i64, InFlight>,
}

impl SharePartition {
    /// A share-partition that starts at `start_offset` (where `share.auto.offset.reset`
    /// put it when the group first consumed it).
    pub fn new(config: SharePartitionConfig, start_offset: i64) -> Self {
        SharePartition {
            config,
            start: start_offset,
            end: start_offset,
            records: BTreeMap::new(),
        }
    }

    /// A share-partition as it was stored. Records stored as available keep their
    /// delivery count (an acquisition does not survive a restart: its records are
    /// delivered again). Stored ranges outside the window, overlapping or too many are
    /// dropped rather than trusted.
    pub fn from_stored(config: SharePartitionConfig, stored: &StoredPartitionState) -> Self {
        // Offsets are never negative; a start below 0 would only make arithmetic on
        // offsets overflow.
        let mut p = SharePartition::new(config, stored.start_offset.max(0));
        for b in &stored.batches {
            let state = match b.state {
                STORED_ACKNOWLEDGED => RecordState::Acknowledged,
                STORED_ARCHIVED => RecordState::Archived,
                _ => RecordState::Available,
            };
            let first = b.first_offset.max(p.end);
            let last = b
                .last_offset
                .min(p.start.saturating_add(config.max_in_flight) - 1);
            for offset in first..=last {
                p.records.insert(
                    offset,
                    InFlight {
                        state: state.clone(),
                        delivery_count: b.delivery_count.max(0),
                    },
                );
            }
            if last >= first {
                p.end = last + 1;
            }
        }
        p.advance_start();
        p
    }

    pub fn config(&self) -> &SharePartitionConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: SharePartitionConfig) {
        self.config = config;
    }

    /// The share-partition start offset (SPSO).
    pub fn start_offset(&self) -> i64 {
        self.start
    }

    /// The share-partition end offset (SPEO): the next offset never acquired.
    pub fn end_offset(&self) -> i64 {
        self.end
    }

    /// (acquired, in flight) records: those locked by a member now, and those past the
    /// start not yet acknowledged or archived (acquired or available again).
    pub fn counts(&self) -> (usize, usize) {
        self.records
            .values()
            .fold((0, 0), |(acquired, in_flight), r| match r.state {
                RecordState::Acquired { .. } => (acquired + 1, in_flight + 1),
                RecordState::Available => (acquired, in_flight + 1),
                _ => (acquired, in_flight),
            })
    }

    /// The state of one offset in the window (None: not a record in flight).
    pub fn state(&self, offset: i64) -> Option<(&RecordState, i16)> {
        self.records
            .get(&offset)
            .map(|r| (&r.state, r.delivery_count))
    }

    /// Where the next fetch should read from: the first available record, else the
    /// end. None when nothing can be acquired (the window is full of records in
    /// flight).
    pub fn fetch_offset(&self) -> Option<i64> {
        let available = self
            .records
            .iter()
            .find(|(_, r)| r.state == RecordState::Available)
            .map(|(o, _)| *o);
        match available {
            Some(o) => Some(o),
            None if self.end - self.start < self.config.max_in_flight => Some(self.end),
            None => None,
        }
    }

    /// The earliest acquisition lock deadline.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.records
            .values()
            .filter_map(|r| match r.state {
                RecordState::Acquired { deadline_ms, .. } => Some(deadline_ms),
                _ => None,
            })
            .min()
    }

    /// The log's start moved past the window (retention, DeleteRecords): what is gone
    /// cannot be delivered. Returns whether anything changed.
    pub fn follow_log_start(&mut self, log_start_offset: i64) -> bool {
        if self.start >= log_start_offset {
            return false;
        }
        self.records = self.records.split_off(&log_start_offset);
        self.start = log_start_offset;
        self.end = self.end.max(log_start_offset);
        self.advance_start();
        true
    }

    /// Returns acquired records whose lock expired at `now_ms` to the available ones
    /// (or archives them at the delivery limit). Returns whether anything changed.
    pub fn expire_locks(&mut self, now_ms: i64) -> bool {
        let limit = self.config.delivery_count_limit;
        let mut changed = false;
        for r in self.records.values_mut() {
            if let RecordState::Acquired { deadline_ms, .. } = r.state {
                if deadline_ms <= now_ms {
                    r.state = released(r.delivery_count, limit);
                    changed = true;
                }
            }
        }
        if changed {
            self.advance_start();
        }
        changed
    }

    /// Acquires for `member` the records of `batches` (the batches a log read
    /// returned, in order; control batches are archived as they are passed) that are
    /// available or past the end, at most `max_records` of them and never more than the
    /// window allows ([`AcquireMode::RecordLimit`]). Returns the acquired ranges.
    pub fn acquire(
        &mut self,
        member: &str,
        batches: &[LogBatch],
        max_records: usize,
        now_ms: i64,
    ) -> Vec<Acquired> {
        self.acquire_in_mode(
            member,
            batches,
            max_records,
            AcquireMode::RecordLimit,
            now_ms,
        )
    }

    /// [`SharePartition::acquire`] in either mode: with
    /// [`AcquireMode::BatchOptimized`] the `max_records` limit is only checked between
    /// log batches, so the batch it is reached in is acquired whole (the window's bound
    /// still holds).
    pub fn acquire_in_mode(
        &mut self,
        member: &str,
        batches: &[LogBatch],
        max_records: usize,
        mode: AcquireMode,
        now_ms: i64,
    ) -> Vec<Acquired> {
        let member: Arc<str> = Arc::from(member);
        let deadline_ms = now_ms.saturating_add(self.config.lock_duration_ms);
        let mut acquired: Vec<Acquired> = Vec::new();
        let mut count = 0usize;
        'ranges: for batch in batches {
            let (first, last) = (batch.first_offset, batch.last_offset);
            if batch.control {
                self.pass_control(first, last);
                continue;
            }
            if count >= max_records {
                break;
            }
            for offset in first.max(self.start)..=last {
                if count >= max_records && mode == AcquireMode::RecordLimit {
                    break 'ranges;
                }
                if offset >= self.end {
                    if offset - self.start >= self.config.max_in_flight {
                        break 'ranges;
                    }
                    self.records.insert(
                        offset,
                        InFlight {
                            state: RecordState::Available,
                            delivery_count: 0,
                        },
                    );
                    self.end = offset + 1;
                }
                let Some(r) = self.records.get_mut(&offset) else {
                    continue;
                };
                if r.state != RecordState::Available {
                    continue;
                }
                r.delivery_count = r.delivery_count.saturating_add(1);
                r.state = RecordState::Acquired {
                    member: member.clone(),
                    deadline_ms,
                };
                count += 1;
                match acquired.last_mut() {
                    Some(a)
                        if a.last_offset + 1 == offset && a.delivery_count == r.delivery_count =>
                    {
                        a.last_offset = offset;
                    }
                    _ => acquired.push(Acquired {
                        first_offset: offset,
                        last_offset: offset,
                        delivery_count: r.delivery_count,
                    }),
                }
            }
        }
        acquired
    }

    /// A control batch at the end of the window: its offsets are passed, archived.
    fn pass_control(&mut self, first: i64, last: i64) {
        if last < self.end || first - self.start >= self.config.max_in_flight {
            return;
        }
        let from = first.max(self.end);
        let to = last.min(self.start + self.config.max_in_flight - 1);
        for offset in from..=to {
            self.records.insert(
                offset,
                InFlight {
                    state: RecordState::Archived,
                    delivery_count: 0,
                },
            );
        }
        self.end = to + 1;
        self.advance_start();
    }

    /// Applies one acknowledgement batch of `member`: `types` holds one type for the
    /// whole range or one per offset. Checked whole before anything changes.
    pub fn acknowledge(
        &mut self,
        member: &str,
        first_offset: i64,
        last_offset: i64,
        types: &[i8],
        now_ms: i64,
    ) -> Result<(), AckError> {
        if last_offset < first_offset {
            return Err(AckError::InvalidRequest("last offset before first offset"));
        }
        if types.is_empty() {
            return Err(AckError::InvalidRequest("no acknowledge types"));
        }
        if types.iter().any(|t| !(ACK_GAP..=ACK_RENEW).contains(t)) {
            return Err(AckError::InvalidRequest("unknown acknowledge type"));
        }
        // An acknowledgement can only name offsets in the window, so what follows is
        // bounded by `max_in_flight` (and `last - first` cannot overflow).
        if first_offset < self.start || last_offset >= self.end {
            let bad = if first_offset < self.start {
                first_offset
            } else {
                self.end.max(first_offset)
            };
            return Err(AckError::InvalidRecordState(bad));
        }
        let span = last_offset - first_offset + 1;
        if types.len() != 1 && i64::try_from(types.len()) != Ok(span) {
            return Err(AckError::InvalidRequest(
                "acknowledge types do not match the batch's offsets",
            ));
        }
        let type_at = |offset: i64| {
            if types.len() == 1 {
                types[0]
            } else {
                types[(offset - first_offset) as usize]
            }
        };
        for offset in first_offset..=last_offset {
            let ok = match (self.records.get(&offset), type_at(offset)) {
                // A gap: no record there, or one already archived (a marker).
                (None, ACK_GAP) => true,
                (Some(r), ACK_GAP) if r.state == RecordState::Archived => true,
                (Some(r), _) => {
                    matches!(&r.state, RecordState::Acquired { member: m, .. } if &**m == member)
                }
                (None, _) => false,
            };
            if !ok {
                return Err(AckError::InvalidRecordState(offset));
            }
        }
        let limit = self.config.delivery_count_limit;
        let lock_ms = self.config.lock_duration_ms;
        for offset in first_offset..=last_offset {
            let Some(r) = self.records.get_mut(&offset) else {
                continue;
            };
            if r.state == RecordState::Archived {
                continue;
            }
            r.state = match type_at(offset) {
                ACK_ACCEPT => RecordState::Acknowledged,
                ACK_RELEASE => released(r.delivery_count, limit),
                ACK_RENEW => RecordState::Acquired {
                    member: Arc::from(member),
                    deadline_ms: now_ms.saturating_add(lock_ms),
                },
                _ => RecordState::Archived,
            };
        }
        self.advance_start();
        Ok(())
    }

    /// Releases every record `member` holds (its share session closed, or it left the
    /// group). Returns whether anything changed.
    pub fn release_member(&mut self, member: &str) -> bool {
        let limit = self.config.delivery_count_limit;
        let mut changed = false;
        for r in self.records.values_mut() {
            if matches!(&r.state, RecordState::Acquired { member: m, .. } if &**m == member) {
                r.state = released(r.delivery_count, limit);
                changed = true;
            }
        }
        if changed {
            self.advance_start();
        }
        changed
    }

    /// Moves the start over acknowledged and archived records and gaps, forgetting them.
    fn advance_start(&mut self) {
        while self.start < self.end {
            match self.records.first_key_value() {
                None => self.start = self.end,
                Some((&offset, _)) if offset > self.start => self.start = offset,
                Some((&offset, r)) if r.state.is_done() => {
                    self.records.remove(&offset);
                    self.start = offset + 1;
                }
                Some(_) => break,
            }
        }
    }

    /// The durable state: the start, and every record in flight as a range of
    /// (state, delivery count); acquired records are stored as available.
    pub fn stored(&self) -> StoredPartitionState {
        let mut batches: Vec<StoredBatch> = Vec::new();
        for (&offset, r) in &self.records {
            let state = match r.state {
                RecordState::Acknowledged => STORED_ACKNOWLEDGED,
                RecordState::Archived => STORED_ARCHIVED,
                RecordState::Available | RecordState::Acquired { .. } => STORED_AVAILABLE,
            };
            match batches.last_mut() {
                Some(b)
                    if b.last_offset + 1 == offset
                        && b.state == state
                        && b.delivery_count == r.delivery_count =>
                {
                    b.last_offset = offset;
                }
                _ => batches.push(StoredBatch {
                    first_offset: offset,
                    last_offset: offset,
                    state,
                    delivery_count: r.delivery_count,
                }),
            }
        }
        StoredPartitionState {
            start_offset: self.start,
            batches,
        }
    }
}

/// What a released (or expired) record becomes.
fn released(delivery_count: i16, limit: i16) -> RecordState {
    if delivery_count >= limit {
        RecordState::Archived
    } else {
        RecordState::Available
    }
}

#[cfg(test)]
mod tests;
