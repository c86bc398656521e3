//! Server-side assignors: `uniform` (Kafka's default) and `range`.
//!
//! Both are deterministic functions of the members (by id), what each subscribes to and
//! the topics' partition counts. `uniform` is sticky: it starts from the previous target
//! assignment and moves as few partitions as it can while bringing every member within
//! one partition of the others (exactly when all members subscribe to the same topics;
//! as close as a bounded number of moves gets it otherwise). `range` gives each member a
//! contiguous range of every topic it subscribes to, members ordered by id. The results
//! have the properties of Kafka's assignors, not their exact choices.
//!
//! Neither looks at racks, as Kafka 4's `uniform` and `range` do not (their rack-aware
//! code was taken out before 4.0; a member's rack id reaches no built-in assignor).
//! Racks count in the group's metadata hash instead ([`super::metadata_hash`],
//! KIP-1101): a change of a subscribed partition's replica racks runs them again.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Assignment;

pub(crate) const UNIFORM: &str = "uniform";
pub(crate) const RANGE: &str = "range";
/// Kafka's class names, which `group.consumer.assignors` may use instead of the names.
const UNIFORM_CLASS: &str = "org.apache.kafka.coordinator.group.assignor.UniformAssignor";
const RANGE_CLASS: &str = "org.apache.kafka.coordinator.group.assignor.RangeAssignor";

/// The assignor name for a configured name or Kafka class name.
pub fn canonical_name(configured: &str) -> Option<&'static str> {
    match configured.trim() {
        UNIFORM | UNIFORM_CLASS => Some(UNIFORM),
        RANGE | RANGE_CLASS => Some(RANGE),
        _ => None,
    }
}

/// One member as an assignor sees it.
pub(crate) struct MemberSpec<'a> {
    pub member_id: &'a str,
    /// Subscribed topics that exist.
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment.
    pub previous: Option<&'a Assignment>,
}

/// Runs assignor `name` (a canonical name; anything else runs `uniform`). `partitions`
/// gives each subscribed topic's partition count.
pub(crate) fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for (topic, count) in partitions {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(topic))
            .map(|m| m.member_id)
            .collect();
        subscribers.sort_unstable();
        let n = subscribers.len() as i32;
        if n == 0 || *count <= 0 {
            continue;
        }
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.into_iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if take > 0 {
                out.get_mut(member)
                    .expect("every member has an entry")
                    .insert(*topic, (next..next + take).collect());
            }
            next += take;
        }
    }
    out
}

fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    let mut load: BTreeMap<&str, BTreeSet<(Uuid, i32)>> = members
        .iter()
        .map(|m| (m.member_id, BTreeSet::new()))
        .collect();
    let subscribes = |member: &MemberSpec<'_>, topic: &Uuid| member.topics.contains(topic);
    let homogeneous = members.windows(2).all(|w| w[0].topics == w[1].topics);
    let total: usize = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| subscribes(m, t)))
        .map(|(_, n)| (*n).max(0) as usize)
        .sum();
    // Each member's ceiling: with one subscription set, the partitions split evenly
    // (the first `extra` members to fill up may take one more).
    let (quota, mut extra) = if homogeneous && !members.is_empty() {
        (total / members.len(), total % members.len())
    } else {
        (usize::MAX, 0)
    };
    let valid = |topic: &Uuid, p: i32| partitions.get(topic).is_some_and(|n| p >= 0 && p < *n);
    let mut taken: BTreeSet<(Uuid, i32)> = BTreeSet::new();
    // 1. Stickiness: keep what each member had, while it still subscribes, up to quota.
    for member in members {
        let Some(previous) = member.previous else {
            continue;
        };
        let mine = load.get_mut(member.member_id).expect("entry");
        for (topic, ps) in previous {
            if !subscribes(member, topic) {
                continue;
            }
            for p in ps {
                if !valid(topic, *p) || taken.contains(&(*topic, *p)) {
                    continue;
                }
                let cap = quota.saturating_add(usize::from(extra > 0));
                if mine.len() >= cap {
                    continue;
                }
                if mine.len() == quota && extra > 0 {
                    extra -= 1;
                }
                mine.insert((*topic, *p));
                taken.insert((*topic, *p));
            }
        }
    }
    // 2. The rest, each to the least loaded member that subscribes to it.
    for (topic, count) in partitions {
        for p in 0..*count {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            let best = members
                .iter()
                .filter(|m| subscribes(m, topic))
                .min_by_key(|m| (load[m.member_id].len(), m.member_id));
            if let Some(best) = best {
                load.get_mut(best.member_id)
                    .expect("entry")
                    .insert((*topic, p));
                taken.insert((*topic, p));
            }
        }
    }
    // 3. Balance: move a partition from the most to the least loaded member that can
    //    take it, while that narrows the gap (bounded: each move lowers the spread).
    if !homogeneous {
        for _ in 0..total {
            if !move_one(members, &mut load) {
                break;
            }
        }
    }
    load.into_iter()
        .map(|(member, ps)| {
            let mut a = Assignment::new();
            for (topic, p) in ps {
                a.entry(topic).or_default().insert(p);
            }
            (member.to_owned(), a)
        })
        .collect()
}

/// One balancing move: a partition from a member with at least two more than some
/// member that subscribes to its topic. False when there is none.
fn move_one(members: &[MemberSpec<'_>], load: &mut BTreeMap<&str, BTreeSet<(Uuid, i32)>>) -> bool {
    let mut by_load: Vec<&MemberSpec<'_>> = members.iter().collect();
    by_load.sort_by_key(|m| (std::cmp::Reverse(load[m.member_id].len()), m.member_id));
    for giver in &by_load {
        let giver_load = load[giver.member_id].len();
        for taker in by_load.iter().rev() {
            if load[taker.member_id].len() + 1 >= giver_load {
                break;
            }
            let movable = load[giver.member_id]
                .iter()
                .find(|(topic, _)| taker.topics.contains(topic))
                .copied();
            if let Some(tp) = movable {
                load.get_mut(giver.member_id).expect("entry").remove(&tp);
                load.get_mut(taker.member_id).expect("entry").insert(tp);
                return true;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u64) -> Uuid {
        Uuid::from_u64_pair(0, n)
    }

    fn spec<'a>(id: &'a str, topics: &[u64], previous: Option<&'a Assignment>) -> MemberSpec<'a> {
        MemberSpec {
            member_id: id,
            topics: topics.iter().map(|n| t(*n)).collect(),
            previous,
        }
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// Every subscribed partition assigned exactly once, only to subscribers.
    fn check_complete(
        members: &[MemberSpec<'_>],
        partitions: &BTreeMap<Uuid, i32>,
        out: &BTreeMap<String, Assignment>,
    ) {
        let mut seen = BTreeSet::new();
        for m in members {
            for (topic, ps) in &out[m.member_id] {
                assert!(
                    m.topics.contains(topic),
                    "{} got unsubscribed {topic}",
                    m.member_id
                );
                for p in ps {
                    assert!(*p < partitions[topic]);
                    assert!(seen.insert((*topic, *p)), "{topic}-{p} twice");
                }
            }
        }
        let expected: usize = partitions
            .iter()
            .filter(|(topic, _)| members.iter().any(|m| m.topics.contains(topic)))
            .map(|(_, n)| *n as usize)
            .sum();
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn range_splits_each_topic_in_member_order() {
        let partitions = BTreeMap::from([(t(1), 5), (t(2), 2)]);
        let members = [
            spec("b", &[1, 2], None),
            spec("a", &[1], None),
            spec("c", &[1, 2], None),
        ];
        let out = assign(RANGE, &members, &partitions);
        check_complete(&members, &partitions, &out);
        assert_eq!(out["a"][&t(1)], BTreeSet::from([0, 1]));
        assert_eq!(out["b"][&t(1)], BTreeSet::from([2, 3]));
        assert_eq!(out["c"][&t(1)], BTreeSet::from([4]));
        assert_eq!(out["b"][&t(2)], BTreeSet::from([0]));
        assert_eq!(out["c"][&t(2)], BTreeSet::from([1]));
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let partitions = BTreeMap::from([(t(1), 7), (t(2), 5)]);
        let first = assign(
            UNIFORM,
            &[spec("a", &[1, 2], None), spec("b", &[1, 2], None)],
            &partitions,
        );
        assert_eq!((count(&first["a"]), count(&first["b"])), (6, 6));
        // A third member joins: a and b each give up two, keep the rest.
        let members = [
            spec("a", &[1, 2], Some(&first["a"])),
            spec("b", &[1, 2], Some(&first["b"])),
            spec("c", &[1, 2], None),
        ];
        let second = assign(UNIFORM, &members, &partitions);
        check_complete(&members, &partitions, &second);
        for m in ["a", "b", "c"] {
            assert_eq!(count(&second[m]), 4, "{m}");
        }
        for m in ["a", "b"] {
            for (topic, ps) in &second[m] {
                assert!(
                    ps.is_subset(&first[m][topic]),
                    "{m} moved partitions it could keep"
                );
            }
        }
    }

    #[test]
    fn uniform_heterogeneous_is_complete_and_close_to_balanced() {
        let partitions = BTreeMap::from([(t(1), 6), (t(2), 6), (t(3), 1)]);
        let members = [
            spec("a", &[1], None),
            spec("b", &[1, 2], None),
            spec("c", &[2, 3], None),
        ];
        let out = assign(UNIFORM, &members, &partitions);
        check_complete(&members, &partitions, &out);
        let loads: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&out[*m])).collect();
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
    }

    /// Property-style: random subscriptions, partitions and previous assignments; the
    /// result is always complete, and balanced within one for a single subscription set.
    #[test]
    fn random_inputs_give_complete_assignments() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for round in 0..300 {
            let topic_count = 1 + next(4);
            let partitions: BTreeMap<Uuid, i32> =
                (1..=topic_count).map(|i| (t(i), next(9) as i32)).collect();
            let homogeneous = round % 2 == 0;
            let ids: Vec<String> = (0..1 + next(6)).map(|i| format!("m{i}")).collect();
            let previous: Vec<Assignment> = ids
                .iter()
                .map(|_| {
                    let mut a = Assignment::new();
                    for _ in 0..next(6) {
                        a.entry(t(1 + next(topic_count + 1)))
                            .or_default()
                            .insert(next(10) as i32);
                    }
                    a
                })
                .collect();
            let members: Vec<MemberSpec<'_>> = ids
                .iter()
                .zip(&previous)
                .map(|(id, prev)| {
                    let topics: Vec<u64> = if homogeneous {
                        (1..=topic_count).collect()
                    } else {
                        (1..=topic_count).filter(|_| next(2) == 0).collect()
                    };
                    spec(id, &topics, Some(prev))
                })
                .collect();
            for name in [UNIFORM, RANGE] {
                let out = assign(name, &members, &partitions);
                check_complete(&members, &partitions, &out);
                if homogeneous && name == UNIFORM {
                    let loads: Vec<usize> = out.values().map(count).collect();
                    assert!(
                        loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
                        "round {round}: {loads:?}"
                    );
                }
            }
        }
    }
}
