"""What every Python compat driver (py_compat.py, secure.py, kcat/kcat_compat.py,
cli/cli_compat.py) reports with: one `RESULT {"scenario", "status", "detail"}` line per
scenario on stdout, which run.sh and report.py read."""

from __future__ import annotations

import json
import os
import subprocess
import time
import traceback


def report(scenario: str, status: str, detail) -> None:
    print("RESULT " + json.dumps({"scenario": scenario, "status": status,
                                  "detail": str(detail)[:2000]}), flush=True)


class Failed(Exception):
    pass


def check(cond, msg: str) -> None:
    if not cond:
        raise Failed(msg)


def scenario(name: str, fn) -> None:
    """Runs `fn` and reports it: pass with what it returned and how long it took, or
    fail with the error (a command's time-out named as such)."""
    started = time.monotonic()
    try:
        detail = fn()
        report(name, "pass", f"{detail} ({(time.monotonic() - started) * 1000:.0f} ms)")
    except subprocess.TimeoutExpired as e:
        cmd = e.cmd if isinstance(e.cmd, str) else " ".join(map(str, e.cmd[-8:]))
        report(name, "fail", f"timed out after {e.timeout} s: {cmd}")
    except Exception as e:  # noqa: BLE001 - a failed scenario is a result, not a crash
        tb = traceback.extract_tb(e.__traceback__)[-1]
        report(name, "fail",
                f"{type(e).__name__}: {e} (at {os.path.basename(tb.filename)}:{tb.lineno})")
