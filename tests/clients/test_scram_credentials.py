"""SCRAM credentials (KIP-554) kept in the metadata log: managed with Apache Kafka's
own `kafka-configs --entity-type users` (ConfigCommand) and confluent-kafka's admin
client, created at start with `brook serve --add-scram`, surviving restarts, and stored
as salted keys only."""

from __future__ import annotations

import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from kafka_helpers import admin_client
from test_cluster_tools import JVM, kafka_jars, kafka_tool

CONFIG_COMMAND = "org.apache.kafka.tools.ConfigCommand"


def configs(bootstrap: str, *args: str) -> str:
    return kafka_tool(CONFIG_COMMAND, "--bootstrap-server", bootstrap, *args)


def configs_failing(bootstrap: str, *args: str) -> str:
    cmd = [*JVM, "-cp", f"{kafka_jars()}/*", CONFIG_COMMAND, "--bootstrap-server",
           bootstrap, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0, r.stdout
    return r.stdout + r.stderr


def users(bootstrap: str) -> dict[str, dict[int, int]]:
    """user -> {mechanism code: iterations}, from confluent-kafka."""
    a = admin_client(bootstrap)  # kept alive until the answer is in
    found = a.describe_user_scram_credentials().result(20)
    return {u: {i.mechanism.value: i.iterations for i in d.scram_credential_infos}
            for u, d in found.items()}


def alter(bootstrap: str, alterations) -> dict[str, int | None]:
    """user -> error code (None: done)."""
    out = {}
    a = admin_client(bootstrap)
    for user, f in a.alter_user_scram_credentials(alterations).items():
        try:
            f.result(20)
            out[user] = None
        except KafkaException as e:
            out[user] = e.args[0].code()
    return out


SHA256, SHA512 = ScramMechanism.SCRAM_SHA_256, ScramMechanism.SCRAM_SHA_512


def test_kafka_configs_manages_scram_users_and_they_survive_a_restart(brook):
    b = brook.bootstrap
    out = configs(b, "--alter", "--entity-type", "users", "--entity-name", "alice",
                  "--add-config", "SCRAM-SHA-512=[password=alice-secret]")
    assert "Completed updating config for user alice" in out
    configs(b, "--alter", "--entity-type", "users", "--entity-name", "bob",
            "--add-config", "SCRAM-SHA-256=[iterations=8192,password=bob-secret]")
    described = configs(b, "--describe", "--entity-type", "users")
    assert "user-principal 'alice' are SCRAM-SHA-512=iterations=4096" in described
    assert "user-principal 'bob' are SCRAM-SHA-256=iterations=8192" in described
    one = configs(b, "--describe", "--entity-type", "users", "--entity-name", "bob")
    assert "SCRAM-SHA-256=iterations=8192" in one and "alice" not in one

    # Kafka 4 refuses a user named twice in one request, even for two mechanisms.
    out = configs_failing(b, "--alter", "--entity-type", "users", "--entity-name", "carol",
                          "--add-config",
                          "SCRAM-SHA-256=[password=x],SCRAM-SHA-512=[password=y]")
    assert "DuplicateResourceException" in out

    brook.restart()
    assert users(brook.bootstrap) == {"alice": {2: 4096}, "bob": {1: 8192}}
    configs(brook.bootstrap, "--alter", "--entity-type", "users", "--entity-name", "alice",
            "--delete-config", "SCRAM-SHA-512")
    assert users(brook.bootstrap) == {"bob": {1: 8192}}

    # Only salted keys reach the disk.
    for f in brook.data_dir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert b"alice-secret" not in data and b"bob-secret" not in data, f


def test_admin_client_alter_and_describe_with_kafkas_errors(brook):
    b = brook.bootstrap
    assert alter(b, [
        UserScramCredentialUpsertion("alice", ScramCredentialInfo(SHA512, 4096), b"pw"),
        UserScramCredentialUpsertion("few", ScramCredentialInfo(SHA256, 4095), b"pw"),
        UserScramCredentialUpsertion("many", ScramCredentialInfo(SHA512, 16385), b"pw"),
        UserScramCredentialDeletion("ghost", SHA256),
    ]) == {
        "alice": None,
        "few": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "many": KafkaError.UNACCEPTABLE_CREDENTIAL,
        "ghost": KafkaError.RESOURCE_NOT_FOUND,
    }
    assert users(b) == {"alice": {2: 4096}}

    a = admin_client(b)
    found = a.describe_user_scram_credentials(["alice", "nobody"])
    assert [i.mechanism.value for i in found["alice"].result(20).scram_credential_infos] == [2]
    with pytest.raises(KafkaException) as e:
        found["nobody"].result(20)
    assert e.value.args[0].code() == KafkaError.RESOURCE_NOT_FOUND
    assert "does not exist: nobody" in e.value.args[0].str()

    # A second mechanism, then a new password, then deletion.
    assert alter(b, [UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(SHA256, 8192), b"pw2")]) == {"alice": None}
    assert users(b) == {"alice": {1: 8192, 2: 4096}}
    assert alter(b, [UserScramCredentialDeletion("alice", SHA256)]) == {"alice": None}
    assert alter(b, [UserScramCredentialDeletion("alice", SHA512)]) == {"alice": None}
    assert users(b) == {}


def test_add_scram_creates_the_first_credential_and_never_overwrites_it(brook_factory):
    brook = brook_factory(start=False)
    brook.extra_args = ["--add-scram", "SCRAM-SHA-512=[name=admin,password=admin-secret]"]
    brook.start()
    assert users(brook.bootstrap) == {"admin": {2: 4096}}
    # Changed with the admin client: a restart with the same flag leaves it alone.
    assert alter(brook.bootstrap, [UserScramCredentialUpsertion(
        "admin", ScramCredentialInfo(SHA512, 8192), b"changed")]) == {"admin": None}
    brook.restart()
    assert users(brook.bootstrap) == {"admin": {2: 8192}}
    assert "admin-secret" not in " ".join(p.read_text(errors="replace")
                                          for p in brook.data_dir.rglob("*") if p.is_file())


def test_scram_users_created_on_one_node_apply_on_every_node(cluster):
    assert alter(cluster.bootstrap_of(1), [UserScramCredentialUpsertion(
        "alice", ScramCredentialInfo(SHA512, 8192), b"pw")]) == {"alice": None}
    for node in (2, 3):
        cluster.wait(lambda: users(cluster.bootstrap_of(node)) == {"alice": {2: 8192}}, 10,
                     what=f"alice on node {node}")
    # Changed through another node while a third is down (not the controller, whose
    # failover is another test's subject): it catches up from the log when it returns.
    controller = cluster.metadata(via=1).controller_id
    down = next(n for n in (3, 2, 1) if n != controller)
    via = next(n for n in (1, 2, 3) if n not in (down, controller))
    cluster.kill(down)
    assert alter(cluster.bootstrap_of(via), [
        UserScramCredentialDeletion("alice", SHA512),
        UserScramCredentialUpsertion("bob", ScramCredentialInfo(SHA256, 4096), b"pw"),
    ]) == {"alice": None, "bob": None}
    cluster.start(down)
    cluster.wait(lambda: users(cluster.bootstrap_of(down)) == {"bob": {1: 4096}}, 20,
                 what=f"node {down} caught up")
