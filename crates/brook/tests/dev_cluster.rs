//! `brook dev cluster` when a node cannot start: the launcher stops the others and
//! exits non-zero with an `error: node N exited during start-up ...` message (node 1
//! here, whose port is taken; any node with a binary whose `serve` lacks cluster flags).

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn dev_cluster_fails_cleanly_when_a_node_cannot_start() {
    // Node 1's client port (127.0.0.1:PORT) is taken, so node 1 cannot bind it.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    if port == u16::MAX {
        return; // PORT+1 would not exist
    }
    let dir = std::env::temp_dir().join(format!("brook-dev-cluster-test-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_brook"))
        .args([
            "dev",
            "cluster",
            "--nodes",
            "2",
            "--port",
            &port.to_string(),
        ])
        .arg("--data-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("brook dev cluster still running after 90 s although node 1 cannot start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit status {}", out.status);
    assert!(
        stderr.starts_with("error: node ") && stderr.contains(" exited during start-up ("),
        "stderr: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bootstrap: 127.0.0.1:"),
        "the node table is printed first"
    );
}
