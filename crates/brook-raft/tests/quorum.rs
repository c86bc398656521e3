//! Quorums of in-process nodes wired by an in-memory transport that can cut a node off.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_meta::{MetadataImage, MetadataRecord};
use brook_raft::{Quorum, QuorumConfig, QuorumError, QuorumTuning, Transport};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Net {
    nodes: Mutex<HashMap<u64, Arc<Quorum>>>,
    cut: Mutex<HashSet<u64>>,
}

impl Net {
    fn is_cut(&self, id: u64) -> bool {
        self.cut.lock().unwrap().contains(&id)
    }
    fn cut(&self, id: u64) {
        self.cut.lock().unwrap().insert(id);
    }
    fn heal(&self, id: u64) {
        self.cut.lock().unwrap().remove(&id);
    }
}

/// One node's view of the network: knows who is sending.
struct Link {
    from: u64,
    net: Arc<Net>,
}

#[async_trait::async_trait]
impl Transport for Link {
    async fn send(&self, target: u64, _addr: &str, payload: Vec<u8>) -> io::Result<Vec<u8>> {
        let refused = || io::Error::new(io::ErrorKind::ConnectionRefused, "cut");
        if self.net.is_cut(self.from) || self.net.is_cut(target) {
            return Err(refused());
        }
        let node = self.net.nodes.lock().unwrap().get(&target).cloned();
        let node = node.ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "no node"))?;
        let response = node.handle(&payload).await;
        if self.net.is_cut(self.from) || self.net.is_cut(target) {
            return Err(refused());
        }
        Ok(response)
    }
}

struct Cluster {
    net: Arc<Net>,
    root: PathBuf,
    ids: Vec<u64>,
    tuning: QuorumTuning,
}

fn config(root: &Path, id: u64, ids: &[u64]) -> QuorumConfig {
    QuorumConfig {
        node_id: id,
        voters: ids.iter().map(|&v| (v, format!("node-{v}"))).collect(),
        dir: root.join(format!("node-{id}")),
        heartbeat_interval_ms: 50,
        election_timeout_min_ms: 300,
        election_timeout_max_ms: 600,
    }
}

impl Cluster {
    async fn start(root: &Path, ids: &[u64], tuning: QuorumTuning) -> Cluster {
        let net = Arc::new(Net::default());
        let starts = ids.iter().map(|&id| {
            let link = Arc::new(Link {
                from: id,
                net: net.clone(),
            });
            Quorum::start_with_tuning(config(root, id, ids), link, tuning.clone())
        });
        for (id, q) in ids.iter().zip(futures_join(starts).await) {
            let q = q.unwrap_or_else(|e| panic!("node {id} failed to start: {e}"));
            net.nodes.lock().unwrap().insert(*id, Arc::new(q));
        }
        Cluster {
            net,
            root: root.to_path_buf(),
            ids: ids.to_vec(),
            tuning,
        }
    }

    fn node(&self, id: u64) -> Arc<Quorum> {
        self.net.nodes.lock().unwrap()[&id].clone()
    }

    fn dir(&self, id: u64) -> PathBuf {
        config(&self.root, id, &self.ids).dir
    }

    /// Waits until every node in `among` names the same leader, which is in `among` and
    /// knows it leads.
    async fn leader_among(&self, among: &[u64]) -> u64 {
        eventually("an agreed leader", || {
            let first = self.node(among[0]).leader()?;
            let agreed = among
                .iter()
                .all(|&id| self.node(id).leader() == Some(first));
            (agreed && among.contains(&first) && self.node(first).is_leader()).then_some(first)
        })
        .await
    }

    async fn converge(&self, among: &[u64], expected: &MetadataImage) {
        for &id in among {
            let node = self.node(id);
            eventually(&format!("node {id} to apply everything"), || {
                (*node.image() == *expected).then_some(())
            })
            .await;
        }
    }

    async fn shutdown(self) {
        let nodes: Vec<Arc<Quorum>> = self
            .net
            .nodes
            .lock()
            .unwrap()
            .drain()
            .map(|(_, q)| q)
            .collect();
        for q in nodes {
            q.shutdown().await;
        }
    }

    async fn restart(self) -> Cluster {
        let (root, ids, tuning) = (self.root.clone(), self.ids.clone(), self.tuning.clone());
        self.shutdown().await;
        Cluster::start(&root, &ids, tuning).await
    }
}

async fn futures_join<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("task"));
    }
    out
}

async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Records for append number `i`, and the image they should produce.
fn batch(i: i64) -> Vec<MetadataRecord> {
    vec![
        MetadataRecord::ClusterCreated {
            cluster_id: format!("cluster-{i}"),
        },
        MetadataRecord::ProducerIdsAllocated {
            next_block_start: 1000 * (i + 1),
        },
    ]
}

fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
    for r in records {
        image.apply(r);
    }
}

/// Appends on the current leader, following NotLeader while leadership settles.
async fn append_on_leader(c: &Cluster, among: &[u64], records: Vec<MetadataRecord>) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let leader = c.leader_among(among).await;
        match c.node(leader).append(records.clone()).await {
            Ok(()) => return leader,
            Err(QuorumError::NotLeader { .. }) if Instant::now() < deadline => {}
            Err(e) => panic!("append on leader {leader}: {e}"),
        }
    }
}

fn tmp() -> tempfile::TempDir {
    // RUST_LOG=brook_raft=debug,openraft=info shows what the nodes do.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_commit_converge_and_followers_refuse() {
    let dir = tmp();
    let c = Cluster::start(dir.path(), &[1, 2, 3], QuorumTuning::default()).await;
    let all = [1, 2, 3];
    let leader = c.leader_among(&all).await;
    let mut expected = MetadataImage::default();

    let mut watch = c.node(leader).subscribe();
    watch.borrow_and_update();
    for i in 0..3 {
        let records = batch(i);
        apply_all(&mut expected, &records);
        c.node(leader)
            .append(records)
            .await
            .expect("append on the leader");
        // Applied on the leader by the time append returns.
        assert_eq!(*c.node(leader).image(), expected);
    }
    assert!(watch.has_changed().expect("watch open"));
    c.converge(&all, &expected).await;

    let follower = *all.iter().find(|&&id| id != leader).expect("a follower");
    match c.node(follower).append(batch(9)).await {
        Err(QuorumError::NotLeader { leader: l }) => assert_eq!(l, Some(leader)),
        other => panic!("append on a follower: {other:?}"),
    }
    for id in all {
        assert_eq!(
            *c.node(id).leader_watch().borrow(),
            Some(leader),
            "node {id}"
        );
        assert_eq!(c.node(id).is_leader(), id == leader);
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failover_and_catch_up() {
    let dir = tmp();
    let c = Cluster::start(dir.path(), &[1, 2, 3], QuorumTuning::default()).await;
    let all = [1, 2, 3];
    let mut expected = MetadataImage::default();
    apply_all(&mut expected, &batch(0));
    let old = append_on_leader(&c, &all, batch(0)).await;
    c.converge(&all, &expected).await;

    c.net.cut(old);
    let rest: Vec<u64> = all.iter().copied().filter(|&id| id != old).collect();
    let started = Instant::now();
    let new = c.leader_among(&rest).await;
    assert_ne!(new, old);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "election took {:?}",
        started.elapsed()
    );
    eprintln!("new leader {new} after {:?}", started.elapsed());
    for i in 1..3 {
        apply_all(&mut expected, &batch(i));
        append_on_leader(&c, &rest, batch(i)).await;
    }
    c.converge(&rest, &expected).await;

    c.net.heal(old);
    c.converge(&all, &expected).await;
    let leader = c.leader_among(&all).await;
    apply_all(&mut expected, &batch(3));
    append_on_leader(&c, &all, batch(3)).await;
    c.converge(&all, &expected).await;
    eprintln!("leader after heal: {leader}");
    c.shutdown().await;
}

fn starts_with_purge_marker(dir: &Path) -> bool {
    std::fs::read(dir.join("entries.log"))
        .map(|b| b.len() > 8 && b[8..].starts_with(b"{\"purged\""))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_restores_images_through_snapshot_and_purge() {
    let dir = tmp();
    let tuning = QuorumTuning {
        snapshot_every_entries: 5,
        keep_entries_after_snapshot: 0,
    };
    let c = Cluster::start(dir.path(), &[1, 2, 3], tuning).await;
    let all = [1, 2, 3];
    let mut expected = MetadataImage::default();
    for i in 0..23 {
        apply_all(&mut expected, &batch(i));
        append_on_leader(&c, &all, batch(i)).await;
    }
    c.converge(&all, &expected).await;
    for id in all {
        let d = c.dir(id);
        eventually(&format!("node {id} to snapshot and purge"), || {
            (d.join("snapshot.json").exists() && starts_with_purge_marker(&d)).then_some(())
        })
        .await;
    }

    let c = c.restart().await;
    // Snapshot plus committed entries re-applied at start: no election needed.
    for id in all {
        assert_eq!(
            *c.node(id).image(),
            expected,
            "node {id} right after restart"
        );
    }
    apply_all(&mut expected, &batch(100));
    append_on_leader(&c, &all, batch(100)).await;
    c.converge(&all, &expected).await;

    // A follower that was away while the others snapshotted and purged gets a snapshot.
    let leader = c.leader_among(&all).await;
    let away = *all.iter().find(|&&id| id != leader).expect("a follower");
    c.net.cut(away);
    let rest: Vec<u64> = all.iter().copied().filter(|&id| id != away).collect();
    for i in 200..212 {
        apply_all(&mut expected, &batch(i));
        append_on_leader(&c, &rest, batch(i)).await;
    }
    c.converge(&rest, &expected).await;
    c.net.heal(away);
    c.converge(&all, &expected).await;

    let c = c.restart().await;
    for id in all {
        assert_eq!(
            *c.node(id).image(),
            expected,
            "node {id} after second restart"
        );
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_quorum() {
    let dir = tmp();
    let c = Cluster::start(dir.path(), &[1], QuorumTuning::default()).await;
    let mut expected = MetadataImage::default();
    for i in 0..3 {
        apply_all(&mut expected, &batch(i));
        assert_eq!(append_on_leader(&c, &[1], batch(i)).await, 1);
    }
    assert_eq!(*c.node(1).image(), expected);
    let c = c.restart().await;
    assert_eq!(*c.node(1).image(), expected);
    apply_all(&mut expected, &batch(3));
    append_on_leader(&c, &[1], batch(3)).await;
    assert_eq!(*c.node(1).image(), expected);
    let node = c.node(1);
    c.shutdown().await;
    assert!(matches!(
        node.append(batch(4)).await,
        Err(QuorumError::ShuttingDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_tail_of_the_entries_file_is_cut_on_open() {
    let dir = tmp();
    let c = Cluster::start(dir.path(), &[1], QuorumTuning::default()).await;
    let mut images = Vec::new();
    let mut expected = MetadataImage::default();
    for i in 0..3 {
        apply_all(&mut expected, &batch(i));
        append_on_leader(&c, &[1], batch(i)).await;
        images.push(expected.clone());
    }
    let log = c.dir(1).join("entries.log");
    c.shutdown().await;

    // Garbage after the last whole frame (a torn append): cut, nothing lost.
    let valid = std::fs::metadata(&log).expect("log").len();
    let mut bytes = std::fs::read(&log).expect("read");
    bytes.extend_from_slice(&[0xab; 37]);
    std::fs::write(&log, &bytes).expect("write");
    let c = Cluster::start(dir.path(), &[1], QuorumTuning::default()).await;
    assert_eq!(*c.node(1).image(), expected);
    apply_all(&mut expected, &batch(3));
    append_on_leader(&c, &[1], batch(3)).await;
    images.push(expected.clone());
    let after = std::fs::read(&log).expect("read");
    assert!(
        !after[valid as usize..].starts_with(&[0xab; 8]),
        "garbage not cut"
    );
    c.shutdown().await;

    // Half of the last frame: that entry is gone, the rest is intact and the node works.
    let len = std::fs::metadata(&log).expect("log").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open");
    file.set_len(len - 5).expect("truncate");
    drop(file);
    let c = Cluster::start(dir.path(), &[1], QuorumTuning::default()).await;
    let node = c.node(1);
    eventually("the image without the torn entry", || {
        (*node.image() == images[2]).then_some(())
    })
    .await;
    let mut expected = images[2].clone();
    apply_all(&mut expected, &batch(4));
    append_on_leader(&c, &[1], batch(4)).await;
    assert_eq!(*node.image(), expected);
    let c = c.restart().await;
    assert_eq!(*c.node(1).image(), expected);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_rpc_payloads_get_an_error_response() {
    let dir = tmp();
    let c = Cluster::start(dir.path(), &[1], QuorumTuning::default()).await;
    let node = c.node(1);
    let deep = "[".repeat(100_000);
    for payload in [
        &b""[..],
        b"\xff\xfe garbage",
        b"{}",
        b"{\"to\":1,\"rpc\":{\"vote\":{}}}",
        b"{\"to\":2,\"rpc\":{\"append_entries\":null}}",
        deep.as_bytes(),
    ] {
        let resp = node.handle(payload).await;
        let text = String::from_utf8(resp).expect("utf-8 json");
        assert!(text.contains("rejected"), "{text}");
    }
    c.shutdown().await;
}
