"""Fixtures for the console's browser tests: the client suite's broker fixtures
(tests/clients/conftest.py: `brook`, `brook_module`, deadlines, broker logs on failure)
plus a headless chromium driven over the DevTools protocol (`cdp.py`).

Screenshots of every page a test visits are kept under $BROOK_SCREENSHOTS (default:
tests/browser/screenshots/, ignored by git) as test artifacts.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
CLIENTS = HERE.parent / "clients"
sys.path.insert(0, str(CLIENTS))
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("brook_client_conftest", CLIENTS / "conftest.py")
_clients = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_clients)

# The client suite's fixtures and hooks, as this directory's own.
pytest_configure = _clients.pytest_configure
pytest_runtest_makereport = _clients.pytest_runtest_makereport
brook_bin = _clients.brook_bin
brook_factory = _clients.brook_factory
brook = _clients.brook
brook_module = _clients.brook_module
_deadline = _clients._deadline

from cdp import Browser, find_chromium  # noqa: E402


@pytest.fixture(scope="session")
def browser():
    if find_chromium() is None:
        pytest.skip("no chromium (scripts/setup-test-deps.sh --browser installs it)")
    b = Browser()
    yield b
    b.close()


@pytest.fixture(scope="session")
def screenshots() -> pathlib.Path:
    out = pathlib.Path(os.environ.get("BROOK_SCREENSHOTS", HERE / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out
