//! Who leads a partition as this replica last heard from metadata, and, while this
//! replica leads, its bookkeeping of the followers: their progress, the high watermark
//! it allows and the ISR changes to ask the controller for. Pure state with no log, no
//! disk and no lock, so the replication rules can be tested on their own; callers pass
//! the leader's log end offset and the time.

use std::collections::HashMap;

use brook_meta::PartitionImage;
use kafka_protocol::error::ResponseError;

use super::Refused;

/// An ISR change a leader asks the controller for (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    /// The partition epoch the change was computed from.
    pub partition_epoch: i32,
    pub isr: Vec<i32>,
}

/// The controller's answer to an ISR change, as the leader must treat it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsrOutcome {
    /// Applied (or already so): metadata will show it.
    Accepted,
    /// Refused because metadata has moved on (stale partition or leader epoch, not the
    /// leader): the newer metadata settles it, and it may hold this very change.
    Outdated,
    /// Refused against the view it was computed from: the ISR stays as it is.
    Refused,
    /// No answer (time-out, no controller): send it again.
    Unknown,
}

/// An ISR expansion asked of the controller and not yet seen in metadata (Kafka's
/// pending ISR state): its new members count for the high watermark meanwhile.
#[derive(Debug, Clone)]
struct PendingIsr {
    isr: Vec<i32>,
    /// The partition epoch it was computed from (sent again with the same one).
    from_epoch: i32,
    /// Sent and not answered yet.
    in_flight: bool,
}

/// What a leader tracks of one follower (Kafka's replica state).
#[derive(Debug, Clone, Copy)]
struct Progress {
    /// The follower's log end offset (its last fetch offset); -1 until it fetches.
    leo: i64,
    last_caught_up_ms: i64,
    last_fetch_ms: i64,
    leader_leo_at_last_fetch: i64,
}

impl Progress {
    /// A follower not heard from yet, counted as caught up as of `now_ms`.
    fn fresh(now_ms: i64) -> Self {
        Progress {
            leo: -1,
            last_caught_up_ms: now_ms,
            last_fetch_ms: now_ms,
            leader_leo_at_last_fetch: -1,
        }
    }
}

/// What [`Leadership::apply`] made of a metadata view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Applied {
    /// Leader, epoch, ISR and replicas were already so.
    Unchanged,
    Changed,
    /// This replica leads in an epoch it did not lead before: the caller starts that
    /// epoch in its epoch cache.
    BecameLeader,
}

#[derive(Debug, Clone)]
pub(super) struct Leadership {
    node_id: i32,
    /// The partition's leader as last applied from metadata (-1: none).
    pub(super) leader: i32,
    pub(super) leader_epoch: i32,
    pub(super) isr: Vec<i32>,
    pub(super) replicas: Vec<i32>,
    /// The metadata version of leader/ISR/replicas this broker last applied; ISR change
    /// requests carry it so the controller refuses one computed from a stale view.
    partition_epoch: i32,
    /// Offsets below it are on every in-sync replica; consumers read only those.
    pub(super) high_watermark: i64,
    /// Only while this replica leads.
    followers: HashMap<i32, Progress>,
    /// An ISR expansion sent to the controller and not yet in metadata; counted for the
    /// high watermark meanwhile (Kafka's "maximal ISR").
    pending_isr: Option<PendingIsr>,
}

impl Leadership {
    /// Leads nothing until metadata says so ([`Leadership::apply`]).
    pub(super) fn new(node_id: i32, high_watermark: i64) -> Self {
        Leadership {
            node_id,
            leader: brook_meta::NO_LEADER,
            leader_epoch: -1,
            isr: Vec::new(),
            replicas: Vec::new(),
            partition_epoch: -1,
            high_watermark,
            followers: HashMap::new(),
            pending_isr: None,
        }
    }

    pub(super) fn is_leader(&self) -> bool {
        self.leader == self.node_id
    }

    pub(super) fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), Refused> {
        if current_leader_epoch < 0 || current_leader_epoch == self.leader_epoch {
            Ok(())
        } else if current_leader_epoch < self.leader_epoch {
            Err(Refused(ResponseError::FencedLeaderEpoch.code()))
        } else {
            Err(Refused(ResponseError::UnknownLeaderEpoch.code()))
        }
    }

    /// Takes the leader, epoch, ISR and replicas metadata gives the partition; `leo` is
    /// this replica's log end offset.
    pub(super) fn apply(&mut self, view: &PartitionImage, leo: i64, now_ms: i64) -> Applied {
        let becomes_leader = view.leader == self.node_id
            && (self.leader != self.node_id || self.leader_epoch != view.leader_epoch);
        let changed = self.leader != view.leader
            || self.leader_epoch != view.leader_epoch
            || self.isr != view.isr
            || self.replicas != view.replicas;
        self.partition_epoch = view.partition_epoch;
        if !changed {
            return Applied::Unchanged;
        }
        self.leader = view.leader;
        self.leader_epoch = view.leader_epoch;
        self.replicas = view.replicas.clone();
        self.isr = view.isr.clone();
        self.pending_isr = None;
        if view.leader == self.node_id {
            if becomes_leader {
                self.followers = view
                    .replicas
                    .iter()
                    .filter(|&&r| r != self.node_id)
                    .map(|&r| (r, Progress::fresh(now_ms)))
                    .collect();
            } else {
                // Still leading; a reassignment may have added or dropped replicas.
                self.followers.retain(|r, _| view.replicas.contains(r));
                for &r in &view.replicas {
                    if r != self.node_id {
                        self.followers.entry(r).or_insert(Progress::fresh(now_ms));
                    }
                }
            }
            self.advance_high_watermark(leo);
        } else {
            self.followers.clear();
        }
        if becomes_leader {
            Applied::BecameLeader
        } else {
            Applied::Changed
        }
    }

    /// Records a fetch by `replica` from `fetch_offset`, its log end offset, while the
    /// leader's is `leo`. A follower counts as caught up when it fetches from the log
    /// end, or from where the log ended at its previous fetch (it was caught up then).
    /// `fetching_since_ms`: the follower holds this partition in a fetch session and
    /// has been fetching it without a break since then, though the leader only visits
    /// the partition when it changes (see `crate::fetch_session`); its previous fetch
    /// is then no older than that.
    pub(super) fn follower_fetched(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leo: i64,
        now_ms: i64,
        fetching_since_ms: Option<i64>,
    ) {
        let progress = self
            .followers
            .entry(replica)
            .or_insert(Progress::fresh(now_ms));
        let previous_fetch_ms = progress
            .last_fetch_ms
            .max(fetching_since_ms.unwrap_or(i64::MIN));
        if fetch_offset >= leo {
            progress.last_caught_up_ms = now_ms;
        } else if progress.leader_leo_at_last_fetch >= 0
            && fetch_offset >= progress.leader_leo_at_last_fetch
        {
            progress.last_caught_up_ms = progress.last_caught_up_ms.max(previous_fetch_ms);
        }
        progress.leader_leo_at_last_fetch = leo;
        progress.last_fetch_ms = now_ms;
        progress.leo = fetch_offset;
    }

    /// Moves the high watermark to the smallest log end offset among in-sync replicas
    /// (the leader's being `leo`). Returns whether it moved.
    pub(super) fn advance_high_watermark(&mut self, leo: i64) -> bool {
        let mut candidate = leo;
        let members = self
            .isr
            .iter()
            .chain(self.pending_isr.iter().flat_map(|p| p.isr.iter()));
        for &r in members {
            if r == self.node_id {
                continue;
            }
            match self.followers.get(&r) {
                Some(p) if p.leo >= 0 => candidate = candidate.min(p.leo),
                _ => return false,
            }
        }
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// The ISR change this leader should ask the controller for, if any: followers that
    /// have not caught up within `max_lag_ms` leave, caught-up live replicas join.
    /// `leo` is the leader's log end offset.
    pub(super) fn isr_change(
        &mut self,
        leo: i64,
        now_ms: i64,
        max_lag_ms: i64,
        is_live: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        if !self.is_leader() {
            return None;
        }
        let leader_epoch = self.leader_epoch;
        if let Some(pending) = &mut self.pending_isr {
            // One expansion at a time; one whose answer never came is sent again as it
            // was (the controller tells a repeat from a stale view by the epoch).
            if pending.in_flight {
                return None;
            }
            pending.in_flight = true;
            return Some(IsrChange {
                leader_epoch,
                partition_epoch: pending.from_epoch,
                isr: pending.isr.clone(),
            });
        }
        let hw = self.high_watermark;
        let node = self.node_id;
        let mut isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == node
                    || self.followers.get(&r).is_some_and(|p| {
                        // Kafka's isCaughtUp: at the leader's log end, or caught up
                        // recently. (A follower whose broker died is taken out of
                        // every ISR by the controller when it fences the broker.)
                        p.leo >= leo || now_ms - p.last_caught_up_ms <= max_lag_ms
                    })
            })
            .collect();
        let shrank = isr.len() < self.isr.len();
        let mut grew = false;
        for &r in &self.replicas {
            if isr.contains(&r) || self.isr.contains(&r) || !is_live(r) {
                continue;
            }
            if let Some(p) = self.followers.get(&r) {
                if p.leo >= hw
                    && p.leo >= 0
                    && (p.leo >= leo || now_ms - p.last_caught_up_ms <= max_lag_ms)
                {
                    isr.push(r);
                    grew = true;
                }
            }
        }
        if !shrank && !grew {
            return None;
        }
        if grew {
            self.pending_isr = Some(PendingIsr {
                isr: isr.clone(),
                from_epoch: self.partition_epoch,
                in_flight: true,
            });
        }
        Some(IsrChange {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr,
        })
    }

    /// What became of the ISR change to `isr`. An expansion stays counted for the high
    /// watermark until metadata shows the controller's decision, except when the
    /// controller refused it against the very view it was computed from; an unanswered
    /// one is sent again by the next [`Leadership::isr_change`].
    pub(super) fn isr_change_done(&mut self, isr: &[i32], outcome: IsrOutcome) {
        let Some(pending) = &mut self.pending_isr else {
            return;
        };
        if pending.isr != isr {
            return;
        }
        match outcome {
            // Metadata with the new ISR (or a newer view) is on its way and clears it.
            IsrOutcome::Accepted => pending.in_flight = false,
            IsrOutcome::Outdated => {}
            IsrOutcome::Refused => self.pending_isr = None,
            IsrOutcome::Unknown => pending.in_flight = false,
        }
    }
}

#[cfg(test)]
mod tests;
