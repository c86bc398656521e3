//! SASL/PLAIN (RFC 4616) as Kafka's `PlainSaslServer` does it: one message
//! `authzid NUL authcid NUL password`, checked against the users of the listener's JAAS
//! line, with Kafka's messages for what the client may be told.

use std::collections::BTreeMap;

use subtle::ConstantTimeEq;

/// Why a PLAIN message was refused. `user` is who the client claimed to be (audit log).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PlainFailure {
    pub user: Option<String>,
    /// `None`: the generic message (Kafka's `SaslException`, whose text it never sends).
    pub message: Option<&'static str>,
}

/// Whether `password` is PLAIN user `user`'s. Compared in constant time, and against
/// something even for an unknown user, so the answer's timing does not tell which
/// users exist.
pub(crate) fn password_matches(
    users: &BTreeMap<String, String>,
    user: &str,
    password: &str,
) -> bool {
    let expected = users.get(user);
    let reference = expected.map_or(&b"\0unknown user\0"[..], |p| p.as_bytes());
    bool::from(reference.ct_eq(password.as_bytes())) && expected.is_some()
}

/// Checks one PLAIN message; returns the authenticated user.
pub(super) fn authenticate(
    users: &BTreeMap<String, String>,
    token: &[u8],
) -> Result<String, PlainFailure> {
    let fail = |user: Option<&str>, message| PlainFailure {
        user: user.map(str::to_string),
        message,
    };
    let Ok(text) = std::str::from_utf8(token) else {
        return Err(fail(None, None));
    };
    let parts: Vec<&str> = text.split('\0').collect();
    let [authzid, user, password] = parts[..] else {
        // Kafka: "Invalid SASL/PLAIN response: expected 3 tokens".
        return Err(fail(None, None));
    };
    if user.is_empty() {
        return Err(fail(
            None,
            Some("Authentication failed: username not specified"),
        ));
    }
    if password.is_empty() {
        return Err(fail(
            Some(user),
            Some("Authentication failed: password not specified"),
        ));
    }
    if !password_matches(users, user, password) {
        return Err(fail(
            Some(user),
            Some("Authentication failed: Invalid username or password"),
        ));
    }
    if !authzid.is_empty() && authzid != user {
        return Err(fail(
            Some(user),
            Some("Authentication failed: Client requested an authorization id that is different from username"),
        ));
    }
    Ok(user.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> BTreeMap<String, String> {
        BTreeMap::from([("alice".to_string(), "alice-secret".to_string())])
    }

    #[test]
    fn kafkas_checks_and_messages() {
        let check = |t: &[u8]| authenticate(&users(), t);
        assert_eq!(check(b"\0alice\0alice-secret"), Ok("alice".into()));
        assert_eq!(check(b"alice\0alice\0alice-secret"), Ok("alice".into()));
        let msg = |t: &[u8]| check(t).unwrap_err().message;
        assert_eq!(
            msg(b"\0alice\0wrong"),
            Some("Authentication failed: Invalid username or password")
        );
        assert_eq!(
            msg(b"\0mallory\0alice-secret"),
            Some("Authentication failed: Invalid username or password")
        );
        assert_eq!(
            msg(b"\0\0x"),
            Some("Authentication failed: username not specified")
        );
        assert_eq!(
            msg(b"\0alice\0"),
            Some("Authentication failed: password not specified")
        );
        assert!(msg(b"bob\0alice\0alice-secret")
            .unwrap()
            .contains("authorization id"));
        for bad in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0alice\0alice-secret\0",
            b"\0al\xffice\0x",
        ] {
            assert_eq!(check(bad).unwrap_err().message, None, "{bad:?}");
        }
    }
}
