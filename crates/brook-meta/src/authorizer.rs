//! Kafka's `StandardAuthorizer` decisions over the image's ACLs, pure: a principal,
//! its client's host, an operation and a resource in; allowed or not out.
//!
//! The rules, as `StandardAuthorizerData` has them:
//! - a principal in `super.users` may do anything;
//! - the ACLs that apply to a resource are its LITERAL ACLs, the LITERAL `*` ACLs of its
//!   type, and the PREFIXED ACLs whose name starts the resource's name; of those, the
//!   ones for the principal (or `User:*`) and the client's host (or `*`) decide;
//! - one matching DENY denies; otherwise one matching ALLOW allows; otherwise, if no
//!   ACL at all applies to the resource (for anyone), `allow.everyone.if.no.acl.found`
//!   decides; otherwise denied;
//! - an ALLOW for ALL allows everything and a DENY for ALL denies everything; an ALLOW
//!   for READ, WRITE, DELETE or ALTER also allows DESCRIBE, and one for ALTER_CONFIGS
//!   allows DESCRIBE_CONFIGS. A DENY denies only its own operation (a DENY for READ
//!   leaves DESCRIBE alone).
//!
//! [`Acls`] indexes the ACLs by resource type, pattern type and name, so a decision
//! looks up the resource's name, the wildcard and each prefix of the name, and never
//! scans ACLs of other resources.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::acl::{
    Acl, AclOperation, AclPermission, PatternType, ResourceType, WILDCARD_HOST, WILDCARD_PRINCIPAL,
    WILDCARD_RESOURCE,
};

/// Where ACLs are found: by resource type, pattern type and resource name.
type ResourceKey = (ResourceType, PatternType, String);

/// Every ACL of the cluster, by id and indexed by resource. Persistent maps: a clone
/// of the image shares them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AclsRepr", into = "AclsRepr")]
pub struct Acls {
    by_id: imbl::OrdMap<Uuid, Acl>,
    by_resource: imbl::OrdMap<ResourceKey, imbl::OrdMap<Uuid, Acl>>,
    /// Resource types that have PREFIXED ACLs (a decision skips prefix lookups
    /// otherwise).
    prefixed: imbl::OrdMap<ResourceType, usize>,
    /// The image's record count when the ACLs last changed: a decision cached under
    /// another value is stale.
    changed_at: u64,
}

/// How the ACLs are written in snapshots: by id, with the change counter.
#[derive(Serialize, Deserialize)]
struct AclsRepr {
    #[serde(default)]
    acls: std::collections::BTreeMap<Uuid, Acl>,
    #[serde(default)]
    changed_at: u64,
}

impl From<AclsRepr> for Acls {
    fn from(repr: AclsRepr) -> Self {
        let mut acls = Acls::default();
        for (id, acl) in repr.acls {
            acls.insert(id, acl, repr.changed_at);
        }
        acls.changed_at = repr.changed_at;
        acls
    }
}

impl From<Acls> for AclsRepr {
    fn from(acls: Acls) -> Self {
        AclsRepr {
            acls: acls.by_id.into_iter().collect(),
            changed_at: acls.changed_at,
        }
    }
}

impl Acls {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Changes whenever an ACL is added or removed.
    pub fn changed_at(&self) -> u64 {
        self.changed_at
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Uuid, &Acl)> {
        self.by_id.iter()
    }

    /// Whether an identical ACL exists (under any id).
    pub fn contains(&self, acl: &Acl) -> bool {
        self.by_resource
            .get(&key(acl))
            .is_some_and(|m| m.values().any(|a| a == acl))
    }

    pub(crate) fn insert(&mut self, id: Uuid, acl: Acl, at: u64) {
        self.remove(&id, at);
        if acl.pattern_type == PatternType::Prefixed {
            *self.prefixed.entry(acl.resource_type).or_default() += 1;
        }
        self.by_resource
            .entry(key(&acl))
            .or_default()
            .insert(id, acl.clone());
        self.by_id.insert(id, acl);
        self.changed_at = at;
    }

    pub(crate) fn remove(&mut self, id: &Uuid, at: u64) {
        let Some(acl) = self.by_id.remove(id) else {
            return;
        };
        let k = key(&acl);
        if let Some(m) = self.by_resource.get_mut(&k) {
            m.remove(id);
            if m.is_empty() {
                self.by_resource.remove(&k);
            }
        }
        if acl.pattern_type == PatternType::Prefixed {
            if let Some(n) = self.prefixed.get_mut(&acl.resource_type) {
                *n -= 1;
                if *n == 0 {
                    self.prefixed.remove(&acl.resource_type);
                }
            }
        }
        self.changed_at = at;
    }

    /// The ACLs that apply to a resource: its literal ones, the wildcard's, and the
    /// prefixed ones whose name starts `name`.
    fn applying<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Acl> + 'a {
        let get = move |pattern, n: &str| {
            self.by_resource
                .get(&(resource_type, pattern, n.to_string()))
                .into_iter()
                .flat_map(|m| m.values())
        };
        let prefixes = self
            .prefixed
            .contains_key(&resource_type)
            .then(|| {
                name.char_indices()
                    .map(|(i, c)| &name[..i + c.len_utf8()])
                    .flat_map(move |p| get(PatternType::Prefixed, p))
            })
            .into_iter()
            .flatten();
        let wildcard = (name != WILDCARD_RESOURCE)
            .then(|| get(PatternType::Literal, WILDCARD_RESOURCE))
            .into_iter()
            .flatten();
        get(PatternType::Literal, name)
            .chain(prefixes)
            .chain(wildcard)
    }

    /// All ACLs of one resource type.
    fn of_type(&self, resource_type: ResourceType) -> impl Iterator<Item = &Acl> {
        let from = (resource_type, PatternType::Unknown, String::new());
        self.by_resource
            .range(from..)
            .take_while(move |((t, _, _), _)| *t == resource_type)
            .flat_map(|(_, m)| m.values())
    }
}

fn key(acl: &Acl) -> ResourceKey {
    (
        acl.resource_type,
        acl.pattern_type,
        acl.resource_name.clone(),
    )
}

/// Who asks: the principal as `type:name` and the client's address (no leading `/`).
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

impl Requester<'_> {
    fn matches(&self, acl: &Acl) -> bool {
        (acl.principal == self.principal || acl.principal == WILDCARD_PRINCIPAL)
            && host_matches(&acl.host, self.host)
    }
}

/// Whether an ACL's host covers the client's address: `*`, the same text, or the same
/// address written another way (`0:0:0:0:0:0:0:1`, as Kafka's Java tools write IPv6
/// addresses, is `::1`; an IPv4-mapped IPv6 address is its IPv4 address).
fn host_matches(acl_host: &str, client: &str) -> bool {
    if acl_host == WILDCARD_HOST || acl_host == client {
        return true;
    }
    match (
        acl_host.parse::<std::net::IpAddr>(),
        client.parse::<std::net::IpAddr>(),
    ) {
        (Ok(a), Ok(c)) => a.to_canonical() == c.to_canonical(),
        _ => false,
    }
}

/// The authorizer's settings: `super.users` and `allow.everyone.if.no.acl.found`.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    super_users: HashSet<String>,
    allow_if_no_acl: bool,
}

impl Authorizer {
    /// `super_users` as Kafka writes it: `User:alice;User:bob`.
    pub fn new(super_users: &str, allow_if_no_acl: bool) -> Self {
        Authorizer {
            super_users: super_users
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            allow_if_no_acl,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// Whether `who` may do `op` on the resource `resource_type` `name`.
    pub fn authorize(
        &self,
        acls: &Acls,
        who: Requester<'_>,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(who.principal) {
            return true;
        }
        let mut any_acl = false;
        let mut allowed = false;
        for acl in acls.applying(resource_type, name) {
            any_acl = true;
            if !who.matches(acl) {
                continue;
            }
            match acl.permission {
                AclPermission::Deny
                    if acl.operation == AclOperation::All || acl.operation == op =>
                {
                    return false
                }
                AclPermission::Allow if allows(acl.operation, op) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_acl && self.allow_if_no_acl)
    }

    /// Whether `who` may do `op` on at least one resource of the type (Kafka's
    /// `Authorizer.authorizeByResourceType`): an ALLOW for the operation (or ALL) on some
    /// name or prefix that no DENY of the principal covers. InitProducerId without a
    /// transactional id asks this of WRITE on topics.
    pub fn authorize_any(
        &self,
        acls: &Acls,
        who: Requester<'_>,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        // Kafka first asks about one made-up literal name: super users, and no ACLs
        // with allow.everyone.if.no.acl.found, pass here.
        if self.authorize(acls, who, op, resource_type, "hardcode") {
            return true;
        }
        let mut deny_literal = HashSet::new();
        let mut deny_prefix = Vec::new();
        let mut allow = Vec::new();
        for acl in acls.of_type(resource_type) {
            if !who.matches(acl) || (acl.operation != op && acl.operation != AclOperation::All) {
                continue;
            }
            let name = acl.resource_name.as_str();
            match (acl.permission, acl.pattern_type) {
                (AclPermission::Deny, PatternType::Literal) if name == WILDCARD_RESOURCE => {
                    return false
                }
                (AclPermission::Deny, PatternType::Literal) => {
                    deny_literal.insert(name);
                }
                (AclPermission::Deny, PatternType::Prefixed) => deny_prefix.push(name),
                (AclPermission::Allow, PatternType::Literal) if name == WILDCARD_RESOURCE => {
                    return true
                }
                (AclPermission::Allow, pattern) => allow.push((pattern, name)),
                _ => {}
            }
        }
        let denied = |pattern: PatternType, name: &str| {
            (pattern == PatternType::Literal && deny_literal.contains(name))
                || deny_prefix.iter().any(|d| name.starts_with(d))
        };
        allow.iter().any(|(pattern, name)| !denied(*pattern, name))
    }
}

/// Whether an ALLOW ACL for `granted` allows `op` (Kafka's implied operations).
fn allows(granted: AclOperation, op: AclOperation) -> bool {
    use AclOperation::*;
    granted == All
        || granted == op
        || (op == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (op == DescribeConfigs && granted == AlterConfigs)
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
