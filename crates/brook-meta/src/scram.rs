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
