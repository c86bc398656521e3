"""Disk full: produce gets KAFKA_STORAGE_ERROR, nothing already written is damaged,
and the broker accepts writes again once space returns.

The data directory lives on a small tmpfs mounted for the test (needs root, as CI
has); a filler file takes part of it and is deleted to "return" space."""

import os
import pathlib
import subprocess

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import Broker, run_brook_cli

TMPFS_BYTES = 12 * 1024 * 1024
FILLER_BYTES = 4 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_BYTES}", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the disk-full test (needs root): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def produce(bootstrap: str, count: int, value: bytes) -> tuple[list[int], dict[str, int]]:
    acked: list[int] = []
    errors: dict[str, int] = {}

    def on_delivery(err, msg):
        if err is None:
            acked.append(msg.offset())
        else:
            errors[err.name()] = errors.get(err.name(), 0) + 1

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "enable.idempotence": False, "retries": 0, "message.timeout.ms": 20000})
    for i in range(count):
        while True:
            try:
                p.produce("full", value=value, on_delivery=on_delivery)
                break
            except BufferError:
                # librdkafka's local queue (100,000 records) is full: wait for acks.
                p.poll(0.05)
        if i % 1000 == 0:
            p.poll(0)
    assert p.flush(60) == 0
    return acked, errors


def test_disk_full_then_space_returns(brook_bin, small_disk):
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * FILLER_BYTES)
    broker = Broker(brook_bin, small_disk / "broker", {"log.segment.bytes": "1048576"})
    try:
        broker.start()
        acked, errors = produce(broker.bootstrap, 120_000, b"x" * 100)
        assert errors.get("KAFKA_STORAGE_ERROR", 0) > 0, f"the disk never filled: {errors}"
        assert set(errors) == {"KAFKA_STORAGE_ERROR"}, errors
        assert len(acked) > 1000 and sorted(acked) == list(range(len(acked)))
        broker.assert_alive()

        filler.unlink()
        more, errors = produce(broker.bootstrap, 1000, b"y" * 100)
        assert errors == {} and len(more) == 1000
        assert sorted(more) == list(range(len(acked), len(acked) + 1000)), "offsets continue after the full disk"

        out = run_brook_cli(brook_bin, broker.bootstrap, "consume", "full", "--from-beginning",
                            "--max-messages", str(len(acked) + 1000), "--timeout-ms", "10000")
        lines = out.stdout.splitlines()
        assert len(lines) == len(acked) + 1000
        assert all(v == "x" * 100 for v in lines[:len(acked)])
        assert all(v == "y" * 100 for v in lines[len(acked):])
    finally:
        broker.stop()
    check = subprocess.run([brook_bin, "check-log", str(broker.data_dir)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
