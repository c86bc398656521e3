use super::*;
use crate::acl::{Acl, AclOperation as Op, AclPermission as Perm, PatternType as Pt};

fn acl(rt: ResourceType, name: &str, pt: Pt, who: &str, op: Op, perm: Perm) -> Acl {
    Acl {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pt,
        principal: who.into(),
        host: "*".into(),
        operation: op,
        permission: perm,
    }
}

fn acls(list: &[Acl]) -> Acls {
    let mut acls = Acls::default();
    for (i, a) in list.iter().enumerate() {
        acls.insert(Uuid::from_u128(i as u128 + 1), a.clone(), i as u64);
    }
    acls
}

const ALICE: Requester<'static> = Requester {
    principal: "User:alice",
    host: "10.0.0.1",
};

fn topic(a: &Authorizer, acls: &Acls, who: Requester<'_>, op: Op, name: &str) -> bool {
    a.authorize(acls, who, op, ResourceType::Topic, name)
}

use ResourceType::{Group, Topic};

#[test]
fn no_acls_deny_unless_allow_everyone_if_no_acl_found() {
    let none = Acls::default();
    assert!(!topic(
        &Authorizer::new("", false),
        &none,
        ALICE,
        Op::Read,
        "t"
    ));
    assert!(topic(
        &Authorizer::new("", true),
        &none,
        ALICE,
        Op::Read,
        "t"
    ));
    // An ACL for someone else on the resource ends "no ACL found".
    let bobs = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "User:bob",
        Op::Read,
        Perm::Allow,
    )]);
    assert!(!topic(
        &Authorizer::new("", true),
        &bobs,
        ALICE,
        Op::Read,
        "t"
    ));
    assert!(topic(
        &Authorizer::new("", true),
        &bobs,
        ALICE,
        Op::Read,
        "u"
    ));
}

#[test]
fn super_users_may_do_anything() {
    let a = Authorizer::new("User:bob; User:alice", false);
    let deny = acls(&[acl(Topic, "*", Pt::Literal, "User:*", Op::All, Perm::Deny)]);
    assert!(topic(&a, &deny, ALICE, Op::Write, "t"));
    assert!(!topic(
        &a,
        &deny,
        Requester {
            principal: "User:carol",
            host: "h"
        },
        Op::Write,
        "t"
    ));
    assert!(!Authorizer::new("User:alicex", false).is_super_user("User:alice"));
}

#[test]
fn literal_prefixed_and_wildcard_resources() {
    let a = Authorizer::default();
    let set = acls(&[
        acl(
            Topic,
            "orders",
            Pt::Literal,
            "User:alice",
            Op::Read,
            Perm::Allow,
        ),
        acl(
            Topic,
            "pay-",
            Pt::Prefixed,
            "User:alice",
            Op::Write,
            Perm::Allow,
        ),
        acl(Group, "*", Pt::Literal, "User:alice", Op::Read, Perm::Allow),
    ]);
    assert!(topic(&a, &set, ALICE, Op::Read, "orders"));
    assert!(!topic(&a, &set, ALICE, Op::Read, "orders2"));
    assert!(!topic(&a, &set, ALICE, Op::Read, "order"));
    assert!(topic(&a, &set, ALICE, Op::Write, "pay-eu"));
    assert!(topic(&a, &set, ALICE, Op::Write, "pay-"));
    assert!(!topic(&a, &set, ALICE, Op::Write, "pay"));
    assert!(a.authorize(&set, ALICE, Op::Read, Group, "any-group"));
    assert!(!topic(&a, &set, ALICE, Op::Read, "any-group"));
    // A literal ACL named like a prefix does not match longer names.
    let lit = acls(&[acl(
        Topic,
        "pay",
        Pt::Literal,
        "User:alice",
        Op::Read,
        Perm::Allow,
    )]);
    assert!(!topic(&a, &lit, ALICE, Op::Read, "payx"));
}

#[test]
fn principal_and_host_matching() {
    let a = Authorizer::default();
    let mut from_host = acl(Topic, "t", Pt::Literal, "User:*", Op::Read, Perm::Allow);
    from_host.host = "10.0.0.1".into();
    let set = acls(&[from_host]);
    assert!(topic(&a, &set, ALICE, Op::Read, "t"));
    let elsewhere = Requester {
        principal: "User:alice",
        host: "10.0.0.2",
    };
    assert!(!topic(&a, &set, elsewhere, Op::Read, "t"));
    let bob = Requester {
        principal: "User:bob",
        host: "10.0.0.1",
    };
    assert!(topic(&a, &set, bob, Op::Read, "t"));
    // IPv6 addresses match however they are written (Kafka's Java tools write them in
    // full); an IPv4-mapped address is its IPv4 address.
    let mut v6 = acl(Topic, "t6", Pt::Literal, "User:*", Op::Read, Perm::Allow);
    v6.host = "0:0:0:0:0:0:0:1".into();
    let set6 = acls(&[v6, {
        let mut v4 = acl(Topic, "t4", Pt::Literal, "User:*", Op::Read, Perm::Allow);
        v4.host = "127.0.0.1".into();
        v4
    }]);
    let loopback6 = Requester {
        principal: "User:alice",
        host: "::1",
    };
    assert!(topic(&a, &set6, loopback6, Op::Read, "t6"));
    assert!(!topic(&a, &set6, loopback6, Op::Read, "t4"));
    let mapped = Requester {
        principal: "User:alice",
        host: "::ffff:127.0.0.1",
    };
    assert!(topic(&a, &set6, mapped, Op::Read, "t4"));
    assert!(!topic(&a, &set6, mapped, Op::Read, "t6"));
    // `User:*` is only the wildcard principal: `Group:*` matches nobody here.
    let other = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "Group:*",
        Op::Read,
        Perm::Allow,
    )]);
    assert!(!topic(&a, &other, ALICE, Op::Read, "t"));
}

#[test]
fn deny_wins_and_denies_only_its_operation() {
    let a = Authorizer::default();
    let set = acls(&[
        acl(Topic, "*", Pt::Literal, "User:*", Op::All, Perm::Allow),
        acl(
            Topic,
            "secret",
            Pt::Prefixed,
            "User:alice",
            Op::Read,
            Perm::Deny,
        ),
    ]);
    assert!(topic(&a, &set, ALICE, Op::Read, "public"));
    assert!(!topic(&a, &set, ALICE, Op::Read, "secret-1"));
    // A DENY for READ does not deny DESCRIBE, which the ALL allow grants.
    assert!(topic(&a, &set, ALICE, Op::Describe, "secret-1"));
    assert!(topic(&a, &set, ALICE, Op::Write, "secret-1"));
    let all = acls(&[
        acl(Topic, "t", Pt::Literal, "User:alice", Op::Read, Perm::Allow),
        acl(Topic, "*", Pt::Literal, "User:*", Op::All, Perm::Deny),
    ]);
    assert!(!topic(&a, &all, ALICE, Op::Read, "t"));
    assert!(!topic(&a, &all, ALICE, Op::Describe, "t"));
}

#[test]
fn implied_operations_as_kafka() {
    let a = Authorizer::default();
    for granted in [Op::Read, Op::Write, Op::Delete, Op::Alter, Op::Describe] {
        let set = acls(&[acl(
            Topic,
            "t",
            Pt::Literal,
            "User:alice",
            granted,
            Perm::Allow,
        )]);
        assert!(topic(&a, &set, ALICE, Op::Describe, "t"), "{granted:?}");
        assert!(
            !topic(&a, &set, ALICE, Op::DescribeConfigs, "t"),
            "{granted:?}"
        );
    }
    let set = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "User:alice",
        Op::AlterConfigs,
        Perm::Allow,
    )]);
    assert!(topic(&a, &set, ALICE, Op::DescribeConfigs, "t"));
    assert!(!topic(&a, &set, ALICE, Op::Describe, "t"));
    let set = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "User:alice",
        Op::Create,
        Perm::Allow,
    )]);
    assert!(!topic(&a, &set, ALICE, Op::Describe, "t"));
    let set = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "User:alice",
        Op::Describe,
        Perm::Allow,
    )]);
    assert!(!topic(&a, &set, ALICE, Op::Read, "t"));
    let set = acls(&[acl(
        Topic,
        "t",
        Pt::Literal,
        "User:alice",
        Op::All,
        Perm::Allow,
    )]);
    for op in [
        Op::Read,
        Op::Write,
        Op::Create,
        Op::Delete,
        Op::AlterConfigs,
    ] {
        assert!(topic(&a, &set, ALICE, op, "t"));
    }
}

#[test]
fn authorize_any_follows_kafkas_by_resource_type() {
    let a = Authorizer::default();
    let w = |name: &str, pt, perm| acl(Topic, name, pt, "User:alice", Op::Write, perm);
    assert!(!a.authorize_any(&Acls::default(), ALICE, Op::Write, Topic));
    assert!(Authorizer::new("", true).authorize_any(&Acls::default(), ALICE, Op::Write, Topic));
    assert!(a.authorize_any(
        &acls(&[w("t", Pt::Literal, Perm::Allow)]),
        ALICE,
        Op::Write,
        Topic
    ));
    let denied = acls(&[
        w("t", Pt::Literal, Perm::Allow),
        w("t", Pt::Literal, Perm::Deny),
    ]);
    assert!(!a.authorize_any(&denied, ALICE, Op::Write, Topic));
    let dominated = acls(&[
        w("ab", Pt::Prefixed, Perm::Allow),
        w("a", Pt::Prefixed, Perm::Deny),
    ]);
    assert!(!a.authorize_any(&dominated, ALICE, Op::Write, Topic));
    let open = acls(&[
        w("a", Pt::Prefixed, Perm::Allow),
        w("ab", Pt::Prefixed, Perm::Deny),
    ]);
    assert!(a.authorize_any(&open, ALICE, Op::Write, Topic));
    let star = acls(&[
        w("*", Pt::Literal, Perm::Deny),
        w("x", Pt::Literal, Perm::Allow),
    ]);
    assert!(!a.authorize_any(&star, ALICE, Op::Write, Topic));
    assert!(!a.authorize_any(
        &acls(&[w("t", Pt::Literal, Perm::Allow)]),
        ALICE,
        Op::Read,
        Topic
    ));
}

#[test]
fn the_index_follows_removals_and_survives_serde() {
    let a = Authorizer::default();
    let mut set = acls(&[
        acl(
            Topic,
            "p",
            Pt::Prefixed,
            "User:alice",
            Op::Read,
            Perm::Allow,
        ),
        acl(Topic, "p", Pt::Prefixed, "User:alice", Op::Read, Perm::Deny),
    ]);
    assert!(!topic(&a, &set, ALICE, Op::Read, "pq"));
    set.remove(&Uuid::from_u128(2), 9);
    assert_eq!(set.changed_at(), 9);
    assert!(topic(&a, &set, ALICE, Op::Read, "pq"));
    let json = serde_json::to_string(&set).unwrap();
    let back: Acls = serde_json::from_str(&json).unwrap();
    assert_eq!(back, set);
    assert!(topic(&a, &back, ALICE, Op::Read, "pq"));
    set.remove(&Uuid::from_u128(1), 10);
    assert!(set.is_empty() && set.prefixed.is_empty() && set.by_resource.is_empty());
}
