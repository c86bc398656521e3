"""SASL/OAUTHBEARER with the JWKS fetched from an https URL, as Kafka's
`RefreshingHttpsJwks` does: the broker trusts the identity provider through the CA of
`ssl.truststore.location` given in the listener's OAuthBearerLoginModule JAAS line,
fetches the keys at start, and fetches them again when a token names a key id it does
not know (the key was rotated), so a client's retry succeeds without a restart. A key
dropped from the JWKS stops working after the next refresh. The identity provider here
is a Python HTTPS server on 127.0.0.1 whose JWKS the test swaps.
"""

from __future__ import annotations

import http.server
import json
import ssl
import threading
import time

import pytest
from confluent_kafka import KafkaException
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import _finish
from kafka_helpers import admin_client, wait_until
from test_oauthbearer import AUDIENCE, AUTHORIZER, ISSUER, OAuthBroker, oauth_conf, token
from test_tls import make_ca, make_leaf

LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"


def jwk(key, kid: str) -> dict:
    d = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    d.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return d


class IdP:
    """An HTTPS server answering GET /jwks.json with `self.jwks`; counts the fetches."""

    def __init__(self, certdir):
        idp = self
        self.jwks: dict = {"keys": []}
        self.fetches = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                if self.path != "/jwks.json":
                    self.send_error(404)
                    return
                idp.fetches += 1
                body = json.dumps(idp.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(certdir / "idp.crt", certdir / "idp.key")
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    d = tmp_path_factory.mktemp("idp-certs")
    make_ca(d, "ca")
    make_leaf(d, "idp", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1")
    server = IdP(d)
    server.ca = d / "ca.pem"
    yield server
    server.close()


@pytest.fixture(scope="module")
def keys():
    return [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2)]


@pytest.fixture(scope="module")
def url_broker(tmp_path_factory, brook_bin, idp, keys):
    idp.jwks = {"keys": [jwk(keys[0], "k1")]}
    prefix = "listener.name.sasl_plaintext.oauthbearer."
    b = OAuthBroker(brook_bin, tmp_path_factory.mktemp("oauth-url"), {
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER",
        prefix + "sasl.oauthbearer.jwks.endpoint.url":
            f"https://localhost:{idp.port}/jwks.json",
        prefix + "sasl.jaas.config":
            f'{LOGIN_MODULE} required ssl.truststore.type="PEM" '
            f'ssl.truststore.location="{idp.ca}";',
        prefix + "sasl.oauthbearer.expected.audience": AUDIENCE,
        prefix + "sasl.oauthbearer.expected.issuer": ISSUER,
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:svc-admin",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
    })
    try:
        b.start()
        yield b
    finally:
        _finish([b])


def accepted(b, tok: str) -> bool:
    try:
        admin_client(b.sasl_bootstrap, **oauth_conf(tok, "svc-admin")).list_topics(timeout=5)
        return True
    except KafkaException:
        return False


def test_keys_come_from_the_https_jwks_and_follow_its_rotation(url_broker, idp, keys):
    b = url_broker
    assert idp.fetches >= 1, "the broker did not fetch the JWKS at start"
    assert accepted(b, token(keys[0], "svc-admin", kid="k1"))
    assert "JWKS refreshed" in b.log_tail()

    # Rotation: the provider now signs with k2 (and still publishes k1). A k2 token
    # makes the broker fetch again; the token is accepted once the new keys are in.
    idp.jwks = {"keys": [jwk(keys[0], "k1"), jwk(keys[1], "k2")]}
    before = idp.fetches
    deadline = time.monotonic() + 15
    ok = False
    while time.monotonic() < deadline and not ok:
        ok = accepted(b, token(keys[1], "svc-admin", kid="k2"))
        if not ok:
            time.sleep(0.5)
    assert ok, "a token of the rotated-in key was never accepted"
    assert idp.fetches > before

    # Tokens with made-up key ids cannot make the broker fetch more than once per
    # expedite interval (10 s).
    # (librdkafka retries each refused login for the whole 5 s timeout.)
    fetches, t0 = idp.fetches, time.monotonic()
    for i in range(2):
        assert not accepted(b, token(keys[1], "svc-admin", kid=f"made-up-{i}"))
    allowed = int((time.monotonic() - t0) // 10) + 1
    assert idp.fetches - fetches <= allowed, (fetches, idp.fetches, allowed)
    b.assert_alive()


def test_an_unreachable_jwks_url_does_not_stop_the_broker(tmp_path_factory, brook_bin, idp,
                                                          keys):
    """No identity provider at start: the broker starts (with a warning), refuses
    tokens, and takes them once the JWKS answers."""
    b = OAuthBroker(brook_bin, tmp_path_factory.mktemp("oauth-url-down"), {
        "listener.name.sasl_plaintext.sasl.enabled.mechanisms": "OAUTHBEARER",
        "sasl.oauthbearer.jwks.endpoint.url": f"https://localhost:{idp.port}/missing.json",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms": "500",
        "listener.name.sasl_plaintext.oauthbearer.sasl.jaas.config":
            f'{LOGIN_MODULE} required ssl.truststore.location="{idp.ca}";',
        "sasl.oauthbearer.expected.audience": AUDIENCE,
    })
    try:
        b.start()
        wait_until(lambda: "cannot fetch the keys" in b.log_tail(), timeout=10,
                   what="the JWKS fetch failure logged")
        assert "404" in b.log_tail()
        assert not accepted(b, token(keys[0], "svc-admin", kid="k1"))
        b.assert_alive()
    finally:
        _finish([b])
