//! ACLs as the metadata log keeps them (Kafka's `AccessControlEntryRecord` and
//! `RemoveAccessControlEntryRecord`): each ACL has a stable id, so a removal names
//! exactly what it removes and every node applies the same change.
//!
//! The enums carry Kafka's wire codes (`ResourceType`, `PatternType`, `AclOperation`,
//! `AclPermissionType`); a code Kafka does not define reads as `Unknown`. Filters
//! (DescribeAcls, DeleteAcls) match as Kafka's `AclBindingFilter` does. The decisions
//! themselves are in [`crate::authorizer`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::MetadataRecord;

/// The resource name matching every resource of a type (a LITERAL pattern).
pub const WILDCARD_RESOURCE: &str = "*";
/// The principal matching every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The host matching every host.
pub const WILDCARD_HOST: &str = "*";
/// The one name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Declares a Kafka ACL enum with its wire codes; code 0 is always `Unknown`.
macro_rules! kafka_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal, $text:literal;)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant,)*
        }

        impl $name {
            /// Kafka's wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code,)* }
            }

            /// The value of a wire code; codes Kafka does not define are `Unknown`.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name (`TOPIC`, `PREFIXED`, `DESCRIBE_CONFIGS`).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

kafka_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

kafka_enum!(
    /// Kafka's `PatternType`: ACLs are LITERAL or PREFIXED; filters may also say ANY
    /// or MATCH.
    PatternType {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Match = 2, "MATCH";
        Literal = 3, "LITERAL";
        Prefixed = 4, "PREFIXED";
    }
);

kafka_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
        TwoPhaseCommit = 15, "TWO_PHASE_COMMIT";
    }
);

kafka_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermission {
        Unknown = 0, "UNKNOWN";
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

/// One ACL (Kafka's `AclBinding` / `StandardAcl`): who may or may not do what on which
/// resources, from which host. `principal` is `type:name` (`User:alice`, `User:*`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

/// Why an ACL cannot be created (Kafka answers INVALID_REQUEST for each).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("Invalid resourceType {0}")]
    BadResourceType(&'static str),
    #[error("Invalid patternType {0}")]
    BadPatternType(&'static str),
    #[error("Invalid operation {0}")]
    BadOperation(&'static str),
    #[error("Invalid permissionType {0}")]
    BadPermission(&'static str),
    #[error("Invalid empty resource name")]
    EmptyName,
    #[error("The only valid name for the CLUSTER resource is kafka-cluster")]
    ClusterName,
    #[error("Could not parse principal from `{0}` (no colon is present separating the principal type from the principal name)")]
    Principal(String),
    #[error("Unknown patternFilter.")]
    UnknownPatternFilter,
    #[error("Unknown entryFilter.")]
    UnknownEntryFilter,
}

impl Acl {
    /// Kafka's checks of a new ACL (`AclApis.handleCreateAcls` and
    /// `AclControlManager.validateNewAcl`).
    pub fn validate(&self) -> Result<(), AclError> {
        use AclError::*;
        if matches!(
            self.resource_type,
            ResourceType::Unknown | ResourceType::Any
        ) {
            return Err(BadResourceType(self.resource_type.name()));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(BadPatternType(self.pattern_type.name()));
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(BadOperation(self.operation.name()));
        }
        if !matches!(self.permission, AclPermission::Allow | AclPermission::Deny) {
            return Err(BadPermission(self.permission.name()));
        }
        if self.resource_name.is_empty() {
            return Err(EmptyName);
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(ClusterName);
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => Ok(()),
            _ => Err(Principal(self.principal.clone())),
        }
    }
}

/// A filter over ACLs (Kafka's `AclBindingFilter`): `None` names match any name,
/// principal or host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission: AclPermission,
}

impl AclFilter {
    /// Kafka's `AclControlManager.validateFilter`: a filter with an UNKNOWN part.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Unknown || self.pattern_type == PatternType::Unknown
        {
            return Err(AclError::UnknownPatternFilter);
        }
        if self.operation == AclOperation::Unknown || self.permission == AclPermission::Unknown {
            return Err(AclError::UnknownEntryFilter);
        }
        Ok(())
    }

    /// Whether `acl` matches (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, acl: &Acl) -> bool {
        self.matches_pattern(acl) && self.matches_entry(acl)
    }

    fn matches_pattern(&self, acl: &Acl) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != acl.resource_type {
            return false;
        }
        let Some(name) = &self.resource_name else {
            return match self.pattern_type {
                PatternType::Any | PatternType::Match => true,
                other => other == acl.pattern_type,
            };
        };
        match self.pattern_type {
            PatternType::Any => *name == acl.resource_name,
            PatternType::Match => match acl.pattern_type {
                PatternType::Literal => {
                    *name == acl.resource_name || acl.resource_name == WILDCARD_RESOURCE
                }
                PatternType::Prefixed => name.starts_with(acl.resource_name.as_str()),
                _ => false,
            },
            other => other == acl.pattern_type && *name == acl.resource_name,
        }
    }

    fn matches_entry(&self, acl: &Acl) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission == AclPermission::Any || self.permission == acl.permission)
    }
}

/// Decides a CreateAcls request against the current ACLs, as Kafka's controller does:
/// each ACL is checked on its own; an ACL identical to one that exists (or to an
/// earlier one of the same request) succeeds without a record. `new_id` names each
/// new ACL.
pub fn create_acls(
    current: &crate::Acls,
    acls: &[Acl],
    mut new_id: impl FnMut() -> Uuid,
) -> (Vec<MetadataRecord>, Vec<Result<(), AclError>>) {
    let mut records = Vec::new();
    let mut added: Vec<&Acl> = Vec::new();
    let results = acls
        .iter()
        .map(|acl| {
            acl.validate()?;
            if !current.contains(acl) && !added.contains(&acl) {
                added.push(acl);
                records.push(MetadataRecord::AclCreated {
                    id: new_id(),
                    acl: acl.clone(),
                });
            }
            Ok(())
        })
        .collect();
    (records, results)
}

/// Decides a DeleteAcls request: per filter, the ACLs it matches (or why the filter is
/// refused). An ACL matched by two filters is listed under both and removed once.
pub fn delete_acls(
    current: &crate::Acls,
    filters: &[AclFilter],
) -> (Vec<MetadataRecord>, Vec<Result<Vec<Acl>, AclError>>) {
    let mut removed: BTreeMap<Uuid, ()> = BTreeMap::new();
    let results = filters
        .iter()
        .map(|filter| {
            filter.validate()?;
            Ok(current
                .iter()
                .filter(|(_, acl)| filter.matches(acl))
                .map(|(id, acl)| {
                    removed.insert(*id, ());
                    acl.clone()
                })
                .collect())
        })
        .collect();
    let records = removed
        .into_keys()
        .map(|id| MetadataRecord::AclRemoved { id })
        .collect();
    (records, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn acl(rt: ResourceType, name: &str, pt: PatternType, who: &str) -> Acl {
        Acl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation: AclOperation::Read,
            permission: AclPermission::Allow,
        }
    }

    fn filter(rt: ResourceType, name: Option<&str>, pt: PatternType) -> AclFilter {
        AclFilter {
            resource_type: rt,
            resource_name: name.map(Into::into),
            pattern_type: pt,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_read_as_unknown() {
        for c in 0..=7 {
            assert_eq!(ResourceType::from_code(c).code(), c);
        }
        for c in 0..=15 {
            assert_eq!(AclOperation::from_code(c).code(), c);
        }
        assert_eq!(ResourceType::from_code(99), ResourceType::Unknown);
        assert_eq!(PatternType::from_code(-1), PatternType::Unknown);
        assert_eq!(AclPermission::from_code(3), AclPermission::Allow);
    }

    #[test]
    fn kafkas_checks_of_a_new_acl() {
        use PatternType::{Literal, Match};
        use ResourceType::{Cluster, Topic};
        assert_eq!(acl(Topic, "t", Literal, "User:a").validate(), Ok(()));
        let bad = [
            (
                acl(ResourceType::Any, "t", Literal, "User:a"),
                "Invalid resourceType ANY",
            ),
            (
                acl(Topic, "t", Match, "User:a"),
                "Invalid patternType MATCH",
            ),
            (
                acl(Topic, "", Literal, "User:a"),
                "Invalid empty resource name",
            ),
            (
                acl(Cluster, "c", Literal, "User:a"),
                "The only valid name for the CLUSTER resource is kafka-cluster",
            ),
        ];
        for (a, why) in bad {
            assert_eq!(a.validate().unwrap_err().to_string(), why);
        }
        assert!(acl(Topic, "t", Literal, "alice").validate().is_err());
        let mut any_op = acl(Topic, "t", Literal, "User:a");
        any_op.operation = AclOperation::Any;
        assert!(any_op.validate().is_err());
    }

    #[test]
    fn filters_match_as_kafkas_acl_binding_filter() {
        use PatternType::{Literal, Match, Prefixed};
        use ResourceType::{Group, Topic};
        let lit = acl(Topic, "foo", Literal, "User:a");
        let star = acl(Topic, "*", Literal, "User:a");
        let pre = acl(Topic, "fo", Prefixed, "User:a");
        let grp = acl(Group, "foo", Literal, "User:a");
        let m = filter(Topic, Some("foo"), Match);
        assert!(m.matches(&lit) && m.matches(&star) && m.matches(&pre) && !m.matches(&grp));
        let m = filter(Topic, Some("fo"), Match);
        assert!(!m.matches(&lit) && m.matches(&pre));
        let any = filter(ResourceType::Any, None, PatternType::Any);
        assert!([&lit, &star, &pre, &grp].iter().all(|a| any.matches(a)));
        let exact = filter(Topic, Some("foo"), PatternType::Any);
        assert!(exact.matches(&lit) && !exact.matches(&star) && !exact.matches(&pre));
        let prefixed = filter(Topic, None, Prefixed);
        assert!(prefixed.matches(&pre) && !prefixed.matches(&lit));
        let mut who = filter(ResourceType::Any, None, PatternType::Any);
        who.principal = Some("User:b".into());
        assert!(!who.matches(&lit));
        assert!(filter(ResourceType::Unknown, None, PatternType::Any)
            .validate()
            .is_err());
    }

    #[test]
    fn create_and_delete_decide_as_kafkas_controller() {
        use PatternType::{Literal, Prefixed};
        use ResourceType::Topic;
        let mut image = crate::MetadataImage::new(1);
        let mut n = 0u128;
        let mut ids = || {
            n += 1;
            Uuid::from_u128(n)
        };
        let a = acl(Topic, "t", Literal, "User:a");
        let p = acl(Topic, "t", Prefixed, "User:a");
        let bad = acl(Topic, "", Literal, "User:a");
        let (records, results) = create_acls(
            &image.acls,
            &[a.clone(), a.clone(), bad, p.clone()],
            &mut ids,
        );
        assert_eq!(records.len(), 2, "an identical ACL is created once");
        assert!(results[0].is_ok() && results[1].is_ok() && results[3].is_ok());
        assert_eq!(results[2], Err(AclError::EmptyName));
        for r in &records {
            image.apply(r);
        }
        let (again, _) = create_acls(&image.acls, std::slice::from_ref(&a), &mut ids);
        assert!(again.is_empty(), "it exists already");
        // Two filters matching the same ACL remove it once; a bad filter is refused.
        let literal = filter(Topic, Some("t"), Literal);
        let mut unknown = literal.clone();
        unknown.operation = AclOperation::Unknown;
        let (records, results) = delete_acls(&image.acls, &[literal.clone(), literal, unknown]);
        assert_eq!(
            records,
            [MetadataRecord::AclRemoved {
                id: Uuid::from_u128(1)
            }]
        );
        assert_eq!(results[0], Ok(vec![a.clone()]));
        assert_eq!(results[1], Ok(vec![a]));
        assert_eq!(results[2], Err(AclError::UnknownEntryFilter));
        for r in &records {
            image.apply(r);
        }
        assert_eq!(image.acls.len(), 1);
        // The image's ACLs survive its snapshot form.
        let json = serde_json::to_string(&image).unwrap();
        let back: crate::MetadataImage = serde_json::from_str(&json).unwrap();
        assert!(back.acls.contains(&p) && back.acls.len() == 1);
        assert_eq!(back.acls.changed_at(), image.acls.changed_at());
    }
}
