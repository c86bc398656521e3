"""Malformed and hostile input on raw sockets. All tests share one broker (in file
order); the last one checks that it still serves real clients afterwards."""

import os
import random
import socket
import struct

import pytest

import kafka_wire as w
from kafka_helpers import (
    assert_all_delivered,
    consume_to_end,
    create_topic,
    kcat,
    produce_all,
    producer,
    unique_topic,
    watermarks,
)

UNSUPPORTED_VERSION = 35
CORRUPT_MESSAGE = 2


@pytest.fixture
def broker(brook_module):
    brook_module.assert_alive()
    yield brook_module
    brook_module.assert_alive()


def send_then_expect_close(broker, data: bytes, timeout: float = 5.0) -> bytes:
    s = w.connect(broker.port)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return b""  # closed while we were still sending: fine
        return w.wait_closed(s, timeout)
    finally:
        s.close()


def test_crc32c_helper():
    assert w.crc32c(b"") == 0
    assert w.crc32c(b"123456789") == 0xE3069283
    assert w.crc32c(b"\x00" * 32) == 0x8A9136AA  # RFC 3720 B.4 test vector


@pytest.mark.parametrize("size", [100 * 1024 * 1024 + 1, 0x7FFFFFFF])
def test_oversized_frame_closes_connection(broker, size):
    # Only the size prefix and a few bytes: the broker must not wait for (or
    # allocate) the rest.
    got = send_then_expect_close(broker, struct.pack(">i", size) + b"\x00\x12\x00\x00")
    assert got == b""


@pytest.mark.parametrize("name,data", [
    ("http", b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("tls-client-hello", bytes.fromhex("16030100a5010000a10303") + bytes(range(64))),
    ("negative-size", struct.pack(">i", -5) + b"xxxxx"),
    ("zero-size", struct.pack(">i", 0)),
    ("truncated-header", w.frame(b"\x00\x12\x00")),
    # A known API (Metadata v12) whose header claims a 32767-byte client id in a
    # 64-byte frame, followed by random bytes.
    ("garbage-body", w.frame(w.i16(3) + w.i16(12) + w.i32(7) + w.i16(0x7FFF)
                             + random.Random(1).randbytes(54))),
    ("random", w.frame(random.Random(2).randbytes(200))),
])
def test_garbage_closes_connection(broker, name, data):
    got = send_then_expect_close(broker, data)
    assert got == b"", f"{name}: expected no response, got {got[:64]!r}"


def test_random_streams_never_crash_the_broker(broker):
    rng = random.Random(1234)
    for _ in range(30):
        n = rng.randint(1, 300)
        # Keep the size prefix small so the broker is not left waiting for a body.
        body = rng.randbytes(n)
        data = w.frame(body) if rng.random() < 0.7 else body
        s = w.connect(broker.port)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            w.wait_closed(s, 5)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            s.close()
        broker.assert_alive()


@pytest.mark.parametrize("version", [0, 3])
def test_api_versions_supported(broker, version):
    s = w.connect(broker.port)
    try:
        s.sendall(w.api_versions_request(version, correlation_id=41))
        # The ApiVersions response header is always v0 (no tagged fields), KIP-511.
        body = w.read_response(s, 41, flexible_header=False)
        if version == 0:
            err, apis = w.parse_api_versions_v0(body)
        else:
            err, apis, throttle = w.parse_api_versions_v3(body)
            assert throttle >= 0
        assert err == 0
        for key in (0, 1, 2, 3, 18):  # Produce, Fetch, ListOffsets, Metadata, ApiVersions
            assert key in apis, f"api {key} not advertised"
            lo, hi = apis[key]
            assert 0 <= lo <= hi
        assert apis[18][1] >= 3
        # The connection stays usable.
        s.sendall(w.api_versions_request(0, correlation_id=42))
        assert w.parse_api_versions_v0(w.read_response(s, 42))[0] == 0
    finally:
        s.close()


def test_api_versions_unsupported_version_gets_v0_error_response(broker):
    s = w.connect(broker.port)
    try:
        s.sendall(w.api_versions_request(99, correlation_id=1234))
        body = w.read_response(s, 1234, flexible_header=False)
        # v0 body: error_code, [api_key, min, max]; nothing else (no throttle time).
        err, apis = w.parse_api_versions_v0(body)
        assert err == UNSUPPORTED_VERSION
        assert 18 in apis, "the error response must say which ApiVersions versions work"
        lo, hi = apis[18]
        assert lo == 0 and 3 <= hi < 99
        # The client can retry with a supported version on the same connection.
        s.sendall(w.api_versions_request(hi, correlation_id=1235))
        body = w.read_response(s, 1235)
        err = w.parse_api_versions_v3(body)[0] if hi >= 3 else w.parse_api_versions_v0(body)[0]
        assert err == 0
    finally:
        s.close()


def test_unknown_api_key_closes_connection(broker):
    data = w.frame(w.header_v1(9999, 0, 5) + b"\x00" * 8)
    assert send_then_expect_close(broker, data) == b""


def test_unsupported_version_of_other_api_closes_connection(broker):
    # Metadata v999 is not answerable (not even its header version is known).
    data = w.frame(w.header_v2(3, 999, 6) + b"\x00" * 8)
    assert send_then_expect_close(broker, data) == b""


@pytest.fixture(scope="module")
def raw_topic(brook_module):
    topic = unique_topic("raw")
    create_topic(brook_module.bootstrap, topic, partitions=1)
    return topic


@pytest.mark.parametrize("version", [3, 9])
def test_produce_with_bad_crc_gets_corrupt_message(broker, raw_topic, version):
    build, parse = {3: (w.produce_request_v3, w.parse_produce_v3),
                    9: (w.produce_request_v9, w.parse_produce_v9)}[version]
    flexible = version >= 9
    recs = [(b"k1", b"hello"), (None, b"world"), (b"k3", None)]
    _, start = watermarks(broker.bootstrap, raw_topic, 0)
    s = w.connect(broker.port)
    try:
        # A well-formed batch is accepted: our encoder is right.
        s.sendall(build(100, raw_topic, 0, w.record_batch(recs)))
        resp = parse(w.read_response(s, 100, flexible_header=flexible))
        assert resp == [(raw_topic, 0, 0, start)]

        # The same batch with a wrong CRC: CORRUPT_MESSAGE, nothing appended, and
        # the connection stays open.
        s.sendall(build(101, raw_topic, 0, w.record_batch(recs, corrupt_crc=True)))
        resp = parse(w.read_response(s, 101, flexible_header=flexible))
        assert len(resp) == 1
        name, idx, err, _ = resp[0]
        assert (name, idx, err) == (raw_topic, 0, CORRUPT_MESSAGE)
        assert watermarks(broker.bootstrap, raw_topic, 0) == (0, start + 3)

        # A payload bit flip (CRC left as it was) is caught the same way.
        good = bytearray(w.record_batch(recs))
        good[-3] ^= 0x01
        s.sendall(build(102, raw_topic, 0, bytes(good)))
        resp = parse(w.read_response(s, 102, flexible_header=flexible))
        assert resp[0][2] == CORRUPT_MESSAGE

        s.sendall(build(103, raw_topic, 0, w.record_batch(recs)))
        resp = parse(w.read_response(s, 103, flexible_header=flexible))
        assert resp == [(raw_topic, 0, 0, start + 3)]
    finally:
        s.close()

    got = consume_to_end(broker.bootstrap, raw_topic, [0])[0]
    tail = got[-6:]
    assert [r.offset for r in tail] == list(range(start, start + 6))
    assert [(r.key, r.value) for r in tail] == recs + recs


def test_broker_still_serves_real_clients(broker):
    # Fresh connections with real clients after all of the above.
    md = kcat(broker.bootstrap, "-L", timeout=30).stdout.decode()
    assert "1 brokers:" in md
    topic = unique_topic("after-bad")
    create_topic(broker.bootstrap, topic, partitions=1)
    records = [{"value": f"ok-{i}".encode(), "partition": 0} for i in range(100)]
    assert_all_delivered(produce_all(producer(broker.bootstrap), topic, records))
    got = consume_to_end(broker.bootstrap, topic, [0])[0]
    assert [r.value for r in got] == [r["value"] for r in records]
    assert os.path.isdir(broker.data_dir)
