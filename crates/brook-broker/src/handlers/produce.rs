//! Produce: validate and append each partition's batches, answer per acks.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::str_bytes;
use crate::partition::AppendError;
use crate::shared::{now_ms, Shared};

/// Storage errors (a full disk) can fail every produce; log them once a second at most.
fn storage_log_due() -> bool {
    static LAST_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let last = LAST_MS.load(std::sync::atomic::Ordering::Relaxed);
    now - last >= 1000
        && LAST_MS
            .compare_exchange(
                last,
                now,
                std::sync::atomic::Ordering::Relaxed,
                std::sync::atomic::Ordering::Relaxed,
            )
            .is_ok()
}

fn failed(index: i32, code: i16, message: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code)
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(str_bytes))
}

pub async fn handle(
    shared: &Arc<Shared>,
    req: ProduceRequest,
    _version: i16,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let request_error = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "acks must be -1, 0 or 1".to_string(),
        ))
    } else if req.transactional_id.is_some() {
        Some((
            ResponseError::TransactionalIdAuthorizationFailed.code(),
            "transactions are not supported by this broker yet".to_string(),
        ))
    } else {
        None
    };
    let mut appended_any = false;
    let responses = req
        .topic_data
        .into_iter()
        .map(|topic| {
            let partition_responses = topic
                .partition_data
                .into_iter()
                .map(|pd| {
                    if let Some((code, msg)) = &request_error {
                        return failed(pd.index, *code, Some(msg.clone()));
                    }
                    let Some(partition) = shared.partition(&topic.name.0, pd.index) else {
                        return failed(pd.index, ResponseError::UnknownTopicOrPartition.code(), None);
                    };
                    // Only the broker writes internal topics (__consumer_offsets), as in Kafka.
                    if topic.name.0.as_str() == crate::groups::OFFSETS_TOPIC {
                        return failed(
                            pd.index,
                            ResponseError::InvalidTopicException.code(),
                            Some("clients cannot write to internal topics".into()),
                        );
                    }
                    let config = partition.config();
                    if acks == -1 && config.min_insync_replicas > 1 {
                        return failed(
                            pd.index,
                            ResponseError::NotEnoughReplicas.code(),
                            Some(format!("min.insync.replicas={} but only 1 replica is in sync", config.min_insync_replicas)),
                        );
                    }
                    let Some(records) = pd.records else {
                        return failed(pd.index, ResponseError::InvalidRecord.code(), Some("no records".into()));
                    };
                    match tokio::task::block_in_place(|| partition.append(&records, now_ms())) {
                        Ok(a) => {
                            appended_any = true;
                            PartitionProduceResponse::default()
                                .with_index(pd.index)
                                .with_base_offset(a.base_offset)
                                .with_log_append_time_ms(a.log_append_time_ms)
                                .with_log_start_offset(a.log_start_offset)
                        }
                        Err(e) => {
                            if matches!(e, AppendError::Storage(_)) && storage_log_due() {
                                tracing::error!(topic = %topic.name.0, partition = pd.index, error = %e, "cannot append (logged at most once a second)");
                            }
                            tracing::debug!(topic = %topic.name.0, partition = pd.index, error = %e, "produce rejected");
                            failed(pd.index, e.code(), Some(e.to_string()))
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default().with_name(topic.name).with_partition_responses(partition_responses)
        })
        .collect();
    if appended_any {
        shared.data_appended.notify_waiters();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}
