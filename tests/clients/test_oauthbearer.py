"""SASL/OAUTHBEARER with confluent-kafka: Brook checks each JWT against a JWKS file made
here (an RSA key, RS256), with Kafka's settings (`sasl.oauthbearer.jwks.endpoint.url`,
`...expected.audience`, `...expected.issuer` under `listener.name.<l>.oauthbearer.`). A
good token produces and consumes; a token for another audience, an expired one, or one
signed by another key is refused; the token's `sub` is the principal ACLs see.
"""

from __future__ import annotations

import json
import pathlib
import re
import time
import uuid

import jwt
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, NewTopic,
                                   ResourcePatternType, ResourceType)
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from conftest import Broker, _finish
from kafka_helpers import (admin_client, assert_all_delivered, consume_to_end, produce_all,
                           producer, unique_topic)
from procs import pick_port

AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
AUDIENCE = "brook"
ISSUER = "https://idp.example"
KID = "test-key-1"


class OAuthBroker(Broker):
    """PLAINTEXT (readiness) plus SASL_PLAINTEXT with OAUTHBEARER only."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.sasl_port = pick_port()

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def command(self) -> list[str]:
        cmd = super().command()
        i = cmd.index("--listen")
        cmd[i + 1] = (f"PLAINTEXT://127.0.0.1:{self.port},"
                      f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}")
        return cmd


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """(private key, a foreign private key, the JWKS file's path)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "RS256"})
    path = tmp_path_factory.mktemp("jwks") / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return key, foreign, path


@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory, brook_bin, keys):
    _, _, jwks = keys
    mp = pytest.MonkeyPatch()
    mp.setenv("BROOK_LOG", "info,brook_broker::connection=debug")
    prefix = "listener.name.sasl_plaintext."
    b = OAuthBroker(brook_bin, tmp_path_factory.mktemp("oauth"), {
        prefix + "sasl.enabled.mechanisms": "OAUTHBEARER",
        prefix + "oauthbearer.sasl.oauthbearer.jwks.endpoint.url": f"file://{jwks}",
        prefix + "oauthbearer.sasl.oauthbearer.expected.audience": f"other,{AUDIENCE}",
        prefix + "oauthbearer.sasl.oauthbearer.expected.issuer": ISSUER,
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
        mp.undo()


def token(key, sub: str, *, aud: str = AUDIENCE, lifetime_s: int = 600, kid: str = KID) -> str:
    now = int(time.time())
    claims = {"sub": sub, "aud": aud, "iss": ISSUER, "iat": now, "exp": now + lifetime_s,
              "scope": "kafka", "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def oauth_conf(tok: str, sub: str) -> dict:
    def oauth_cb(_config):
        # (token, expiry in seconds since the epoch, principal name)
        return tok, time.time() + 600, sub
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": oauth_cb}


def refused(b: OAuthBroker, tok: str) -> None:
    a = admin_client(b.sasl_bootstrap, **oauth_conf(tok, "x"))
    with pytest.raises(KafkaException):
        a.list_topics(timeout=5)


def test_produce_and_consume_with_a_signed_token(oauth_broker, keys):
    b, (key, _, _) = oauth_broker, keys
    conf = oauth_conf(token(key, "svc-admin"), "svc-admin")
    topic = unique_topic("oauth")
    records = [{"key": f"k{i}".encode(), "value": f"v{i}".encode()} for i in range(20)]
    assert_all_delivered(produce_all(producer(b.sasl_bootstrap, **conf), topic, records,
                                     timeout=30))
    got = consume_to_end(b.sasl_bootstrap, topic, 1, timeout=30, **conf)[0]
    assert [r.value for r in got] == [r["value"] for r in records]
    # With the authorizer on, only the super user (the token's sub) may do all this.
    assert "principal=User:svc-admin" in b.log_tail()


def test_bad_tokens_are_refused(oauth_broker, keys):
    b, (key, foreign, _) = oauth_broker, keys
    refused(b, token(key, "svc-admin", aud="someone-else"))
    refused(b, token(key, "svc-admin", lifetime_s=-120))  # beyond the 30 s clock skew
    refused(b, token(foreign, "svc-admin"))
    refused(b, "not-a-jwt")
    log = b.log_tail()
    for reason in ("aud is not an expected audience", "token expired",
                   "signature check failed", "malformed token"):
        assert re.search(rf"authentication failed: invalid token: {reason}", log), reason
    b.assert_alive()
    # Others go on.
    admin_client(b.sasl_bootstrap, **oauth_conf(token(key, "svc-admin"), "svc-admin")) \
        .list_topics(timeout=10)


def test_acls_see_the_sub_claim(oauth_broker, keys):
    b, (key, _, _) = oauth_broker, keys
    topic = unique_topic("oauth-acl")
    a = admin_client(b.sasl_bootstrap, **oauth_conf(token(key, "svc-admin"), "svc-admin"))
    for f in a.create_topics([NewTopic(topic, 1, 1)]).values():
        f.result(20)

    def produce_error():
        p = producer(b.sasl_bootstrap, **oauth_conf(token(key, "alice"), "alice"),
                     **{"message.timeout.ms": 8000})
        errors: list = []
        p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
        p.flush(15)
        assert errors, "no delivery report"
        return errors[0]

    err = produce_error()
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    for f in a.create_acls([AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                                       "User:alice", "*", AclOperation.WRITE,
                                       AclPermissionType.ALLOW)]).values():
        f.result(20)
    assert produce_error() is None


def test_token_expiry_bounds_the_session_and_clients_reauthenticate(oauth_broker, keys):
    """KIP-368 driven by the token: a 4 s token makes a 4 s session (no
    connections.max.reauth.ms is set); confluent-kafka fetches a fresh token and
    re-authenticates on its open connection, and keeps producing."""
    b, (key, _, _) = oauth_broker, keys
    calls = []

    def oauth_cb(_config):
        calls.append(time.time())
        return token(key, "svc-admin", lifetime_s=4), time.time() + 4, "svc-admin"

    conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": oauth_cb}
    topic = unique_topic("oauth-reauth")
    p = producer(b.sasl_bootstrap, **conf)
    sent, deadline = 0, time.monotonic() + 10
    while time.monotonic() < deadline:
        assert_all_delivered(produce_all(p, topic, [{"value": b"v%d" % sent}], timeout=10))
        sent += 1
        time.sleep(0.2)
    assert len(calls) >= 2, calls
    peers = re.findall(r"SASL client authenticated .*peer=(\S+) principal=User:svc-admin",
                       b.log_tail())
    assert any(peers.count(x) > 1 for x in set(peers)), peers
    got = consume_to_end(b.sasl_bootstrap, topic, 1, timeout=20,
                         **oauth_conf(token(key, "svc-admin"), "svc-admin"))[0]
    assert len(got) == sent
