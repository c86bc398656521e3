//! SCRAM credentials (KIP-554) as the metadata log keeps them: per user and mechanism,
//! the salt, the iteration count and the two keys derived from the salted password
//! (RFC 5802's StoredKey and ServerKey). Never the password, never the salted password:
//! a copy of the log lets nobody log in, though it does allow an offline dictionary
//! attack on weak passwords, as Kafka's does.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A SCRAM mechanism Brook serves, with Kafka's wire code (`ScramMechanism.type()`)
/// and SASL name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ScramMechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    Sha256,
    #[serde(rename = "SCRAM-SHA-512")]
    Sha512,
}

impl ScramMechanism {
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// Kafka's code for the mechanism in Describe/AlterUserScramCredentials (0 is
    /// UNKNOWN there).
    pub fn from_type(code: i8) -> Option<Self> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn type_code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The SASL mechanism name (`SCRAM-SHA-256`).
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Kafka's lower bound on iterations for both mechanisms.
    pub fn min_iterations(self) -> i32 {
        4096
    }
}

impl fmt::Display for ScramMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Kafka's upper bound on iterations (`ScramControlManager.MAX_ITERATIONS`).
pub const MAX_SCRAM_ITERATIONS: i32 = 16384;

/// One user's credential for one mechanism. Bytes are base64 in the log and snapshots.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// The keys stay out of logs and panics (Kafka prints `[hidden]` too).
impl fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramCredential")
            .field("salt", &"[hidden]")
            .field("stored_key", &"[hidden]")
            .field("server_key", &"[hidden]")
            .field("iterations", &self.iterations)
            .finish()
    }
}

/// Every SCRAM credential of the cluster, by user then mechanism.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScramCredentials {
    pub users: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
}

impl ScramCredentials {
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn get(&self, user: &str, mechanism: ScramMechanism) -> Option<&ScramCredential> {
        self.users.get(user).and_then(|m| m.get(&mechanism))
    }

    pub(crate) fn set(&mut self, user: &str, mechanism: ScramMechanism, c: ScramCredential) {
        self.users
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, c);
    }

    pub(crate) fn remove(&mut self, user: &str, mechanism: ScramMechanism) {
        if let Some(m) = self.users.get_mut(user) {
            m.remove(&mechanism);
            if m.is_empty() {
                self.users.remove(user);
            }
        }
    }
}

mod base64_bytes {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

/// One credential to set, as AlterUserScramCredentials asks (the broker has already
/// turned the client's salted password into the stored keys). `mechanism` is Kafka's
/// code, checked here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramUpsertion {
    pub user: String,
    pub mechanism: i8,
    pub credential: ScramCredential,
}

/// Why one user's alteration was refused (Kafka's `ScramControlManager` checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScramAlterError {
    #[error("A user credential cannot be altered twice in the same request")]
    Duplicate,
    #[error("Username must not be empty")]
    EmptyUser,
    #[error("Unknown SCRAM mechanism")]
    UnknownMechanism,
    #[error("Attempt to delete a user credential that does not exist")]
    NotFound,
    #[error("Too few iterations")]
    TooFewIterations,
    #[error("Too many iterations")]
    TooManyIterations,
    #[error("Salt and salted password must not be empty")]
    EmptySecret,
}

/// One user's outcome of an alteration.
pub type ScramAlterResult = (String, Result<(), ScramAlterError>);

/// Decides an AlterUserScramCredentials request against the current credentials, as
/// Kafka's controller does: a user named twice (in deletions and upsertions together)
/// is refused as a whole; every other user is checked on its own, and the records of
/// those that pass are returned with one result per user, in the order users first
/// appear. With `if_absent`, an upsertion for a credential that exists already is a
/// success that changes nothing (the bootstrap credential at every start).
pub fn alter_scram_credentials(
    current: &ScramCredentials,
    deletions: &[(String, i8)],
    upsertions: &[ScramUpsertion],
    if_absent: bool,
) -> (Vec<crate::MetadataRecord>, Vec<ScramAlterResult>) {
    enum Change<'a> {
        Delete(ScramMechanism),
        Upsert(ScramMechanism, &'a ScramCredential),
    }
    let mut order: Vec<&str> = Vec::new();
    let mut outcome: BTreeMap<&str, Result<Change<'_>, ScramAlterError>> = BTreeMap::new();
    let check = |user: &str, code: i8| {
        if user.is_empty() {
            return Err(ScramAlterError::EmptyUser);
        }
        ScramMechanism::from_type(code).ok_or(ScramAlterError::UnknownMechanism)
    };
    let all = deletions.iter().map(|(u, m)| (u.as_str(), *m, None)).chain(
        upsertions
            .iter()
            .map(|u| (u.user.as_str(), u.mechanism, Some(&u.credential))),
    );
    for (user, code, upsert) in all {
        if let Some(seen) = outcome.get_mut(user) {
            if seen.is_ok() {
                *seen = Err(ScramAlterError::Duplicate);
            }
            continue;
        }
        order.push(user);
        let change = check(user, code).and_then(|m| match upsert {
            None if current.get(user, m).is_none() => Err(ScramAlterError::NotFound),
            None => Ok(Change::Delete(m)),
            Some(c) if c.iterations < m.min_iterations() => Err(ScramAlterError::TooFewIterations),
            Some(c) if c.iterations > MAX_SCRAM_ITERATIONS => {
                Err(ScramAlterError::TooManyIterations)
            }
            Some(c) if c.salt.is_empty() || c.stored_key.is_empty() => {
                Err(ScramAlterError::EmptySecret)
            }
            Some(c) => Ok(Change::Upsert(m, c)),
        });
        outcome.insert(user, change);
    }
    let mut records = Vec::new();
    let mut results = Vec::with_capacity(order.len());
    for user in order {
        let result = match &outcome[user] {
            Ok(Change::Delete(m)) => {
                records.push(crate::MetadataRecord::ScramCredentialRemoved {
                    user: user.to_string(),
                    mechanism: *m,
                });
                Ok(())
            }
            Ok(Change::Upsert(m, c)) => {
                if !(if_absent && current.get(user, *m).is_some()) {
                    records.push(crate::MetadataRecord::ScramCredentialSet {
                        user: user.to_string(),
                        mechanism: *m,
                        credential: (*c).clone(),
                    });
                }
                Ok(())
            }
            Err(e) => Err(*e),
        };
        results.push((user.to_string(), result));
    }
    (records, results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(iterations: i32) -> ScramCredential {
        ScramCredential {
            salt: vec![1; 8],
            stored_key: vec![2; 32],
            server_key: vec![3; 32],
            iterations,
        }
    }

    fn up(user: &str, mechanism: i8, iterations: i32) -> ScramUpsertion {
        ScramUpsertion {
            user: user.into(),
            mechanism,
            credential: cred(iterations),
        }
    }

    #[test]
    fn kafkas_checks_per_user() {
        let mut current = ScramCredentials::default();
        current.set("dora", ScramMechanism::Sha512, cred(4096));
        current.set("dup", ScramMechanism::Sha256, cred(4096));
        let deletions = [
            ("dora".to_string(), 2),
            ("ghost".to_string(), 1),
            ("dup".to_string(), 1),
            ("".to_string(), 1),
        ];
        let upsertions = [
            up("alice", 2, 4096),
            up("dup", 1, 4096),
            up("few", 1, 4095),
            up("many", 2, 16385),
            up("odd", 3, 4096),
            up("bob", 1, 16384),
        ];
        let (records, results) = alter_scram_credentials(&current, &deletions, &upsertions, false);
        use ScramAlterError::*;
        assert_eq!(
            results,
            [
                ("dora".to_string(), Ok(())),
                ("ghost".to_string(), Err(NotFound)),
                ("dup".to_string(), Err(Duplicate)),
                ("".to_string(), Err(EmptyUser)),
                ("alice".to_string(), Ok(())),
                ("few".to_string(), Err(TooFewIterations)),
                ("many".to_string(), Err(TooManyIterations)),
                ("odd".to_string(), Err(UnknownMechanism)),
                ("bob".to_string(), Ok(())),
            ]
        );
        assert_eq!(records.len(), 3);
        // A user whose first entry failed keeps that error (Kafka's order of checks).
        let (_, results) = alter_scram_credentials(
            &current,
            &[("nobody".into(), 1)],
            &[up("nobody", 1, 4096)],
            false,
        );
        assert_eq!(results, [("nobody".to_string(), Err(NotFound))]);
        assert!(
            matches!(&records[0], crate::MetadataRecord::ScramCredentialRemoved { user, .. } if user == "dora")
        );

        // Kafka refuses a user named twice even for two mechanisms.
        let (records, results) = alter_scram_credentials(
            &current,
            &[],
            &[up("eve", 1, 4096), up("eve", 2, 4096)],
            false,
        );
        assert!(records.is_empty());
        assert_eq!(results, [("eve".to_string(), Err(Duplicate))]);

        // if_absent leaves an existing credential alone.
        let (records, results) =
            alter_scram_credentials(&current, &[], &[up("dora", 2, 8192)], true);
        assert!(records.is_empty());
        assert_eq!(results, [("dora".to_string(), Ok(()))]);
    }
}
