//! The admin listener's own settings: `admin.listeners` and `admin.authentication`.

/// `admin.authentication`: who calls the admin listener (see `admin_http::auth`):
/// `none`, or a comma-separated list of `basic`, `bearer` and `mtls`, any one of which
/// lets a caller in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdminAuth {
    /// HTTP Basic: SCRAM users and the admin listener's PLAIN users.
    pub basic: bool,
    /// HTTP Bearer: a JWT, validated as the admin listener's OAUTHBEARER would.
    pub bearer: bool,
    /// A client certificate (an `https` listener with `ssl.client.auth`).
    pub mtls: bool,
}

impl AdminAuth {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim().to_ascii_lowercase();
        let mut auth = AdminAuth::default();
        if value.is_empty() || value == "none" {
            return Ok(auth);
        }
        for method in value.split(',').map(str::trim) {
            match method {
                "basic" => auth.basic = true,
                "bearer" => auth.bearer = true,
                "mtls" => auth.mtls = true,
                other => {
                    return Err(format!(
                        "expected none, or a comma-separated list of basic, bearer and mtls; not '{other}'"
                    ))
                }
            }
        }
        Ok(auth)
    }

    /// `none`: every caller is let in (named by its certificate if it sends one).
    pub fn is_none(self) -> bool {
        self == AdminAuth::default()
    }
}

/// `admin.listeners`, parsed: where to bind and whether it is `https`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminListenerSpec {
    /// `HOST:PORT`, resolved when the listener binds.
    pub addr: String,
    /// `https://`: TLS with the `listener.name.admin.ssl.*` settings (else `ssl.*`).
    pub tls: bool,
}

/// Parses `admin.listeners`: empty (no admin listener) or one `http://HOST:PORT` or
/// `https://HOST:PORT` (port 0: any free port).
pub fn parse_admin_listener(value: &str) -> Result<Option<AdminListenerSpec>, String> {
    const EXPECTED: &str = "expected http://HOST:PORT or https://HOST:PORT";
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if value.contains(',') {
        return Err("one admin listener only".into());
    }
    let (authority, tls) = match (
        value.strip_prefix("http://"),
        value.strip_prefix("https://"),
    ) {
        (Some(a), _) => (a, false),
        (_, Some(a)) => (a, true),
        _ => return Err(EXPECTED.into()),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    let (host, port) = authority.rsplit_once(':').ok_or(EXPECTED)?;
    if host.is_empty() || host.contains('/') {
        return Err(EXPECTED.into());
    }
    port.parse::<u16>()
        .map_err(|_| "the port must be a number from 0 to 65535")?;
    Ok(Some(AdminListenerSpec {
        addr: authority.to_string(),
        tls,
    }))
}
