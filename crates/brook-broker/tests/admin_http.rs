//! The admin HTTP listener (`admin.listeners`) of an embedded broker: its routes, its
//! answers to bad HTTP, its settings and its start errors. The figures `/metrics`
//! reports are checked against real clients in `tests/clients/test_metrics.py`.

use std::net::SocketAddr;
use std::time::Duration;

use brook_broker::config::{broker_setting_kind, ConfigType};
use brook_broker::{Broker, BrokerConfig, StartError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn broker_with(admin: &str) -> Result<Broker, StartError> {
    Broker::builder()
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        .memory(true)
        .set("admin.listeners", admin)
        .unwrap()
        .start()
        .await
}

/// Sends `request` as is and returns the status code and the whole answer.
async fn raw(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before it has read everything sent.
    let _ = stream.write_all(request).await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the admin listener answers within 10 s")
        .ok();
    let answer = String::from_utf8_lossy(&answer).to_string();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
    (status, answer)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    raw(addr, request.as_bytes()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_metrics_answer_and_bad_requests_get_4xx() {
    let broker = broker_with("http://127.0.0.1:0").await.unwrap();
    let admin = broker.admin_addr().expect("admin listener bound");

    assert_eq!(get(admin, "/health").await.0, 200);
    assert_eq!(get(admin, "/ready").await.0, 200);
    let (status, metrics) = get(admin, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("text/plain; version=0.0.4"), "{metrics}");
    for name in [
        "brook_leader_partitions 0",
        "brook_partitions 0",
        "brook_active_connections{listener=\"PLAINTEXT\"} 0",
        "# TYPE brook_group_lag gauge",
    ] {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }

    // The web console (admin_http::console).
    assert_eq!(get(admin, "/").await.0, 200);
    for path in [
        "/nope",
        "/console.js/../../etc/passwd",
        "/metrics/../../etc/passwd",
        "/../metrics",
        "/%2e%2e/metrics",
        "/metrics%00",
    ] {
        assert_eq!(get(admin, path).await.0, 404, "{path}");
    }
    let (status, _) = raw(
        admin,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert_eq!(status, 405);
    // A claimed 10 GB body is never read.
    let (status, _) = raw(admin, b"PUT /health HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\nConnection: close\r\n\r\n").await;
    assert_eq!(status, 405);
    // Headers far beyond any limit.
    let huge = format!(
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2 << 20)
    );
    let (status, _) = raw(admin, huge.as_bytes()).await;
    assert!((400..500).contains(&status), "{status}");
    let (status, _) = raw(admin, b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    assert_eq!(status, 400);
    // Still serving after all that.
    assert_eq!(get(admin, "/health").await.0, 200);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_is_off_by_default_and_an_address_in_use_is_a_start_error() {
    let off = broker_with("").await.unwrap();
    assert_eq!(off.admin_addr(), None);
    let on = broker_with("http://127.0.0.1:0").await.unwrap();
    let taken = on.admin_addr().unwrap();
    let err = broker_with(&format!("http://{taken}"))
        .await
        .err()
        .expect("the port is taken");
    let message = err.to_string();
    assert!(
        message.contains("admin.listeners") && message.contains(&taken.to_string()),
        "{message}"
    );
    on.shutdown().await;
    off.shutdown().await;
}

#[test]
fn admin_listeners_is_empty_or_one_http_or_https_address() {
    let mut c = BrokerConfig::new("127.0.0.1:9092".parse().unwrap(), None);
    for ok in [
        "",
        "http://127.0.0.1:9644",
        "http://localhost:0",
        "http://[::1]:9644/",
        "https://h:1",
    ] {
        assert!(c.set("admin.listeners", ok).is_ok(), "{ok}");
    }
    for bad in [
        "127.0.0.1:9644",
        "ftp://h:1",
        "https://h",
        "http://h",
        "http://h:99999",
        "http://:1",
        "http://a:1,http://b:2",
        "http://h:1/metrics",
    ] {
        assert!(c.set("admin.listeners", bad).is_err(), "{bad}");
    }
    c.set("admin.listeners", "http://0.0.0.0:9644").unwrap();
    assert_eq!(c.broker_settings().admin_listeners, "http://0.0.0.0:9644");
    assert_eq!(
        broker_setting_kind("admin.listeners"),
        Some(ConfigType::String)
    );
    assert!(c.set("metrics.partition.labels.enable", "no").is_err());
    assert!(c.set("metrics.partition.labels.enable", "false").is_ok());
}
