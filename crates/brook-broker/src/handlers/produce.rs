//! Produce: validate and append each partition's batches, answer per acks.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{BatchIter, Compression};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use super::str_bytes;
use crate::clock::now_ms;
use crate::metadata::MetadataView;
use crate::metrics::BrokerMetrics;
use crate::names::is_internal;
use crate::partition::{check_produced, AppendError, Appended, Partition};
use crate::replicas::Replicas;
use crate::traffic::TopicCounters;
use crate::txns::Txns;

/// Longest acks=all wait Brook honours, whatever the client's timeout says.
const MAX_ACKS_WAIT_MS: i32 = 120_000;

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

/// What a Produce request came to once its records are appended here.
pub enum Produced {
    /// The answer (none for acks=0).
    Done(Option<ProduceResponse>),
    /// acks=all: appended here, the answer waits for the in-sync replicas.
    Replicating(Replicating),
}

/// An acks=all Produce whose records are in the leader's log, waiting for the ISR
/// (Kafka's delayed produce). It owns what it needs, so the connection can hand it on
/// and go on reading the client's next requests meanwhile.
pub struct Replicating {
    responses: Vec<TopicProduceResponse>,
    /// (topic index, partition index) in `responses` of each partition to wait for.
    waits: Vec<(usize, usize, Arc<Partition>, Appended)>,
    deadline: tokio::time::Instant,
    throttle_time_ms: i32,
}

impl Replicating {
    /// Adds answers for partitions that were never appended to (refused by ACLs).
    pub fn extend(&mut self, refused: Vec<TopicProduceResponse>) {
        self.responses.extend(refused);
    }

    pub fn throttle_time_ms(&self) -> i32 {
        self.throttle_time_ms
    }

    pub fn set_throttle_time_ms(&mut self, ms: i32) {
        self.throttle_time_ms = ms;
    }

    /// Waits until every partition's records reached the ISR (or failed to), as the
    /// request's remote time: the answer.
    pub async fn replicated(mut self) -> ProduceResponse {
        // One deadline for all: waiting in turn costs no more than the slowest partition.
        for (ti, pi, partition, appended) in &self.waits {
            if let Err(code) = partition.wait_replicated(appended, self.deadline).await {
                let r = &mut self.responses[*ti].partition_responses[*pi];
                *r = failed(r.index, code, None);
            }
        }
        ProduceResponse::default()
            .with_responses(self.responses)
            .with_throttle_time_ms(self.throttle_time_ms)
    }
}

pub async fn handle(
    replicas: &Replicas,
    meta: &MetadataView,
    txns: &Txns,
    metrics: &BrokerMetrics,
    req: ProduceRequest,
    version: i16,
) -> Produced {
    let acks = req.acks;
    let timeout_ms = req.timeout_ms;
    let request_error = if !matches!(acks, -1..=1) {
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "acks must be -1, 0 or 1".to_string(),
        ))
    } else if req.transactional_id.is_some() && acks != -1 {
        // As Kafka: transactional records are written with acks=all only.
        Some((
            ResponseError::InvalidRequiredAcks.code(),
            "transactional produce requests must use acks=all".to_string(),
        ))
    } else {
        None
    };
    // acks=all: partitions whose records must reach the ISR before the answer.
    let mut waits: Vec<(usize, usize, Arc<Partition>, Appended)> = Vec::new();
    let mut responses: Vec<TopicProduceResponse> = Vec::with_capacity(req.topic_data.len());
    for (ti, topic) in req.topic_data.into_iter().enumerate() {
        // Found through the topic's first partition here (kept there), or looked up
        // by name at the end: None for a topic that does not exist (client-chosen
        // names make no series) or with counting off.
        let mut counters: Option<Arc<TopicCounters>> = None;
        let mut partition_responses = Vec::with_capacity(topic.partition_data.len());
        for (pi, pd) in topic.partition_data.into_iter().enumerate() {
            let response = 'response: {
                if let Some((code, msg)) = &request_error {
                    break 'response failed(pd.index, *code, Some(msg.clone()));
                }
                let Some(partition) = replicas.get(&topic.name.0, pd.index) else {
                    let code = if meta.is_cluster() && meta.image().topic(&topic.name.0).is_some() {
                        ResponseError::NotLeaderOrFollower.code()
                    } else {
                        ResponseError::UnknownTopicOrPartition.code()
                    };
                    break 'response failed(pd.index, code, None);
                };
                // Only the broker writes internal topics, as in Kafka.
                if is_internal(&topic.name.0) {
                    break 'response failed(
                        pd.index,
                        ResponseError::InvalidTopicException.code(),
                        Some("clients cannot write to internal topics".into()),
                    );
                }
                if let Err((code, message)) = verify_transactional(
                    txns,
                    req.transactional_id.as_ref().map(|t| t.as_str()),
                    pd.records.as_deref(),
                    &topic.name.0,
                    pd.index,
                    version,
                )
                .await
                {
                    break 'response failed(pd.index, code, Some(message));
                }
                let config = partition.config();
                let min_insync = (acks == -1).then(|| config.min_insync_replicas.max(1) as usize);
                let Some(records) = pd.records else {
                    break 'response failed(
                        pd.index,
                        ResponseError::InvalidRecord.code(),
                        Some("no records".into()),
                    );
                };
                // compression.type: batches in another codec are re-encoded first, on
                // the blocking pool, once what the client sent has passed every check
                // (size first, then its records, inflated as a bounded stream), and at
                // most RECOMPRESSIONS at a time, so a batch that inflates hugely costs
                // nothing and many cannot pile up.
                let size_bytes = records.len() as u64;
                let records = match config.recompress_to {
                    Some(target) if needs_recompression(&records, target) => {
                        let level = config.compression_level;
                        let Ok(_turn) = RECOMPRESSIONS.acquire().await else {
                            break 'response failed(
                                pd.index,
                                ResponseError::UnknownServerError.code(),
                                None,
                            );
                        };
                        let checked_config = config.clone();
                        let recompressed = tokio::task::spawn_blocking(move || {
                            check_produced(&records, &checked_config, now_ms())
                                .map_err(|e| (e.code(), e.to_string()))?;
                            brook_protocol::records::recompress(&records, target, level).map_err(
                                |e| {
                                    (
                                        ResponseError::InvalidRecord.code(),
                                        format!("cannot re-encode the batch: {e}"),
                                    )
                                },
                            )
                        })
                        .await;
                        match recompressed {
                            Ok(Ok(records)) => records,
                            Ok(Err((code, message))) => {
                                break 'response failed(pd.index, code, Some(message))
                            }
                            Err(e) => {
                                break 'response failed(
                                    pd.index,
                                    ResponseError::UnknownServerError.code(),
                                    Some(e.to_string()),
                                )
                            }
                        }
                    }
                    _ => records,
                };
                // Uncompressed records are checked and written to the page cache in
                // place; compressed ones are inflated to be checked, on the blocking
                // pool. An fsync that flush.messages asks for runs there too, before
                // the answer.
                let appended = if any_compressed(&records) {
                    let partition = partition.clone();
                    tokio::task::spawn_blocking(move || {
                        partition.append(&records, now_ms(), min_insync)
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(AppendError::Storage(brook_log::LogError::Io {
                            context: "append task".into(),
                            source: std::io::Error::other(e.to_string()),
                        }))
                    })
                } else {
                    partition.append(&records, now_ms(), min_insync)
                };
                let appended = match appended {
                    Ok(a) => match partition.flush_appended(&a).await {
                        Ok(()) => Ok(a),
                        Err(e) => Err(AppendError::Storage(e)),
                    },
                    Err(e) => Err(e),
                };
                match appended {
                    Ok(a) => {
                        if let Some(c) = partition.topic_counters(|| metrics.topic(&topic.name.0)) {
                            c.appended((a.next_offset - a.base_offset).max(0) as u64, size_bytes);
                            counters.get_or_insert_with(|| c.clone());
                        }
                        if acks == -1 {
                            waits.push((ti, pi, partition.clone(), a));
                        }
                        PartitionProduceResponse::default()
                            .with_index(pd.index)
                            .with_base_offset(a.base_offset)
                            .with_log_append_time_ms(a.log_append_time_ms)
                            .with_log_start_offset(a.log_start_offset)
                    }
                    Err(e) => {
                        if e.is_storage_failure() && storage_log_due() {
                            tracing::error!(topic = %topic.name.0, partition = pd.index, error = %e, "cannot append (logged at most once a second)");
                        }
                        tracing::debug!(topic = %topic.name.0, partition = pd.index, error = %e, "produce rejected");
                        failed(pd.index, e.code(), Some(e.to_string()))
                    }
                }
            };
            partition_responses.push(response);
        }
        if let Some(c) = counters.or_else(|| metrics.topic(&topic.name.0)) {
            c.produce_request(partition_responses.iter().any(|p| p.error_code != 0));
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    // Partitions whose records are already in the ISR (a leader alone in its ISR, as on
    // a single broker) are answered now: no wait, so no task to wait in.
    waits.retain(
        |(ti, pi, partition, appended)| match partition.replicated_now(appended) {
            None => true,
            Some(Ok(())) => false,
            Some(Err(code)) => {
                let r = &mut responses[*ti].partition_responses[*pi];
                *r = failed(r.index, code, None);
                false
            }
        },
    );
    if !waits.is_empty() {
        let deadline = tokio::time::Instant::now()
            + Duration::from_millis(timeout_ms.clamp(0, MAX_ACKS_WAIT_MS) as u64);
        return Produced::Replicating(Replicating {
            responses,
            waits,
            deadline,
            throttle_time_ms: 0,
        });
    }
    if acks == 0 {
        return Produced::Done(None);
    }
    Produced::Done(Some(ProduceResponse::default().with_responses(responses)))
}

/// Whether a batch of the request is compressed (its records are then checked by
/// inflating them, work for the blocking pool).
fn any_compressed(records: &[u8]) -> bool {
    BatchIter::new(records)
        .map_while(Result::ok)
        .any(|(h, _)| h.compression() != Compression::None)
}

/// A transactional batch is accepted only inside the ongoing transaction its producer
/// added this partition to ([`Txns::verify`]). The coordinator's verdict is turned into
/// the error each client version expects for Produce, as Kafka does.
async fn verify_transactional(
    txns: &Txns,
    transactional_id: Option<&str>,
    records: Option<&[u8]>,
    topic: &str,
    partition: i32,
    version: i16,
) -> Result<(), (i16, String)> {
    let Some(Ok((header, _))) = records.and_then(|r| BatchIter::new(r).next()) else {
        return Ok(()); // no batch: refused by validation
    };
    if !header.is_transactional() {
        return Ok(());
    }
    let Some(id) = transactional_id else {
        return Err((
            ResponseError::InvalidTxnState.code(),
            "transactional records need the producer's transactional id".into(),
        ));
    };
    let verdict = txns
        .verify(
            id,
            header.producer_id,
            header.producer_epoch,
            topic,
            partition,
        )
        .await;
    let error = match verdict {
        Ok(()) => return Ok(()),
        Err(ResponseError::ProducerFenced) => ResponseError::InvalidProducerEpoch,
        // Retriable for every client: the markers of its last transaction are on their way.
        Err(ResponseError::ConcurrentTransactions) => ResponseError::NotEnoughReplicas,
        Err(ResponseError::TransactionAbortable) if version < 12 => ResponseError::InvalidTxnState,
        Err(other) => other,
    };
    Err((
        error.code(),
        format!("the partition is not in an ongoing transaction of this producer ({error:?})"),
    ))
}

/// Produce requests being re-encoded at once (`compression.type`): each may hold up to
/// `MAX_DECOMPRESSED_BATCH_BYTES` of inflated records; the rest wait their turn.
static RECOMPRESSIONS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// Whether a batch of the request (other than a control batch, which validation
/// refuses) is not in the topic's `compression.type`.
fn needs_recompression(records: &[u8], target: Compression) -> bool {
    BatchIter::new(records)
        .map_while(Result::ok)
        .any(|(h, _)| !h.is_control() && h.compression() != target)
}
