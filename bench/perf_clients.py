"""The librdkafka and franz-go cells of bench.py: two small drivers, built here once.

- bench/perf/rdkafka_perf.c: librdkafka (the C client behind kcat, confluent-kafka and
  most non-JVM clients), compiled with the system's librdkafka-dev;
- bench/perf/franz: franz-go (a pure-Go client), built with its module cache in
  bench/.cache/go.

Both keep their client's defaults, send null-key records of the cell's size, and print
one JSON line (records, seconds, records_per_sec, errors); see their sources.
"""

import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, ".cache")
CLIENTS = ("librdkafka", "franz-go")


class ClientError(Exception):
    pass


def _build_rdkafka(out):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise ClientError("no C compiler (apt-get install gcc)")
    if not os.path.exists("/usr/include/librdkafka/rdkafka.h"):
        raise ClientError("librdkafka-dev is not installed (scripts/setup-test-deps.sh)")
    subprocess.run([cc, "-O2", "-Wall", "-o", out, os.path.join(HERE, "perf", "rdkafka_perf.c"),
                    "-lrdkafka"], check=True, capture_output=True, text=True, timeout=300)


def _build_franz(out):
    go = shutil.which("go")
    if not go:
        raise ClientError("no Go toolchain")
    env = dict(os.environ, GOMODCACHE=os.path.join(CACHE, "go", "mod"),
               GOCACHE=os.path.join(CACHE, "go", "build"), GOTOOLCHAIN="local",
               GOFLAGS="-mod=readonly -modcacherw -buildvcs=false")
    subprocess.run([go, "build", "-o", out, "."], cwd=os.path.join(HERE, "perf", "franz"),
                   env=env, check=True, capture_output=True, text=True, timeout=900)


def build(log):
    """Builds both drivers into bench/.cache/bin; returns {client: path or error text}."""
    bindir = os.path.join(CACHE, "bin")
    os.makedirs(bindir, exist_ok=True)
    built = {}
    for client, name, fn in (("librdkafka", "rdkafka_perf", _build_rdkafka),
                             ("franz-go", "franz-perf", _build_franz)):
        path = os.path.join(bindir, name)
        try:
            fn(path)
            built[client] = path
            log(f"{client}: driver built ({path})")
        except subprocess.CalledProcessError as e:
            built[client] = f"build failed: {(e.stderr or '')[-400:]}"
            log(f"{client}: driver build failed: {e.stderr[-400:] if e.stderr else e}")
        except (ClientError, OSError, subprocess.TimeoutExpired) as e:
            built[client] = f"build failed: {e}"
            log(f"{client}: driver build failed: {e}")
    return built


def _run(cfg, client, args):
    exe = cfg["perf_clients"].get(client, "not built")
    if not os.path.isabs(exe):
        raise ClientError(f"{client}: {exe}")
    try:
        r = subprocess.run([exe, *args], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired as e:
        raise ClientError(f"{client} did not finish in 180 s") from e
    if r.returncode != 0:
        raise ClientError(f"{client} exited {r.returncode}: {r.stderr.strip()[-300:]}")
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        raise ClientError(f"{client}: not JSON: {r.stdout[-300:]!r}") from e


def produce(cfg, broker, client, topic, records, size, acks):
    r = _run(cfg, client, ["produce", "-b", broker.bootstrap, "-t", topic, "-n", str(records),
                           "-s", str(size), "-a", "all" if acks == "all" else "1"])
    if r["records"] != records or r.get("errors"):
        raise ClientError(f"{client} produced {r['records']} of {records} "
                          f"({r.get('errors')} errors)")
    r["mb_per_sec"] = r["records_per_sec"] * size / 1e6
    return r


def consume(cfg, broker, client, topic, records, size):
    r = _run(cfg, client, ["consume", "-b", broker.bootstrap, "-t", topic, "-n", str(records)])
    if r["records"] < records:
        raise ClientError(f"{client} consumed {r['records']} of {records}")
    r["mb_per_sec"] = r["records_per_sec"] * size / 1e6
    return r
