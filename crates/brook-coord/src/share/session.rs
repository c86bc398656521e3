//! Share sessions (KIP-932's ShareSessionCache): which partitions a share consumer
//! fetches from, and the epoch its next ShareFetch or ShareAcknowledge must carry.
//!
//! ShareSessionEpoch 0 opens a session (replacing one the member had), -1 closes it
//! after its acknowledgements, anything else must be the session's next epoch
//! (INVALID_SHARE_SESSION_EPOCH; SHARE_SESSION_NOT_FOUND without a session). The cache
//! holds at most `max_sessions`; when full, a session idle for longer than the idle
//! limit makes room, else SHARE_SESSION_LIMIT_REACHED.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

/// The epoch that opens a session.
pub const INITIAL_EPOCH: i32 = 0;
/// The epoch that closes one.
pub const FINAL_EPOCH: i32 = -1;

/// The most partitions one session may hold (Brook's bound: a session grows by the
/// partitions its requests name).
pub const MAX_SESSION_PARTITIONS: usize = 10_000;

/// A partition of a session: (topic id, partition index).
pub type SessionPartition = (Uuid, i32);

/// Why a request's session epoch was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the share session was not found")]
    NotFound,
    #[error("the share session epoch is invalid")]
    InvalidEpoch,
    #[error("the limit of share sessions has been reached")]
    LimitReached,
    #[error("a share session may hold at most {MAX_SESSION_PARTITIONS} partitions")]
    TooManyPartitions,
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<SessionPartition>,
    last_used_ms: i64,
    /// The connection that opened it (see [`ShareSessions::set_owner`]).
    owner: Option<u64>,
}

/// What a request may do with its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionUse {
    /// ShareFetch: may open (epoch 0), continue or close the session.
    Fetch,
    /// ShareAcknowledge: may continue or close it, never open one.
    Acknowledge,
}

/// Every share session of this broker, by (group, member).
#[derive(Debug)]
pub struct ShareSessions {
    max_sessions: usize,
    idle_ms: i64,
    sessions: HashMap<(String, String), Session>,
}

impl ShareSessions {
    /// `max_sessions` is `group.share.max.share.sessions`; `idle_ms` how long a session
    /// may go unused before another may take its place.
    pub fn new(max_sessions: usize, idle_ms: i64) -> Self {
        ShareSessions {
            max_sessions: max_sessions.max(1),
            idle_ms,
            sessions: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Applies one request's epoch and partition changes; returns the session's
    /// partitions after it (for a closing request, the partitions it had). A request
    /// that is refused changes nothing.
    pub fn request(
        &mut self,
        (group, member): (&str, &str),
        epoch: i32,
        kind: SessionUse,
        add: &[SessionPartition],
        forget: &[SessionPartition],
        now_ms: i64,
    ) -> Result<Vec<SessionPartition>, SessionError> {
        let key = (group.to_owned(), member.to_owned());
        match epoch {
            INITIAL_EPOCH if kind == SessionUse::Fetch => {
                if add.len() > MAX_SESSION_PARTITIONS {
                    return Err(SessionError::TooManyPartitions);
                }
                if !self.sessions.contains_key(&key) && self.sessions.len() >= self.max_sessions {
                    self.evict_idle(now_ms)?;
                }
                let partitions: BTreeSet<_> = add.iter().copied().collect();
                let out = partitions.iter().copied().collect();
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions,
                        last_used_ms: now_ms,
                        owner: None,
                    },
                );
                Ok(out)
            }
            INITIAL_EPOCH => Err(SessionError::InvalidEpoch),
            FINAL_EPOCH => {
                let session = self.sessions.remove(&key).ok_or(SessionError::NotFound)?;
                Ok(session.partitions.into_iter().collect())
            }
            _ => {
                let session = self.sessions.get_mut(&key).ok_or(SessionError::NotFound)?;
                if session.next_epoch != epoch {
                    return Err(SessionError::InvalidEpoch);
                }
                let growth = add
                    .iter()
                    .filter(|p| !session.partitions.contains(p))
                    .count();
                if session.partitions.len() + growth > MAX_SESSION_PARTITIONS {
                    return Err(SessionError::TooManyPartitions);
                }
                session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
                session.last_used_ms = now_ms;
                for p in forget {
                    session.partitions.remove(p);
                }
                session.partitions.extend(add.iter().copied());
                Ok(session.partitions.iter().copied().collect())
            }
        }
    }

    /// Forgets a member's session (it left its group).
    pub fn remove(&mut self, group: &str, member: &str) -> bool {
        self.sessions
            .remove(&(group.to_owned(), member.to_owned()))
            .is_some()
    }

    /// Records the connection that opened a member's session: when that connection
    /// closes, [`ShareSessions::close_owned`] ends the session (as Kafka ends a share
    /// session whose connection drops).
    pub fn set_owner(&mut self, group: &str, member: &str, owner: u64) {
        if let Some(s) = self
            .sessions
            .get_mut(&(group.to_owned(), member.to_owned()))
        {
            s.owner = Some(owner);
        }
    }

    /// Ends a member's session if connection `owner` opened it, returning its
    /// partitions; a session the member has since opened again on another connection
    /// stays.
    pub fn close_owned(
        &mut self,
        group: &str,
        member: &str,
        owner: u64,
    ) -> Option<Vec<SessionPartition>> {
        let key = (group.to_owned(), member.to_owned());
        if self.sessions.get(&key)?.owner != Some(owner) {
            return None;
        }
        let session = self.sessions.remove(&key)?;
        Some(session.partitions.into_iter().collect())
    }

    /// Forgets every session of a group (it was deleted).
    pub fn remove_group(&mut self, group: &str) {
        self.sessions.retain(|(g, _), _| g != group);
    }

    fn evict_idle(&mut self, now_ms: i64) -> Result<(), SessionError> {
        let oldest = self
            .sessions
            .iter()
            .filter(|(_, s)| now_ms.saturating_sub(s.last_used_ms) > self.idle_ms)
            .min_by_key(|(_, s)| s.last_used_ms)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(k) => {
                self.sessions.remove(&k);
                Ok(())
            }
            None => Err(SessionError::LimitReached),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Uuid = Uuid::from_u128(1);

    #[test]
    fn a_closing_connection_ends_only_the_sessions_it_opened() {
        let mut s = ShareSessions::new(10, 1_000);
        let fetch = SessionUse::Fetch;
        s.request(("g", "m"), 0, fetch, &[(T, 0)], &[], 0).unwrap();
        s.set_owner("g", "m", 7);
        assert_eq!(s.close_owned("g", "m", 8), None);
        assert_eq!(s.close_owned("g", "m", 7), Some(vec![(T, 0)]));
        assert!(s.is_empty());
        // Opened again on connection 9: connection 7 closing late leaves it alone.
        s.request(("g", "m"), 0, fetch, &[(T, 1)], &[], 0).unwrap();
        s.set_owner("g", "m", 9);
        assert_eq!(s.close_owned("g", "m", 7), None);
        assert_eq!(
            s.request(("g", "m"), 1, fetch, &[], &[], 0).unwrap(),
            vec![(T, 1)]
        );
        assert_eq!(s.close_owned("g", "x", 9), None);
    }

    #[test]
    fn epochs_open_continue_and_close() {
        let mut s = ShareSessions::new(10, 1_000);
        let fetch = SessionUse::Fetch;
        assert_eq!(
            s.request(("g", "m"), 1, fetch, &[], &[], 0),
            Err(SessionError::NotFound)
        );
        assert_eq!(
            s.request(("g", "m"), 0, fetch, &[(T, 0)], &[], 0).unwrap(),
            vec![(T, 0)]
        );
        assert_eq!(
            s.request(("g", "m"), 2, fetch, &[], &[], 0),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(
            s.request(("g", "m"), 1, fetch, &[(T, 1)], &[(T, 0)], 0)
                .unwrap(),
            vec![(T, 1)]
        );
        assert_eq!(
            s.request(("g", "m"), 0, SessionUse::Acknowledge, &[], &[], 0),
            Err(SessionError::InvalidEpoch)
        );
        assert_eq!(
            s.request(("g", "m"), 2, SessionUse::Acknowledge, &[], &[], 0)
                .unwrap(),
            vec![(T, 1)]
        );
        assert_eq!(
            s.request(("g", "m"), -1, fetch, &[], &[], 0).unwrap(),
            vec![(T, 1)]
        );
        assert!(s.is_empty());
    }

    #[test]
    fn the_cache_is_bounded_and_evicts_only_idle_sessions() {
        let mut s = ShareSessions::new(2, 1_000);
        let fetch = SessionUse::Fetch;
        s.request(("g", "a"), 0, fetch, &[], &[], 0).unwrap();
        s.request(("g", "b"), 0, fetch, &[], &[], 500).unwrap();
        assert_eq!(
            s.request(("g", "c"), 0, fetch, &[], &[], 900),
            Err(SessionError::LimitReached)
        );
        // Reopening an existing session needs no room.
        s.request(("g", "b"), 0, fetch, &[], &[], 900).unwrap();
        s.request(("g", "c"), 0, fetch, &[], &[], 1_001).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.request(("g", "a"), 1, fetch, &[], &[], 1_001),
            Err(SessionError::NotFound)
        );
    }
}
