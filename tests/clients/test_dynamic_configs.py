"""Dynamic broker configs (Kafka's BROKER resource, per broker and cluster-wide
default) and log levels (BROKER_LOGGER), changed at run time with confluent-kafka's
admin client and Apache Kafka's own `kafka-configs` (ConfigCommand)."""

from __future__ import annotations

import socket
import time

import pytest
from confluent_kafka.admin import (
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    ResourceType,
)
from confluent_kafka import KafkaException

from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    wait_until,
)
from test_cluster_tools import kafka_tool

CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"


def alter(bootstrap: str, broker: str, op: AlterConfigOpType, **configs) -> None:
    """One broker's dynamic configs, with confluent-kafka (which cannot name the
    cluster default: see `alter_default`)."""
    a = admin_client(bootstrap)
    entries = [ConfigEntry(k.replace("_", "."), None if op == AlterConfigOpType.DELETE else str(v),
                           incremental_operation=op) for k, v in configs.items()]
    res = ConfigResource(ResourceType.BROKER, broker, incremental_configs=entries)
    a.incremental_alter_configs([res])[res].result(20)


def config_command(bootstrap: str, *args: str) -> str:
    return kafka_tool(CONFIG_COMMAND, "--bootstrap-server", bootstrap, *args)


def alter_default(bootstrap: str, *args: str) -> str:
    """The cluster-wide default (`--entity-default`), with Kafka's kafka-configs."""
    return config_command(bootstrap, "--alter", "--entity-type", "brokers",
                          "--entity-default", *args)


def describe_default(bootstrap: str) -> str:
    return config_command(bootstrap, "--describe", "--entity-type", "brokers",
                          "--entity-default")


def describe(bootstrap: str, rtype: ResourceType, name: str) -> dict:
    a = admin_client(bootstrap)
    res = ConfigResource(rtype, name)
    return a.describe_configs([res])[res].result(20)


def test_broker_defaults_change_live_topics_and_survive_a_restart(brook):
    topic = unique_topic("dyn")
    create_topic(brook.bootstrap, topic, 1)
    before = describe(brook.bootstrap, ResourceType.TOPIC, topic)["retention.ms"]
    assert before.source == ConfigSource.DEFAULT_CONFIG.value

    # The cluster default, then this broker's own value, which wins over it.
    alter_default(brook.bootstrap, "--add-config",
                  "log.retention.ms=3600000,log.segment.bytes=2000000")
    alter(brook.bootstrap, "1", AlterConfigOpType.SET, log_segment_bytes=1_048_576)
    t = describe(brook.bootstrap, ResourceType.TOPIC, topic)
    assert (t["retention.ms"].value, t["retention.ms"].source) == (
        "3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value)
    assert (t["segment.bytes"].value, t["segment.bytes"].source) == (
        "1048576", ConfigSource.DYNAMIC_BROKER_CONFIG.value)

    # It takes effect on the live partition: segments now roll at 1 MiB.
    assert_all_delivered(produce_all(producer(brook.bootstrap, **{"batch.size": 16384}), topic,
                                     [{"value": b"x" * 1000} for _ in range(3500)]))
    wait_until(lambda: len(brook.segment_files(topic)) >= 3, 10,
               what="segments rolled at the dynamic log.segment.bytes")

    b = describe(brook.bootstrap, ResourceType.BROKER, "1")
    assert b["log.segment.bytes"].source == ConfigSource.DYNAMIC_BROKER_CONFIG.value
    assert not b["log.segment.bytes"].is_read_only
    assert b["auto.create.topics.enable"].is_read_only
    defaults = describe_default(brook.bootstrap)
    assert "log.retention.ms=3600000" in defaults and "log.segment.bytes=2000000" in defaults

    brook.restart()
    t = describe(brook.bootstrap, ResourceType.TOPIC, topic)
    assert t["segment.bytes"].value == "1048576"
    assert t["retention.ms"].source == ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value

    # A topic override still beats both; deleting the dynamic configs restores defaults.
    alter(brook.bootstrap, "1", AlterConfigOpType.DELETE, log_segment_bytes=None)
    alter_default(brook.bootstrap, "--delete-config", "log.retention.ms,log.segment.bytes")
    t = describe(brook.bootstrap, ResourceType.TOPIC, topic)
    assert (t["segment.bytes"].value, t["segment.bytes"].source) == (
        "1073741824", ConfigSource.DEFAULT_CONFIG.value)
    assert "log." not in describe_default(brook.bootstrap)


def test_static_and_invalid_broker_configs_are_refused(brook):
    with pytest.raises(KafkaException) as e:
        alter(brook.bootstrap, "1", AlterConfigOpType.SET, auto_create_topics_enable="false")
    assert e.value.args[0].name() == "INVALID_REQUEST"
    assert "dynamically" in e.value.args[0].str()
    with pytest.raises(KafkaException) as e:
        alter(brook.bootstrap, "1", AlterConfigOpType.SET, log_retention_ms="soon")
    assert e.value.args[0].name() == "INVALID_CONFIG"
    # Below Kafka 4's 1 MiB (KIP-1030): every segment holds open files.
    with pytest.raises(KafkaException) as e:
        alter(brook.bootstrap, "1", AlterConfigOpType.SET, log_segment_bytes=16384)
    assert e.value.args[0].name() == "INVALID_CONFIG"
    with pytest.raises(Exception) as e:
        create_topic(brook.bootstrap, unique_topic("tiny"), 1, config={"segment.bytes": "14"})
    assert "INVALID_CONFIG" in str(e.value) or "at least" in str(e.value), e.value
    with pytest.raises(KafkaException) as e:
        alter(brook.bootstrap, "1", AlterConfigOpType.SET, no_such_config="1")
    assert e.value.args[0].name() == "INVALID_CONFIG"
    # Nothing was written.
    b = describe(brook.bootstrap, ResourceType.BROKER, "1")
    assert all(e.source != ConfigSource.DYNAMIC_BROKER_CONFIG.value for e in b.values())


def open_connections(port: int, n: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(n)]


def is_refused(s: socket.socket) -> bool:
    """The broker closes a connection over the limit right after accepting it."""
    s.settimeout(2)
    try:
        return s.recv(1) == b""
    except (ConnectionResetError, socket.timeout) as e:
        return isinstance(e, ConnectionResetError)


def test_connection_limit_per_ip_changes_at_run_time(brook):
    alter(brook.bootstrap, "1", AlterConfigOpType.SET, max_connections_per_ip=3)
    port = int(brook.bootstrap.rsplit(":", 1)[1])
    held = open_connections(port, 3)
    try:
        extra = open_connections(port, 1)[0]
        assert is_refused(extra), "a 4th connection from one address was kept"
        extra.close()
        for s in held:
            s.close()
        time.sleep(0.3)
        # Raised again (the admin connection above counted too): accepted. The broker
        # applies the change when its metadata image does, as a Kafka broker applies a
        # dynamic config from the metadata log: shortly after the answer, not before.
        alter(brook.bootstrap, "1", AlterConfigOpType.DELETE, max_connections_per_ip=None)
        deadline = time.monotonic() + 10
        while True:
            held = open_connections(port, 10)
            if not any(is_refused(s) for s in held[-2:]):
                break
            for s in held:
                s.close()
            assert time.monotonic() < deadline, "still refused 10 s after the limit was lifted"
            time.sleep(0.2)
    finally:
        for s in held:
            s.close()


@pytest.mark.deadline(120)
def test_kafka_config_command_broker_loggers(brook):
    def loggers() -> str:
        return config_command(brook.bootstrap, "--describe", "--entity-type",
                              "broker-loggers", "--entity-name", "1")

    def set_loggers(*args: str) -> None:
        config_command(brook.bootstrap, "--alter", "--entity-type", "broker-loggers",
                       "--entity-name", "1", *args)

    out = loggers()
    assert "root=INFO" in out and "brook_broker=INFO" in out
    # Quiet brook_broker: creating a topic no longer logs "created topic" at INFO.
    set_loggers("--add-config", "brook_broker=WARN")
    assert "brook_broker=WARN" in loggers()
    quiet, loud = unique_topic("quiet"), unique_topic("loud")
    create_topic(brook.bootstrap, quiet, 1)
    set_loggers("--delete-config", "brook_broker")
    assert "brook_broker=INFO" in loggers()
    create_topic(brook.bootstrap, loud, 1)
    log = wait_until(lambda: loud in brook.log_tail() and brook.log_tail(), 10,
                     what="INFO lines again")
    assert f'created topic topic="{quiet}"' not in log
    assert f'created topic topic="{loud}"' in log
    with pytest.raises(AssertionError, match="not a log level"):
        set_loggers("--add-config", "brook_broker=LOUD")


def test_hostile_config_requests_get_errors_fast(brook):
    """A request naming thousands of loggers, the same config twice, the same resource
    twice, or a broker id below 0 is refused at once, and the broker keeps serving."""
    import kafka_wire as w

    port = int(brook.bootstrap.rsplit(":", 1)[1])
    s = w.connect(port)
    try:
        cases = [
            ([(8, "1", [(f"mod{i}", 0, "TRACE") for i in range(20_000)])], 42),  # INVALID_CONFIG
            ([(4, "1", [("log.retention.ms", 0, "1000"), ("log.retention.ms", 0, "2000")])], 42),
            ([(4, "1", [("log.retention.ms", 0, "1000")]),
              (4, "1", [("log.retention.ms", 0, "2000")])], 42),
            ([(4, "-1", [("log.retention.ms", 0, "1000")])], 42),
        ]
        for i, (resources, _) in enumerate(cases):
            started = time.monotonic()
            s.sendall(w.incremental_alter_configs_v1(100 + i, resources))
            got = w.parse_incremental_alter_configs_v1(
                w.read_response(s, 100 + i, flexible_header=True))
            assert time.monotonic() - started < 2.0, f"case {i} took too long"
            assert got and all(code != 0 for code, *_ in got), (i, got)
    finally:
        s.close()
    b = describe(brook.bootstrap, ResourceType.BROKER, "1")
    assert b["log.retention.ms"].source != ConfigSource.DYNAMIC_BROKER_CONFIG.value
    create_topic(brook.bootstrap, unique_topic("alive"), 1)
