"""Client quotas (issue 15): set and described with Apache Kafka's own `kafka-configs
--entity-type clients/users` (AlterClientQuotas / DescribeClientQuotas), kept across a
restart, and enforced on librdkafka producers and consumers through throttle_time_ms
and muting, while clients without a quota run unthrottled.

The quota windows are shortened (2 windows of 1 s) so a burst is judged over about a
second rather than Kafka's default ten."""

from __future__ import annotations

import time

import pytest

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)
from test_scram_credentials import configs, configs_failing

RATE = 100_000  # bytes per second
RECORDS = 500
VALUE = b"q" * 1000  # 500 KB in all: about 5 s at the quota

pytestmark = pytest.mark.brook_config(
    {"quota.window.num": 2, "quota.window.size.seconds": 1})


def timed_produce(bootstrap: str, topic: str, client_id: str) -> float:
    p = producer(bootstrap, **{"client.id": client_id, "batch.size": 16384,
                               "linger.ms": 1})
    start = time.monotonic()
    assert_all_delivered(produce_all(p, topic, [{"value": VALUE}] * RECORDS, timeout=60))
    return time.monotonic() - start


def test_kafka_configs_sets_quotas_and_they_survive_a_restart(brook):
    b = brook.bootstrap
    out = configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
                  "--add-config", f"producer_byte_rate={RATE},consumer_byte_rate={RATE}")
    assert "Completed updating config for client slow" in out, out
    configs(b, "--alter", "--entity-type", "users", "--entity-default",
            "--add-config", "request_percentage=250")
    configs(b, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--entity-type", "clients", "--entity-default",
            "--add-config", "controller_mutation_rate=10")
    # Kafka's checks: a byte rate is a whole number; keys belong to their entity type.
    assert "must be a Long" in configs_failing(
        b, "--alter", "--entity-type", "clients", "--entity-name", "x",
        "--add-config", "producer_byte_rate=1.5")

    brook.restart()
    b = brook.bootstrap
    slow = configs(b, "--describe", "--entity-type", "clients", "--entity-name", "slow")
    assert "client-id 'slow'" in slow, slow
    assert f"producer_byte_rate={RATE}" in slow and f"consumer_byte_rate={RATE}" in slow
    users = configs(b, "--describe", "--entity-type", "users")
    assert "request_percentage=250" in users, users
    alice = configs(b, "--describe", "--entity-type", "users", "--entity-name", "alice",
                    "--entity-type", "clients")
    assert "controller_mutation_rate=10" in alice, alice

    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
            "--delete-config", "producer_byte_rate")
    slow = configs(b, "--describe", "--entity-type", "clients", "--entity-name", "slow")
    assert "producer_byte_rate" not in slow and "consumer_byte_rate" in slow, slow


def test_producers_and_consumers_are_held_to_their_byte_rates(brook):
    b = brook.bootstrap
    topic = unique_topic("quota")
    create_topic(b, topic)
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow",
            "--add-config", f"producer_byte_rate={RATE}")
    configs(b, "--alter", "--entity-type", "clients", "--entity-name", "slow-reader",
            "--add-config", f"consumer_byte_rate={RATE}")

    fast = timed_produce(b, topic, "fast")
    slow = timed_produce(b, topic, "slow")
    # 500 KB at 100 KB/s: the first window's worth passes at once, the rest waits.
    assert slow >= 3.0, f"throttled producer took {slow:.1f}s"
    assert fast < slow, (fast, slow)

    start = time.monotonic()
    got = consume_to_end(b, topic, 1, timeout=60, **{"client.id": "fast-reader"})
    fast_read = time.monotonic() - start
    assert len(got[0]) == 2 * RECORDS
    start = time.monotonic()
    got = consume_to_end(b, topic, 1, timeout=60, **{"client.id": "slow-reader"})
    slow_read = time.monotonic() - start
    # Every record arrives, none twice, just later (1 MB at 100 KB/s).
    assert [r.offset for r in got[0]] == list(range(2 * RECORDS))
    assert slow_read >= 5.0, f"throttled consumer took {slow_read:.1f}s"
    assert fast_read < slow_read, (fast_read, slow_read)

