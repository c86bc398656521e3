//! `brook`: the broker (`brook serve`) and the client tools, in one binary.

mod access;
mod bench;
mod check_log;
mod cli;
mod client;
mod cluster;
mod consume;
mod dev;
mod groups;
mod logging;
mod member;
mod print;
mod security;
mod serve;
mod tools;
mod topics;
mod when;

use std::process::ExitCode;

/// Requests and batches of up to a few MiB are allocated and freed at a high rate on
/// both sides of a connection; glibc's malloc hands such blocks back to the kernel and
/// faults fresh zeroed pages in for the next one (measured: page faults were the
/// largest cost of `brook bench produce`), where mimalloc keeps reusing them. Built
/// with `no_thp`: on a kernel with transparent huge pages set to `always`, mimalloc's
/// regions were backed by 2 MiB pages and the broker's peak RSS tripled (15 → 47 MiB
/// for the same load), for no measurable speed.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::Parser;

/// Errors are printed as one tidy chain (`error: outer: cause`), never as a backtrace.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args = cli::Cli::parse();
    if !args.is_serve() {
        // `brook consume ... | head` should end quietly when head exits, as Unix tools
        // do, not panic on the closed pipe. The broker keeps ignoring SIGPIPE.
        // SAFETY: the default disposition installs no handler of ours, and no other
        // thread runs yet.
        unsafe {
            let _ = nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGPIPE,
                nix::sys::signal::SigHandler::SigDfl,
            );
        }
    }
    // openraft reports every failed RPC to a down peer (several a second); brook-raft
    // logs losing and regaining a peer once each instead.
    logging::init(if args.is_serve() {
        "info,openraft=warn,openraft::replication=off"
    } else {
        "warn"
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(cli::run(args))
}
