"""Moving replicas and leaders of a 3-node cluster with Apache Kafka's own tools:
`kafka-reassign-partitions` (AlterPartitionReassignments / ListPartitionReassignments)
and `kafka-leader-election` (ElectLeaders), run from the kafka-tools jars
(`scripts/kafka-jars.sh` fetches them once into compat/.cache)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import time
from functools import lru_cache

import pytest

from cluster import Cluster, event
from kafka_helpers import consume_to_end, unique_topic
from test_cluster import check_partition, produce_batch

REPO = pathlib.Path(__file__).resolve().parents[2]
JVM = ["java", "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx256m",
       "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]


@lru_cache(maxsize=1)
def kafka_jars() -> str:
    r = subprocess.run([str(REPO / "scripts" / "kafka-jars.sh")], capture_output=True,
                       text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"scripts/kafka-jars.sh failed:\n{r.stderr[-4000:]}", pytrace=False)
    return r.stdout.strip()


def kafka_tool(cls: str, *args: str, timeout: float = 60) -> str:
    """Runs one Kafka tool class; returns its stdout, fails the test on a non-zero exit."""
    cmd = [*JVM, "-cp", f"{kafka_jars()}/*", cls, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    event(f"{cls.rsplit('.', 1)[-1]} {' '.join(args)} -> exit {r.returncode}")
    assert r.returncode == 0, (f"{cls} {' '.join(args)} exited {r.returncode}\n"
                               f"stdout:\n{r.stdout[-3000:]}\nstderr:\n{r.stderr[-3000:]}")
    return r.stdout


def config_command(bootstrap: str, *args: str) -> subprocess.CompletedProcess:
    """Kafka's kafka-configs (ConfigCommand) against `bootstrap`; the caller checks the
    exit code (refusals are what some tests expect)."""
    return subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", "org.apache.kafka.tools.ConfigCommand",
                           "--bootstrap-server", bootstrap, *args],
                          capture_output=True, text=True, timeout=60)


REASSIGN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
ELECT = "org.apache.kafka.tools.LeaderElectionCommand"


def reassign(bootstrap: str, tmp_path: pathlib.Path, action: str,
             moves: dict[tuple[str, int], list[int]], *extra: str) -> str:
    """kafka-reassign-partitions --execute|--verify|--cancel with a plan of `moves`."""
    plan = {"version": 1, "partitions": [
        {"topic": t, "partition": p, "replicas": r} for (t, p), r in moves.items()]}
    f = tmp_path / f"reassign-{action}.json"
    f.write_text(json.dumps(plan))
    return kafka_tool(REASSIGN, "--bootstrap-server", bootstrap,
                      "--reassignment-json-file", str(f), f"--{action}", *extra)


@pytest.mark.deadline(150)
def test_reassign_partitions_and_elect_preferred_leader_with_kafka_tools(
        cluster: Cluster, tmp_path: pathlib.Path):
    kafka_jars()
    topic = unique_topic("reassign")
    cluster.create_topic(topic, partitions=1, replica_assignment=[[1, 2]])
    n = 3000
    values = [b"r-%06d" % i for i in range(n)]
    acked, failed = produce_batch(cluster.bootstrap, topic, values, timeout=30, acks="all")
    assert not failed, failed[:3]
    assert sorted(acked) == list(range(n))

    # 1. Move [1, 2] -> [3, 2]: node 3 copies the log, then node 1 (the leader) drops out.
    out = reassign(cluster.bootstrap, tmp_path, "execute", {(topic, 0): [3, 2]})
    assert "Successfully started partition reassignment" in out, out

    def moved():
        p = cluster.partition(topic, 0)
        return (p.replicas == [3, 2] and set(p.isrs) == {2, 3} and p.leader in (2, 3)) or None
    _, secs = cluster.wait(moved, 30, f"{topic}-0 replicas [3, 2], ISR {{2, 3}}")
    print(f"reassignment of {n} records to node3 completed in {secs:.2f}s: "
          f"{cluster.describe(topic)}")
    out = reassign(cluster.bootstrap, tmp_path, "verify", {(topic, 0): [3, 2]})
    assert f"Reassignment of partition {topic}-0 is completed" in out, out
    cluster.wait(lambda: not cluster.nodes[1].segment_files(topic, 0) or None, 15,
                 "node1 deletes its replica")

    # 2. Node 3 alone has a complete copy: with node 2 down it leads and serves it all.
    cluster.kill(2)
    cluster.wait_for_leader(topic, 0, not_in={2}, via=3, timeout=20)
    records = consume_to_end(cluster.bootstrap_of(3), topic, 1, timeout=30)[0]
    check_partition(records, 0)
    assert [r.value for r in records] == values

    # 3. Preferred leader election: node 2 comes back and leads after its restart only if
    # it is preferred; node 3 is preferred, so make node 2 lead first, then elect.
    cluster.start(2)
    cluster.wait_for_isr(topic, 0, {2, 3}, timeout=30)
    cluster.kill(3)
    cluster.wait_for_leader(topic, 0, not_in={3}, via=2, timeout=20)
    cluster.start(3)
    cluster.wait_for_isr(topic, 0, {2, 3}, timeout=30)
    assert cluster.leader(topic, 0) == 2, cluster.describe(topic)
    out = kafka_tool(ELECT, "--bootstrap-server", cluster.bootstrap,
                     "--election-type", "PREFERRED", "--topic", topic, "--partition", "0")
    assert "Successfully completed leader election (PREFERRED)" in out, out
    cluster.wait(lambda: cluster.leader(topic, 0) == 3 or None, 10, "node3 leads again")
    # Asking again changes nothing: the preferred replica already leads.
    out = kafka_tool(ELECT, "--bootstrap-server", cluster.bootstrap,
                     "--election-type", "PREFERRED", "--all-topic-partitions")
    assert f"{topic}-0" not in out.split("Successfully completed")[-1].split("\n")[0], out
    assert cluster.leader(topic, 0) == 3



@pytest.mark.deadline(120)
def test_reassignment_in_progress_is_listed_and_can_be_cancelled(cluster_factory, tmp_path):
    """A move to a replica that cannot copy the log (its process is stopped, but not
    yet fenced) stays in progress: --verify and --list show it, --cancel undoes it."""
    kafka_jars()
    cluster = cluster_factory(3, {"broker.session.timeout.ms": 30000})
    controller = cluster.metadata().controller_id
    frozen = max(i for i in cluster.ids if i != controller)
    keep = [i for i in cluster.ids if i != frozen]
    bootstrap = cluster.bootstrap_of(*keep)
    topic = unique_topic("cancel")
    cluster.create_topic(topic, partitions=1, replica_assignment=[keep])
    values = [b"c-%05d" % i for i in range(500)]
    acked, failed = produce_batch(bootstrap, topic, values, timeout=30, acks="all")
    assert not failed and len(acked) == len(values), failed[:3]

    target = [frozen, keep[1]]
    pid = cluster.nodes[frozen].proc.pid
    os.kill(pid, signal.SIGSTOP)
    event(f"node{frozen} stopped (SIGSTOP)")
    try:
        out = reassign(bootstrap, tmp_path, "execute", {(topic, 0): target})
        assert "Successfully started partition reassignment" in out, out
        p = cluster.partition(topic, 0, via=keep[0])
        assert p.replicas == [frozen, keep[1], keep[0]], cluster.describe(topic, via=keep[0])
        out = reassign(bootstrap, tmp_path, "verify", {(topic, 0): target},
                       "--preserve-throttles")
        assert f"Reassignment of partition {topic}-0 is still in progress" in out, out
        out = kafka_tool(REASSIGN, "--bootstrap-server", bootstrap, "--list")
        line = next((l for l in out.splitlines() if l.startswith(f"{topic}-0")), "")
        assert f"adding: {frozen}" in line and f"removing: {keep[0]}" in line, out
        # (--preserve-throttles: clearing throttles would wait on the stopped node.)
        out = reassign(bootstrap, tmp_path, "cancel", {(topic, 0): target},
                       "--preserve-throttles")
        assert f"Successfully cancelled partition reassignment for: {topic}-0" in out, out
        p = cluster.partition(topic, 0, via=keep[0])
        # (as in Kafka, the merged list's order stays: [3, 1] for an original [1, 3])
        assert sorted(p.replicas) == keep and set(p.isrs) == set(keep), \
            cluster.describe(topic, via=keep[0])
        out = kafka_tool(REASSIGN, "--bootstrap-server", bootstrap, "--list")
        assert f"{topic}-0" not in out, out
    finally:
        os.kill(pid, signal.SIGCONT)
        event(f"node{frozen} continued (SIGCONT)")
    records = consume_to_end(bootstrap, topic, 1, timeout=30)[0]
    assert [r.value for r in records] == values


def test_brook_cli_reads_each_partition_from_its_leader(cluster: Cluster):
    """`brook topic describe` and `brook consume` against one node of a 3-node cluster:
    ListOffsets and Fetch go to each partition's leader, not to the bootstrap node."""
    from conftest import find_brook_bin
    topic = unique_topic("cli-cluster")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    leaders = {p: cluster.wait_for_leader(topic, p)[0] for p in range(3)}
    event(f"leaders {leaders}")
    # Bootstrap through a node that does not lead every partition.
    node = next(n for n in cluster.ids if set(leaders.values()) != {n})
    bin_path = find_brook_bin()
    # `brook produce` sends each partition's batches to its leader (round robin: 10 each).
    prod = subprocess.run([bin_path, "produce", topic, "--acks", "-1", "--batch-size", "1",
                           "-b", cluster.bootstrap_of(node)],
                          input="".join(f"v{i}\n" for i in range(30)),
                          capture_output=True, text=True, timeout=60)
    assert prod.returncode == 0, prod.stderr
    desc = subprocess.run([bin_path, "topic", "describe", topic, "-b", cluster.bootstrap_of(node)],
                          capture_output=True, text=True, timeout=60)
    assert desc.returncode == 0, desc.stderr
    rows = {int(r.split()[0]): r.split() for r in desc.stdout.splitlines()
            if r.split() and r.split()[0].isdigit()}
    assert {p: int(rows[p][1]) for p in rows} == leaders, desc.stdout
    assert all(int(rows[p][3]) == 10 for p in rows), desc.stdout
    out = subprocess.run([bin_path, "consume", topic, "--from-beginning", "--max-messages", "30",
                          "-b", cluster.bootstrap_of(node)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(f"v{i}" for i in range(30))
    # Replicas and ISR per partition, and every broker with its endpoint.
    rows = {int(r.split()[0]): r.split() for r in desc.stdout.splitlines()
            if r.split() and r.split()[0].isdigit()}
    assert all(sorted(rows[p][5].split(",")) == ["1", "2", "3"] for p in rows), desc.stdout
    info = subprocess.run([bin_path, "cluster", "info", "-b", cluster.bootstrap_of(node)],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    for i in cluster.ids:
        assert re.search(rf"^\s*{i}\s+{re.escape(cluster.bootstrap_of(i))}\s", info.stdout,
                         re.M), info.stdout


@pytest.mark.deadline(150)
def test_brook_group_commands_find_the_coordinator(cluster: Cluster):
    """`brook group list|describe|reset-offsets|delete` through every node of a 3-node
    cluster: group requests go to the group's coordinator, ListGroups to every broker."""
    from confluent_kafka import Consumer

    from conftest import find_brook_bin
    from kafka_helpers import assert_all_delivered, produce_all, producer
    from test_groups import _describe_rows

    topic, group = unique_topic("cli-grp"), unique_topic("cli-g")
    cluster.create_topic(topic, partitions=3, replication_factor=3)
    for p in range(3):
        cluster.wait_for_leader(topic, p)
    assert_all_delivered(produce_all(producer(cluster.bootstrap, acks="all"), topic,
                                     [{"value": b"v", "partition": i % 3} for i in range(30)]))
    c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, deadline = 0, time.monotonic() + 60
    while got < 30 and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            got += 1
    assert got == 30
    c.commit(asynchronous=False)
    c.close()

    bin_path = find_brook_bin()

    def cli(node: int, *args: str) -> str:
        r = subprocess.run([bin_path, "group", *args, "-b", cluster.bootstrap_of(node)],
                           capture_output=True, text=True, timeout=60)
        event(f"brook group {' '.join(args)} via node {node} -> exit {r.returncode}")
        assert r.returncode == 0, f"via node {node}: {r.stderr}"
        return r.stdout

    for node in cluster.ids:
        assert group in cli(node, "list")
        assert _describe_rows(cli(node, "describe", group), topic) == {
            p: ("10", "10", "0") for p in range(3)}
    node = cluster.ids[-1]
    cli(node, "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    assert _describe_rows(cli(cluster.ids[0], "describe", group), topic) == {
        p: ("0", "10", "10") for p in range(3)}
    cli(node, "delete", group)
    assert all(group not in cli(n, "list") for n in cluster.ids)


def test_broker_racks_are_reported_and_replicas_spread_over_them(cluster_factory):
    """`broker.rack`: Metadata and DescribeCluster report each broker's rack (Kafka's
    admin client and `brook cluster info` show them), and new topics place each
    partition's replicas on as many racks as they can (Kafka's rack-aware placement)."""
    from confluent_kafka.admin import NewTopic
    from kafka_helpers import admin_client
    from conftest import find_brook_bin
    cluster = cluster_factory(3, start=False)
    racks = {1: "rack-a", 2: "rack-b", 3: "rack-b"}
    for i, rack in racks.items():
        cluster.nodes[i].settings["broker.rack"] = rack
    cluster.start_all()
    admin = admin_client(cluster.bootstrap_of(1))
    described = admin.describe_cluster().result(30)
    assert {n.id: n.rack for n in described.nodes} == racks, described.nodes
    info = subprocess.run([find_brook_bin(), "cluster", "info", "-b", cluster.bootstrap_of(2)],
                          capture_output=True, text=True, timeout=60)
    assert info.returncode == 0, info.stderr
    for i, rack in racks.items():
        assert re.search(rf"^\s*{i}\s+\S+\s+{rack}\b", info.stdout, re.M), info.stdout
    # Replication factor 2 over racks a and b: every partition has a replica on
    # node 1, the only broker of rack-a; leaders still spread over all three.
    topic = unique_topic("racks")
    futures = admin.create_topics([NewTopic(topic, num_partitions=12, replication_factor=2)],
                                  operation_timeout=30, request_timeout=30)
    futures[topic].result(30)
    for p in range(12):
        cluster.wait_for_leader(topic, p)
    meta = admin.list_topics(topic, timeout=30).topics[topic].partitions
    assert all(1 in meta[p].replicas for p in range(12)), {p: meta[p].replicas for p in meta}
    assert {meta[p].replicas[0] for p in range(12)} == {1, 2, 3}


def test_nodes_log_in_to_each_other_on_a_sasl_controller_listener(cluster_factory):
    """A SASL_PLAINTEXT controller listener: nodes log in to each other with PLAIN
    (the JAAS line's username/password), the quorum forms and replicates, and an
    internal request on a connection that has not logged in is refused."""
    import socket
    import struct
    from kafka_helpers import consume_to_end
    from test_cluster import produce_batch
    jaas = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
            'username="node" password="node-secret" user_node="node-secret";')
    cluster = cluster_factory(3, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "listener.name.controller.plain.sasl.jaas.config": jaas,
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.controller.protocol": "PLAIN",
    })
    topic = unique_topic("sasl-ctrl")
    cluster.create_topic(topic, partitions=1, replication_factor=3)
    cluster.wait_for_leader(topic, 0)
    values = [f"v{i}".encode() for i in range(50)]
    acked, failed = produce_batch(cluster.bootstrap_of(1, 2, 3), topic, values, 60,
                                  acks="all")
    assert not failed and len(acked) == 50, failed
    got = consume_to_end(cluster.bootstrap_of(2), topic, 1, timeout=30)[0]
    assert [r.value for r in got] == values
    # Brook's internal API key (0x7B00) before any login: the connection is closed.
    s = socket.create_connection(("127.0.0.1", cluster.nodes[1].controller_port), timeout=5)
    try:
        body = struct.pack(">hhih", 0x7B00, 0, 1, -1) + bytes([0]) + b"{}"
        s.sendall(struct.pack(">i", len(body)) + body)
        assert s.recv(4096) == b""
    finally:
        s.close()
