//! DescribeTransactions and ListTransactions (KIP-664).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as DescribedTxn,
};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTxn;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::{TxnMetadata, KNOWN_STATE_NAMES};
use super::records::by_topic;
use super::TransactionCoordinator;

/// ListTransactions v1+ filters by how long a transaction has been running.
const FIRST_LIST_VERSION_WITH_DURATION: i16 = 1;
/// ListTransactions v2+ filters by a transactional id pattern (not supported here).
const FIRST_LIST_VERSION_WITH_PATTERN: i16 = 2;
/// What a transaction without a start time counts as started at (Kafka's -1).
const NO_START_MS: i64 = -1;

impl TransactionCoordinator {
    /// Handles DescribeTransactions: per id, its state, producer, timeout, start time and
    /// partitions (by topic). An empty id is INVALID_REQUEST, an id this broker does not
    /// coordinate (`owns` is false) NOT_COORDINATOR, an unknown one
    /// TRANSACTIONAL_ID_NOT_FOUND.
    pub fn describe_transactions(
        &self,
        request: &DescribeTransactionsRequest,
        owns: &dyn Fn(&str) -> bool,
    ) -> DescribeTransactionsResponse {
        let mut response = DescribeTransactionsResponse::default();
        for id in &request.transactional_ids {
            let mut described = DescribedTxn::default();
            described.transactional_id = id.clone();
            let error = if id.is_empty() {
                Some(ResponseError::InvalidRequest)
            } else if !owns(id.as_str()) {
                Some(ResponseError::NotCoordinator)
            } else {
                match self.txns.get(id.as_str()) {
                    None => Some(ResponseError::TransactionalIdNotFound),
                    Some(meta) => {
                        describe(meta, &mut described);
                        None
                    }
                }
            };
            described.error_code = error.map_or(0, |e| e.code());
            response.transaction_states.push(described);
        }
        response
    }

    /// Handles ListTransactions: every id, in id order, filtered by state name (exact, as
    /// Kafka; names it does not know come back in `unknown_state_filters`), by producer
    /// id, and (v1+) by having run longer than `duration_filter` ms. A v2 id pattern is
    /// not supported: INVALID_REQUEST (the broker should advertise v1 at most).
    pub fn list_transactions(
        &self,
        version: i16,
        request: &ListTransactionsRequest,
        now_ms: i64,
    ) -> ListTransactionsResponse {
        let mut response = ListTransactionsResponse::default();
        if version >= FIRST_LIST_VERSION_WITH_PATTERN
            && request
                .transactional_id_pattern
                .as_ref()
                .is_some_and(|pattern| !pattern.is_empty())
        {
            response.error_code = ResponseError::InvalidRequest.code();
            return response;
        }
        response.unknown_state_filters = request
            .state_filters
            .iter()
            .filter(|name| !KNOWN_STATE_NAMES.contains(&name.as_str()))
            .cloned()
            .collect();
        let duration_ms = if version >= FIRST_LIST_VERSION_WITH_DURATION {
            request.duration_filter
        } else {
            -1
        };
        let included = |meta: &TxnMetadata| {
            let state_matches = request.state_filters.is_empty()
                || request
                    .state_filters
                    .iter()
                    .any(|name| name.as_str() == meta.state.name());
            let producer_matches = request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|id| **id == meta.producer_id);
            // As Kafka: a transaction without a start time counts as started at -1.
            let running_ms = now_ms.saturating_sub(meta.txn_start_ms.unwrap_or(NO_START_MS));
            let old_enough = duration_ms < 0 || running_ms > duration_ms;
            state_matches && producer_matches && old_enough
        };
        response.transaction_states = self
            .txns
            .iter()
            .filter(|(_, meta)| included(meta))
            .map(|(id, meta)| {
                let mut listed = ListedTxn::default();
                listed.transactional_id = StrBytes::from_string(id.clone()).into();
                listed.producer_id = meta.producer_id.into();
                listed.transaction_state = StrBytes::from_static_str(meta.state.name());
                listed
            })
            .collect();
        response
    }
}

fn describe(meta: &TxnMetadata, described: &mut DescribedTxn) {
    described.transaction_state = StrBytes::from_static_str(meta.state.name());
    described.transaction_timeout_ms = meta.timeout_ms;
    described.transaction_start_time_ms = meta.txn_start_ms.unwrap_or(NO_START_MS);
    described.producer_id = meta.producer_id.into();
    described.producer_epoch = meta.producer_epoch;
    described.topics = by_topic(&meta.partitions)
        .into_iter()
        .map(|(topic, partitions)| {
            let mut data = TopicData::default();
            data.topic = TopicName(StrBytes::from_string(topic.to_owned()));
            data.partitions = partitions;
            data
        })
        .collect();
}
