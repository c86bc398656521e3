//! What passes from a connection's reading half to its writing half: each request's
//! answer, in request order, complete or still waiting for the in-sync replicas (an
//! acks=all Produce), with the slot the request holds until its answer is out.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use kafka_protocol::messages::{ApiKey, ResponseKind};
use tokio::sync::SemaphorePermit;
use tokio::task::{JoinError, JoinHandle};
use tracing::Instrument;

use super::{encode, Outcome, Timed};
use crate::clock::monotonic_ns;
use crate::handlers::produce::Replicating;
use crate::request_time;
use crate::router::Response;

/// Requests one connection may have in flight: from the moment the connection starts
/// reading a request's frame until its answer is written. While an acks=all Produce
/// waits for the in-sync replicas, the connection goes on reading and handling the
/// client's next requests, up to this many in all, then reads nothing more until the
/// oldest is answered. The Java producer sends at most 5 (its default
/// `max.in.flight.requests.per.connection`, and the most an idempotent producer uses);
/// librdkafka pipelines up to 1,000,000 and puts one partition in each ProduceRequest,
/// so this depth is how many of its partitions share one replication round (3 nodes,
/// 10,000 partitions, one acks=all record each: 11.2 s at 5, 2.2 s at 32, 0.97 s at
/// 128). A waiting request holds its answer only (its frame is released once
/// appended), a few hundred bytes, so a connection holds tens of KiB at most.
pub const MAX_IN_FLIGHT_REQUESTS: usize = 128;

/// What became of one frame.
pub(super) struct Handled {
    pub reply: Reply,
    /// A request that reached its handler, with its clock readings (when `timing`).
    pub timed: Option<Timed>,
    /// How long the response is held back (ms): the throttle time client quotas gave
    /// the request, for a client that does not throttle itself.
    pub delay_ms: u64,
    /// How long the connection reads nothing more once the response is out: the
    /// throttle time, for a client that throttles itself too (KIP-219).
    pub mute_ms: u64,
}

impl Handled {
    /// An answer ready now, untimed and unthrottled.
    pub fn ready(outcome: Outcome) -> Handled {
        Handled {
            reply: Reply::Ready(outcome),
            timed: None,
            delay_ms: 0,
            mute_ms: 0,
        }
    }

    /// Whether the connection closes once this answer is out: nothing more is read.
    pub fn closes(&self) -> bool {
        matches!(
            self.reply,
            Reply::Ready(Outcome::Close(_) | Outcome::ReplyThenClose(_))
        )
    }
}

/// A request's answer as the reading half queues it.
pub(super) enum Reply {
    Ready(Outcome),
    /// An acks=all Produce appended here, waiting for its replicas.
    Replicating(ReplicationWait),
}

/// One request in the queue between the halves.
pub(super) struct Queued<'a> {
    pub handled: Handled,
    /// When its frame's last byte was read (when timing).
    pub received_ns: Option<u64>,
    /// Its slot of [`MAX_IN_FLIGHT_REQUESTS`], given back once the answer is out.
    pub slot: SemaphorePermit<'a>,
}

/// What a request needs to encode its answer.
pub(super) struct Answer {
    pub api: ApiKey,
    pub version: i16,
    pub correlation_id: i32,
}

/// An acks=all Produce's answer once its replicas have the records.
pub(super) struct Replicated {
    pub outcome: Outcome,
    /// When it was encoded (0 when not timing).
    pub handled_ns: u64,
    /// How long it waited on the replicas.
    pub remote_ns: u64,
}

/// The wait of an acks=all Produce for its replicas, on a task of its own so that the
/// waits of several requests of a connection run at once (each is timed as its own);
/// aborted if the connection ends first.
pub(super) struct ReplicationWait(pub(super) JoinHandle<Replicated>);

impl Drop for ReplicationWait {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Future for ReplicationWait {
    type Output = Result<Replicated, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Starts waiting for `replicating`'s replicas; the answer is encoded once they have
/// its records (or the wait fails or times out, per partition).
pub(super) fn replicate(
    replicating: Replicating,
    answer: Answer,
    timing: bool,
    span: tracing::Span,
) -> ReplicationWait {
    let wait = async move {
        let mut wait = std::pin::pin!(replicating.replicated());
        let (response, remote_ns) = if timing {
            let mut measured = request_time::measure(wait.as_mut());
            let response = (&mut measured).await;
            (response, measured.remote_ns())
        } else {
            (wait.await, 0)
        };
        let response = Some(Response::Kind(ResponseKind::Produce(response)));
        let outcome = encode(answer.api, answer.version, answer.correlation_id, response);
        Replicated {
            outcome,
            handled_ns: if timing { monotonic_ns() } else { 0 },
            remote_ns,
        }
    };
    ReplicationWait(tokio::spawn(wait.instrument(span)))
}
