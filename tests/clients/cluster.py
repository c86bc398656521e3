"""Multi-broker clusters for the client tests, with a fault-injecting network.

`Cluster` runs N `brook serve` processes on 127.0.0.1 (node ids 1..N), every node a
metadata voter. Between every ORDERED pair of nodes (i -> j) sits a small TCP proxy in
this process: node i's `--voters` names node j by the address of proxy i->j, so every
raft, controller and replica-fetch connection from i to j goes through it. The proxies
can cut a node off (`isolate`) while its client port stays reachable, like a real
network partition between brokers.

    def test_x(cluster):                       # 3 nodes, started, settings below
        cluster.create_topic("t", partitions=3, replication_factor=3)
        leader = cluster.leader("t", 0)
        cluster.kill(leader)                   # SIGKILL
        new, secs = cluster.wait_for_leader("t", 0, not_in={leader})
        cluster.start(leader)                  # same flags, same data dir
        cluster.wait_for_isr("t", 0, {1, 2, 3})
        cluster.isolate(2); ...; cluster.heal()

    def test_y(cluster_factory):
        c = cluster_factory(5, {"min.insync.replicas": 3})

Settings: `CLUSTER_SETTINGS` (short session timeouts so failover takes seconds), then
the `brook_config` markers (as for the `brook` fixture), then the factory's arguments.
Each node's output goes to `<tmp>/clusterK/nodeN/broker.log`; the tails are attached to
the report of a failed test (conftest's hook reads `item._brook_brokers`). Every
cluster event (kill, start, isolate, heal, leader changes seen by the wait helpers) is
printed with a timestamp, so a failed test's captured stdout is its timeline.

Metadata helpers ask one given node (a Metadata request on a connection of their own;
`.topics[t].partitions[p].leader/.isrs/.replicas/.leader_epoch` as in confluent-kafka),
so "what does node 3 think" is exactly that.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

import kafka_wire as kw
from procs import LIVE, fmt, marker_settings, normalize_settings, pick_port

# Settings every test cluster starts with (Kafka names; see the README's list).
CLUSTER_SETTINGS: dict[str, str] = {
    "admin.listeners": "http://127.0.0.1:0",  # not 9644 for every node
    "broker.session.timeout.ms": "3000",
    "broker.heartbeat.interval.ms": "500",
    "replica.lag.time.max.ms": "3000",
    "unclean.leader.election.enable": "false",
}

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0

_T0 = time.monotonic()


def event(msg: str) -> None:
    """One line of the test's timeline (captured stdout; shown when a test fails)."""
    print(f"[{time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:7.2f}s] {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# the fault-injecting network
# ---------------------------------------------------------------------------------------

def _abort(sock: socket.socket) -> None:
    """Closes at once, with a RST, waking any thread blocked in recv on it."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Pair:
    """One proxied connection: the accepted socket and the one to the target."""

    def __init__(self, down: socket.socket, up: socket.socket):
        self.down, self.up = down, up
        self._closed = False
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        _abort(self.down)
        _abort(self.up)


class Link:
    """The proxy for node `src` -> node `dst`: listens on 127.0.0.1:`port` and forwards
    each connection to `target()` (dst's controller port, looked up per connection so a
    node can move ports). When blocked, it cuts every open connection and closes new
    ones as soon as they are accepted."""

    def __init__(self, src: int, dst: int, target: Callable[[], int]):
        self.src, self.dst, self.target = src, dst, target
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: set[_Pair] = set()
        self._blocked = False
        self._closed = False
        self.accepted = 0
        self.refused = 0
        self.cut = 0
        self.bytes = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"proxy-{src}->{dst}")
        self._thread.start()

    @property
    def blocked(self) -> bool:
        return self._blocked

    def set_blocked(self, blocked: bool) -> None:
        with self._lock:
            self._blocked = blocked
            victims = list(self._pairs) if blocked else []
            self._pairs.difference_update(victims)
            self.cut += len(victims)
        for p in victims:
            p.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            victims = list(self._pairs)
            self._pairs.clear()
        for p in victims:
            p.close()
        try:
            self._sock.close()
        except OSError:
            pass
        self._thread.join(2)

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                down, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._closed:
                    return
                time.sleep(0.05)
                continue
            down.settimeout(None)
            if self._blocked:
                self.refused += 1
                _abort(down)
                continue
            self.accepted += 1
            threading.Thread(target=self._open, args=(down,), daemon=True,
                             name=f"proxy-{self.src}->{self.dst}-open").start()

    def _open(self, down: socket.socket) -> None:
        try:
            up = socket.create_connection(("127.0.0.1", self.target()), timeout=2)
        except OSError:
            _abort(down)  # dst is down: the connecting node sees a refused/reset link
            return
        up.settimeout(None)
        for s in (down, up):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(down, up)
        with self._lock:
            if self._blocked or self._closed:
                ok = False
            else:
                ok = True
                self._pairs.add(pair)
        if not ok:
            pair.close()
            return
        for a, b in ((down, up), (up, down)):
            threading.Thread(target=self._pump, args=(pair, a, b), daemon=True,
                             name=f"proxy-{self.src}->{self.dst}-pump").start()

    def _pump(self, pair: _Pair, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
                self.bytes += len(data)
        except OSError:
            pass
        # Kafka connections never half-close: the end of either direction ends both.
        with self._lock:
            self._pairs.discard(pair)
        pair.close()

    def open_connections(self) -> int:
        with self._lock:
            return len(self._pairs)

    def __repr__(self) -> str:
        return (f"<Link {self.src}->{self.dst} :{self.port} blocked={self._blocked} "
                f"open={self.open_connections()} accepted={self.accepted} "
                f"refused={self.refused} cut={self.cut}>")


class FaultNet:
    """All proxies of a cluster. A link i->j is blocked when i or j is isolated or the
    link was cut on its own with `cut(i, j)`."""

    def __init__(self, node_ids: Iterable[int], target_port: Callable[[int], int]):
        ids = list(node_ids)
        self.links: dict[tuple[int, int], Link] = {
            (i, j): Link(i, j, (lambda j=j: target_port(j)))
            for i in ids for j in ids if i != j
        }
        self.isolated: set[int] = set()
        self.cut_links: set[tuple[int, int]] = set()

    def port(self, src: int, dst: int) -> int:
        return self.links[(src, dst)].port

    def _apply(self) -> None:
        for (i, j), link in self.links.items():
            link.set_blocked(i in self.isolated or j in self.isolated
                             or (i, j) in self.cut_links)

    def isolate(self, node: int) -> None:
        self.isolated.add(node)
        self._apply()

    def cut(self, src: int, dst: int, both_ways: bool = True) -> None:
        self.cut_links.add((src, dst))
        if both_ways:
            self.cut_links.add((dst, src))
        self._apply()

    def heal(self) -> None:
        self.isolated.clear()
        self.cut_links.clear()
        self._apply()

    def close(self) -> None:
        for link in self.links.values():
            link.close()


# ---------------------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------------------

class ClusterError(RuntimeError):
    pass


class Node:
    """One `brook serve --node-id N` process. Ports and data dir are fixed at the first
    successful start and kept across restarts. Duck-types conftest's Broker for the
    failure report (`name`, `log_path`, `port`, `bootstrap`, `log_tail()`)."""

    def __init__(self, cluster: "Cluster", node_id: int, base_dir: pathlib.Path):
        self.cluster = cluster
        self.id = node_id
        self.name = f"node{node_id}"
        self.base_dir = base_dir
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = base_dir / "data"
        self.log_path = base_dir / "broker.log"
        self.port: int = pick_port()
        self.controller_port: int = pick_port()
        # This node's own settings, after the cluster's (e.g. `broker.rack`).
        self.settings: dict[str, str] = {}
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.expected_exit = True
        self.unexpected_exits: list[str] = []
        self._log_offset = 0

    @property
    def admin_url(self) -> str:
        """The admin HTTP listener of the node's latest start, as it logged it."""
        import re
        found = re.findall(r"admin listening on (https?://\S+)",
                           self.log_path.read_text(errors="replace"))
        if not found:
            raise ClusterError(f"{self.name} logged no admin listener")
        return found[-1]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        cmd = [self.cluster.bin, "serve",
               "--node-id", str(self.id),
               "--listen", f"127.0.0.1:{self.port}",
               "--controller-listen", f"127.0.0.1:{self.controller_port}",
               "--voters", self.cluster.voters_for(self.id),
               "--data-dir", str(self.data_dir)]
        for k, v in {**self.cluster.settings, **self.settings}.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd

    def spawn(self) -> None:
        if self.running:
            raise ClusterError(f"{self.name} is already running")
        self.check_exit()
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BROOK_") or k == "BROOK_LOG"}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            log.write(f"\n===== start #{self.starts + 1} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env,
                                         cwd=self.base_dir, start_new_session=True)
        self.expected_exit = False
        LIVE.add(self)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> tuple[bool, str]:
        """Until the client port accepts connections (or the process exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with code {self.proc.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            time.sleep(0.02)
            if self.proc.poll() is not None:
                return False, f"exited with code {self.proc.returncode}"
            return True, ""
        return False, f"port {self.port} not accepting connections after {timeout}s"

    def check_exit(self) -> None:
        """Records an exit nobody asked for (crash, panic, refused flags)."""
        if self.proc is not None and self.proc.poll() is not None and not self.expected_exit:
            self.unexpected_exits.append(
                f"{self.name} exited by itself with code {self.proc.returncode} "
                f"(start #{self.starts})")
            self.expected_exit = True
            LIVE.discard(self)

    def kill9(self) -> None:
        self.check_exit()
        if self.running:
            self.expected_exit = True
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        LIVE.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit code."""
        self.check_exit()
        if not self.running:
            return None if self.proc is None else self.proc.returncode
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            event(f"{self.name} ignored SIGTERM for {timeout}s; SIGKILL")
            self.proc.kill()
            code = self.proc.wait(STOP_TIMEOUT_S)
        LIVE.discard(self)
        return code

    def log_since_spawn(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, max_bytes: int = 24 * 1024) -> str:
        try:
            size = self.log_path.stat().st_size
            with open(self.log_path, "rb") as f:
                f.seek(max(0, size - max_bytes))
                text = f.read().decode("utf-8", "replace")
            return ("[...]\n" if size > max_bytes else "") + text
        except OSError as e:
            return f"(no log: {e})"

    def segment_files(self, topic: str, partition: int = 0) -> list[pathlib.Path]:
        return sorted((self.data_dir / f"{topic}-{partition}").glob("*.log"))

    def __repr__(self) -> str:
        return f"<Node {self.id} client={self.port} ctrl={self.controller_port} running={self.running}>"


# ---------------------------------------------------------------------------------------
# metadata, asked of one node
# ---------------------------------------------------------------------------------------
# confluent-kafka's AdminClient.list_topics() goes to whichever broker librdkafka picks
# (about half the time not the bootstrap one, once it has learned the others), so "what
# does node 3 think" needs a request on a connection of our own: Metadata v7 (leader
# epochs), shaped like confluent-kafka's ClusterMetadata.

@dataclass
class PartitionMetadata:
    id: int
    leader: int
    leader_epoch: int
    replicas: list[int]
    isrs: list[int]
    error: int | None


@dataclass
class TopicMetadata:
    topic: str
    error: int | None
    partitions: dict[int, PartitionMetadata]


@dataclass
class Metadata:
    brokers: dict[int, str]          # node id -> host:port
    controller_id: int
    topics: dict[str, TopicMetadata]


_correlation = itertools.count(1)


def fetch_metadata(port: int, topics: list[str] | None = None,
                   timeout: float = 5.0) -> Metadata:
    cid = next(_correlation) & 0x7FFFFFFF
    body = (kw.i32(-1) if topics is None else kw.array([kw.string(t) for t in topics]))
    body += kw.i8(0)   # allow_auto_topic_creation = false
    req = kw.frame(kw.header_v1(3, 7, cid, "brook-cluster-test") + body)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(req)
        r = kw.Reader(kw.read_response(s, cid))
    r.i32()                                           # throttle_time_ms
    brokers = {}
    for _ in range(r.i32()):
        node, host, bport = r.i32(), r.string(), r.i32()
        r.string()                                    # rack
        brokers[node] = f"{host}:{bport}"
    r.string()                                        # cluster_id
    controller = r.i32()
    out: dict[str, TopicMetadata] = {}
    for _ in range(r.i32()):
        terr, name = r.i16(), r.string()
        r.take(1)                                     # is_internal
        parts = {}
        for _ in range(r.i32()):
            perr, pid, leader, epoch = r.i16(), r.i32(), r.i32(), r.i32()
            replicas = [r.i32() for _ in range(r.i32())]
            isr = [r.i32() for _ in range(r.i32())]
            [r.i32() for _ in range(r.i32())]         # offline_replicas
            parts[pid] = PartitionMetadata(pid, leader, epoch, replicas, isr, perr or None)
        out[name] = TopicMetadata(name, terr or None, parts)
    return Metadata(brokers, controller, out)


# ---------------------------------------------------------------------------------------
# the cluster
# ---------------------------------------------------------------------------------------

def _check_binary(bin_path: str) -> None:
    try:
        out = subprocess.run([bin_path, "serve", "--help"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ClusterError(f"cannot run {bin_path} serve --help: {e}") from None
    if "--voters" not in out.stdout + out.stderr:
        raise ClusterError(
            f"{bin_path}: `brook serve` has no --voters flag, so this binary cannot run "
            "a cluster (stale build? set BROOK_BIN or rebuild)")


class Cluster:
    def __init__(self, bin_path: str, base_dir: pathlib.Path, n: int = 3,
                 settings: dict[str, str] | None = None):
        if n < 1:
            raise ValueError("a cluster needs at least one node")
        self.bin = bin_path
        self.base_dir = pathlib.Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        rf = str(min(n, 3))
        self.settings = {"default.replication.factor": rf,
                         "offsets.topic.replication.factor": rf,
                         **CLUSTER_SETTINGS, **(settings or {})}
        self.nodes: dict[int, Node] = {i: Node(self, i, self.base_dir / f"node{i}")
                                       for i in range(1, n + 1)}
        self.net = FaultNet(self.nodes, lambda j: self.nodes[j].controller_port)
        self._closed = False

    # -- addresses ---------------------------------------------------------------------
    @property
    def ids(self) -> list[int]:
        return sorted(self.nodes)

    def voters_for(self, node_id: int) -> str:
        """Node `node_id` reaches every other node j through proxy node_id->j."""
        parts = []
        for j in self.ids:
            port = (self.nodes[j].controller_port if j == node_id
                    else self.net.port(node_id, j))
            parts.append(f"{j}@127.0.0.1:{port}")
        return ",".join(parts)

    @property
    def bootstrap(self) -> str:
        return ",".join(self.nodes[i].bootstrap for i in self.ids)

    def bootstrap_of(self, *node_ids: int) -> str:
        return ",".join(self.nodes[i].bootstrap for i in node_ids)

    def running(self) -> list[int]:
        return [i for i in self.ids if self.nodes[i].running]

    def reachable(self) -> list[int]:
        """Running nodes that are not isolated."""
        return [i for i in self.running() if i not in self.net.isolated]

    # -- processes ---------------------------------------------------------------------
    def start_all(self, timeout: float = READY_TIMEOUT_S, wait_brokers: bool = True) -> None:
        """Spawns every stopped node at once (a quorum needs several), waits for each
        client port, then (by default) until metadata lists every node."""
        _check_binary(self.bin)
        todo = [self.nodes[i] for i in self.ids if not self.nodes[i].running]
        for n in todo:
            n.spawn()
        event(f"spawned nodes {[n.id for n in todo]}")
        for n in todo:
            self._finish_start(n, timeout)
        if wait_brokers:
            self.wait_for_brokers(set(self.ids), timeout=timeout)

    def start(self, node_id: int, timeout: float = READY_TIMEOUT_S) -> None:
        """Starts one node again with the same flags and data dir."""
        n = self.nodes[node_id]
        n.spawn()
        self._finish_start(n, timeout)

    def _finish_start(self, n: Node, timeout: float) -> None:
        for attempt in range(10):
            ok, why = n.wait_ready(timeout)
            if ok:
                n.starts += 1
                event(f"{n.name} up (start #{n.starts}, client :{n.port}, "
                      f"controller :{n.controller_port})")
                return
            n.expected_exit = True
            if n.proc.poll() is None:
                n.proc.kill()
            n.proc.wait(STOP_TIMEOUT_S)
            LIVE.discard(n)
            tail = n.log_since_spawn()
            if "in use" in tail and attempt < 9:
                if n.starts == 0:
                    # Lost a race for a port before anyone learned it: take others.
                    # (Proxies look the controller port up per connection.)
                    n.port, n.controller_port = pick_port(), pick_port()
                else:
                    time.sleep(0.5)  # the old process's socket is not gone yet
                n.spawn()
                continue
            raise ClusterError(
                f"{n.name} did not start: {why}\ncommand: {' '.join(n.command())}\n"
                f"--- log ---\n{tail[-8000:]}")

    def kill(self, node_id: int) -> None:
        """SIGKILL: no flush, no goodbye."""
        self.nodes[node_id].kill9()
        event(f"node{node_id} killed (SIGKILL)")

    def stop(self, node_id: int) -> None:
        code = self.nodes[node_id].stop()
        event(f"node{node_id} stopped (SIGTERM), exit code {code}")

    def restart(self, node_id: int, hard: bool = False) -> None:
        if hard:
            self.kill(node_id)
        else:
            self.stop(node_id)
        self.start(node_id)

    def stop_all(self) -> None:
        for i in self.ids:
            if self.nodes[i].running:
                self.stop(i)

    def close(self) -> list[str]:
        """Stops everything; returns the unexpected exits seen during the test."""
        if self._closed:
            return []
        self._closed = True
        problems = []
        for i in self.ids:
            self.nodes[i].check_exit()
            problems += self.nodes[i].unexpected_exits
        for i in self.ids:
            try:
                self.nodes[i].stop()
            except Exception as e:  # noqa: BLE001
                problems.append(f"node{i}: stop failed: {e!r}")
        self.net.close()
        return problems

    def assert_alive(self, *node_ids: int) -> None:
        for i in node_ids or self.ids:
            n = self.nodes[i]
            n.check_exit()
            assert not n.unexpected_exits, "; ".join(n.unexpected_exits)
            assert n.running, f"{n.name} is not running"

    # -- faults ------------------------------------------------------------------------
    def isolate(self, node_id: int) -> None:
        """Cuts every link into and out of the node (its client port stays up)."""
        self.net.isolate(node_id)
        event(f"node{node_id} isolated from the other nodes")

    def cut(self, a: int, b: int, both_ways: bool = True) -> None:
        self.net.cut(a, b, both_ways)
        event(f"link {a}{'<' if both_ways else ''}->{b} cut")

    def heal(self) -> None:
        self.net.heal()
        event("network healed")

    # -- metadata ----------------------------------------------------------------------
    def _default_via(self) -> int:
        nodes = self.reachable() or self.running()
        if not nodes:
            raise ClusterError("no node is running")
        return nodes[0]

    def metadata(self, via: int | None = None, topic: str | None = None,
                 timeout: float = 5.0) -> "Metadata":
        """Metadata exactly as node `via` (default: the first running, non-isolated
        node) answers it, for one topic or all."""
        via = self._default_via() if via is None else via
        return fetch_metadata(self.nodes[via].port, [topic] if topic else None, timeout)

    def partition(self, topic: str, partition: int, via: int | None = None):
        """PartitionMetadata (`.leader`, `.replicas`, `.isrs`) or None."""
        md = self.metadata(via, topic)
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return None
        return t.partitions.get(partition)

    def leader(self, topic: str, partition: int, via: int | None = None) -> int:
        p = self.partition(topic, partition, via)
        return -1 if p is None else p.leader

    def isr(self, topic: str, partition: int, via: int | None = None) -> set[int]:
        p = self.partition(topic, partition, via)
        return set() if p is None else set(p.isrs)

    def brokers(self, via: int | None = None) -> set[int]:
        return set(self.metadata(via).brokers)

    # -- waiting -----------------------------------------------------------------------
    def wait(self, predicate, timeout: float, what: str, interval: float = 0.1):
        """Polls until `predicate()` is truthy; returns (value, seconds waited)."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while True:
            try:
                value = predicate()
                if value:
                    return value, time.monotonic() - t0
                last = f"last value {value!r}"
            except Exception as e:  # noqa: BLE001 - reported on timeout
                last = f"last error {e!r}"
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} ({last})")
            time.sleep(interval)

    def wait_for_brokers(self, expected: set[int], via: int | None = None,
                         timeout: float = 20.0) -> float:
        def check():
            seen = self.brokers(via)
            return seen == set(expected) or None
        _, secs = self.wait(check, timeout, f"metadata to list brokers {sorted(expected)}")
        return secs

    def wait_for_leader(self, topic: str, partition: int, not_in: Iterable[int] = (),
                        via: int | None = None, timeout: float = 20.0,
                        want: int | None = None) -> tuple[int, float]:
        """Until `via` reports a leader (not -1, not in `not_in`, `want` if given).
        Returns (leader, seconds waited)."""
        bad = set(not_in) | {-1}

        def check():
            lead = self.leader(topic, partition, via)
            if lead in bad or (want is not None and lead != want):
                return None
            return lead
        what = (f"{topic}-{partition}: leader " + (f"= {want}" if want is not None
                                                  else f"not in {sorted(bad)}")
                + (f" as node{via} sees it" if via else ""))
        lead, secs = self.wait(check, timeout, what, interval=0.05)
        event(f"{topic}-{partition}: leader {lead} after {secs:.2f}s (via node{via or '?'})")
        return lead, secs

    def wait_for_isr(self, topic: str, partition: int, expected: Iterable[int],
                     via: int | None = None, timeout: float = 30.0,
                     exact: bool = True) -> float:
        """Until the ISR equals (or, with exact=False, contains) `expected`."""
        expected = set(expected)

        def check():
            isr = self.isr(topic, partition, via)
            return (isr == expected if exact else expected <= isr) or None
        _, secs = self.wait(check, timeout,
                            f"{topic}-{partition}: ISR {'=' if exact else '⊇'} "
                            f"{sorted(expected)}" + (f" as node{via} sees it" if via else ""))
        event(f"{topic}-{partition}: ISR {sorted(expected)} after {secs:.2f}s")
        return secs

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 3,
                     config: dict | None = None, timeout: float = 30.0,
                     replica_assignment: list[list[int]] | None = None) -> None:
        """Creates the topic and waits until every partition has a leader and a full
        ISR as every reachable node sees it."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        if replica_assignment is not None:
            new = NewTopic(name, num_partitions=partitions,
                           replica_assignment=replica_assignment,
                           config={k: fmt(v) for k, v in (config or {}).items()})
        else:
            new = NewTopic(name, num_partitions=partitions,
                           replication_factor=replication_factor,
                           config={k: fmt(v) for k, v in (config or {}).items()})
        fut = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
        fut[name].result(timeout)
        rf = len(replica_assignment[0]) if replica_assignment else replication_factor

        def ready():
            for via in self.reachable():
                md = self.metadata(via, name)
                t = md.topics.get(name)
                if t is None or t.error is not None or len(t.partitions) != partitions:
                    return None
                for p in t.partitions.values():
                    if p.leader < 0 or len(p.replicas) != rf or len(p.isrs) != rf:
                        return None
            return True
        _, secs = self.wait(ready, timeout, f"topic {name}: every partition led, full ISR")
        event(f"topic {name} ({partitions} partitions, RF {rf}) ready after {secs:.2f}s")

    def describe(self, topic: str, via: int | None = None) -> str:
        """One line per partition: leader, replicas, ISR (for messages)."""
        md = self.metadata(via, topic)
        t = md.topics.get(topic)
        if t is None:
            return f"{topic}: absent"
        return "; ".join(f"p{p.id} leader={p.leader} epoch={p.leader_epoch} "
                         f"replicas={p.replicas} isr={p.isrs}"
                         for p in sorted(t.partitions.values(), key=lambda p: p.id))

    def __repr__(self) -> str:
        return f"<Cluster {list(self.nodes.values())}>"


# ---------------------------------------------------------------------------------------
# fixtures (imported by conftest.py)
# ---------------------------------------------------------------------------------------

@pytest.fixture
def cluster_factory(request, tmp_path, brook_bin):
    """cluster_factory(n=3, settings=None, *, start=True, **kw) -> Cluster."""
    made: list[Cluster] = []
    # conftest's report hook attaches the log tail of everything in this list.
    if not hasattr(request.node, "_brook_brokers"):
        request.node._brook_brokers = []
    marker = marker_settings(request.node)

    def make(n: int = 3, settings=None, /, *, start: bool = True, **kw) -> Cluster:
        c = Cluster(brook_bin, tmp_path / f"cluster{len(made)}", n,
                    {**marker, **normalize_settings(settings, **kw)})
        made.append(c)
        request.node._brook_brokers.extend(c.nodes.values())
        if start:
            try:
                c.start_all()
            except ClusterError as e:
                pytest.fail(str(e), pytrace=False)
        return c

    yield make
    problems = []
    for c in made:
        problems += c.close()
    if problems:
        pytest.fail("node crashed during the test: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def cluster(cluster_factory) -> Cluster:
    """A started 3-node cluster (settings: CLUSTER_SETTINGS + brook_config markers)."""
    return cluster_factory(3)
