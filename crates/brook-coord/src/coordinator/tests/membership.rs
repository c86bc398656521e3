use kafka_protocol::error::ResponseError::*;

use super::*;
use crate::GroupState;

#[test]
fn single_member_joins_syncs_and_heartbeats_at_every_version() {
    for version in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] {
        let mut h = Harness::new();
        let spec = JoinSpec::new("g", "client").version(version);
        let token = h.join_member(&spec);
        h.advance(i64::from(INITIAL_DELAY_MS) - 1);
        assert!(
            !h.is_answered(token),
            "v{version}: the initial delay holds the join"
        );
        h.advance(1);
        let response = h.expect_join(token);
        assert_eq!(response.error_code, NONE, "v{version}");
        assert_eq!(response.generation_id, 1);
        assert_eq!(response.leader, response.member_id);
        assert!(response.member_id.starts_with("client-"));
        assert_eq!(response.members.len(), 1);
        assert_eq!(response.members[0].metadata, subscription(&["orders"]));
        assert_eq!(response.protocol_name.as_deref(), Some("range"));
        let expected_type = (version >= 7).then_some("consumer");
        assert_eq!(response.protocol_type.as_deref(), expected_type);
        assert_eq!(
            h.coord.group_state("g"),
            Some(GroupState::CompletingRebalance)
        );

        let me = Joined {
            group: "g".into(),
            member_id: response.member_id.to_string(),
            instance_id: None,
            protocol_type: "consumer".into(),
            generation: 1,
            leader: response.leader.to_string(),
        };
        let sync_version = version.min(5);
        let token = h.send_sync(&me, &[(me.member_id.as_str(), b"mine")], sync_version);
        let sync = h.expect_sync(token);
        assert_eq!(sync.error_code, NONE);
        assert_eq!(&sync.assignment[..], b"mine");
        assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
        assert_eq!(h.heartbeat(&me), NONE);
        // The assignment is stored with the group.
        assert_eq!(h.log.len(), 1, "v{version}: one group metadata record");
    }
}

#[test]
fn initial_rebalance_delay_extends_while_members_arrive() {
    // (arrival times after the first member, when the join phase completes)
    let cases: &[(&[i64], i64)] = &[
        (&[], 3_000),
        (&[0, 0], 6_000),
        (&[1_000], 6_000),
        (&[2_000, 5_000, 8_000], 12_000),
        // Capped by the rebalance timeout however many keep arriving.
        (
            &[
                1_000, 4_000, 7_000, 10_000, 13_000, 16_000, 19_000, 22_000, 25_000, 28_000,
            ],
            30_000,
        ),
    ];
    for (arrivals, completes_at) in cases {
        let mut h = Harness::new();
        let start = h.now;
        let mut tokens = vec![h.join_member(&JoinSpec::new("g", "first"))];
        for (i, at) in arrivals.iter().enumerate() {
            h.advance_in_ticks(start + at - h.now);
            tokens.push(h.join_member(&JoinSpec::new("g", &format!("c{i}"))));
        }
        h.advance_in_ticks(start + completes_at - 100 - h.now);
        assert!(
            tokens.iter().all(|t| !h.is_answered(*t)),
            "{arrivals:?}: still waiting at {}",
            h.now - start
        );
        h.advance_in_ticks(100);
        for token in tokens {
            let response = h.expect_join(token);
            assert_eq!(response.generation_id, 1, "{arrivals:?}");
        }
    }
}

#[test]
fn three_members_joining_together_make_one_generation() {
    let mut h = Harness::new();
    let specs: Vec<JoinSpec> = ["a", "b", "c"]
        .iter()
        .map(|c| JoinSpec::new("g", c))
        .collect();
    let tokens: Vec<ReplyToken> = specs.iter().map(|spec| h.join_member(spec)).collect();
    h.advance_until_answered(&tokens);
    let members: Vec<Joined> = specs
        .iter()
        .zip(&tokens)
        .map(|(spec, token)| h.joined(spec, *token))
        .collect();
    assert!(members.iter().all(|m| m.generation == 1));
    let leaders: HashSet<&str> = members.iter().map(|m| m.leader.as_str()).collect();
    assert_eq!(leaders.len(), 1, "one leader");
    assert_eq!(members.iter().filter(|m| m.is_leader()).count(), 1);
    h.sync_all(&members);
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
    for member in &members {
        assert_eq!(h.heartbeat(member), NONE);
    }
}

#[test]
fn only_the_leader_gets_the_members_metadata() {
    let mut h = Harness::new();
    let a = JoinSpec::new("g", "a").protocols(&[("range", subscription(&["x"]))]);
    let b = JoinSpec::new("g", "b").protocols(&[("range", subscription(&["y"]))]);
    let tokens = [h.join_member(&a), h.join_member(&b)];
    h.advance_until_answered(&tokens);
    let responses: Vec<JoinGroupResponse> = tokens.iter().map(|t| h.expect_join(*t)).collect();
    let (leader, follower): (Vec<_>, Vec<_>) =
        responses.iter().partition(|r| r.member_id == r.leader);
    let mut metadata: Vec<Bytes> = leader[0]
        .members
        .iter()
        .map(|m| m.metadata.clone())
        .collect();
    metadata.sort();
    let mut expected = vec![subscription(&["x"]), subscription(&["y"])];
    expected.sort();
    assert_eq!(metadata, expected);
    assert!(follower[0].members.is_empty());
}

#[test]
fn a_new_member_makes_the_others_rejoin() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let (a, b) = (&members[0], &members[1]);
    let c = JoinSpec::new("g", "c");
    let c_token = h.join_member(&c);
    assert!(!h.is_answered(c_token));
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    // The others learn of the rebalance from their heartbeats.
    assert_eq!(h.heartbeat(a), code(RebalanceInProgress));
    assert_eq!(h.heartbeat(b), code(RebalanceInProgress));
    // A SyncGroup of the old generation is told the same.
    let token = h.send_sync(a, &[], 5);
    assert_eq!(h.expect_sync(token).error_code, code(RebalanceInProgress));

    let a_token = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    assert!(!h.is_answered(a_token), "waits for b");
    let b_token = h.send_join(&JoinSpec::new("g", "b").member(&b.member_id));
    // Everyone has rejoined: the join phase completes at once.
    let rejoined = [
        h.joined(&JoinSpec::new("g", "a"), a_token),
        h.joined(&JoinSpec::new("g", "b"), b_token),
        h.joined(&c, c_token),
    ];
    for member in &rejoined {
        assert_eq!(member.generation, 2);
        assert_eq!(member.leader, a.member_id, "the leader keeps its role");
    }
    h.sync_all(&rejoined);
    assert_eq!(h.heartbeat(&rejoined[2]), NONE);
    // The old generation is over.
    assert_eq!(h.heartbeat(a), code(IllegalGeneration));
}

#[test]
fn a_follower_rejoining_with_the_same_metadata_does_not_rebalance() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let client = if follower.member_id.starts_with("a-") {
        "a"
    } else {
        "b"
    };
    let token = h.send_join(&JoinSpec::new("g", client).member(&follower.member_id));
    let response = h.expect_join(token);
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.generation_id, 1);
    assert!(response.members.is_empty());
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
}

#[test]
fn an_expired_session_removes_the_member_and_rebalances() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let (a, b) = (&members[0], &members[1]);
    h.advance(6_000);
    assert_eq!(h.heartbeat(a), NONE);
    h.advance(i64::from(SESSION_MS) - 6_000 - 1);
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
    h.advance(1);
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat(b), code(UnknownMemberId));
    assert_eq!(h.heartbeat(a), code(RebalanceInProgress));
    let token = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    let response = h.expect_join(token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1);
}

#[test]
fn a_member_that_does_not_rejoin_in_the_rebalance_timeout_is_removed() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let leader = members.iter().find(|m| m.is_leader()).unwrap();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let client = &leader.member_id[..1];
    // The leader rejoining a Stable group starts a rebalance.
    let token = h.send_join(&JoinSpec::new("g", client).member(&leader.member_id));
    for _ in 0..5 {
        h.advance(5_000);
        // Heartbeats keep the follower's session, but it never rejoins.
        assert_eq!(h.heartbeat(follower), code(RebalanceInProgress));
    }
    h.advance(i64::from(REBALANCE_MS) - 25_001);
    assert!(!h.is_answered(token));
    h.advance(1);
    let response = h.expect_join(token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1);
    assert_eq!(h.heartbeat(follower), code(UnknownMemberId));
}

#[test]
fn a_member_that_never_syncs_is_removed() {
    let mut h = Harness::new();
    let specs = [JoinSpec::new("g", "a"), JoinSpec::new("g", "b")];
    let tokens: Vec<ReplyToken> = specs.iter().map(|s| h.join_member(s)).collect();
    h.advance_until_answered(&tokens);
    let members: Vec<Joined> = specs
        .iter()
        .zip(&tokens)
        .map(|(s, t)| h.joined(s, *t))
        .collect();
    let leader = members.iter().find(|m| m.is_leader()).unwrap();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let token = h.send_sync(leader, &[], 5);
    assert_eq!(h.expect_sync(token).error_code, NONE);
    // The follower heartbeats but never sends SyncGroup.
    for _ in 0..(REBALANCE_MS / 5_000 - 1) {
        h.advance(5_000);
        assert_eq!(h.heartbeat(leader), NONE);
        assert_eq!(h.heartbeat(follower), NONE);
    }
    h.advance(5_000);
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat(follower), code(UnknownMemberId));
    assert_eq!(h.heartbeat(leader), code(RebalanceInProgress));
}

#[test]
fn the_leader_may_leave_members_out_of_the_assignment() {
    let mut h = Harness::new();
    let specs = [JoinSpec::new("g", "a"), JoinSpec::new("g", "b")];
    let tokens: Vec<ReplyToken> = specs.iter().map(|s| h.join_member(s)).collect();
    h.advance_until_answered(&tokens);
    let members: Vec<Joined> = specs
        .iter()
        .zip(&tokens)
        .map(|(s, t)| h.joined(s, *t))
        .collect();
    let leader = members.iter().find(|m| m.is_leader()).unwrap();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let parked = h.send_sync(follower, &[], 5);
    assert!(!h.is_answered(parked), "followers wait for the leader");
    let token = h.send_sync(leader, &[(leader.member_id.as_str(), b"all")], 5);
    assert_eq!(&h.expect_sync(token).assignment[..], b"all");
    let response = h.expect_sync(parked);
    assert_eq!(response.error_code, NONE);
    assert!(response.assignment.is_empty());
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
}

#[test]
fn join_errors() {
    struct Case {
        name: &'static str,
        setup: fn(&mut Harness) -> Vec<Joined>,
        spec: fn(&[Joined]) -> JoinSpec,
        error: ResponseError,
    }
    fn nothing(_: &mut Harness) -> Vec<Joined> {
        Vec::new()
    }
    fn stable(h: &mut Harness) -> Vec<Joined> {
        h.stable_group("g", &["a"])
    }
    fn stable_static(h: &mut Harness) -> Vec<Joined> {
        h.stable_group_of(&[JoinSpec::new("g", "a").instance("i")])
    }
    let cases = [
        Case {
            name: "empty group id",
            setup: nothing,
            spec: |_| JoinSpec::new("", "a"),
            error: InvalidGroupId,
        },
        Case {
            name: "session timeout below the minimum",
            setup: nothing,
            spec: |_| JoinSpec {
                session_timeout_ms: 5_999,
                ..JoinSpec::new("g", "a")
            },
            error: InvalidSessionTimeout,
        },
        Case {
            name: "session timeout above the maximum",
            setup: nothing,
            spec: |_| JoinSpec {
                session_timeout_ms: 1_800_001,
                ..JoinSpec::new("g", "a")
            },
            error: InvalidSessionTimeout,
        },
        Case {
            name: "a member id for a group that does not exist",
            setup: nothing,
            spec: |_| JoinSpec::new("g", "a").member("a-123"),
            error: UnknownMemberId,
        },
        Case {
            name: "no protocol type",
            setup: nothing,
            spec: |_| JoinSpec {
                protocol_type: String::new(),
                ..JoinSpec::new("g", "a")
            },
            error: InconsistentGroupProtocol,
        },
        Case {
            name: "no protocols",
            setup: nothing,
            spec: |_| JoinSpec::new("g", "a").protocols(&[]),
            error: InconsistentGroupProtocol,
        },
        Case {
            name: "another protocol type",
            setup: stable,
            spec: |_| JoinSpec {
                protocol_type: "connect".into(),
                ..JoinSpec::new("g", "b")
            },
            error: InconsistentGroupProtocol,
        },
        Case {
            name: "no protocol in common",
            setup: stable,
            spec: |_| JoinSpec::new("g", "b").protocols(&[("roundrobin", Bytes::new())]),
            error: InconsistentGroupProtocol,
        },
        Case {
            name: "an unknown member id",
            setup: stable,
            spec: |_| JoinSpec::new("g", "b").member("b-unknown"),
            error: UnknownMemberId,
        },
        Case {
            name: "an old member id of a static member",
            setup: stable_static,
            spec: |_| JoinSpec::new("g", "a").member("i-old").instance("i"),
            error: FencedInstanceId,
        },
        Case {
            name: "a member id with an unknown instance id",
            setup: stable_static,
            spec: |m| {
                JoinSpec::new("g", "a")
                    .member(&m[0].member_id)
                    .instance("other")
            },
            error: UnknownMemberId,
        },
    ];
    for case in cases {
        let mut h = Harness::new();
        let members = (case.setup)(&mut h);
        let spec = (case.spec)(&members);
        let token = h.send_join(&spec);
        let response = h.expect_join(token);
        assert_eq!(response.error_code, code(case.error), "{}", case.name);
        assert_eq!(response.generation_id, -1, "{}", case.name);
        if members.is_empty() {
            assert_eq!(
                h.coord.group_state("g"),
                None,
                "{}: no group left behind",
                case.name
            );
        } else {
            assert_eq!(
                h.coord.group_state("g"),
                Some(GroupState::Stable),
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn group_max_size_turns_new_members_away() {
    let mut h = Harness::with_config(GroupConfig {
        max_size: 2,
        initial_rebalance_delay_ms: i64::from(INITIAL_DELAY_MS),
        ..GroupConfig::default()
    });
    let members = h.stable_group("g", &["a", "b"]);
    let token = h.send_join(&JoinSpec::new("g", "c").version(3));
    let response = h.expect_join(token);
    assert_eq!(response.error_code, code(GroupMaxSizeReached));
    assert_eq!(response.member_id.as_str(), "");
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
    // Known members are still welcome.
    let a = &members[0];
    let token = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    assert!(!h.is_answered(token));
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
}

#[test]
fn sync_and_heartbeat_errors() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let me = &members[0];
    let unknown = Joined {
        member_id: "nobody".into(),
        ..me.clone()
    };
    let old_generation = Joined {
        generation: 0,
        ..me.clone()
    };
    let other_group = Joined {
        group: "other".into(),
        ..me.clone()
    };
    let no_group_id = Joined {
        group: String::new(),
        ..me.clone()
    };
    let cases = [
        (&unknown, UnknownMemberId),
        (&old_generation, IllegalGeneration),
        (&other_group, UnknownMemberId),
        (&no_group_id, InvalidGroupId),
    ];
    for (member, error) in cases {
        let token = h.send_sync(member, &[], 5);
        assert_eq!(
            h.expect_sync(token).error_code,
            code(error),
            "sync {member:?}"
        );
        assert_eq!(h.heartbeat(member), code(error), "heartbeat {member:?}");
    }
    // SyncGroup v5+ must name the group's protocol.
    let mut request = SyncGroupRequest::default();
    request.group_id = s("g").into();
    request.generation_id = 1;
    request.member_id = s(&me.member_id);
    let effects = h.coord.sync_group(999, 5, &request, &h.topics, h.now);
    let Reply::SyncGroup(response) = &effects.replies[0].1 else {
        panic!("{effects:?}")
    };
    assert_eq!(response.error_code, code(InconsistentGroupProtocol));
    request.protocol_type = Some(s("consumer"));
    request.protocol_name = Some(s("roundrobin"));
    let effects = h.coord.sync_group(1000, 5, &request, &h.topics, h.now);
    let Reply::SyncGroup(response) = &effects.replies[0].1 else {
        panic!("{effects:?}")
    };
    assert_eq!(response.error_code, code(InconsistentGroupProtocol));
}

#[test]
fn a_static_member_restarting_keeps_its_assignment_without_a_rebalance() {
    for version in [5, 7, 8, 9] {
        let mut h = Harness::new();
        let specs = [
            JoinSpec::new("g", "c1").instance("s1").version(version),
            JoinSpec::new("g", "c2").instance("s2").version(version),
        ];
        let members = h.stable_group_of(&specs);
        let records_before = h.log.len();
        let mut leader_id = members[0].leader.clone();
        for (restarting, spec) in members.iter().zip(&specs) {
            let token = h.send_join(spec);
            let response = h.expect_join(token);
            assert_eq!(response.error_code, NONE, "v{version}");
            assert_eq!(response.generation_id, 1, "v{version}: no new generation");
            assert_ne!(response.member_id.as_str(), restarting.member_id);
            let instance = spec.instance_id.as_deref().unwrap();
            assert!(response.member_id.starts_with(&format!("{instance}-")));
            if restarting.is_leader() && version >= 9 {
                // v9+: told it leads, but to skip the assignment.
                assert_eq!(response.leader, response.member_id);
                assert!(response.skip_assignment);
                assert_eq!(response.members.len(), 2);
            } else {
                // Before v9 a restarted leader sees the old leader id and does not assign.
                assert_eq!(response.leader.as_str(), leader_id);
                assert!(!response.skip_assignment);
                assert!(response.members.is_empty());
            }
            if restarting.is_leader() {
                leader_id = response.member_id.to_string();
            }
            assert_eq!(h.coord.group_state("g"), Some(GroupState::Stable));
            let restarted = Joined {
                member_id: response.member_id.to_string(),
                ..restarting.clone()
            };
            let token = h.send_sync(&restarted, &[], 5);
            let sync = h.expect_sync(token);
            assert_eq!(sync.error_code, NONE);
            assert_eq!(
                sync.assignment,
                restarting.member_id.as_bytes(),
                "the old assignment"
            );
            // The old member id is fenced.
            assert_eq!(h.heartbeat(restarting), code(FencedInstanceId));
            let token = h.send_join(&spec.clone().member(&restarting.member_id));
            assert_eq!(h.expect_join(token).error_code, code(FencedInstanceId));
            let token = h.send_sync(restarting, &[], 5);
            assert_eq!(h.expect_sync(token).error_code, code(FencedInstanceId));
            assert_eq!(h.heartbeat(&restarted), NONE);
        }
        assert_eq!(
            h.log.len(),
            records_before + 2,
            "each new member id is persisted"
        );
    }
}

#[test]
fn a_static_member_changing_the_protocol_choice_rebalances() {
    let mut h = Harness::new();
    let both = [("range", Bytes::new()), ("roundrobin", Bytes::new())];
    let spec = JoinSpec::new("g", "c").instance("s").protocols(&both);
    let members = h.stable_group_of(std::slice::from_ref(&spec));
    let reversed = [("roundrobin", Bytes::new()), ("range", Bytes::new())];
    let token = h.send_join(&spec.protocols(&reversed));
    let response = h.expect_join(token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.protocol_name.as_deref(), Some("roundrobin"));
    assert_ne!(response.member_id.as_str(), members[0].member_id);
}

#[test]
fn a_static_member_rejoining_during_a_rebalance_fences_its_old_join() {
    let mut h = Harness::new();
    let specs = [
        JoinSpec::new("g", "c1").instance("s1"),
        JoinSpec::new("g", "c2").instance("s2"),
    ];
    let members = h.stable_group_of(&specs);
    let s2 = members
        .iter()
        .find(|m| m.instance_id.as_deref() == Some("s2"))
        .unwrap();
    // s2 rejoins with its member id and new metadata: a rebalance; its join is parked.
    let changed = specs[1]
        .clone()
        .member(&s2.member_id)
        .protocols(&[("range", subscription(&["other"]))]);
    let old_token = h.send_join(&changed);
    assert!(!h.is_answered(old_token));
    // Then it restarts and joins without a member id.
    let new_token = h.send_join(&specs[1]);
    assert_eq!(h.expect_join(old_token).error_code, code(FencedInstanceId));
    assert!(!h.is_answered(new_token), "waits for s1");
    let s1 = members
        .iter()
        .find(|m| m.instance_id.as_deref() == Some("s1"))
        .unwrap();
    let s1_token = h.send_join(&specs[0].clone().member(&s1.member_id));
    assert_eq!(h.expect_join(s1_token).generation_id, 2);
    assert_eq!(h.expect_join(new_token).generation_id, 2);
}

#[test]
fn static_members_still_time_out() {
    let mut h = Harness::new();
    let specs = [
        JoinSpec::new("g", "c1").instance("s1"),
        JoinSpec::new("g", "c2").instance("s2"),
    ];
    let members = h.stable_group_of(&specs);
    for _ in 0..3 {
        h.advance(i64::from(SESSION_MS) / 4);
        assert_eq!(h.heartbeat(&members[0]), NONE);
    }
    h.advance(i64::from(SESSION_MS) / 4);
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat(&members[1]), code(UnknownMemberId));
}

#[test]
fn leave_group_in_a_batch_and_by_instance_id() {
    let mut h = Harness::new();
    let specs = [
        JoinSpec::new("g", "d1"),
        JoinSpec::new("g", "d2"),
        JoinSpec::new("g", "c3").instance("s3"),
        JoinSpec::new("g", "c4").instance("s4"),
    ];
    let members = h.stable_group_of(&specs);
    let d2 = &members[1];
    let s4 = &members[3];
    let response = h.leave(
        "g",
        &[
            (&d2.member_id, None),
            ("", Some("s3")),
            ("nobody", None),
            ("", Some("unknown-instance")),
            ("s4-old", Some("s4")),
        ],
        4,
    );
    assert_eq!(response.error_code, NONE);
    let errors: Vec<i16> = response.members.iter().map(|m| m.error_code).collect();
    assert_eq!(
        errors,
        [
            NONE,
            NONE,
            code(UnknownMemberId),
            code(UnknownMemberId),
            code(FencedInstanceId)
        ]
    );
    assert_eq!(response.members[1].group_instance_id.as_deref(), Some("s3"));
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat(d2), code(UnknownMemberId));
    assert_eq!(h.heartbeat(s4), code(RebalanceInProgress));

    // The remaining members rejoin into a group of two.
    let tokens = [
        h.send_join(&specs[0].clone().member(&members[0].member_id)),
        h.send_join(&specs[3].clone().member(&s4.member_id)),
    ];
    for token in tokens {
        let response = h.expect_join(token);
        assert_eq!(response.generation_id, 2);
        if response.leader == response.member_id {
            assert_eq!(response.members.len(), 2);
        }
    }
}

#[test]
fn leave_group_before_v3_names_one_member() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    for version in [0, 1, 2] {
        let response = h.leave("g", &[("nobody", None)], version);
        assert_eq!(response.error_code, code(UnknownMemberId));
        assert!(response.members.is_empty());
    }
    let response = h.leave("g", &[(&members[1].member_id, None)], 2);
    assert_eq!(response.error_code, NONE);
    let response = h.leave("missing", &[("x", None)], 1);
    assert_eq!(response.error_code, code(UnknownMemberId));
    let response = h.leave("", &[("x", None)], 4);
    assert_eq!(response.error_code, code(InvalidGroupId));
}

#[test]
fn the_last_member_leaving_empties_the_group() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let records_before = h.log.len();
    h.leave("g", &[(&members[0].member_id, None)], 3);
    assert_eq!(h.coord.group_state("g"), Some(GroupState::Empty));
    assert_eq!(
        h.log.len(),
        records_before + 1,
        "the empty generation is stored"
    );
}

#[test]
fn a_pending_member_holds_the_join_until_it_expires() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let leader = &members[0];
    // x asks for a member id (KIP-394) and never comes back.
    let first = h.send_join(&JoinSpec::new("g", "x"));
    let pending_id = h.expect_join(first).member_id.to_string();
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::Stable),
        "no rebalance yet"
    );
    h.advance(1_000);
    let token = h.send_join(&JoinSpec::new("g", "a").member(&leader.member_id));
    assert!(!h.is_answered(token), "waits for the pending member");
    h.advance(i64::from(SESSION_MS) - 1_001);
    assert!(!h.is_answered(token));
    h.advance(1);
    assert_eq!(h.expect_join(token).generation_id, 2);
    let late = h.send_join(&JoinSpec::new("g", "x").member(&pending_id));
    assert_eq!(h.expect_join(late).error_code, code(UnknownMemberId));
}

#[test]
fn a_pending_member_that_rejoins_is_added() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let (x_id, x_token) = h.join_twice(&JoinSpec::new("g", "x"));
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    let a_token = h.send_join(&JoinSpec::new("g", "a").member(&members[0].member_id));
    assert_eq!(h.expect_join(a_token).generation_id, 2);
    let x = h.expect_join(x_token);
    assert_eq!(x.member_id.as_str(), x_id);
    assert_eq!(x.generation_id, 2);
}

#[test]
fn a_pending_member_may_leave() {
    let mut h = Harness::new();
    h.stable_group("g", &["a"]);
    let first = h.send_join(&JoinSpec::new("g", "x"));
    let pending_id = h.expect_join(first).member_id.to_string();
    let response = h.leave("g", &[(&pending_id, None)], 3);
    assert_eq!(response.members[0].error_code, NONE);
    let late = h.send_join(&JoinSpec::new("g", "x").member(&pending_id));
    assert_eq!(h.expect_join(late).error_code, code(UnknownMemberId));
}

#[test]
fn cancelling_a_parked_join_withdraws_it() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let (a, b) = (&members[0], &members[1]);
    let cancelled = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    let effects = h.coord.cancel(cancelled, h.now);
    h.absorb(effects);
    let b_token = h.send_join(&JoinSpec::new("g", "b").member(&b.member_id));
    assert!(!h.is_answered(b_token), "a counts as not rejoined");
    // a reconnects and rejoins.
    let a_token = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    assert_eq!(h.expect_join(a_token).generation_id, 2);
    assert_eq!(h.expect_join(b_token).generation_id, 2);
    h.advance_in_ticks(i64::from(REBALANCE_MS));
    assert!(
        !h.is_answered(cancelled),
        "a cancelled token is never answered"
    );
    // Cancelling an unknown or answered token does nothing.
    assert!(h.coord.cancel(cancelled, h.now).is_empty());
    assert!(h.coord.cancel(a_token, h.now).is_empty());
}

#[test]
fn cancelling_a_new_members_join_removes_it() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a"]);
    let (_, c_token) = h.join_twice(&JoinSpec::new("g", "c"));
    let effects = h.coord.cancel(c_token, h.now);
    h.absorb(effects);
    let a_token = h.send_join(&JoinSpec::new("g", "a").member(&members[0].member_id));
    let response = h.expect_join(a_token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1, "c is gone");
    assert!(!h.is_answered(c_token));
}

#[test]
fn cancelling_a_parked_sync_leaves_the_member_owing_one() {
    let mut h = Harness::new();
    let specs = [JoinSpec::new("g", "a"), JoinSpec::new("g", "b")];
    let tokens: Vec<ReplyToken> = specs.iter().map(|s| h.join_member(s)).collect();
    h.advance_until_answered(&tokens);
    let members: Vec<Joined> = specs
        .iter()
        .zip(&tokens)
        .map(|(s, t)| h.joined(s, *t))
        .collect();
    let leader = members.iter().find(|m| m.is_leader()).unwrap();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let cancelled = h.send_sync(follower, &[], 5);
    let effects = h.coord.cancel(cancelled, h.now);
    assert!(effects.is_empty());
    let assignment = [
        (leader.member_id.as_str(), &b"L"[..]),
        (follower.member_id.as_str(), &b"F"[..]),
    ];
    let token = h.send_sync(leader, &assignment, 5);
    assert_eq!(h.expect_sync(token).error_code, NONE);
    assert!(!h.is_answered(cancelled));
    // The follower syncs again and gets its assignment.
    let token = h.send_sync(follower, &[], 5);
    assert_eq!(&h.expect_sync(token).assignment[..], b"F");
}

#[test]
fn a_second_join_supersedes_a_parked_one() {
    let mut h = Harness::new();
    let members = h.stable_group("g", &["a", "b"]);
    let a = &members[0];
    let first = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    let second = h.send_join(&JoinSpec::new("g", "a").member(&a.member_id));
    assert_eq!(h.expect_join(first).error_code, code(RebalanceInProgress));
    assert!(!h.is_answered(second));
}

#[test]
fn a_rebalance_during_completing_rebalance_answers_parked_syncs() {
    let mut h = Harness::new();
    let specs = [JoinSpec::new("g", "a"), JoinSpec::new("g", "b")];
    let tokens: Vec<ReplyToken> = specs.iter().map(|s| h.join_member(s)).collect();
    h.advance_until_answered(&tokens);
    let members: Vec<Joined> = specs
        .iter()
        .zip(&tokens)
        .map(|(s, t)| h.joined(s, *t))
        .collect();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap();
    let parked = h.send_sync(follower, &[], 5);
    // A new member arrives before the leader syncs.
    h.join_member(&JoinSpec::new("g", "c"));
    let response = h.expect_sync(parked);
    assert_eq!(response.error_code, code(RebalanceInProgress));
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
}

#[test]
fn next_deadline_tracks_the_earliest_timer() {
    let mut h = Harness::new();
    assert_eq!(h.coord.next_deadline_ms(), None);
    let token = h.join_member(&JoinSpec::new("g", "a"));
    assert_eq!(
        h.coord.next_deadline_ms(),
        Some(h.now + i64::from(INITIAL_DELAY_MS))
    );
    h.advance_until_answered(&[token]);
}

#[test]
fn the_join_phase_lasts_the_longest_rebalance_timeout_of_the_members() {
    let mut h = Harness::new();
    let a = JoinSpec {
        rebalance_timeout_ms: 20_000,
        ..JoinSpec::new("g", "a")
    };
    let b = JoinSpec {
        rebalance_timeout_ms: 40_000,
        ..JoinSpec::new("g", "b")
    };
    let members = h.stable_group_of(&[a.clone(), b]);
    let (leader, follower) = (&members[0], &members[1]);
    assert!(leader.is_leader());
    let token = h.send_join(&a.member(&leader.member_id));
    for _ in 0..7 {
        h.advance(5_000);
        assert_eq!(h.heartbeat(follower), code(RebalanceInProgress));
    }
    h.advance(4_999);
    assert!(
        !h.is_answered(token),
        "not at 20 s, the leader's own timeout"
    );
    h.advance(1);
    let response = h.expect_join(token);
    assert_eq!(response.generation_id, 2);
    assert_eq!(response.members.len(), 1);
}

#[test]
fn a_sync_whose_assignment_cannot_be_written_fails_the_generation_for_every_member() {
    let mut h = Harness::new();
    let members = h.joined_group_of(&[JoinSpec::new("g", "a"), JoinSpec::new("g", "b")]);
    let leader = members.iter().find(|m| m.is_leader()).unwrap().clone();
    let follower = members.iter().find(|m| !m.is_leader()).unwrap().clone();
    let parked = h.send_sync(&follower, &[], 5);
    assert!(!h.is_answered(parked), "a follower waits for the leader");
    let assignment: Vec<(&str, &[u8])> = members
        .iter()
        .map(|m| (m.member_id.as_str(), m.member_id.as_bytes()))
        .collect();
    let leader_token = h.send_sync_write_fails(&leader, &assignment, UnknownServerError);
    for token in [leader_token, parked] {
        let reply = h.expect_sync(token);
        assert_eq!(reply.error_code, code(UnknownServerError));
        assert!(reply.assignment.is_empty());
    }
    assert_eq!(
        h.coord.group_state("g"),
        Some(GroupState::PreparingRebalance)
    );
    assert_eq!(h.heartbeat(&follower), code(RebalanceInProgress));
}
