"""What the single-broker fixtures (conftest.py) and the cluster fixtures (cluster.py)
share: free loopback ports, Kafka-style settings, and killing every broker process a
test session started, whatever happens to the session."""

from __future__ import annotations

import atexit
import os
import pathlib
import random
import socket
import time

# Every broker/node process this session started and has not reaped (objects with a
# `.proc` Popen): killed at exit, so a failing or interrupted run leaves nothing behind.
LIVE: set = set()


def _kill_leftovers() -> None:
    for b in list(LIVE):
        try:
            b.proc.kill()
            b.proc.wait(5)
        except Exception:
            pass


atexit.register(_kill_leftovers)


def _local_port_range() -> tuple[int, int]:
    try:
        lo, hi = pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except Exception:
        return 32768, 60999


_TAKEN: set[int] = set()


def pick_port() -> int:
    """A port free now on 127.0.0.1, outside the ephemeral range when possible (so a
    broker restarted on it does not find it taken by a client socket), and not handed
    out before by this process."""
    lo, hi = _local_port_range()
    candidates = [p for p in range(20000, 32000) if not lo <= p <= hi]
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        port = rng.choice(candidates) if candidates else 0
        if port in _TAKEN:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            port = s.getsockname()[1]
        _TAKEN.add(port)
        return port
    raise RuntimeError("could not find a free port on 127.0.0.1")


def fmt(value) -> str:
    """A setting's value as Kafka writes it (booleans in lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalize_settings(settings=None, **kw) -> dict[str, str]:
    """{'min.insync.replicas': 2} and min_insync_replicas=2 both give
    {'min.insync.replicas': '2'} (Kafka config names never contain '_')."""
    out = {str(k): fmt(v) for k, v in dict(settings or {}).items()}
    out.update({k.replace("_", "."): fmt(v) for k, v in kw.items()})
    return out


def marker_settings(node) -> dict[str, str]:
    """The settings of a test's `brook_config` markers, the closest one winning."""
    settings: dict[str, str] = {}
    for m in reversed(list(node.iter_markers("brook_config"))):
        settings.update(normalize_settings(*m.args, **m.kwargs))
    return settings
