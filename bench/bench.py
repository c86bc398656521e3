#!/usr/bin/env python3
"""Brook vs Apache Kafka, side by side, on this machine.

Started by bench/run.sh, which builds Brook and fetches Kafka first; see bench/README.md.
Standard library only. Every process this script starts is tracked and stopped on exit
(normal exit, an exception, SIGINT, SIGTERM or SIGHUP); every command has a time limit.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import tempfile
import sys
import time

import perf_clients as PC

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Records per produce run, per record size: bounded so each run takes seconds, not minutes.
FULL = {
    "reps": 3,
    "cells": [(s, a, p) for s in (100, 1024) for a in ("1", "all") for p in (1, 12)],
    "records": {100: 1_000_000, 1024: 300_000},
    "latency_rate": 20_000,
    "latency_seconds": 10,
    "idle_seconds": 5,
    "dd_mib": 1024,
    "net_seconds": 5,
    "fsync_seconds": 3,
    "warmup_records": 500_000,
    # SASL_SSL (SCRAM-SHA-512 over TLS) cells: produce and consume on a second listener.
    "tls_cells": [(1024, "1", 12), (100, "1", 1)],
}
QUICK = {
    "reps": 1,
    "cells": [(100, "1", 1), (1024, "all", 12)],
    "records": {100: 300_000, 1024: 100_000},
    "latency_rate": 20_000,
    "latency_seconds": 5,
    "idle_seconds": 5,
    "dd_mib": 256,
    "net_seconds": 2,
    "fsync_seconds": 2,
    "warmup_records": 300_000,
    "tls_cells": [(1024, "1", 12)],
}

TLS_USER, TLS_PASSWORD = "bench", "bench-secret"

# What kafka-run-class.sh / kafka-server-start.sh / kafka-*-perf-test.sh put on the JVM.
JVM_PERF = [
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]
KAFKA_SERVER_HEAP = ["-Xmx1G", "-Xms1G"]
KAFKA_TOOL_HEAP = ["-Xmx512M"]

CMD_TIMEOUT = 180          # seconds, any single client run
START_TIMEOUT = 120        # seconds, a broker from exec to answering requests

CHILDREN = []              # long-running processes we started (brokers, iperf3 server)


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- process hygiene

def stop_process(p, grace=15):
    """SIGTERM, then SIGKILL after `grace` seconds; only the pid we started."""
    if p is None or p.poll() is not None:
        return
    try:
        p.terminate()
        p.wait(grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)
    except ProcessLookupError:
        pass


def cleanup():
    while CHILDREN:
        stop_process(CHILDREN.pop())


def on_signal(signum, _frame):
    log(f"signal {signum}: stopping")
    cleanup()
    sys.exit(128 + signum)


def run(cmd, timeout=CMD_TIMEOUT, env=None, check=True):
    """Runs a command to completion with a time limit; returns (stdout, stderr)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise BenchError(f"timed out after {timeout}s: {' '.join(cmd[:6])} ...") from e
    if check and r.returncode != 0:
        tail = (r.stderr.strip() or r.stdout.strip()).splitlines()[-6:]
        raise BenchError(f"exit {r.returncode}: {' '.join(cmd[-12:])}: " + " | ".join(tail))
    return r.stdout, r.stderr


def scale_args(doc, **extra):
    """The common command line of the scale measures (partitions.py, replicas.py,
    connections.py): --brook-bin, --kafka-libs, --only, --json, plus `extra`
    ({flag: (type, default, help)})."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--brook-bin", required=True)
    ap.add_argument("--kafka-libs")
    for flag, (kind, default, what) in extra.items():
        ap.add_argument(flag, type=kind, default=default, help=what)
    ap.add_argument("--only", choices=["brook", "kafka"])
    ap.add_argument("--json")
    return ap.parse_args()


def side_by_side(args, prefix, brokers, measure, what):
    """Runs `measure(cls, cfg, workdir)` for each of `brokers` ({name: class}; Kafka
    only with --kafka-libs, one of them with --only) in a temporary work directory,
    printing each result and writing them all to --json."""
    cfg = {"brook_bin": args.brook_bin, "kafka_libs": args.kafka_libs, "idle_seconds": 0,
           "keep_data": False}
    results = {}
    with tempfile.TemporaryDirectory(prefix=prefix) as workdir:
        for name, cls in brokers.items():
            if args.only and args.only != name or (name == "kafka" and not args.kafka_libs):
                continue
            log(f"{name}: {what}")
            results[name] = measure(cls, cfg, workdir)
            print(name, json.dumps(results[name], indent=1), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


_PORTS_HANDED_OUT: set = set()


def free_port():
    """A port free now and not handed out before by this process: the kernel may give
    the same ephemeral port twice in a row, and a broker started with one port for two
    listeners fails to start."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _PORTS_HANDED_OUT:
            _PORTS_HANDED_OUT.add(port)
            return port


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmRSS, VmHWM) in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return None


# ---------------------------------------------------------------- readiness probes

def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def api_versions_answers(port):
    """Sends a Kafka ApiVersions v0 request; True once any response frame comes back."""
    client_id = b"bench-probe"
    body = struct.pack(">hhih", 18, 0, 4242, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.settimeout(1.0)
            s.sendall(struct.pack(">i", len(body)) + body)
            head = b""
            while len(head) < 8:
                chunk = s.recv(8 - len(head))
                if not chunk:
                    return False
                head += chunk
            _size, corr = struct.unpack(">ii", head)
            return corr == 4242
    except OSError:
        return False


def wait_until(pred, proc, what, logfile, timeout=START_TIMEOUT, interval=0.005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what}: process exited with {proc.returncode}; "
                             f"log tail: {tail_file(logfile)}")
        if pred():
            return
        time.sleep(interval)
    raise BenchError(f"{what}: not ready after {timeout}s; log tail: {tail_file(logfile)}")


def tail_file(path, lines=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(x.strip() for x in f.readlines()[-lines:])
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------- brokers

class Broker:
    name = "?"

    def __init__(self, cfg, workdir, rep):
        self.cfg = cfg
        self.dir = os.path.join(workdir, f"{self.name}-r{rep}")
        os.makedirs(self.dir, exist_ok=True)
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, f"{self.name}.log")
        self.port = free_port()
        self.proc = None
        self.cpu_at_start = None
        self.bootstrap = f"127.0.0.1:{self.port}"
        # A SASL_SSL listener too, when there are TLS cells (cfg["tls"]).
        self.tls_port = free_port() if cfg.get("tls") else None
        self.tls_bootstrap = f"localhost:{self.tls_port}" if self.tls_port else None

    def prepare(self):
        pass

    def command(self):
        raise NotImplementedError

    def start(self):
        """Starts the broker; returns start-up metrics."""
        self.prepare()
        out = open(self.logfile, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env(),
                                     start_new_session=True)
        CHILDREN.append(self.proc)
        out.close()
        wait_until(lambda: port_open(self.port), self.proc, f"{self.name} port", self.logfile)
        t_port = time.monotonic()
        wait_until(lambda: api_versions_answers(self.port), self.proc,
                   f"{self.name} ApiVersions", self.logfile, interval=0.01)
        t_ready = time.monotonic()
        rss_ready = proc_status(self.proc.pid, "VmRSS")
        time.sleep(self.cfg["idle_seconds"])
        rss_idle = proc_status(self.proc.pid, "VmRSS")
        self.cpu_at_start = proc_cpu_seconds(self.proc.pid)
        return {
            "start_to_port_ms": (t_port - t0) * 1000,
            "start_to_api_ms": (t_ready - t0) * 1000,
            "rss_at_ready_mib": rss_ready,
            "idle_rss_mib": rss_idle,
            "idle_seconds": self.cfg["idle_seconds"],
            "startup_cpu_seconds": self.cpu_at_start,
        }

    def stop(self):
        """Stops the broker; returns peak RSS and CPU used while benchmarking."""
        stats = {}
        if self.proc is not None and self.proc.poll() is None:
            cpu = proc_cpu_seconds(self.proc.pid)
            stats = {
                "peak_rss_mib": proc_status(self.proc.pid, "VmHWM"),
                "rss_at_end_mib": proc_status(self.proc.pid, "VmRSS"),
                "load_cpu_seconds": (cpu - self.cpu_at_start)
                if cpu is not None and self.cpu_at_start is not None else None,
            }
        stop_process(self.proc)
        if self.proc in CHILDREN:
            CHILDREN.remove(self.proc)
        if not self.cfg["keep_data"]:
            shutil.rmtree(self.data, ignore_errors=True)
        return stats

    def env(self):
        return dict(os.environ)


def kafka_server_properties(generator, *, node_id, quorum, listeners, advertised,
                            protocol_map, log_dirs, single_node, extra=""):
    """config/server.properties as shipped with Kafka 4.x, with our node id, quorum line,
    127.0.0.1 listeners and log dir. A single node gets replication factor 1 for the
    internal topics; a cluster keeps the shipped defaults."""
    single = """offsets.topic.replication.factor=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
""" if single_node else ""
    return f"""# Generated by {generator} from Kafka 4.x config/server.properties
process.roles=broker,controller
node.id={node_id}
{quorum}
listeners={listeners}
inter.broker.listener.name=PLAINTEXT
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
listener.security.protocol.map={protocol_map}
num.network.threads=3
num.io.threads=8
socket.send.buffer.bytes=102400
socket.receive.buffer.bytes=102400
socket.request.max.bytes=104857600
log.dirs={log_dirs}
num.partitions=1
num.recovery.threads.per.data.dir=1
{single}log.retention.hours=168
log.retention.check.interval.ms=300000
{extra}"""


class Kafka(Broker):
    name = "kafka"

    def prepare(self):
        self.controller_port = free_port()
        props = os.path.join(self.dir, "server.properties")
        tls = self.cfg.get("tls")
        tls_listener = f",SASL_SSL://127.0.0.1:{self.tls_port}" if tls else ""
        tls_advertised = f",SASL_SSL://localhost:{self.tls_port}" if tls else ""
        tls_settings = (
            "# bench.py: the SASL_SSL listener of the TLS cells (SCRAM-SHA-512, PEM stores)\n"
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n"
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            "ssl.keystore.type=PEM\n"
            f"ssl.keystore.location={tls['keystore']}\n") if tls else ""
        with open(props, "w") as f:
            f.write(kafka_server_properties(
                "bench/bench.py", node_id=1,
                quorum=f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                listeners=f"PLAINTEXT://127.0.0.1:{self.port},"
                          f"CONTROLLER://127.0.0.1:{self.controller_port}{tls_listener}",
                advertised=f"PLAINTEXT://127.0.0.1:{self.port},"
                           f"CONTROLLER://127.0.0.1:{self.controller_port}{tls_advertised}",
                protocol_map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                             "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL",
                log_dirs=self.data, single_node=True, extra=tls_settings))
        self.props = props
        cp = ["-cp", os.path.join(self.cfg["kafka_libs"], "*")]
        # kafka-storage.sh random-uuid / format --standalone (not part of the start time).
        out, _ = run(["java", *KAFKA_TOOL_HEAP, *self.log4j("tools"), *cp,
                      "kafka.tools.StorageTool", "random-uuid"], timeout=60)
        cluster_id = out.strip().splitlines()[-1].strip()
        scram = ["--add-scram", f"SCRAM-SHA-512=[name={TLS_USER},password={TLS_PASSWORD}]"] \
            if tls else []
        run(["java", *KAFKA_TOOL_HEAP, *self.log4j("tools"), *cp, "kafka.tools.StorageTool",
             "format", "--standalone", "-t", cluster_id, "-c", props, *scram], timeout=60)

    def log4j(self, which):
        return [f"-Dlog4j2.configurationFile={os.path.join(HERE, f'log4j2-{which}.properties')}"]

    def command(self):
        return ["java", *KAFKA_SERVER_HEAP, *JVM_PERF, *self.log4j("server"),
                "-cp", os.path.join(self.cfg["kafka_libs"], "*"), "kafka.Kafka", self.props]


class Brook(Broker):
    name = "brook"

    def command(self):
        tls = self.cfg.get("tls")
        if not tls:
            return [self.cfg["brook_bin"], "serve", "--listen", self.bootstrap,
                    "--data-dir", self.data, "--set", "admin.listeners="]
        return [self.cfg["brook_bin"], "serve",
                "--listen", f"PLAINTEXT://{self.bootstrap},SASL_SSL://127.0.0.1:{self.tls_port}",
                "--set", f"advertised.listeners=PLAINTEXT://{self.bootstrap},"
                         f"SASL_SSL://localhost:{self.tls_port}",
                "--set", "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512",
                "--set", "ssl.keystore.type=PEM", "--set", f"ssl.keystore.location={tls['keystore']}",
                "--add-scram", f"SCRAM-SHA-512=[name={TLS_USER},password={TLS_PASSWORD}]",
                "--data-dir", self.data, "--set", "admin.listeners="]


# ---------------------------------------------------------------- clients

def brook_cli(cfg, args, timeout=CMD_TIMEOUT, check=True):
    env = dict(os.environ, RUST_BACKTRACE="0", RUST_LIB_BACKTRACE="0")
    return run([cfg["brook_bin"], *args], timeout=timeout, env=env, check=check)


def create_topic(cfg, broker, topic, partitions, configs=(), replication=None):
    extra = [x for c in configs for x in ("--config", c)]
    if replication:
        extra += ["--replication-factor", str(replication)]
    brook_cli(cfg, ["topic", "create", topic, "--partitions", str(partitions), *extra,
                    "-b", broker.bootstrap], timeout=60)
    # Wait until every partition has a leader and answers ListOffsets: Kafka elects leaders
    # and spreads metadata asynchronously (NotLeaderOrFollower, UnknownTopicOrPartition).
    deadline = time.monotonic() + 30
    last = ""
    while time.monotonic() < deadline:
        out, err = brook_cli(cfg, ["topic", "describe", topic, "-b", broker.bootstrap],
                             timeout=30, check=False)
        rows = [line.split() for line in out.splitlines()[2:] if line.strip()]
        leaders = [r[1] for r in rows if len(r) >= 2 and r[0].isdigit()]
        if len(leaders) == partitions and all(l != "-1" for l in leaders):
            return
        last = (err.strip().splitlines() or [out])[0]
        time.sleep(0.1)
    raise BenchError(f"topic {topic}: not ready 30 s after creation: {last}")


def java_tool(cfg, main, args, timeout=CMD_TIMEOUT):
    cmd = ["java", *KAFKA_TOOL_HEAP, *JVM_PERF,
           f"-Dlog4j2.configurationFile={os.path.join(HERE, 'log4j2-tools.properties')}",
           "-cp", os.path.join(cfg["kafka_libs"], "*"), main, *args]
    return run(cmd, timeout=timeout)


PP_RE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, "
    r"([\d.]+) ms 99.9th")


def producer_perf(cfg, broker, topic, records, size, acks, throughput, tls=False):
    props_flag = cfg["pp_props_flag"]
    bootstrap = broker.tls_bootstrap if tls else broker.bootstrap
    secure = [cfg["pp_config_flag"], cfg["tls"]["client_props"]] if tls else []
    out, _ = java_tool(cfg, "org.apache.kafka.tools.ProducerPerformance", [
        "--topic", topic, "--num-records", str(records), "--record-size", str(size),
        "--throughput", str(throughput), *secure, props_flag,
        f"bootstrap.servers={bootstrap}", f"acks={acks}"])
    m = None
    for line in out.splitlines():
        m = PP_RE.search(line) or m
    if not m:
        raise BenchError(f"ProducerPerformance: no summary line in output: {out[-300:]!r}")
    sent = int(m.group(1))
    if sent != records:
        raise BenchError(f"ProducerPerformance sent {sent} of {records} records")
    rps = float(m.group(2))
    return {
        "records": sent, "records_per_sec": rps, "mb_per_sec": rps * size / 1e6,
        "latency_ms": {"avg": float(m.group(4)), "p50": float(m.group(6)),
                       "p95": float(m.group(7)), "p99": float(m.group(8)),
                       "p999": float(m.group(9)), "max": float(m.group(5))},
    }


def consumer_perf(cfg, broker, topic, records, size, tls=False):
    bootstrap = broker.tls_bootstrap if tls else broker.bootstrap
    secure = [cfg["cp_config_flag"], cfg["tls"]["client_props"]] if tls else []
    out, _ = java_tool(cfg, "org.apache.kafka.tools.ConsumerPerformance", [
        "--bootstrap-server", bootstrap, "--topic", topic, *secure,
        cfg["cp_records_flag"], str(records), "--timeout", "30000"])
    lines = [l for l in out.splitlines() if l.count(",") >= 9]
    if len(lines) < 2:
        raise BenchError(f"ConsumerPerformance: unexpected output {out[-300:]!r}")
    header = [h.strip() for h in lines[0].split(",")]
    row = dict(zip(header, (v.strip() for v in lines[-1].split(","))))
    n = int(row["data.consumed.in.nMsg"])
    if n < records:
        raise BenchError(f"ConsumerPerformance consumed {n} of {records} records")
    rps = float(row["fetch.nMsg.sec"])
    return {
        "records": n, "records_per_sec": rps, "mb_per_sec": rps * size / 1e6,
        "rebalance_ms": float(row["rebalance.time.ms"]),
        "fetch_ms": float(row["fetch.time.ms"]),
        "records_per_sec_incl_rebalance": float(row["nMsg.sec"]),
    }


def brook_json(out):
    try:
        return json.loads(out)
    except ValueError as e:
        raise BenchError(f"brook bench: not JSON: {out[-300:]!r}") from e


def brook_produce(cfg, broker, topic, records, size, acks, tls=False):
    bootstrap = broker.tls_bootstrap if tls else broker.bootstrap
    secure = ["--command-config", cfg["tls"]["client_props"]] if tls else []
    out, _ = brook_cli(cfg, [
        "bench", "produce", "--topic", topic, "--records", str(records),
        "--record-size", str(size), "--acks", "1" if acks == "1" else "-1",
        "--batch-size", "1000", "--max-seconds", "120", "--json", "--quiet",
        "-b", bootstrap, *secure])
    r = brook_json(out)
    if r["records"] != records:
        raise BenchError(f"brook bench produce sent {r['records']} of {records} (time limit)")
    r["mb_per_sec"] = r["records_per_sec"] * size / 1e6
    return r


def brook_consume(cfg, broker, topic, records, size, tls=False):
    bootstrap = broker.tls_bootstrap if tls else broker.bootstrap
    secure = ["--command-config", cfg["tls"]["client_props"]] if tls else []
    out, _ = brook_cli(cfg, ["bench", "consume", "--topic", topic, "--records", str(records),
                             "--max-seconds", "120", "--json", "--quiet",
                             "-b", bootstrap, *secure])
    r = brook_json(out)
    if r["records"] < records:
        raise BenchError(f"brook bench consume read {r['records']} of {records} (time limit)")
    r["wire_mb_per_sec"] = r["mb_per_sec"]
    r["mb_per_sec"] = r["records_per_sec"] * size / 1e6
    return r


def brook_e2e(cfg, broker, topic, rate, seconds, size, acks):
    out, _ = brook_cli(cfg, [
        "bench", "e2e", "--topic", topic, "--rate", str(rate), "--seconds", str(seconds),
        "--record-size", str(size), "--acks", "1" if acks == "1" else "-1",
        "--json", "--quiet", "-b", broker.bootstrap], timeout=seconds + 60)
    r = brook_json(out)
    expected = rate * seconds
    if r["records"] < expected:
        raise BenchError(f"brook bench e2e saw {r['records']} of {expected} records")
    return r


# ---------------------------------------------------------------- machine limits

def loopback_python(seconds):
    """One TCP stream over 127.0.0.1, 1 MiB writes, receiver in a forked process."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]
    pid = os.fork()
    if pid == 0:  # receiver
        try:
            conn, _ = srv.accept()
            buf = bytearray(1 << 20)
            total = 0
            while True:
                n = conn.recv_into(buf)
                if n == 0:
                    break
                total += n
            conn.sendall(struct.pack(">q", total))
            conn.close()
        finally:
            os._exit(0)
    srv.close()
    try:
        c = socket.create_connection(("127.0.0.1", port))
        data = b"\0" * (1 << 20)
        t0 = time.monotonic()
        end = t0 + seconds
        while time.monotonic() < end:
            for _ in range(16):
                c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) < 8:
            chunk = c.recv(8 - len(got))
            if not chunk:
                raise BenchError("loopback receiver closed early")
            got += chunk
        total = struct.unpack(">q", got)[0]
        elapsed = time.monotonic() - t0
        c.close()
    finally:
        os.waitpid(pid, 0)
    return {"bytes": total, "seconds": elapsed, "gbit_per_sec": total * 8 / elapsed / 1e9,
            "mb_per_sec": total / elapsed / 1e6}


def loopback_iperf3(seconds):
    exe = shutil.which("iperf3")
    if not exe:
        return {"skipped": "iperf3 not installed (apt-get install iperf3)"}
    port = free_port()
    srv = subprocess.Popen([exe, "-s", "-B", "127.0.0.1", "-p", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           stdin=subprocess.DEVNULL)
    CHILDREN.append(srv)
    try:
        for attempt_no in range(20):  # the server needs a moment to listen
            time.sleep(0.25)
            out, _ = run([exe, "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                         timeout=seconds + 30, check=attempt_no == 19)
            j = json.loads(out or "{}")
            if "end" in j and "sum_received" in j["end"]:
                break
        bps = j["end"]["sum_received"]["bits_per_second"]
        return {"gbit_per_sec": bps / 1e9, "mb_per_sec": bps / 8 / 1e6}
    finally:
        stop_process(srv, grace=5)
        if srv in CHILDREN:
            CHILDREN.remove(srv)


DD_RE = re.compile(r"(\d+) bytes .*copied, ([\d.e+-]+) s")


def dd_write(path, mib, fsync):
    cmd = ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}"]
    if fsync:
        cmd.append("conv=fdatasync")
    _, err = run(cmd, timeout=300)
    m = DD_RE.search(err)
    os.unlink(path)
    if not m:
        raise BenchError(f"dd: unexpected output {err!r}")
    b, s = int(m.group(1)), float(m.group(2))
    return {"bytes": b, "seconds": s, "mb_per_sec": b / s / 1e6}


def small_fsync_rate(path, seconds, size=4096):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    buf = b"x" * size
    n = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            os.write(fd, buf)
            os.fdatasync(fd)
            n += 1
    finally:
        os.close(fd)
        os.unlink(path)
    elapsed = time.monotonic() - t0
    return {"write_size": size, "ops": n, "seconds": elapsed, "ops_per_sec": n / elapsed,
            "avg_ms": elapsed / max(n, 1) * 1000}


def machine_limits(cfg, workdir):
    res = {}
    steps = [
        ("loopback_tcp_python", lambda: loopback_python(cfg["net_seconds"])),
        ("loopback_tcp_iperf3", lambda: loopback_iperf3(cfg["net_seconds"])),
        ("disk_seq_write_fdatasync", lambda: dd_write(os.path.join(workdir, "dd.bin"),
                                                      cfg["dd_mib"], True)),
        ("disk_seq_write_no_fsync", lambda: dd_write(os.path.join(workdir, "dd.bin"),
                                                     cfg["dd_mib"], False)),
        ("disk_4k_write_fdatasync", lambda: small_fsync_rate(os.path.join(workdir, "fs.bin"),
                                                             cfg["fsync_seconds"])),
    ]
    for name, fn in steps:
        try:
            res[name] = fn()
        except Exception as e:  # noqa: BLE001 - recorded, not fatal
            res[name] = {"error": str(e)}
        log(f"limits: {name}: {short(res[name])}")
        os.sync()
    return res


def short(d):
    if "error" in d:
        return "ERROR " + d["error"][:200]
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in d.items() if not isinstance(v, dict))


# ---------------------------------------------------------------- the matrix

# Every client of the matrix; the SASL_SSL cells and the latency column use the first two.
CLIENTS = ("kafka-tools", "brook-bench", *PC.CLIENTS)
OWN_CLIENTS = ("kafka-tools", "brook-bench")
TOPIC_TAGS = {"kafka-tools": "kt", "brook-bench": "bb", "librdkafka": "rk", "franz-go": "fg"}
E2E_TOPIC_CONFIGS = ("max.message.bytes=16777216",)


def cell_key(size, acks, parts):
    return f"{size}B/acks={acks}/p={parts}"


def attempt(results, key, fn, label, broker=None, size=None):
    """Runs one measurement. With `broker` and `size` the broker process's CPU time
    (user + system) around it is recorded too, as CPU milliseconds per MB of record
    values moved (`broker_cpu_ms_per_mb`).

    Every run also records the wall time and the CPU time of the client processes it
    waited for (`client_cpu_s`, from getrusage of reaped children), and with `broker`
    the broker's, as cores kept busy over the run (`client_cores`, `broker_cores`): on a
    machine of few cores they say which side set the rate."""
    try:
        cpu0 = proc_cpu_seconds(broker.proc.pid) if broker else None
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        r = fn()
        wall = time.monotonic() - t0
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = proc_cpu_seconds(broker.proc.pid) if broker else None
        msg = f"{r['records_per_sec']:,.0f} records/s"
        client_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        r["wall_s"] = wall
        r["client_cpu_s"] = client_cpu
        r["client_cores"] = client_cpu / wall if wall > 0 else None
        if cpu0 is not None and cpu1 is not None and wall > 0:
            r["broker_cores"] = (cpu1 - cpu0) / wall
            msg += f", cores busy: client {r['client_cores']:.2f}, broker {r['broker_cores']:.2f}"
        if cpu0 is not None and cpu1 is not None and size and r.get("records"):
            mb = r["records"] * size / 1e6
            r["broker_cpu_s"] = cpu1 - cpu0
            r["broker_cpu_ms_per_mb"] = 1000 * (cpu1 - cpu0) / mb
            msg += f", broker CPU {r['broker_cpu_ms_per_mb']:.2f} ms/MB"
        if key.endswith("/latency") and r.get("latency_ms"):
            msg += f", p50 {r['latency_ms']['p50']} ms, p99 {r['latency_ms']['p99']} ms"
        log(f"{label}: {msg}")
    except Exception as e:  # noqa: BLE001 - one failed cell must not sink the run
        r = {"error": str(e)}
        log(f"{label}: ERROR {e}")
    results.setdefault(key, []).append(r)


def warm_up(cfg, broker, rep):
    """Unrecorded load before the matrix, so the JVM's JIT (Kafka) is not measured."""
    if not cfg["warmup_records"]:
        return
    t0 = time.monotonic()
    topic = f"warmup-r{rep}"
    try:
        create_topic(cfg, broker, topic, 12)
        producer_perf(cfg, broker, topic, cfg["warmup_records"], 100, "1", -1)
        brook_produce(cfg, broker, topic, cfg["warmup_records"], 100, "1")
        brook_consume(cfg, broker, topic, 2 * cfg["warmup_records"], 100)
    except Exception as e:  # noqa: BLE001 - the cells will show the real problem
        log(f"{broker.name}: warm-up failed: {e}")
    log(f"{broker.name}: warm-up done in {time.monotonic() - t0:.1f} s")


def broker_phase(cfg, cls, rep, raw):
    broker = cls(cfg, cfg["workdir"], rep)
    b = broker.name
    log(f"== {b} (repetition {rep}), load average {loadavg()}")
    phase = raw["brokers"].setdefault(b, {"start": [], "stop": [], "load_before": [],
                                          "load_after": []})
    phase["load_before"].append(loadavg())
    try:
        st = broker.start()
    except Exception as e:  # noqa: BLE001
        log(f"{b}: failed to start: {e}")
        phase["start"].append({"error": str(e)})
        broker.stop()
        return
    phase["start"].append(st)
    log(f"{b}: port after {st['start_to_port_ms']:.0f} ms, answering after "
        f"{st['start_to_api_ms']:.0f} ms, idle RSS {st['idle_rss_mib']:.1f} MiB")
    res = raw["runs"].setdefault(b, {})
    try:
        warm_up(cfg, broker, rep)
        tls_phase(cfg, broker, rep, res)
        for size, acks, parts in cfg["cells"]:
            cell = cell_key(size, acks, parts)
            n = cfg["records"][size]
            for client in cfg["clients"]:
                tag = TOPIC_TAGS[client]
                topic = f"{tag}-{size}-{'all' if acks == 'all' else acks}-{parts}-r{rep}"
                label = f"{b} r{rep} {cell} {client}"
                if client in PC.CLIENTS:
                    driven_cell(cfg, broker, res, client, topic, cell, label, n, size, acks,
                                parts)
                    continue
                try:
                    create_topic(cfg, broker, topic, parts)
                    # brook bench e2e sends every record that is due as one batch; after a
                    # stall that batch can outgrow the default 1 MiB limit (MessageTooLarge),
                    # so its latency topic allows larger batches, on both brokers alike.
                    create_topic(cfg, broker, topic + "-lat", parts,
                                 E2E_TOPIC_CONFIGS if client == "brook-bench" else ())
                except Exception as e:  # noqa: BLE001
                    log(f"{label}: topic setup failed: {e}")
                    for kind in ("produce", "consume", "latency"):
                        res.setdefault(f"{cell}/{client}/{kind}", []).append({"error": str(e)})
                    continue
                if client == "kafka-tools":
                    attempt(res, f"{cell}/{client}/produce",
                            lambda: producer_perf(cfg, broker, topic, n, size, acks, -1),
                            f"{label} produce", broker, size)
                    if acks == "1":
                        attempt(res, f"{cell}/{client}/consume",
                                lambda: consumer_perf(cfg, broker, topic, n, size),
                                f"{label} consume", broker, size)
                    rate, secs = cfg["latency_rate"], cfg["latency_seconds"]
                    attempt(res, f"{cell}/{client}/latency",
                            lambda: producer_perf(cfg, broker, topic + "-lat", rate * secs,
                                                  size, acks, rate),
                            f"{label} latency")
                else:
                    attempt(res, f"{cell}/{client}/produce",
                            lambda: brook_produce(cfg, broker, topic, n, size, acks),
                            f"{label} produce", broker, size)
                    if acks == "1":
                        attempt(res, f"{cell}/{client}/consume",
                                lambda: brook_consume(cfg, broker, topic, n, size),
                                f"{label} consume", broker, size)
                    attempt(res, f"{cell}/{client}/latency",
                            lambda: brook_e2e(cfg, broker, topic + "-lat",
                                              cfg["latency_rate"], cfg["latency_seconds"],
                                              size, acks),
                            f"{label} latency")
    finally:
        stats = broker.stop()
        phase["stop"].append(stats)
        phase["load_after"].append(loadavg())
        log(f"{b}: stopped; peak RSS {fmt_num(stats.get('peak_rss_mib'), 1)} MiB, "
            f"CPU used after start {fmt_num(stats.get('load_cpu_seconds'), 1)} s")


def topic_ready(cfg, broker, res, topic, parts, label, keys):
    """Creates a cell's topic; when that fails, each of `keys` records the error."""
    try:
        create_topic(cfg, broker, topic, parts)
        return True
    except Exception as e:  # noqa: BLE001 - one failed cell must not sink the run
        log(f"{label}: topic setup failed: {e}")
        for key in keys:
            res.setdefault(key, []).append({"error": str(e)})
        return False


def driven_cell(cfg, broker, res, client, topic, cell, label, n, size, acks, parts):
    """A librdkafka or franz-go cell: produce, then (acks=1) consume what it produced.
    No latency run: bench/latency.py measures librdkafka's latency on its own."""
    if not topic_ready(cfg, broker, res, topic, parts, label,
                       [f"{cell}/{client}/{kind}" for kind in ("produce", "consume")]):
        return
    attempt(res, f"{cell}/{client}/produce",
            lambda: PC.produce(cfg, broker, client, topic, n, size, acks),
            f"{label} produce", broker, size)
    if acks == "1":
        attempt(res, f"{cell}/{client}/consume",
                lambda: PC.consume(cfg, broker, client, topic, n, size),
                f"{label} consume", broker, size)


def tls_phase(cfg, broker, rep, res):
    """The SASL_SSL cells: produce then consume over TLS with SCRAM-SHA-512, each client
    on a fresh topic (created over PLAINTEXT)."""
    if not cfg.get("tls"):
        return
    b = broker.name
    # Unrecorded TLS warm-up, so the JIT has compiled the JVM's TLS path too.
    try:
        t0 = time.monotonic()
        topic = f"tls-warmup-r{rep}"
        create_topic(cfg, broker, topic, 12)
        producer_perf(cfg, broker, topic, cfg["warmup_records"], 100, "1", -1, tls=True)
        consumer_perf(cfg, broker, topic, cfg["warmup_records"], 100, tls=True)
        brook_produce(cfg, broker, topic, cfg["warmup_records"], 100, "1", tls=True)
        log(f"{b}: TLS warm-up done in {time.monotonic() - t0:.1f} s")
    except Exception as e:  # noqa: BLE001 - the cells will show the real problem
        log(f"{b}: TLS warm-up failed: {e}")
    for size, acks, parts in cfg["tls_cells"]:
        cell = cell_key(size, acks, parts)
        n = cfg["records"][size]
        for client in OWN_CLIENTS:
            tag = TOPIC_TAGS[client]
            topic = f"tls-{tag}-{size}-{acks}-{parts}-r{rep}"
            label = f"{b} r{rep} {cell} {client} SASL_SSL"
            if not topic_ready(cfg, broker, res, topic, parts, label,
                               [f"{cell}/{client}/{kind}"
                                for kind in ("tls-produce", "tls-consume")]):
                continue
            if client == "kafka-tools":
                produce = lambda: producer_perf(cfg, broker, topic, n, size, acks, -1, tls=True)
                consume = lambda: consumer_perf(cfg, broker, topic, n, size, tls=True)
            else:
                produce = lambda: brook_produce(cfg, broker, topic, n, size, acks, tls=True)
                consume = lambda: brook_consume(cfg, broker, topic, n, size, tls=True)
            attempt(res, f"{cell}/{client}/tls-produce", produce, f"{label} produce",
                    broker, size)
            attempt(res, f"{cell}/{client}/tls-consume", consume, f"{label} consume",
                    broker, size)


def make_tls_material(workdir):
    """A CA, a PEM keystore for localhost (key + certificate, as Kafka 4 and Brook read
    it) and the clients' properties file for SASL_SSL with SCRAM-SHA-512."""
    d = os.path.join(workdir, "tls")
    os.makedirs(d, exist_ok=True)

    def openssl(*args):
        run(["openssl", *args], timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key",
            "-out", f"{d}/ca.pem", "-days", "30", "-subj", "/CN=bench CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/broker.key",
            "-out", f"{d}/broker.csr", "-subj", "/CN=localhost")
    with open(f"{d}/broker.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/broker.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-days", "30", "-extfile", f"{d}/broker.ext",
            "-out", f"{d}/broker.crt")
    keystore = f"{d}/broker.keystore.pem"
    with open(keystore, "w") as f:
        f.write(open(f"{d}/broker.key").read() + open(f"{d}/broker.crt").read())
    props = f"{d}/client.properties"
    with open(props, "w") as f:
        f.write("security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule "
                f'required username="{TLS_USER}" password="{TLS_PASSWORD}";\n'
                f"ssl.truststore.type=PEM\nssl.truststore.location={d}/ca.pem\n")
    return {"keystore": keystore, "client_props": props, "ca": f"{d}/ca.pem"}


# ---------------------------------------------------------------- summary

def median_of(runs, path):
    vals = []
    for r in runs:
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(float(v))
    return statistics.median(vals) if vals else None


def errors_of(runs):
    return [r["error"] for r in runs if "error" in r]


def summarize(raw):
    s = {"brokers": {}, "cells": {}}
    for b, ph in raw["brokers"].items():
        s["brokers"][b] = {
            k: median_of(ph["start"], [k])
            for k in ("start_to_port_ms", "start_to_api_ms", "idle_rss_mib")
        }
        s["brokers"][b].update({k: median_of(ph["stop"], [k])
                                for k in ("peak_rss_mib", "load_cpu_seconds")})
    for b, runs in raw["runs"].items():
        for key, rs in runs.items():
            m = {"n": len(rs) - len(errors_of(rs)), "errors": errors_of(rs)}
            for path in (["records_per_sec"], ["mb_per_sec"], ["broker_cpu_ms_per_mb"],
                         ["client_cores"], ["broker_cores"],
                         ["latency_ms", "avg"],
                         ["latency_ms", "p50"], ["latency_ms", "p99"],
                         ["latency_ms", "p999"], ["latency_ms", "max"]):
                m[".".join(path)] = median_of(rs, path)
            s["cells"].setdefault(key, {})[b] = m
    return s


def fmt_num(v, digits=0):
    if v is None:
        return "—"
    if digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(brook, kafka):
    if brook is None or kafka is None or kafka == 0 or brook == 0:
        return "—"
    r = brook / kafka
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"{r:.3f}× (1/{1 / r:,.0f})"


def share(part, whole):
    if part is None or not whole:
        return "—"
    return f"{100 * part / whole:.0f}%"


def cell_val(s, key, broker, field):
    c = s["cells"].get(key, {}).get(broker)
    if not c:
        return None, []
    return c.get(field), c.get("errors", [])


def partial(s, key, broker):
    """A mark for a median over fewer repetitions than planned (some failed)."""
    n, errs = cell_val(s, key, broker, "n")
    return f" ({n} of {n + len(errs)} ok)" if errs and n else ""


def fmt_thr(s, key, broker):
    rps, errs = cell_val(s, key, broker, "records_per_sec")
    mbs, _ = cell_val(s, key, broker, "mb_per_sec")
    if rps is None:
        return "error" if errs else "—"
    return f"{rps:,.0f} ({mbs:.1f} MB/s){partial(s, key, broker)}"


def fmt_cores(s, key, broker):
    client, _ = cell_val(s, key, broker, "client_cores")
    brk, _ = cell_val(s, key, broker, "broker_cores")
    if client is None or brk is None:
        return "—"
    return f"{client:.2f} / {brk:.2f}"


def fmt_lat(s, key, broker):
    p50, errs = cell_val(s, key, broker, "latency_ms.p50")
    p99, _ = cell_val(s, key, broker, "latency_ms.p99")
    avg, _ = cell_val(s, key, broker, "latency_ms.avg")
    if p50 is None:
        return "error" if errs else "—"
    if "/kafka-tools/" in key:  # ProducerPerformance reports whole milliseconds
        whole = lambda v: "<1" if v < 1 else f"{v:.0f}"
        return f"{whole(p50)} / {whole(p99)} (avg {avg:.2f}){partial(s, key, broker)}"
    return f"{p50:.2f} / {p99:.2f}{partial(s, key, broker)}"


CLIENT_NAMES = {
    ("kafka-tools", "produce"): "kafka-producer-perf-test",
    ("brook-bench", "produce"): "brook bench produce",
    ("kafka-tools", "consume"): "kafka-consumer-perf-test",
    ("brook-bench", "consume"): "brook bench consume",
    ("librdkafka", "produce"): "librdkafka (rdkafka_perf)",
    ("librdkafka", "consume"): "librdkafka (rdkafka_perf)",
    ("franz-go", "produce"): "franz-go (franz-perf)",
    ("franz-go", "consume"): "franz-go (franz-perf)",
    ("kafka-tools", "latency"): "kafka-producer-perf-test (send→ack)",
    ("brook-bench", "latency"): "brook bench e2e (produce→consume)",
}


def hint(error):
    if "MessageTooLarge" in error:
        return (" — brook bench e2e sends every record that is due as one batch; when acks "
                "lag, that batch outgrows max.message.bytes")
    return ""


def markdown(raw, s):
    meta = raw["meta"]
    cfg = meta["config"]
    L = []
    L.append(f"# Brook vs Apache Kafka {meta['kafka_version']}, side by side")
    L.append("")
    L.append(f"- When: {meta['started']} – {meta['finished']} (UTC); mode: **{meta['mode']}**, "
             f"{cfg['reps']} repetition(s), median reported")
    L.append(f"- Machine: {meta['host']['cpus']} CPUs ({meta['host']['cpu_model']}), "
             f"{meta['host']['mem_gib']:.0f} GiB RAM, {meta['host']['kernel']}; "
             f"data on {meta['host']['data_fs']}")
    L.append(f"- Brook: `{meta['brook_version']}` at git `{meta['brook_git']}`; "
             f"Kafka {meta['kafka_version']} (Maven artifacts) on {meta['java']}")
    L.append(f"- Load average (1/5/15 min) at start {meta['load_start']}, at end "
             f"{meta['load_end']}. The machine may be shared with other work (builds, "
             f"tests), so absolute numbers are noisy; Brook and Kafka alternate per "
             f"repetition and never run at the same time.")
    L.append("- Both brokers run with default configs, one at a time, data on disk; "
             "Kafka as a single KRaft broker+controller (combined mode). After each start, "
             f"{cfg['warmup_records']:,} records of unrecorded warm-up per client (JIT).")
    L.append(f"- Records per produce run: " + ", ".join(
        f"{n:,} × {sz} B" for sz, n in sorted(cfg["records"].items(), key=lambda x: int(x[0]))) +
        f"; latency runs: {cfg['latency_rate']:,} records/s for {cfg['latency_seconds']} s.")
    L.append("")
    L.append("Ratios are Brook/Kafka: above 1× Brook is faster for throughput; "
             "below 1× Brook is better for latency, start time and memory.")
    L.append("")

    L.append("## Machine limits")
    L.append("")
    L.append("| measurement | result |")
    L.append("| --- | --- |")
    lim = raw["limits"]

    def lim_row(name, key, fmt):
        d = lim.get(key, {})
        if "error" in d:
            L.append(f"| {name} | error: {d['error'][:120]} |")
        elif "skipped" in d:
            L.append(f"| {name} | skipped: {d['skipped']} |")
        elif d:
            L.append(f"| {name} | {fmt(d)} |")
    lim_row("loopback TCP, 1 stream (Python, 1 MiB writes)", "loopback_tcp_python",
            lambda d: f"{d['gbit_per_sec']:.1f} Gbit/s ({d['mb_per_sec']:,.0f} MB/s)")
    lim_row("loopback TCP, 1 stream (iperf3)", "loopback_tcp_iperf3",
            lambda d: f"{d['gbit_per_sec']:.1f} Gbit/s ({d['mb_per_sec']:,.0f} MB/s)")
    lim_row(f"sequential write {cfg['dd_mib']} MiB, dd bs=1M, no fsync (page cache)",
            "disk_seq_write_no_fsync", lambda d: f"{d['mb_per_sec']:,.0f} MB/s")
    lim_row(f"sequential write {cfg['dd_mib']} MiB, dd bs=1M conv=fdatasync",
            "disk_seq_write_fdatasync", lambda d: f"{d['mb_per_sec']:,.0f} MB/s")
    lim_row("4 KiB write + fdatasync, one at a time", "disk_4k_write_fdatasync",
            lambda d: f"{d['ops_per_sec']:,.0f} ops/s ({d['avg_ms']:.2f} ms each)")
    L.append("")

    L.append("## Start time and memory")
    L.append("")
    L.append("| | Kafka | Brook | Brook/Kafka |")
    L.append("| --- | ---: | ---: | ---: |")
    kb, bb = s["brokers"].get("kafka", {}), s["brokers"].get("brook", {})
    for label, k, d in (("start: exec → port accepts connections (ms)", "start_to_port_ms", 0),
                        ("start: exec → first ApiVersions response (ms)", "start_to_api_ms", 0),
                        (f"idle RSS, {cfg['idle_seconds']} s after start (MiB)",
                         "idle_rss_mib", 1),
                        ("peak RSS during the benchmark (MiB)", "peak_rss_mib", 1),
                        ("broker CPU time, warm-up + matrix (s)", "load_cpu_seconds", 1)):
        L.append(f"| {label} | {fmt_num(kb.get(k), d)} | {fmt_num(bb.get(k), d)} | "
                 f"{ratio(bb.get(k), kb.get(k))} |")
    L.append("")

    cells = [tuple(c) for c in cfg["cells"]]

    def thr_table(kind, title, note):
        L.append(f"## {title}")
        L.append("")
        L.append(note)
        L.append("")
        L.append("| record | acks | partitions | client | Kafka records/s | Brook records/s "
                 "| Brook/Kafka | cores busy with Kafka: client / broker "
                 "| cores busy with Brook: client / broker |")
        L.append("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for size, acks, parts in cells:
            if kind == "consume" and acks != "1":
                continue
            for client in cfg.get("clients", OWN_CLIENTS):
                key = f"{cell_key(size, acks, parts)}/{client}/{kind}"
                k, _ = cell_val(s, key, "kafka", "records_per_sec")
                b, _ = cell_val(s, key, "brook", "records_per_sec")
                L.append(f"| {size} B | {acks} | {parts} | {CLIENT_NAMES[(client, kind)]} | "
                         f"{fmt_thr(s, key, 'kafka')} | {fmt_thr(s, key, 'brook')} | "
                         f"{ratio(b, k)} | {fmt_cores(s, key, 'kafka')} | "
                         f"{fmt_cores(s, key, 'brook')} |")
        L.append("")
        L.append(f"*Cores busy*: CPU time over the run's wall time, of the client process "
                 f"(the JVM's start included for the Java tools) and of the broker; this "
                 f"machine has {meta['host']['cpus']}. A client near all of them set the "
                 f"cell's rate, whatever the broker.")
        L.append("")

    thr_table("produce", "Produce throughput",
              "As fast as the client goes. kafka-producer-perf-test uses the Java producer's "
              "defaults (batch.size 16 KiB, linger.ms 5); brook bench produce sends "
              "1,000-record batches, 5 requests in flight, round-robin over partitions; "
              "librdkafka and franz-go (bench/perf/) keep their clients' defaults "
              "(librdkafka: linger.ms 5, batch.size 1 MB; franz-go: linger 0, 1 MB batches, "
              "idempotent with acks=all) and send null-key records, so both partition "
              "stickily. MB/s counts record values only (10^6 bytes).")
    thr_table("consume", "Consume throughput",
              "Reading the topic the same client just produced (acks=1 cells only: producer "
              "acks do not change what is read). kafka-consumer-perf-test: fetch.nMsg.sec, "
              "i.e. excluding the consumer-group join (about 3 s of "
              "group.initial.rebalance.delay.ms on both brokers); brook bench consume, "
              "librdkafka and franz-go: every partition from the start, without a group "
              "(librdkafka and franz-go timed from their start, so connecting counts).")

    tls_cells = [tuple(c) for c in cfg.get("tls_cells", [])]
    if tls_cells:
        L.append("## SASL_SSL: SCRAM-SHA-512 over TLS")
        L.append("")
        L.append("The same clients on each broker's SASL_SSL listener (TLS 1.3 as the Java "
                 "client and the broker agree on it, an RSA-2048 certificate, PEM stores, "
                 "SCRAM-SHA-512), on fresh topics. *TLS/plain* is the cell's throughput over "
                 "SASL_SSL divided by the same cell over PLAINTEXT on the same broker in the "
                 "same run: the share of its plaintext speed a broker keeps with TLS.")
        L.append("")
        L.append("| record | partitions | client | Kafka records/s | Brook records/s | "
                 "Brook/Kafka | Kafka TLS/plain | Brook TLS/plain |")
        L.append("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
        for size, acks, parts in tls_cells:
            for kind in ("produce", "consume"):
                for client in OWN_CLIENTS:
                    base = f"{cell_key(size, acks, parts)}/{client}/"
                    key = base + "tls-" + kind
                    k, _ = cell_val(s, key, "kafka", "records_per_sec")
                    b, _ = cell_val(s, key, "brook", "records_per_sec")
                    kp, _ = cell_val(s, base + kind, "kafka", "records_per_sec")
                    bp, _ = cell_val(s, base + kind, "brook", "records_per_sec")
                    L.append(f"| {size} B | {parts} | {CLIENT_NAMES[(client, kind)]} | "
                             f"{fmt_thr(s, key, 'kafka')} | {fmt_thr(s, key, 'brook')} | "
                             f"{ratio(b, k)} | {share(k, kp)} | {share(b, bp)} |")
        L.append("")
        L.append("### What TLS costs the broker: CPU per MB")
        L.append("")
        L.append("The broker process's CPU time (user + system, from /proc) over each run, "
                 "per MB of record values moved (10^6 bytes), in ms/MB: over PLAINTEXT, "
                 "over SASL_SSL, and the difference, *TLS extra*: the CPU that TLS (and "
                 "SASL) adds per MB. Unlike TLS/plain this does not depend on how fast the "
                 "plaintext path is. It includes whatever else the broker does meanwhile "
                 "(log flushes, GC), alike for both. Medians per column, so *TLS extra* is "
                 "the difference of the medians. *Brook ≤ Kafka* says whether Brook's TLS "
                 "extra is at most Kafka's.")
        L.append("")
        L.append("| record | partitions | client | Kafka plain | Kafka TLS | Kafka TLS extra "
                 "| Brook plain | Brook TLS | Brook TLS extra | Brook ≤ Kafka |")
        L.append("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | :---: |")

        def cpu(v):
            return "—" if v is None else f"{v:.2f}"
        for size, acks, parts in tls_cells:
            for kind in ("produce", "consume"):
                for client in OWN_CLIENTS:
                    base = f"{cell_key(size, acks, parts)}/{client}/"
                    row = []
                    extras = []
                    for b in ("kafka", "brook"):
                        plain, _ = cell_val(s, base + kind, b, "broker_cpu_ms_per_mb")
                        tls, _ = cell_val(s, base + "tls-" + kind, b, "broker_cpu_ms_per_mb")
                        extra = None if plain is None or tls is None else tls - plain
                        extras.append(extra)
                        row += [cpu(plain), cpu(tls), cpu(extra)]
                    ke, be = extras
                    verdict = "—" if ke is None or be is None else ("yes" if be <= ke else "no")
                    L.append(f"| {size} B | {parts} | {CLIENT_NAMES[(client, kind)]} | "
                             + " | ".join(row) + f" | {verdict} |")
        L.append("")

    L.append(f"## Latency at {cfg['latency_rate']:,} records/s")
    L.append("")
    L.append("kafka-producer-perf-test --throughput measures send → acknowledgement per "
             "record (whole milliseconds); brook bench e2e measures produce → consumed by a "
             "fetching consumer. Values are p50 / p99 in ms; '<1' is below the tool's 1 ms "
             "resolution (no ratio then).")
    L.append("")
    L.append("| record | acks | partitions | client | Kafka p50 / p99 | Brook p50 / p99 "
             "| Brook/Kafka p50 | Brook/Kafka p99 |")
    L.append("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |")
    for size, acks, parts in cells:
        for client in OWN_CLIENTS:
            key = f"{cell_key(size, acks, parts)}/{client}/latency"
            k50, _ = cell_val(s, key, "kafka", "latency_ms.p50")
            b50, _ = cell_val(s, key, "brook", "latency_ms.p50")
            k99, _ = cell_val(s, key, "kafka", "latency_ms.p99")
            b99, _ = cell_val(s, key, "brook", "latency_ms.p99")
            L.append(f"| {size} B | {acks} | {parts} | {CLIENT_NAMES[(client, 'latency')]} | "
                     f"{fmt_lat(s, key, 'kafka')} | {fmt_lat(s, key, 'brook')} | "
                     f"{ratio(b50, k50)} | {ratio(b99, k99)} |")
    L.append("")

    errs = []
    for key, per in sorted(s["cells"].items()):
        for b, m in per.items():
            for e in m["errors"]:
                errs.append(f"- {b} {key}: {e}{hint(e)}")
    for b, ph in raw["brokers"].items():
        for st in ph["start"]:
            if "error" in st:
                errs.append(f"- {b} start: {st['error']}")
    L.append("## Problems")
    L.append("")
    L.extend(errs or ["None: every run completed."])
    L.append("")
    L.append(f"Raw per-repetition numbers: `{raw['meta']['json_name']}`. "
             "Reproduce with `bench/run.sh` (see bench/README.md).")
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------- main

def host_info(workdir):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    fs = "?"
    try:
        out, _ = run(["df", "-T", workdir], timeout=10)
        parts = out.splitlines()[-1].split()
        fs = f"{parts[0]} ({parts[1]})"
    except Exception:  # noqa: BLE001
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "mem_gib": mem,
            "kernel": f"Linux {platform.release()}", "data_fs": fs}


def detect_tool_flags(cfg):
    """Kafka renamed some perf-tool options in 4.x; use whichever this version has."""
    out1, err1 = run(["java", "-cp", os.path.join(cfg["kafka_libs"], "*"),
                      "org.apache.kafka.tools.ProducerPerformance", "--help"], timeout=60,
                     check=False)
    out2, err2 = run(["java", "-cp", os.path.join(cfg["kafka_libs"], "*"),
                      "org.apache.kafka.tools.ConsumerPerformance", "--help"], timeout=60,
                     check=False)
    cfg["pp_props_flag"] = "--command-property" if "--command-property" in (out1 + err1) else \
        "--producer-props"
    cfg["cp_records_flag"] = "--num-records" if "--num-records" in (out2 + err2) else \
        "--messages"
    cfg["pp_config_flag"] = "--command-config" if "--command-config" in (out1 + err1) else \
        "--producer.config"
    cfg["cp_config_flag"] = "--command-config" if "--command-config" in (out2 + err2) else \
        "--consumer.config"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repetition, 2 cells, fewer records")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    ap.add_argument("--brook-bin", default=os.path.join(ROOT, "target", "release", "brook"))
    ap.add_argument("--kafka-libs", help="directory of Kafka jars")
    ap.add_argument("--kafka-version")
    ap.add_argument("--render", metavar="JSON",
                    help="only rewrite the Markdown report of an earlier run's JSON")
    ap.add_argument("--workdir", default=os.path.join(HERE, ".cache", "work"),
                    help="broker data and logs (wiped at start)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest"),
                    help="writes OUT.md and OUT.json")
    ap.add_argument("--brokers", default="kafka,brook", help="comma list: kafka,brook")
    ap.add_argument("--skip-limits", action="store_true", help="skip machine-limit probes")
    ap.add_argument("--keep-data", action="store_true", help="keep broker data directories")
    ap.add_argument("--no-tls", action="store_true", help="skip the SASL_SSL cells")
    ap.add_argument("--clients", default=",".join(CLIENTS),
                    help=f"comma list of the matrix's clients: {','.join(CLIENTS)}")
    ap.add_argument("--tls-only", action="store_true",
                    help="only the SASL_SSL cells and the plaintext cells they compare with")
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            raw = json.load(f)
        raw.setdefault("meta", {}).setdefault("json_name", a.render)
        raw["summary"] = summarize(raw)
        md = markdown(raw, raw["summary"])
        with open(os.path.splitext(a.render)[0] + ".md", "w") as f:
            f.write(md)
        print(md)
        return
    if not a.kafka_libs or not a.kafka_version:
        ap.error("--kafka-libs and --kafka-version are required (run.sh passes them)")

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(cleanup)

    cfg = dict(QUICK if a.quick else FULL)
    if a.reps:
        cfg["reps"] = a.reps
    cfg.update(brook_bin=a.brook_bin, kafka_libs=a.kafka_libs, workdir=a.workdir,
               keep_data=a.keep_data)
    if a.no_tls:
        cfg["tls_cells"] = []
    if a.tls_only:
        cfg["cells"] = list(cfg["tls_cells"])
        a.clients = ",".join(OWN_CLIENTS)
    cfg["clients"] = [c for c in a.clients.split(",") if c]
    unknown = set(cfg["clients"]) - set(CLIENTS)
    if unknown:
        ap.error(f"unknown clients {sorted(unknown)}; known: {', '.join(CLIENTS)}")
    if set(cfg["clients"]) & set(PC.CLIENTS):
        cfg["perf_clients"] = PC.build(log)
    if not os.access(cfg["brook_bin"], os.X_OK):
        sys.exit(f"bench.py: no Brook binary at {cfg['brook_bin']} (cargo build --release)")
    if not os.path.isdir(cfg["kafka_libs"]):
        sys.exit(f"bench.py: no Kafka jars in {cfg['kafka_libs']}")
    shutil.rmtree(a.workdir, ignore_errors=True)
    os.makedirs(a.workdir)
    # Snapshot the binary: a concurrent `cargo build` must not swap it mid-run.
    snapshot = os.path.join(a.workdir, "brook")
    shutil.copy2(cfg["brook_bin"], snapshot)
    cfg["brook_bin"] = snapshot
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    if cfg["tls_cells"]:
        cfg["tls"] = make_tls_material(a.workdir)

    detect_tool_flags(cfg)
    brook_version = run([cfg["brook_bin"], "--version"], timeout=10)[0].strip()
    try:
        git = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=10)[0].strip()
        dirty = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                    timeout=30)[0].strip()
        git += " (+ uncommitted changes)" if dirty else ""
    except Exception:  # noqa: BLE001
        git = "?"
    java = run(["java", "-version"], timeout=30)[1].splitlines()[0]
    raw = {
        "meta": {
            "mode": "quick" if a.quick else "full",
            "started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
            "kafka_version": a.kafka_version, "brook_version": brook_version,
            "brook_git": git, "java": java, "host": host_info(a.workdir),
            "load_start": loadavg(),
            "config": {k: v for k, v in cfg.items()
                       if k in ("reps", "cells", "records", "latency_rate", "latency_seconds",
                                "idle_seconds", "dd_mib", "net_seconds", "fsync_seconds",
                                "warmup_records", "pp_props_flag", "cp_records_flag",
                                "tls_cells", "clients")},
        },
        "limits": {}, "brokers": {}, "runs": {},
    }
    log(f"mode {raw['meta']['mode']}, {cfg['reps']} repetition(s), {len(cfg['cells'])} cells; "
        f"Kafka {a.kafka_version}; {brook_version} ({git}); work dir {a.workdir}")

    if not a.skip_limits:
        raw["limits"] = machine_limits(cfg, a.workdir)

    order = [{"kafka": Kafka, "brook": Brook}[b] for b in a.brokers.split(",") if b]
    for rep in range(1, cfg["reps"] + 1):
        # Alternate who goes first so drift in background load hits both alike.
        for cls in (order if rep % 2 == 1 else list(reversed(order))):
            broker_phase(cfg, cls, rep, raw)

    out_json = os.path.abspath(a.out + ".json")
    raw["meta"]["json_name"] = os.path.relpath(out_json, ROOT) \
        if out_json.startswith(ROOT + os.sep) else out_json
    raw["meta"]["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    raw["meta"]["load_end"] = loadavg()
    raw["meta"]["config"]["records"] = {str(k): v for k, v in cfg["records"].items()}
    s = summarize(raw)
    raw["summary"] = s
    md = markdown(raw, s)
    with open(a.out + ".json", "w") as f:
        json.dump(raw, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    print(md)
    log(f"wrote {a.out}.md and {a.out}.json")


if __name__ == "__main__":
    main()
