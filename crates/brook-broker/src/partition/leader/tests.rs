//! The leader's replication rules, without a log.

use super::*;

const LAG: i64 = 30_000;

fn view(leader: i32, leader_epoch: i32, isr: &[i32], replicas: &[i32]) -> PartitionImage {
    PartitionImage {
        index: 0,
        leader,
        leader_epoch,
        partition_epoch: 7,
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        adding_replicas: vec![],
        removing_replicas: vec![],
    }
}

/// Broker 1 leading at time 0 with an empty log.
fn leading(isr: &[i32], replicas: &[i32]) -> Leadership {
    let mut l = Leadership::new(1, 0);
    assert_eq!(
        l.apply(&view(1, 3, isr, replicas), 0, 0),
        Applied::BecameLeader
    );
    l
}

/// A follower fetch at `offset` followed by the high watermark check, as the
/// leader's fetch path does it.
fn fetch(l: &mut Leadership, replica: i32, offset: i64, leo: i64, now_ms: i64) -> bool {
    l.follower_fetched(replica, offset, leo, now_ms, None);
    l.advance_high_watermark(leo)
}

#[test]
fn high_watermark_is_the_smallest_log_end_in_the_isr() {
    let mut l = leading(&[1, 2, 3], &[1, 2, 3]);
    assert!(!fetch(&mut l, 2, 7, 10, 1));
    assert!(fetch(&mut l, 3, 5, 10, 1));
    assert_eq!(l.high_watermark, 5);
    assert!(fetch(&mut l, 3, 10, 10, 2));
    assert_eq!(l.high_watermark, 7);
    // Never backwards, even if a follower reports less.
    assert!(!fetch(&mut l, 2, 6, 10, 3));
    assert_eq!(l.high_watermark, 7);
    // Capped by the leader's own log end.
    assert!(fetch(&mut l, 2, 10, 9, 4));
    assert_eq!(l.high_watermark, 9);
}

#[test]
fn a_follower_that_never_fetched_blocks_the_high_watermark() {
    let mut l = leading(&[1, 2, 3], &[1, 2, 3]);
    assert!(!fetch(&mut l, 2, 10, 10, 1));
    assert_eq!(l.high_watermark, 0);
    assert!(fetch(&mut l, 3, 4, 10, 1));
    assert_eq!(l.high_watermark, 4);
}

#[test]
fn a_leader_alone_in_the_isr_sets_the_high_watermark_to_its_log_end() {
    let mut l = leading(&[1], &[1, 2]);
    assert!(l.advance_high_watermark(12));
    assert_eq!(l.high_watermark, 12);
    // An out-of-sync follower does not hold it back.
    assert!(!fetch(&mut l, 2, 3, 12, 1));
    assert_eq!(l.high_watermark, 12);
}

#[test]
fn a_lagging_follower_leaves_the_isr_after_the_max_lag() {
    let mut l = leading(&[1, 2, 3], &[1, 2, 3]);
    fetch(&mut l, 2, 0, 0, 1_000);
    fetch(&mut l, 3, 0, 0, 1_000);
    // The leader moves on; 2 keeps up, 3 keeps fetching from where it was.
    for t in (2_000..=LAG + 2_000).step_by(1_000) {
        let leo = t / 1_000;
        fetch(&mut l, 2, leo, leo, t);
        fetch(&mut l, 3, 0, leo, t);
    }
    // Caught up at 1_000 when it fetched the log end; lagging since.
    assert_eq!(l.isr_change(32, LAG + 1_000, LAG, |_| true), None);
    let change = l.isr_change(32, LAG + 1_001, LAG, |_| true).unwrap();
    assert_eq!(
        change,
        IsrChange {
            leader_epoch: 3,
            partition_epoch: 7,
            isr: vec![1, 2],
        }
    );
    // A shrink is not pending: nothing waits for its answer.
    assert_eq!(l.isr_change(32, LAG + 1_001, LAG, |_| true), Some(change));
}

#[test]
fn a_follower_that_reaches_the_previous_log_end_counts_as_caught_up() {
    let mut l = leading(&[1, 2], &[1, 2]);
    fetch(&mut l, 2, 0, 5, 1_000);
    // Never at the log end, but each fetch reaches where the log ended at the last.
    fetch(&mut l, 2, 5, 8, 2_000);
    fetch(&mut l, 2, 8, 11, LAG + 1_500);
    assert_eq!(l.isr_change(11, LAG + 2_000, LAG, |_| true), None);
    assert!(l.isr_change(11, LAG + 2_001, LAG, |_| true).is_some());
}

#[test]
fn a_follower_at_the_log_end_of_an_idle_partition_stays_in_the_isr() {
    // A fetch session visits a partition only when it changes: an idle partition's
    // follower is not heard from, yet has everything (Kafka's isCaughtUp).
    let mut l = leading(&[1, 2], &[1, 2]);
    fetch(&mut l, 2, 4, 4, 1_000);
    assert_eq!(l.isr_change(4, 10 * LAG, LAG, |_| true), None);
    // Once the log moves past it, the lag counts again.
    assert!(l.isr_change(5, 10 * LAG, LAG, |_| true).is_some());
}

#[test]
fn a_session_follower_is_caught_up_until_the_log_moved() {
    let mut l = leading(&[1, 2], &[1, 2]);
    fetch(&mut l, 2, 4, 4, 1_000);
    // Long idle; then a produce moves the log end to 6 and the session visits the
    // partition with the follower still at 4, fetching without a break since 99_500.
    l.follower_fetched(2, 4, 6, 100_000, Some(99_500));
    assert_eq!(l.isr_change(6, 99_500 + LAG, LAG, |_| true), None);
    assert!(l.isr_change(6, 99_501 + LAG, LAG, |_| true).is_some());
    // Without the session, the last fetch it was caught up at is the one at 1_000.
    let mut l = leading(&[1, 2], &[1, 2]);
    fetch(&mut l, 2, 4, 4, 1_000);
    fetch(&mut l, 2, 4, 6, 100_000);
    assert!(l.isr_change(6, 100_000, LAG, |_| true).is_some());
}

#[test]
fn a_caught_up_live_follower_joins_and_counts_for_the_high_watermark_meanwhile() {
    let mut l = leading(&[1, 2], &[1, 2, 3]);
    fetch(&mut l, 2, 10, 10, 1);
    assert_eq!(l.high_watermark, 10);
    // 3 is still behind the high watermark.
    fetch(&mut l, 3, 9, 10, 1);
    assert_eq!(l.isr_change(10, 2, LAG, |_| true), None);
    fetch(&mut l, 3, 10, 10, 3);
    // Not while it is not alive.
    assert_eq!(l.isr_change(10, 4, LAG, |r| r != 3), None);
    let change = l.isr_change(10, 4, LAG, |_| true).unwrap();
    assert_eq!(change.isr, vec![1, 2, 3]);
    assert_eq!(change.partition_epoch, 7);
    // One at a time: nothing more while it is in flight.
    assert_eq!(l.isr_change(10, 5, LAG, |_| true), None);
    // 3 counts already: the high watermark waits for it.
    fetch(&mut l, 2, 20, 20, 6);
    assert_eq!(l.high_watermark, 10);
    fetch(&mut l, 3, 15, 20, 6);
    assert_eq!(l.high_watermark, 15);
    // Metadata with the new ISR clears the pending state.
    let mut v = view(1, 3, &[1, 2, 3], &[1, 2, 3]);
    v.partition_epoch = 8;
    assert_eq!(l.apply(&v, 20, 7), Applied::Changed);
    assert_eq!(l.isr_change(20, 8, LAG, |_| true), None);
}

/// Leader 1 with an expansion to [1, 2, 3] in flight and a high watermark of 10.
fn expanding() -> (Leadership, Vec<i32>) {
    let mut l = leading(&[1, 2], &[1, 2, 3]);
    fetch(&mut l, 2, 10, 10, 1);
    fetch(&mut l, 3, 10, 10, 1);
    let change = l.isr_change(10, 2, LAG, |_| true).unwrap();
    (l, change.isr)
}

/// Whether the pending expansion still holds the high watermark back for 3.
fn counts_three(l: &Leadership) -> bool {
    let mut probe = l.clone();
    fetch(&mut probe, 2, 20, 20, 3);
    probe.high_watermark == 10
}

#[test]
fn an_accepted_expansion_counts_until_metadata_shows_it() {
    let (mut l, isr) = expanding();
    l.isr_change_done(&isr, IsrOutcome::Accepted);
    assert!(counts_three(&l));
    // Sent again, unchanged, if metadata is slow to show it.
    let again = l.isr_change(10, 3, LAG, |_| true).unwrap();
    assert_eq!((again.isr, again.partition_epoch), (isr, 7));
}

#[test]
fn an_outdated_expansion_waits_for_the_newer_metadata() {
    let (mut l, isr) = expanding();
    l.isr_change_done(&isr, IsrOutcome::Outdated);
    assert!(counts_three(&l));
    assert_eq!(l.isr_change(10, 3, LAG, |_| true), None);
}

#[test]
fn a_refused_expansion_is_dropped() {
    let (mut l, isr) = expanding();
    l.isr_change_done(&isr, IsrOutcome::Refused);
    assert!(!counts_three(&l));
    // Computed afresh next time.
    assert_eq!(l.isr_change(10, 3, LAG, |_| true).unwrap().isr, isr);
}

#[test]
fn an_unanswered_expansion_is_sent_again() {
    let (mut l, isr) = expanding();
    l.isr_change_done(&isr, IsrOutcome::Unknown);
    assert!(counts_three(&l));
    let again = l.isr_change(10, 3, LAG, |_| true).unwrap();
    assert_eq!((again.isr, again.partition_epoch), (isr, 7));
    assert_eq!(l.isr_change(10, 4, LAG, |_| true), None);
}

#[test]
fn an_answer_about_another_isr_is_ignored() {
    let (mut l, _) = expanding();
    l.isr_change_done(&[1, 3], IsrOutcome::Refused);
    assert!(counts_three(&l));
    assert_eq!(l.isr_change(10, 3, LAG, |_| true), None);
}

#[test]
fn only_the_leader_asks_for_isr_changes() {
    let mut l = Leadership::new(2, 0);
    assert_eq!(
        l.apply(&view(1, 3, &[1, 2], &[1, 2]), 0, 0),
        Applied::Changed
    );
    assert!(!l.is_leader());
    assert_eq!(l.isr_change(0, LAG * 10, LAG, |_| true), None);
}

#[test]
fn metadata_views() {
    let mut l = leading(&[1, 2], &[1, 2]);
    // The same view again changes nothing but the partition epoch.
    let mut same = view(1, 3, &[1, 2], &[1, 2]);
    same.partition_epoch = 9;
    assert_eq!(l.apply(&same, 0, 1), Applied::Unchanged);
    assert_eq!(l.partition_epoch, 9);
    // A new epoch of the same leader starts leading again.
    assert_eq!(
        l.apply(&view(1, 4, &[1, 2], &[1, 2]), 0, 1),
        Applied::BecameLeader
    );
    // A reassignment while leading keeps what the leader knows of follower 2.
    fetch(&mut l, 2, 5, 5, 2);
    assert_eq!(
        l.apply(&view(1, 4, &[1, 2], &[1, 2, 3]), 5, 3),
        Applied::Changed
    );
    assert_eq!(l.followers[&2].leo, 5);
    assert_eq!(l.followers[&3].leo, -1);
    // Following: nothing tracked.
    assert_eq!(
        l.apply(&view(2, 5, &[1, 2], &[1, 2, 3]), 5, 4),
        Applied::Changed
    );
    assert!(!l.is_leader());
    assert!(l.followers.is_empty());
}

#[test]
fn leader_epoch_checks() {
    let l = leading(&[1], &[1]);
    assert_eq!(l.check_epoch(-1), Ok(()));
    assert_eq!(l.check_epoch(3), Ok(()));
    assert_eq!(
        l.check_epoch(2),
        Err(Refused(ResponseError::FencedLeaderEpoch.code()))
    );
    assert_eq!(
        l.check_epoch(4),
        Err(Refused(ResponseError::UnknownLeaderEpoch.code()))
    );
}
