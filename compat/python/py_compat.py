#!/usr/bin/env python3
"""Brook compatibility scenarios driven by the Python clients that tests/clients also uses:
confluent-kafka (librdkafka) and kafka-python (pure Python), versions pinned by
scripts/setup-test-deps.sh; kafka-python's codec modules are pinned in requirements-codecs.txt.

    python3 py_compat.py confluent-kafka 127.0.0.1:9092
    python3 py_compat.py kafka-python 127.0.0.1:9092

Prints one line per scenario: `RESULT {"scenario":..,"status":..,"detail":..}`.
"""

from __future__ import annotations

import random
import string
import sys
import time

from results import Failed, check, report, scenario

CLIENT = sys.argv[1]
BOOTSTRAP = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1:9092"
RUN = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
DEADLINE_S = 45
PREFIX = {"confluent-kafka": "ck", "kafka-python": "kp"}[CLIENT]


def topic_name(s):
    return f"{PREFIX}-{s}-{RUN}"


CODECS = ("gzip", "snappy", "lz4", "zstd")


# --------------------------------------------------------------------------------------
# confluent-kafka
# --------------------------------------------------------------------------------------
def confluent():
    from confluent_kafka import Consumer, ConsumerGroupState, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})

    def create(topic, partitions=1, config=None):
        for f in admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})],
                                     operation_timeout=10).values():
            f.result(20)

    def producer(**conf):
        return Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 20, **conf})

    def produce(topic, values, **conf):
        p = producer(**conf)
        errors = []
        for v in values:
            p.produce(topic, v.encode(), on_delivery=lambda err, msg: err and errors.append(err))
        check(p.flush(20) == 0, "flush left messages")
        check(not errors, f"delivery errors {errors}")

    def consumer(group=None, **conf):
        c = {"bootstrap.servers": BOOTSTRAP, "group.id": group or f"{PREFIX}-assign-{RUN}",
             "enable.auto.commit": False, "fetch.wait.max.ms": 200, **conf}
        return Consumer(c)

    def poll(c, n):
        got = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < n:
            check(time.monotonic() < deadline, f"timed out with {len(got)} of {n} records")
            m = c.poll(0.2)
            if m is None:
                continue
            check(m.error() is None, f"consume error {m.error()}")
            got.append(m)
        return got

    def read_all(topic, parts, n, **conf):
        c = consumer(**conf)
        c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
        try:
            return poll(c, n)
        finally:
            c.close()

    t = topic_name("admin")

    def admin_create():
        create(t, 3, {"retention.ms": "3600000"})
        return f"created {t} with 3 partitions, retention.ms=3600000"

    def admin_list():
        topics = admin.list_topics(timeout=10).topics
        check(t in topics, f"list_topics lacks {t}")
        return f"{len(topics)} topics"

    def admin_describe():
        from confluent_kafka import TopicCollection
        d = admin.describe_topics(TopicCollection([t]))[t].result(20)
        check(len(d.partitions) == 3, f"partitions {d.partitions}")
        res = ConfigResource(ConfigResource.Type.TOPIC, t)
        cfg = admin.describe_configs([res])[res].result(20)
        check(cfg["retention.ms"].value == "3600000", f"retention.ms {cfg['retention.ms']}")
        return f"describe_topics: 3 partitions, topic id {d.topic_id}; describe_configs retention.ms=3600000"

    def admin_add_partitions():
        for f in admin.create_partitions([NewPartitions(t, 5)]).values():
            f.result(20)
        for _ in range(20):
            if len(admin.list_topics(t, timeout=10).topics[t].partitions) == 5:
                return "3 -> 5 partitions"
            time.sleep(0.2)
        raise Failed("partition count did not become 5")

    def admin_delete():
        for f in admin.delete_topics([t], operation_timeout=10).values():
            f.result(20)
        for _ in range(20):
            if t not in admin.list_topics(timeout=10).topics:
                return "deleted, gone from list_topics"
            time.sleep(0.2)
        raise Failed("topic still listed")

    scenario("admin.create", admin_create)
    scenario("admin.list", admin_list)
    scenario("admin.describe", admin_describe)
    scenario("admin.add_partitions", admin_add_partitions)
    scenario("admin.delete", admin_delete)

    def keys_headers():
        topic = topic_name("keys")
        create(topic, 3)
        p = producer()
        for i in range(30):
            p.produce(topic, f"value-{i}".encode(), key=f"key-{i}".encode(),
                      headers=[("h-index", str(i).encode()), ("h-const", b"brook")])
        check(p.flush(20) == 0, "flush")
        got = read_all(topic, 3, 30)
        parts = set()
        for m in got:
            i = int(m.key().decode()[4:])
            parts.add(m.partition())
            check(m.value() == f"value-{i}".encode(), f"value {m.value()}")
            check(m.headers() == [("h-index", str(i).encode()), ("h-const", b"brook")], f"headers {m.headers()}")
        return f"30 keyed records with 2 headers each over {len(parts)} partitions"

    scenario("produce.keys_headers", keys_headers)

    for codec in CODECS:
        def codec_round_trip(codec=codec):
            topic = topic_name(codec)
            create(topic)
            vals = [f"{codec} record {i} " * 20 for i in range(50)]
            produce(topic, vals, **{"compression.type": codec, "linger.ms": 100})
            got = read_all(topic, 1, 50)
            check([m.value().decode() for m in got] == vals, "values differ")
            check([m.offset() for m in got] == list(range(50)), "offsets differ")
            return f"50 records, {codec}-compressed, read back intact"
        scenario(f"produce.{codec}", codec_round_trip)

    def idempotent():
        topic = topic_name("idem")
        create(topic)
        produce(topic, [f"idem-{i}" for i in range(100)], **{"enable.idempotence": True, "acks": "all"})
        got = read_all(topic, 1, 100)
        check([(m.offset(), m.value().decode()) for m in got] == [(i, f"idem-{i}") for i in range(100)], "order")
        return "enable.idempotence=true: 100 records exactly once, in order"

    scenario("produce.idempotent", idempotent)

    ctopic = topic_name("consume")

    def earliest():
        create(ctopic)
        produce(ctopic, [f"old-{i}" for i in range(10)])
        c = consumer(f"{PREFIX}-earliest-{RUN}", **{"auto.offset.reset": "earliest"})
        c.subscribe([ctopic])
        try:
            got = poll(c, 10)
        finally:
            c.close()
        check([m.offset() for m in got] == list(range(10)), f"offsets {[m.offset() for m in got]}")
        return "subscribe, auto.offset.reset=earliest: offsets 0..9"

    def latest():
        c = consumer(f"{PREFIX}-latest-{RUN}", **{"auto.offset.reset": "latest"})
        c.subscribe([ctopic])
        p = producer()
        try:
            deadline = time.monotonic() + DEADLINE_S
            i = 0
            while time.monotonic() < deadline:
                p.produce(ctopic, f"new-{i}".encode())
                p.flush(10)
                i += 1
                m = c.poll(0.5)
                if m is not None and m.error() is None:
                    check(m.offset() >= 10, f"read old record at {m.offset()}")
                    return f"first record read: offset {m.offset()} ({m.value().decode()}), none of the 10 old ones"
            raise Failed("no new record read")
        finally:
            c.close()

    def by_timestamp():
        topic = topic_name("ts")
        create(topic)
        now = int(time.time() * 1000)
        t0, t1 = now - 600_000, now - 300_000
        p = producer()
        for i in range(10):
            p.produce(topic, f"ts-{i}".encode(), timestamp=(t0 if i < 6 else t1) + i)
        check(p.flush(20) == 0, "flush")
        c = consumer()
        try:
            o = c.offsets_for_times([TopicPartition(topic, 0, t1)], timeout=10)
            check(o[0].offset == 6, f"offsets_for_times {o}")
            c.assign(o)
            got = poll(c, 4)
        finally:
            c.close()
        check(got[0].offset() == 6 and got[0].value() == b"ts-6" and got[0].timestamp()[1] == t1 + 6,
              f"first {got[0].offset()} {got[0].timestamp()}")
        return "offsets_for_times -> 6, assign, read ts-6..ts-9 with their CreateTime"

    scenario("consume.earliest", earliest)
    scenario("consume.latest", latest)
    scenario("consume.timestamp", by_timestamp)

    def commit_resume():
        topic, group = topic_name("group"), f"{PREFIX}-group-{RUN}"
        create(topic)
        produce(topic, [f"g-{i}" for i in range(10)])
        c = consumer(group, **{"auto.offset.reset": "earliest"})
        c.subscribe([topic])
        try:
            poll(c, 6)
            c.commit(offsets=[TopicPartition(topic, 0, 6)], asynchronous=False)
        finally:
            c.close()
        from confluent_kafka import ConsumerGroupTopicPartitions
        r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
        offs = {(tp.topic, tp.partition): tp.offset for tp in r.topic_partitions}
        check(offs.get((topic, 0)) == 6, f"committed {offs}")
        c = consumer(group, **{"auto.offset.reset": "earliest"})
        c.subscribe([topic])
        try:
            got = poll(c, 4)
        finally:
            c.close()
        check(got[0].offset() == 6 and got[0].value() == b"g-6", f"resumed at {got[0].offset()}")
        return "commit(6), close, new member resumed at offset 6"

    def describe_lag():
        topic, group = topic_name("lag"), f"{PREFIX}-lag-{RUN}"
        create(topic)
        produce(topic, [f"l-{i}" for i in range(10)])
        c = consumer(group, **{"auto.offset.reset": "earliest"})
        c.subscribe([topic])
        try:
            poll(c, 4)
            c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
            d = admin.describe_consumer_groups([group])[group].result(20)
            check(d.state == ConsumerGroupState.STABLE and len(d.members) == 1, f"group {d.state} {d.members}")
            from confluent_kafka import ConsumerGroupTopicPartitions
            r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
            committed = {tp.partition: tp.offset for tp in r.topic_partitions}[0]
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
            check(hi - committed == 6, f"lag {hi - committed} (end {hi}, committed {committed})")
            return f"describe_consumer_groups: {d.state.name}, 1 member, assignor {d.partition_assignor}; committed 4, end 10, lag 6"
        finally:
            c.close()

    scenario("group.commit_resume", commit_resume)
    scenario("group.describe_lag", describe_lag)

    from confluent_kafka import IsolationLevel
    from confluent_kafka.admin import OffsetSpec

    def end_offset(tp, level):
        return admin.list_offsets({tp: OffsetSpec.latest()}, isolation_level=level)[tp].result(20).offset

    def txn_producer(name):
        p = producer(**{"transactional.id": f"{PREFIX}-{name}-{RUN}"})
        p.init_transactions(20)
        return p

    def txn_commit_abort():
        # Committed transaction of 10, aborted one of 5 (flushed: delivered, acked at 11..15,
        # before the abort), committed one of 7; with the control markers the log is
        # c1 0..9, commit 10, ab 11..15, abort 16, c2 17..23, commit 24.
        topic = topic_name("txn")
        create(topic)
        tp = TopicPartition(topic, 0)
        acked, errors = {}, []

        def on_delivery(err, msg):
            if err:
                errors.append(err)
            else:
                acked[msg.value().decode()] = msg.offset()

        p = txn_producer("txn")
        p.begin_transaction()
        for i in range(10):
            p.produce(topic, f"c1-{i}".encode(), on_delivery=on_delivery)
        p.commit_transaction(20)
        p.begin_transaction()
        for i in range(5):
            p.produce(topic, f"ab-{i}".encode(), on_delivery=on_delivery)
        check(p.flush(20) == 0, "flush left messages")
        lso_open, hw_open = end_offset(tp, IsolationLevel.READ_COMMITTED), end_offset(tp, IsolationLevel.READ_UNCOMMITTED)
        p.abort_transaction(20)
        p.begin_transaction()
        for i in range(7):
            p.produce(topic, f"c2-{i}".encode(), on_delivery=on_delivery)
        p.commit_transaction(20)
        check(not errors, f"delivery errors {errors}")
        check([acked.get(f"ab-{i}") for i in range(5)] == list(range(11, 16)),
              f"aborted records acked at {[acked.get(f'ab-{i}') for i in range(5)]}, want 11..15")
        check((lso_open, hw_open) == (11, 16), f"while the 2nd transaction was open: read_committed end offset (LSO) "
              f"{lso_open}, read_uncommitted end offset (high watermark) {hw_open}; want 11 and 16")
        rc = read_all(topic, 1, 17, **{"isolation.level": "read_committed"})
        want = [(i, f"c1-{i}") for i in range(10)] + [(17 + i, f"c2-{i}") for i in range(7)]
        check([(m.offset(), m.value().decode()) for m in rc] == want, f"read_committed {[(m.offset(), m.value()) for m in rc]}")
        ru = read_all(topic, 1, 22, **{"isolation.level": "read_uncommitted"})
        want = [f"c1-{i}" for i in range(10)] + [f"ab-{i}" for i in range(5)] + [f"c2-{i}" for i in range(7)]
        check([m.value().decode() for m in ru] == want, f"read_uncommitted {[m.value() for m in ru]}")
        lso, hw = end_offset(tp, IsolationLevel.READ_COMMITTED), end_offset(tp, IsolationLevel.READ_UNCOMMITTED)
        check((lso, hw) == (25, 25), f"end offsets after the last commit: LSO {lso}, high watermark {hw}; want 25")
        return ("commit 10, abort 5 (flushed, acked at 11..15), commit 7: read_committed read the 17 committed "
                "(offsets 0..9, 17..23), read_uncommitted all 22; LSO 11 / HW 16 while the abort was open, 25 / 25 after")

    def txn_offsets():
        # Consume-transform-produce: a read_committed group member reads 10 records; txn 1
        # produces the first 6 transformed with offset 6 and commits; txn 2 the other 4 with
        # offset 10 and aborts (the group stays at 6); the member seeks back to the committed
        # offset and txn 3 redoes the 4 with offset 10 and commits.
        src, dst, group = topic_name("txn-in"), topic_name("txn-out"), f"{PREFIX}-txn-{RUN}"
        create(src)
        create(dst)
        produce(src, [f"in-{i}" for i in range(10)])
        tp = TopicPartition(src, 0)
        c = consumer(group, **{"auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        p = txn_producer("txo")

        def txn(msgs, offset, commit):
            p.begin_transaction()
            for m in msgs:
                p.produce(dst, m.value().decode().upper().encode())
            p.send_offsets_to_transaction([TopicPartition(src, 0, offset)], c.consumer_group_metadata(), 20)
            if commit:
                p.commit_transaction(20)
            else:
                check(p.flush(20) == 0, "flush left messages")
                p.abort_transaction(20)

        try:
            c.subscribe([src])
            got = poll(c, 10)
            check([m.offset() for m in got] == list(range(10)), f"input offsets {[m.offset() for m in got]}")
            txn(got[:6], 6, True)
            txn(got[6:], 10, False)
            # committed(): OffsetFetch with require_stable (read_committed), retried while the
            # aborted transaction's offsets are undecided.
            after_abort = c.committed([tp], timeout=20)[0].offset
            check(after_abort == 6, f"committed offset after the aborted transaction {after_abort}, want 6")
            c.seek(TopicPartition(src, 0, after_abort))
            again = poll(c, 4)
            check([m.offset() for m in again] == list(range(6, 10)), f"re-read offsets {[m.offset() for m in again]}")
            txn(again, 10, True)
            final = c.committed([tp], timeout=20)[0].offset
            check(final == 10, f"committed offset after the last commit {final}, want 10")
        finally:
            c.close()
        from confluent_kafka import ConsumerGroupTopicPartitions
        r = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(20)
        offs = {(x.topic, x.partition): x.offset for x in r.topic_partitions}
        check(offs.get((src, 0)) == 10, f"list_consumer_group_offsets {offs}")
        want = [f"IN-{i}" for i in range(10)]
        rc = read_all(dst, 1, 10, **{"isolation.level": "read_committed"})
        check([m.value().decode() for m in rc] == want, f"output read_committed {[m.value() for m in rc]}")
        ru = read_all(dst, 1, 14, **{"isolation.level": "read_uncommitted"})
        check([m.value().decode() for m in ru] == want + want[6:], f"output read_uncommitted {[m.value() for m in ru]}")
        return ("read_committed member: txn 1 (6 + send_offsets_to_transaction 6) committed, txn 2 (4 + offsets 10) aborted "
                "-> committed() 6, seek, txn 3 (4 + offsets 10) committed; output read_committed IN-0..IN-9 once, "
                "read_uncommitted 14; group offset 10 (committed(), list_consumer_group_offsets)")

    scenario("txn.commit_abort", txn_commit_abort)
    scenario("txn.offsets", txn_offsets)


# --------------------------------------------------------------------------------------
# kafka-python
# --------------------------------------------------------------------------------------
def kafka_python():
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions, NewTopic
    from kafka.structs import OffsetAndMetadata
    import kafka.codec

    admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP, client_id="brook-compat-kafka-python")

    def create(topic, partitions=1, config=None):
        admin.create_topics([NewTopic(topic, partitions, 1, topic_configs=config or {})], timeout_ms=10000)

    def produce(topic, values, **conf):
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP, **{"linger_ms": 20, **conf})
        futs = [p.send(topic, v.encode()) for v in values]
        md = [f.get(20) for f in futs]
        p.close(10)
        return md

    def consumer(group=None, **conf):
        return KafkaConsumer(bootstrap_servers=BOOTSTRAP, group_id=group, enable_auto_commit=False,
                             fetch_max_wait_ms=200, **conf)

    def poll(c, n):
        got = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < n:
            check(time.monotonic() < deadline, f"timed out with {len(got)} of {n} records")
            for recs in c.poll(200, max_records=n - len(got)).values():
                got.extend(recs)
        return got

    def read_all(topic, parts, n, **conf):
        c = consumer(**conf)
        tps = [TopicPartition(topic, p) for p in range(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        try:
            return poll(c, n)
        finally:
            c.close()

    t = topic_name("admin")

    def admin_create():
        create(t, 3, {"retention.ms": "3600000"})
        return f"created {t} with 3 partitions, retention.ms=3600000"

    def admin_list():
        topics = admin.list_topics()
        check(t in topics, f"list_topics lacks {t}")
        return f"{len(topics)} topics"

    def admin_describe():
        d = admin.describe_topics([t])
        check(len(d) == 1 and len(d[0]["partitions"]) == 3, f"describe_topics {d}")
        cfg = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t, {"retention.ms": None})])
        text = repr(cfg)
        check("retention.ms" in text and "3600000" in text, f"describe_configs {text[:500]}")
        return "describe_topics: 3 partitions; describe_configs retention.ms=3600000"

    def admin_add_partitions():
        admin.create_partitions({t: NewPartitions(5)})
        for _ in range(20):
            if len(admin.describe_topics([t])[0]["partitions"]) == 5:
                return "3 -> 5 partitions"
            time.sleep(0.2)
        raise Failed("partition count did not become 5")

    def admin_delete():
        admin.delete_topics([t], timeout_ms=10000)
        for _ in range(20):
            if t not in admin.list_topics():
                return "deleted, gone from list_topics"
            time.sleep(0.2)
        raise Failed("topic still listed")

    scenario("admin.create", admin_create)
    scenario("admin.list", admin_list)
    scenario("admin.describe", admin_describe)
    scenario("admin.add_partitions", admin_add_partitions)
    scenario("admin.delete", admin_delete)

    def keys_headers():
        topic = topic_name("keys")
        create(topic, 3)
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
        for i in range(30):
            p.send(topic, f"value-{i}".encode(), key=f"key-{i}".encode(),
                   headers=[("h-index", str(i).encode()), ("h-const", b"brook")])
        p.flush(20)
        p.close(10)
        got = read_all(topic, 3, 30)
        parts = set()
        for r in got:
            i = int(r.key.decode()[4:])
            parts.add(r.partition)
            check(r.value == f"value-{i}".encode(), f"value {r.value}")
            check(list(r.headers) == [("h-index", str(i).encode()), ("h-const", b"brook")], f"headers {r.headers}")
        return f"30 keyed records with 2 headers each over {len(parts)} partitions"

    scenario("produce.keys_headers", keys_headers)

    have = {"gzip": kafka.codec.has_gzip(), "snappy": kafka.codec.has_snappy(),
            "lz4": kafka.codec.has_lz4(), "zstd": kafka.codec.has_zstd()}
    for codec in CODECS:
        if not have[codec]:
            report(f"produce.{codec}", "n/a", f"kafka-python needs the optional {codec} module (requirements-codecs.txt), not importable")
            continue

        def codec_round_trip(codec=codec):
            topic = topic_name(codec)
            create(topic)
            vals = [f"{codec} record {i} " * 20 for i in range(50)]
            produce(topic, vals, compression_type=codec, linger_ms=100)
            got = read_all(topic, 1, 50)
            check([r.value.decode() for r in got] == vals, "values differ")
            check([r.offset for r in got] == list(range(50)), "offsets differ")
            return f"50 records, {codec}-compressed, read back intact"
        scenario(f"produce.{codec}", codec_round_trip)

    def idempotent():
        topic = topic_name("idem")
        create(topic)
        md = produce(topic, [f"idem-{i}" for i in range(100)], enable_idempotence=True, acks="all")
        check([m.offset for m in md] == list(range(100)), "acked offsets")
        got = read_all(topic, 1, 100)
        check([(r.offset, r.value.decode()) for r in got] == [(i, f"idem-{i}") for i in range(100)], "order")
        return "enable_idempotence=True: 100 records exactly once, in order"

    scenario("produce.idempotent", idempotent)

    ctopic = topic_name("consume")

    def earliest():
        create(ctopic)
        produce(ctopic, [f"old-{i}" for i in range(10)])
        c = consumer(f"{PREFIX}-earliest-{RUN}", auto_offset_reset="earliest")
        c.subscribe([ctopic])
        try:
            got = poll(c, 10)
        finally:
            c.close()
        check([r.offset for r in got] == list(range(10)), f"offsets {[r.offset for r in got]}")
        return "subscribe, auto_offset_reset=earliest: offsets 0..9"

    def latest():
        c = consumer(f"{PREFIX}-latest-{RUN}", auto_offset_reset="latest")
        c.subscribe([ctopic])
        try:
            tp = TopicPartition(ctopic, 0)
            deadline = time.monotonic() + DEADLINE_S
            early = []
            while not c.assignment():
                check(time.monotonic() < deadline, "no assignment")
                for recs in c.poll(200).values():
                    early.extend(recs)
            check(not early, f"read old records {early}")
            pos = c.position(tp)
            check(pos == 10, f"position {pos}")
            produce(ctopic, [f"new-{i}" for i in range(5)])
            got = poll(c, 5)
            check(got[0].offset == 10 and got[0].value == b"new-0", f"first {got[0]}")
            return "auto_offset_reset=latest: position 10, read only the 5 new records"
        finally:
            c.close()

    def by_timestamp():
        topic = topic_name("ts")
        create(topic)
        now = int(time.time() * 1000)
        t0, t1 = now - 600_000, now - 300_000
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP)
        for i in range(10):
            p.send(topic, f"ts-{i}".encode(), partition=0, timestamp_ms=(t0 if i < 6 else t1) + i)
        p.flush(20)
        p.close(10)
        tp = TopicPartition(topic, 0)
        c = consumer()
        try:
            o = c.offsets_for_times({tp: t1})
            check(o[tp] is not None and o[tp].offset == 6, f"offsets_for_times {o}")
            c.assign([tp])
            c.seek(tp, o[tp].offset)
            got = poll(c, 4)
        finally:
            c.close()
        check(got[0].offset == 6 and got[0].value == b"ts-6" and got[0].timestamp == t1 + 6, f"first {got[0]}")
        return "offsets_for_times -> 6, seek, read ts-6..ts-9 with their CreateTime"

    scenario("consume.earliest", earliest)
    scenario("consume.latest", latest)
    scenario("consume.timestamp", by_timestamp)

    def commit_resume():
        topic, group = topic_name("group"), f"{PREFIX}-group-{RUN}"
        create(topic)
        produce(topic, [f"g-{i}" for i in range(10)])
        tp = TopicPartition(topic, 0)
        c = consumer(group, auto_offset_reset="earliest")
        c.subscribe([topic])
        try:
            poll(c, 6)
            c.commit({tp: OffsetAndMetadata(6, "compat", -1)})
        finally:
            c.close()
        offs = admin.list_consumer_group_offsets(group)
        check(offs.get(tp) is not None and offs[tp].offset == 6, f"committed {offs}")
        c = consumer(group, auto_offset_reset="earliest")
        c.subscribe([topic])
        try:
            got = poll(c, 4)
        finally:
            c.close()
        check(got[0].offset == 6 and got[0].value == b"g-6", f"resumed at {got[0].offset}")
        return "commit(6), close, new member resumed at offset 6"

    def describe_lag():
        topic, group = topic_name("lag"), f"{PREFIX}-lag-{RUN}"
        create(topic)
        produce(topic, [f"l-{i}" for i in range(10)])
        tp = TopicPartition(topic, 0)
        c = consumer(group, auto_offset_reset="earliest")
        c.subscribe([topic])
        try:
            poll(c, 4)
            c.commit({tp: OffsetAndMetadata(4, "", -1)})
            d = admin.describe_consumer_groups([group])[0]
            check(d.state == "Stable" and len(d.members) == 1, f"group {d}")
            committed = admin.list_consumer_group_offsets(group)[tp].offset
            end = c.end_offsets([tp])[tp]
            check(end - committed == 6, f"lag {end - committed} (end {end}, committed {committed})")
            return f"describe_consumer_groups: {d.state}, 1 member, protocol {d.protocol}; committed 4, end 10, lag 6"
        finally:
            c.close()

    scenario("group.commit_resume", commit_resume)
    scenario("group.describe_lag", describe_lag)

    def end_offset(tp, level):
        c = consumer(isolation_level=level)
        try:
            return c.end_offsets([tp])[tp]
        finally:
            c.close()

    def txn_producer(name):
        p = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=f"{PREFIX}-{name}-{RUN}", linger_ms=20)
        p.init_transactions()
        return p

    def txn_commit_abort():
        # Committed transaction of 10, aborted one of 5 (flushed: acked at 11..15 before the
        # abort), committed one of 7; with the control markers the log is c1 0..9, commit 10,
        # ab 11..15, abort 16, c2 17..23, commit 24.
        topic = topic_name("txn")
        create(topic)
        tp = TopicPartition(topic, 0)
        p = txn_producer("txn")
        try:
            p.begin_transaction()
            for i in range(10):
                p.send(topic, f"c1-{i}".encode())
            p.commit_transaction()
            p.begin_transaction()
            futs = [p.send(topic, f"ab-{i}".encode()) for i in range(5)]
            p.flush(20)
            aborted_at = [f.get(20).offset for f in futs]
            lso_open, hw_open = end_offset(tp, "read_committed"), end_offset(tp, "read_uncommitted")
            p.abort_transaction()
            p.begin_transaction()
            for i in range(7):
                p.send(topic, f"c2-{i}".encode())
            p.commit_transaction()
        finally:
            p.close(10)
        check(aborted_at == list(range(11, 16)), f"aborted records acked at {aborted_at}, want 11..15")
        check((lso_open, hw_open) == (11, 16), f"while the 2nd transaction was open: read_committed end offset (LSO) "
              f"{lso_open}, read_uncommitted end offset (high watermark) {hw_open}; want 11 and 16")
        rc = read_all(topic, 1, 17, isolation_level="read_committed")
        want = [(i, f"c1-{i}") for i in range(10)] + [(17 + i, f"c2-{i}") for i in range(7)]
        check([(r.offset, r.value.decode()) for r in rc] == want, f"read_committed {[(r.offset, r.value) for r in rc]}")
        ru = read_all(topic, 1, 22, isolation_level="read_uncommitted")
        want = [f"c1-{i}" for i in range(10)] + [f"ab-{i}" for i in range(5)] + [f"c2-{i}" for i in range(7)]
        check([r.value.decode() for r in ru] == want, f"read_uncommitted {[r.value for r in ru]}")
        lso, hw = end_offset(tp, "read_committed"), end_offset(tp, "read_uncommitted")
        check((lso, hw) == (25, 25), f"end offsets after the last commit: LSO {lso}, high watermark {hw}; want 25")
        return ("commit 10, abort 5 (flushed, acked at 11..15), commit 7: read_committed read the 17 committed "
                "(offsets 0..9, 17..23), read_uncommitted all 22; LSO 11 / HW 16 while the abort was open, 25 / 25 after")

    def txn_offsets():
        # As for confluent-kafka; kafka-python's send_offsets_to_transaction takes the group id
        # (no generation/member: TxnOffsetCommit without group metadata) and its OffsetFetch
        # (<= v5) has no require_stable, so the offset after the last commit is polled for.
        src, dst, group = topic_name("txn-in"), topic_name("txn-out"), f"{PREFIX}-txn-{RUN}"
        create(src)
        create(dst)
        produce(src, [f"in-{i}" for i in range(10)])
        tp = TopicPartition(src, 0)
        c = consumer(group, auto_offset_reset="earliest", isolation_level="read_committed")
        p = txn_producer("txo")

        def txn(recs, offset, commit):
            p.begin_transaction()
            for r in recs:
                p.send(dst, r.value.decode().upper().encode())
            p.send_offsets_to_transaction({tp: OffsetAndMetadata(offset, "", -1)}, group)
            if commit:
                p.commit_transaction()
            else:
                p.flush(20)
                p.abort_transaction()

        try:
            c.subscribe([src])
            got = poll(c, 10)
            check([r.offset for r in got] == list(range(10)), f"input offsets {[r.offset for r in got]}")
            txn(got[:6], 6, True)
            txn(got[6:], 10, False)
            after_abort = c.committed(tp)
            check(after_abort == 6, f"committed offset after the aborted transaction {after_abort}, want 6")
            c.seek(tp, after_abort)
            again = poll(c, 4)
            check([r.offset for r in again] == list(range(6, 10)), f"re-read offsets {[r.offset for r in again]}")
            txn(again, 10, True)
            deadline = time.monotonic() + 10
            while (final := c.committed(tp)) != 10 and time.monotonic() < deadline:
                time.sleep(0.1)
            check(final == 10, f"committed offset after the last commit {final}, want 10")
        finally:
            c.close()
            p.close(10)
        offs = admin.list_consumer_group_offsets(group)
        check(offs.get(tp) is not None and offs[tp].offset == 10, f"list_consumer_group_offsets {offs}")
        want = [f"IN-{i}" for i in range(10)]
        rc = read_all(dst, 1, 10, isolation_level="read_committed")
        check([r.value.decode() for r in rc] == want, f"output read_committed {[r.value for r in rc]}")
        ru = read_all(dst, 1, 14, isolation_level="read_uncommitted")
        check([r.value.decode() for r in ru] == want + want[6:], f"output read_uncommitted {[r.value for r in ru]}")
        return ("read_committed member: txn 1 (6 + send_offsets_to_transaction 6) committed, txn 2 (4 + offsets 10) aborted "
                "-> committed() 6, seek, txn 3 (4 + offsets 10) committed; output read_committed IN-0..IN-9 once, "
                "read_uncommitted 14; group offset 10 (committed() polled, no require_stable; list_consumer_group_offsets)")

    scenario("txn.commit_abort", txn_commit_abort)
    scenario("txn.offsets", txn_offsets)
    admin.close()


# --------------------------------------------------------------------------------------
# the secured run (compat/run.sh --secure): scenarios in secure.py
# --------------------------------------------------------------------------------------
def confluent_secure():
    import secure
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                       AdminClient, NewTopic, ResourcePatternType, ResourceType)

    def conf(method, user=None, password=None):
        c = {"ssl.ca.location": secure.cert("ca.pem")}
        if method == "mtls":
            return {"bootstrap.servers": secure.SSL_BOOTSTRAP, "security.protocol": "SSL",
                    "ssl.certificate.location": secure.cert("client.crt"),
                    "ssl.key.location": secure.cert("client.key"), **c}
        mech, u = secure.METHODS[method]
        user = user or u
        return {"bootstrap.servers": BOOTSTRAP, "security.protocol": "SASL_SSL", "sasl.mechanism": mech,
                "sasl.username": user, "sasl.password": password or secure.USERS[user], **c}

    def admin():
        return AdminClient(conf("scram512", "admin"))

    def wait(futures):
        return [f.result(20) for f in futures.values()]

    def bindings(who, topic, group):
        return [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, who, "*", op,
                           AclPermissionType.ALLOW)
                for op in (AclOperation.WRITE, AclOperation.DESCRIBE, AclOperation.READ)] + [
            AclBinding(ResourceType.GROUP, group, ResourcePatternType.LITERAL, who, "*", AclOperation.READ,
                       AclPermissionType.ALLOW)]

    class Ops:
        def scram_user(self):
            from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                               UserScramCredentialUpsertion)
            a = admin()
            wait(a.alter_user_scram_credentials([UserScramCredentialUpsertion(
                "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096), b"carol-secret")]))
            infos = a.describe_user_scram_credentials(["carol"])["carol"].result(20).scram_credential_infos
            check([i.mechanism for i in infos] == [ScramMechanism.SCRAM_SHA_512], f"described {infos}")
            return "alter_user_scram_credentials: carol SCRAM-SHA-512 (4096 iterations); described back"

        def create_topic(self, topic):
            a = admin()  # kept alive until its futures complete
            wait(a.create_topics([NewTopic(topic, 1, 1)], operation_timeout=10))

        def grant(self, who, topic, group):
            a = admin()
            wait(a.create_acls(bindings(who, topic, group)))

        def revoke(self, who, topic, group):
            filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                        b.operation, b.permission_type) for b in bindings(who, topic, group)]
            a = admin()
            return sum(len(r) for r in wait(a.delete_acls(filters)))

        def produce(self, method, topic, values):
            p = Producer({**conf(method), "linger.ms": 5, "message.timeout.ms": 10000})
            errors = []
            for v in values:
                p.produce(topic, v.encode(), on_delivery=lambda err, msg: err and errors.append(err))
            check(p.flush(20) == 0, "flush left messages")
            if errors:
                raise KafkaException(errors[0])

        def consume(self, method, topic, group, n):
            c = Consumer({**conf(method), "group.id": group, "auto.offset.reset": "earliest",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 200})
            try:
                c.subscribe([topic])
                got, deadline = [], time.monotonic() + 20
                while len(got) < n:
                    check(time.monotonic() < deadline, f"timed out with {len(got)} of {n} records")
                    m = c.poll(0.2)
                    if m is None:
                        continue
                    if m.error():
                        raise KafkaException(m.error())
                    got.append(m.value().decode())
                c.commit(asynchronous=False)
                return got
            finally:
                c.close()

        def topics(self, method):
            a = AdminClient(conf(method))
            return set(a.list_topics(timeout=10).topics)

        def bad_password(self):
            errors = []
            p = Producer({**conf("plain", "alice", "wrong-password"),
                          "error_cb": lambda e: errors.append(e)})
            deadline = time.monotonic() + 15
            while not errors and time.monotonic() < deadline:
                p.poll(0.2)
            check(errors, "no error within 15 s")
            e = errors[0]
            check(e.code() == KafkaError._AUTHENTICATION, f"error {e}")
            return f"{e.name()}: {e.str()[:200]}"

    secure.run(Ops(), PREFIX, RUN)


def kafka_python_secure():
    import secure
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                             KafkaAdminClient, NewTopic, ResourcePattern, ResourcePatternFilter,
                             ResourceType)

    def conf(method, user=None, password=None):
        c = {"ssl_cafile": secure.cert("ca.pem"), "client_id": "brook-compat-kafka-python"}
        if method == "mtls":
            return {"bootstrap_servers": secure.SSL_BOOTSTRAP, "security_protocol": "SSL",
                    "ssl_certfile": secure.cert("client.crt"), "ssl_keyfile": secure.cert("client.key"), **c}
        mech, u = secure.METHODS[method]
        user = user or u
        return {"bootstrap_servers": BOOTSTRAP, "security_protocol": "SASL_SSL", "sasl_mechanism": mech,
                "sasl_plain_username": user, "sasl_plain_password": password or secure.USERS[user], **c}

    def admin():
        return KafkaAdminClient(**conf("scram512", "admin"))

    def acls(who, topic, group):
        return [ACL(who, "*", op, ACLPermissionType.ALLOW,
                    ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL))
                for op in (ACLOperation.WRITE, ACLOperation.DESCRIBE, ACLOperation.READ)] + [
            ACL(who, "*", ACLOperation.READ, ACLPermissionType.ALLOW,
                ResourcePattern(ResourceType.GROUP, group, ACLResourcePatternType.LITERAL))]

    class Ops:
        no_scram_api = "kafka-python's KafkaAdminClient has no AlterUserScramCredentials"

        def create_topic(self, topic):
            a = admin()
            a.create_topics([NewTopic(topic, 1, 1)], timeout_ms=10000)
            a.close()

        def grant(self, who, topic, group):
            a = admin()
            r = a.create_acls(acls(who, topic, group))
            a.close()
            check(not r["failed"] and len(r["succeeded"]) == 4, f"create_acls {r}")

        def revoke(self, who, topic, group):
            a = admin()
            filters = [ACLFilter(x.principal, x.host, x.operation, x.permission_type,
                                 ResourcePatternFilter(x.resource_pattern.resource_type,
                                                       x.resource_pattern.resource_name,
                                                       x.resource_pattern.pattern_type))
                       for x in acls(who, topic, group)]
            r = a.delete_acls(filters)
            a.close()
            n = 0
            for _filter, matched, err in r:
                check(err is None or err.errno == 0, f"delete_acls error {err}")
                n += len(matched)
            return n

        def produce(self, method, topic, values):
            p = KafkaProducer(**conf(method), linger_ms=5, max_block_ms=10000)
            try:
                for f in [p.send(topic, v.encode()) for v in values]:
                    f.get(15)
            finally:
                p.close(5)

        def consume(self, method, topic, group, n):
            c = KafkaConsumer(**conf(method), group_id=group, auto_offset_reset="earliest",
                              enable_auto_commit=False, fetch_max_wait_ms=200)
            try:
                c.subscribe([topic])
                got, deadline = [], time.monotonic() + 20
                while len(got) < n:
                    check(time.monotonic() < deadline, f"timed out with {len(got)} of {n} records")
                    for recs in c.poll(200, max_records=n - len(got)).values():
                        got.extend(r.value.decode() for r in recs)
                c.commit()
                return got
            finally:
                c.close(autocommit=False)

        def topics(self, method):
            c = KafkaConsumer(**conf(method))
            try:
                return set(c.topics())
            finally:
                c.close()

        def bad_password(self):
            # kafka-python treats a failed authentication as a failed connection: it logs
            # the broker's SaslAuthenticationFailedError (58) and retries, and its API only
            # times out. Both are checked: the timeout, and the logged error.
            import logging

            class Capture(logging.Handler):
                def __init__(self):
                    super().__init__(logging.WARNING)
                    self.messages = []

                def emit(self, record):
                    self.messages.append(record.getMessage())

            h, kafka_log = Capture(), logging.getLogger("kafka")
            kafka_log.addHandler(h)
            try:
                p = KafkaProducer(**conf("plain", "alice", "wrong-password"), max_block_ms=3000)
                try:
                    p.send("kp-any-topic", b"v").get(10)
                finally:
                    p.close(1)
            except Exception as e:  # noqa: BLE001
                text = f"{type(e).__name__}: {e}"
                auth = [m for m in h.messages if "SaslAuthenticationFailedError" in m]
                check(auth, f"{text}, no SaslAuthenticationFailedError logged: {h.messages[:3]}")
                return f"{text}; kafka-python logged: {auth[0][-160:]}"
            finally:
                kafka_log.removeHandler(h)
            raise Failed("produced with a wrong password")

    secure.run(Ops(), PREFIX, RUN)


if __name__ == "__main__":
    import os
    if os.environ.get("COMPAT_SECURE"):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        {"confluent-kafka": confluent_secure, "kafka-python": kafka_python_secure}[CLIENT]()
    else:
        {"confluent-kafka": confluent, "kafka-python": kafka_python}[CLIENT]()
