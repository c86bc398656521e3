#!/usr/bin/env python3
"""Produce latency of librdkafka (confluent-kafka) at a fixed rate; run by bench/latency.py.

    latency_rdkafka.py BOOTSTRAP TOPIC RATE WARMUP_S MEASURE_S SIZE ACKS [k=v ...]

Each record is timed from just before produce() to its delivery report with
time.perf_counter_ns (the result), and by librdkafka itself (`Message.latency()`, kept as
`lib` for a cross-check: librdkafka reads its clock when the report is handed over, so
the two agree within microseconds). Sends follow an absolute schedule (record i is due at t0 + i/RATE); between
sends the script sleeps in poll(), so delivery reports are served while it waits.
Records of the warm-up seconds are not recorded. Every sample is kept and the
percentiles are exact (nearest rank). Prints one JSON line on stdout.
"""

import json
import math
import sys
import time

from confluent_kafka import Producer


def pct(sorted_ns, q):
    if not sorted_ns:
        return 0.0
    rank = math.ceil(q * len(sorted_ns))
    return sorted_ns[max(0, min(len(sorted_ns) - 1, rank - 1))] / 1e6


def summary(samples):
    s = sorted(samples)
    out = {"count": len(s)}
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)):
        out[f"{name}_ms"] = pct(s, q)
    out["max_ms"] = s[-1] / 1e6 if s else 0.0
    out["mean_ms"] = sum(s) / len(s) / 1e6 if s else 0.0
    return out


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    rate, warmup, measure = float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    size, acks = int(sys.argv[6]), sys.argv[7]
    conf = {"bootstrap.servers": bootstrap, "acks": acks}
    for kv in sys.argv[8:]:
        k, v = kv.split("=", 1)
        conf[k] = v
    total = math.ceil(rate * (warmup + measure))
    first = math.ceil(rate * warmup)
    app, lib = [], []
    errors = [0]
    value = b"x" * size

    def make_cb(recorded, start):
        def cb(err, msg):
            end = time.perf_counter_ns()
            if err is not None:
                errors[0] += 1
            elif recorded:
                app.append(end - start)
                lib.append(int(msg.latency() * 1e9))
        return cb

    p = Producer(conf)
    p.list_topics(topic, timeout=30)  # metadata before the clock starts
    interval = 1e9 / rate
    t0 = time.perf_counter_ns()
    max_lag = 0
    i = 0
    while i < total:
        now = time.perf_counter_ns()
        due = t0 + int(i * interval)
        if now < due:
            wait = (due - now) / 1e9
            # poll() takes whole milliseconds; below that, sleep (a few tens of µs late).
            if wait >= 0.002:
                p.poll(wait - 0.001)
            else:
                p.poll(0)
                time.sleep(wait)
            continue
        while i < total and t0 + int(i * interval) <= now:
            if i >= first:
                max_lag = max(max_lag, now - (t0 + int(i * interval)))
            start = time.perf_counter_ns()
            while True:
                try:
                    p.produce(topic, value, callback=make_cb(i >= first, start))
                    break
                except BufferError:
                    p.poll(0.001)
            i += 1
        p.poll(0)
    left = p.flush(60)
    out = {"client": "librdkafka", "librdkafka": __import__("confluent_kafka").libversion()[0],
           "errors": errors[0], "undelivered": left, "max_send_lag_ms": max_lag / 1e6}
    out.update(summary(app))
    out["lib"] = summary(lib)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
