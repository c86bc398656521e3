"""The admin JSON API (`/api/v1`) against real Kafka clients on the other side:
records produced with confluent-kafka are browsed through the API; topics created,
altered and trimmed through the API are what confluent-kafka's AdminClient and
consumers see; group offsets reset through the API are where a real consumer resumes;
refusals come back as Kafka's error names.
"""

from __future__ import annotations

import base64
import json
import socket
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import ConfigResource

from admin_api import AdminApi
from kafka_helpers import (
    admin_client,
    assert_all_delivered,
    consumer,
    create_topic,
    partition_count,
    produce_all,
    producer,
    topic_names,
    unique_topic,
    wait_until,
    watermarks,
)

pytestmark = pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})


@pytest.fixture(scope="module")
def api(brook_module) -> AdminApi:
    return AdminApi(brook_module.admin_url)


def text_of(d):
    """A key or value as the API returns it, as bytes."""
    if d is None:
        return None
    return d["data"].encode() if d["encoding"] == "text" else base64.b64decode(d["data"])


def test_cluster_describes_the_broker(brook_module, api):
    c = api.ok("GET", "/cluster")
    assert c["mode"] == "single"
    assert c["controller_id"] == c["node_id"]
    assert [(b["host"], b["port"]) for b in c["brokers"]] == [("127.0.0.1", brook_module.port)]
    assert c["brokers"][0]["rack"] is None
    assert c["under_replicated_partitions"] == 0 and c["offline_partitions"] == 0


def test_records_produced_by_a_client_are_browsed(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("browse")
    create_topic(b, topic, partitions=2)
    base_ts = 1_700_000_000_000
    records = [
        {"key": f"k{i}".encode(), "partition": 0, "timestamp": base_ts + i * 1000,
         "value": json.dumps({"n": i}).encode() if i % 3 else bytes([0xFF, 0x00, i]),
         "headers": [("trace", f"t{i}".encode()), ("bin", b"\xfe\x01")]}
        for i in range(30)
    ]
    records.append({"key": None, "value": None, "partition": 0, "timestamp": base_ts + 30_000})
    assert_all_delivered(produce_all(producer(b, **{"compression.type": "lz4"}), topic, records))

    page = api.messages(topic, partition=0, offset=0, max_records=10)
    assert [m["offset"] for m in page["records"]] == list(range(10))
    assert page["next_offset"] == 10 and page["high_watermark"] == 31
    assert page["isolation"] == "read_uncommitted"
    first, second = page["records"][0], page["records"][1]
    assert first["key"] == {"encoding": "text", "data": "k0", "size": 2}
    assert first["value"]["encoding"] == "base64" and text_of(first["value"]) == b"\xff\x00\x00"
    assert json.loads(text_of(second["value"])) == {"n": 1}
    assert first["timestamp"] == base_ts and first["timestamp_type"] == "CreateTime"
    assert [(h["key"], text_of(h["value"])) for h in first["headers"]] == [
        ("trace", b"t0"), ("bin", b"\xfe\x01")]

    # The next page starts where this one ended; -N counts back from the end.
    assert api.messages(topic, partition=0, offset=page["next_offset"], max_records=5)[
        "records"][0]["offset"] == 10
    tail = api.messages(topic, partition=0, offset=-3)
    assert [m["offset"] for m in tail["records"]] == [28, 29, 30]
    assert tail["records"][-1]["key"] is None and tail["records"][-1]["value"] is None
    # A timestamp finds the first record at or after it (ListOffsets).
    at = api.messages(topic, partition=0, timestamp=base_ts + 12_500, max_records=1)
    assert [m["offset"] for m in at["records"]] == [13]
    assert api.messages(topic, partition=0, offset="latest")["records"] == []
    assert api.messages(topic, partition=1)["records"] == []

    assert api.error("GET", f"/topics/{topic}/messages?partition=0&offset=999") == "OFFSET_OUT_OF_RANGE"
    assert api.error("GET", f"/topics/{topic}/messages?partition=7", status=404) == \
        "UNKNOWN_TOPIC_OR_PARTITION"
    assert api.error("GET", f"/topics/{topic}/messages?max_records=501", status=400) == \
        "INVALID_REQUEST"
    assert api.error("GET", f"/topics/{topic}/messages?max_bytes=99999999") == "INVALID_REQUEST"
    assert api.error("GET", "/topics/nope/messages", status=404) == "UNKNOWN_TOPIC_OR_PARTITION"


def test_read_committed_hides_aborted_transactions(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("txn-browse")
    create_topic(b, topic)
    p = Producer({"bootstrap.servers": b, "transactional.id": f"tx-{topic}"})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(3):
        p.produce(topic, value=f"aborted-{i}".encode())
    p.flush()
    p.abort_transaction(30)
    p.begin_transaction()
    for i in range(2):
        p.produce(topic, value=f"committed-{i}".encode())
    p.commit_transaction(30)

    values = lambda page: [text_of(m["value"]).decode() for m in page["records"]]  # noqa: E731
    everything = api.messages(topic, offset="earliest")
    assert values(everything) == ["aborted-0", "aborted-1", "aborted-2", "committed-0", "committed-1"]
    committed = api.messages(topic, offset="earliest", isolation="read_committed")
    assert values(committed) == ["committed-0", "committed-1"]
    assert committed["isolation"] == "read_committed"


def test_a_topic_created_through_the_api_is_what_kafka_clients_see(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("api-made")
    made = api.ok("POST", "/topics", {"name": topic, "partitions": 3,
                                      "configs": {"retention.ms": "3600000"}})
    assert made["partitions"] == 3 and made["replication_factor"] == 1
    assert topic in topic_names(b)
    assert partition_count(b, topic) == 3
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = admin_client(b)
    entries = admin.describe_configs([res])[res].result(10)
    assert entries["retention.ms"].value == "3600000"
    assert not entries["retention.ms"].is_default

    detail = api.ok("GET", f"/topics/{topic}")
    configs = {c["name"]: c for c in detail["configs"]}
    assert configs["retention.ms"]["source"] == "DYNAMIC_TOPIC_CONFIG"
    assert configs["cleanup.policy"]["is_default"] and configs["cleanup.policy"]["value"] == "delete"
    assert [p["partition"] for p in detail["partitions"]] == [0, 1, 2]
    assert all(p["leader"] == 1 and p["isr"] == [1] for p in detail["partitions"])
    listed = {t["name"]: t for t in api.ok("GET", "/topics")["topics"]}
    assert listed[topic]["partitions"] == 3 and not listed[topic]["internal"]

    # Kafka's refusals, by name and with fitting statuses.
    assert api.error("POST", "/topics", {"name": topic}, status=409) == "TOPIC_ALREADY_EXISTS"
    assert api.error("POST", "/topics", {"name": "bad name!"}, status=400) == "INVALID_TOPIC_EXCEPTION"
    assert api.error("POST", "/topics", {"name": unique_topic(), "partitions": 0}) == "INVALID_PARTITIONS"
    assert api.error("POST", "/topics", {"name": unique_topic(), "replication_factor": 3}) == \
        "INVALID_REPLICATION_FACTOR"
    assert api.error("POST", "/topics", {"name": unique_topic(), "configs": {"retention.ms": "x"}}) == \
        "INVALID_CONFIG"
    assert api.error("POST", "/topics", {"name": unique_topic(), "partitons": 2}) == "INVALID_REQUEST"
    ghost = unique_topic("validate")
    api.ok("POST", "/topics", {"name": ghost, "validate_only": True})
    assert ghost not in topic_names(b)


def test_topic_actions_match_kafka_admin_semantics(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("actions")
    create_topic(b, topic, partitions=2)
    assert_all_delivered(produce_all(producer(b), topic,
                                     [{"value": b"v%d" % i, "partition": 0} for i in range(20)]))

    # IncrementalAlterConfigs: set, then delete back to the default.
    api.ok("PATCH", f"/topics/{topic}/configs", {"set": {"retention.bytes": "1048576"}})
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    admin = admin_client(b)
    assert admin.describe_configs([res])[res].result(10)["retention.bytes"].value == "1048576"
    api.ok("PATCH", f"/topics/{topic}/configs", {"delete": ["retention.bytes"]})
    assert admin.describe_configs([res])[res].result(10)["retention.bytes"].is_default
    assert api.error("PATCH", f"/topics/{topic}/configs", {"set": {"no.such.config": "1"}}) == \
        "INVALID_CONFIG"

    # CreatePartitions.
    api.ok("POST", f"/topics/{topic}/partitions", {"count": 4})
    assert partition_count(b, topic) == 4
    assert api.error("POST", f"/topics/{topic}/partitions", {"count": 3}) == "INVALID_PARTITIONS"

    # DeleteRecords: the low watermark a consumer sees moves.
    out = api.ok("POST", f"/topics/{topic}/delete-records",
                 {"partitions": [{"partition": 0, "offset": 15}]})
    assert out["partitions"] == [{"partition": 0, "low_watermark": 15}]
    assert watermarks(b, topic, 0) == (15, 20)
    assert api.error("POST", f"/topics/{topic}/delete-records",
                     {"partitions": [{"partition": 0, "offset": 99}]}) == "OFFSET_OUT_OF_RANGE"

    # Internal topics are the broker's own.
    assert api.error("DELETE", "/topics/__consumer_offsets") == "INVALID_REQUEST"
    assert api.error("POST", "/topics/__consumer_offsets/delete-records",
                     {"partitions": [{"partition": 0, "offset": -1}]}) == "INVALID_TOPIC_EXCEPTION"

    # DeleteTopics.
    api.ok("DELETE", f"/topics/{topic}")
    wait_until(lambda: topic not in topic_names(b), 10, what="topic deleted")
    assert api.error("DELETE", f"/topics/{topic}", status=404) == "UNKNOWN_TOPIC_OR_PARTITION"
    assert api.error("GET", f"/topics/{topic}", status=404) == "UNKNOWN_TOPIC_OR_PARTITION"


def test_group_lag_and_offset_reset_as_real_consumers_see_them(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("lag")
    group = f"g-{topic}"
    create_topic(b, topic, partitions=2)
    records = [{"value": b"r%d" % i, "partition": i % 2} for i in range(40)]
    assert_all_delivered(produce_all(producer(b), topic, records))

    c = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "client.id": "lag-test"})
    c.subscribe([topic])
    wait_until(lambda: c.poll(0.2) is not None and c.assignment(), 20, what="assignment")
    c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 8)], asynchronous=False)

    g = api.group(group)
    assert g["state"] == "Stable" and g["protocol_type"] == "consumer"
    assert [m["client_id"] for m in g["members"]] == ["lag-test"]
    assigned = sorted(p for a in g["members"][0]["assignment"] for p in a["partitions"])
    assert assigned == [0, 1]
    lags = {o["partition"]: (o["committed_offset"], o["log_end_offset"], o["lag"]) for o in g["offsets"]}
    assert lags == {0: (5, 20, 15), 1: (8, 20, 12)}
    assert g["total_lag"] == 27
    listed = {x["group_id"]: x for x in api.ok("GET", "/groups")["groups"]}
    assert listed[group]["members"] == 1 and listed[group]["state"] == "Stable"

    # Kafka's tool refuses to reset an active group, and so does the API.
    assert api.error("POST", f"/groups/{group}/reset-offsets",
                     {"topic": topic, "to": "earliest"}, status=409) == "NON_EMPTY_GROUP"
    assert api.error("DELETE", f"/groups/{group}") == "NON_EMPTY_GROUP"
    c.close()
    wait_until(lambda: api.group(group)["state"] == "Empty", 10, what="group empty")

    dry = api.ok("POST", f"/groups/{group}/reset-offsets",
                 {"topic": topic, "to": "offset", "offset": 3, "dry_run": True})
    assert dry["partitions"] == [{"partition": 0, "offset": 3}, {"partition": 1, "offset": 3}]
    assert api.group(group)["total_lag"] == 27, "a dry run changes nothing"
    api.ok("POST", f"/groups/{group}/reset-offsets",
           {"topic": topic, "to": "offset", "offset": 3, "partitions": [0]})
    api.ok("POST", f"/groups/{group}/reset-offsets", {"topic": topic, "to": "latest", "partitions": [1]})
    # Offsets beyond the log are clamped to its end, as Kafka's tool does.
    assert api.ok("POST", f"/groups/{group}/reset-offsets",
                  {"topic": topic, "to": "offset", "offset": 999, "dry_run": True}
                  )["partitions"] == [{"partition": 0, "offset": 20}, {"partition": 1, "offset": 20}]

    # A real consumer of the group resumes exactly there.
    c2 = Consumer({"bootstrap.servers": b, "group.id": group, "enable.auto.commit": False,
                   "auto.offset.reset": "latest"})
    committed = c2.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
    assert [(tp.partition, tp.offset) for tp in committed] == [(0, 3), (1, 20)]
    c2.subscribe([topic])
    first = None
    deadline = time.monotonic() + 20
    while first is None and time.monotonic() < deadline:
        m = c2.poll(0.5)
        if m is not None and not m.error():
            first = m
    c2.close()
    assert first is not None and (first.partition(), first.offset()) == (0, 3)

    assert api.error("POST", f"/groups/{group}/reset-offsets", {"topic": "nope", "to": "earliest"}) == \
        "UNKNOWN_TOPIC_OR_PARTITION"
    assert api.error("POST", f"/groups/{group}/reset-offsets", {"topic": topic, "to": "offset"}) == \
        "INVALID_REQUEST"

    api.ok("DELETE", f"/groups/{group}")
    assert api.error("GET", f"/groups/{group}", status=404) == "GROUP_ID_NOT_FOUND"
    assert api.error("DELETE", f"/groups/{group}", status=404) == "GROUP_ID_NOT_FOUND"


def test_stats_count_what_clients_produce(brook_module, api):
    b = brook_module.bootstrap
    topic = unique_topic("stats")
    create_topic(b, topic)
    assert_all_delivered(produce_all(producer(b), topic, [{"value": b"x" * 100}] * 25))
    stats = api.ok("GET", "/stats")
    mine = [t for t in stats["topics"] if t["topic"] == topic]
    assert mine and mine[0]["messages_in"] == 25 and mine[0]["bytes_in"] > 2500
    assert stats["messages_in"] >= 25 and stats["time_ms"] > 0


def raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


def test_actions_are_guarded_and_requests_bounded(brook_module, api):
    topic = unique_topic("guard")
    # No action header, another origin, or a body that is not JSON: refused, nothing made.
    assert api.error("POST", "/topics", {"name": topic}, action_header=False, status=403) == \
        "MISSING_ACTION_HEADER"
    assert api.error("POST", "/topics", {"name": topic}, status=403,
                     headers={"Origin": "http://evil.example"}) == "CROSS_ORIGIN_REQUEST"
    assert api.error("POST", "/topics", raw=b"name=x", status=415,
                     headers={"Content-Type": "application/x-www-form-urlencoded"}) == \
        "UNSUPPORTED_MEDIA_TYPE"
    assert api.error("DELETE", "/topics/__consumer_offsets", action_header=False) == \
        "MISSING_ACTION_HEADER"
    assert topic not in {t["name"] for t in api.ok("GET", "/topics")["topics"]}
    # The console's own origin is accepted.
    port = int(brook_module.admin_url.rsplit(":", 1)[1])
    api.ok("POST", "/topics", {"name": topic}, headers={"Origin": f"http://127.0.0.1:{port}"})

    assert api.error("POST", "/topics", raw=b"{" * 200_000, status=413,
                     headers={"Content-Type": "application/json"}) == "BAD_REQUEST_BODY"
    assert api.error("POST", "/topics", raw=b'{"name": ', status=400,
                     headers={"Content-Type": "application/json"}) == "INVALID_REQUEST"
    assert api.error("GET", "/no/such/thing", status=404) == "NOT_FOUND"
    assert api.error("GET", "/topics/%ZZ") in ("INVALID_REQUEST", "UNKNOWN_TOPIC_OR_PARTITION")
    assert api.error("GET", f"/topics/{topic}/messages?bogus=1", status=400) == "INVALID_REQUEST"

    # Asset paths are fixed: traversal finds nothing.
    for path in [b"/../../etc/passwd", b"/console.js/../../../etc/passwd", b"/%2e%2e/%2e%2e/etc/passwd",
                 b"/api/v1/../../Cargo.toml"]:
        reply = raw_http(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.split(b" ", 2)[1] in (b"400", b"404"), (path, reply[:200])
        assert b"root:" not in reply

    # The console itself is served, gzip when asked, and loads nothing from elsewhere.
    page = raw_http(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 200") and b"console.js" in page
    assert b"content-security-policy: default-src 'self'" in page.lower()
    gz = raw_http(port, b"GET /console.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
                        b"Connection: close\r\n\r\n")
    assert b"content-encoding: gzip" in gz.lower()

    # Many idle connections do not stop the listener from serving once they go.
    idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(40)]
    for s in idle:
        s.close()
    wait_until(lambda: api.call("GET", "/cluster", timeout=5)[0] == 200, 20, what="admin serves again")


def test_basic_authentication_runs_the_api_as_the_user(brook_factory):
    """`admin.authentication=basic`: the API and /metrics need HTTP Basic credentials,
    checked against the SCRAM credentials; the API then acts as that user, so ACLs
    decide what it lists, reads and may do. /health and /ready stay open."""
    import urllib.error
    import urllib.request

    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)

    from test_scram_credentials import configs

    b = brook_factory({
        "admin.authentication": "basic",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The PLAINTEXT listener is this test's own admin path.
        "super.users": "User:admin;User:ANONYMOUS",
    }, start=False)
    b.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"]
    b.start()
    configs(b.bootstrap, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--add-config", "SCRAM-SHA-256=[iterations=4096,password=alice-secret]")
    mine, theirs = unique_topic("auth-mine"), unique_topic("auth-theirs")
    create_topic(b.bootstrap, mine)
    create_topic(b.bootstrap, theirs)
    acl_admin = admin_client(b.bootstrap)  # kept alive until the futures complete
    grant = acl_admin.create_acls([AclBinding(
        ResourceType.TOPIC, mine, ResourcePatternType.LITERAL, "User:alice", "*",
        AclOperation.DESCRIBE, AclPermissionType.ALLOW)])
    for f in grant.values():
        f.result(20)

    def basic(user: str, password: str) -> dict:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def status_of(path: str, headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(b.admin_url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}

    assert status_of("/health")[0] == 200
    assert status_of("/ready")[0] == 200
    code, headers = status_of("/api/v1/topics")
    assert code == 401 and headers.get("www-authenticate", "").startswith("Basic"), headers
    assert status_of("/metrics")[0] == 401
    assert status_of("/api/v1/topics", basic("alice", "wrong"))[0] == 401
    assert status_of("/api/v1/topics", basic("mallory", "alice-secret"))[0] == 401
    assert status_of("/metrics", basic("alice", "alice-secret"))[0] == 200

    api = AdminApi(b.admin_url)
    as_admin, as_alice = basic("admin", "admin-secret"), basic("alice", "alice-secret")
    listed = {t["name"] for t in api.ok("GET", "/topics", headers=as_admin)["topics"]}
    assert {mine, theirs} <= listed
    listed = {t["name"] for t in api.ok("GET", "/topics", headers=as_alice)["topics"]}
    assert mine in listed and theirs not in listed, listed
    api.ok("GET", f"/topics/{mine}", headers=as_alice)
    assert api.error("GET", f"/topics/{theirs}", headers=as_alice,
                     status=403) == "TOPIC_AUTHORIZATION_FAILED"
    # Actions are Kafka requests made as alice: she may not create topics.
    assert api.error("POST", "/topics", {"name": unique_topic("alice-new")},
                     headers=as_alice) == "TOPIC_AUTHORIZATION_FAILED"
    created = unique_topic("admin-new")
    api.ok("POST", "/topics", {"name": created}, headers=as_admin)
    assert created in topic_names(b.bootstrap)


def test_plain_users_and_bearer_tokens_log_in_as_on_kafka_listeners(brook_factory, tmp_path):
    """`admin.authentication=basic,bearer`: HTTP Basic takes the admin listener's PLAIN
    users (its JAAS line, as a Kafka listener named admin reads it) besides SCRAM users;
    `Authorization: Bearer <JWT>` is validated as its OAUTHBEARER would be (JWKS,
    audience, issuer) and the API acts as the token's subject. Refusals get 401 with a
    challenge per scheme; /metrics counts them."""
    import urllib.error
    import urllib.request

    import jwt
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    from test_metrics import value

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    prefix = "listener.name.admin."
    b = brook_factory({
        "admin.authentication": "basic,bearer",
        prefix + "plain.sasl.jaas.config":
            'org.apache.kafka.common.security.plain.PlainLoginModule required '
            'user_bob="bob-secret";',
        prefix + "oauthbearer.sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
        prefix + "oauthbearer.sasl.oauthbearer.expected.audience": "brook-admin",
        prefix + "oauthbearer.sasl.oauthbearer.expected.issuer": "https://idp.example",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        # The PLAINTEXT listener is this test's own admin path.
        "super.users": "User:bob;User:ANONYMOUS",
    })
    mine, theirs = unique_topic("bearer-mine"), unique_topic("bearer-theirs")
    create_topic(b.bootstrap, mine)
    create_topic(b.bootstrap, theirs)
    acl_admin = admin_client(b.bootstrap)
    for f in acl_admin.create_acls([AclBinding(
            ResourceType.TOPIC, mine, ResourcePatternType.LITERAL, "User:carol", "*",
            AclOperation.DESCRIBE, AclPermissionType.ALLOW)]).values():
        f.result(20)

    def token(signer=key, *, sub="carol", aud="brook-admin", lifetime_s=600) -> dict:
        now = int(time.time())
        claims = {"sub": sub, "aud": aud, "iss": "https://idp.example", "iat": now - 5,
                  "exp": now + lifetime_s}
        tok = jwt.encode(claims, signer, algorithm="RS256", headers={"kid": "k1"})
        return {"Authorization": f"Bearer {tok}"}

    def basic(user: str, password: str) -> dict:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {encoded}"}

    def call(path: str, headers: dict | None = None):
        req = urllib.request.Request(b.admin_url.rstrip("/") + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.headers.get_all("WWW-Authenticate") or [], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get_all("WWW-Authenticate") or [], e.read()

    code, challenges, _ = call("/api/v1/topics")
    assert code == 401
    assert any(c.startswith("Basic") for c in challenges), challenges
    assert 'Bearer realm="brook"' in challenges, challenges
    # The token's subject is the caller: ACLs decide what it lists.
    code, _, body = call("/api/v1/topics", token())
    assert code == 200, body
    listed = {t["name"] for t in json.loads(body)["topics"]}
    assert mine in listed and theirs not in listed, listed
    code, _, _ = call(f"/api/v1/topics/{theirs}", token())
    assert code == 403
    # A PLAIN user of the admin listener's JAAS line, a super user here.
    code, _, body = call("/api/v1/topics", basic("bob", "bob-secret"))
    assert code == 200 and {mine, theirs} <= {t["name"] for t in json.loads(body)["topics"]}
    refusals = [token(forger), token(aud="elsewhere"), token(lifetime_s=-600),
                {"Authorization": "Bearer not.a.jwt"}, basic("bob", "wrong"),
                basic("carol", "bob-secret")]
    for headers in refusals:
        code, challenges, _ = call("/api/v1/topics", headers)
        assert code == 401, headers
        if headers["Authorization"].startswith("Bearer"):
            assert 'Bearer realm="brook", error="invalid_token"' in challenges, challenges
    b.assert_alive()
    code, _, body = call("/metrics", basic("bob", "bob-secret"))
    assert code == 200
    from prometheus_client.parser import text_string_to_metric_families
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert value(samples, "brook_authentications_total", listener="ADMIN",
                 result="failure") == len(refusals)
    assert value(samples, "brook_authentications_total", listener="ADMIN",
                 result="success") >= 4


def test_cluster_groups_are_answered_by_any_broker(cluster):
    """In a 3-node cluster, node 1's admin API shows the figures of partitions led by
    other nodes (node 1 holds no replica of them) and a group coordinated on another
    node, with its lag against those partitions; resets and deletes it there; and says
    which broker did not answer once one is down."""
    from confluent_kafka.admin import AdminClient

    topic = unique_topic("cluster-lag")
    # One replica each, none on node 1: its figures come from the leaders.
    cluster.create_topic(topic, partitions=2, replica_assignment=[[2], [3]])
    p = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    for i in range(30):
        p.produce(topic, value=b"v%d" % i, partition=i % 2)
    assert p.flush(30) == 0

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    group, coordinator = None, None
    for i in range(40):
        name = unique_topic(f"g{i}")
        c = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": name,
                      "enable.auto.commit": False})
        c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 10)],
                 asynchronous=False)
        c.close()
        coordinator = admin.describe_consumer_groups([name])[name].result(20).coordinator.id
        if coordinator != 1:
            group = name
            break
    assert group is not None, "every group landed on node 1"

    api = AdminApi(cluster.nodes[1].admin_url)
    # Sizes and offsets of partitions node 1 holds no replica of come from the leaders.
    t = api.ok("GET", f"/topics/{topic}")
    assert not t["partial"], t
    assert [(p["partition"], p["log_start_offset"], p["high_watermark"]) for p in t["partitions"]] \
        == [(0, 0, 15), (1, 0, 15)], t
    assert all(p["size_bytes"] > 0 for p in t["partitions"]), t
    summary = [x for x in api.ok("GET", "/topics")["topics"] if x["name"] == topic][0]
    assert summary["messages"] == 30 and summary["size_bytes"] > 0, summary

    listed = api.ok("GET", "/groups")
    assert not listed["partial"] and listed["errors"] == [], listed
    mine = [g for g in listed["groups"] if g["group_id"] == group]
    assert len(mine) == 1 and mine[0]["coordinator"] == coordinator, listed
    g = api.group(group)
    assert g["coordinator"] == coordinator and g["state"] == "Empty"
    lags = {o["partition"]: (o["committed_offset"], o["log_end_offset"], o["lag"])
            for o in g["offsets"]}
    assert lags == {0: (5, 15, 10), 1: (10, 15, 5)}, g
    assert g["total_lag"] == 15

    # Actions reach the coordinator too: a reset (targets from the partitions' leaders)…
    out = api.ok("POST", f"/groups/{group}/reset-offsets", {"topic": topic, "to": "earliest"})
    assert out["partitions"] == [{"partition": 0, "offset": 0}, {"partition": 1, "offset": 0}]
    assert api.group(group)["total_lag"] == 30
    # …and a delete.
    api.ok("DELETE", f"/groups/{group}")
    assert api.error("GET", f"/groups/{group}", status=404) == "GROUP_ID_NOT_FOUND"

    # A broker down: the listing still answers, partial, naming it.
    down = 3
    cluster.kill(down)
    started = time.monotonic()
    listed = api.ok("GET", "/groups", timeout=60)
    assert listed["partial"], listed
    assert [e["broker"] for e in listed["errors"]] == [down], listed
    assert listed["errors"][0]["error"] == "BROKER_UNREACHABLE"
    assert time.monotonic() - started < 15, "bounded by the inter-broker timeouts"
