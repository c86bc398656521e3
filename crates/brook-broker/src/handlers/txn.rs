//! Transactions: InitProducerId with a transactional id, AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn and the admin views go to the transaction coordinator
//! (`crate::txns`); TxnOffsetCommit to the group coordinator; WriteTxnMarkers (what a
//! coordinator sends a partition leader) writes markers here.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

use super::topic_name;
use crate::clock::now_ms;
use crate::controller_client::ControllerClient;
use crate::error::ApiError;
use crate::groups::Groups;
use crate::image_topics::ImageTopics;
use crate::markers::MarkerWriter;
use crate::metadata::MetadataView;
use crate::names::{coordinator_partition_for, is_internal};
use crate::peer::MarkerRequest;
use crate::replicas::Replicas;
use crate::txns::Txns;

/// Whether this broker may act for `transactional_id` now; otherwise the error to
/// answer (NOT_COORDINATOR sends the client back to FindCoordinator).
async fn coordinator_for(txns: &Txns, transactional_id: &str) -> Result<(), ApiError> {
    if transactional_id.is_empty() {
        return Err(ApiError::new(
            ResponseError::InvalidRequest,
            "empty transactional id",
        ));
    }
    txns.ensure_topic().await?;
    if txns.owns(transactional_id) {
        Ok(())
    } else {
        Err(ApiError::new(
            ResponseError::NotCoordinator,
            "this broker does not coordinate the transactional id",
        ))
    }
}

pub async fn init_producer_id(
    txns: &Arc<Txns>,
    controller: &ControllerClient,
    req: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let failed = |e: ApiError| {
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_error_code(e.code)
    };
    let Some(id) = req.transactional_id.as_ref().map(|s| s.to_string()) else {
        return super::producer_id::handle(controller).await;
    };
    if let Err(e) = coordinator_for(txns, &id).await {
        return failed(e);
    }
    // A fresh producer id is needed only for a new id or an exhausted epoch.
    let needs_id = txns
        .read(|c| c.producer(&id))
        .is_none_or(|(_, epoch)| epoch >= i16::MAX - 2);
    let fresh = if needs_id {
        match controller.allocate_producer_id().await {
            Ok(pid) => pid,
            Err(e) => return failed(e),
        }
    } else {
        -1
    };
    txns.apply(&id, |c| c.init_producer_id(version, &req, fresh, now_ms()))
        .await
        .unwrap_or_else(failed)
}

pub async fn add_partitions(
    txns: &Arc<Txns>,
    meta: &MetadataView,
    req: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    let id = req.v3_and_below_transactional_id.to_string();
    let failed = |e: ApiError| {
        let topics = req
            .v3_and_below_topics
            .iter()
            .map(|t| {
                AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(
                        t.partitions
                            .iter()
                            .map(|&p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_partition_error_code(e.code)
                            })
                            .collect(),
                    )
            })
            .collect();
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topics)
    };
    if let Err(e) = coordinator_for(txns, &id).await {
        return failed(e);
    }
    let image = meta.image();
    // Internal topics are written by coordinators only (Kafka refuses them too).
    let exists = |topic: &str, index: i32| {
        !is_internal(topic)
            && image
                .topic(topic)
                .is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len())
    };
    let result = txns
        .apply(&id, |c| c.add_partitions(version, &req, &exists, now_ms()))
        .await;
    result.unwrap_or_else(failed)
}

pub async fn add_offsets(
    txns: &Arc<Txns>,
    groups: &Groups,
    req: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.to_string();
    let failed = |e: ApiError| AddOffsetsToTxnResponse::default().with_error_code(e.code);
    if let Err(e) = coordinator_for(txns, &id).await {
        return failed(e);
    }
    let offsets_partition =
        coordinator_partition_for(req.group_id.as_str(), groups.offsets_partition_count());
    txns.apply(&id, |c| {
        c.add_offsets(version, &req, offsets_partition, now_ms())
    })
    .await
    .unwrap_or_else(failed)
}

pub async fn end_txn(txns: &Arc<Txns>, req: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = req.transactional_id.to_string();
    let failed = |e: ApiError| EndTxnResponse::default().with_error_code(e.code);
    if let Err(e) = coordinator_for(txns, &id).await {
        return failed(e);
    }
    txns.apply(&id, |c| c.end_txn(version, &req, now_ms()))
        .await
        .unwrap_or_else(failed)
}

pub fn describe_transactions(
    txns: &Txns,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let owns = |id: &str| txns.owns(id);
    txns.read(|c| c.describe_transactions(&req, &owns))
}

pub fn list_transactions(
    txns: &Txns,
    req: ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    txns.read(|c| c.list_transactions(version, &req, now_ms()))
}

pub async fn txn_offset_commit(
    groups: &Groups,
    meta: &MetadataView,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let failed = |e: &ApiError| {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(e.code)
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    };
    if !groups.coordinates(req.group_id.as_str()) {
        return failed(&ApiError::new(
            ResponseError::NotCoordinator,
            "not the group coordinator",
        ));
    }
    match groups
        .txn_offset_commit(&req, &ImageTopics(&meta.image()))
        .await
    {
        Ok(response) => response,
        Err(e) => failed(&e),
    }
}

/// WriteTxnMarkers: the form Kafka's coordinators send; Brook's own coordinators use
/// the same writer through their inter-broker channel.
pub async fn write_txn_markers(
    markers: &MarkerWriter,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(req.markers.len());
    for marker in req.markers {
        let partitions: Vec<(String, i32)> = marker
            .topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(move |&p| (t.name.to_string(), p))
            })
            .collect();
        let request = MarkerRequest {
            producer_id: marker.producer_id.0,
            producer_epoch: marker.producer_epoch,
            commit: marker.transaction_result,
            coordinator_epoch: marker.coordinator_epoch,
            partitions: partitions.clone(),
        };
        let codes = markers.write(&request).await;
        let topics = super::by_topic(
            partitions
                .into_iter()
                .zip(codes)
                .map(|((topic, index), code)| (topic, (index, code))),
        )
        .into_iter()
        .map(|(topic, partitions)| {
            WritableTxnMarkerTopicResult::default()
                .with_name(topic_name(&topic))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|(index, code)| {
                            WritableTxnMarkerPartitionResult::default()
                                .with_partition_index(index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}

/// DescribeProducers (KIP-664): the producers with state in partitions this broker leads,
/// with the first offset of their open transaction (what finds hanging transactions).
pub fn describe_producers(
    replicas: &Replicas,
    meta: &MetadataView,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = PartitionResponse::default().with_partition_index(index);
                    let Some(partition) = replicas.get(&t.name, index) else {
                        let known = meta.image().topic(&t.name).is_some();
                        let code = if known && meta.is_cluster() {
                            ResponseError::NotLeaderOrFollower
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        return base.with_error_code(code.code());
                    };
                    match partition.producers() {
                        Err(refused) => base.with_error_code(refused.0),
                        Ok(producers) => base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.producer_epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.current_txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
