//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::partition::Partition;
use crate::replicas::Replicas;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub fn handle(replicas: &Replicas, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // READ_COMMITTED (1, v2+): "latest" is the last stable offset.
    let read_committed = version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some(partition) = replicas.get(&t.name.0, p.partition_index) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    let (leader, leader_epoch) = partition.leadership();
                    if leader != replicas.node_id() {
                        return base.with_error_code(ResponseError::NotLeaderOrFollower.code());
                    }
                    if p.current_leader_epoch > leader_epoch {
                        return base.with_error_code(ResponseError::UnknownLeaderEpoch.code());
                    }
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch < leader_epoch {
                        return base.with_error_code(ResponseError::FencedLeaderEpoch.code());
                    }
                    // v1–v3 responses have no leader epoch field; the codec refuses a non-default value.
                    let epoch = if version >= 4 { leader_epoch } else { -1 };
                    match lookup(&partition, p.timestamp, read_committed) {
                        Ok(Some((offset, timestamp))) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(epoch),
                        Ok(None) => base,
                        Err(e) => {
                            tracing::error!(error = %e, "list offsets failed");
                            base.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    partition: &Partition,
    timestamp: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, brook_log::LogError> {
    let (start, end) = partition.offsets();
    match timestamp {
        LATEST if read_committed => Ok(Some((partition.last_stable_offset(), -1))),
        LATEST => Ok(Some((end, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((start, -1))),
        LATEST_TIERED => Ok(Some((-1, -1))),
        MAX_TIMESTAMP => partition
            .with_log(|log| log.max_timestamp_and_offset())
            .map(|found| found.map(|(ts, offset)| (offset, ts))),
        ts if ts >= 0 => partition.with_log(|log| log.offset_for_timestamp(ts)),
        _ => Ok(None),
    }
}

/// The end offset of a leader epoch, from the partition's epoch cache (leader only).
pub fn leader_epoch(
    replicas: &Replicas,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let Some(partition) = replicas.get(&t.topic.0, p.partition) else {
                        return base.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if p.leader_epoch < 0 {
                        return base;
                    }
                    match partition.end_offset_for_epoch(p.leader_epoch, p.current_leader_epoch) {
                        Ok((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
                        Err(refused) => base.with_error_code(refused.0),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
