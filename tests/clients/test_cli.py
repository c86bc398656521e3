"""The brook CLI client tools (`brook topic|produce|consume`), checked against
confluent-kafka where it matters."""

import re

import pytest

from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consume_to_end,
    consumer,
    partition_count,
    produce_all,
    producer,
    topic_names,
    unique_topic,
    watermarks,
)


def test_topic_create_list_describe_delete(brook):
    topic = unique_topic("cli")
    brook.cli("topic", "create", topic, "--partitions", "3")
    assert partition_count(brook.bootstrap, topic) == 3

    listed = brook.cli("topic", "list").stdout.split()
    assert topic in listed

    desc = brook.cli("topic", "describe", topic).stdout
    assert re.search(r"PartitionCount:\s*3\b", desc), desc
    rows = [ln.split() for ln in desc.splitlines()]
    partitions = sorted(int(r[0]) for r in rows if r and r[0].isdigit())
    assert partitions == [0, 1, 2], desc

    brook.cli("topic", "delete", topic)
    assert topic not in brook.cli("topic", "list").stdout.split()
    assert topic not in topic_names(brook.bootstrap)


def test_topic_create_with_config_and_duplicate(brook):
    topic = unique_topic("cli-cfg")
    brook.cli("topic", "create", topic, "--partitions", "2", "--config", "retention.ms=123456")
    desc = brook.cli("topic", "describe", topic).stdout
    assert "retention.ms=123456" in desc
    dup = brook.cli("topic", "create", topic, "--partitions", "2", check=False)
    assert dup.returncode != 0
    assert "already exists" in (dup.stderr + dup.stdout).lower().replace("_", " ")


def test_produce_and_consume_lines(brook):
    topic = unique_topic("cli-pc")
    brook.cli("topic", "create", topic, "--partitions", "1")
    lines = [f"line {i}" for i in range(500)] + ["", "unicode \u00e9\u2603", "tab\there"]
    brook.cli("produce", topic, input="\n".join(lines) + "\n")

    out = brook.cli("consume", topic, "--from-beginning", "--max-messages", len(lines),
                    timeout=30).stdout
    assert out.split("\n")[:-1] == lines

    # Other clients see the same records, in order, without keys.
    got = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert [r.value.decode() for r in got] == lines
    assert all(r.key is None for r in got)

    # --max-messages stops early.
    out = brook.cli("consume", topic, "--from-beginning", "--max-messages", 3,
                    timeout=30).stdout
    assert out.split("\n")[:-1] == lines[:3]


def test_produce_with_key_separator(brook):
    topic = unique_topic("cli-keys")
    brook.cli("topic", "create", topic, "--partitions", "3")
    pairs = [(f"user{i % 7}", f"event {i}: clicked") for i in range(300)]
    text = "".join(f"{k}:{v}\n" for k, v in pairs)  # value contains ':' too
    brook.cli("produce", topic, "--key-separator", ":", input=text)

    consumed = consume_to_end(brook.bootstrap, topic, 3)
    got = [(r.key.decode(), r.value.decode()) for recs in consumed.values() for r in recs]
    assert sorted(got) == sorted(pairs)
    # Same key, same partition; and per key, produce order is kept.
    partitions_of_key: dict[str, set] = {}
    for p, recs in consumed.items():
        for r in recs:
            partitions_of_key.setdefault(r.key.decode(), set()).add(p)
    assert all(len(s) == 1 for s in partitions_of_key.values())
    for key in partitions_of_key:
        want = [v for k, v in pairs if k == key]
        (p,) = partitions_of_key[key]
        assert [r.value.decode() for r in consumed[p] if r.key.decode() == key] == want

    out = brook.cli("consume", topic, "--from-beginning", "--max-messages", len(pairs),
                    timeout=30).stdout
    assert sorted(out.split("\n")[:-1]) == sorted(v for _, v in pairs)


def test_consume_what_confluent_produced(brook):
    topic = unique_topic("cli-read")
    brook.cli("topic", "create", topic, "--partitions", "1")
    values = [f"value-{i}".encode() for i in range(1000)]
    p = producer(brook.bootstrap, **{"compression.type": "lz4"})
    assert_all_delivered(produce_all(p, topic, [{"value": v, "partition": 0} for v in values]))
    out = brook.cli("consume", topic, "--from-beginning", "--max-messages", len(values),
                    timeout=30).stdout
    assert out.split("\n")[:-1] == [v.decode() for v in values]


def test_cli_gives_up_on_a_broker_that_never_answers(brook):
    import socket
    import subprocess
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does) but never answers
    port = silent.getsockname()[1]
    try:
        start = time.monotonic()
        out = subprocess.run([brook.bin, "topic", "list", "-b", f"127.0.0.1:{port}",
                              "--timeout", "1"], capture_output=True, text=True, timeout=30)
        assert out.returncode != 0
        assert "did not answer" in out.stderr, out.stderr
        assert time.monotonic() - start < 10
    finally:
        silent.close()


def test_cli_takes_a_bootstrap_list(brook):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()  # nothing listens there: refused, then the next address is tried
    topic = unique_topic("cli-list")
    import subprocess
    subprocess.run([brook.bin, "topic", "create", topic, "-b",
                    f"127.0.0.1:{dead},{brook.bootstrap}"], check=True, timeout=30)
    assert partition_count(brook.bootstrap, topic) >= 1


def test_startup_log_is_plain_words_without_colour_codes(brook):
    log = brook.log_tail()
    assert "\x1b[" not in log, "ANSI colour codes in a log file"
    assert "started: node 1, listening on 127.0.0.1:" in log, log


def test_bad_broker_settings_are_refused_at_start(brook):
    import subprocess

    out = subprocess.run([brook.bin, "serve", "--memory", "--listen", "127.0.0.1:0",
                          "--set", "admin.listeners=",
                          "--set", "num.partitions=0"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "num.partitions" in out.stderr and "at least 1" in out.stderr, out.stderr


def test_negative_partition_count_reaches_the_broker_and_is_refused(brook):
    res = brook.cli("topic", "create", unique_topic("neg"), "--partitions", "-5", check=False)
    assert res.returncode != 0
    assert "unexpected argument" not in res.stderr, res.stderr
    assert "partitions" in res.stderr.lower(), res.stderr


def test_consume_follows_a_topic_across_a_broker_restart(brook):
    import subprocess
    import time

    topic = unique_topic("follow")
    brook.cli("topic", "create", topic)
    brook.cli("produce", topic, input="a1\na2\n")
    proc = subprocess.Popen([brook.bin, "consume", topic, "--from-beginning",
                             "-b", brook.bootstrap], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "a1"
        assert proc.stdout.readline().strip() == "a2"
        port = brook.port
        brook.restart()
        assert brook.port == port, "the fixture restarts on the same port"
        time.sleep(0.5)
        assert proc.poll() is None, f"consume exited: {proc.stderr.read()}"
        brook.cli("produce", topic, input="b1\n")
        assert proc.stdout.readline().strip() == "b1"
    finally:
        proc.kill()
        proc.wait()


def test_json_logs(brook_bin, tmp_path):
    """BROOK_LOG_FORMAT=json: every stderr line of `brook serve` is one JSON object
    with Kafka-style fields a collector can index (no colour codes, no banner text
    outside JSON)."""
    import json
    import os
    import socket
    import subprocess
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, BROOK_LOG_FORMAT="json")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([brook_bin, "serve", "--listen", f"127.0.0.1:{port}",
                             "--data-dir", str(tmp_path / "data"), "--set", "admin.listeners="],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        time.sleep(0.3)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    lines = [ln for ln in err.decode().splitlines() if ln.strip()]
    assert lines, "no log lines"
    events = [json.loads(ln) for ln in lines]
    for e in events:
        assert {"timestamp", "level", "target"} <= e.keys(), e
    ready = [e for e in events if e.get("message") == "ready"]
    assert ready and ready[0]["addr"] == f"127.0.0.1:{port}", events
    assert "\x1b[" not in err.decode()


# ---------------------------------------------------------------------------------------
# kcat/rpk parity: consume formats and offsets, produce headers and tombstones, topic
# admin, groups, cluster info, completions.
# ---------------------------------------------------------------------------------------

def test_produce_headers_tombstones_timestamp_seen_by_confluent(brook):
    topic = unique_topic("cli-hdr")
    brook.cli("topic", "create", topic, "--partitions", "2")
    brook.cli("produce", topic, "-K", ":", "-Z", "-H", "src=cli", "-H", "empty=", "-H", "nul",
              "--timestamp", "1700000000123", "--partition", "1",
              input="k1:v1\nk2:\n:v3\n")
    got = consume_to_end(brook.bootstrap, topic, [0, 1])
    assert got[0] == []
    recs = got[1]
    assert [(r.key, r.value) for r in recs] == [(b"k1", b"v1"), (b"k2", None), (None, b"v3")]
    for r in recs:
        assert r.headers == [("src", b"cli"), ("empty", b""), ("nul", None)], r.headers
        assert r.timestamp == 1700000000123
    # Without -Z an empty value stays an empty (non-null) value.
    brook.cli("produce", topic, "-K", ":", "--partition", "0", input="k:\n")
    (r,) = consume_to_end(brook.bootstrap, topic, [0])[0]
    assert (r.key, r.value) == (b"k", b"")


def test_consume_json_and_format_of_what_confluent_produced(brook):
    import json

    topic = unique_topic("cli-json")
    brook.cli("topic", "create", topic, "--partitions", "2")
    records = [
        {"partition": 0, "key": None, "value": b"no key", "timestamp": 1700000000001},
        {"partition": 0, "key": b"", "value": b"empty key", "timestamp": 1700000000002},
        {"partition": 1, "key": b"k", "value": None, "headers": [("h1", b"x"), ("h2", None)],
         "timestamp": 1700000000003},
    ]
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic, records))
    out = brook.cli("consume", topic, "--offset", "beginning", "--exit", "--json").stdout
    rows = sorted((json.loads(ln) for ln in out.splitlines()),
                  key=lambda o: (o["partition"], o["offset"]))
    assert rows == [
        {"topic": topic, "partition": 0, "offset": 0, "timestamp": 1700000000001,
         "timestamp_type": "CreateTime", "key": None, "value": "no key", "headers": []},
        {"topic": topic, "partition": 0, "offset": 1, "timestamp": 1700000000002,
         "timestamp_type": "CreateTime", "key": "", "value": "empty key", "headers": []},
        {"topic": topic, "partition": 1, "offset": 0, "timestamp": 1700000000003,
         "timestamp_type": "CreateTime", "key": "k", "value": None,
         "headers": [{"key": "h1", "value": "x"}, {"key": "h2", "value": None}]},
    ]
    out = brook.cli("consume", topic, "-p", "1", "-o", "beginning", "-e",
                    "-f", r"%t|%p|%o|%k|%K|%v|%S|%h|%T\n").stdout
    assert out == f"{topic}|1|0|k|1||-1|h1=x,h2=|1700000000003\n"


def test_consume_offsets_count_and_exit(brook):
    topic = unique_topic("cli-off")
    brook.cli("topic", "create", topic, "--partitions", "1")
    records = [{"partition": 0, "value": f"v{i}".encode(), "timestamp": 1700000000000 + i * 1000}
               for i in range(10)]
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic, records))

    def consume(*args):
        return brook.cli("consume", topic, "-e", *args).stdout.split()

    assert consume("-o", "beginning") == [f"v{i}" for i in range(10)]
    assert consume("-o", "7") == ["v7", "v8", "v9"]
    assert consume("-o", "-2") == ["v8", "v9"]
    assert consume("-o", "@1700000004500") == ["v5", "v6", "v7", "v8", "v9"]
    assert consume("-o", "@1800000000000") == []
    assert consume("-o", "end") == []
    assert consume("-o", "beginning", "--count", "3") == ["v0", "v1", "v2"]
    bad = brook.cli("consume", topic, "-o", "soon", check=False)
    assert bad.returncode != 0 and "beginning, end" in bad.stderr, bad.stderr


def test_consume_with_group_commits_where_confluent_resumes(brook):
    from confluent_kafka import TopicPartition

    topic, group = unique_topic("cli-grp"), unique_topic("g")
    brook.cli("topic", "create", topic, "--partitions", "2")
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic,
                                     [{"partition": i % 2, "value": f"v{i}".encode()}
                                      for i in range(10)]))
    out = brook.cli("consume", topic, "-G", group, "-o", "beginning", "-c", "4", "-p", "0").stdout
    assert out.split() == ["v0", "v2", "v4", "v6"]
    # The next run resumes at the commit, not at --offset.
    out = brook.cli("consume", topic, "-G", group, "-o", "beginning", "-e", "-p", "0").stdout
    assert out.split() == ["v8"]
    c = consumer(brook.bootstrap, **{"group.id": group})
    try:
        committed = c.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in committed] == [5, -1001]
    finally:
        c.close()


def test_topic_describe_alter_config_add_partitions_trim(brook):
    topic = unique_topic("cli-adm")
    brook.cli("topic", "create", topic, "--partitions", "2", "--config", "retention.ms=123456")
    desc = brook.cli("topic", "describe", topic).stdout
    header = next(ln for ln in desc.splitlines() if ln.split()[:1] == ["Partition"])
    assert header.split()[5:7] == ["Replicas", "Isr"], header
    rows = [ln.split() for ln in desc.splitlines() if ln.split()[:1] in (["0"], ["1"])]
    assert [r[5:7] for r in rows] == [["1", "1"], ["1", "1"]], desc
    lines = desc.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("CONFIG "))
    configs = {ln.split()[0]: ln.split()[1:] for ln in lines[start + 1:] if ln.strip()}
    assert configs["retention.ms"] == ["123456", "DYNAMIC_TOPIC_CONFIG"], desc
    assert configs["cleanup.policy"] == ["delete", "DEFAULT_CONFIG"], desc

    brook.cli("topic", "alter-config", topic, "--set", "max.message.bytes=2000",
              "--delete", "retention.ms")
    a = admin_client(brook.bootstrap)
    from confluent_kafka.admin import ConfigResource
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    cfg = a.describe_configs([res])[res].result(10)
    assert cfg["max.message.bytes"].value == "2000"
    assert cfg["retention.ms"].is_default, cfg["retention.ms"]
    bad = brook.cli("topic", "alter-config", topic, "--set", "retention.ms=abc", check=False)
    assert bad.returncode != 0 and "INVALID_CONFIG" in bad.stderr, bad.stderr

    brook.cli("topic", "add-partitions", topic, "--total", "4")
    assert partition_count(brook.bootstrap, topic) == 4
    bad = brook.cli("topic", "add-partitions", topic, "--total", "3", check=False)
    assert bad.returncode != 0 and "CreatePartitions" in bad.stderr, bad.stderr
    assert "INVALID_PARTITIONS" in bad.stderr, bad.stderr

    assert_all_delivered(produce_all(producer(brook.bootstrap), topic,
                                     [{"partition": 0, "value": b"x"}] * 5))
    out = brook.cli("topic", "trim", topic, "-p", "0", "--before", "3").stdout
    assert "starts at offset 3" in out, out
    assert watermarks(brook.bootstrap, topic, 0) == (3, 5)


def test_group_describe_lag_and_reset_offsets(brook):
    import time

    from confluent_kafka import TopicPartition

    topic, group = unique_topic("cli-lag"), unique_topic("g")
    brook.cli("topic", "create", topic, "--partitions", "2")
    now_ms = int(time.time() * 1000)
    old_ms, new_ms = now_ms - 3 * 3600_000, now_ms - 600_000
    old = [{"partition": p, "value": b"old", "timestamp": old_ms} for p in (0, 1)] * 3
    new = [{"partition": p, "value": b"new", "timestamp": new_ms} for p in (0, 1)] * 2
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic, old + new))
    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((now_ms - 7200_000) / 1000))
    # A live member with an assignment and no commit yet shows in describe.
    c = consumer(brook.bootstrap, **{"group.id": group, "session.timeout.ms": 6000})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        assert c.assignment()
        out = brook.cli("group", "describe", group).stdout
        assert re.search(rf"{re.escape(topic)}\s+0\s+-\s+5\s+-\s+\S", out), out
        refused = brook.cli("group", "reset-offsets", group, "--topic", topic,
                            "--to-earliest", "--execute", check=False)
        assert refused.returncode != 0 and "stop its consumers" in refused.stderr
        c.commit(offsets=[TopicPartition(topic, 0, 1), TopicPartition(topic, 1, 4)],
                 asynchronous=False)
        out = brook.cli("group", "describe", group).stdout
        assert "Total lag: 5" in out, out  # (5-1) + (5-4)
    finally:
        c.close()

    def reset(*args):
        return brook.cli("group", "reset-offsets", group, "--topic", topic, *args).stdout

    def committed():
        c = consumer(brook.bootstrap, **{"group.id": group})
        try:
            return [tp.offset for tp in c.committed(
                [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)]
        finally:
            c.close()

    out = reset("--to-datetime", two_hours_ago, "--dry-run")
    assert "Dry run" in out and committed() == [1, 4]
    reset("--to-datetime", two_hours_ago, "--execute")
    assert committed() == [3, 3]
    reset("--to-offset", "1", "--partition", "1", "--execute")
    assert committed() == [3, 1]
    reset("--by-duration", "PT4H", "--partition", "1", "--execute")
    assert committed() == [3, 0]
    reset("--by-duration", "PT1H", "--execute")
    assert committed() == [3, 3]
    reset("--to-earliest", "--partition", "0", "--execute")
    # A confluent-kafka consumer of the group resumes where the reset put it.
    c = consumer(brook.bootstrap, **{"group.id": group})
    try:
        c.assign([TopicPartition(topic, 0)])
        m = c.poll(10)
        assert m is not None and not m.error() and m.offset() == 0
    finally:
        c.close()
    desc = brook.cli("group", "describe", group).stdout
    assert re.search(rf"{re.escape(topic)}\s+0\s+0\s+5\s+5\b", desc), desc


def test_cluster_info_and_completions(brook):
    out = brook.cli("cluster", "info").stdout
    assert re.search(r"Cluster id: \S+", out), out
    assert "Controller: 1" in out
    assert re.search(rf"^\s*1\s+{re.escape(brook.bootstrap)}\s+-\s+\*$", out, re.M), out
    import subprocess
    for shell in ("bash", "zsh", "fish"):
        res = subprocess.run([brook.bin, "completions", shell], capture_output=True,
                             text=True, timeout=10, check=True)
        assert "consume" in res.stdout and "reset-offsets" in res.stdout


@pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})
def test_consume_group_member_shares_partitions_with_confluent(brook):
    import subprocess
    import time

    from confluent_kafka import TopicPartition

    topic, group = unique_topic("cli-mem"), unique_topic("g")
    brook.cli("topic", "create", topic, "--partitions", "2")
    assert_all_delivered(produce_all(producer(brook.bootstrap), topic,
                                     [{"partition": i % 2, "value": f"p{i % 2}"}
                                      for i in range(20)]))
    c = consumer(brook.bootstrap, **{"group.id": group, "session.timeout.ms": 6000})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        while not c.assignment() and time.monotonic() < deadline:
            c.poll(0.2)
        assert len(c.assignment()) == 2
        # The CLI joins: the group rebalances to one partition each (range assignor).
        cli = subprocess.Popen([brook.bin, "consume", topic, "-G", group, "-o", "beginning",
                                "-e", "-b", brook.bootstrap],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while cli.poll() is None and time.monotonic() < deadline + 20:
            c.poll(0.2)
        out, err = cli.communicate(timeout=5)
        assert cli.returncode == 0, err
        values = out.split()
        assert len(values) == 10 and len(set(values)) == 1, out
        mine = int(values[0][1])
        committed = c.committed([TopicPartition(topic, mine)], timeout=10)
        assert committed[0].offset == 10
    finally:
        c.close()


@pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})
def test_consume_group_member_commits_and_leaves_on_ctrl_c(brook):
    import signal
    import subprocess

    topic, group = unique_topic("cli-int"), unique_topic("g")
    brook.cli("topic", "create", topic, "--partitions", "1")
    brook.cli("produce", topic, input="a\nb\nc\n")
    proc = subprocess.Popen([brook.bin, "consume", topic, "-G", group, "-o", "beginning",
                             "-b", brook.bootstrap], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert [proc.stdout.readline().strip() for _ in range(3)] == ["a", "b", "c"]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    out = brook.cli("group", "describe", group).stdout
    assert "Members: 0" in out, out
    assert re.search(rf"{re.escape(topic)}\s+0\s+3\s+3\s+0\b", out), out


def test_group_describe_and_reset_see_a_kip848_consumer_group(brook):
    import time

    topic, group = unique_topic("cli-848"), unique_topic("g")
    brook.cli("topic", "create", topic, "--partitions", "2")
    c = consumer(brook.bootstrap, **{"group.id": group, "group.protocol": "consumer"})
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + 20
        while len(c.assignment()) < 2 and time.monotonic() < deadline:
            c.poll(0.2)
        assert len(c.assignment()) == 2
        out = brook.cli("group", "describe", group).stdout
        assert "Members: 1" in out, out
        for p in (0, 1):
            assert re.search(rf"{re.escape(topic)}\s+{p}\s+-\s+0\s+-\s+\S", out), out
        refused = brook.cli("group", "reset-offsets", group, "--topic", topic,
                            "--to-earliest", "--execute", check=False)
        assert refused.returncode != 0 and "stop its consumers" in refused.stderr
    finally:
        c.close()
