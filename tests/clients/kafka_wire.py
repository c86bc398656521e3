"""A tiny hand-written Kafka wire encoder/decoder for the raw-socket tests: just
enough for ApiVersions (v0, v3), Produce (v3, v9) and a minimal v2 record batch,
plus CRC-32C in pure Python. Independent of the broker's own protocol code."""

from __future__ import annotations

import socket
import struct
import time

# ---------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, table-driven.
# ---------------------------------------------------------------------------------------

def _make_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _make_table()


def crc32c(data: bytes, crc: int = 0) -> int:
    crc ^= 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the standard check value


# ---------------------------------------------------------------------------------------
# primitive encoders
# ---------------------------------------------------------------------------------------

def i8(v): return struct.pack(">b", v)
def i16(v): return struct.pack(">h", v)
def i32(v): return struct.pack(">i", v)
def i64(v): return struct.pack(">q", v)
def u32(v): return struct.pack(">I", v)


def uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def varint(v: int) -> bytes:
    """Zigzag-encoded signed varint (records use these for lengths and deltas)."""
    return uvarint((v << 1) ^ (v >> 63))


def string(s: str | None) -> bytes:
    if s is None:
        return i16(-1)
    b = s.encode()
    return i16(len(b)) + b


def compact_string(s: str | None) -> bytes:
    if s is None:
        return uvarint(0)
    b = s.encode()
    return uvarint(len(b) + 1) + b


def nbytes(b: bytes | None) -> bytes:
    return i32(-1) if b is None else i32(len(b)) + b


def compact_bytes(b: bytes | None) -> bytes:
    return uvarint(0) if b is None else uvarint(len(b) + 1) + b


def array(items: list[bytes]) -> bytes:
    return i32(len(items)) + b"".join(items)


def compact_array(items: list[bytes]) -> bytes:
    return uvarint(len(items) + 1) + b"".join(items)


NO_TAGS = uvarint(0)


# ---------------------------------------------------------------------------------------
# requests
# ---------------------------------------------------------------------------------------

API_PRODUCE = 0
API_VERSIONS = 18


def frame(payload: bytes) -> bytes:
    return i32(len(payload)) + payload


def header_v1(api_key: int, version: int, correlation_id: int,
              client_id: str | None = "brook-raw-test") -> bytes:
    return i16(api_key) + i16(version) + i32(correlation_id) + string(client_id)


def header_v2(api_key: int, version: int, correlation_id: int,
              client_id: str | None = "brook-raw-test") -> bytes:
    return header_v1(api_key, version, correlation_id, client_id) + NO_TAGS


def api_versions_request(version: int, correlation_id: int) -> bytes:
    """ApiVersions request frame. v0-v2: header v1, empty body. v3+: header v2 and
    client_software_name/version (compact strings) + tags."""
    if version < 3:
        return frame(header_v1(API_VERSIONS, version, correlation_id))
    body = compact_string("brook-raw-test") + compact_string("0.1") + NO_TAGS
    return frame(header_v2(API_VERSIONS, version, correlation_id) + body)


def record(offset_delta: int, key: bytes | None, value: bytes | None,
           timestamp_delta: int = 0, headers: list[tuple[str, bytes]] = ()) -> bytes:
    body = (i8(0) + varint(timestamp_delta) + varint(offset_delta)
            + (varint(-1) if key is None else varint(len(key)) + key)
            + (varint(-1) if value is None else varint(len(value)) + value)
            + varint(len(headers)))
    for hk, hv in headers:
        hkb = hk.encode()
        body += varint(len(hkb)) + hkb + (varint(-1) if hv is None else varint(len(hv)) + hv)
    return varint(len(body)) + body


def record_batch(records: list[tuple[bytes | None, bytes | None]],
                 base_timestamp: int | None = None, corrupt_crc: bool = False) -> bytes:
    """A magic-2 record batch, uncompressed, non-transactional, no producer id."""
    if base_timestamp is None:
        base_timestamp = int(time.time() * 1000)
    recs = b"".join(record(i, k, v) for i, (k, v) in enumerate(records))
    after_crc = (i16(0)                          # attributes
                 + i32(len(records) - 1)         # lastOffsetDelta
                 + i64(base_timestamp)           # baseTimestamp
                 + i64(base_timestamp)           # maxTimestamp
                 + i64(-1)                       # producerId
                 + i16(-1)                       # producerEpoch
                 + i32(-1)                       # baseSequence
                 + i32(len(records))             # record count
                 + recs)
    crc = crc32c(after_crc)
    if corrupt_crc:
        crc ^= 0x5A5A5A5A
    after_length = i32(-1) + i8(2) + u32(crc) + after_crc  # partitionLeaderEpoch, magic
    return i64(0) + i32(len(after_length)) + after_length


def produce_request_v3(correlation_id: int, topic: str, partition: int, batch: bytes,
                       acks: int = -1, timeout_ms: int = 10_000) -> bytes:
    body = (string(None)                                         # transactional_id
            + i16(acks) + i32(timeout_ms)
            + array([string(topic) + array([i32(partition) + nbytes(batch)])]))
    return frame(header_v1(API_PRODUCE, 3, correlation_id) + body)


def produce_request_v9(correlation_id: int, topic: str, partition: int, batch: bytes,
                       acks: int = -1, timeout_ms: int = 10_000) -> bytes:
    body = (compact_string(None)                                 # transactional_id
            + i16(acks) + i32(timeout_ms)
            + compact_array([compact_string(topic)
                             + compact_array([i32(partition) + compact_bytes(batch) + NO_TAGS])
                             + NO_TAGS])
            + NO_TAGS)
    return frame(header_v2(API_PRODUCE, 9, correlation_id) + body)


# ---------------------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------------------

class Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"response truncated: need {n} bytes at {self.pos}, "
                             f"have {len(self.data) - self.pos}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def i16(self): return struct.unpack(">h", self.take(2))[0]
    def i32(self): return struct.unpack(">i", self.take(4))[0]
    def i64(self): return struct.unpack(">q", self.take(8))[0]

    def uvarint(self) -> int:
        shift = result = 0
        while True:
            b = self.take(1)[0]
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def string(self):
        n = self.i16()
        return None if n < 0 else self.take(n).decode()

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def tags(self) -> dict[int, bytes]:
        out = {}
        for _ in range(self.uvarint()):
            tag = self.uvarint()
            out[tag] = self.take(self.uvarint())
        return out

    def done(self) -> bool:
        return self.pos == len(self.data)


def parse_api_versions_v0(body: bytes):
    """-> (error_code, {api_key: (min, max)}); asserts nothing is left over."""
    r = Reader(body)
    err = r.i16()
    apis = {}
    for _ in range(r.i32()):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        apis[k] = (lo, hi)
    if not r.done():
        raise ValueError(f"{len(body) - r.pos} unexpected trailing bytes in a v0 body")
    return err, apis


def parse_api_versions_v3(body: bytes):
    """-> (error_code, {api_key: (min, max)}, throttle_ms)."""
    r = Reader(body)
    err = r.i16()
    apis = {}
    for _ in range(r.uvarint() - 1):
        k, lo, hi = r.i16(), r.i16(), r.i16()
        r.tags()
        apis[k] = (lo, hi)
    throttle = r.i32()
    r.tags()
    if not r.done():
        raise ValueError(f"{len(body) - r.pos} unexpected trailing bytes")
    return err, apis, throttle


def parse_produce_v3(body: bytes):
    """-> [(topic, partition, error_code, base_offset)]."""
    r = Reader(body)
    out = []
    for _ in range(r.i32()):
        name = r.string()
        for _ in range(r.i32()):
            idx, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            out.append((name, idx, err, base))
    r.i32()  # throttle_time_ms
    if not r.done():
        raise ValueError("trailing bytes in Produce v3 response")
    return out


def parse_produce_v9(body: bytes):
    """Response header v1 tags must already be stripped. -> [(topic, partition,
    error_code, base_offset)]."""
    r = Reader(body)
    out = []
    for _ in range(r.uvarint() - 1):
        name = r.compact_string()
        for _ in range(r.uvarint() - 1):
            idx, err, base = r.i32(), r.i16(), r.i64()
            r.i64()  # log_append_time_ms
            r.i64()  # log_start_offset
            for _ in range(r.uvarint() - 1):  # record_errors
                r.i32()
                r.compact_string()
                r.tags()
            r.compact_string()  # error_message
            r.tags()
            out.append((name, idx, err, base))
        r.tags()
    r.i32()  # throttle_time_ms
    r.tags()
    if not r.done():
        raise ValueError("trailing bytes in Produce v9 response")
    return out


# ---------------------------------------------------------------------------------------
# sockets
# ---------------------------------------------------------------------------------------

def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def read_response(s: socket.socket, expect_correlation_id: int,
                  flexible_header: bool = False) -> bytes:
    """Reads one response frame; checks the correlation id; returns the body."""
    size = struct.unpack(">i", recv_exact(s, 4))[0]
    assert 4 <= size < 64 * 1024 * 1024, f"implausible response size {size}"
    payload = recv_exact(s, size)
    r = Reader(payload)
    cid = r.i32()
    assert cid == expect_correlation_id, f"correlation id {cid} != {expect_correlation_id}"
    if flexible_header:
        r.tags()
    return payload[r.pos:]


def wait_closed(s: socket.socket, timeout: float = 5.0) -> bytes:
    """Waits until the peer closes the connection; returns whatever it sent first.
    Raises AssertionError if it is still open after `timeout` seconds."""
    s.settimeout(0.25)
    got = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return bytes(got)
        if not chunk:
            return bytes(got)
        got += chunk
    raise AssertionError(f"connection still open after {timeout}s "
                         f"(received {len(got)} bytes)")


# ---------------------------------------------------------------------------------------
# IncrementalAlterConfigs v1 (flexible): resources of (type, name, [(config, op, value)])
# ---------------------------------------------------------------------------------------

def incremental_alter_configs_v1(correlation_id: int, resources, validate_only=False) -> bytes:
    body = compact_array([
        i8(rtype) + compact_string(name)
        + compact_array([compact_string(c) + i8(op) + compact_string(v) + NO_TAGS
                         for c, op, v in configs])
        + NO_TAGS
        for rtype, name, configs in resources]) + i8(1 if validate_only else 0) + NO_TAGS
    return frame(header_v2(44, 1, correlation_id) + body)


def parse_incremental_alter_configs_v1(body: bytes):
    """-> [(error_code, message, resource_type, resource_name)]"""
    r = Reader(body)
    r.i32()  # throttle
    out = []
    for _ in range(r.uvarint() - 1):
        code = r.i16()
        message = r.compact_string()
        rtype = r.take(1)[0]
        name = r.compact_string()
        r.tags()
        out.append((code, message, rtype, name))
    return out


# ---------------------------------------------------------------------------------------
# CreateTopics v7 (flexible): topics of (name, partitions), replication factor 1
# ---------------------------------------------------------------------------------------

def create_topics_v7(correlation_id: int, topics, client_id: str,
                     timeout_ms: int = 30_000) -> bytes:
    body = compact_array([
        compact_string(name) + i32(partitions) + i16(1)
        + compact_array([]) + compact_array([]) + NO_TAGS
        for name, partitions in topics]) + i32(timeout_ms) + i8(0) + NO_TAGS
    return frame(header_v2(19, 7, correlation_id, client_id) + body)


def parse_create_topics_v7(body: bytes, with_configs: bool = False):
    """-> (throttle_time_ms, [(name, error_code, error_message, num_partitions)]); with
    `with_configs`, each result also has its configs ({name: value} or None) and its
    topic_config_error_code (a tagged field; 0 when absent)."""
    r = Reader(body)
    throttle = r.i32()
    out = []
    for _ in range(r.uvarint() - 1):
        name = r.compact_string()
        r.take(16)  # topic id
        code = r.i16()
        message = r.compact_string()
        partitions = r.i32()
        r.i16()  # replication factor
        n = r.uvarint() - 1
        configs = None if n < 0 else {}
        for _ in range(max(n, 0)):
            key, value = r.compact_string(), r.compact_string()
            r.take(3)  # read_only, config_source, is_sensitive
            r.tags()
            configs[key] = value
        tags = r.tags()
        config_error = struct.unpack(">h", tags[0])[0] if 0 in tags else 0
        if with_configs:
            out.append((name, code, message, partitions, configs, config_error))
        else:
            out.append((name, code, message, partitions))
    r.tags()
    if not r.done():
        raise ValueError("trailing bytes in CreateTopics v7 response")
    return throttle, out


# ---------------------------------------------------------------------------------------
# SASL/PLAIN: SaslHandshake v1, then SaslAuthenticate v2 (flexible)
# ---------------------------------------------------------------------------------------

def sasl_plain(s: socket.socket, user: str, password: str) -> None:
    """Authenticates an open connection with SASL/PLAIN; raises on failure."""
    s.sendall(frame(header_v1(17, 1, 101) + string("PLAIN")))
    r = Reader(read_response(s, 101))
    code = r.i16()
    if code != 0:
        raise ConnectionError(f"SaslHandshake failed: error {code}")
    token = b"\0" + user.encode() + b"\0" + password.encode()
    s.sendall(frame(header_v2(36, 2, 102) + compact_bytes(token) + NO_TAGS))
    r = Reader(read_response(s, 102, flexible_header=True))
    code = r.i16()
    if code != 0:
        raise ConnectionError(f"SaslAuthenticate failed: error {code} {r.compact_string()}")
