//! `brook dev cluster`: a local multi-node cluster for development and demos.
//!
//! Starts N `brook serve` child processes of this same executable. Node i listens for
//! clients on 127.0.0.i:PORT and for the other nodes on 127.0.0.i:PORT+1 (every
//! 127.0.0.0/8 address is loopback on Linux), keeps its data in DATA_DIR/node-i and its
//! output in DATA_DIR/node-i.log. Every node is a metadata voter. Ctrl-C or SIGTERM is
//! forwarded to the children, which are then waited for.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How long a node may take to accept client connections after it was spawned.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// A node that dies this soon after its port opened still counts as failing to start
/// (it may have lost a bind race, or the port answering was not its own).
const STARTUP_SETTLE: Duration = Duration::from_secs(1);
/// How long the children get to shut down after SIGTERM before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

#[derive(Subcommand)]
pub enum DevCommand {
    /// Run a local cluster: node i serves clients on 127.0.0.i:PORT, peers on :PORT+1.
    Cluster(ClusterArgs),
}

#[derive(Args)]
pub struct ClusterArgs {
    /// Number of nodes, all of them metadata voters.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=254))]
    pub nodes: u8,
    /// Parent directory: node i keeps its data in DIR/node-i and its log in DIR/node-i.log.
    #[arg(long, default_value = "brook-cluster")]
    pub data_dir: PathBuf,
    /// Client port of every node; nodes talk to each other on PORT+1.
    #[arg(long, default_value_t = 9092)]
    pub port: u16,
    /// Broker config for every node, repeatable: `--set min.insync.replicas=2`.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub settings: Vec<String>,
}

pub async fn run(cmd: DevCommand) -> Result<()> {
    match cmd {
        DevCommand::Cluster(args) => cluster(args).await,
    }
}

#[derive(Debug, Clone, PartialEq)]
struct NodePlan {
    id: u8,
    client: SocketAddrV4,
    controller: SocketAddrV4,
    data_dir: PathBuf,
    log: PathBuf,
}

fn plan(nodes: u8, port: u16, data_dir: &Path) -> Result<Vec<NodePlan>> {
    if nodes == 0 || nodes == 255 {
        bail!("--nodes must be between 1 and 254");
    }
    let controller_port = port
        .checked_add(1)
        .filter(|_| port != 0)
        .ok_or_else(|| anyhow!("--port must be between 1 and 65534 (nodes also use PORT+1)"))?;
    Ok((1..=nodes)
        .map(|id| {
            let ip = Ipv4Addr::new(127, 0, 0, id);
            NodePlan {
                id,
                client: SocketAddrV4::new(ip, port),
                controller: SocketAddrV4::new(ip, controller_port),
                data_dir: data_dir.join(format!("node-{id}")),
                log: data_dir.join(format!("node-{id}.log")),
            }
        })
        .collect())
}

/// `1@127.0.0.1:9093,2@127.0.0.2:9093,...`: the same for every node.
fn voters(nodes: &[NodePlan]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}@{}", n.id, n.controller))
        .collect::<Vec<_>>()
        .join(",")
}

fn bootstrap(nodes: &[NodePlan]) -> String {
    nodes
        .iter()
        .map(|n| n.client.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The user's `--set`s, after defaults that make topics replicated out of the box
/// (replication factor min(N, 3), as Kafka's `offsets.topic.replication.factor`).
fn settings(nodes: u8, user: &[String]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for s in user {
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| anyhow!("--set expects NAME=VALUE, got '{s}'"))?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    let rf = nodes.min(3).to_string();
    for name in [
        "default.replication.factor",
        "offsets.topic.replication.factor",
    ] {
        if !out.iter().any(|(k, _)| k == name) {
            out.insert(0, (name.to_string(), rf.clone()));
        }
    }
    Ok(out)
}

fn serve_args(node: &NodePlan, voters: &str, settings: &[(String, String)]) -> Vec<String> {
    let mut args = vec![
        "serve".to_string(),
        "--node-id".to_string(),
        node.id.to_string(),
        "--listen".to_string(),
        node.client.to_string(),
        "--controller-listen".to_string(),
        node.controller.to_string(),
        "--voters".to_string(),
        voters.to_string(),
        "--data-dir".to_string(),
        node.data_dir.display().to_string(),
        // Each node has its own loopback address, so all can use the usual admin port.
        "--set".to_string(),
        format!("admin.listeners=http://{}:9644", node.client.ip()),
    ];
    for (k, v) in settings {
        args.push("--set".to_string());
        args.push(format!("{k}={v}"));
    }
    args
}

struct Running {
    plan: NodePlan,
    child: Child,
    /// Set once the child has been reaped.
    exited: Option<ExitStatus>,
}

impl Running {
    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exited = Some(status);
            }
        }
        self.exited
    }

    fn terminate(&mut self) {
        if self.poll_exit().is_none() {
            // The child is not reaped yet, so its pid still names it.
            send_sigterm(self.child.id());
        }
    }

    fn kill(&mut self) {
        if self.poll_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }
}

fn send_sigterm(pid: u32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => status.to_string(),
    }
}

/// The last `lines` lines of a log file, indented, for error messages.
fn log_tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(16 * 1024)));
        let mut buf = Vec::new();
        let _ = f.read_to_end(&mut buf);
        text = String::from_utf8_lossy(&buf).into_owned();
    }
    let all: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in &all[all.len().saturating_sub(lines)..] {
        let _ = writeln!(out, "    {line}");
    }
    out
}

fn spawn(exe: &Path, node: &NodePlan, args: &[String]) -> Result<Child> {
    fs::create_dir_all(&node.data_dir)
        .with_context(|| format!("creating {}", node.data_dir.display()))?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("opening {}", node.log.display()))?;
    writeln!(log, "===== brook {}", args.join(" "))?;
    let stderr = log.try_clone()?;
    Command::new(exe)
        .args(args)
        .env("NO_COLOR", "1") // the logs are files
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(stderr)
        .spawn()
        .with_context(|| format!("starting node {} ({})", node.id, exe.display()))
}

fn print_table(nodes: &[NodePlan], data_dir: &Path) {
    println!(
        "Brook dev cluster: {} node{}, data in {}",
        nodes.len(),
        if nodes.len() == 1 { "" } else { "s" },
        data_dir.display()
    );
    println!();
    let rows: Vec<[String; 5]> = nodes
        .iter()
        .map(|n| {
            [
                n.id.to_string(),
                n.client.to_string(),
                n.controller.to_string(),
                n.data_dir.display().to_string(),
                n.log.display().to_string(),
            ]
        })
        .collect();
    let header = ["node", "client", "controller", "data", "log"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::from(" ");
        for (cell, w) in cells.iter().zip(widths) {
            let _ = write!(s, " {cell:<w$} ");
        }
        println!("{}", s.trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    println!();
    println!("bootstrap: {}", bootstrap(nodes));
}

/// Waits until every node accepts client connections. Fails as soon as one exits.
async fn wait_started(nodes: &mut [Running], int: &mut Signal, term: &mut Signal) -> Result<bool> {
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut ready = vec![false; nodes.len()];
    let mut all_ready_at: Option<Instant> = None;
    loop {
        for (i, n) in nodes.iter_mut().enumerate() {
            if let Some(status) = n.poll_exit() {
                bail!(
                    "node {} exited during start-up ({}); last lines of {}:\n{}",
                    n.plan.id,
                    describe(status),
                    n.plan.log.display(),
                    log_tail(&n.plan.log, 20)
                );
            }
            if !ready[i] {
                let connect = tokio::net::TcpStream::connect(n.plan.client);
                ready[i] = matches!(tokio::time::timeout(POLL, connect).await, Ok(Ok(_)));
            }
        }
        if ready.iter().all(|r| *r) {
            let since = *all_ready_at.get_or_insert_with(Instant::now);
            if since.elapsed() >= STARTUP_SETTLE {
                return Ok(true);
            }
        }
        if all_ready_at.is_none() && Instant::now() > deadline {
            let slow: Vec<String> = nodes
                .iter()
                .zip(&ready)
                .filter(|(_, r)| !**r)
                .map(|(n, _)| format!("node {} ({})", n.plan.id, n.plan.client))
                .collect();
            bail!(
                "not accepting connections after {}s: {} (see the node logs)",
                STARTUP_TIMEOUT.as_secs(),
                slow.join(", ")
            );
        }
        tokio::select! {
            _ = int.recv() => return Ok(false),
            _ = term.recv() => return Ok(false),
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// SIGTERM to every child, then waits; SIGKILL after STOP_TIMEOUT or a second signal.
async fn stop_all(nodes: &mut [Running], int: &mut Signal, term: &mut Signal) {
    stop_nodes(nodes, int, term, true).await
}

/// [`stop_all`]; `announce`: say so when the nodes have to be killed (not when the
/// cluster failed to start: that error is what the user needs to read first).
async fn stop_nodes(nodes: &mut [Running], int: &mut Signal, term: &mut Signal, announce: bool) {
    for n in nodes.iter_mut() {
        n.terminate();
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        if nodes.iter_mut().all(|n| n.poll_exit().is_some()) {
            return;
        }
        if Instant::now() > deadline {
            if announce {
                eprintln!(
                    "nodes still running after {}s: killing them",
                    STOP_TIMEOUT.as_secs()
                );
            }
            break;
        }
        tokio::select! {
            _ = int.recv() => { eprintln!("second signal: killing the nodes"); break }
            _ = term.recv() => { eprintln!("second signal: killing the nodes"); break }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    for n in nodes.iter_mut() {
        n.kill();
    }
}

async fn cluster(args: ClusterArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the brook executable")?;
    let plan = plan(args.nodes, args.port, &args.data_dir)?;
    let settings = settings(args.nodes, &args.settings)?;
    let voters = voters(&plan);
    fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;

    print_table(&plan, &args.data_dir);
    let mut nodes: Vec<Running> = Vec::new();
    for p in &plan {
        match spawn(&exe, p, &serve_args(p, &voters, &settings)) {
            Ok(child) => nodes.push(Running {
                plan: p.clone(),
                child,
                exited: None,
            }),
            Err(e) => {
                stop_all(&mut nodes, &mut int, &mut term).await;
                return Err(e);
            }
        }
    }
    match wait_started(&mut nodes, &mut int, &mut term).await {
        Ok(true) => {}
        Ok(false) => {
            println!("interrupted during start-up: stopping the nodes");
            stop_all(&mut nodes, &mut int, &mut term).await;
            return Ok(());
        }
        Err(e) => {
            stop_nodes(&mut nodes, &mut int, &mut term, false).await;
            return Err(e);
        }
    }
    println!(
        "ready. Ctrl-C stops every node (logs: tail -f {}/node-*.log)",
        args.data_dir.display()
    );

    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
        for n in nodes.iter_mut() {
            let known = n.exited.is_some();
            if let Some(status) = n.poll_exit() {
                if !known {
                    println!(
                        "node {} exited ({}); the others keep running. Last lines of {}:\n{}",
                        n.plan.id,
                        describe(status),
                        n.plan.log.display(),
                        log_tail(&n.plan.log, 5)
                    );
                }
            }
        }
        if nodes.iter().all(|n| n.exited.is_some()) {
            bail!("every node has exited");
        }
    }
    let alive: Vec<bool> = nodes.iter().map(|n| n.exited.is_none()).collect();
    println!(
        "stopping {} node(s)...",
        alive.iter().filter(|a| **a).count()
    );
    stop_all(&mut nodes, &mut int, &mut term).await;
    let mut failed = Vec::new();
    for (n, was_alive) in nodes.iter().zip(alive) {
        let status = n.exited.map_or_else(|| "unknown".to_string(), describe);
        if was_alive {
            println!("node {}: {status}", n.plan.id);
            if !n.exited.is_some_and(|s| s.success()) {
                failed.push(n.plan.id.to_string());
            }
        }
    }
    if !failed.is_empty() {
        bail!("node(s) {} did not stop cleanly", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_voters() {
        let p = plan(3, 9092, Path::new("dc")).unwrap();
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].client.to_string(), "127.0.0.2:9092");
        assert_eq!(p[1].controller.to_string(), "127.0.0.2:9093");
        assert_eq!(p[2].data_dir, Path::new("dc/node-3"));
        assert_eq!(p[2].log, Path::new("dc/node-3.log"));
        assert_eq!(
            voters(&p),
            "1@127.0.0.1:9093,2@127.0.0.2:9093,3@127.0.0.3:9093"
        );
        assert_eq!(
            bootstrap(&p),
            "127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092"
        );
        assert!(plan(3, 65535, Path::new("x")).is_err());
        assert!(plan(0, 9092, Path::new("x")).is_err());
    }

    #[test]
    fn serve_command_line() {
        let p = plan(2, 19092, Path::new("d")).unwrap();
        let s = settings(2, &["min.insync.replicas=2".into()]).unwrap();
        let args = serve_args(&p[1], &voters(&p), &s);
        assert_eq!(
            args.join(" "),
            "serve --node-id 2 --listen 127.0.0.2:19092 --controller-listen 127.0.0.2:19093 \
             --voters 1@127.0.0.1:19093,2@127.0.0.2:19093 --data-dir d/node-2 \
             --set admin.listeners=http://127.0.0.2:9644 --set offsets.topic.replication.factor=2 --set default.replication.factor=2 \
             --set min.insync.replicas=2"
        );
        // The user's value wins over the default.
        let s = settings(5, &["default.replication.factor=1".into()]).unwrap();
        assert!(s.contains(&("default.replication.factor".into(), "1".into())));
        assert!(s.contains(&("offsets.topic.replication.factor".into(), "3".into())));
        assert!(settings(3, &["nope".into()]).is_err());
    }
}
