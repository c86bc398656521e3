"""Fairness: one client flooding the broker cannot starve the others.

A heavy librdkafka producer (its own process, 1 KiB records in 1 MiB batches, as
fast as it can) floods one topic while twenty light producers, each its own librdkafka
client and connection, send one record at a time to another topic and wait for each
acknowledgement. The broker handles a connection's requests one at a time and its
per-request work is bounded (request size, fetch.max.bytes), so every light producer
keeps getting answers throughout the flood. The checks are about progress, not speed:
under CI load a starved client would get next to nothing in the flood's seconds, while
a fair broker gives every light client dozens of round trips (the measured figures are
printed)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time

from confluent_kafka import Producer

from kafka_helpers import create_topic, unique_topic

FLOOD_S = 6.0
LIGHT_CLIENTS = 20

HEAVY = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
p = Producer({"bootstrap.servers": bootstrap, "acks": "1", "linger.ms": 20,
              "batch.size": 1048576, "queue.buffering.max.kbytes": 262144,
              "log_level": 2})
value = b"x" * 1024
acked = [0]
def done(err, _msg):
    if err is None:
        acked[0] += 1
print("START", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        p.produce(topic, value, on_delivery=done)
    except BufferError:
        p.poll(0.01)
    p.poll(0)
p.flush(60)
print("ACKED", acked[0], flush=True)
"""


def test_a_flooding_producer_does_not_starve_light_ones(brook):
    heavy_topic, light_topic = unique_topic("flood"), unique_topic("light")
    create_topic(brook.bootstrap, heavy_topic, partitions=1)
    create_topic(brook.bootstrap, light_topic, partitions=4)
    heavy = subprocess.Popen([sys.executable, "-c", HEAVY, brook.bootstrap, heavy_topic,
                              str(FLOOD_S)], stdout=subprocess.PIPE, text=True)
    assert heavy.stdout.readline().strip() == "START"
    flooding = threading.Event()
    flooding.set()
    latencies: list[list[float]] = [[] for _ in range(LIGHT_CLIENTS)]
    failures: list[str] = []

    def light(i: int) -> None:
        p = Producer({"bootstrap.servers": brook.bootstrap, "acks": "1", "linger.ms": 0,
                      "log_level": 2})
        while flooding.is_set():
            t0 = time.monotonic()
            p.produce(light_topic, f"light-{i}".encode(), partition=i % 4)
            if p.flush(30) != 0:
                failures.append(f"client {i}: a record not acknowledged in 30 s")
                return
            latencies[i].append(time.monotonic() - t0)

    threads = [threading.Thread(target=light, args=(i,), daemon=True)
               for i in range(LIGHT_CLIENTS)]
    for t in threads:
        t.start()
    try:
        out, _ = heavy.communicate(timeout=FLOOD_S + 90)
    finally:
        flooding.clear()
        if heavy.poll() is None:
            heavy.kill()
    for t in threads:
        t.join(40)
    heavy_acked = int(out.split()[-1])
    counts = [len(l) for l in latencies]
    every = sorted(x for l in latencies for x in l)
    p99 = every[int(len(every) * 0.99) - 1] if every else float("nan")
    print(f"heavy: {heavy_acked} records of 1 KiB acknowledged; light: "
          f"{sum(counts)} round trips, fewest {min(counts)} for one client, "
          f"median {statistics.median(every) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
    assert not failures, failures
    # The flood was real: many MiB pushed through while the light clients ran.
    assert heavy_acked >= 1000, heavy_acked
    # Nobody starved: every light client made steady progress during the flood.
    assert min(counts) >= 20, counts
