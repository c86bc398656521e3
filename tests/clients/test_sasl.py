"""SASL listeners with real clients: confluent-kafka, kcat and the Java client over
SASL_PLAINTEXT and SASL_SSL with PLAIN (the listener's JAAS users) and SCRAM-SHA-256/512
(credentials in the metadata log: made with `brook serve --add-scram` and with
AlterUserScramCredentials), a PLAINTEXT listener beside them, a wrong password refused
while other clients go on, and a request before authentication closing the connection.

One broker serves the module (three listeners); certificates come from test_tls.
"""

from __future__ import annotations

import pathlib
import re
import socket
import struct
import subprocess
import time

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from conftest import Broker, _finish
from kafka_helpers import (admin_client, assert_all_delivered, consume_to_end, kcat, produce_all,
                           producer, unique_topic)
from procs import pick_port
from test_tls import JAVA_PRODUCER, certs, closed_by_peer  # noqa: F401 (fixture)

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              'user_admin="admin-secret" user_alice="alice-secret";')


class SaslBroker(Broker):
    """`listeners=PLAINTEXT://...,SASL_PLAINTEXT://...,SASL_SSL://...` (the fixture's
    readiness check uses the PLAINTEXT port)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sasl_port = pick_port()
        self.sasl_ssl_port = pick_port()

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--listen")
        cmd[i + 1] = (f"PLAINTEXT://127.0.0.1:{self.port},"
                      f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port},"
                      f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port}")
        return cmd


@pytest.fixture(scope="module")
def sasl_broker(request, tmp_path_factory, brook_bin, certs):  # noqa: F811
    mp = pytest.MonkeyPatch()
    mp.setenv("BROOK_LOG", "info,brook_broker::connection=debug")
    b = SaslBroker(brook_bin, tmp_path_factory.mktemp("sasl"), {
        "ssl.keystore.location": str(certs / "server.keystore.pem"),
        # PLAIN users on SASL_PLAINTEXT only; SASL_SSL gets the default (SCRAM).
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
    })
    b.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"]
    try:
        b.start()
        yield b
    finally:
        _finish([b])
        mp.undo()


def sasl_conf(mechanism: str, user: str, password: str, *, ssl_ca: pathlib.Path | None = None
              ) -> dict:
    return {
        "security.protocol": "SASL_SSL" if ssl_ca else "SASL_PLAINTEXT",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        **({"ssl.ca.location": str(ssl_ca)} if ssl_ca else {}),
    }


def round_trip(bootstrap: str, conf: dict, n: int = 50) -> None:
    topic = unique_topic("sasl")
    records = [{"key": f"k{i}".encode(), "value": bytes([i % 251]) * 1000} for i in range(n)]
    assert_all_delivered(produce_all(producer(bootstrap, **conf), topic, records, timeout=30))
    got = consume_to_end(bootstrap, topic, 1, timeout=30, **conf)[0]
    assert [r.value for r in got] == [r["value"] for r in records]


def authenticated(b: Broker) -> set[str]:
    return set(re.findall(r"SASL client authenticated .*principal=(\S+)", b.log_tail()))


def kcat_sasl(conf: dict) -> list[str]:
    return [x for k, v in conf.items() for x in ("-X", f"{k}={v}")]


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------

def test_plain_and_scram_over_sasl_plaintext(sasl_broker):
    b = sasl_broker
    round_trip(b.sasl_bootstrap, sasl_conf("PLAIN", "alice", "alice-secret"))
    # The --add-scram user.
    round_trip(b.sasl_bootstrap, sasl_conf("SCRAM-SHA-512", "admin", "admin-secret"))
    # A user added with AlterUserScramCredentials, by a SASL client.
    a = admin_client(b.sasl_bootstrap, **sasl_conf("SCRAM-SHA-512", "admin", "admin-secret"))
    for f in a.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "bob", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
            b"bob-secret")]).values():
        f.result(20)
    round_trip(b.sasl_bootstrap, sasl_conf("SCRAM-SHA-256", "bob", "bob-secret"))
    # The PLAINTEXT listener beside them.
    round_trip(b.bootstrap, {})
    assert {"User:alice", "User:admin", "User:bob"} <= authenticated(b)
    # Metadata on the SASL listener names the SASL listener's endpoint.
    brokers = a.list_topics(timeout=10).brokers
    assert [(m.host, m.port) for m in brokers.values()] == [("127.0.0.1", b.sasl_port)]


def test_scram_over_sasl_ssl(sasl_broker, certs):  # noqa: F811
    b = sasl_broker
    conf = sasl_conf("SCRAM-SHA-512", "admin", "admin-secret", ssl_ca=certs / "ca.pem")
    round_trip(b.sasl_ssl_bootstrap, conf)
    # PLAIN is not enabled on SASL_SSL (no JAAS users there).
    r = kcat(b.sasl_ssl_bootstrap, "-L", "-m", "3",
             *kcat_sasl(sasl_conf("PLAIN", "alice", "alice-secret", ssl_ca=certs / "ca.pem")),
             check=False, timeout=20)
    assert r.returncode != 0
    assert b"PLAIN" in r.stderr and b"not supported" in r.stderr.lower() or \
        b"mechanism" in r.stderr.lower(), r.stderr[-2000:]


def test_kcat_over_sasl_plaintext_with_scram(sasl_broker):
    b = sasl_broker
    conf = kcat_sasl(sasl_conf("SCRAM-SHA-512", "admin", "admin-secret"))
    topic = unique_topic("kcat-sasl")
    kcat(b.sasl_bootstrap, "-P", "-t", topic, *conf, input="from-kcat\n")
    out = kcat(b.sasl_bootstrap, "-C", "-t", topic, "-o", "-1", "-e", "-q", *conf)
    assert out.stdout.decode().strip() == "from-kcat"


def authentications(b, result: str) -> float:
    """`brook_authentications_total` of the SASL_PLAINTEXT listener (0 before any)."""
    from test_metrics import scrape, value
    return value(scrape(b), "brook_authentications_total", listener="SASL_PLAINTEXT",
                 result=result) or 0


def test_wrong_password_is_refused_and_others_go_on(sasl_broker):
    """... and /metrics counts each failed and successful exchange, as Kafka's
    failed-authentication-total and successful-authentication-total do."""
    b = sasl_broker
    failed, succeeded = authentications(b, "failure"), authentications(b, "success")
    for mechanism, user in (("SCRAM-SHA-512", "admin"), ("PLAIN", "alice"),
                            ("SCRAM-SHA-256", "nobody")):
        r = kcat(b.sasl_bootstrap, "-L", "-m", "3",
                 *kcat_sasl(sasl_conf(mechanism, user, "wrong")), check=False, timeout=20)
        assert r.returncode != 0
        assert b"Authentication failed" in r.stderr or b"authentication" in r.stderr.lower(), \
            r.stderr[-2000:]
    with pytest.raises(KafkaException):
        admin_client(b.sasl_bootstrap, **sasl_conf("SCRAM-SHA-512", "admin", "nope")) \
            .list_topics(timeout=3)
    b.assert_alive()
    assert authentications(b, "failure") >= failed + 4
    round_trip(b.sasl_bootstrap, sasl_conf("SCRAM-SHA-512", "admin", "admin-secret"), n=5)
    assert authentications(b, "success") > succeeded


def request(api_key: int, version: int, correlation: int, body: bytes = b"") -> bytes:
    client = b"raw"
    payload = struct.pack(">hhih", api_key, version, correlation, len(client)) + client + body
    return struct.pack(">i", len(payload)) + payload


def test_a_request_before_authentication_closes_the_connection(sasl_broker):
    b = sasl_broker
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        # ApiVersions v0 is answered before authentication.
        s.sendall(request(18, 0, 1))
        size = struct.unpack(">i", s.recv(4))[0]
        assert size > 4
        data = b""
        while len(data) < size:
            data += s.recv(size - len(data))
        assert struct.unpack(">i", data[:4])[0] == 1
        # Metadata v0 (all topics) is not: the connection closes without an answer.
        s.sendall(request(3, 0, 2, struct.pack(">i", -1)))
        assert closed_by_peer(s)
    # A frame over sasl.server.max.receive.size (512 KiB by default) closes too.
    with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
        s.sendall(struct.pack(">i", 4 << 20))
        assert closed_by_peer(s)
    assert "before SASL authentication" in b.log_tail()
    b.assert_alive()


def read_frame(s: socket.socket) -> bytes:
    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = s.recv(n - len(data))
            assert chunk, "connection closed"
            data += chunk
        return data
    return exact(struct.unpack(">i", exact(4))[0])


def test_handshake_v0_then_raw_plain_tokens(sasl_broker):
    """SaslHandshake v0: the token after it is a bare size-prefixed frame (Kafka's
    oldest SASL framing), answered the same way; a wrong one closes without an
    answer."""
    b = sasl_broker
    mechanism = b"PLAIN"
    for password, ok in ((b"alice-secret", True), (b"wrong", False)):
        with socket.create_connection(("127.0.0.1", b.sasl_port), timeout=5) as s:
            s.sendall(request(17, 0, 1, struct.pack(">h", len(mechanism)) + mechanism))
            answer = read_frame(s)
            assert struct.unpack(">ih", answer[:6]) == (1, 0)
            token = b"\0alice\0" + password
            s.sendall(struct.pack(">i", len(token)) + token)
            if not ok:
                assert closed_by_peer(s)
                continue
            assert read_frame(s) == b""  # PLAIN's empty server token
            s.sendall(request(3, 0, 2, struct.pack(">i", 0)))  # Metadata v0, no topics
            assert struct.unpack(">i", read_frame(s)[:4])[0] == 2


@pytest.mark.deadline(90)
def test_java_client_with_scram_over_sasl_ssl(sasl_broker, certs, tmp_path):  # noqa: F811
    jars = REPO / "compat" / ".cache" / "java" / "jars"
    if not (jars / "kafka-clients-4.4.0.jar").exists():
        r = subprocess.run([str(REPO / "scripts" / "kafka-jars.sh")], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        jars = pathlib.Path(r.stdout.strip())
    b = sasl_broker
    props = tmp_path / "client.properties"
    props.write_text("\n".join([
        f"bootstrap.servers={b.sasl_ssl_bootstrap}",
        "security.protocol=SASL_SSL",
        "sasl.mechanism=SCRAM-SHA-512",
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="admin" password="admin-secret";',
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs / 'ca.pem'}",
    ]) + "\n")
    src = tmp_path / "TlsClient.java"
    src.write_text(JAVA_PRODUCER)
    topic = unique_topic("java-sasl")
    r = subprocess.run(["java", "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx256m",
                        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                        "-cp", f"{jars}/*", str(src), str(props), topic],
                       capture_output=True, text=True, timeout=80)
    assert r.returncode == 0 and "consumed 10" in r.stdout, (r.stdout[-2000:], r.stderr[-4000:])


def test_sessions_expire_and_clients_reauthenticate(brook_bin, tmp_path, certs,  # noqa: F811
                                                    monkeypatch):
    """KIP-368 with connections.max.reauth.ms=1500: confluent-kafka (SaslAuthenticate
    v1+) re-authenticates on its open connections and keeps producing; kcat 1.7.1
    (v0, no re-authentication) still works, its expired connection closed and
    reopened."""
    monkeypatch.setenv("BROOK_LOG", "info,brook_broker::connection=debug")
    b = SaslBroker(brook_bin, tmp_path / "reauth", {
        "ssl.keystore.location": str(certs / "server.keystore.pem"),
        "connections.max.reauth.ms": "1500",
    })
    b.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"]
    try:
        b.start()
        conf = sasl_conf("SCRAM-SHA-512", "admin", "admin-secret")
        topic = unique_topic("reauth")
        p = producer(b.sasl_bootstrap, **conf)
        deadline = time.monotonic() + 5
        sent = 0
        while time.monotonic() < deadline:
            assert_all_delivered(produce_all(p, topic, [{"value": b"v%d" % sent}], timeout=10))
            sent += 1
            time.sleep(0.2)
        got = consume_to_end(b.sasl_bootstrap, topic, 1, timeout=20, **conf)[0]
        assert len(got) == sent
        peers = re.findall(r"SASL client authenticated .*peer=(\S+) principal=User:admin",
                           b.log_tail())
        # Some connection authenticated more than once: a re-authentication.
        assert any(peers.count(x) > 1 for x in set(peers)), peers
        # Not one failure: the --add-scram credential is there before clients are served.
        assert "authentication failed" not in b.log_tail()
        kconf = kcat_sasl(conf)
        kcat(b.sasl_bootstrap, "-P", "-t", topic, *kconf, input="k1\n")
        out = kcat(b.sasl_bootstrap, "-C", "-t", topic, "-o", "-1", "-e", "-q", *kconf)
        assert out.stdout.decode().strip() == "k1"
    finally:
        _finish([b])


def test_brook_cli_over_sasl_ssl_and_user_commands(sasl_broker, certs, tmp_path):
    """The brook CLI over SASL_SSL (SCRAM, TLS checked against the CA): `brook user
    set|list|delete` manage SCRAM credentials, and the new user logs in with a Kafka
    tools' --command-config file."""
    from conftest import find_brook_bin
    b = sasl_broker
    admin = ["-b", b.sasl_ssl_bootstrap, "-X", "security.protocol=SASL_SSL",
             "-X", "sasl.mechanism=SCRAM-SHA-512", "-X", "sasl.username=admin",
             "-X", "sasl.password=admin-secret", "-X", f"ssl.ca.location={certs / 'ca.pem'}"]

    def brook(*args) -> subprocess.CompletedProcess:
        return subprocess.run([find_brook_bin(), *map(str, args)], capture_output=True,
                              text=True, timeout=60)

    password = tmp_path / "dora.pw"
    password.write_text("dora-secret\n")
    r = brook("user", "set", "dora", "--password-file", password,
              "--mechanism", "SCRAM-SHA-256", "--iterations", "4096", *admin)
    assert r.returncode == 0, r.stderr
    r = brook("user", "list", *admin)
    assert r.returncode == 0, r.stderr
    assert re.search(r"^dora\s+SCRAM-SHA-256 \(iterations 4096\)", r.stdout, re.M), r.stdout

    props = tmp_path / "dora.properties"
    props.write_text(
        "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\n"
        f"ssl.truststore.location={certs / 'ca.pem'}\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="dora" password="dora-secret";\n')
    topic = unique_topic("cli-sasl")
    r = brook("topic", "create", topic, "-b", b.sasl_ssl_bootstrap, "--command-config", props)
    assert r.returncode == 0, r.stderr
    r = brook("topic", "list", "-b", b.sasl_ssl_bootstrap, "--command-config", props)
    assert topic in r.stdout.split(), r.stdout
    # TLS without the CA is refused before any request.
    r = brook("topic", "list", "-b", b.sasl_ssl_bootstrap, "-X", "security.protocol=SASL_SSL",
              "-X", "sasl.mechanism=SCRAM-SHA-256", "-X", "sasl.username=dora",
              "-X", "sasl.password=dora-secret")
    assert r.returncode != 0 and "ssl.ca.location" in r.stderr, r.stderr

    r = brook("user", "delete", "dora", "--mechanism", "SCRAM-SHA-256", *admin)
    assert r.returncode == 0, r.stderr
    r = brook("topic", "list", "-b", b.sasl_ssl_bootstrap, "--command-config", props)
    assert r.returncode != 0 and "SASL SCRAM-SHA-256 login as dora" in r.stderr, r.stderr
