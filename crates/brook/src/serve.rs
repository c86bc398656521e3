//! `brook serve`: configuration from file, flags and environment, then run until
//! SIGINT/SIGTERM.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use brook_broker::Broker;

use crate::cli::ServeArgs;

/// Parses `host:port` or Kafka's `PLAINTEXT://host:port` (the first of a list).
fn parse_listener(s: &str) -> Result<(String, u16)> {
    let s = s.split(',').next().unwrap_or(s).trim();
    let s = s.split_once("://").map_or(s, |(_, rest)| rest);
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("listener '{s}' must be host:port"))?;
    let port = port
        .parse()
        .with_context(|| format!("bad port in listener '{s}'"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow!("cannot resolve {host}"))
}

fn config_file_settings(path: &PathBuf) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
    let mut out = Vec::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

/// Accepts both `"log.retention.ms" = 1` and nested `[log] retention.ms = 1` forms.
fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) -> Result<()> {
    for (k, v) in table {
        let name = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&name, t, out)?,
            toml::Value::String(s) => out.push((name, s.clone())),
            toml::Value::Integer(i) => out.push((name, i.to_string())),
            toml::Value::Boolean(b) => out.push((name, b.to_string())),
            toml::Value::Float(f) => out.push((name, f.to_string())),
            other => bail!("config '{name}': unsupported value {other}"),
        }
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit, as Go programs and many
/// servers do at start: each partition keeps its active segment open, and each
/// connection is a socket, so the usual soft default (1,024) caps a broker at about a
/// thousand partitions for no reason. The limit in effect is logged.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let now = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        hard
    } else {
        soft
    };
    tracing::info!(
        limit = now,
        was = soft,
        "open files limit (one per partition's active segment and per connection)"
    );
}

/// `admin.listeners` when neither the config file nor `--set` names it.
const DEFAULT_ADMIN_LISTENER: &str = "http://127.0.0.1:9644";

pub async fn run(args: ServeArgs) -> Result<()> {
    raise_open_files_limit();
    let mut settings = Vec::new();
    if let Some(path) = &args.config {
        settings.extend(config_file_settings(path)?);
    }
    for s in &args.settings {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set expects NAME=VALUE, got '{s}'"))?;
        settings.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut advertised = None;
    let mut data_dir = PathBuf::from("brook-data");
    let mut node_id = 1;
    let mut voters = None;
    let mut controller_listen = None;
    let mut builder_settings = Vec::new();
    for (k, v) in settings {
        match k.as_str() {
            "log.dirs" | "log.dir" => data_dir = PathBuf::from(v.split(',').next().unwrap_or(&v)),
            "node.id" | "broker.id" => node_id = v.parse().context("node.id must be an integer")?,
            "controller.quorum.voters" => voters = Some(v),
            "controller.listener" => controller_listen = Some(parse_listener(&v)?),
            _ => builder_settings.push((k, v)),
        }
    }
    // The flags beat the config file and --set: `--listen` is `listeners` (a bare
    // host:port is a PLAINTEXT listener), `--advertised-listener host:port` the first
    // listener's advertised address (or a whole `advertised.listeners` list).
    if let Some(l) = &args.listen {
        builder_settings.push(("listeners".into(), l.clone()));
    }
    if let Some(a) = &args.advertised_listener {
        if a.contains("://") {
            builder_settings.push(("advertised.listeners".into(), a.clone()));
        } else {
            advertised = Some(parse_listener(a)?);
        }
    }
    if let Some(d) = &args.data_dir {
        data_dir = d.clone();
    }
    if let Some(id) = args.node_id {
        node_id = id;
    }
    if let Some(v) = &args.voters {
        voters = Some(v.clone());
    }
    if let Some(l) = &args.controller_listen {
        controller_listen = Some(parse_listener(l)?);
    }
    let mut builder = Broker::builder().node_id(node_id).memory(args.memory);
    if let Some(levels) = crate::logging::levels() {
        builder = builder.log_levels(levels);
    }
    if !args.memory {
        builder = builder.data_dir(&data_dir);
    }
    if let Some((host, port)) = advertised {
        builder = builder.advertised(host, port);
    }
    if let Some(spec) = &voters {
        let voters = brook_broker::config::parse_voters(spec)?;
        // Where the other nodes reach this one: --controller-listen, or a listener in
        // `listeners` named by `controller.listener.names`.
        builder = match controller_listen {
            Some((host, port)) => builder.cluster(resolve(&host, port)?, voters),
            None => builder.voters(voters),
        };
    }
    // The admin listener is on by default for `brook serve` (the library's default is
    // off, so embedded brokers and tests never fight over the port).
    builder = builder.set("admin.listeners", DEFAULT_ADMIN_LISTENER)?;
    for (k, v) in &builder_settings {
        builder = builder
            .set(k, v)
            .with_context(|| format!("config {k}={v}"))?;
    }
    for spec in &args.add_scram {
        builder = builder.add_scram(spec)?;
    }
    let started = std::time::Instant::now();
    let broker = builder.start().await?;
    tracing::info!(
        addr = %broker.local_addr(),
        data_dir = %if args.memory { "<memory>".into() } else { data_dir.display().to_string() },
        startup_ms = started.elapsed().as_millis() as u64,
        "ready"
    );
    wait_for_signal().await?;
    tracing::info!("shutting down");
    broker.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners() {
        assert_eq!(
            parse_listener("PLAINTEXT://127.0.0.1:9092").unwrap(),
            ("127.0.0.1".into(), 9092)
        );
        assert_eq!(
            parse_listener("localhost:1").unwrap(),
            ("localhost".into(), 1)
        );
        assert_eq!(parse_listener("[::1]:5").unwrap(), ("::1".into(), 5));
        assert!(parse_listener("nope").is_err());
    }
}
