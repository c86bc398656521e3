//! Client quotas as the metadata log keeps them (Kafka's `QuotaRecord`,
//! `ClientQuotaControlManager` and `ClientQuotasImage`): per entity (a user, a client
//! id, both, an IP, or the defaults of those), a value per quota key.
//!
//! What the broker does with them (rates, throttling) is the broker's; here are the
//! checks AlterClientQuotas makes, the image, the DescribeClientQuotas filter and the
//! precedence that picks the quota applying to a `(user, client-id)` pair.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::MetadataRecord;

pub const USER: &str = "user";
pub const CLIENT_ID: &str = "client-id";
pub const IP: &str = "ip";

/// The byte-rate quota of Produce requests (bytes per second).
pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
/// The byte-rate quota of Fetch responses (bytes per second).
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The share of one request-handling thread's time, in percent (KIP-124).
pub const REQUEST_PERCENTAGE: &str = "request_percentage";
/// Partition mutations per second of CreateTopics/CreatePartitions/DeleteTopics
/// (KIP-599).
pub const CONTROLLER_MUTATION_RATE: &str = "controller_mutation_rate";
/// New connections per second from one IP (KIP-612).
pub const CONNECTION_CREATION_RATE: &str = "connection_creation_rate";

/// A quota key and whether its value must be a whole number (Kafka's LONG and INT
/// quota configs; the others are DOUBLE).
const CLIENT_KEYS: &[(&str, bool)] = &[
    (PRODUCER_BYTE_RATE, true),
    (CONSUMER_BYTE_RATE, true),
    (REQUEST_PERCENTAGE, false),
    (CONTROLLER_MUTATION_RATE, false),
];
const IP_KEYS: &[(&str, bool)] = &[(CONNECTION_CREATION_RATE, true)];

/// A quota entity: each entity type at most once, a `None` name being that type's
/// default (`--entity-default`). Kept sorted by type, so equal entities compare equal.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaEntity(pub BTreeMap<String, Option<String>>);

impl QuotaEntity {
    pub fn of(parts: &[(&str, Option<&str>)]) -> Self {
        QuotaEntity(
            parts
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
        )
    }

    /// The name given for `entity_type`: `None` when the entity has no such part,
    /// `Some(None)` for its default.
    pub fn part(&self, entity_type: &str) -> Option<Option<&str>> {
        self.0.get(entity_type).map(Option::as_deref)
    }
}

/// A quota value. Kafka keeps doubles; equality is bitwise so records and images can
/// be compared.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}

/// An entity and its quotas, borrowed from [`ClientQuotas`].
pub type QuotaEntityRef<'a> = (&'a QuotaEntity, &'a BTreeMap<String, QuotaValue>);

/// Every entity's quotas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<QuotaEntry>", into = "Vec<QuotaEntry>")]
pub struct ClientQuotas {
    entities: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

/// How [`ClientQuotas`] serializes: JSON maps need string keys.
#[derive(Serialize, Deserialize)]
struct QuotaEntry {
    entity: QuotaEntity,
    values: BTreeMap<String, QuotaValue>,
}

impl From<Vec<QuotaEntry>> for ClientQuotas {
    fn from(entries: Vec<QuotaEntry>) -> Self {
        ClientQuotas {
            entities: entries.into_iter().map(|e| (e.entity, e.values)).collect(),
        }
    }
}

impl From<ClientQuotas> for Vec<QuotaEntry> {
    fn from(q: ClientQuotas) -> Self {
        q.entities
            .into_iter()
            .map(|(entity, values)| QuotaEntry { entity, values })
            .collect()
    }
}

/// Which quota of a `(user, client-id)` pair: the three Kafka enforces per request,
/// and the controller's partition mutations (KIP-599).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QuotaKind {
    Produce,
    Fetch,
    Request,
    ControllerMutation,
}

impl QuotaKind {
    pub fn key(self) -> &'static str {
        match self {
            QuotaKind::Produce => PRODUCER_BYTE_RATE,
            QuotaKind::Fetch => CONSUMER_BYTE_RATE,
            QuotaKind::Request => REQUEST_PERCENTAGE,
            QuotaKind::ControllerMutation => CONTROLLER_MUTATION_RATE,
        }
    }
}

/// The quota that applies to a client and what its usage is counted under (Kafka's
/// metric tags): clients sharing a user-level quota share one rate.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedQuota {
    /// The user tag: the user for a quota set on a user (or the users' default),
    /// empty for one set on client ids alone.
    pub user: String,
    /// The client-id tag: empty for a quota set on users alone.
    pub client_id: String,
    pub limit: f64,
}

impl ClientQuotas {
    pub fn is_empty(&self) -> bool {
        self.entities.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entities.len()
    }

    pub fn get(&self, entity: &QuotaEntity) -> Option<&BTreeMap<String, QuotaValue>> {
        self.entities.get(entity)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&QuotaEntity, &BTreeMap<String, QuotaValue>)> {
        self.entities.iter()
    }

    /// Applies one record's change (Kafka's `ClientQuotaControlManager.replay`).
    pub fn apply(&mut self, entity: &QuotaEntity, key: &str, value: Option<QuotaValue>) {
        match value {
            Some(v) => {
                self.entities
                    .entry(entity.clone())
                    .or_default()
                    .insert(key.to_string(), v);
            }
            None => {
                if let Some(values) = self.entities.get_mut(entity) {
                    values.remove(key);
                    if values.is_empty() {
                        self.entities.remove(entity);
                    }
                }
            }
        }
    }

    /// The quota of `kind` for `user` connecting as `client_id`, by Kafka's precedence
    /// (`DefaultQuotaCallback`): user and client id, user and default client id, user,
    /// default user and client id, default user and default client id, default user,
    /// client id, default client id. `None`: unlimited.
    pub fn resolve(&self, kind: QuotaKind, user: &str, client_id: &str) -> Option<ResolvedQuota> {
        if self.entities.is_empty() {
            return None;
        }
        let key = kind.key();
        let (u, c) = (Some(user), Some(client_id));
        // (user part, client-id part, whether the user / client id is a tag)
        type Part<'a> = Option<Option<&'a str>>;
        let order: [(Part<'_>, Part<'_>, bool, bool); 8] = [
            (Some(u), Some(c), true, true),
            (Some(u), Some(None), true, true),
            (Some(u), None, true, false),
            (Some(None), Some(c), true, true),
            (Some(None), Some(None), true, true),
            (Some(None), None, true, false),
            (None, Some(c), false, true),
            (None, Some(None), false, true),
        ];
        order
            .into_iter()
            .find_map(|(user_part, client_part, ut, ct)| {
                let mut entity = BTreeMap::new();
                if let Some(name) = user_part {
                    entity.insert(USER.to_string(), name.map(str::to_string));
                }
                if let Some(name) = client_part {
                    entity.insert(CLIENT_ID.to_string(), name.map(str::to_string));
                }
                let limit = self.entities.get(&QuotaEntity(entity))?.get(key)?.0;
                Some(ResolvedQuota {
                    user: if ut { user.to_string() } else { String::new() },
                    client_id: if ct {
                        client_id.to_string()
                    } else {
                        String::new()
                    },
                    limit,
                })
            })
    }

    /// The connection-creation rate allowed from `ip`: its own quota, else the IPs'
    /// default. An address matches however its quota's entity wrote it (`::1` or
    /// `0:0:0:0:0:0:0:1`; an IPv4-mapped address is its IPv4 address).
    pub fn ip_connection_rate(&self, ip: &IpAddr) -> Option<f64> {
        if self.entities.is_empty() {
            return None;
        }
        let ip = ip.to_canonical();
        let rate = |e: &QuotaEntity| Some(self.entities.get(e)?.get(CONNECTION_CREATION_RATE)?.0);
        rate(&QuotaEntity::of(&[(IP, Some(&ip.to_string()))]))
            .or_else(|| {
                self.entities.iter().find_map(|(entity, values)| {
                    let name = entity.part(IP)??;
                    let same = name.parse::<IpAddr>().ok()?.to_canonical() == ip;
                    same.then(|| values.get(CONNECTION_CREATION_RATE).map(|v| v.0))?
                })
            })
            .or_else(|| rate(&QuotaEntity::of(&[(IP, None)])))
    }

    /// The entities a DescribeClientQuotas filter selects, with their quotas (Kafka's
    /// `ClientQuotasImage.describe`).
    pub fn describe(
        &self,
        filter: &[FilterComponent],
        strict: bool,
    ) -> Result<Vec<QuotaEntityRef<'_>>, QuotaError> {
        let mut seen: Vec<&str> = Vec::new();
        for c in filter {
            let t = c.entity_type.as_str();
            if t.is_empty() {
                return Err(QuotaError::Invalid("Invalid empty entity type.".into()));
            }
            if seen.contains(&t) {
                return Err(QuotaError::Invalid(format!(
                    "Entity type {t} cannot appear more than once in the filter."
                )));
            }
            seen.push(t);
            if ![USER, CLIENT_ID, IP].contains(&t) {
                return Err(QuotaError::Unsupported(format!(
                    "Unsupported entity type {t}"
                )));
            }
            let refused = match (c.match_type, &c.name) {
                (MATCH_EXACT, None) => "MATCH_TYPE_EXACT, but set match string to null",
                (MATCH_DEFAULT, Some(_)) => "MATCH_TYPE_DEFAULT, but also specified a match string",
                (MATCH_SPECIFIED, Some(_)) => {
                    "MATCH_TYPE_SPECIFIED, but also specified a match string"
                }
                (MATCH_EXACT..=MATCH_SPECIFIED, _) => continue,
                (other, _) => {
                    return Err(QuotaError::Invalid(format!("Unknown match type {other}")))
                }
            };
            return Err(QuotaError::Invalid(format!("Request specified {refused}.")));
        }
        if seen.contains(&IP) && (seen.contains(&USER) || seen.contains(&CLIENT_ID)) {
            return Err(QuotaError::Invalid(
                "Invalid entity filter component combination. IP filter component should not \
                 be used with user or clientId filter component."
                    .into(),
            ));
        }
        let selected = self.entities.iter().filter(|(entity, _)| {
            let all = filter
                .iter()
                .all(|c| match (c.match_type, entity.part(&c.entity_type)) {
                    (_, None) => false,
                    (MATCH_EXACT, Some(part)) => c.name.as_deref() == part,
                    (MATCH_DEFAULT, Some(part)) => part.is_none(),
                    (_, Some(_)) => true,
                });
            all && (!strict || entity.0.len() == filter.len())
        });
        Ok(selected.collect())
    }
}

/// DescribeClientQuotas match types: this name, the type's default, any name.
pub const MATCH_EXACT: i8 = 0;
pub const MATCH_DEFAULT: i8 = 1;
pub const MATCH_SPECIFIED: i8 = 2;

/// One component of a DescribeClientQuotas filter, as the request carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterComponent {
    pub entity_type: String,
    pub match_type: i8,
    pub name: Option<String>,
}

/// An AlterClientQuotas entry: an entity and its changes (`None` removes a key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaAlteration {
    pub entity: Vec<(String, Option<String>)>,
    pub ops: Vec<(String, Option<f64>)>,
}

/// Why a quota request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuotaError {
    /// INVALID_REQUEST.
    #[error("{0}")]
    Invalid(String),
    /// UNSUPPORTED_VERSION (an entity type Kafka does not know).
    #[error("{0}")]
    Unsupported(String),
}

/// Decides an AlterClientQuotas request against the current quotas, as Kafka's
/// controller does: each entity is checked on its own (its types, their combination,
/// each key and value); the records of those that pass are returned with one result
/// per entry, in request order. A value equal to the current one writes nothing.
pub fn alter_client_quotas(
    current: &ClientQuotas,
    alterations: &[QuotaAlteration],
) -> (Vec<MetadataRecord>, Vec<Result<(), QuotaError>>) {
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(alterations.len());
    let mut done: Vec<QuotaEntity> = Vec::new();
    for alteration in alterations {
        let outcome = check_alteration(current, alteration).and_then(|(entity, changes)| {
            if done.contains(&entity) {
                return Err(QuotaError::Invalid(format!(
                    "Ignoring duplicate entity {}",
                    describe_entity(&entity)
                )));
            }
            done.push(entity.clone());
            Ok((entity, changes))
        });
        results.push(outcome.map(|(entity, changes)| {
            records.extend(changes.into_iter().map(|(key, value)| {
                MetadataRecord::ClientQuotaSet {
                    entity: entity.clone(),
                    key,
                    value,
                }
            }));
        }));
    }
    (records, results)
}

type Changes = Vec<(String, Option<QuotaValue>)>;

fn check_alteration(
    current: &ClientQuotas,
    alteration: &QuotaAlteration,
) -> Result<(QuotaEntity, Changes), QuotaError> {
    let invalid = |m: String| Err(QuotaError::Invalid(m));
    if alteration.entity.is_empty() {
        return invalid("Invalid empty client quota entity".into());
    }
    let mut entity = BTreeMap::new();
    for (t, name) in &alteration.entity {
        if entity.contains_key(t) {
            return invalid(format!(
                "Invalid empty client quota entity, duplicate entity entry {t}"
            ));
        }
        if ![USER, CLIENT_ID, IP].contains(&t.as_str()) {
            return invalid(format!("Unhandled client quota entity type: {t}"));
        }
        if name.as_deref() == Some("") {
            return invalid(format!("Empty {t} not supported"));
        }
        entity.insert(t.clone(), name.clone());
    }
    let keys = match (
        entity.contains_key(USER),
        entity.contains_key(CLIENT_ID),
        entity.get(IP),
    ) {
        (_, _, None) => CLIENT_KEYS,
        (false, false, Some(ip)) => {
            if let Some(ip) = ip {
                if ip.parse::<IpAddr>().is_err() {
                    return invalid(format!("{ip} is not a valid IP or resolvable host."));
                }
            }
            IP_KEYS
        }
        _ => return invalid("Invalid empty client quota entity".into()),
    };
    let entity = QuotaEntity(entity);
    let existing = current.get(&entity);
    let mut seen: Vec<&str> = Vec::new();
    let mut changes = Vec::new();
    for (key, value) in &alteration.ops {
        if seen.contains(&key.as_str()) {
            return invalid(format!(
                "Duplicate quota key {key} not updating quota for this entity {}",
                describe_entity(&entity)
            ));
        }
        seen.push(key);
        let now = existing.and_then(|e| e.get(key));
        match value {
            None => {
                if now.is_some() {
                    changes.push((key.clone(), None));
                }
            }
            Some(v) => {
                let Some((_, whole)) = keys.iter().find(|(k, _)| k == key) else {
                    return invalid(format!("Invalid configuration key {key}"));
                };
                if !v.is_finite() || *v < 0.0 {
                    return invalid(format!("Configuration {key} must be a non-negative number"));
                }
                if *whole && (v - v.round()).abs() > 1e-6 {
                    return invalid(format!("Configuration {key} must be a Long value"));
                }
                let v = QuotaValue(*v);
                if now != Some(&v) {
                    changes.push((key.clone(), Some(v)));
                }
            }
        }
    }
    Ok((entity, changes))
}

/// `user=alice, client-id=<default>`, as Kafka prints an entity.
pub fn describe_entity(entity: &QuotaEntity) -> String {
    entity
        .0
        .iter()
        .map(|(t, n)| format!("{t}={}", n.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alter(entity: &[(&str, Option<&str>)], ops: &[(&str, Option<f64>)]) -> QuotaAlteration {
        QuotaAlteration {
            entity: entity
                .iter()
                .map(|(t, n)| (t.to_string(), n.map(str::to_string)))
                .collect(),
            ops: ops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    fn apply(quotas: &mut ClientQuotas, records: &[MetadataRecord]) {
        for r in records {
            let MetadataRecord::ClientQuotaSet { entity, key, value } = r else {
                panic!("unexpected record {r:?}");
            };
            quotas.apply(entity, key, *value);
        }
    }

    fn with(alterations: &[QuotaAlteration]) -> ClientQuotas {
        let mut q = ClientQuotas::default();
        let (records, results) = alter_client_quotas(&q, alterations);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        apply(&mut q, &records);
        q
    }

    #[test]
    fn precedence_follows_kafka() {
        let q = with(&[
            alter(&[(CLIENT_ID, None)], &[(PRODUCER_BYTE_RATE, Some(8.0))]),
            alter(
                &[(CLIENT_ID, Some("app"))],
                &[(PRODUCER_BYTE_RATE, Some(7.0))],
            ),
            alter(&[(USER, None)], &[(PRODUCER_BYTE_RATE, Some(6.0))]),
            alter(
                &[(USER, None), (CLIENT_ID, None)],
                &[(PRODUCER_BYTE_RATE, Some(5.0))],
            ),
            alter(
                &[(USER, None), (CLIENT_ID, Some("app"))],
                &[(PRODUCER_BYTE_RATE, Some(4.0))],
            ),
            alter(&[(USER, Some("alice"))], &[(PRODUCER_BYTE_RATE, Some(3.0))]),
            alter(
                &[(USER, Some("alice")), (CLIENT_ID, None)],
                &[(PRODUCER_BYTE_RATE, Some(2.0))],
            ),
            alter(
                &[(USER, Some("alice")), (CLIENT_ID, Some("app"))],
                &[(PRODUCER_BYTE_RATE, Some(1.0))],
            ),
        ]);
        let limit = |u, c| q.resolve(QuotaKind::Produce, u, c).map(|r| r.limit);
        assert_eq!(limit("alice", "app"), Some(1.0));
        assert_eq!(limit("alice", "other"), Some(2.0));
        assert_eq!(limit("bob", "app"), Some(4.0));
        assert_eq!(limit("bob", "other"), Some(5.0));
        assert_eq!(q.resolve(QuotaKind::Fetch, "alice", "app"), None);

        // Users only: every client of a user shares the user's tag.
        let q = with(&[alter(
            &[(USER, Some("alice"))],
            &[(CONSUMER_BYTE_RATE, Some(100.0))],
        )]);
        let r = q.resolve(QuotaKind::Fetch, "alice", "any").unwrap();
        assert_eq!((r.user.as_str(), r.client_id.as_str()), ("alice", ""));
        assert_eq!(q.resolve(QuotaKind::Fetch, "bob", "any"), None);
        // Client ids only: the user is not a tag.
        let q = with(&[alter(
            &[(CLIENT_ID, None)],
            &[(REQUEST_PERCENTAGE, Some(50.0))],
        )]);
        let r = q.resolve(QuotaKind::Request, "alice", "c1").unwrap();
        assert_eq!((r.user.as_str(), r.client_id.as_str()), ("", "c1"));
    }

    #[test]
    fn alterations_are_checked_as_kafka_checks_them() {
        let q = ClientQuotas::default();
        let refused = |a: QuotaAlteration| {
            let (records, results) = alter_client_quotas(&q, &[a]);
            assert!(records.is_empty());
            results.into_iter().next().unwrap().unwrap_err().to_string()
        };
        assert!(refused(alter(&[], &[])).contains("empty"));
        assert!(refused(alter(&[("group", Some("g"))], &[])).contains("Unhandled"));
        assert!(refused(alter(&[(USER, Some(""))], &[])).contains("Empty user"));
        assert!(refused(alter(
            &[(USER, Some("a")), (IP, Some("1.2.3.4"))],
            &[(PRODUCER_BYTE_RATE, Some(1.0))]
        ))
        .contains("Invalid empty"));
        assert!(refused(alter(&[(IP, Some("not an ip"))], &[])).contains("not a valid IP"));
        assert!(refused(alter(
            &[(IP, Some("10.0.0.1"))],
            &[(PRODUCER_BYTE_RATE, Some(1.0))]
        ))
        .contains("Invalid configuration key"));
        assert!(refused(alter(&[(USER, None)], &[("nope", Some(1.0))]))
            .contains("Invalid configuration key"));
        assert!(
            refused(alter(&[(USER, None)], &[(PRODUCER_BYTE_RATE, Some(1.5))]))
                .contains("must be a Long")
        );
        assert!(refused(alter(
            &[(USER, None)],
            &[(REQUEST_PERCENTAGE, Some(f64::NAN))]
        ))
        .contains("non-negative"));
        assert!(refused(alter(
            &[(USER, None)],
            &[(PRODUCER_BYTE_RATE, Some(1.0)), (PRODUCER_BYTE_RATE, None)]
        ))
        .contains("Duplicate quota key"));
        // A whole entry is refused; the others in the request still apply.
        let (records, results) = alter_client_quotas(
            &q,
            &[
                alter(&[(USER, None)], &[(REQUEST_PERCENTAGE, Some(12.5))]),
                alter(&[(USER, None)], &[(PRODUCER_BYTE_RATE, Some(1.0))]),
                alter(&[(IP, None)], &[(CONNECTION_CREATION_RATE, Some(3.0))]),
            ],
        );
        assert_eq!(records.len(), 2);
        assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
    }

    #[test]
    fn unchanged_values_and_absent_removals_write_nothing() {
        let mut q = with(&[alter(
            &[(USER, Some("a"))],
            &[(PRODUCER_BYTE_RATE, Some(10.0))],
        )]);
        let (records, _) = alter_client_quotas(
            &q,
            &[alter(
                &[(USER, Some("a"))],
                &[(PRODUCER_BYTE_RATE, Some(10.0)), (CONSUMER_BYTE_RATE, None)],
            )],
        );
        assert!(records.is_empty());
        let (records, _) = alter_client_quotas(
            &q,
            &[alter(&[(USER, Some("a"))], &[(PRODUCER_BYTE_RATE, None)])],
        );
        apply(&mut q, &records);
        assert!(q.is_empty(), "the last key's removal removes the entity");
    }

    fn component(t: &str, match_type: i8, name: Option<&str>) -> FilterComponent {
        FilterComponent {
            entity_type: t.into(),
            match_type,
            name: name.map(str::to_string),
        }
    }

    #[test]
    fn describe_filters_as_kafka_does() {
        let q = with(&[
            alter(&[(USER, Some("alice"))], &[(PRODUCER_BYTE_RATE, Some(1.0))]),
            alter(&[(USER, None)], &[(PRODUCER_BYTE_RATE, Some(2.0))]),
            alter(
                &[(USER, Some("alice")), (CLIENT_ID, Some("c"))],
                &[(PRODUCER_BYTE_RATE, Some(3.0))],
            ),
            alter(&[(IP, None)], &[(CONNECTION_CREATION_RATE, Some(4.0))]),
        ]);
        let count = |f: &[FilterComponent], strict| q.describe(f, strict).unwrap().len();
        assert_eq!(count(&[], false), 4);
        assert_eq!(count(&[], true), 0);
        let alice = component(USER, MATCH_EXACT, Some("alice"));
        assert_eq!(count(std::slice::from_ref(&alice), false), 2);
        assert_eq!(count(std::slice::from_ref(&alice), true), 1);
        assert_eq!(count(&[component(USER, MATCH_DEFAULT, None)], false), 1);
        assert_eq!(count(&[component(USER, MATCH_SPECIFIED, None)], false), 3);
        assert_eq!(count(&[component(USER, MATCH_SPECIFIED, None)], true), 2);
        assert_eq!(
            count(
                &[alice.clone(), component(CLIENT_ID, MATCH_SPECIFIED, None)],
                true
            ),
            1
        );
        assert_eq!(count(&[component(IP, MATCH_DEFAULT, None)], false), 1);
        assert!(matches!(
            q.describe(&[component(IP, MATCH_DEFAULT, None), alice.clone()], false),
            Err(QuotaError::Invalid(_))
        ));
        assert!(matches!(
            q.describe(&[component("group", MATCH_SPECIFIED, None)], false),
            Err(QuotaError::Unsupported(_))
        ));
        assert!(matches!(
            q.describe(&[alice.clone(), alice], false),
            Err(QuotaError::Invalid(_))
        ));
        assert!(matches!(
            q.describe(&[component(USER, MATCH_EXACT, None)], false),
            Err(QuotaError::Invalid(_))
        ));
    }

    #[test]
    fn ip_quotas_fall_back_to_the_default() {
        let q = with(&[
            alter(&[(IP, None)], &[(CONNECTION_CREATION_RATE, Some(5.0))]),
            alter(
                &[(IP, Some("10.0.0.1"))],
                &[(CONNECTION_CREATION_RATE, Some(1.0))],
            ),
        ]);
        assert_eq!(
            q.ip_connection_rate(&"10.0.0.1".parse().unwrap()),
            Some(1.0)
        );
        assert_eq!(
            q.ip_connection_rate(&"10.0.0.2".parse().unwrap()),
            Some(5.0)
        );
        // However the address is written.
        let q = with(&[
            alter(
                &[(IP, Some("0:0:0:0:0:0:0:1"))],
                &[(CONNECTION_CREATION_RATE, Some(2.0))],
            ),
            alter(
                &[(IP, Some("10.0.0.1"))],
                &[(CONNECTION_CREATION_RATE, Some(1.0))],
            ),
        ]);
        assert_eq!(q.ip_connection_rate(&"::1".parse().unwrap()), Some(2.0));
        assert_eq!(
            q.ip_connection_rate(&"::ffff:10.0.0.1".parse().unwrap()),
            Some(1.0)
        );
        assert_eq!(q.ip_connection_rate(&"::2".parse().unwrap()), None);
    }

    #[test]
    fn quotas_serialize_and_load_back() {
        let q = with(&[
            alter(
                &[(USER, Some("alice")), (CLIENT_ID, None)],
                &[(REQUEST_PERCENTAGE, Some(25.5))],
            ),
            alter(&[(IP, None)], &[(CONNECTION_CREATION_RATE, Some(5.0))]),
        ]);
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(serde_json::from_str::<ClientQuotas>(&json).unwrap(), q);
    }
}
