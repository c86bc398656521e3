use kafka_protocol::error::ResponseError;
use kafka_protocol::error::ResponseError::*;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, DescribeGroupsResponse, ListGroupsRequest,
};

use super::*;
use crate::GroupState;

pub(super) fn describe(h: &Harness, version: i16, groups: &[&str]) -> DescribeGroupsResponse {
    let mut request = DescribeGroupsRequest::default();
    request.groups = groups.iter().map(|g| s(g).into()).collect();
    let response = h.coord.describe_groups(version, &request);
    assert_encodes(&response, version);
    response
}

/// (group id, protocol type, state, type) as ListGroups reports them.
pub(super) fn list(
    h: &Harness,
    version: i16,
    states: &[&str],
    types: &[&str],
) -> Vec<(String, String, String, String)> {
    let mut request = ListGroupsRequest::default();
    request.states_filter = states.iter().map(|x| s(x)).collect();
    request.types_filter = types.iter().map(|x| s(x)).collect();
    let response = h.coord.list_groups(version, &request);
    assert_encodes(&response, version);
    assert_eq!(response.error_code, NONE);
    response
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.protocol_type.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect()
}

/// Groups "empty" (offsets only), "stable" and "rebalancing".
fn three_groups(h: &mut Harness) -> Vec<Joined> {
    h.commit("empty", "", -1, &[("t", 0, 1, None)], 8);
    h.stable_group("rebalancing", &["r"]);
    h.join_member(&JoinSpec::new("rebalancing", "late"));
    h.stable_group("stable", &["a", "b"])
}

#[test]
fn list_groups_filters_by_state_and_type() {
    let mut h = Harness::new();
    three_groups(&mut h);
    let row = |id: &str, protocol: &str, state: &str| {
        (
            id.to_string(),
            protocol.to_string(),
            state.to_string(),
            "classic".to_string(),
        )
    };
    let all = [
        row("empty", "", "Empty"),
        row("rebalancing", "consumer", "PreparingRebalance"),
        row("stable", "consumer", "Stable"),
    ];
    let cases: &[(&[&str], &[&str], &[usize])] = &[
        (&[], &[], &[0, 1, 2]),
        (&["Stable"], &[], &[2]),
        (&["STABLE", "empty"], &[], &[0, 2]),
        (&["Dead"], &[], &[]),
        (&[], &["Classic"], &[0, 1, 2]),
        (&[], &["consumer"], &[]),
        (&["preparingrebalance"], &["classic", "share"], &[1]),
    ];
    for (states, types, expected) in cases {
        let expected: Vec<_> = expected.iter().map(|i| all[*i].clone()).collect();
        assert_eq!(list(&h, 5, states, types), expected, "{states:?} {types:?}");
    }
    // Older versions have neither the state nor the type.
    let v3 = list(&h, 3, &[], &[]);
    assert_eq!(v3.len(), 3);
    assert!(v3
        .iter()
        .all(|(_, _, state, kind)| state.is_empty() && kind.is_empty()));
    let v4 = list(&h, 4, &["Empty"], &[]);
    assert_eq!(v4, [("empty".into(), "".into(), "Empty".into(), "".into())]);
}

#[test]
fn describe_groups_in_each_state() {
    let mut h = Harness::new();
    let stable = three_groups(&mut h);
    for version in 0..=6 {
        let response = describe(
            &h,
            version,
            &["stable", "rebalancing", "empty", "unknown", ""],
        );
        let summary: Vec<(String, String, String, String, usize)> = response
            .groups
            .iter()
            .map(|g| {
                // Kafka 4: v6+ says an unknown group is not found; earlier, only Dead.
                let unknown = g.group_state.as_str() == "Dead";
                let expected_error = if unknown && version >= 6 {
                    ResponseError::GroupIdNotFound.code()
                } else {
                    NONE
                };
                assert_eq!(g.error_code, expected_error);
                (
                    g.group_id.to_string(),
                    g.group_state.to_string(),
                    g.protocol_type.to_string(),
                    g.protocol_data.to_string(),
                    g.members.len(),
                )
            })
            .collect();
        let expected = [
            ("stable", "Stable", "consumer", "range", 2),
            ("rebalancing", "PreparingRebalance", "consumer", "", 2),
            ("empty", "Empty", "", "", 0),
            ("unknown", "Dead", "", "", 0),
            ("", "Dead", "", "", 0),
        ]
        .map(|(a, b, c, d, e)| {
            (
                a.to_string(),
                b.to_string(),
                c.to_string(),
                d.to_string(),
                e,
            )
        });
        assert_eq!(summary, expected, "v{version}");

        // A Stable group shows what members subscribed and were assigned.
        for member in &response.groups[0].members {
            let joined = stable
                .iter()
                .find(|m| m.member_id == member.member_id.as_str())
                .unwrap();
            assert_eq!(member.member_metadata, subscription(&["orders"]));
            assert_eq!(member.member_assignment, joined.member_id.as_bytes());
            assert_eq!(member.client_host.as_str(), "/127.0.0.1");
            assert!(["a", "b"].contains(&member.client_id.as_str()));
        }
        // A rebalancing group shows its members without them.
        for member in &response.groups[1].members {
            assert!(member.member_metadata.is_empty());
            assert!(member.member_assignment.is_empty());
        }
    }
}

#[test]
fn describe_shows_static_instance_ids_from_v4() {
    let mut h = Harness::new();
    h.stable_group_of(&[JoinSpec::new("g", "c").instance("i")]);
    let instance = |version| {
        describe(&h, version, &["g"]).groups[0].members[0]
            .group_instance_id
            .as_ref()
            .map(|i| i.to_string())
    };
    assert_eq!(instance(3), None);
    assert_eq!(instance(4), Some("i".to_string()));
}

#[test]
fn delete_groups() {
    let mut h = Harness::new();
    three_groups(&mut h);
    h.commit("empty", "", -1, &[("t", 1, 1, None), ("u", 0, 1, None)], 8);
    let records_before = h.log.len();
    let mut request = DeleteGroupsRequest::default();
    request.groups_names = ["empty", "stable", "rebalancing", "unknown", "empty"]
        .iter()
        .map(|g| s(g).into())
        .collect();
    let (response, records) = h.coord.delete_groups(2, &request);
    assert_encodes(&response, 2);
    let results: Vec<(String, i16)> = response
        .results
        .iter()
        .map(|r| (r.group_id.to_string(), r.error_code))
        .collect();
    assert_eq!(
        results,
        [
            ("empty".into(), NONE),
            ("stable".into(), code(NonEmptyGroup)),
            ("rebalancing".into(), code(NonEmptyGroup)),
            ("unknown".into(), code(GroupIdNotFound)),
            ("empty".into(), code(GroupIdNotFound)),
        ]
    );
    // Three offset tombstones and the group's.
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.value.is_none()));
    assert_eq!(h.log.len(), records_before);
    assert_eq!(h.coord.group_state("empty"), None);
    assert_eq!(h.coord.group_state("stable"), Some(GroupState::Stable));
}
