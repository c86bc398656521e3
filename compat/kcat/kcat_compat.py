#!/usr/bin/env python3
"""Brook compatibility scenarios driven by kcat (librdkafka), the Debian package that
scripts/setup-test-deps.sh installs.

    python3 kcat_compat.py 127.0.0.1:9092

kcat has no admin commands besides metadata listing (-L), no group describe and no way to
abort a transaction or commit offsets in one, so those cells are n/a; topics are
auto-created on first produce (num.partitions=1).
Prints one line per scenario: `RESULT {"scenario":..,"status":..,"detail":..}`.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from results import Failed, check, report, scenario  # noqa: E402

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"
RUN = "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


def kcat(*args, stdin=None, timeout=30):
    p = subprocess.run(["kcat", "-b", BOOTSTRAP, *args], input=stdin, capture_output=True, text=True, timeout=timeout)
    print(f"$ kcat {' '.join(args)} -> exit {p.returncode}", file=sys.stderr)
    for line in (p.stdout + p.stderr).splitlines()[:40]:
        print("    " + line, file=sys.stderr)
    if p.returncode != 0:
        raise Failed(f"kcat {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-1000:]}")
    return p.stdout


def produce(topic, lines, *extra):
    kcat("-P", "-t", topic, *extra, stdin="".join(l + "\n" for l in lines))


def read(topic, n, *extra):
    out = kcat("-C", "-t", topic, "-o", "beginning", "-e", "-c", str(n), "-f", "%o|%k|%s|%h\\n", *extra)
    return [line.split("|") for line in out.splitlines()]


def topic_name(s):
    return f"kcat-{s}-{RUN}"


def main():
    for s in ("admin.create", "admin.add_partitions", "admin.delete"):
        report(s, "n/a", "kcat has no admin commands")

    t = topic_name("admin")

    def admin_list():
        produce(t, ["x"])  # auto-created
        md = json.loads(kcat("-L", "-J"))
        names = [x["topic"] for x in md["topics"]]
        check(t in names, f"-L lacks {t}: {names}")
        check(md["brokers"][0]["name"].startswith("127.0.0.1:"), f"brokers {md['brokers']}")
        return f"kcat -L -J lists {len(names)} topics and broker {md['brokers'][0]['name']}"

    def admin_describe():
        md = json.loads(kcat("-L", "-J", "-t", t))
        parts = md["topics"][0]["partitions"]
        check(len(parts) == 1 and parts[0]["leader"] == 1, f"partitions {parts}")
        return "kcat -L -t: 1 partition (auto-created), leader 1"

    scenario("admin.list", admin_list)
    scenario("admin.describe", admin_describe)

    def keys_headers():
        topic = topic_name("keys")
        produce(topic, [f"key-{i}:value-{i}" for i in range(30)], "-K:", "-H", "h-const=brook", "-H", "h-run=" + RUN)
        got = read(topic, 30)
        check(len(got) == 30, f"read {len(got)}")
        for i, (off, k, v, h) in enumerate(got):
            check(off == str(i) and k == f"key-{i}" and v == f"value-{i}", f"record {i}: {off} {k} {v}")
            check(h == f"h-const=brook,h-run={RUN}", f"headers {h!r}")
        return "-K: -H h-const=brook -H h-run=..: 30 keyed records with headers read back"

    scenario("produce.keys_headers", keys_headers)

    for codec in ("gzip", "snappy", "lz4", "zstd"):
        def codec_round_trip(codec=codec):
            topic = topic_name(codec)
            vals = [f"{codec} record {i} " * 20 for i in range(50)]
            produce(topic, vals, "-z", codec, "-X", "linger.ms=100")
            got = read(topic, 50)
            check([v for _, _, v, _ in got] == [v for v in vals], f"read back {len(got)}")
            return f"-z {codec}: 50 records read back intact"
        scenario(f"produce.{codec}", codec_round_trip)

    def idempotent():
        topic = topic_name("idem")
        produce(topic, [f"idem-{i}" for i in range(200)], "-X", "enable.idempotence=true", "-X", "acks=all")
        got = read(topic, 200)
        check([(o, v) for o, _, v, _ in got] == [(str(i), f"idem-{i}") for i in range(200)], "order")
        return "-X enable.idempotence=true: 200 records exactly once, in order"

    scenario("produce.idempotent", idempotent)

    ctopic = topic_name("consume")

    def earliest():
        produce(ctopic, [f"old-{i}" for i in range(10)])
        got = read(ctopic, 10)
        check([o for o, *_ in got] == [str(i) for i in range(10)], f"offsets {got}")
        return "-o beginning: offsets 0..9"

    def latest():
        cons = subprocess.Popen(["kcat", "-b", BOOTSTRAP, "-C", "-t", ctopic, "-o", "end", "-c", "1",
                                 "-f", "%o|%s\\n"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = []
        reader = threading.Thread(target=lambda: out.extend(cons.stdout), daemon=True)
        reader.start()
        try:
            deadline = time.monotonic() + 30
            i = 0
            while not out and cons.poll() is None and time.monotonic() < deadline:
                produce(ctopic, [f"new-{i}"])
                i += 1
                time.sleep(0.3)
            cons.wait(10)
            reader.join(5)
        finally:
            if cons.poll() is None:
                cons.kill()
                cons.wait()
        check(out, f"nothing read: {cons.stderr.read()[-500:]}")
        off, val = out[0].strip().split("|")
        check(int(off) >= 10 and val.startswith("new-"), f"first {out[0]!r}")
        return f"-o end: first record offset {off} ({val}), none of the 10 old ones"

    def by_timestamp():
        topic = topic_name("ts")
        produce(topic, [f"ts-{i}" for i in range(6)])
        time.sleep(0.05)
        t1 = int(time.time() * 1000)
        time.sleep(0.05)
        produce(topic, [f"ts-{i}" for i in range(6, 10)])
        out = kcat("-C", "-t", topic, "-o", f"s@{t1}", "-e", "-f", "%o|%s|%T\\n")
        got = [line.split("|") for line in out.splitlines()]
        check([(o, v) for o, v, _ in got] == [(str(i), f"ts-{i}") for i in range(6, 10)], f"got {got}")
        check(all(int(ts) >= t1 for _, _, ts in got), f"timestamps {got}")
        return f"-o s@{t1}: read ts-6..ts-9"

    scenario("consume.earliest", earliest)
    scenario("consume.latest", latest)
    scenario("consume.timestamp", by_timestamp)

    def commit_resume():
        topic, group = topic_name("group"), f"kcat-group-{RUN}"
        produce(topic, [f"g-{i}" for i in range(10)])
        opts = ["-G", group, topic, "-X", "auto.offset.reset=earliest", "-f", "%o|%s\\n"]
        out = kcat(*opts[:3], "-c", "6", *opts[3:])
        check(out.splitlines() == [f"{i}|g-{i}" for i in range(6)], f"first consumer {out!r}")
        out = kcat(*opts[:3], "-c", "4", *opts[3:])
        check(out.splitlines() == [f"{i}|g-{i}" for i in range(6, 10)], f"resumed consumer {out!r}")
        return "-G group -c 6 committed on exit; a new -G member resumed at offset 6"

    scenario("group.commit_resume", commit_resume)
    report("group.describe_lag", "n/a", "kcat has no consumer group describe")
    # `-P -X transactional.id=..` puts all of stdin in one transaction, committed at EOF; the
    # only abort is a signal, and kcat 1.7.1 does not produce piped lines before EOF (nor on a
    # signal: it exits), so no aborted transaction with records on the broker can be made.
    report("txn.commit_abort", "n/a", "kcat -P -X transactional.id commits all of stdin as one transaction at EOF; "
           "its only abort is a signal, before which kcat 1.7.1 has not produced the piped lines")
    report("txn.offsets", "n/a", "kcat has no consume-transform-produce (no offsets in a transaction)")


# --------------------------------------------------------------------------------------
# the secured run (compat/run.sh --secure): scenarios in compat/python/secure.py. kcat has
# no admin commands: the admin's topic and ACLs are made with the brook binary's
# `brook topic create` and `brook acl add|remove|list`, logged in with kcat's -X settings.
# --------------------------------------------------------------------------------------
def secure_main():
    import os
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import secure

    brook = os.environ.get("BROOK_BIN", "brook")

    def settings(method, user=None, password=None):
        x = {"ssl.ca.location": secure.cert("ca.pem")}
        if method == "mtls":
            return secure.SSL_BOOTSTRAP, {**x, "security.protocol": "SSL",
                                          "ssl.certificate.location": secure.cert("client.crt"),
                                          "ssl.key.location": secure.cert("client.key")}
        mech, u = secure.METHODS[method]
        user = user or u
        return BOOTSTRAP, {**x, "security.protocol": "SASL_SSL", "sasl.mechanism": mech,
                           "sasl.username": user, "sasl.password": password or secure.USERS[user]}

    def xs(conf):
        return [a for k, v in conf.items() for a in ("-X", f"{k}={v}")]

    def run(cmd, stdin=None, timeout=30):
        p = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout)
        shown = [a if "password=" not in a else a.split("=", 1)[0] + "=***" for a in cmd]
        print(f"$ {' '.join(shown)} -> exit {p.returncode}", file=sys.stderr)
        for line in (p.stdout + p.stderr).splitlines()[:40]:
            print("    " + line, file=sys.stderr)
        return p

    def kcat_as(method, *args, stdin=None, user=None, password=None, timeout=30):
        """kcat as the method's principal; raises with kcat's errors if it failed or printed
        an error (a consumer that only logs an error and goes on is stopped at the first)."""
        server, conf = settings(method, user, password)
        cmd = ["kcat", "-b", server, *xs(conf), *args]
        p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        out, err, errors = [], [], []

        def read_stderr():
            for line in p.stderr:
                err.append(line)
                if "ERROR" in line or "FAIL" in line:
                    errors.append(line.strip())
                    p.kill()

        t = threading.Thread(target=read_stderr, daemon=True)
        t.start()
        if stdin is not None:
            p.stdin.write(stdin)
        p.stdin.close()
        timer = threading.Timer(timeout, p.kill)
        timer.start()
        out = p.stdout.read()
        p.wait()
        timer.cancel()
        t.join(5)
        shown = [a if "password=" not in a else a.split("=", 1)[0] + "=***" for a in cmd]
        print(f"$ {' '.join(shown)} -> exit {p.returncode}", file=sys.stderr)
        for line in (out + "".join(err)).splitlines()[:40]:
            print("    " + line, file=sys.stderr)
        if p.returncode != 0 or errors:
            raise RuntimeError(f"kcat exited {p.returncode}: {' / '.join(errors)[:500] or ''.join(err)[-500:]}")
        return out

    def brook_admin(*args):
        _, conf = settings("scram512", "admin")
        p = run([brook, *args, "-b", BOOTSTRAP, *xs(conf)])
        if p.returncode != 0:
            raise Failed(f"brook {' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-500:]}")
        return p.stdout

    def acl_specs(who, topic, group):
        return [("--topic", topic, op) for op in ("write", "describe", "read")] + [("--group", group, "read")]

    def count_acls(who):
        out = brook_admin("acl", "list", "--principal", who)
        return sum(1 for line in out.splitlines() if who in line)

    class Ops:
        no_scram_api = "kcat has no admin API (no AlterUserScramCredentials)"

        def create_topic(self, topic):
            brook_admin("topic", "create", topic, "-p", "1", "--replication-factor", "1")

        def grant(self, who, topic, group):
            for kind, name, op in acl_specs(who, topic, group):
                brook_admin("acl", "add", kind, name, "--principal", who, "--operation", op)
            n = count_acls(who)
            check(n == 4, f"brook acl list shows {n} ACLs for {who}, want 4")

        def revoke(self, who, topic, group):
            before = count_acls(who)
            for kind, name, op in acl_specs(who, topic, group):
                brook_admin("acl", "remove", kind, name, "--principal", who, "--operation", op)
            after = count_acls(who)
            check(after == 0, f"brook acl list still shows {after} ACLs for {who}")
            return before - after

        def produce(self, method, topic, values):
            kcat_as(method, "-P", "-t", topic, "-X", "message.timeout.ms=10000",
                    stdin="".join(v + "\n" for v in values))

        def consume(self, method, topic, group, n):
            # -G: a balanced group member; offsets are committed (auto commit) and at exit.
            out = kcat_as(method, "-G", group, topic, "-c", str(n), "-X", "auto.offset.reset=earliest",
                          "-f", "%s\n")
            return out.splitlines()

        def topics(self, method):
            md = json.loads(kcat_as(method, "-L", "-J"))
            return {t["topic"] for t in md.get("topics", [])}

        def bad_password(self):
            try:
                kcat_as("plain", "-L", "-m", "10", user="alice", password="wrong-password")
            except RuntimeError as e:
                check("authentication" in str(e).lower(), f"error {e}")
                return str(e)[:300]
            raise Failed("kcat -L with a wrong password succeeded")

    secure.run(Ops(), "kcat", RUN)


if __name__ == "__main__":
    import os
    if os.environ.get("COMPAT_SECURE"):
        secure_main()
    else:
        main()
