//! The principal of a TLS client: its certificate's subject DN as Java prints it
//! (`X500Principal.getName()`, RFC 2253), mapped by `ssl.principal.mapping.rules`.

use std::fmt::Write;

use regex::Regex;
use x509_parser::der_parser::asn1_rs::{Any, Class};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject DN of a DER certificate in RFC 2253 form, as Java's
/// `X500Principal.getName()` (which Kafka's principal builder uses) prints it: RDNs
/// most specific first, the keywords CN, C, L, ST, O, OU, STREET, DC and UID, any other
/// attribute as its dotted OID with `#` and the hex of its DER value.
pub fn subject_dn(cert_der: &[u8]) -> Result<String, String> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| format!("cannot parse the client certificate: {e}"))?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let avas: Vec<String> = rdn
            .iter()
            .map(|ava| {
                let oid = ava.attr_type().to_id_string();
                format_ava(&oid, ava.attr_value())
            })
            .collect();
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

fn keyword(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn format_ava(oid: &str, value: &Any<'_>) -> String {
    let text = keyword(oid).and_then(|k| Some((k, string_value(value)?)));
    match text {
        Some((keyword, s)) => format!("{keyword}={}", escape_rfc2253(&s)),
        None => {
            let mut out = format!("{}=#", keyword(oid).unwrap_or(oid));
            for b in der_encoding(value) {
                let _ = write!(out, "{b:02x}");
            }
            out
        }
    }
}

/// The value as text if it is one of the string types Java prints as text.
fn string_value(value: &Any<'_>) -> Option<String> {
    if value.header.class() != Class::Universal {
        return None;
    }
    let data = value.data;
    match value.header.tag().0 {
        // UTF8String, PrintableString, IA5String, GeneralString
        12 | 19 | 22 | 27 => Some(String::from_utf8_lossy(data).into_owned()),
        // T61String: Latin-1, as Java reads it
        20 => Some(data.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16BE
        30 => {
            let units: Vec<u16> = data
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

/// Java's RFC 2253 escaping: `,=+<>#;"\` get a backslash, NUL is `\00`, leading and
/// trailing spaces get a backslash.
fn escape_rfc2253(s: &str) -> String {
    let mut escaped = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' | '=' | '+' | '<' | '>' | '#' | ';' | '"' | '\\' => {
                escaped.push('\\');
                escaped.push(c);
            }
            '\0' => escaped.push_str("\\00"),
            c => escaped.push(c),
        }
    }
    let chars: Vec<char> = escaped.chars().collect();
    let blank = |c: char| c == ' ' || c == '\r';
    let lead = chars.iter().take_while(|&&c| blank(c)).count();
    let trail = chars.iter().rev().take_while(|&&c| blank(c)).count();
    let mut out = String::with_capacity(escaped.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if i < lead || i >= chars.len() - trail {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The value's DER encoding (identifier, length, contents).
fn der_encoding(value: &Any<'_>) -> Vec<u8> {
    let header = &value.header;
    let tag = header.tag().0;
    let class = match header.class() {
        Class::Universal => 0u8,
        Class::Application => 1,
        Class::ContextSpecific => 2,
        Class::Private => 3,
    };
    let mut out = Vec::with_capacity(value.data.len() + 8);
    let first = (class << 6) | (u8::from(header.is_constructed()) << 5);
    if tag < 31 {
        out.push(first | tag as u8);
    } else {
        out.push(first | 31);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            out.push(if i + 1 < groups.len() { g | 0x80 } else { *g });
        }
    }
    let len = value.data.len();
    if len < 128 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(value.data);
    out
}

/// `ssl.principal.mapping.rules`: `DEFAULT` (the whole DN) and
/// `RULE:pattern/replacement/[LU]`, tried in order; the first whose pattern matches the
/// whole DN gives the name.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        /// The pattern anchored at both ends (Java's `matches()`).
        whole: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

impl PrincipalMapper {
    pub fn parse(rules: &str) -> Result<PrincipalMapper, String> {
        let mut parsed = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = skip_to_next_rule(after)?;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)
                    .ok_or_else(|| format!("rule 'RULE:{after}' needs pattern/replacement/"))?;
                let (replacement, after) = until_slash(after)
                    .ok_or_else(|| format!("rule 'RULE:{pattern}/{after}' needs a closing '/'"))?;
                let (case, after) = match after.as_bytes().first() {
                    Some(b'L') => (Case::Lower, &after[1..]),
                    Some(b'U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let compile = |p: &str| {
                    Regex::new(p).map_err(|e| format!("bad pattern '{pattern}' in a rule: {e}"))
                };
                parsed.push(Rule::Replace {
                    pattern: compile(pattern)?,
                    whole: compile(&format!("^(?:{pattern})$"))?,
                    replacement: java_replacement(replacement),
                    case,
                });
                rest = after.split_once(',').map_or("", |(_, r)| r);
            } else {
                return Err(format!("invalid rule: '{rest}'"));
            }
        }
        Ok(PrincipalMapper { rules: parsed })
    }

    /// The principal name for `dn`; `None` if no rule applies (Kafka then refuses the
    /// connection).
    pub fn name(&self, dn: &str) -> Option<String> {
        self.rules.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Replace {
                pattern,
                whole,
                replacement,
                case,
            } => {
                if !whole.is_match(dn) {
                    return None;
                }
                let name = pattern.replace_all(dn, replacement.as_str()).into_owned();
                Some(match case {
                    Case::Keep => name,
                    Case::Lower => name.to_lowercase(),
                    Case::Upper => name.to_uppercase(),
                })
            }
        })
    }
}

/// What follows `DEFAULT`: only whitespace up to the next comma or the end.
fn skip_to_next_rule(after: &str) -> Result<&str, String> {
    let trimmed = after.trim_start();
    if trimmed.is_empty() {
        Ok("")
    } else if let Some(r) = trimmed.strip_prefix(',') {
        Ok(r)
    } else {
        Err(format!(
            "invalid rule: unexpected '{trimmed}' after DEFAULT"
        ))
    }
}

/// Splits at the first '/' not escaped by a backslash.
fn until_slash(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '/' if !escaped => return Some((&s[..i], &s[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// Java's replacement syntax (`$1`, `\$` for a literal dollar) in the regex crate's
/// (`${1}`, `$$`).
fn java_replacement(java: &str) -> String {
    let mut out = String::with_capacity(java.len() + 8);
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    let _ = write!(out, "${{{digits}}}");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;

    #[test]
    fn mapping_rules_as_kafka_documents_them() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(
            m.name("CN=kafka-app,OU=ServiceUsers,O=Org,C=US").as_deref(),
            Some("kafka-app")
        );
        assert_eq!(
            m.name("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .as_deref(),
            Some("duke@javasoft")
        );
        assert_eq!(m.name("CN=other").as_deref(), Some("CN=other"));
        let upper = PrincipalMapper::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(upper.name("CN=client,O=x").as_deref(), Some("CLIENT"));
        // No rule matches: no principal.
        assert_eq!(upper.name("O=x"), None);
        // A rule must match the whole DN.
        let partial = PrincipalMapper::parse("RULE:CN=([a-z]+)/$1/").unwrap();
        assert_eq!(partial.name("CN=abc,O=x"), None);
        assert_eq!(partial.name("CN=abc").as_deref(), Some("abc"));
        let default = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(default.name("CN=a\\,b").as_deref(), Some("CN=a\\,b"));
        for bad in ["RULE:abc", "NOPE", "RULE:a/b", "RULE:(/x/", "DEFAULT x"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }

    /// A self-signed certificate (openssl, 100 years) whose subject has multi-valued
    /// RDNs, attributes without an RFC 2253 keyword and characters to escape; the
    /// expected string is what Java 17's `X500Principal.getName()` printed for it.
    #[test]
    fn the_subject_dn_is_printed_as_java_prints_it() {
        let pem = include_str!("testdata/tricky-subject.pem");
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(
            subject_dn(&der).unwrap(),
            "2.5.4.5=#130431323334,1.2.840.113549.1.9.1=#16056140622e63,\
             CN=\\#client \\= x\\;\\<y\\> \\\"q\\\",OU=eng+UID=u1,O=Brook\\, Inc.,\
             L=San Jose,ST=CA,C=US,DC=example,DC=com"
        );
        assert!(subject_dn(b"not a certificate").is_err());
    }

    #[test]
    fn rfc2253_escapes_as_java() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1=\"q\""), "\\#1\\=\\\"q\\\"");
        assert_eq!(escape_rfc2253("plain name"), "plain name");
    }
}
