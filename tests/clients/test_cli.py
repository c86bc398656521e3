"""The brook CLI client tools (`brook topic|produce|consume`), checked against
confluent-kafka where it matters."""

import re

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    partition_count,
    produce_all,
    producer,
    topic_names,
    unique_topic,
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
