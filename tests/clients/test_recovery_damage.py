"""Damage on disk after a clean shutdown costs at most the damaged part (issue 14,
item 2): with a damaged batch-length field or a deleted middle segment, every record
outside the damage is still read by a real consumer at the offset it was acknowledged
with, the high watermark does not go backwards, and new records get offsets past every
old one (an acknowledged offset is never handed out twice).

Uses 16 KiB segments (the broker's static log.segment.bytes; see test_retention.py) and 4 KiB
producer batches, so 150 records of 1 KiB fill several segments of a few batches."""

import struct
import subprocess

import pytest
from confluent_kafka import TopicPartition

from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    consumer,
    create_topic,
    produce_all,
    producer,
    unique_topic,
    wait_until,
    watermarks,
)

N = 150
SEGMENT_BYTES = 16384
pytestmark = pytest.mark.brook_config({"log.segment.bytes": SEGMENT_BYTES})
BATCH_LENGTH_AT = 8  # v2 batch: baseOffset int64, then batchLength int32


def value_for(i: int) -> bytes:
    return f"rec-{i:05d}-".encode() + b"v" * 1014


def produce_acknowledged(brook, topic) -> dict[int, bytes]:
    """Produces N records with acks=all; returns {offset: value} as acknowledged."""
    create_topic(brook.bootstrap, topic, partitions=1)
    p = producer(brook.bootstrap, **{"acks": "all", "batch.size": 4096, "linger.ms": 2,
                                     "compression.type": "none"})
    deliveries = produce_all(p, topic, [{"value": value_for(i), "partition": 0}
                                        for i in range(N)])
    assert_all_delivered(deliveries)
    acked = {d.offset: value_for(d.index) for d in deliveries}
    assert sorted(acked) == list(range(N))
    return acked


def batches(path):
    """[(position, base_offset, next_offset)] of a segment file, from batch headers."""
    data = path.read_bytes()
    out, pos = [], 0
    while pos + 27 <= len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        last_delta, = struct.unpack_from(">i", data, pos + 23)
        out.append((pos, base, base + last_delta + 1))
        pos += 12 + length
    return out


def segment_layout(brook, topic):
    """[(path, base_offset, next_offset, batches)] per segment file, oldest first."""
    layout = []
    for path in brook.segment_files(topic, 0):
        bs = batches(path)
        base = int(path.stem)
        layout.append((path, base, bs[-1][2] if bs else base, bs))
    return layout


def read_back(brook, topic) -> dict[int, bytes]:
    got = consume_to_end(brook.bootstrap, topic, [0], timeout=60)[0]
    offsets = [r.offset for r in got]
    assert offsets == sorted(set(offsets)), "offsets out of order or repeated"
    return {r.offset: r.value for r in got}


def assert_kept(read: dict[int, bytes], acked: dict[int, bytes], lost: range):
    """Every acknowledged record outside `lost` is read, at its offset, unchanged;
    nothing is read inside `lost`."""
    missing = sorted(o for o in acked if o not in lost and o not in read)
    assert not missing, f"{len(missing)} intact acknowledged records lost, e.g. {missing[:5]}"
    wrong = [o for o in acked if o in read and read[o] != acked[o]]
    assert not wrong, f"offsets hold other values: {wrong[:5]}"
    assert not [o for o in read if o in lost and o < N], "read records from the damage"


def assert_new_offsets_past_old(brook, topic, high_before):
    d = produce_all(producer(brook.bootstrap, acks="all"), topic,
                    [{"value": f"after-{i}".encode(), "partition": 0} for i in range(5)])
    assert_all_delivered(d)
    new = [x.offset for x in d]
    assert min(new) >= high_before, f"offsets {new} reuse acknowledged offsets < {high_before}"
    read = read_back(brook, topic)
    assert [read[o] for o in new] == [f"after-{i}".encode() for i in range(5)]


def check_log(brook):
    return subprocess.run([brook.bin, "check-log", str(brook.data_dir)],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.deadline(120)
def test_damaged_batch_length_in_the_first_segment_costs_only_its_tail(brook):
    topic = unique_topic("dmg-len")
    acked = produce_acknowledged(brook, topic)
    layout = segment_layout(brook, topic)
    assert len(layout) >= 3, f"only {len(layout)} segments"
    first_path, _, first_end, first_batches = layout[0]
    assert len(first_batches) >= 2, first_batches
    assert layout[1][1] == first_end
    _, high_before = watermarks(brook.bootstrap, topic, 0)
    assert high_before == N
    assert brook.stop() == 0

    # The second batch of the first segment gets a corrupt length: that batch and the
    # rest of its segment are the damaged part.
    position, damaged_from, _ = first_batches[1]
    data = bytearray(first_path.read_bytes())
    for i in range(position + BATCH_LENGTH_AT, position + BATCH_LENGTH_AT + 4):
        data[i] ^= 0xFF
    first_path.write_bytes(bytes(data))

    brook.start()
    low, high = watermarks(brook.bootstrap, topic, 0)
    assert high >= high_before, f"high watermark went back from {high_before} to {high}"
    assert low == 0
    read = read_back(brook, topic)
    assert_kept(read, acked, range(damaged_from, first_end))
    assert [s.name for s in brook.segment_files(topic, 0)][:len(layout)] == \
        [p.name for p, *_ in layout], "a segment file is gone"
    log = brook.log_tail()
    assert "truncating log segment at its first invalid batch" in log, log[-3000:]
    assert first_path.name in log
    assert_new_offsets_past_old(brook, topic, high_before)

    brook.stop()
    check = check_log(brook)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.deadline(120)
def test_deleted_middle_segment_leaves_a_gap_readers_step_over(brook):
    topic = unique_topic("dmg-gap")
    acked = produce_acknowledged(brook, topic)
    layout = segment_layout(brook, topic)
    assert len(layout) >= 3, f"only {len(layout)} segments"
    middle = len(layout) // 2
    path, gone_from, gone_to, _ = layout[middle]
    _, high_before = watermarks(brook.bootstrap, topic, 0)
    assert brook.stop() == 0

    for suffix in (".log", ".index", ".timeindex"):
        path.with_suffix(suffix).unlink(missing_ok=True)

    brook.start()
    low, high = watermarks(brook.bootstrap, topic, 0)
    assert high >= high_before, f"high watermark went back from {high_before} to {high}"
    read = read_back(brook, topic)
    assert_kept(read, acked, range(gone_from, gone_to))
    later = [p.name for p, *_ in layout[middle + 1:]]
    assert set(later) <= {s.name for s in brook.segment_files(topic, 0)}, "later segments deleted"
    assert "no segment holds these offsets" in brook.log_tail()

    # A consumer positioned inside the gap continues at the next segment.
    c = consumer(brook.bootstrap)
    try:
        c.assign([TopicPartition(topic, 0, gone_from + 1)])
        first = wait_until(lambda: next(iter(c.consume(num_messages=1, timeout=0.5)), None),
                           20, what="a record after the gap")
        assert first.error() is None, first.error()
        assert first.offset() == gone_to, f"read {first.offset()}, expected {gone_to}"
        assert first.value() == acked[gone_to]
    finally:
        c.close()

    assert_new_offsets_past_old(brook, topic, high_before)
    brook.stop()
    check = check_log(brook)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.deadline(120)
def test_stray_segment_file_refuses_start_and_deletes_nothing(brook):
    topic = unique_topic("dmg-stray")
    acked = produce_acknowledged(brook, topic)
    layout = segment_layout(brook, topic)
    assert len(layout) >= 3, f"only {len(layout)} segments"
    assert brook.stop() == 0
    before = {p.name: p.read_bytes() for p, *_ in layout}

    # A copy of the last segment under a name inside the second one's offsets.
    _, base, end, _ = layout[1]
    stray = layout[0][0].with_name(f"{base + 1:020d}.log")
    assert base + 1 < end
    stray.write_bytes(layout[-1][0].read_bytes())

    with pytest.raises(Exception) as refused:
        brook.start()
    message = str(refused.value)
    assert stray.name in message and "does not fit" in message, message[-3000:]
    assert {p.name: p.read_bytes() for p, *_ in layout} == before, "a segment changed"
    assert stray.exists()

    stray.unlink()
    brook.start()
    assert watermarks(brook.bootstrap, topic, 0) == (0, N)
    assert_kept(read_back(brook, topic), acked, range(0))
