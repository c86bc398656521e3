"""Fixtures that run a real `brook` broker process for the client tests.

`brook` (function scope) starts a fresh broker for each test on a free 127.0.0.1 port
with a temporary data dir. Extra broker settings (Kafka config names) come from the
`brook_config` marker, at test, class or module level (the closest wins):

    @pytest.mark.brook_config({"num.partitions": 3})
    def test_x(brook): ...

    @pytest.mark.brook_config(log_flush_interval_messages=1)   # '_' -> '.'
    def test_y(brook): ...

`brook_factory(settings=None, **kw)` starts as many brokers as a test wants, and
`brook_module` is one broker shared by every test of a module.

The broker's stdout and stderr go to `<tmp>/broker.log`; its tail is attached to the
report of any failed test. The binary is `$BROOK_BIN` (default: target/debug/brook).
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import time
import warnings

import pytest

from procs import LIVE, marker_settings, normalize_settings, pick_port

REPO = pathlib.Path(__file__).resolve().parents[2]

# Per-test wall-clock limit (seconds) unless a test says otherwise with
# @pytest.mark.deadline(N).
DEFAULT_DEADLINE_S = 120
READY_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0

def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "brook_config(settings=None, **kw): extra `--set NAME=VALUE` broker settings "
        "for the `brook` / `brook_module` fixtures (kw names: '_' becomes '.')",
    )
    config.addinivalue_line(
        "markers", "deadline(seconds): wall-clock limit for one test (default 120)"
    )


def find_brook_bin() -> str:
    env = os.environ.get("BROOK_BIN")
    if env:
        if not os.access(env, os.X_OK):
            raise RuntimeError(f"BROOK_BIN={env} is not an executable file")
        return env
    for profile in ("debug", "release"):
        cand = REPO / "target" / profile / "brook"
        if os.access(cand, os.X_OK):
            return str(cand)
    raise RuntimeError(
        "no brook binary: set BROOK_BIN or run `cargo build --bin brook` "
        "(scripts/test.sh does both)"
    )


class BrokerError(RuntimeError):
    pass


class Broker:
    """One `brook serve` process. The port is fixed at the first start() and kept
    across restart()s so clients that are still alive can reconnect."""

    def __init__(self, bin_path: str, base_dir: pathlib.Path, settings: dict[str, str],
                 name: str = "brook"):
        self.bin = bin_path
        self.name = name
        self.base_dir = pathlib.Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "broker.log"
        # The admin listener on a free port (`brook serve` defaults to 9644, which
        # brokers started in parallel would fight over); see `admin_url`.
        self.settings = {"admin.listeners": "http://127.0.0.1:0", **settings}
        # Further `brook serve` arguments (e.g. `--add-scram ...`).
        self.extra_args: list[str] = []
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.unexpected_exits: list[str] = []
        self.notes: list[str] = []
        self._log_offset = 0

    # -- addresses -------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise BrokerError("broker was never started")
        return f"127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The admin HTTP listener's base URL, as the running broker logged it."""
        found = re.findall(r"admin listening on (https?://\S+)", self._log_since_spawn())
        if not found:
            raise BrokerError("the broker logged no admin listener")
        return found[-1]

    def command(self) -> list[str]:
        cmd = [self.bin, "serve", "--listen", f"127.0.0.1:{self.port}",
               "--data-dir", str(self.data_dir)]
        for k, v in self.settings.items():
            cmd += ["--set", f"{k}={v}"]
        return cmd + self.extra_args

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- lifecycle ---------------------------------------------------------------
    def start(self, timeout: float = READY_TIMEOUT_S) -> "Broker":
        if self.running:
            raise BrokerError("broker is already running")
        self._check_exit()
        fixed_port = self.port is not None
        attempts = 0
        while True:
            attempts += 1
            if not fixed_port:
                self.port = pick_port()
            self._spawn()
            ok, why = self._wait_ready(timeout)
            if ok:
                self.starts += 1
                return self
            self._reap()
            tail = self._log_since_spawn()
            if "in use" in tail and attempts < 10:
                # Lost a race for the port (or, on restart, the old socket is not
                # gone yet): another port, or the same one a little later.
                time.sleep(0.5 if fixed_port else 0.05)
                continue
            raise BrokerError(
                f"brook did not start on {self.bootstrap}: {why}\n"
                f"command: {' '.join(self.command())}\n--- log ---\n{tail[-8000:]}"
            )

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("BROOK_") or k in ("BROOK_LOG",)}
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            header = (f"\n===== start #{self.starts + 1} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(self.command())}\n")
            log.write(header.encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=env, cwd=self.base_dir, start_new_session=True,
            )
        LIVE.add(self)

    def _wait_ready(self, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, f"exited with code {self.proc.returncode}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            # Connected; make sure it is our process that is listening.
            time.sleep(0.02)
            if self.proc.poll() is not None:
                return False, f"exited with code {self.proc.returncode}"
            return True, ""
        return False, f"port {self.port} not accepting connections after {timeout}s"

    def _reap(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
        LIVE.discard(self)

    def _check_exit(self) -> None:
        """Records an exit we did not ask for (a crash or panic)."""
        if self.proc is not None and self.proc.poll() is not None and self in LIVE:
            self.unexpected_exits.append(
                f"{self.name} exited by itself with code {self.proc.returncode} "
                f"(start #{self.starts})")
            LIVE.discard(self)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` seconds. Returns the exit code."""
        self._check_exit()
        if not self.running:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.notes.append(f"{self.name} ignored SIGTERM for {timeout}s; sent SIGKILL")
            self.proc.kill()
            code = self.proc.wait(STOP_TIMEOUT_S)
        LIVE.discard(self)
        return code

    def kill9(self) -> None:
        """Crash the broker: SIGKILL, no chance to flush or clean up."""
        self._check_exit()
        if self.running:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)
        LIVE.discard(self)

    def restart(self, timeout: float = READY_TIMEOUT_S) -> "Broker":
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        self._check_exit()
        self.stop()

    def assert_alive(self) -> None:
        self._check_exit()
        if self.unexpected_exits:
            raise AssertionError("; ".join(self.unexpected_exits))
        assert self.running, f"{self.name} is not running"

    # -- logs ------------------------------------------------------------------------
    def _log_since_spawn(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, max_bytes: int = 64 * 1024) -> str:
        try:
            size = self.log_path.stat().st_size
            with open(self.log_path, "rb") as f:
                f.seek(max(0, size - max_bytes))
                text = f.read().decode("utf-8", "replace")
            return ("[...]\n" if size > max_bytes else "") + text
        except OSError as e:
            return f"(no log: {e})"

    # -- the brook CLI client -------------------------------------------------------------
    def cli(self, *args, input: str | bytes | None = None, timeout: float = 60,
            check: bool = True) -> subprocess.CompletedProcess:
        """Runs `$BROOK_BIN <args...> --bootstrap-server 127.0.0.1:PORT`."""
        return run_brook_cli(self.bin, self.bootstrap, *args, input=input,
                             timeout=timeout, check=check)

    def segment_files(self, topic: str, partition: int = 0) -> list[pathlib.Path]:
        return sorted((self.data_dir / f"{topic}-{partition}").glob("*.log"))

    def __repr__(self) -> str:
        return f"<Broker {self.name} port={self.port} running={self.running}>"


def run_brook_cli(bin_path: str, bootstrap: str, *args, input=None, timeout: float = 60,
                  check: bool = True) -> subprocess.CompletedProcess:
    cmd = [bin_path, *map(str, args), "--bootstrap-server", bootstrap]
    text = not isinstance(input, bytes)
    try:
        res = subprocess.run(cmd, input=input, capture_output=True, text=text,
                             timeout=timeout, stdin=None if input is not None
                             else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish in {timeout}s; "
                             f"stdout={e.stdout!r} stderr={e.stderr!r}") from None
    if check and res.returncode != 0:
        raise AssertionError(f"`{' '.join(cmd)}` exited {res.returncode}\n"
                             f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


# ---------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def brook_bin() -> str:
    try:
        return find_brook_bin()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)


def _finish(brokers: list[Broker]) -> None:
    problems = []
    for b in brokers:
        b.close()
        problems += b.unexpected_exits
        for n in b.notes:
            warnings.warn(n)
    if problems:
        pytest.fail("broker crashed during the test: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def brook_factory(request, tmp_path, brook_bin):
    """brook_factory(settings=None, *, start=True, **kw) -> Broker."""
    made: list[Broker] = []
    request.node._brook_brokers = made

    def make(settings=None, /, *, start=True, **kw) -> Broker:
        b = Broker(brook_bin, tmp_path / f"brook{len(made)}",
                   normalize_settings(settings, **kw), name=f"brook{len(made)}")
        made.append(b)
        if start:
            b.start()
        return b

    yield make
    _finish(made)


@pytest.fixture
def brook(request, brook_factory) -> Broker:
    """A fresh broker for this test (settings from @pytest.mark.brook_config)."""
    return brook_factory(marker_settings(request.node))


@pytest.fixture(scope="module")
def brook_module(request, tmp_path_factory, brook_bin):
    """One broker shared by all tests of a module (settings from the module's
    `pytestmark = pytest.mark.brook_config(...)`)."""
    b = Broker(brook_bin, tmp_path_factory.mktemp("brook-module"),
               marker_settings(request.node), name="brook-module")
    request.node._brook_brokers = [b]
    b.start()
    yield b
    _finish([b])


@pytest.fixture(autouse=True)
def _deadline(request):
    """Bounded tests: SIGALRM raises in the test after its deadline."""
    m = request.node.get_closest_marker("deadline")
    secs = int(m.args[0]) if m else DEFAULT_DEADLINE_S

    def on_alarm(signum, frame):
        signal.alarm(30)  # if this gets swallowed, try again later
        raise TimeoutError(f"test exceeded its {secs}s deadline")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    brokers: list[Broker] = list(getattr(item, "_brook_brokers", []))
    node = item.parent
    while node is not None:
        brokers += [b for b in getattr(node, "_brook_brokers", []) if b not in brokers]
        node = node.parent
    for b in brokers:
        header = f"{b.name} log ({b.log_path}, {b.bootstrap if b.port else 'not started'})"
        rep.sections.append((header, b.log_tail()))


from cluster import cluster, cluster_factory  # noqa: E402,F401  multi-node fixtures (cluster.py)
