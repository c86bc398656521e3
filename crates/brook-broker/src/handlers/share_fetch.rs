//! KIP-932 share consumption: ShareFetch and ShareAcknowledge. The share session, the
//! acknowledgements (written before they are answered), then acquisition of records
//! with a long poll that wakes on new data or on an acquisition lock expiring.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use brook_coord::share::partition::AcquireMode;
use brook_coord::share::session::{
    SessionError, SessionPartition, SessionUse, FINAL_EPOCH, INITIAL_EPOCH,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::time::Instant;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::metadata::MetadataView;
use crate::session::ConnectionShares;
use crate::shares::{ShareKey, Shares};

/// The most bytes one ShareFetch answers with (Brook's bound on a client's
/// `max_bytes`; Kafka's `fetch.max.bytes` default is 50 MiB).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Records per ShareFetch when the request names no limit (Kafka's `max.poll.records`).
const DEFAULT_MAX_RECORDS: usize = 500;
/// The longest a ShareFetch waits for records (Brook's bound on `max_wait_ms`).
const MAX_WAIT_MS: i32 = 30_000;

fn session_error(e: SessionError) -> i16 {
    match e {
        SessionError::NotFound => ResponseError::ShareSessionNotFound.code(),
        SessionError::InvalidEpoch => ResponseError::InvalidShareSessionEpoch.code(),
        SessionError::LimitReached => ResponseError::ShareSessionLimitReached.code(),
        SessionError::TooManyPartitions => ResponseError::InvalidRequest.code(),
    }
}

/// Group and member of a share request, both required.
fn ids(group: Option<&str>, member: Option<&str>) -> Result<(String, String), (i16, &'static str)> {
    let group = group.filter(|g| !g.is_empty()).ok_or((
        ResponseError::InvalidGroupId.code(),
        "a share request needs a group id",
    ))?;
    let member = member.filter(|m| !m.is_empty()).ok_or((
        ResponseError::UnknownMemberId.code(),
        "a share request needs a member id",
    ))?;
    Ok((group.to_owned(), member.to_owned()))
}

/// The group and member of a share request: both present, and a member of the group
/// (see [`check_member`]); else the error code and message to answer with.
fn requester(
    shares: &Shares,
    group: Option<&str>,
    member: Option<&str>,
    epoch: i32,
) -> Result<(String, String), (i16, String)> {
    let (group, member) = ids(group, member).map_err(|(code, m)| (code, m.to_owned()))?;
    check_member(shares, &group, &member, epoch)
        .map_err(|message| (ResponseError::UnknownMemberId.code(), message))?;
    Ok((group, member))
}

/// A request's acknowledgements (RENEW among them from v2), after what the member holds
/// in its session's partitions was released if the request closes its session.
async fn settle(
    shares: &Shares,
    meta: &MetadataView,
    (group, member): (&str, &str),
    (epoch, session): (i32, &[SessionPartition]),
    acks: &[(SessionPartition, AckBatches<'_>)],
    version: i16,
) -> BTreeMap<SessionPartition, i16> {
    // As Kafka: a closing request's acknowledgements count before what the member still
    // holds is released, so records a consumer accepts as it closes stay accepted.
    let (mut codes, mut dirty) = acknowledge(shares, meta, (group, member), acks, version >= 2);
    if epoch == FINAL_EPOCH {
        dirty.extend(shares.release(group, member, session));
    }
    if let Err(code) = shares.persist(group, dirty).await {
        for c in codes.values_mut().filter(|c| **c == 0) {
            *c = code;
        }
    }
    codes
}

/// UNKNOWN_MEMBER_ID for a member that is not in the share group (see
/// `Shares::may_use_session`). A final-epoch request, which closes the session and
/// releases what it holds, is let through: a departing member may send it after its
/// leave heartbeat.
fn check_member(shares: &Shares, group: &str, member: &str, epoch: i32) -> Result<(), String> {
    if epoch == FINAL_EPOCH || shares.may_use_session(group, member) {
        return Ok(());
    }
    tracing::debug!(
        group,
        member,
        "share request from a member not in the group"
    );
    Err(format!(
        "Member {member} is not a member of share group {group}."
    ))
}

/// A connection closed: the share sessions it opened end, and what their members held
/// is released and written (Kafka's share-session eviction on a dropped connection), so
/// another consumer gets those records now rather than when their locks time out.
pub async fn connection_closed(shares: &Shares, connection: &ConnectionShares) {
    for (group, member) in connection.take() {
        let released = shares.connection_closed(&group, &member, connection.id);
        if !released.is_empty() {
            tracing::debug!(
                group,
                member,
                partitions = released.len(),
                "share session's connection closed: its records are released"
            );
            let _ = shares.persist(&group, released).await;
        }
    }
}

/// Loads the share-partitions a request touches whose group another broker
/// coordinates (a cluster), and writes those that start afresh.
async fn preload(
    shares: &Shares,
    meta: &MetadataView,
    group: &str,
    partitions: impl Iterator<Item = SessionPartition>,
) {
    let named: Vec<(Uuid, Option<String>, i32)> = {
        let image = meta.image();
        partitions
            .map(|(topic, p)| (topic, image.topic_by_id(&topic).map(|t| t.name.clone()), p))
            .collect()
    };
    let fresh = shares.preload(group, &named).await;
    let _ = shares.persist(group, fresh).await;
}

/// Acknowledgements of one partition, as the state machine takes them.
type AckBatches<'a> = Vec<(i64, i64, &'a [i8])>;

/// Applies acknowledgements (RENEW among them where `renew`: v2); returns each
/// partition's acknowledge error code and the share-partitions to write.
fn acknowledge(
    shares: &Shares,
    meta: &MetadataView,
    (group, member): (&str, &str),
    acks: &[(SessionPartition, AckBatches<'_>)],
    renew: bool,
) -> (BTreeMap<SessionPartition, i16>, Vec<ShareKey>) {
    let image = meta.image();
    let now = now_ms();
    let mut codes = BTreeMap::new();
    let mut dirty = Vec::new();
    for ((topic, partition), batches) in acks {
        let name = image.topic_by_id(topic).map(|t| t.name.as_str());
        match shares.acknowledge(
            group,
            member,
            (*topic, name),
            *partition,
            batches,
            renew,
            now,
        ) {
            Ok(key) => {
                dirty.push(key);
                codes.insert((*topic, *partition), 0);
            }
            Err(code) => {
                codes.insert((*topic, *partition), code);
            }
        }
    }
    (codes, dirty)
}

/// What a ShareFetch asks of acquisition: (max records, max bytes, acquire mode), or
/// None when it acquires nothing (a v2 request that only renews locks).
type Acquisition = Option<(usize, usize, AcquireMode)>;

/// The request's acquisition, or the INVALID_REQUEST message. v2 (KIP-1206, KIP-1222):
/// an unknown acquire mode is refused, and a request that renews locks (`is_renew_ack`)
/// fetches nothing, so its wait, byte and record limits must be 0, as Kafka checks.
fn acquisition(req: &ShareFetchRequest, version: i16) -> Result<Acquisition, &'static str> {
    let mode = if version >= 2 {
        AcquireMode::from_code(req.share_acquire_mode).ok_or("unknown share acquire mode")?
    } else {
        AcquireMode::BatchOptimized
    };
    if version >= 2 && req.is_renew_ack {
        let limits = [
            req.max_wait_ms,
            req.min_bytes,
            req.max_bytes,
            req.max_records,
        ];
        if limits.iter().any(|l| *l != 0) {
            return Err("a share fetch that renews acquisition locks fetches nothing: its fetch limits must be 0");
        }
        return Ok(None);
    }
    let max_records = usize::try_from(req.max_records)
        .ok()
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_RECORDS);
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(MAX_RESPONSE_BYTES);
    Ok(Some((max_records, max_bytes, mode)))
}

pub async fn fetch(
    (shares, connection): (&Arc<Shares>, &ConnectionShares),
    meta: &MetadataView,
    req: ShareFetchRequest,
    version: i16,
) -> ShareFetchResponse {
    let fail = |code: i16, message: &str| {
        ShareFetchResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message.to_owned())))
    };
    let epoch = req.share_session_epoch;
    let group_id = req.group_id.as_ref().map(|g| g.as_str());
    let (group, member) = match requester(shares, group_id, req.member_id.as_deref(), epoch) {
        Ok(ids) => ids,
        Err((code, message)) => return fail(code, &message),
    };
    let acquire = match acquisition(&req, version) {
        Ok(acquire) => acquire,
        Err(message) => return fail(ResponseError::InvalidRequest.code(), message),
    };
    let has_acks = req
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .any(|p| !p.acknowledgement_batches.is_empty());
    if epoch == INITIAL_EPOCH && has_acks {
        return fail(
            ResponseError::InvalidRequest.code(),
            "acknowledgements cannot open a share session",
        );
    }
    let add: Vec<SessionPartition> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.topic_id, p.partition_index))
        })
        .collect();
    let forget: Vec<SessionPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
        .collect();
    let now = now_ms();
    let session = match shares.session(
        (&group, &member),
        epoch,
        SessionUse::Fetch,
        &add,
        &forget,
        now,
        connection.id,
    ) {
        Ok(partitions) => partitions,
        Err(e) => return fail(session_error(e), &e.to_string()),
    };
    if epoch == INITIAL_EPOCH {
        connection.opened(&group, &member);
    }
    let acks: Vec<(SessionPartition, AckBatches<'_>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| !p.acknowledgement_batches.is_empty())
                .map(move |p| {
                    let batches = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| {
                            (
                                b.first_offset,
                                b.last_offset,
                                b.acknowledge_types.as_slice(),
                            )
                        })
                        .collect();
                    ((t.topic_id, p.partition_index), batches)
                })
        })
        .collect();
    let touched = session
        .iter()
        .copied()
        .chain(acks.iter().map(|(tp, _)| *tp));
    preload(shares, meta, &group, touched).await;
    let ack_codes = settle(
        shares,
        meta,
        (&group, &member),
        (epoch, &session),
        &acks,
        version,
    )
    .await;
    let mut out: BTreeMap<SessionPartition, PartitionData> = ack_codes
        .iter()
        .map(|(tp, code)| {
            (
                *tp,
                PartitionData::default()
                    .with_partition_index(tp.1)
                    .with_acknowledge_error_code(*code),
            )
        })
        .collect();
    if let Some(acquire) = acquire.filter(|_| epoch != FINAL_EPOCH) {
        let wait_ms = req.max_wait_ms.clamp(0, MAX_WAIT_MS);
        fetch_records(
            shares,
            meta,
            (&group, &member),
            &session,
            (acquire, wait_ms),
            &mut out,
        )
        .await;
    }
    let mut by_topic: BTreeMap<Uuid, Vec<PartitionData>> = BTreeMap::new();
    for ((topic, _), data) in out {
        by_topic.entry(topic).or_default().push(data);
    }
    ShareFetchResponse::default()
        .with_acquisition_lock_timeout_ms(shares.lock_duration_ms(&group))
        .with_responses(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ShareFetchableTopicResponse::default()
                        .with_topic_id(topic)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Acquires records from the session's partitions, waiting up to the request's
/// `max_wait_ms` for some (new data or an expiring lock wakes it).
async fn fetch_records(
    shares: &Arc<Shares>,
    meta: &MetadataView,
    (group, member): (&str, &str),
    session: &[SessionPartition],
    (budget, wait_ms): ((usize, usize, AcquireMode), i32),
    out: &mut BTreeMap<SessionPartition, PartitionData>,
) {
    let image = meta.image();
    let partitions: Vec<(Uuid, Option<String>, i32)> = session
        .iter()
        .map(|(topic, p)| (*topic, image.topic_by_id(topic).map(|t| t.name.clone()), *p))
        .collect();
    drop(image);
    let deadline = Instant::now() + Duration::from_millis(wait_ms as u64);
    // Subscribed before the first pass, so data arriving right after it is not missed.
    let mut changes: Vec<_> = partitions
        .iter()
        .filter_map(|(_, name, p)| shares.changes(name.as_deref(), *p))
        .collect();
    loop {
        let pass = {
            let (shares, group, member, partitions) = (
                shares.clone(),
                group.to_owned(),
                member.to_owned(),
                partitions.clone(),
            );
            tokio::task::spawn_blocking(move || {
                shares.fetch_pass(&group, &member, &partitions, budget, now_ms())
            })
            .await
        };
        let Ok((fetched, dirty)) = pass else {
            return;
        };
        let _ = shares.persist(group, dirty).await;
        let got = fetched
            .iter()
            .any(|f| !f.acquired.is_empty() || f.error != 0);
        let now = Instant::now();
        if got || now >= deadline {
            for ((topic, _, index), f) in partitions.iter().zip(fetched) {
                if f.acquired.is_empty() && f.error == 0 {
                    continue;
                }
                let data = out
                    .entry((*topic, *index))
                    .or_insert_with(|| PartitionData::default().with_partition_index(*index));
                data.error_code = f.error;
                data.current_leader = LeaderIdAndEpoch::default()
                    .with_leader_id(f.leader.0)
                    .with_leader_epoch(f.leader.1);
                data.records = f.records;
                data.acquired_records = f
                    .acquired
                    .iter()
                    .map(|a| {
                        AcquiredRecords::default()
                            .with_first_offset(a.first_offset)
                            .with_last_offset(a.last_offset)
                            .with_delivery_count(a.delivery_count)
                    })
                    .collect();
            }
            return;
        }
        // Nothing yet: wait for data, the first lock to expire, or the deadline.
        let lock_wake = fetched
            .iter()
            .filter_map(|f| f.next_deadline_ms)
            .min()
            .map(|at| now + Duration::from_millis(at.saturating_sub(now_ms()).max(1) as u64));
        let wake = lock_wake.map_or(deadline, |w| w.min(deadline));
        let changed = wait_for_change(&mut changes, wake);
        if crate::request_time::waiting_on_others(changed).await {
            for rx in &mut changes {
                rx.borrow_and_update();
            }
        }
    }
}

async fn wait_for_change(
    changes: &mut [tokio::sync::watch::Receiver<u64>],
    until: Instant,
) -> bool {
    if changes.is_empty() {
        tokio::time::sleep_until(until).await;
        return false;
    }
    let any = futures_util::future::select_all(changes.iter_mut().map(|rx| Box::pin(rx.changed())));
    tokio::select! {
        _ = any => true,
        _ = tokio::time::sleep_until(until) => false,
    }
}

pub async fn acknowledge_request(
    shares: &Shares,
    meta: &MetadataView,
    req: ShareAcknowledgeRequest,
    version: i16,
) -> ShareAcknowledgeResponse {
    let fail = |code: i16, message: &str| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message.to_owned())))
    };
    let epoch = req.share_session_epoch;
    let group_id = req.group_id.as_ref().map(|g| g.as_str());
    let (group, member) = match requester(shares, group_id, req.member_id.as_deref(), epoch) {
        Ok(ids) => ids,
        Err((code, message)) => return fail(code, &message),
    };
    let session = match shares.session(
        (&group, &member),
        epoch,
        SessionUse::Acknowledge,
        &[],
        &[],
        now_ms(),
        0, // ShareAcknowledge never opens a session
    ) {
        Ok(partitions) => partitions,
        Err(e) => return fail(session_error(e), &e.to_string()),
    };
    let acks: Vec<(SessionPartition, AckBatches<'_>)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let batches = p
                    .acknowledgement_batches
                    .iter()
                    .map(|b| {
                        (
                            b.first_offset,
                            b.last_offset,
                            b.acknowledge_types.as_slice(),
                        )
                    })
                    .collect();
                ((t.topic_id, p.partition_index), batches)
            })
        })
        .collect();
    preload(shares, meta, &group, acks.iter().map(|(tp, _)| *tp)).await;
    let codes = settle(
        shares,
        meta,
        (&group, &member),
        (epoch, &session),
        &acks,
        version,
    )
    .await;
    let mut by_topic: BTreeMap<Uuid, Vec<AckPartitionData>> = BTreeMap::new();
    for ((topic, partition), code) in codes {
        by_topic.entry(topic).or_default().push(
            AckPartitionData::default()
                .with_partition_index(partition)
                .with_error_code(code),
        );
    }
    ShareAcknowledgeResponse::default()
        // v2: the lock a RENEW restarted lasts this long (the client times its records).
        .with_acquisition_lock_timeout_ms(shares.lock_duration_ms(&group))
        .with_responses(
            by_topic
                .into_iter()
                .map(|(topic, partitions)| {
                    ShareAcknowledgeTopicResponse::default()
                        .with_topic_id(topic)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(max_wait_ms: i32, max_bytes: i32, max_records: i32) -> ShareFetchRequest {
        ShareFetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_max_bytes(max_bytes)
            .with_max_records(max_records)
    }

    #[test]
    fn acquisition_follows_the_version_mode_and_renew_flag() {
        // v1: batch_optimized whatever the (absent) mode field holds.
        let r = request(500, 1 << 20, 10).with_share_acquire_mode(1);
        assert_eq!(
            acquisition(&r, 1),
            Ok(Some((10, 1 << 20, AcquireMode::BatchOptimized)))
        );
        assert_eq!(
            acquisition(&r, 2),
            Ok(Some((10, 1 << 20, AcquireMode::RecordLimit)))
        );
        // No record limit named: Kafka's max.poll.records default; bytes capped.
        let r = request(500, i32::MAX, 0);
        assert_eq!(
            acquisition(&r, 2),
            Ok(Some((
                DEFAULT_MAX_RECORDS,
                MAX_RESPONSE_BYTES,
                AcquireMode::BatchOptimized
            )))
        );
        assert!(acquisition(&r.clone().with_share_acquire_mode(2), 2).is_err());
        assert!(acquisition(&r.clone().with_share_acquire_mode(-1), 2).is_err());
        // A renewing fetch acquires nothing, and asks for nothing.
        let renew = request(0, 0, 0).with_min_bytes(0).with_is_renew_ack(true);
        assert_eq!(acquisition(&renew, 2), Ok(None));
        for bad in [
            renew.clone().with_max_wait_ms(1),
            renew.clone().with_min_bytes(1),
            renew.clone().with_max_bytes(1),
            renew.clone().with_max_records(1),
        ] {
            assert!(acquisition(&bad, 2).is_err(), "{bad:?}");
        }
    }
}
