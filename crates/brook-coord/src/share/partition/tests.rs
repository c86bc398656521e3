use super::*;

fn config() -> SharePartitionConfig {
    SharePartitionConfig {
        lock_duration_ms: 1_000,
        delivery_count_limit: 3,
        max_in_flight: 100,
    }
}

/// Data batches, then control batches, merged in offset order.
fn batches(data: &[(i64, i64)], control: &[(i64, i64)]) -> Vec<LogBatch> {
    let mut all: Vec<LogBatch> = data
        .iter()
        .map(|&(f, l)| LogBatch {
            first_offset: f,
            last_offset: l,
            control: false,
        })
        .chain(control.iter().map(|&(f, l)| LogBatch {
            first_offset: f,
            last_offset: l,
            control: true,
        }))
        .collect();
    all.sort_by_key(|b| b.first_offset);
    all
}

fn acquired(first: i64, last: i64, count: i16) -> Acquired {
    Acquired {
        first_offset: first,
        last_offset: last,
        delivery_count: count,
    }
}

#[test]
fn acquires_from_the_end_and_reports_ranges() {
    let mut p = SharePartition::new(config(), 0);
    assert_eq!(p.fetch_offset(), Some(0));
    let got = p.acquire("a", &batches(&[(0, 4), (5, 9)], &[]), 500, 0);
    assert_eq!(got, vec![acquired(0, 9, 1)]);
    assert_eq!((p.start_offset(), p.end_offset()), (0, 10));
    // Nothing available below the end: the next fetch reads new records.
    assert_eq!(p.fetch_offset(), Some(10));
    // A second member gets nothing of what the first holds.
    assert!(p.acquire("b", &batches(&[(0, 9)], &[]), 500, 0).is_empty());
}

#[test]
fn max_records_and_window_bound_acquisition() {
    let mut p = SharePartition::new(config(), 0);
    assert_eq!(
        p.acquire("a", &batches(&[(0, 9)], &[]), 4, 0),
        vec![acquired(0, 3, 1)]
    );
    assert_eq!(p.end_offset(), 4);
    let got = p.acquire("a", &batches(&[(4, 500)], &[]), 1_000, 0);
    assert_eq!(got, vec![acquired(4, 99, 1)]);
    assert_eq!(p.end_offset(), 100);
    assert_eq!(p.fetch_offset(), None, "the window is full");
    p.acknowledge("a", 0, 9, &[ACK_ACCEPT], 0).unwrap();
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.fetch_offset(), Some(100));
}

#[test]
fn accept_advances_the_start_only_over_a_prefix() {
    let mut p = SharePartition::new(config(), 5);
    p.acquire("a", &batches(&[(5, 14)], &[]), 500, 0);
    p.acknowledge("a", 8, 9, &[ACK_ACCEPT], 0).unwrap();
    assert_eq!(p.start_offset(), 5);
    p.acknowledge("a", 5, 7, &[ACK_ACCEPT], 0).unwrap();
    assert_eq!(p.start_offset(), 10);
    assert_eq!(p.state(9), None, "records behind the start are forgotten");
}

#[test]
fn release_makes_records_available_again_with_their_count() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 2)], &[]), 500, 0);
    p.acknowledge("a", 0, 2, &[ACK_ACCEPT, ACK_RELEASE, ACK_ACCEPT], 0)
        .unwrap();
    assert_eq!(p.start_offset(), 1);
    assert_eq!(p.fetch_offset(), Some(1));
    let got = p.acquire("b", &batches(&[(0, 2)], &[]), 500, 0);
    assert_eq!(got, vec![acquired(1, 1, 2)]);
}

#[test]
fn reject_archives() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 1)], &[]), 500, 0);
    p.acknowledge("a", 0, 0, &[ACK_REJECT], 0).unwrap();
    assert_eq!(p.start_offset(), 1);
    assert!(p.acquire("a", &batches(&[(0, 0)], &[]), 500, 0).is_empty());
}

#[test]
fn lock_timeout_returns_records_and_delivery_limit_archives() {
    let mut p = SharePartition::new(config(), 0);
    let mut now = 0;
    for delivery in 1..=3 {
        let got = p.acquire("a", &batches(&[(0, 0)], &[]), 500, now);
        assert_eq!(got, vec![acquired(0, 0, delivery)]);
        assert_eq!(p.next_deadline_ms(), Some(now + 1_000));
        assert!(!p.expire_locks(now + 999));
        now += 1_000;
        assert!(p.expire_locks(now));
    }
    assert_eq!(p.state(0), None);
    assert_eq!(p.start_offset(), 1, "archived at the third delivery");
    assert!(p
        .acquire("a", &batches(&[(0, 0)], &[]), 500, now)
        .is_empty());
}

#[test]
fn release_at_the_delivery_limit_archives() {
    let mut p = SharePartition::new(config(), 0);
    for _ in 0..3 {
        p.acquire("a", &batches(&[(0, 0)], &[]), 500, 0);
        p.acknowledge("a", 0, 0, &[ACK_RELEASE], 0).unwrap();
    }
    assert_eq!(p.start_offset(), 1);
}

#[test]
fn bad_acknowledgements_change_nothing() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 4)], &[]), 500, 0);
    let before = p.clone();
    // Another member's records.
    assert_eq!(
        p.acknowledge("b", 0, 0, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRecordState(0))
    );
    // Past the end, and records already acknowledged.
    assert!(matches!(
        p.acknowledge("a", 3, 7, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRecordState(_))
    ));
    // Types that do not match the range.
    assert!(matches!(
        p.acknowledge("a", 0, 4, &[ACK_ACCEPT, ACK_ACCEPT], 0),
        Err(AckError::InvalidRequest(_))
    ));
    assert!(matches!(
        p.acknowledge("a", 0, 0, &[9], 0),
        Err(AckError::InvalidRequest(_))
    ));
    assert!(matches!(
        p.acknowledge("a", 4, 0, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRequest(_))
    ));
    // Ranges that would overflow, or reach far past the window.
    assert!(matches!(
        p.acknowledge("a", i64::MIN, i64::MAX, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRecordState(_))
    ));
    assert!(matches!(
        p.acknowledge("a", 0, i64::MAX, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRecordState(_))
    ));
    assert_eq!(p, before);
    p.acknowledge("a", 0, 0, &[ACK_ACCEPT], 0).unwrap();
    assert_eq!(
        p.acknowledge("a", 0, 0, &[ACK_ACCEPT], 0),
        Err(AckError::InvalidRecordState(0)),
        "twice"
    );
}

#[test]
fn gaps_and_control_batches_are_passed() {
    let mut p = SharePartition::new(config(), 0);
    // Offsets 3-4 were compacted away; 5 is a transaction marker.
    let got = p.acquire("a", &batches(&[(0, 2), (6, 7)], &[(5, 5)]), 500, 0);
    assert_eq!(got, vec![acquired(0, 2, 1), acquired(6, 7, 1)]);
    p.acknowledge("a", 0, 7, &[1, 1, 1, ACK_GAP, ACK_GAP, ACK_GAP, 1, 1], 0)
        .unwrap();
    assert_eq!((p.start_offset(), p.end_offset()), (8, 8));
}

#[test]
fn releasing_a_member_frees_its_records() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 1)], &[]), 500, 0);
    p.acquire("b", &batches(&[(2, 3)], &[]), 500, 0);
    assert!(p.release_member("a"));
    assert_eq!(p.fetch_offset(), Some(0));
    assert_eq!(
        p.acquire("c", &batches(&[(0, 3)], &[]), 500, 0),
        vec![acquired(0, 1, 2)]
    );
}

#[test]
fn renew_extends_the_lock() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 0)], &[]), 500, 0);
    p.acknowledge("a", 0, 0, &[ACK_RENEW], 900).unwrap();
    assert!(!p.expire_locks(1_500));
    assert!(p.expire_locks(1_900));
}

#[test]
fn renew_keeps_the_delivery_count_and_needs_the_records_held() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 3)], &[]), 500, 0);
    p.acquire("b", &batches(&[(4, 5)], &[]), 500, 0);
    // Renewed again and again, a record outlives many lock durations and is never
    // delivered to anyone else, with its delivery count unchanged.
    for now in (500..5_000).step_by(500) {
        p.acknowledge("a", 0, 1, &[ACK_RENEW], now).unwrap();
        p.expire_locks(now);
        assert!(p
            .acquire("b", &batches(&[(0, 1)], &[]), 500, now)
            .is_empty());
    }
    assert!(matches!(
        p.state(0),
        Some((RecordState::Acquired { member, deadline_ms: 5_500 }, 1)) if &**member == "a"
    ));
    // Records 2 and 3 were not renewed: their lock expired, and they are available.
    assert_eq!(p.state(2), Some((&RecordState::Available, 1)));
    // RENEW of records that are not acquired, held by another member, or past the end:
    // INVALID_RECORD_STATE, and nothing changes (the batch is checked whole).
    assert_eq!(
        p.acknowledge("a", 2, 2, &[ACK_RENEW], 5_000),
        Err(AckError::InvalidRecordState(2))
    );
    assert_eq!(
        p.acknowledge("a", 4, 4, &[ACK_RENEW], 5_000),
        Err(AckError::InvalidRecordState(4))
    );
    assert_eq!(
        p.acknowledge("a", 0, 2, &[ACK_RENEW], 5_000),
        Err(AckError::InvalidRecordState(2))
    );
    assert_eq!(
        p.acknowledge("a", 6, 6, &[ACK_RENEW], 5_000),
        Err(AckError::InvalidRecordState(6))
    );
    assert_eq!(p.state(0).map(|(_, c)| c), Some(1));
    // A renewed record is then accepted (or released) as any other.
    p.acknowledge("a", 0, 1, &[ACK_ACCEPT, ACK_RELEASE], 5_000)
        .unwrap();
    assert_eq!(p.state(1), Some((&RecordState::Available, 1)));
    assert_eq!(p.start_offset(), 1);
}

#[test]
fn batch_optimized_acquires_whole_batches_record_limit_does_not() {
    let log = batches(&[(0, 4), (5, 9), (10, 14)], &[]);
    let mut p = SharePartition::new(config(), 0);
    // max 6 falls in the second batch: it is acquired whole, the third is not.
    assert_eq!(
        p.acquire_in_mode("a", &log, 6, AcquireMode::BatchOptimized, 0),
        vec![acquired(0, 9, 1)]
    );
    // The same with record_limit: exactly 6, the rest of the batch left for others.
    let mut q = SharePartition::new(config(), 0);
    assert_eq!(
        q.acquire_in_mode("a", &log, 6, AcquireMode::RecordLimit, 0),
        vec![acquired(0, 5, 1)]
    );
    assert_eq!(
        q.acquire_in_mode("b", &log, 6, AcquireMode::RecordLimit, 0),
        vec![acquired(6, 11, 1)]
    );
    // A batch partly held by another member: only its available records are taken,
    // and a limit reached exactly at a boundary takes nothing more.
    assert_eq!(
        q.acquire_in_mode("c", &log, 3, AcquireMode::BatchOptimized, 0),
        vec![acquired(12, 14, 1)]
    );
    assert!(q
        .acquire_in_mode("c", &log, 0, AcquireMode::BatchOptimized, 0)
        .is_empty());
    assert_eq!(AcquireMode::from_code(0), Some(AcquireMode::BatchOptimized));
    assert_eq!(AcquireMode::from_code(1), Some(AcquireMode::RecordLimit));
    assert_eq!(AcquireMode::from_code(2), None);
}

#[test]
fn the_log_start_moving_past_the_window_drops_records() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 9)], &[]), 500, 0);
    assert!(p.follow_log_start(5));
    assert_eq!(p.start_offset(), 5);
    assert!(!p.follow_log_start(3));
    assert!(p.follow_log_start(20));
    assert_eq!((p.start_offset(), p.end_offset()), (20, 20));
}

#[test]
fn stored_state_round_trips_and_loses_only_locks() {
    let mut p = SharePartition::new(config(), 0);
    p.acquire("a", &batches(&[(0, 9)], &[]), 500, 0);
    p.acknowledge("a", 0, 1, &[ACK_ACCEPT], 0).unwrap();
    p.acknowledge("a", 3, 4, &[ACK_ACCEPT, ACK_REJECT], 0)
        .unwrap();
    p.acknowledge("a", 5, 5, &[ACK_RELEASE], 0).unwrap();
    let stored = p.stored();
    assert_eq!(stored.start_offset, 2);
    let mut q = SharePartition::from_stored(config(), &stored);
    assert_eq!((q.start_offset(), q.end_offset()), (2, 10));
    // 2, 5..=9 come back (2 and 6..=9 were acquired: the lock is lost); 3, 4 never do.
    let got = q.acquire("b", &batches(&[(0, 12)], &[]), 500, 0);
    assert_eq!(
        got,
        vec![acquired(2, 2, 2), acquired(5, 9, 2), acquired(10, 12, 1)]
    );
    assert_eq!(q.stored().start_offset, 2);
}

#[test]
fn stored_state_that_lies_is_bounded() {
    let stored = StoredPartitionState {
        start_offset: 0,
        batches: vec![
            StoredBatch {
                first_offset: 0,
                last_offset: i64::MAX,
                state: 2,
                delivery_count: -4,
            },
            StoredBatch {
                first_offset: -10,
                last_offset: 3,
                state: 0,
                delivery_count: 1,
            },
        ],
    };
    let p = SharePartition::from_stored(config(), &stored);
    assert_eq!((p.start_offset(), p.end_offset()), (100, 100));
    let negative = StoredPartitionState {
        start_offset: i64::MIN,
        batches: vec![],
    };
    let mut p = SharePartition::from_stored(config(), &negative);
    assert_eq!(p.start_offset(), 0);
    assert_eq!(
        p.acquire("a", &batches(&[(5, 6)], &[]), 10, 0),
        vec![acquired(5, 6, 1)]
    );
}

/// A seeded run of random acquisitions, acknowledgements (good and bad), lock expiry,
/// member releases, log start moves and store/restore: the window stays bounded, the
/// start never passes a record still to deliver, and no record acknowledged (ACCEPT or
/// REJECT) is ever acquired again.
#[test]
fn random_operations_keep_the_invariants() {
    let mut rng = 0x5eed_u64;
    let mut next = |n: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % n
    };
    let config = SharePartitionConfig {
        lock_duration_ms: 50,
        delivery_count_limit: 4,
        max_in_flight: 40,
    };
    let members = ["a", "b", "c"];
    let mut p = SharePartition::new(config, 0);
    let mut done: std::collections::BTreeSet<i64> = Default::default();
    let mut log_end = 0i64;
    let mut now = 0i64;
    for _ in 0..20_000 {
        now += next(10) as i64;
        let member = members[next(3) as usize];
        match next(7) {
            0 => log_end += 1 + next(10) as i64,
            1 | 2 => {
                let from = p.fetch_offset().unwrap_or(p.end_offset());
                let batches = batches(&[(from, log_end.max(from + 1) - 1)], &[]);
                if from < log_end {
                    for a in p.acquire(member, &batches, 1 + next(15) as usize, now) {
                        for o in a.first_offset..=a.last_offset {
                            assert!(!done.contains(&o), "acknowledged {o} acquired again");
                        }
                    }
                }
            }
            3 => {
                let first = p.start_offset() + next(12) as i64 - 2;
                let last = first + next(6) as i64;
                let t = [ACK_ACCEPT, ACK_RELEASE, ACK_REJECT, ACK_GAP][next(4) as usize];
                if p.acknowledge(member, first, last, &[t], now).is_ok() && t != ACK_RELEASE {
                    done.extend((first..=last).filter(|o| *o >= 0));
                }
            }
            4 => {
                p.expire_locks(now);
            }
            5 => {
                p.release_member(member);
            }
            _ => {
                if next(20) == 0 {
                    p = SharePartition::from_stored(config, &p.stored());
                }
            }
        }
        assert!(p.start_offset() <= p.end_offset());
        assert!(p.end_offset() - p.start_offset() <= config.max_in_flight);
        if let Some((state, _)) = p.state(p.start_offset()) {
            assert!(!matches!(
                state,
                RecordState::Acknowledged | RecordState::Archived
            ));
        }
    }
    assert!(p.start_offset() > 0, "the start moved");
}
