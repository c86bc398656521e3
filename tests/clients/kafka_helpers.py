"""Small helpers shared by the client tests: topic names, admin calls, producing with
delivery reports, and reading partitions back to their high watermark with
confluent-kafka (no consumer group: plain assign())."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

KCAT = shutil.which("kcat") or shutil.which("kafkacat") or "kcat"


def unique_topic(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Polls `predicate` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - reported below on timeout
            last_exc = e
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise AssertionError(msg)
        time.sleep(interval)


# ---------------------------------------------------------------------------------------
# admin
# ---------------------------------------------------------------------------------------

def admin_client(bootstrap: str, **extra) -> AdminClient:
    conf = {
        "bootstrap.servers": bootstrap,
        # AdminClient is a producer-type handle in librdkafka: never let its metadata
        # requests create topics by accident.
        "allow.auto.create.topics": False,
    }
    conf.update(extra)
    return AdminClient(conf)


def topic_names(bootstrap: str, timeout: float = 10) -> set[str]:
    md = admin_client(bootstrap).list_topics(timeout=timeout)
    return set(md.topics)


def partition_count(bootstrap: str, topic: str, timeout: float = 10) -> int:
    """Partitions of `topic` as seen in an all-topics Metadata request (0 if absent)."""
    md = admin_client(bootstrap).list_topics(timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def create_topic(bootstrap: str, name: str, partitions: int = 1,
                 config: dict | None = None, timeout: float = 30) -> None:
    admin = admin_client(bootstrap)
    new = NewTopic(name, num_partitions=partitions, replication_factor=1,
                   config={k: str(v) for k, v in (config or {}).items()})
    futures = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
    futures[name].result(timeout)
    wait_until(lambda: partition_count(bootstrap, name) == partitions, 10,
               what=f"topic {name} with {partitions} partitions in metadata")


def kafka_error_code(exc: BaseException) -> int | None:
    """The KafkaError code carried by a KafkaException (or None)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


# ---------------------------------------------------------------------------------------
# producing
# ---------------------------------------------------------------------------------------

@dataclass
class Delivery:
    index: int
    partition: int
    offset: int
    error: KafkaError | None
    timestamp: tuple[int, int] | None


def producer(bootstrap: str, **conf) -> Producer:
    base = {"bootstrap.servers": bootstrap, "linger.ms": 5}
    base.update(conf)
    return Producer(base)


def produce_all(p: Producer, topic: str, records, timeout: float = 60) -> list[Delivery]:
    """Produces every record (a dict of Producer.produce keyword arguments) and waits
    for all delivery reports. Returns one Delivery per record, in produce order."""
    results: list[Delivery | None] = []

    def make_cb(i):
        def cb(err, msg):
            results[i] = Delivery(i, msg.partition(), msg.offset(), err, msg.timestamp())
        return cb

    for i, rec in enumerate(records):
        results.append(None)
        while True:
            try:
                p.produce(topic, on_delivery=make_cb(i), **rec)
                break
            except BufferError:
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    remaining = p.flush(timeout)
    assert remaining == 0, f"{remaining} messages still undelivered after {timeout}s"
    missing = [i for i, r in enumerate(results) if r is None]
    assert not missing, f"no delivery report for {len(missing)} messages"
    return results  # type: ignore[return-value]


def assert_all_delivered(deliveries: list[Delivery]) -> None:
    errors = [d for d in deliveries if d.error is not None]
    assert not errors, (f"{len(errors)} of {len(deliveries)} deliveries failed, "
                        f"first: {errors[0].error}")


# ---------------------------------------------------------------------------------------
# consuming
# ---------------------------------------------------------------------------------------

@dataclass
class Rec:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list | None
    timestamp_type: int
    timestamp: int


def consumer(bootstrap: str, **conf) -> Consumer:
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": f"assign-only-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "check.crcs": True,
        "allow.auto.create.topics": False,
    }
    base.update(conf)
    return Consumer(base)


def watermarks(bootstrap: str, topic: str, partition: int, timeout: float = 10):
    c = consumer(bootstrap)
    try:
        wm = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        assert wm is not None, f"get_watermark_offsets({topic}-{partition}) timed out"
        return wm
    finally:
        c.close()


def consume_to_end(bootstrap: str, topic: str, partitions, timeout: float = 60,
                   **conf) -> dict[int, list[Rec]]:
    """Reads each partition from its beginning to the high watermark it had when
    this was called. Returns {partition: [Rec, ...]} in the order received."""
    if isinstance(partitions, int):
        partitions = list(range(partitions))
    c = consumer(bootstrap, **conf)
    try:
        ends = {}
        starts = {}
        for p in partitions:
            wm = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            assert wm is not None, f"get_watermark_offsets({topic}-{p}) timed out"
            starts[p], ends[p] = wm
        out: dict[int, list[Rec]] = {p: [] for p in partitions}
        next_offset = dict(starts)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        deadline = time.monotonic() + timeout
        while any(next_offset[p] < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                progress = {p: f"{next_offset[p]}/{ends[p]}" for p in partitions}
                raise AssertionError(f"consuming {topic} timed out after {timeout}s: "
                                     f"next/end offsets {progress}")
            for m in c.consume(num_messages=10000, timeout=0.5):
                if m.error():
                    raise AssertionError(f"consumer error: {m.error()}")
                ts_type, ts = m.timestamp()
                p = m.partition()
                out[p].append(Rec(p, m.offset(), m.key(), m.value(), m.headers(),
                                  ts_type, ts))
                next_offset[p] = m.offset() + 1
        return out
    finally:
        c.close()


# ---------------------------------------------------------------------------------------
# kcat
# ---------------------------------------------------------------------------------------

def kcat(bootstrap: str, *args, input: bytes | str | None = None, timeout: float = 60,
         check: bool = True) -> subprocess.CompletedProcess:
    cmd = [KCAT, "-b", bootstrap, *map(str, args)]
    if isinstance(input, str):
        input = input.encode()
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout,
                             stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish in {timeout}s; "
                             f"stderr={e.stderr!r}") from None
    if check and res.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` exited {res.returncode}\n"
                             f"stdout:\n{res.stdout.decode(errors='replace')[-4000:]}\n"
                             f"stderr:\n{res.stderr.decode(errors='replace')[-4000:]}")
    return res
