//! The transaction APIs' checks beyond one resource (AddPartitionsToTxn,
//! TxnOffsetCommit, DescribeTransactions, ListTransactions, DescribeProducers), as
//! Kafka's `KafkaApis` makes them. InitProducerId, AddOffsetsToTxn and EndTxn are
//! refused whole by the router.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, DescribeProducersResponse,
    DescribeTransactionsResponse, ListTransactionsResponse, TxnOffsetCommitRequest,
};

use super::groups::GROUP_DENIED;
use super::{Check, Op};
use crate::names;

const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();
const TXN_DENIED: i16 = ResponseError::TransactionalIdAuthorizationFailed.code();

/// AddPartitionsToTxn: from v4 (brokers verifying a transaction) CLUSTER_ACTION; before,
/// WRITE on the transactional id (else TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every
/// partition) and on each topic but the internal ones (else TOPIC_AUTHORIZATION_FAILED,
/// and OPERATION_NOT_ATTEMPTED for the others). `Some` is the whole answer.
pub fn add_partitions_to_txn(
    c: &Check<'_>,
    req: &AddPartitionsToTxnRequest,
    version: i16,
) -> Option<AddPartitionsToTxnResponse> {
    if version >= 4 {
        return (!c.cluster(Op::ClusterAction)).then(|| {
            AddPartitionsToTxnResponse::default()
                .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
        });
    }
    let topics = &req.v3_and_below_topics;
    let answer = |code: &dyn Fn(&AddPartitionsToTxnTopic) -> i16| {
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
            topics
                .iter()
                .map(|t| {
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(code(t))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    if !c.txn(Op::Write, &req.v3_and_below_transactional_id) {
        return Some(answer(&|_| TXN_DENIED));
    }
    let allowed =
        |t: &AddPartitionsToTxnTopic| names::is_internal(&t.name) || c.topic(Op::Write, &t.name);
    if topics.iter().all(allowed) {
        return None;
    }
    let not_attempted = ResponseError::OperationNotAttempted.code();
    Some(answer(&|t| {
        if allowed(t) {
            not_attempted
        } else {
            TOPIC_DENIED
        }
    }))
}

/// TxnOffsetCommit: WRITE on the transactional id, READ on the group, READ on each
/// topic; every partition refused answers the first that fails.
pub fn txn_offset_commit(
    c: &Check<'_>,
    req: &mut TxnOffsetCommitRequest,
) -> Vec<TxnOffsetCommitResponseTopic> {
    let whole = if !c.txn(Op::Write, &req.transactional_id) {
        Some(TXN_DENIED)
    } else if !c.group(Op::Read, &req.group_id) {
        Some(GROUP_DENIED)
    } else {
        None
    };
    let (allowed, refused): (Vec<_>, Vec<_>) = std::mem::take(&mut req.topics)
        .into_iter()
        .partition(|t| whole.is_none() && c.topic(Op::Read, &t.name));
    req.topics = allowed;
    let code = whole.unwrap_or(TOPIC_DENIED);
    refused
        .into_iter()
        .map(|t| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect()
}

/// DescribeTransactions: a transactional id the principal may not DESCRIBE answers
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (and nothing else); topics it may not
/// DESCRIBE are left out.
pub fn describe_transactions(c: &Check<'_>, resp: &mut DescribeTransactionsResponse) {
    for s in &mut resp.transaction_states {
        if !c.txn(Op::Describe, &s.transactional_id) {
            let id = std::mem::take(&mut s.transactional_id);
            *s = Default::default();
            s.transactional_id = id;
            s.error_code = TXN_DENIED;
        }
        s.topics.retain(|t| c.topic(Op::Describe, &t.topic));
    }
}

/// ListTransactions: only transactional ids the principal may DESCRIBE.
pub fn list_transactions(c: &Check<'_>, resp: &mut ListTransactionsResponse) {
    resp.transaction_states
        .retain(|s| c.txn(Op::Describe, &s.transactional_id));
}

/// DescribeProducers: READ on each topic, else TOPIC_AUTHORIZATION_FAILED per partition.
pub fn describe_producers(c: &Check<'_>, resp: &mut DescribeProducersResponse) {
    for t in &mut resp.topics {
        if !c.topic(Op::Read, &t.name) {
            for p in &mut t.partitions {
                p.error_code = TOPIC_DENIED;
                p.error_message = None;
                p.active_producers.clear();
            }
        }
    }
}
