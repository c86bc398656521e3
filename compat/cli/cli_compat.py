#!/usr/bin/env python3
"""Brook compatibility scenarios driven by Kafka's own command-line tools.

The tools are the classes behind kafka-topics.sh, kafka-console-producer.sh,
kafka-console-consumer.sh, kafka-consumer-groups.sh, kafka-get-offsets.sh and
kafka-producer-perf-test.sh, run from the Maven artifacts pinned in compat/java/pom.xml:

    python3 cli_compat.py 127.0.0.1:9092 JARS_DIR

Prints one line per scenario: `RESULT {"scenario":..,"status":..,"detail":..}`; each tool
invocation is echoed to stderr with its output, for the log.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import re
import string
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from results import Failed, check, report, scenario  # noqa: E402

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
JARS = sys.argv[2] if len(sys.argv) > 2 else "jars"
RUN = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))
TOOL_TIMEOUT_S = 60

TOPICS = "org.apache.kafka.tools.TopicCommand"
PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"
GET_OFFSETS = "org.apache.kafka.tools.GetOffsetShell"
PERF = "org.apache.kafka.tools.ProducerPerformance"
# No shell script of its own (kafka-run-class.sh runs it in Kafka's system tests).
TXN_COPIER = "org.apache.kafka.tools.TransactionalMessageCopier"

# A short-lived JVM per tool: skip the optimizing JIT, keep the heap small.
JVM = [
    "java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx256m",
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
    "-cp", os.path.join(JARS, "*"),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def tool(cls: str, *args: str, stdin: str | None = None, ok: bool = True) -> str:
    """Runs one tool to completion; returns stdout. Fails on a non-zero exit if ok."""
    cmd = JVM + [cls, *args]
    started = time.monotonic()
    p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    log(f"$ {cls.rsplit('.', 1)[1]} {' '.join(args)}  -> exit {p.returncode} in {time.monotonic() - started:.1f}s")
    for line in (p.stdout + p.stderr).splitlines()[:60]:
        log("    " + line)
    if ok and p.returncode != 0:
        raise Failed(f"{cls.rsplit('.', 1)[1]} {' '.join(args)} exited {p.returncode}: "
                     f"{(p.stderr.strip() or p.stdout.strip())[-1500:]}")
    return p.stdout


def topic_name(s: str) -> str:
    return f"cli-{s}-{RUN}"


def bs() -> list[str]:
    return ["--bootstrap-server", BOOTSTRAP]


def create(topic: str, partitions: int = 1, *extra: str) -> str:
    return tool(TOPICS, *bs(), "--create", "--topic", topic, "--partitions", str(partitions),
                "--replication-factor", "1", *extra)


def produce_lines(topic: str, lines: list[str], *extra: str) -> None:
    tool(PRODUCER, *bs(), "--topic", topic, *extra, stdin="".join(l + "\n" for l in lines))


def consume(topic: str, n: int, *extra: str) -> list[str]:
    out = tool(CONSUMER, *bs(), "--topic", topic, "--max-messages", str(n), "--timeout-ms", "20000",
               *extra, ok=False)
    return out.splitlines()


def end_offsets(topic: str, *time_args: str) -> dict[int, int]:
    out = tool(GET_OFFSETS, *bs(), "--topic", topic, *time_args)
    res = {}
    for line in out.splitlines():
        m = re.fullmatch(r"(.+):(\d+):(-?\d*)", line.strip())
        if m and m.group(1) == topic:
            res[int(m.group(2))] = int(m.group(3)) if m.group(3) else -1
    return res


def main() -> None:
    # ---- admin (kafka-topics) ----
    t = topic_name("admin")

    def admin_create():
        out = create(t, 3, "--config", "retention.ms=3600000")
        check(f"Created topic {t}." in out, f"unexpected output: {out!r}")
        return f"kafka-topics --create --partitions 3 --config retention.ms=3600000: {out.strip()}"

    def admin_list():
        out = tool(TOPICS, *bs(), "--list")
        check(t in out.split(), f"--list lacks {t}: {out!r}")
        return f"--list shows {len(out.split())} topics"

    def admin_describe():
        out = tool(TOPICS, *bs(), "--describe", "--topic", t)
        check("PartitionCount: 3" in out, f"no 'PartitionCount: 3': {out!r}")
        check("retention.ms=3600000" in out, f"no retention.ms=3600000: {out!r}")
        parts = re.findall(r"Partition: (\d+)\s+Leader: (\d+)", out)
        check(len(parts) == 3 and all(l == "1" for _, l in parts), f"partition lines: {parts}")
        return "--describe: PartitionCount 3, Configs retention.ms=3600000, leader 1 for each partition"

    def admin_add_partitions():
        tool(TOPICS, *bs(), "--alter", "--topic", t, "--partitions", "5")
        out = tool(TOPICS, *bs(), "--describe", "--topic", t)
        check("PartitionCount: 5" in out, f"after --alter: {out!r}")
        return "--alter --partitions 5: PartitionCount 3 -> 5"

    def admin_delete():
        tool(TOPICS, *bs(), "--delete", "--topic", t)
        for _ in range(10):
            if t not in tool(TOPICS, *bs(), "--list").split():
                return "--delete, then gone from --list"
            time.sleep(0.5)
        raise Failed("topic still listed after --delete")

    scenario("admin.create", admin_create)
    scenario("admin.list", admin_list)
    scenario("admin.describe", admin_describe)
    scenario("admin.add_partitions", admin_add_partitions)
    scenario("admin.delete", admin_delete)

    # ---- produce (kafka-console-producer / consumer) ----
    def keys_headers():
        topic = topic_name("keys")
        create(topic, 3)
        lines = [f"h-index:{i},h-const:brook\tkey-{i}\tvalue-{i}" for i in range(30)]
        produce_lines(topic, lines, "--reader-property", "parse.key=true", "--reader-property", "parse.headers=true")
        got = consume(topic, 30, "--from-beginning", "--formatter-property", "print.key=true",
                      "--formatter-property", "print.headers=true", "--formatter-property", "print.partition=true")
        check(len(got) == 30, f"consumed {len(got)} lines: {got[:5]}")
        parts = set()
        seen = set()
        for line in got:
            m = re.fullmatch(r"Partition:(\d+)\th-index:(\d+),h-const:brook\tkey-(\d+)\tvalue-(\d+)", line)
            check(m and m.group(2) == m.group(3) == m.group(4), f"bad line {line!r}")
            parts.add(m.group(1))
            seen.add(int(m.group(3)))
        check(seen == set(range(30)), f"keys seen: {sorted(seen)}")
        return f"parse.key + parse.headers in, print.key + print.headers out: 30 records over {len(parts)} partitions"

    scenario("produce.keys_headers", keys_headers)

    for codec in ("gzip", "snappy", "lz4", "zstd"):
        def codec_round_trip(codec=codec):
            topic = topic_name(codec)
            create(topic, 1)
            vals = [(f"{codec} record {i} " * 20).strip() for i in range(50)]
            produce_lines(topic, vals, "--compression-codec", codec)
            got = consume(topic, 50, "--from-beginning")
            check(got == vals, f"read back {len(got)} lines, first {got[:1]}")
            return f"--compression-codec {codec}: 50 records read back intact"
        scenario(f"produce.{codec}", codec_round_trip)

    def idempotent():
        topic = topic_name("idem")
        create(topic, 1)
        vals = [f"idem-{i}" for i in range(200)]
        produce_lines(topic, vals, "--command-property", "enable.idempotence=true",
                      "--command-property", "acks=all", "--command-property", "max.in.flight.requests.per.connection=5")
        check(end_offsets(topic) == {0: 200}, f"end offsets {end_offsets(topic)}")
        got = consume(topic, 200, "--from-beginning", "--formatter-property", "print.offset=true")
        want = [f"Offset:{i}\tidem-{i}" for i in range(200)]
        check(got == want, f"read back {len(got)} lines: {got[:3]}")
        return "console producer with enable.idempotence=true acks=all: 200 records exactly once, in order"

    scenario("produce.idempotent", idempotent)

    def perf_test():
        topic = topic_name("perf")
        create(topic, 3)
        out = tool(PERF, "--topic", topic, "--num-records", "20000", "--record-size", "200", "--throughput", "-1",
                   "--producer-props", f"bootstrap.servers={BOOTSTRAP}", "acks=all", "compression.type=lz4",
                   "linger.ms=5")
        m = re.search(r"20000 records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\)", out)
        check(m, f"no summary line: {out!r}")
        ends = end_offsets(topic)
        check(sum(ends.values()) == 20000, f"end offsets {ends}")
        return f"kafka-producer-perf-test 20000 x 200 B (idempotent default, lz4): {m.group(1)} rec/s; end offsets sum 20000"

    scenario("tools.perf_test", perf_test)

    # ---- consume ----
    ctopic = topic_name("consume")

    def earliest():
        create(ctopic, 1)
        produce_lines(ctopic, [f"old-{i}" for i in range(10)])
        got = consume(ctopic, 10, "--from-beginning", "--group", f"cli-earliest-{RUN}",
                      "--formatter-property", "print.offset=true")
        check(got == [f"Offset:{i}\told-{i}" for i in range(10)], f"got {got}")
        return "--group G --from-beginning: offsets 0..9"

    def latest():
        # A long-lived consumer (no --from-beginning: starts at the end) and a long-lived
        # producer that sends one new record every 0.5 s until the consumer prints one:
        # that first record must be a new one, at offset >= 10.
        cons = subprocess.Popen(JVM + [CONSUMER, *bs(), "--topic", ctopic, "--group", f"cli-latest-{RUN}",
                                       "--max-messages", "1", "--timeout-ms", "40000",
                                       "--formatter-property", "print.offset=true"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        prod = subprocess.Popen(JVM + [PRODUCER, *bs(), "--topic", ctopic],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.extend(cons.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 40
            i = 0
            while not out and cons.poll() is None and time.monotonic() < deadline:
                prod.stdin.write(f"new-{i}\n")
                prod.stdin.flush()
                i += 1
                time.sleep(0.5)
            cons.wait(10)
            reader.join(5)
        finally:
            for p in (cons, prod):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        check(out, f"consumer printed nothing (exit {cons.returncode}): {cons.stderr.read()[-1000:]}")
        m = re.fullmatch(r"Offset:(\d+)\tnew-(\d+)\n?", out[0])
        check(m and int(m.group(1)) >= 10, f"first record {out[0]!r}")
        return f"--group G without --from-beginning: first record {out[0].strip()!r}, none of the 10 old ones"

    def by_timestamp():
        topic = topic_name("ts")
        group = f"cli-ts-{RUN}"
        create(topic, 1)
        produce_lines(topic, [f"ts-{i}" for i in range(6)])
        time.sleep(0.05)
        t1 = int(time.time() * 1000)
        time.sleep(0.05)
        produce_lines(topic, [f"ts-{i}" for i in range(6, 10)])
        ts = end_offsets(topic, "--time", str(t1))
        check(ts == {0: 6}, f"kafka-get-offsets --time {t1}: {ts}")
        when = datetime.datetime.fromtimestamp(t1 / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        out = tool(GROUPS, *bs(), "--group", group, "--topic", topic, "--reset-offsets", "--to-datetime",
                   when + "Z", "--execute")
        check(re.search(rf"{re.escape(group)}\s+{re.escape(topic)}\s+0\s+6\b", out), f"reset output: {out!r}")
        got = consume(topic, 4, "--group", group, "--formatter-property", "print.offset=true")
        check(got == [f"Offset:{i}\tts-{i}" for i in range(6, 10)], f"got {got}")
        return f"kafka-get-offsets --time -> 6; kafka-consumer-groups --reset-offsets --to-datetime {when}Z -> 6; read ts-6..ts-9"

    scenario("consume.earliest", earliest)
    scenario("consume.latest", latest)
    scenario("consume.timestamp", by_timestamp)

    # ---- groups (console consumer + kafka-consumer-groups) ----
    gtopic = topic_name("group")
    group = f"cli-group-{RUN}"

    def commit_resume():
        create(gtopic, 1)
        produce_lines(gtopic, [f"g-{i}" for i in range(10)])
        # max.poll.records=6 with --max-messages 6: the offset committed on close is 6
        got = consume(gtopic, 6, "--group", group, "--from-beginning", "--command-property", "max.poll.records=6",
                      "--formatter-property", "print.offset=true")
        check(got == [f"Offset:{i}\tg-{i}" for i in range(6)], f"first consumer got {got}")
        out = tool(GROUPS, *bs(), "--describe", "--group", group)
        check(re.search(rf"{re.escape(group)}\s+{re.escape(gtopic)}\s+0\s+6\s+10\s+4\b", out),
              f"describe after commit: {out!r}")
        got = consume(gtopic, 4, "--group", group, "--formatter-property", "print.offset=true")
        check(got == [f"Offset:{i}\tg-{i}" for i in range(6, 10)], f"resumed consumer got {got}")
        return "console consumer committed 6 on close; a new one in the group resumed at offset 6"

    def describe_lag():
        out = tool(GROUPS, *bs(), "--list")
        check(group in out.split(), f"--list lacks {group}: {out!r}")
        produce_lines(gtopic, [f"more-{i}" for i in range(5)])
        out = tool(GROUPS, *bs(), "--describe", "--group", group)
        m = re.search(rf"{re.escape(group)}\s+{re.escape(gtopic)}\s+0\s+(\S+)\s+(\S+)\s+(\S+)", out)
        check(m and m.groups() == ("10", "15", "5"), f"--describe: {out!r}")
        out = tool(GROUPS, *bs(), "--describe", "--group", group, "--state")
        check(re.search(r"\bEmpty\b", out), f"--describe --state: {out!r}")
        return "--list shows the group; --describe: CURRENT-OFFSET 10, LOG-END-OFFSET 15, LAG 5; --state Empty"

    scenario("group.commit_resume", commit_resume)
    scenario("group.describe_lag", describe_lag)

    # ---- transactions ----
    report("txn.commit_abort", "n/a", "kafka-console-producer has no transactions (kafka-producer-perf-test "
           "--transactional-id only ever commits); txn.offsets covers the CLI's transactional copy")

    def txn_offsets():
        # TransactionalMessageCopier: a read_committed group member (--group-mode) copies the
        # input to the output in transactions of 6 records, each committing the consumed offset
        # with the consumer's group metadata (--use-group-metadata): offsets 6, then 10.
        src, dst, group = topic_name("txn-in"), topic_name("txn-out"), f"cli-txn-{RUN}"
        create(src, 1)
        create(dst, 1)
        produce_lines(src, [f"in-{i}" for i in range(10)])
        out = tool(TXN_COPIER, "--broker-list", BOOTSTRAP, "--input-topic", src, "--input-partition", "0",
                   "--output-topic", dst, "--transactional-id", f"cli-txo-{RUN}", "--consumer-group", group,
                   "--max-messages", "10", "--transaction-size", "6", "--group-mode", "--use-group-metadata")
        last = json.loads(out.strip().splitlines()[-1])
        check(last.get("stage") == "ShutdownComplete" and last.get("totalProcessed") == 10, f"copier ended with {last}")
        # Two committed transactions: in-0..in-5 at 0..5, marker 6, in-6..in-9 at 7..10, marker 11.
        got = consume(dst, 10, "--from-beginning", "--isolation-level", "read_committed",
                      "--formatter-property", "print.offset=true")
        want = [f"Offset:{i}\tin-{i}" for i in range(6)] + [f"Offset:{i + 1}\tin-{i}" for i in range(6, 10)]
        check(got == want, f"read_committed output {got}")
        ends = end_offsets(dst)
        check(ends == {0: 12}, f"output end offsets {ends} (10 records + 2 commit markers: 12)")
        for attempt in range(3):  # EndTxn is answered before its markers are written
            out = tool(GROUPS, *bs(), "--describe", "--group", group)
            m = re.search(rf"{re.escape(group)}\s+{re.escape(src)}\s+0\s+(\S+)\s+(\S+)\s+(\S+)", out)
            if m and m.groups() == ("10", "10", "0"):
                break
            time.sleep(0.5)
        check(m and m.groups() == ("10", "10", "0"), f"--describe: {out!r}")
        return ("TransactionalMessageCopier --group-mode --use-group-metadata --transaction-size 6: 2 transactions; "
                "console consumer --isolation-level read_committed read in-0..in-9 (offsets 0..5, 7..10), end offset 12; "
                "kafka-consumer-groups --describe: CURRENT-OFFSET 10, LAG 0")

    scenario("txn.offsets", txn_offsets)


# --------------------------------------------------------------------------------------
# the secured run (compat/run.sh --secure): scenarios in compat/python/secure.py
# --------------------------------------------------------------------------------------
ACLS = "org.apache.kafka.tools.AclCommand"
CONFIGS = "org.apache.kafka.tools.ConfigCommand"


class ToolError(Exception):
    """A tool that failed or printed an exception; its message is the tool's output."""


def secure_main() -> None:
    import tempfile
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import secure

    props_dir = tempfile.mkdtemp(prefix="cli-secure-")

    def props(name: str, method: str, user: str | None = None, password: str | None = None) -> str:
        """A --command-config file for a method as a user; returns its path."""
        lines = ["ssl.truststore.type=PEM", f"ssl.truststore.location={secure.cert('ca.pem')}"]
        if method == "mtls":
            lines += ["security.protocol=SSL", "ssl.keystore.type=PEM",
                      f"ssl.keystore.location={secure.cert('client.keystore.pem')}"]
        else:
            mech, u = secure.METHODS[method]
            user = user or u
            module = ("org.apache.kafka.common.security.plain.PlainLoginModule" if mech == "PLAIN"
                      else "org.apache.kafka.common.security.scram.ScramLoginModule")
            lines += ["security.protocol=SASL_SSL", f"sasl.mechanism={mech}",
                      f'sasl.jaas.config={module} required username="{user}" '
                      f'password="{password or secure.USERS[user]}";']
        path = os.path.join(props_dir, f"{name}.properties")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    admin_props = props("admin", "scram512", "admin")
    method_props = {m: props(m, m) for m in secure.METHODS}

    def as_(method: str | None) -> list[str]:
        """--bootstrap-server and --command-config for a method (None: the admin)."""
        if method is None:
            return ["--bootstrap-server", BOOTSTRAP, "--command-config", admin_props]
        server = secure.SSL_BOOTSTRAP if method == "mtls" else BOOTSTRAP
        return ["--bootstrap-server", server, "--command-config", method_props[method]]

    def run_tool(cls: str, *args: str, stdin: str | None = None) -> str:
        """Runs a tool; raises ToolError (the output) if it exited non-zero or printed an
        exception."""
        cmd = JVM + [cls, *args]
        started = time.monotonic()
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
        log(f"$ {cls.rsplit('.', 1)[1]} {' '.join(args)}  -> exit {p.returncode} in {time.monotonic() - started:.1f}s")
        out = p.stdout + p.stderr
        for line in out.splitlines()[:60]:
            log("    " + line)
        if p.returncode != 0 or re.search(r"\w+(Exception|Error): ", p.stderr):
            err = next((l.strip() for l in out.splitlines() if re.search(r"\w+(Exception|Error): ", l)),
                       out.strip()[-500:])
            raise ToolError(f"{cls.rsplit('.', 1)[1]} exited {p.returncode}: {err[:400]}")
        return p.stdout

    def acl_args(who: str, topic: str, group: str) -> tuple[list[str], list[str]]:
        base = ["--allow-principal", who, "--allow-host", "*"]
        return ([*base, "--operation", "Write", "--operation", "Describe", "--operation", "Read", "--topic", topic],
                [*base, "--operation", "Read", "--group", group])

    def list_acls(who: str, topic: str, group: str) -> int:
        out = run_tool(ACLS, *as_(None), "--list", "--principal", who, "--topic", topic, "--group", group)
        return len(re.findall(r"\(principal=", out))

    class Ops:
        def create_topic(self, topic):
            run_tool(TOPICS, *as_(None), "--create", "--topic", topic, "--partitions", "1",
                     "--replication-factor", "1")

        def grant(self, who, topic, group):
            for args in acl_args(who, topic, group):
                run_tool(ACLS, *as_(None), "--add", *args)
            n = list_acls(who, topic, group)
            check(n == 4, f"kafka-acls --list shows {n} ACLs for {who}, want 4")

        def revoke(self, who, topic, group):
            before = list_acls(who, topic, group)
            for args in acl_args(who, topic, group):
                run_tool(ACLS, *as_(None), "--remove", "--force", *args)
            after = list_acls(who, topic, group)
            check(after == 0, f"kafka-acls --list still shows {after} ACLs")
            return before - after

        def produce(self, method, topic, values):
            run_tool(PRODUCER, *as_(method), "--topic", topic,
                     "--command-property", "max.block.ms=10000", "--command-property", "delivery.timeout.ms=15000",
                     "--command-property", "request.timeout.ms=10000",
                     stdin="".join(v + "\n" for v in values))

        def consume(self, method, topic, group, n):
            out = run_tool(CONSUMER, *as_(method), "--topic", topic, "--group", group, "--from-beginning",
                           "--max-messages", str(n), "--timeout-ms", "20000")
            got = out.splitlines()
            check(len(got) == n, f"console consumer read {got}")
            # The console consumer commits on exit; kafka-consumer-groups shows it.
            desc = run_tool(GROUPS, *as_(None), "--describe", "--group", group)
            check(re.search(rf"{re.escape(group)}\s+{re.escape(topic)}\s+0\s+{n}\s", desc),
                  f"kafka-consumer-groups --describe: {desc!r}")
            return got

        def topics(self, method):
            return set(run_tool(TOPICS, *as_(method), "--list").split())

        def bad_password(self):
            bad = props("bad", "plain", "alice", "wrong-password")
            try:
                out = run_tool(TOPICS, "--bootstrap-server", BOOTSTRAP, "--command-config", bad, "--list")
            except ToolError as e:
                check("SaslAuthenticationException" in str(e) or "Authentication failed" in str(e), f"error {e}")
                return str(e)[:300]
            raise Failed(f"kafka-topics --list with a wrong password succeeded: {out!r}")

        def scram_user(self):
            # carol, SCRAM-SHA-512, made by the admin with kafka-configs (AlterUserScramCredentials).
            run_tool(CONFIGS, *as_(None), "--alter", "--entity-type", "users", "--entity-name", "carol",
                     "--add-config", "SCRAM-SHA-512=[iterations=4096,password=carol-secret]")
            out = run_tool(CONFIGS, *as_(None), "--describe", "--entity-type", "users", "--entity-name", "carol")
            check("SCRAM-SHA-512" in out, f"kafka-configs --describe: {out!r}")
            return f"kafka-configs --alter --entity-type users --entity-name carol; --describe: {out.strip()[:200]}"

    secure.run(Ops(), "cli", RUN)


if __name__ == "__main__":
    if os.environ.get("COMPAT_SECURE"):
        secure_main()
    else:
        main()
