//! How `brook consume` prints a record: kcat's `--format` tokens, or one JSON object
//! per line.

use std::io::Write;

use anyhow::{bail, Result};
use brook_protocol::records::ConsumedRecord;

use crate::cli::ConsumeArgs;

/// How each record is printed.
pub enum Output {
    /// kcat's `-f`: the format's pieces.
    Format(Vec<Piece>),
    Json,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLength,
    Value,
    ValueLength,
    Headers,
    Timestamp,
}

/// Parses a kcat format string: `%t %p %o %k %K %v (or %s) %S %h %T %%` and the
/// escapes `\n \t \r \\`.
pub fn parse_format(fmt: &str) -> Result<Vec<Piece>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some('r') => text.push('\r'),
                Some('\\') => text.push('\\'),
                Some(o) => bail!("unknown escape '\\{o}' in --format"),
                None => text.push('\\'),
            },
            '%' => {
                let piece = match chars.next() {
                    Some('%') => {
                        text.push('%');
                        continue;
                    }
                    Some('t') => Piece::Topic,
                    Some('p') => Piece::Partition,
                    Some('o') => Piece::Offset,
                    Some('k') => Piece::Key,
                    Some('K') => Piece::KeyLength,
                    Some('v') | Some('s') => Piece::Value,
                    Some('S') => Piece::ValueLength,
                    Some('h') => Piece::Headers,
                    Some('T') => Piece::Timestamp,
                    Some(o) => {
                        bail!("unknown token '%{o}' in --format (%t %p %o %k %K %v %s %S %h %T %%)")
                    }
                    None => bail!("--format ends with a lone '%'"),
                };
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(piece);
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// The format the older flags (`--print-offset`, `--print-key`) describe.
pub fn legacy_format(args: &ConsumeArgs) -> Vec<Piece> {
    let mut out = Vec::new();
    if args.print_offset {
        out.extend([
            Piece::Partition,
            Piece::Text("\t".into()),
            Piece::Offset,
            Piece::Text("\t".into()),
        ]);
    }
    if args.print_key {
        out.extend([Piece::Key, Piece::Text("\t".into())]);
    }
    out.extend([Piece::Value, Piece::Text("\n".into())]);
    out
}

fn length(b: &Option<bytes::Bytes>) -> i64 {
    b.as_ref().map_or(-1, |b| b.len() as i64)
}

pub fn write_formatted(
    out: &mut impl Write,
    pieces: &[Piece],
    topic: &str,
    partition: i32,
    r: &ConsumedRecord,
) -> std::io::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.write_all(t.as_bytes())?,
            Piece::Topic => out.write_all(topic.as_bytes())?,
            Piece::Partition => write!(out, "{partition}")?,
            Piece::Offset => write!(out, "{}", r.offset)?,
            Piece::Key => out.write_all(r.key.as_deref().unwrap_or_default())?,
            Piece::KeyLength => write!(out, "{}", length(&r.key))?,
            Piece::Value => out.write_all(r.value.as_deref().unwrap_or_default())?,
            Piece::ValueLength => write!(out, "{}", length(&r.value))?,
            Piece::Timestamp => write!(out, "{}", r.timestamp_ms)?,
            Piece::Headers => {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.write_all(b",")?;
                    }
                    out.write_all(k.as_bytes())?;
                    out.write_all(b"=")?;
                    out.write_all(v.as_deref().unwrap_or_default())?;
                }
            }
        }
    }
    Ok(())
}

/// Bytes as a JSON string (UTF-8 decoded, invalid sequences replaced), or null.
fn json_bytes(b: &Option<bytes::Bytes>) -> serde_json::Value {
    match b {
        Some(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
        None => serde_json::Value::Null,
    }
}

/// One record as a JSON line, its fields in a fixed order (serde_json's maps sort them).
pub fn write_json(
    out: &mut impl Write,
    topic: &str,
    partition: i32,
    r: &ConsumedRecord,
) -> Result<()> {
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": json_bytes(v)}))
        .collect();
    writeln!(
        out,
        r#"{{"topic":{},"partition":{partition},"offset":{},"timestamp":{},"timestamp_type":"{}","key":{},"value":{},"headers":{}}}"#,
        serde_json::Value::from(topic),
        r.offset,
        r.timestamp_ms,
        if r.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        },
        json_bytes(&r.key),
        json_bytes(&r.value),
        serde_json::Value::from(headers),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_print_each_token() {
        let r = ConsumedRecord {
            offset: 7,
            timestamp_ms: 1000,
            log_append_time: false,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: vec![("a".into(), Some(bytes::Bytes::from_static(b"1")))],
        };
        let pieces = parse_format(r"%t/%p@%o k=%k(%K) %v(%S) [%h] %T 100%%\n").unwrap();
        let mut out = Vec::new();
        write_formatted(&mut out, &pieces, "t", 2, &r).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "t/2@7 k=(-1) v(1) [a=1] 1000 100%\n"
        );
        assert!(parse_format("%x").is_err());
    }
}
