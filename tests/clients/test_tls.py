"""TLS listeners with real clients: confluent-kafka, kcat and the Java client over SSL
(PEM keystores and truststores), a PLAINTEXT and an SSL listener on one broker, mTLS
(`ssl.client.auth` required/requested) with the principal the broker logs, a client
certificate from another CA refused, plaintext clients on the TLS port and TLS clients
on the plaintext port closed with a log line, TLS garbage and silent clients, and the
keystore reloaded without a restart.

Certificates are made with `openssl` once per module (EC P-256 keys: fast to make).
"""

from __future__ import annotations

import os
import pathlib
import re
import socket
import json
import ssl
import struct
import subprocess
import time

import pytest

from conftest import Broker, _finish
from kafka_helpers import (admin_client, assert_all_delivered, consume_to_end, kcat, produce_all,
                           producer, unique_topic, wait_until)
from procs import pick_port

REPO = pathlib.Path(__file__).resolve().parents[2]
CLIENT_DN = "CN=client,OU=eng,O=Brook Test,C=US"


# ---------------------------------------------------------------------------------------
# certificates
# ---------------------------------------------------------------------------------------

def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(d: pathlib.Path, name: str) -> None:
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "30",
            "-subj", f"/CN={name}", cwd=d)


def make_leaf(d: pathlib.Path, name: str, ca: str, subj: str, san: str | None,
              serial: int | None = None) -> pathlib.Path:
    """A key and certificate signed by `ca`; returns `<name>.keystore.pem` (key then
    certificate, as Kafka's PEM keystore file). Without `san` the certificate has no
    extensions, so openssl makes it X.509 version 1 (as Kafka's SSL guide's signing
    step does)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subj, cwd=d)
    ext_args = []
    if san:
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\n")
        ext_args = ["-extfile", f"{name}.ext"]
    serial_args = ["-set_serial", str(serial)] if serial else ["-CAcreateserial"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            *serial_args, "-out", f"{name}.crt", "-days", "30", *ext_args, cwd=d)
    keystore = d / f"{name}.keystore.pem"
    keystore.write_text((d / f"{name}.key").read_text() + (d / f"{name}.crt").read_text())
    return keystore


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> pathlib.Path:
    d = tmp_path_factory.mktemp("certs")
    make_ca(d, "ca")
    make_ca(d, "ca2")
    make_leaf(d, "server", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1", serial=1001)
    make_leaf(d, "client", "ca", "/C=US/O=Brook Test/OU=eng/CN=client", "DNS:client")
    make_leaf(d, "rogue", "ca2", "/CN=rogue", "DNS:rogue")
    make_leaf(d, "client-v1", "ca", "/O=Old Org/CN=legacy", None)
    make_leaf(d, "rogue-v1", "ca2", "/O=Old Org/CN=legacy", None)
    return d


# ---------------------------------------------------------------------------------------
# a broker with a PLAINTEXT and an SSL listener
# ---------------------------------------------------------------------------------------

class TlsBroker(Broker):
    """`brook serve` with `listeners=PLAINTEXT://...,SSL://...` (the fixture's
    readiness check uses the PLAINTEXT port)."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.ssl_port = pick_port()

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--listen")
        cmd[i + 1] = f"PLAINTEXT://127.0.0.1:{self.port},SSL://127.0.0.1:{self.ssl_port}"
        return cmd


@pytest.fixture
def tls_broker(request, tmp_path, brook_bin, certs, monkeypatch):
    """tls_broker(**settings) -> TlsBroker, keystore and truststore set; the broker logs
    each TLS client's principal (debug level of brook_broker::accept)."""
    monkeypatch.setenv("BROOK_LOG", "info,brook_broker::accept=debug")
    made: list[Broker] = []
    request.node._brook_brokers = made

    def make(**settings) -> TlsBroker:
        base = {
            "ssl.keystore.location": str(certs / "server.keystore.pem"),
            "ssl.truststore.location": str(certs / "ca.pem"),
        }
        base.update(settings)
        b = TlsBroker(brook_bin, tmp_path / f"brook{len(made)}", base, name=f"brook{len(made)}")
        made.append(b)
        b.start()
        return b

    yield make
    _finish(made)


def ssl_conf(certs: pathlib.Path, client_cert: str | None = None) -> dict:
    conf = {"security.protocol": "SSL", "ssl.ca.location": str(certs / "ca.pem")}
    if client_cert:
        conf["ssl.certificate.location"] = str(certs / f"{client_cert}.crt")
        conf["ssl.key.location"] = str(certs / f"{client_cert}.key")
    return conf


def kcat_ssl(certs: pathlib.Path, client_cert: str | None = None) -> list[str]:
    return [x for k, v in ssl_conf(certs, client_cert).items() for x in ("-X", f"{k}={v}")]


def principals(b: Broker) -> list[str]:
    return re.findall(r"TLS client authenticated .*principal=(.*)$", b.log_tail(), re.M)


def connects(b: TlsBroker, certs: pathlib.Path, client_cert: str | None) -> bool:
    """Whether a TLS client (with `client_cert`, or none) gets a Metadata answer."""
    r = kcat(b.ssl_bootstrap, "-L", "-m", "3", *kcat_ssl(certs, client_cert), check=False,
             timeout=20)
    return r.returncode == 0


def closed_by_peer(s: socket.socket) -> bool:
    """Whether the broker closed the connection without answering (unread bytes make
    its close a reset)."""
    try:
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------

def test_ssl_and_plaintext_listeners_round_trip(tls_broker, certs):
    b = tls_broker()
    topic = unique_topic("tls")
    # Records large enough that fetch responses hold file ranges of 16 KiB and more
    # (sent with sendfile on PLAINTEXT, copied through TLS on SSL).
    records = [{"key": f"k{i}".encode(), "value": bytes([i % 251]) * 2000} for i in range(300)]
    p = producer(b.ssl_bootstrap, **ssl_conf(certs))
    assert_all_delivered(produce_all(p, topic, records))
    for bootstrap, conf in ((b.ssl_bootstrap, ssl_conf(certs)), (b.bootstrap, {})):
        got = consume_to_end(bootstrap, topic, 1, **conf)[0]
        assert [r.value for r in got] == [r["value"] for r in records]
    # Each listener's clients see the brokers' endpoints of that listener.
    for bootstrap, conf, port in ((b.ssl_bootstrap, ssl_conf(certs), b.ssl_port),
                                  (b.bootstrap, {}, b.port)):
        brokers = admin_client(bootstrap, **conf).list_topics(timeout=10).brokers
        assert [(m.host, m.port) for m in brokers.values()] == [("127.0.0.1", port)]
    # kcat over SSL both ways.
    kcat(b.ssl_bootstrap, "-P", "-t", topic, *kcat_ssl(certs), input="from-kcat\n")
    out = kcat(b.ssl_bootstrap, "-C", "-t", topic, "-o", "-1", "-e", "-q",
               *kcat_ssl(certs)).stdout.decode()
    assert out.strip() == "from-kcat"
    assert set(principals(b)) == {"User:ANONYMOUS"}


def test_mtls_required_names_the_client_and_refuses_others(tls_broker, certs):
    b = tls_broker(**{"ssl.client.auth": "required"})
    assert connects(b, certs, "client")
    assert f"User:{CLIENT_DN}" in principals(b)
    # No certificate, or one from another CA: the handshake fails, the broker serves on.
    assert not connects(b, certs, None)
    assert not connects(b, certs, "rogue")
    log = b.log_tail()
    assert "TLS handshake failed on listener SSL from 127.0.0.1:" in log, log[-3000:]
    assert connects(b, certs, "client")
    b.assert_alive()
    # Kafka's failed-/successful-authentication-total: each handshake is counted.
    from test_metrics import scrape, value
    samples = scrape(b)
    for result, least in (("failure", 2), ("success", 2)):
        counted = value(samples, "brook_authentications_total", listener="SSL", result=result)
        assert counted is not None and counted >= least, (result, counted)


def test_mtls_takes_x509_v1_client_certificates_as_kafka_does(tls_broker, certs):
    """A client certificate signed with `openssl x509 -req` and no extensions (Kafka's
    SSL guide) is X.509 v1: the JDK accepts it and so does Brook, naming the client by
    its DN; a v1 certificate of another CA is still refused."""
    version = subprocess.run(["openssl", "x509", "-in", str(certs / "client-v1.crt"),
                              "-noout", "-text"], capture_output=True, check=True).stdout
    assert b"Version: 1 (0x0)" in version
    b = tls_broker(**{"ssl.client.auth": "required"})
    assert connects(b, certs, "client-v1")
    assert "User:CN=legacy,O=Old Org" in principals(b)
    assert not connects(b, certs, "rogue-v1")
    topic = unique_topic("tls-v1")
    p = producer(b.ssl_bootstrap, **ssl_conf(certs, "client-v1"))
    assert_all_delivered(produce_all(p, topic, [{"value": b"old but valid"}]))
    got = consume_to_end(b.ssl_bootstrap, topic, 1, **ssl_conf(certs, "client-v1"))[0]
    assert [r.value for r in got] == [b"old but valid"]
    b.assert_alive()


def test_mtls_requested_and_principal_mapping_rules(tls_broker, certs):
    b = tls_broker(**{
        "ssl.client.auth": "requested",
        "ssl.principal.mapping.rules": "RULE:^CN=([^,]+),OU=eng,.*$/$1@eng/U, DEFAULT",
    })
    assert connects(b, certs, None)
    assert connects(b, certs, "client")
    assert principals(b)[-2:] == ["User:ANONYMOUS", "User:CLIENT@ENG"]


def test_plaintext_client_on_tls_port_and_tls_client_on_plaintext_port(tls_broker, certs):
    b = tls_broker()
    # ApiVersions v0 from a plaintext client to the SSL port.
    header = struct.pack(">hhih", 18, 0, 1, 4) + b"test"
    with socket.create_connection(("127.0.0.1", b.ssl_port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(header)) + header)
        assert closed_by_peer(s)
    wait_until(lambda: "plaintext client on TLS listener SSL from 127.0.0.1:" in b.log_tail(),
               5, what="the plaintext-on-TLS log line")
    # A TLS handshake to the PLAINTEXT port.
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", b.port), timeout=10) as s:
        with pytest.raises((ssl.SSLError, OSError)):
            ctx.wrap_socket(s, server_hostname="localhost")
    wait_until(lambda: "TLS client on plaintext listener PLAINTEXT from 127.0.0.1:"
               in b.log_tail(), 5, what="the TLS-on-plaintext log line")
    assert "frame size" not in b.log_tail()
    assert connects(b, certs, None)


@pytest.mark.deadline(60)
def test_tls_garbage_oversized_hello_and_silent_clients_are_closed(tls_broker, certs):
    b = tls_broker()
    started = time.monotonic()
    silent = socket.create_connection(("127.0.0.1", b.ssl_port), timeout=30)
    cases = [
        # A handshake record of garbage.
        b"\x16\x03\x01\x00\x20" + os.urandom(32),
        # A record claiming 64 KiB (over TLS's 16 KiB + slack), then garbage.
        b"\x16\x03\x01\xff\xff" + os.urandom(4096),
        # A ClientHello claiming 16 MB in records of the right size.
        b"\x16\x03\x01\x40\x00\x01\xff\xff\xff" + os.urandom(16380),
    ]
    for payload in cases:
        with socket.create_connection(("127.0.0.1", b.ssl_port), timeout=10) as s:
            try:
                s.sendall(payload)
                while s.recv(4096):
                    pass
            except (ConnectionResetError, BrokenPipeError):
                pass
    assert connects(b, certs, None)
    # The silent client is closed at the handshake timeout (10 s), not kept forever.
    assert silent.recv(10) == b""
    assert time.monotonic() - started < 20
    silent.close()
    wait_until(lambda: "not finished within 10s" in b.log_tail(), 5,
               what="the handshake timeout log line")
    b.assert_alive()


def server_serial(port: int) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            der = t.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
                         input=der, capture_output=True, check=True).stdout.decode()
    return int(out.strip().split("=")[1], 16)


def test_keystore_reload_without_restart(tls_broker, certs, tmp_path):
    d = tmp_path / "reload"
    d.mkdir()
    for f in ("ca.pem", "ca.key"):
        (d / f).write_bytes((certs / f).read_bytes())
    keystore = make_leaf(d, "server", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1",
                         serial=2001)
    b = tls_broker(**{"ssl.keystore.location": str(keystore)})
    assert server_serial(b.ssl_port) == 2001
    # A new certificate replaces the file (written aside, then renamed, as tools do).
    new = make_leaf(d, "next", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1",
                    serial=2002)
    os.replace(new, keystore)
    wait_until(lambda: server_serial(b.ssl_port) == 2002, 10, interval=0.3,
               what="new connections get the new certificate")
    assert "TLS keystore/truststore reloaded" in b.log_tail()
    assert connects(b, certs, None)


JAVA_PRODUCER = r"""
import java.util.*; import org.apache.kafka.clients.producer.*;
import org.apache.kafka.clients.consumer.*; import org.apache.kafka.common.TopicPartition;
public class TlsClient { public static void main(String[] a) throws Exception {
  Properties p = new Properties();
  p.load(new java.io.FileInputStream(a[0]));
  p.put("key.serializer", "org.apache.kafka.common.serialization.StringSerializer");
  p.put("value.serializer", "org.apache.kafka.common.serialization.StringSerializer");
  try (Producer<String, String> pr = new KafkaProducer<>(p)) {
    for (int i = 0; i < 10; i++) pr.send(new ProducerRecord<>(a[1], "k" + i, "java-" + i)).get();
  }
  p.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  p.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
  p.put("group.id", "java-tls"); p.put("auto.offset.reset", "earliest");
  try (Consumer<String, String> c = new KafkaConsumer<>(p)) {
    c.assign(List.of(new TopicPartition(a[1], 0)));
    c.seekToBeginning(List.of(new TopicPartition(a[1], 0)));
    int n = 0; long end = System.currentTimeMillis() + 20000;
    while (n < 10 && System.currentTimeMillis() < end)
      for (ConsumerRecord<String, String> r : c.poll(java.time.Duration.ofMillis(500))) n++;
    System.out.println("consumed " + n);
  }
}}
"""


@pytest.mark.deadline(90)
def test_java_client_over_mtls_with_pem_stores(tls_broker, certs, tmp_path):
    jars = REPO / "compat" / ".cache" / "java" / "jars"
    if not (jars / "kafka-clients-4.4.0.jar").exists():
        r = subprocess.run([str(REPO / "scripts" / "kafka-jars.sh")], capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        jars = pathlib.Path(r.stdout.strip())
    b = tls_broker(**{"ssl.client.auth": "required"})
    props = tmp_path / "client.properties"
    props.write_text("\n".join([
        f"bootstrap.servers={b.ssl_bootstrap}",
        "security.protocol=SSL",
        "ssl.truststore.type=PEM",
        f"ssl.truststore.location={certs / 'ca.pem'}",
        "ssl.keystore.type=PEM",
        f"ssl.keystore.location={certs / 'client.keystore.pem'}",
    ]) + "\n")
    src = tmp_path / "TlsClient.java"
    src.write_text(JAVA_PRODUCER)
    topic = unique_topic("java-tls")
    r = subprocess.run(["java", "-Xshare:auto", "-XX:+UseSerialGC", "-Xmx256m",
                        "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                        "-cp", f"{jars}/*", str(src), str(props), topic],
                       capture_output=True, text=True, timeout=80)
    assert r.returncode == 0 and "consumed 10" in r.stdout, (r.stdout[-2000:], r.stderr[-4000:])
    assert f"User:{CLIENT_DN}" in principals(b)


@pytest.mark.deadline(90)
def test_cluster_replicates_over_tls_between_brokers(cluster_factory, certs, monkeypatch):
    """Inter-broker traffic (raft, forwarded controller requests, replica fetches) on
    controller listeners with mTLS required: a replicated topic takes acks=all writes
    that every replica serves."""
    monkeypatch.setenv("BROOK_LOG", "info,brook_broker::accept=debug")
    c = cluster_factory(3, {
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        "ssl.keystore.location": str(certs / "server.keystore.pem"),
        "ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.controller.ssl.client.auth": "required",
    })
    topic = unique_topic("tls-cluster")
    c.create_topic(topic, partitions=1, replication_factor=3)
    p = producer(c.bootstrap, acks="all")
    values = [f"v{i}".encode() for i in range(50)]
    assert_all_delivered(produce_all(p, topic, [{"value": v} for v in values]))
    for node in c.ids:
        got = consume_to_end(c.bootstrap_of(node), topic, 1)[0]
        assert [r.value for r in got] == values
    # The peers presented the keystore as client certificate on each other's listener.
    for node in c.nodes.values():
        assert "TLS client authenticated listener=CONTROLLER" in node.log_path.read_text()


def test_admin_listener_over_https(brook_factory, certs):
    """`admin.listeners=https://...`: the admin API, console and /metrics over TLS with
    the listener's own keystore (`listener.name.admin.ssl.*`); a plain HTTP request on
    that port gets no answer; a missing keystore stops the broker at start."""
    import urllib.error
    import urllib.request

    b = brook_factory({
        "admin.listeners": "https://127.0.0.1:0",
        "listener.name.admin.ssl.keystore.location": str(certs / "server.keystore.pem"),
    })
    url = b.admin_url
    assert url.startswith("https://"), url
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    with urllib.request.urlopen(url + "/health", context=ctx, timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(url + "/api/v1/cluster", context=ctx, timeout=10) as r:
        assert json.loads(r.read())["node_id"] == 1
    with urllib.request.urlopen(url + "/metrics", context=ctx, timeout=10) as r:
        assert b"brook_partitions" in r.read()
    import http.client
    with pytest.raises((urllib.error.URLError, OSError, http.client.HTTPException)):
        urllib.request.urlopen(url.replace("https://", "http://") + "/health", timeout=5)
    # Still serving after the plaintext attempt.
    with urllib.request.urlopen(url + "/ready", context=ctx, timeout=10) as r:
        assert r.status == 200

    bad = brook_factory({"admin.listeners": "https://127.0.0.1:0"}, start=False)
    with pytest.raises(Exception):
        bad.start(timeout=10)
    assert "admin.listeners https" in bad.log_path.read_text(), bad.log_path.read_text()[-2000:]


def test_an_encrypted_keystore_key_is_opened_with_ssl_key_password(tls_broker, certs, tmp_path):
    """A PEM keystore whose key is encrypted PKCS#8 (PBES2: PBKDF2 + AES-256-CBC, what
    `openssl pkcs8 -topk8 -v2 aes-256-cbc` makes and Kafka's PEM keystores read) works
    with `ssl.key.password`; without it, or with a wrong one, the broker refuses to start
    and says why."""
    openssl("pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", str(certs / "server.key"),
            "-out", str(tmp_path / "server.enc.key"), "-passout", "pass:key-secret",
            cwd=tmp_path)
    keystore = tmp_path / "server.enc.keystore.pem"
    keystore.write_text((tmp_path / "server.enc.key").read_text()
                        + (certs / "server.crt").read_text())
    b = tls_broker(**{"ssl.keystore.location": str(keystore),
                      "ssl.key.password": "key-secret"})
    assert connects(b, certs, None)
    broker_lines = [l for l in b.log_tail().splitlines() if not l.startswith("=====")]
    assert not [l for l in broker_lines if "key-secret" in l]
    assert any("ssl.key.password" in l for l in broker_lines)  # logged, value hidden

    for settings, expected in (({}, "set ssl.key.password"),
                               ({"ssl.key.password": "wrong"}, "cannot decrypt the key")):
        with pytest.raises(Exception) as failed:
            tls_broker(**{"ssl.keystore.location": str(keystore), **settings})
        assert expected in str(failed.value), failed.value


def test_admin_listener_names_its_caller_by_client_certificate(brook_factory, certs):
    """`admin.authentication=mtls` on an https admin listener with `ssl.client.auth`:
    the caller is the client certificate's principal, as on a Kafka SSL listener, so
    ACLs judge the API's actions as that user's; no certificate gets 401."""
    import urllib.error
    import urllib.request

    b = brook_factory({
        "admin.listeners": "https://127.0.0.1:0",
        "admin.authentication": "mtls",
        "listener.name.admin.ssl.keystore.location": str(certs / "server.keystore.pem"),
        "listener.name.admin.ssl.truststore.location": str(certs / "ca.pem"),
        "listener.name.admin.ssl.client.auth": "requested",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{CLIENT_DN}",
    })
    url = b.admin_url

    def call(path, *, cert=True, body=None):
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        if cert:
            ctx.load_cert_chain(certs / "client.crt", certs / "client.key")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET",
                                     headers={"Content-Type": "application/json",
                                              "x-brook-request": "1"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    # The certificate's principal is the super user: it may create a topic.
    status, body = call("/api/v1/topics", body={"name": "mtls-made", "partitions": 1})
    assert status in (200, 201), (status, body)
    status, body = call("/api/v1/topics")
    assert status == 200 and b"mtls-made" in body, body
    # No certificate: 401 (health stays open).
    assert call("/api/v1/topics", cert=False)[0] == 401
    assert call("/health", cert=False)[0] == 200

    # mtls needs client authentication on an https listener: a start error otherwise.
    bad = brook_factory({"admin.listeners": "http://127.0.0.1:0",
                         "admin.authentication": "mtls"}, start=False)
    with pytest.raises(Exception):
        bad.start(timeout=10)
    assert "needs an https://" in bad.log_path.read_text()


def handshake(port: int, certs: pathlib.Path, *, version: ssl.TLSVersion | None = None,
              ciphers: str | None = None) -> tuple[str, str] | None:
    """A TLS handshake with Python's ssl module limited to one version (and, for TLS 1.2,
    OpenSSL cipher names): (suite, version) agreed, or None when refused."""
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                name, proto, _ = t.cipher()
                return name, proto
        except (ssl.SSLError, ConnectionResetError):
            return None


def s_client_suite(port: int, certs: pathlib.Path, suite: str) -> bool:
    """Whether `openssl s_client` offering only TLS 1.3 suite `suite` gets a handshake."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3",
                        "-ciphersuites", suite, "-CAfile", str(certs / "ca.pem"),
                        "-servername", "localhost", "-verify_return_error", "-brief"],
                       input=b"", capture_output=True, timeout=20)
    return r.returncode == 0 and f"Ciphersuite: {suite}".encode() in r.stderr + r.stdout


def test_cipher_suites_and_enabled_protocols_restrict_the_listener(tls_broker, certs):
    """`ssl.enabled.protocols` and `ssl.cipher.suites` (IANA names) per listener: a client
    limited to an excluded version or suite is refused, an allowed one works; the
    PLAINTEXT listener's `listener.name.` settings do not leak to the SSL one."""
    b = tls_broker(**{
        "listener.name.ssl.ssl.enabled.protocols": "TLSv1.3",
        "listener.name.ssl.ssl.cipher.suites": "TLS_AES_128_GCM_SHA256",
        "listener.name.other.ssl.cipher.suites": "TLS_AES_256_GCM_SHA384",
    })
    assert handshake(b.ssl_port, certs, version=ssl.TLSVersion.TLSv1_2) is None
    assert handshake(b.ssl_port, certs) == ("TLS_AES_128_GCM_SHA256", "TLSv1.3")
    assert not s_client_suite(b.ssl_port, certs, "TLS_AES_256_GCM_SHA384")
    assert not s_client_suite(b.ssl_port, certs, "TLS_CHACHA20_POLY1305_SHA256")
    assert s_client_suite(b.ssl_port, certs, "TLS_AES_128_GCM_SHA256")
    # A real client on the allowed suite: round trip.
    topic = unique_topic("suites")
    p = producer(b.ssl_bootstrap, **ssl_conf(certs))
    assert_all_delivered(produce_all(p, topic, [{"value": b"v%d" % i} for i in range(10)]))
    assert len(consume_to_end(b.ssl_bootstrap, topic, 1, **ssl_conf(certs))[0]) == 10
    b.assert_alive()


def test_tls12_suites_by_iana_name_and_ssl_protocol(tls_broker, certs):
    """TLS 1.2 only (ssl.enabled.protocols empty, ssl.protocol=TLSv1.2, as Kafka leaves
    the choice to ssl.protocol then) with one ECDHE-ECDSA suite (the test keys are EC):
    TLS 1.3 and the other suites are refused; confluent-kafka with the allowed one (its
    ssl.cipher.suites takes OpenSSL's names) works."""
    b = tls_broker(**{
        "ssl.enabled.protocols": "",
        "ssl.protocol": "TLSv1.2",
        "ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    })
    assert handshake(b.ssl_port, certs, version=ssl.TLSVersion.TLSv1_3) is None
    assert handshake(b.ssl_port, certs, version=ssl.TLSVersion.TLSv1_2,
                     ciphers="ECDHE-ECDSA-AES256-GCM-SHA384") is None
    assert handshake(b.ssl_port, certs, version=ssl.TLSVersion.TLSv1_2,
                     ciphers="ECDHE-ECDSA-AES128-GCM-SHA256") == (
                         "ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2")
    allowed = dict(ssl_conf(certs), **{"ssl.cipher.suites": "ECDHE-ECDSA-AES128-GCM-SHA256"})
    topic = unique_topic("tls12")
    assert_all_delivered(produce_all(producer(b.ssl_bootstrap, **allowed), topic,
                                     [{"value": b"x"}]))
    b.assert_alive()


@pytest.mark.parametrize("settings, expected", [
    ({"ssl.cipher.suites": "TLS_RSA_WITH_AES_128_CBC_SHA"},
     "ssl.cipher.suites: TLS_RSA_WITH_AES_128_CBC_SHA is not a cipher suite Brook offers"),
    ({"listener.name.ssl.ssl.enabled.protocols": "TLSv1.2,TLSv1.1"},
     "ssl.enabled.protocols: TLSv1.1 is not supported"),
    ({"ssl.protocol": "SSLv3"}, "ssl.protocol=SSLv3 is not supported"),
    ({"ssl.enabled.protocols": "TLSv1.3",
      "ssl.cipher.suites": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
     "no client could connect"),
    # The test keys are EC: RSA suites leave no usable suite.
    ({"ssl.enabled.protocols": "TLSv1.2",
      "ssl.cipher.suites": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
     "keystore's ECDSA key"),
])
def test_unusable_protocol_and_suite_settings_stop_the_broker(tls_broker, settings, expected):
    with pytest.raises(Exception) as failed:
        tls_broker(**settings)
    assert expected in str(failed.value), failed.value
