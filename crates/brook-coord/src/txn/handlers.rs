//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn and EndTxn, and the check a
//! transactional write makes against its transaction.

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::info;

use super::metadata::{TopicPartition, TxnMetadata, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use super::records::by_topic;
use super::{TransactionCoordinator, TxnEffects, TxnState};

/// The internal topic whose partition AddOffsetsToTxn adds (a group's offsets partition).
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// InitProducerId v3+ names the producer it had (KIP-360).
const FIRST_INIT_VERSION_WITH_PRODUCER: i16 = 3;
/// Before these versions, clients know INVALID_PRODUCER_EPOCH but not PRODUCER_FENCED.
const FIRST_INIT_VERSION_WITH_PRODUCER_FENCED: i16 = 4;
const FIRST_ADD_PARTITIONS_VERSION_WITH_PRODUCER_FENCED: i16 = 2;
const FIRST_ADD_OFFSETS_VERSION_WITH_PRODUCER_FENCED: i16 = 2;
const FIRST_END_VERSION_WITH_PRODUCER_FENCED: i16 = 2;
/// AddPartitionsToTxn v4+ carries batches of transactions from other brokers.
const FIRST_ADD_PARTITIONS_VERSION_FROM_BROKERS: i16 = 4;

/// PRODUCER_FENCED as a client of `version` understands it.
fn fenced_for(error: ResponseError, version: i16, first_version_with_fenced: i16) -> ResponseError {
    if error == ResponseError::ProducerFenced && version < first_version_with_fenced {
        ResponseError::InvalidProducerEpoch
    } else {
        error
    }
}

fn error_code(result: Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

impl TransactionCoordinator {
    /// Handles InitProducerId. `fresh_producer_id` is an unused producer id the broker
    /// allocated for this call; it is used only when one is needed (no transactional id,
    /// a new transactional id, or an exhausted epoch), which the broker can tell by the
    /// response carrying it.
    ///
    /// Without a transactional id (an idempotent producer) the answer is the fresh id at
    /// epoch 0 and nothing is stored. A new id gets the fresh id at epoch 0; an idle one
    /// the next epoch (see `TxnMetadata::reinitialized` for KIP-360 and exhaustion). An
    /// Ongoing transaction is aborted first, with its producer fenced: the answer is
    /// CONCURRENT_TRANSACTIONS and the producer retries until the abort is complete.
    pub fn init_producer_id(
        &mut self,
        version: i16,
        request: &InitProducerIdRequest,
        fresh_producer_id: i64,
        now_ms: i64,
    ) -> (InitProducerIdResponse, TxnEffects) {
        let mut effects = TxnEffects::default();
        let result = self.init(version, request, fresh_producer_id, now_ms, &mut effects);
        let mut response = InitProducerIdResponse::default();
        match result {
            Ok((producer_id, producer_epoch)) => {
                response.producer_id = producer_id.into();
                response.producer_epoch = producer_epoch;
            }
            Err(error) => {
                response.error_code =
                    fenced_for(error, version, FIRST_INIT_VERSION_WITH_PRODUCER_FENCED).code();
                response.producer_id = NO_PRODUCER_ID.into();
                response.producer_epoch = NO_PRODUCER_EPOCH;
            }
        }
        (response, effects)
    }

    fn init(
        &mut self,
        version: i16,
        request: &InitProducerIdRequest,
        fresh_producer_id: i64,
        now_ms: i64,
        effects: &mut TxnEffects,
    ) -> Result<(i64, i16), ResponseError> {
        let expected = expected_producer(version, request)?;
        let Some(id) = request.transactional_id.as_ref().map(|id| id.as_str()) else {
            return Ok((fresh_producer_id, 0));
        };
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let timeout_ms = request.transaction_timeout_ms;
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let Some(meta) = self.txns.get(id) else {
            info!(transactional_id = %id, producer_id = fresh_producer_id, "new transactional id");
            self.txns.insert(
                id.to_owned(),
                TxnMetadata::new(fresh_producer_id, timeout_ms, now_ms),
            );
            self.persist(id, effects);
            return Ok((fresh_producer_id, 0));
        };
        if expected.is_some_and(|producer| !meta.accepts_init_from(producer)) {
            return Err(ResponseError::ProducerFenced);
        }
        match meta.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                info!(
                    transactional_id = %id,
                    producer_id = meta.producer_id,
                    producer_epoch = meta.producer_epoch,
                    "InitProducerId fences the producer of an ongoing transaction"
                );
                self.fence_and_abort(id, now_ms, effects);
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let next = meta.reinitialized(expected, fresh_producer_id, timeout_ms, now_ms)?;
                let answer = (next.producer_id, next.producer_epoch);
                self.txns.insert(id.to_owned(), next);
                self.persist(id, effects);
                Ok(answer)
            }
        }
    }

    /// Handles AddPartitionsToTxn from clients (versions 0 to 3). `exists` tells whether a
    /// partition exists: if any does not, none is added (UNKNOWN_TOPIC_OR_PARTITION for
    /// those, OPERATION_NOT_ATTEMPTED for the others, as Kafka). Otherwise every
    /// partition gets the same answer. Adding partitions already in the transaction
    /// writes nothing. Versions 4+ (batches from brokers) get UNSUPPORTED_VERSION.
    pub fn add_partitions(
        &mut self,
        version: i16,
        request: &AddPartitionsToTxnRequest,
        exists: &dyn Fn(&str, i32) -> bool,
        now_ms: i64,
    ) -> (AddPartitionsToTxnResponse, TxnEffects) {
        let mut effects = TxnEffects::default();
        let mut response = AddPartitionsToTxnResponse::default();
        if version >= FIRST_ADD_PARTITIONS_VERSION_FROM_BROKERS {
            response.error_code = ResponseError::UnsupportedVersion.code();
            return (response, effects);
        }
        let partitions: BTreeSet<TopicPartition> = request
            .v3_and_below_topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(move |p| (topic.name.as_str().to_owned(), *p))
            })
            .collect();
        let missing: BTreeSet<&TopicPartition> = partitions
            .iter()
            .filter(|(topic, partition)| !exists(topic, *partition))
            .collect();
        // One answer for every partition, or none when some partition does not exist.
        let answer = missing.is_empty().then(|| {
            let result = self.add(
                request.v3_and_below_transactional_id.as_str(),
                *request.v3_and_below_producer_id,
                request.v3_and_below_producer_epoch,
                &partitions,
                now_ms,
                &mut effects,
            );
            error_code(result.map_err(|e| {
                fenced_for(
                    e,
                    version,
                    FIRST_ADD_PARTITIONS_VERSION_WITH_PRODUCER_FENCED,
                )
            }))
        });
        let code_of = |tp: &TopicPartition| match answer {
            Some(code) => code,
            None if missing.contains(tp) => ResponseError::UnknownTopicOrPartition.code(),
            None => ResponseError::OperationNotAttempted.code(),
        };
        response.results_by_topic_v3_and_below = by_topic(&partitions)
            .into_iter()
            .map(|(topic, indexes)| {
                let mut result = AddPartitionsToTxnTopicResult::default();
                result.name = TopicName(StrBytes::from_string(topic.to_owned()));
                result.results_by_partition = indexes
                    .into_iter()
                    .map(|index| {
                        let mut partition = AddPartitionsToTxnPartitionResult::default();
                        partition.partition_index = index;
                        partition.partition_error_code = code_of(&(topic.to_owned(), index));
                        partition
                    })
                    .collect();
                result
            })
            .collect();
        (response, effects)
    }

    /// Handles AddOffsetsToTxn: adds `(__consumer_offsets, offsets_partition)` to the
    /// transaction, `offsets_partition` being the partition of `request.group_id` (which
    /// the broker computes). The offsets themselves come in TxnOffsetCommit, which the
    /// broker handles with the group coordinator.
    pub fn add_offsets(
        &mut self,
        version: i16,
        request: &AddOffsetsToTxnRequest,
        offsets_partition: i32,
        now_ms: i64,
    ) -> (AddOffsetsToTxnResponse, TxnEffects) {
        let mut effects = TxnEffects::default();
        let partitions = BTreeSet::from([(OFFSETS_TOPIC.to_owned(), offsets_partition)]);
        let result = self.add(
            request.transactional_id.as_str(),
            *request.producer_id,
            request.producer_epoch,
            &partitions,
            now_ms,
            &mut effects,
        );
        let mut response = AddOffsetsToTxnResponse::default();
        response.error_code =
            error_code(result.map_err(|e| {
                fenced_for(e, version, FIRST_ADD_OFFSETS_VERSION_WITH_PRODUCER_FENCED)
            }));
        (response, effects)
    }

    /// Adds partitions to `id`'s transaction on behalf of its current producer.
    fn add(
        &mut self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &BTreeSet<TopicPartition>,
        now_ms: i64,
        effects: &mut TxnEffects,
    ) -> Result<(), ResponseError> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let meta = self.current_producer(id, producer_id, producer_epoch)?;
        if meta.state.is_prepare() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if meta.add_partitions(partitions, now_ms) {
            self.persist(id, effects);
        }
        Ok(())
    }

    /// Handles EndTxn. From Ongoing: the decision's record and a marker job (or, with no
    /// partitions, straight to complete). A retry after the decision: NONE once complete,
    /// CONCURRENT_TRANSACTIONS while its markers are written. The other decision, or
    /// EndTxn with no transaction: INVALID_TXN_STATE.
    pub fn end_txn(
        &mut self,
        version: i16,
        request: &EndTxnRequest,
        now_ms: i64,
    ) -> (EndTxnResponse, TxnEffects) {
        let mut effects = TxnEffects::default();
        let id = request.transactional_id.as_str();
        let result = self.end_txn_for(id, request, now_ms, &mut effects);
        let mut response = EndTxnResponse::default();
        response.error_code = error_code(
            result.map_err(|e| fenced_for(e, version, FIRST_END_VERSION_WITH_PRODUCER_FENCED)),
        );
        let (producer_id, producer_epoch) = match result {
            Ok(()) => self.producer(id).expect("ended a known id"),
            Err(_) => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH),
        };
        response.producer_id = producer_id.into();
        response.producer_epoch = producer_epoch;
        (response, effects)
    }

    fn end_txn_for(
        &mut self,
        id: &str,
        request: &EndTxnRequest,
        now_ms: i64,
        effects: &mut TxnEffects,
    ) -> Result<(), ResponseError> {
        if id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let commit = request.committed;
        let meta = self.current_producer(id, *request.producer_id, request.producer_epoch)?;
        match (meta.state, commit) {
            (TxnState::Ongoing, _) => {
                self.end(id, commit, now_ms, effects);
                Ok(())
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// Whether `producer_id` at `producer_epoch` may write to `topic`/`partition` in
    /// `transactional_id`'s transaction now (Kafka's verify-only AddPartitionsToTxn, used
    /// before a transactional Produce or TxnOffsetCommit is accepted). The errors are the
    /// coordinator's: INVALID_PRODUCER_ID_MAPPING (unknown id or another producer id),
    /// PRODUCER_FENCED (another epoch), CONCURRENT_TRANSACTIONS (its markers are being
    /// written), TRANSACTION_ABORTABLE (the partition was not added). Kafka hands older
    /// clients INVALID_PRODUCER_EPOCH and INVALID_TXN_STATE instead of the last two.
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ResponseError> {
        let meta = self
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            Err(ResponseError::InvalidProducerIdMapping)
        } else if meta.producer_epoch != producer_epoch {
            Err(ResponseError::ProducerFenced)
        } else if meta.state.is_prepare() {
            Err(ResponseError::ConcurrentTransactions)
        } else if meta.partitions.contains(&(topic.to_owned(), partition)) {
            Ok(())
        } else {
            Err(ResponseError::TransactionAbortable)
        }
    }

    /// `id`'s state, if `producer_id` at `producer_epoch` is its current producer.
    fn current_producer(
        &mut self,
        id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&mut TxnMetadata, ResponseError> {
        let meta = self
            .txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            Err(ResponseError::InvalidProducerIdMapping)
        } else if meta.producer_epoch != producer_epoch {
            Err(ResponseError::ProducerFenced)
        } else {
            Ok(meta)
        }
    }
}

/// The producer an InitProducerId v3+ names (KIP-360): both fields or neither.
fn expected_producer(
    version: i16,
    request: &InitProducerIdRequest,
) -> Result<Option<(i64, i16)>, ResponseError> {
    if version < FIRST_INIT_VERSION_WITH_PRODUCER {
        return Ok(None);
    }
    match (*request.producer_id, request.producer_epoch) {
        (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => Ok(None),
        (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => Err(ResponseError::InvalidRequest),
        (producer_id, producer_epoch) => Ok(Some((producer_id, producer_epoch))),
    }
}
