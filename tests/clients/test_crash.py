"""kill -9 under load: every acknowledged record survives, at its offset.

The producer runs with acks=all and retries=0, so every value is sent at most once:
an acknowledged value must be in the log exactly once at the offset it was
acknowledged with, offsets stay dense, and an unacknowledged one may or may not be
there but never twice."""

import os
import random
import subprocess
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from kafka_helpers import consume_to_end, create_topic, partition_count, unique_topic

PARTITIONS = 3
CYCLES = 5
RATE_PER_S = 20_000
# The kill lands at a random moment of the load; the seed is printed to replay a run.
SEED = int(os.environ.get("BROOK_CRASH_SEED", random.randrange(1 << 30)))


def run_cycle(broker, topic, cycle, acked, load_seconds):
    """Produces until LOAD_SECONDS have passed, kill -9s the broker mid-load, and
    waits for every delivery report. Adds acknowledged records to `acked`."""
    failed = 0
    acked_now = 0

    def on_delivery(err, msg):
        nonlocal failed, acked_now
        if err is None:
            key = (msg.partition(), msg.offset())
            assert key not in acked, f"offset {key} acknowledged twice"
            acked[key] = msg.value()
            acked_now += 1
        else:
            failed += 1

    p = Producer({
        "bootstrap.servers": broker.bootstrap,
        "acks": "all",
        "enable.idempotence": False,
        "retries": 0,
        "linger.ms": 2,
        "batch.num.messages": 500,
        "queue.buffering.max.messages": 20000,
        "message.timeout.ms": 5000,
        "request.timeout.ms": 5000,
        "reconnect.backoff.ms": 100,
    })
    i = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < load_seconds:
        # Paced, so the volume (and the time to verify it) stays bounded while
        # requests are in flight at every moment.
        due = int(elapsed * RATE_PER_S)
        while i < due:
            value = f"c{cycle}-{i:07d}".encode()
            try:
                p.produce(topic, value=value, key=str(i % 1000).encode(),
                          on_delivery=on_delivery)
            except BufferError:
                break
            i += 1
        p.poll(0.001)
    # Mid-load: requests are in flight and more are queued.
    broker.kill9()
    t_kill = time.monotonic()
    # Queued messages were never sent; fail them now instead of after message.timeout.ms.
    p.purge(in_queue=True, in_flight=False, blocking=True)
    remaining = p.flush(15)
    assert remaining == 0, f"{remaining} delivery reports missing after the crash"
    assert acked_now + failed == i
    print(f"cycle {cycle}: sent {i}, acknowledged {acked_now}, failed {failed}; "
          f"reports settled {time.monotonic() - t_kill:.1f}s after the kill")
    return i, acked_now


def verify(broker, topic, acked):
    consumed = consume_to_end(broker.bootstrap, topic, PARTITIONS, timeout=60)
    for part, recs in consumed.items():
        offsets = [r.offset for r in recs]
        assert offsets == list(range(len(offsets))), f"partition {part}: offsets not dense"
    by_offset = {(r.partition, r.offset): r.value for recs in consumed.values() for r in recs}
    lost = [k for k in acked if k not in by_offset]
    assert not lost, f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}"
    wrong = [k for k, v in acked.items() if by_offset[k] != v]
    assert not wrong, (f"{len(wrong)} acknowledged offsets hold other values, e.g. "
                       f"{wrong[0]}: acked {acked[wrong[0]]!r}, read {by_offset[wrong[0]]!r}")
    counts = Counter(by_offset.values())
    dups = [v for v, c in counts.items() if c > 1]
    assert not dups, f"{len(dups)} values stored more than once, e.g. {dups[:3]}"
    return sum(len(r) for r in consumed.values())


@pytest.mark.deadline(180)
@pytest.mark.parametrize("settings", [
    pytest.param({"log.flush.interval.messages": 1}, id="flush-every-message"),
    pytest.param({"log.flush.interval.ms": 50}, id="flush-every-50ms"),
    pytest.param({}, id="default-flush"),
])
def test_kill9_under_load_keeps_acknowledged_records(brook_factory, brook_bin, settings):
    rng = random.Random(SEED)
    print(f"BROOK_CRASH_SEED={SEED}")
    broker = brook_factory({**settings, "log.segment.bytes": 1048576})
    topic = unique_topic("crash")
    create_topic(broker.bootstrap, topic, partitions=PARTITIONS)
    acked: dict[tuple[int, int], bytes] = {}
    for cycle in range(CYCLES):
        load_seconds = rng.uniform(0.5, 2.5)
        sent, acked_now = run_cycle(broker, topic, cycle, acked, load_seconds)
        assert acked_now > 100, f"cycle {cycle}: only {acked_now} of {sent} acknowledged"
        t0 = time.monotonic()
        broker.start()
        assert partition_count(broker.bootstrap, topic) == PARTITIONS
        t1 = time.monotonic()
        stored = verify(broker, topic, acked)
        print(f"cycle {cycle}: restart {t1 - t0:.1f}s, verified {stored} stored records "
              f"in {time.monotonic() - t1:.1f}s")
        assert stored >= len(acked)
    # After a clean stop the whole log must pass the offline integrity check.
    broker.stop()
    check = subprocess.run([brook_bin, "check-log", str(broker.data_dir)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    print(check.stdout.strip().splitlines()[-1])
