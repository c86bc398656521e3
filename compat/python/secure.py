"""The secured run's scenarios (compat/run.sh --secure), shared by the Python drivers
(py_compat.py for confluent-kafka and kafka-python, kcat/kcat_compat.py, cli/cli_compat.py).

run.sh starts the client's broker with a SASL_SSL listener (PLAIN users admin, alice;
SCRAM-SHA-512 users admin, carol), an SSL listener requiring a client certificate, and the
StandardAuthorizer with super.users=User:admin, and passes:

    argv bootstrap            the SASL_SSL listener
    COMPAT_SSL_BOOTSTRAP      the SSL (mTLS) listener
    COMPAT_CERTS              ca.pem, client.crt, client.key, client.keystore.pem (key + chain)
    COMPAT_MTLS_PRINCIPAL     the client certificate's principal, as Kafka prints it

For each authentication method (`plain`: alice, `scram512`: carol, `mtls`: the client
certificate) the driver gives an `ops` object doing the client's own calls; `run()` checks:

- `secure.<m>.refused`: the admin creates the method's topic; the principal's produce is
  refused with TOPIC_AUTHORIZATION_FAILED, its group consume with GROUP_AUTHORIZATION_FAILED
  (or TOPIC_AUTHORIZATION_FAILED, for clients that look the topic up before joining the
  group), and its metadata does not list the topic;
- `secure.<m>.allowed`: the admin creates WRITE, DESCRIBE, READ on the topic and READ on the
  group for the principal (the client's admin API); the principal produces N records and
  consumes them back in the group, committing;
- `secure.<m>.revoked`: the admin deletes those ACLs (4 deleted); a fresh producer and
  consumer of the principal are refused again;
- `secure.bad_password`: alice with a wrong password gets an authentication error;
- `secure.scram_user` (first): the admin makes the SCRAM-SHA-512 user carol with the
  client's AlterUserScramCredentials (`ops.scram_user()`), or it is n/a (`ops.no_scram_api`
  says why; run.sh made carol with `brook serve --add-scram`).
"""

from __future__ import annotations

import os
import re

from results import Failed, check, report, scenario  # noqa: F401 (drivers use them through secure)

CERTS = os.environ.get("COMPAT_CERTS", "")
SSL_BOOTSTRAP = os.environ.get("COMPAT_SSL_BOOTSTRAP", "")
MTLS_PRINCIPAL = os.environ.get("COMPAT_MTLS_PRINCIPAL", "")
USERS = {"admin": "admin-secret", "alice": "alice-secret", "carol": "carol-secret"}
# method -> (SASL mechanism or None for mTLS, user)
METHODS = {"plain": ("PLAIN", "alice"), "scram512": ("SCRAM-SHA-512", "carol"), "mtls": (None, None)}
N = 10


def enabled() -> bool:
    return bool(os.environ.get("COMPAT_SECURE"))


def cert(name: str) -> str:
    return os.path.join(CERTS, name)


def principal(method: str) -> str:
    return MTLS_PRINCIPAL if method == "mtls" else f"User:{METHODS[method][1]}"


def squash(text: str) -> str:
    return re.sub("[^a-z]", "", text.lower())


def refused(fn, wants: tuple[str, ...], what: str) -> str:
    """Runs fn (which must fail); the error must name one of `wants` (e.g. "topic
    authorization", compared without case, spaces and underscores). Returns its text."""
    want = " or ".join(wants)
    try:
        got = fn()
    except Failed:
        raise
    except Exception as e:  # noqa: BLE001
        text = f"{type(e).__name__}: {e}"
        check(any(squash(w) in squash(text) for w in wants), f"{what}: expected {want} failed, got {text[:600]}")
        return text[:300]
    raise Failed(f"{what}: expected {want} failed, but it succeeded ({str(got)[:200]})")


def run(ops, prefix: str, run_id: str, skip: dict | None = None) -> None:
    """ops: create_topic(topic); grant(principal, topic, group); revoke(principal, topic,
    group) -> ACLs deleted; produce(method, topic, values) (raises on error);
    consume(method, topic, group, n) -> values (commits; raises on error);
    topics(method) -> topic names in metadata; bad_password() -> the error text (raises if
    it connected); scram_user() -> detail, or no_scram_api: why not. skip: method -> reason
    it is n/a for this client."""
    skip = skip or {}
    if hasattr(ops, "scram_user"):
        scenario("secure.scram_user", ops.scram_user)
    else:
        report("secure.scram_user", "n/a", f"{ops.no_scram_api}; carol made with brook serve --add-scram")
    scenario("secure.bad_password", ops.bad_password)
    for m in METHODS:
        if m in skip:
            for s in ("refused", "allowed", "revoked"):
                report(f"secure.{m}.{s}", "n/a", skip[m])
            continue
        topic, group, who = f"{prefix}-sec-{m}-{run_id}", f"{prefix}-secg-{m}-{run_id}", principal(m)
        values = [f"{m}-{i}" for i in range(N)]

        def refuse(stage, m=m, topic=topic, group=group):
            p = refused(lambda: ops.produce(m, topic, [f"{stage}-x"]), ("topic authorization",), "produce")
            # Clients that ask for the topic's metadata before joining get its refusal first.
            c = refused(lambda: ops.consume(m, topic, group, 1), ("group authorization", "topic authorization"),
                        "group consume")
            return p, c

        def refused_before(m=m, topic=topic, who=who, refuse=refuse):
            ops.create_topic(topic)
            p, c = refuse("before")
            listed = ops.topics(m)
            check(topic not in listed, f"metadata lists {topic} to {who}")
            return f"{who}: produce refused ({p}); group consume refused ({c}); metadata hides the topic"

        def allowed(m=m, topic=topic, group=group, who=who, values=values):
            ops.grant(who, topic, group)
            ops.produce(m, topic, values)
            got = ops.consume(m, topic, group, N)
            check(list(got) == values, f"consumed {got}, want {values}")
            return (f"admin created 4 ACLs for {who}; produced {N}, consumed {N} in group {group} "
                    "and committed")

        def revoked(m=m, topic=topic, group=group, who=who, refuse=refuse):
            n = ops.revoke(who, topic, group)
            check(n == 4, f"delete ACLs removed {n}, want 4")
            p, c = refuse("after")
            return f"admin deleted {n} ACLs; produce refused ({p}); group consume refused ({c})"

        scenario(f"secure.{m}.refused", refused_before)
        scenario(f"secure.{m}.allowed", allowed)
        scenario(f"secure.{m}.revoked", revoked)
