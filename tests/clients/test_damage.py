"""Damage on disk costs at most the damaged part: a flipped byte in the metadata log
never leads the broker to delete a partition's data, and `brook check-log` reports it."""

import subprocess

import pytest

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    produce_all,
    producer,
    unique_topic,
)


def flip_byte_in_line(path, needle: bytes):
    """Flips one byte inside the JSON of the last line that contains `needle`."""
    data = bytearray(path.read_bytes())
    lines = data.split(b"\n")
    index = max(i for i, line in enumerate(lines) if needle in line)
    start = sum(len(line) + 1 for line in lines[:index])
    at = start + lines[index].index(needle) + 1
    data[at] ^= 0x01
    path.write_bytes(bytes(data))
    return index == len([l for l in lines if l]) - 1


@pytest.mark.deadline(90)
def test_damaged_metadata_record_moves_partition_aside_never_deletes(brook):
    topic = unique_topic("meta-damage")
    create_topic(brook.bootstrap, topic, partitions=1)
    p = producer(brook.bootstrap, acks="all")
    assert_all_delivered(produce_all(p, topic, [{"value": f"v{i}".encode()} for i in range(150)]))
    segments = brook.segment_files(topic, 0)
    assert segments
    sizes = {s.name: s.stat().st_size for s in segments}
    brook.stop()

    meta = brook.data_dir / "__metadata.log"
    flip_byte_in_line(meta, topic.encode())

    check = subprocess.run([brook.bin, "check-log", str(brook.data_dir)],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode != 0, check.stdout
    assert "__metadata.log" in check.stdout and "checksum" in check.stdout, check.stdout

    # The broker either starts without the record (the partition's directory moved
    # aside) or refuses to start; it never deletes the data.
    try:
        brook.start()
        started = True
    except Exception:
        started = False
    kept = [d for d in brook.data_dir.iterdir() if d.name.startswith(f"{topic}-0")]
    assert kept, f"the directory of {topic}-0 is gone: {sorted(d.name for d in brook.data_dir.iterdir())}"
    found = {s.name: s.stat().st_size for d in kept for s in d.glob("*.log")}
    for name, size in sizes.items():
        assert found.get(name, 0) >= size, f"segment {name} lost data: {found}"
    if started:
        assert any(d.name.endswith("-stray") for d in kept), [d.name for d in kept]
        assert "moved its directory aside" in brook.log_tail()
        # The broker still serves: the topic can be created again and used.
        create_topic(brook.bootstrap, topic, partitions=1)
        assert_all_delivered(produce_all(producer(brook.bootstrap), topic, [{"value": b"again"}]))
        got = consume_to_end(brook.bootstrap, topic, [0])
        assert [r.value for r in got[0]] == [b"again"]


@pytest.mark.deadline(60)
def test_a_second_broker_on_the_same_data_directory_refuses_to_start(brook):
    second = subprocess.run(
        [brook.bin, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(brook.data_dir),
         "--set", "admin.listeners="],
        capture_output=True, text=True, timeout=30)
    assert second.returncode != 0
    assert "in use by another broker" in second.stderr, second.stderr
    check = subprocess.run([brook.bin, "check-log", str(brook.data_dir)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode != 0
    assert "running broker" in check.stderr, check.stderr
    brook.assert_alive()
    # Once the broker is gone (even by kill -9) the directory is free again.
    brook.kill9()
    check = subprocess.run([brook.bin, "check-log", str(brook.data_dir)],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    brook.start()
