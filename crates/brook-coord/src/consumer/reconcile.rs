//! One member's next step towards its target assignment, as Kafka's
//! CurrentAssignmentBuilder takes it.
//!
//! - STABLE: if a newer target exists, compute the next assignment.
//! - UNREVOKED_PARTITIONS: wait until the member's heartbeat no longer reports any
//!   partition pending revocation; then move to the next epoch (at most the target's).
//! - UNRELEASED_PARTITIONS: try again to take the partitions others still held.
//!
//! The next assignment keeps `assigned ∩ target`, asks the member to revoke
//! `assigned - target` (staying in its epoch until it has), and adds partitions of the
//! target only when no other member holds them: that is the rule that a partition is
//! revoked by its old owner before its new owner gets it.

use std::collections::BTreeSet;

use uuid::Uuid;

use super::{Assignment, ConsumerMember, MemberState};

/// The inputs besides the member itself.
pub(crate) struct Target<'a> {
    pub epoch: i32,
    pub partitions: &'a Assignment,
}

/// Computes the member's next state. `held_by_other(topic, partition)` says whether
/// another member holds a partition now; `owned` is what the member's heartbeat reports
/// it owns (None when the heartbeat did not say).
pub(crate) fn reconcile(
    member: &ConsumerMember,
    target: &Target<'_>,
    held_by_other: &dyn Fn(Uuid, i32) -> bool,
    owned: Option<&Assignment>,
) -> ConsumerMember {
    match member.state {
        MemberState::Stable => {
            if member.member_epoch != target.epoch {
                next_assignment(member, member.member_epoch, target, held_by_other)
            } else {
                member.clone()
            }
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.pending_revocation) {
                member.clone()
            } else {
                let epoch = member.member_epoch.saturating_add(1).min(target.epoch);
                next_assignment(member, epoch, target, held_by_other)
            }
        }
        MemberState::UnreleasedPartitions => {
            next_assignment(member, member.member_epoch, target, held_by_other)
        }
    }
}

/// Whether the reported partitions still include any of `revoking` (an unreported set
/// counts as still owning them).
fn owns_any(owned: Option<&Assignment>, revoking: &Assignment) -> bool {
    let Some(owned) = owned else {
        return true;
    };
    revoking.iter().any(|(topic, partitions)| {
        owned
            .get(topic)
            .is_some_and(|o| partitions.iter().any(|p| o.contains(p)))
    })
}

fn next_assignment(
    member: &ConsumerMember,
    member_epoch: i32,
    target: &Target<'_>,
    held_by_other: &dyn Fn(Uuid, i32) -> bool,
) -> ConsumerMember {
    let mut assigned = Assignment::new();
    let mut revoking = Assignment::new();
    let mut assigning = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<&Uuid> = member
        .assigned
        .keys()
        .chain(target.partitions.keys())
        .collect();
    let empty = BTreeSet::new();
    for topic in topics {
        let current = member.assigned.get(topic).unwrap_or(&empty);
        let wanted = target.partitions.get(topic).unwrap_or(&empty);
        let keep: BTreeSet<i32> = current.intersection(wanted).copied().collect();
        let revoke: BTreeSet<i32> = current.difference(&keep).copied().collect();
        let mut add = BTreeSet::new();
        for p in wanted.difference(&keep) {
            if held_by_other(*topic, *p) {
                unreleased = true;
            } else {
                add.insert(*p);
            }
        }
        for (map, set) in [
            (&mut assigned, keep),
            (&mut revoking, revoke),
            (&mut assigning, add),
        ] {
            if !set.is_empty() {
                map.insert(*topic, set);
            }
        }
    }
    let mut next = member.clone();
    if !revoking.is_empty() {
        next.state = MemberState::UnrevokedPartitions;
        set_epoch(&mut next, member_epoch);
        next.assigned = assigned;
        next.pending_revocation = revoking;
        return next;
    }
    for (topic, partitions) in assigning {
        assigned.entry(topic).or_default().extend(partitions);
    }
    next.state = if unreleased {
        MemberState::UnreleasedPartitions
    } else {
        MemberState::Stable
    };
    set_epoch(&mut next, target.epoch);
    next.assigned = assigned;
    next.pending_revocation = Assignment::new();
    next
}

/// Kafka's updateMemberEpoch: the previous epoch is kept for a heartbeat whose response
/// was lost.
fn set_epoch(member: &mut ConsumerMember, epoch: i32) {
    if member.member_epoch != epoch {
        member.previous_member_epoch = member.member_epoch;
        member.member_epoch = epoch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Uuid {
        Uuid::from_u64_pair(0, n)
    }

    fn a(parts: &[(u64, &[i32])]) -> Assignment {
        parts
            .iter()
            .map(|(topic, ps)| (t(*topic), ps.iter().copied().collect()))
            .collect()
    }

    fn member(
        state: MemberState,
        epoch: i32,
        assigned: Assignment,
        revoking: Assignment,
    ) -> ConsumerMember {
        let mut m = ConsumerMember::new("m");
        m.state = state;
        m.member_epoch = epoch;
        m.previous_member_epoch = epoch - 1;
        m.assigned = assigned;
        m.pending_revocation = revoking;
        m
    }

    #[test]
    fn transitions_follow_kafka() {
        use MemberState::*;
        let none: &dyn Fn(Uuid, i32) -> bool = &|_, _| false;
        let p2_busy: &dyn Fn(Uuid, i32) -> bool = &|_, p| p == 2;
        // (member, target epoch, target, held by others, owned) -> (state, epoch, assigned, revoking)
        type Case<'a> = (
            ConsumerMember,
            i32,
            Assignment,
            &'a dyn Fn(Uuid, i32) -> bool,
            Option<Assignment>,
            (MemberState, i32, Assignment, Assignment),
        );
        let cases: Vec<Case> = vec![
            // Same epoch: nothing to do.
            (
                member(Stable, 5, a(&[(1, &[0])]), a(&[])),
                5,
                a(&[(1, &[1])]),
                none,
                None,
                (Stable, 5, a(&[(1, &[0])]), a(&[])),
            ),
            // New target only adds free partitions: straight to the target epoch.
            (
                member(Stable, 5, a(&[(1, &[0])]), a(&[])),
                6,
                a(&[(1, &[0, 1])]),
                none,
                None,
                (Stable, 6, a(&[(1, &[0, 1])]), a(&[])),
            ),
            // Something to revoke: stay in the epoch, keep only the intersection.
            (
                member(Stable, 5, a(&[(1, &[0, 1])]), a(&[])),
                6,
                a(&[(1, &[1, 2])]),
                none,
                None,
                (UnrevokedPartitions, 5, a(&[(1, &[1])]), a(&[(1, &[0])])),
            ),
            // Still reporting a revoked partition: wait.
            (
                member(UnrevokedPartitions, 5, a(&[(1, &[1])]), a(&[(1, &[0])])),
                6,
                a(&[(1, &[1, 2])]),
                none,
                Some(a(&[(1, &[0, 1])])),
                (UnrevokedPartitions, 5, a(&[(1, &[1])]), a(&[(1, &[0])])),
            ),
            // Revoked: next epoch, and the free partition comes.
            (
                member(UnrevokedPartitions, 5, a(&[(1, &[1])]), a(&[(1, &[0])])),
                6,
                a(&[(1, &[1, 2])]),
                none,
                Some(a(&[(1, &[1])])),
                (Stable, 6, a(&[(1, &[1, 2])]), a(&[])),
            ),
            // Revoked, but another member still holds partition 2.
            (
                member(UnrevokedPartitions, 5, a(&[(1, &[1])]), a(&[(1, &[0])])),
                6,
                a(&[(1, &[1, 2])]),
                p2_busy,
                Some(a(&[(1, &[1])])),
                (UnreleasedPartitions, 6, a(&[(1, &[1])]), a(&[])),
            ),
            // Unreleased, then released.
            (
                member(UnreleasedPartitions, 6, a(&[(1, &[1])]), a(&[])),
                6,
                a(&[(1, &[1, 2])]),
                none,
                None,
                (Stable, 6, a(&[(1, &[1, 2])]), a(&[])),
            ),
            // A whole topic goes away.
            (
                member(Stable, 3, a(&[(1, &[0]), (2, &[0, 1])]), a(&[])),
                4,
                a(&[(1, &[0])]),
                none,
                None,
                (UnrevokedPartitions, 3, a(&[(1, &[0])]), a(&[(2, &[0, 1])])),
            ),
        ];
        for (i, (m, epoch, target, held, owned, expected)) in cases.into_iter().enumerate() {
            let next = reconcile(
                &m,
                &Target {
                    epoch,
                    partitions: &target,
                },
                held,
                owned.as_ref(),
            );
            assert_eq!(
                (
                    next.state,
                    next.member_epoch,
                    next.assigned,
                    next.pending_revocation
                ),
                expected,
                "case {i}"
            );
        }
    }

    #[test]
    fn epoch_bump_keeps_the_previous_epoch() {
        let m = member(MemberState::Stable, 5, a(&[]), a(&[]));
        let target = a(&[(1, &[0])]);
        let next = reconcile(
            &m,
            &Target {
                epoch: 7,
                partitions: &target,
            },
            &|_, _| false,
            None,
        );
        assert_eq!((next.member_epoch, next.previous_member_epoch), (7, 5));
    }
}
