//! Kafka's JAAS configuration line (`sasl.jaas.config`), as far as a broker reads it:
//! `LoginModuleClass controlFlag key="value" key=value ...;`, one or more modules. For
//! PLAIN the broker's users are the `user_<name>="<password>"` options.

use std::collections::BTreeMap;

/// One login module of a JAAS line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginModule {
    pub class: String,
    pub flag: String,
    pub options: BTreeMap<String, String>,
}

/// Longest JAAS line accepted: it is operator input, but it is held in memory for the
/// broker's life.
const MAX_JAAS_BYTES: usize = 1 << 20;

/// Parses a JAAS line. Values may be quoted (`"..."`, with `\"` and `\\`) or bare;
/// every module ends with `;`.
pub fn parse(text: &str) -> Result<Vec<LoginModule>, String> {
    if text.len() > MAX_JAAS_BYTES {
        return Err(format!("longer than {MAX_JAAS_BYTES} bytes"));
    }
    let tokens = tokenize(text)?;
    let mut modules = Vec::new();
    let mut it = tokens.into_iter().peekable();
    while it.peek().is_some() {
        let class = match it.next() {
            Some(Token::Word(w)) => w,
            _ => return Err("expected a login module class name".into()),
        };
        let flag = match it.next() {
            Some(Token::Word(w)) if is_flag(&w) => w.to_ascii_lowercase(),
            _ => {
                return Err(format!(
                "expected a control flag (required, requisite, sufficient, optional) after {class}"
            ))
            }
        };
        let mut options = BTreeMap::new();
        loop {
            match it.next() {
                Some(Token::Semicolon) => break,
                Some(Token::Word(key)) => {
                    if it.next() != Some(Token::Equals) {
                        return Err(format!("expected '=' after option {key}"));
                    }
                    let value = match it.next() {
                        Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                        _ => return Err(format!("expected a value for option {key}")),
                    };
                    options.insert(key, value);
                }
                _ => return Err(format!("login module {class} does not end with ';'")),
            }
        }
        modules.push(LoginModule {
            class,
            flag,
            options,
        });
    }
    if modules.is_empty() {
        return Err("no login module".into());
    }
    Ok(modules)
}

/// The users of a PLAIN login module line: every `user_<name>` option.
pub fn plain_users(text: &str) -> Result<BTreeMap<String, String>, String> {
    let modules = parse(text)?;
    Ok(modules
        .iter()
        .flat_map(|m| m.options.iter())
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
        .collect())
}

fn is_flag(w: &str) -> bool {
    ["required", "requisite", "sufficient", "optional"]
        .iter()
        .any(|f| w.eq_ignore_ascii_case(f))
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '=' => {
                chars.next();
                tokens.push(Token::Equals);
            }
            ';' => {
                chars.next();
                tokens.push(Token::Semicolon);
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => value.push(e),
                            None => return Err("unterminated quoted value".into()),
                        },
                        Some(c) => value.push(c),
                        None => return Err("unterminated quoted value".into()),
                    }
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == '=' || c == ';' || c == '"' {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plain_line_gives_its_users() {
        let line = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
            username="admin" password="admin-secret"
            user_admin="admin-secret" user_alice="alice \"quoted\" secret" user_bob=bare;"#;
        let users = plain_users(line).unwrap();
        assert_eq!(users.len(), 3);
        assert_eq!(users["alice"], r#"alice "quoted" secret"#);
        assert_eq!(users["bob"], "bare");
        let m = &parse(line).unwrap()[0];
        assert_eq!(
            m.class,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(m.flag, "required");
        assert_eq!(m.options["username"], "admin");
    }

    #[test]
    fn malformed_lines_are_refused_with_a_reason() {
        for bad in [
            "",
            "Module;",
            "Module required user_a=\"x\"",
            "Module maybe user_a=\"x\";",
            "Module required user_a \"x\";",
            "Module required user_a=\"x;",
            "Module required user_a=;",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            parse("A required; B optional k=v;").unwrap().len(),
            2,
            "several modules"
        );
    }
}
