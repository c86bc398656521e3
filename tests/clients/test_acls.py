"""ACLs (Kafka's StandardAuthorizer) with real clients: Kafka's own AclCommand
(kafka-acls) adds, lists and removes ACLs as the super user; a SASL/PLAIN user
(confluent-kafka) is refused produce and consume with TOPIC_AUTHORIZATION_FAILED /
GROUP_AUTHORIZATION_FAILED until granted; DENY beats ALLOW; PREFIXED patterns; Metadata
hides topics the user may not DESCRIBE; ACLs survive a restart; without an authorizer
the ACL APIs answer SECURITY_DISABLED.

One broker serves the module: PLAINTEXT (for the fixture's readiness check) and
SASL_PLAINTEXT with PLAIN users admin (super user), alice, bob and carol.
"""

from __future__ import annotations

import pathlib
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, NewTopic, ResourcePatternType,
                                   ResourceType)

from conftest import Broker, _finish
from kafka_helpers import admin_client, producer, unique_topic, wait_until
from procs import pick_port
from test_cluster_tools import JVM, kafka_jars

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret",
         "carol": "carol-secret"}
PLAIN_JAAS = ('org.apache.kafka.common.security.plain.PlainLoginModule required '
              'username="admin" password="admin-secret" '
              + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


class AclBroker(Broker):
    """PLAINTEXT plus SASL_PLAINTEXT (PLAIN), with the StandardAuthorizer."""

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
def acl_broker(tmp_path_factory, brook_bin):
    b = AclBroker(brook_bin, tmp_path_factory.mktemp("acl"), {
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": PLAIN_JAAS,
        "sasl.enabled.mechanisms": "PLAIN",
        "authorizer.class.name": AUTHORIZER,
        "super.users": "User:admin",
        # Clients reading from their topics' start need no internal topic of their own.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
    })
    try:
        b.start()
        yield b
    finally:
        _finish([b])


def conf(user: str) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": user, "sasl.password": USERS[user]}


def admin(b: AclBroker, user: str = "admin"):
    return admin_client(b.sasl_bootstrap, **conf(user))


def create_topics(b: AclBroker, *names: str) -> None:
    a = admin(b)  # kept alive until the futures complete
    for f in a.create_topics([NewTopic(n, 1, 1) for n in names]).values():
        f.result(20)


def acl(resource: ResourceType, name: str, user: str, op: AclOperation,
        perm: AclPermissionType = AclPermissionType.ALLOW,
        pattern: ResourcePatternType = ResourcePatternType.LITERAL) -> AclBinding:
    return AclBinding(resource, name, pattern, f"User:{user}", "*", op, perm)


def grant(b: AclBroker, *bindings: AclBinding) -> None:
    a = admin(b)
    for f in a.create_acls(list(bindings)).values():
        f.result(20)


def revoke(b: AclBroker, *bindings: AclBinding) -> None:
    filters = [AclBindingFilter(x.restype, x.name, x.resource_pattern_type, x.principal,
                                x.host, x.operation, x.permission_type) for x in bindings]
    a = admin(b)
    for f in a.delete_acls(filters).values():
        f.result(20)


def produce_error(b: AclBroker, user: str, topic: str) -> KafkaError | None:
    """Produces one record as `user`; the delivery error, if any."""
    p = producer(b.sasl_bootstrap, **conf(user), **{"message.timeout.ms": 8000})
    errors: list = []
    p.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors, "no delivery report"
    return errors[0]


def consume_error(b: AclBroker, user: str, topic: str, group: str,
                  timeout: float = 15.0) -> tuple[int | None, int]:
    """Consumes `topic` in `group` as `user`: (the first error code, records read)."""
    c = Consumer({"bootstrap.servers": b.sasl_bootstrap, **conf(user), "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        n, deadline = 0, time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None:
                if n:
                    break
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return m.error().code(), n
            n += 1
        if n:
            c.commit(asynchronous=False)
        return None, n
    finally:
        c.close()


def acl_command(b: AclBroker, tmp: pathlib.Path, *args: str,
                user: str = "admin") -> subprocess.CompletedProcess:
    """Kafka's kafka-acls (AclCommand) as `user`."""
    props = tmp / f"{user}.properties"
    props.write_text("security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
                     "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule"
                     f' required username="{user}" password="{USERS[user]}";\n')
    return subprocess.run([*JVM, "-cp", f"{kafka_jars()}/*", ACL_COMMAND,
                           "--bootstrap-server", b.sasl_bootstrap,
                           "--command-config", str(props), *args],
                          capture_output=True, text=True, timeout=90)


# ---------------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------------

def test_produce_and_consume_are_refused_until_granted(acl_broker):
    b = acl_broker
    topic, group = unique_topic("acl"), unique_topic("aclg")
    create_topics(b, topic)
    err = produce_error(b, "alice", topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, err
    grant(b, acl(ResourceType.TOPIC, topic, "alice", AclOperation.WRITE))
    assert produce_error(b, "alice", topic) is None
    # READ on the topic, but not on the group.
    grant(b, acl(ResourceType.TOPIC, topic, "alice", AclOperation.READ))
    code, _ = consume_error(b, "alice", topic, group)
    assert code == KafkaError.GROUP_AUTHORIZATION_FAILED
    grant(b, acl(ResourceType.GROUP, group, "alice", AclOperation.READ))
    code, n = consume_error(b, "alice", topic, group)
    assert (code, n) == (None, 1)
    # bob has nothing: both refused.
    err = produce_error(b, "bob", topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Revoked again: refused again.
    revoke(b, acl(ResourceType.TOPIC, topic, "alice", AclOperation.WRITE))
    err = produce_error(b, "alice", topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_group_read_without_the_topic_is_refused_per_topic(acl_broker):
    b = acl_broker
    topic, group = unique_topic("aclt"), unique_topic("acltg")
    create_topics(b, topic)
    grant(b, acl(ResourceType.GROUP, group, "bob", AclOperation.READ),
          acl(ResourceType.TOPIC, topic, "bob", AclOperation.DESCRIBE))
    code, _ = consume_error(b, "bob", topic, group)
    assert code == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_deny_beats_allow_and_prefixed_patterns(acl_broker):
    b = acl_broker
    prefix = unique_topic("pre") + "-"
    open_topic, secret = prefix + "open", prefix + "secret"
    create_topics(b, open_topic, secret)
    grant(b, acl(ResourceType.TOPIC, prefix, "alice", AclOperation.WRITE,
                 pattern=ResourcePatternType.PREFIXED),
          acl(ResourceType.TOPIC, secret, "*", AclOperation.WRITE,
              AclPermissionType.DENY))
    assert produce_error(b, "alice", open_topic) is None
    err = produce_error(b, "alice", secret)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # Outside the prefix: nothing applies.
    other = unique_topic("other")
    create_topics(b, other)
    err = produce_error(b, "alice", other)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_metadata_hides_topics_the_user_may_not_describe(acl_broker):
    b = acl_broker
    seen, hidden = unique_topic("seen"), unique_topic("hidden")
    create_topics(b, seen, hidden)
    grant(b, acl(ResourceType.TOPIC, seen, "bob", AclOperation.READ))
    topics = admin(b, "bob").list_topics(timeout=10).topics
    assert seen in topics and hidden not in topics
    assert {seen, hidden} <= set(admin(b).list_topics(timeout=10).topics)
    # Asked by name: TOPIC_AUTHORIZATION_FAILED.
    md = admin(b, "bob").list_topics(topic=hidden, timeout=10).topics[hidden]
    assert md.error is not None and md.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_acl_apis_need_the_cluster_permission(acl_broker):
    b = acl_broker
    bob = admin(b, "bob")
    fut = bob.create_acls([acl(ResourceType.TOPIC, "x", "bob", AclOperation.ALL)])
    with pytest.raises(KafkaException) as e:
        list(fut.values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # librdkafka reports a DescribeAcls error as no bindings (test_admin.py); the
    # super user's view is not empty.
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    grant(b, acl(ResourceType.GROUP, "g", "bob", AclOperation.READ))
    assert bob.describe_acls(any_filter).result(20) == []
    assert admin(b).describe_acls(any_filter).result(20)
    # CreateTopics without CREATE: refused per topic.
    fut = bob.create_topics([NewTopic(unique_topic("nope"), 1, 1)])
    with pytest.raises(KafkaException) as e:
        list(fut.values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_kafka_acl_command_adds_lists_and_removes(acl_broker, tmp_path):
    b = acl_broker
    topic = unique_topic("cmd")
    create_topics(b, topic)
    r = acl_command(b, tmp_path, "--add", "--allow-principal", "User:bob",
                    "--operation", "Write", "--operation", "Describe", "--topic", topic)
    assert r.returncode == 0, r.stdout + r.stderr
    r = acl_command(b, tmp_path, "--list", "--topic", topic, user="bob")
    assert r.returncode != 0 and "ClusterAuthorizationException" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    r = acl_command(b, tmp_path, "--list", "--topic", topic)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "User:bob" in r.stdout and "WRITE" in r.stdout and "DESCRIBE" in r.stdout, r.stdout
    assert produce_error(b, "bob", topic) is None
    r = acl_command(b, tmp_path, "--remove", "--force", "--allow-principal", "User:bob",
                    "--operation", "Write", "--topic", topic)
    assert r.returncode == 0, r.stdout + r.stderr
    r = acl_command(b, tmp_path, "--list", "--topic", topic)
    assert "WRITE" not in r.stdout and "DESCRIBE" in r.stdout, r.stdout
    err = produce_error(b, "bob", topic)
    assert err is not None and err.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # An ACL on the cluster resource.
    r = acl_command(b, tmp_path, "--add", "--allow-principal", "User:bob",
                    "--operation", "Describe", "--cluster")
    assert r.returncode == 0, r.stdout + r.stderr


def test_acls_survive_a_restart(acl_broker):
    b = acl_broker
    topic = unique_topic("restart")
    create_topics(b, topic)
    grant(b, acl(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE))
    b.restart()
    assert produce_error(b, "bob", topic) is None
    a = admin(b)
    bindings = a.describe_acls(AclBindingFilter(
        ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(20)
    assert [(x.principal, x.operation) for x in bindings] == [("User:bob", AclOperation.WRITE)]


def test_without_an_authorizer_acl_apis_answer_security_disabled(brook):
    a = admin_client(brook.bootstrap)
    fut = a.create_acls([acl(ResourceType.TOPIC, "t", "alice", AclOperation.READ)])
    with pytest.raises(KafkaException) as e:
        list(fut.values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.SECURITY_DISABLED
    # And everything is allowed.
    topic = unique_topic("open")
    p = producer(brook.bootstrap)
    p.produce(topic, b"v")
    assert p.flush(15) == 0
    wait_until(lambda: topic in a.list_topics(timeout=5).topics, 10, what="auto-created")


def test_idempotent_and_transactional_producers(acl_broker):
    """InitProducerId without a transactional id needs IDEMPOTENT_WRITE on the cluster or
    WRITE on some topic (Kafka 3+); with one, WRITE on the transactional id."""
    from confluent_kafka import Producer
    b = acl_broker
    topic, txn_id = unique_topic("idem"), unique_topic("tx")
    create_topics(b, topic)
    grant(b, acl(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE))
    idem = {"bootstrap.servers": b.sasl_bootstrap, **conf("bob"), "enable.idempotence": True}
    assert produce_error(b, "bob", topic) is None
    p = Producer(idem)
    p.produce(topic, b"idempotent")
    assert p.flush(15) == 0
    tx = Producer({**idem, "transactional.id": txn_id, "transaction.timeout.ms": 10000})
    with pytest.raises(KafkaException) as e:
        tx.init_transactions(15)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    grant(b, acl(ResourceType.TRANSACTIONAL_ID, txn_id, "bob", AclOperation.WRITE))
    tx = Producer({**idem, "transactional.id": txn_id, "transaction.timeout.ms": 10000})
    tx.init_transactions(15)
    tx.begin_transaction()
    tx.produce(topic, b"in a transaction")
    tx.commit_transaction(15)


def test_authorized_operations_are_the_principals(acl_broker):
    from confluent_kafka import TopicCollection
    b = acl_broker
    topic = unique_topic("ops")
    create_topics(b, topic)
    grant(b, acl(ResourceType.TOPIC, topic, "bob", AclOperation.WRITE))
    a = admin(b, "bob")
    desc = a.describe_topics(TopicCollection([topic]),
                             include_authorized_operations=True)[topic].result(20)
    assert set(desc.authorized_operations) == {AclOperation.WRITE, AclOperation.DESCRIBE}


@pytest.mark.brook_config({"authorizer.class.name": AUTHORIZER, "super.users": "User:ANONYMOUS"})
def test_acls_created_on_one_node_apply_on_every_node(cluster):
    """ACLs are metadata records: created through one node, every node has them (the
    PLAINTEXT clients here are User:ANONYMOUS, the super user)."""
    any_filter = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)

    def listed(node: int) -> set[tuple[str, str]]:
        a = admin_client(cluster.bootstrap_of(node))
        return {(x.name, x.principal) for x in a.describe_acls(any_filter).result(20)}

    a = admin_client(cluster.bootstrap_of(1))
    for f in a.create_acls([acl(ResourceType.TOPIC, "orders", "alice", AclOperation.READ),
                            acl(ResourceType.GROUP, "billing", "alice", AclOperation.READ)]
                           ).values():
        f.result(20)
    want = {("orders", "User:alice"), ("billing", "User:alice")}
    for node in (1, 2, 3):
        cluster.wait(lambda: listed(node) == want, 10, what=f"the ACLs on node {node}")
    b = admin_client(cluster.bootstrap_of(2))
    for f in b.delete_acls([AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY,
                                             None, None, AclOperation.ANY,
                                             AclPermissionType.ANY)]).values():
        f.result(20)
    for node in (1, 2, 3):
        cluster.wait(lambda: listed(node) == {("orders", "User:alice")}, 10,
                     what=f"the deletion on node {node}")


def test_admin_apis_check_their_resources(acl_broker):
    from confluent_kafka.admin import ConfigResource
    b = acl_broker
    topic, group = unique_topic("adm"), unique_topic("admg")
    create_topics(b, topic)
    carol = admin(b, "carol")  # no ACLs elsewhere in this module

    def describe_topic_configs():
        return list(carol.describe_configs([ConfigResource("topic", topic)]).values())[0].result(20)

    with pytest.raises(KafkaException) as e:
        describe_topic_configs()
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # ALTER_CONFIGS implies DESCRIBE_CONFIGS.
    grant(b, acl(ResourceType.TOPIC, topic, "carol", AclOperation.ALTER_CONFIGS))
    assert "retention.ms" in describe_topic_configs()
    with pytest.raises(KafkaException) as e:
        list(carol.describe_configs([ConfigResource("broker", "1")]).values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    with pytest.raises(KafkaException) as e:
        list(carol.delete_topics([topic]).values())[0].result(20)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # A group carol may describe is listed; others are not.
    grant(b, acl(ResourceType.TOPIC, topic, "alice", AclOperation.READ),
          acl(ResourceType.GROUP, group, "alice", AclOperation.READ))
    assert produce_error(b, "admin", topic) is None
    assert consume_error(b, "alice", topic, group) == (None, 1)
    listed = lambda a: {g.group_id for g in a.list_consumer_groups().result(20).valid}  # noqa: E731
    assert group in listed(admin(b))
    assert group not in listed(carol)
    grant(b, acl(ResourceType.GROUP, group, "carol", AclOperation.DESCRIBE))
    assert group in listed(carol)


def test_a_regex_subscription_gets_only_topics_the_member_may_describe(acl_broker):
    """KIP-848 (librdkafka, group.protocol=consumer): a server-side regular expression
    resolves only to the topics the member's principal may DESCRIBE, as Kafka's
    coordinator filters it; the topic it may not see is never assigned."""
    b = acl_broker
    prefix = unique_topic("rxacl")
    seen, hidden, group = f"{prefix}-seen", f"{prefix}-hidden", unique_topic("rxaclg")
    create_topics(b, seen, hidden)
    p = producer(b.sasl_bootstrap, **conf("admin"))
    for t in (seen, hidden):
        p.produce(t, b"v")
    assert p.flush(15) == 0
    grant(b, acl(ResourceType.TOPIC, seen, "carol", AclOperation.READ),
          acl(ResourceType.GROUP, group, "carol", AclOperation.READ))
    c = Consumer({"bootstrap.servers": b.sasl_bootstrap, **conf("carol"),
                  "group.id": group, "group.protocol": "consumer",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([f"^{prefix}-.*"])
        read: list[str] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not read:
            m = c.poll(0.5)
            if m is not None and not m.error():
                read.append(m.topic())
        assert read == [seen], read
        time.sleep(2)
        assert {tp.topic for tp in c.assignment()} == {seen}
    finally:
        c.close()


def test_create_topics_shows_configs_only_to_those_who_may_describe_them(acl_broker):
    import kafka_wire as wire
    b = acl_broker
    mine, theirs = unique_topic("cfg-mine"), unique_topic("cfg-theirs")
    grant(b, acl(ResourceType.TOPIC, mine, "carol", AclOperation.CREATE),
          acl(ResourceType.TOPIC, mine, "carol", AclOperation.DESCRIBE_CONFIGS),
          acl(ResourceType.TOPIC, theirs, "carol", AclOperation.CREATE))
    s = wire.connect(b.sasl_port, timeout=30)
    try:
        wire.sasl_plain(s, "carol", USERS["carol"])
        s.sendall(wire.create_topics_v7(1, [(mine, 2), (theirs, 3)], "carol-admin"))
        _, results = wire.parse_create_topics_v7(
            wire.read_response(s, 1, flexible_header=True), with_configs=True)
    finally:
        s.close()
    by_name = {r[0]: r for r in results}
    # Kafka: the configs, partitions and replication factor of a created topic are
    # shown only with DESCRIBE_CONFIGS on it; otherwise topic_config_error_code says
    # TOPIC_AUTHORIZATION_FAILED. Both topics are created.
    _, code, _, partitions, configs, config_error = by_name[mine]
    assert (code, partitions, config_error) == (0, 2, 0), by_name[mine]
    assert "retention.ms" in configs, configs
    _, code, _, partitions, configs, config_error = by_name[theirs]
    assert (code, partitions) == (0, -1) and not configs, by_name[theirs]
    assert config_error == KafkaError.TOPIC_AUTHORIZATION_FAILED, by_name[theirs]
    topics = admin(b).list_topics(timeout=20).topics
    assert mine in topics and theirs in topics


def test_brook_acl_commands_over_sasl(acl_broker):
    """`brook acl add|list|remove`, logged in with -X as the super user; a user
    without DESCRIBE on the cluster is refused with Kafka's error."""
    from conftest import find_brook_bin
    b = acl_broker
    topic = unique_topic("cli-acl")

    def brook(*args: str, user: str = "admin") -> subprocess.CompletedProcess:
        login = ["-b", b.sasl_bootstrap, "-X", "security.protocol=SASL_PLAINTEXT",
                 "-X", "sasl.mechanism=PLAIN", "-X", f"sasl.username={user}",
                 "-X", f"sasl.password={USERS[user]}"]
        return subprocess.run([find_brook_bin(), *args, *login], capture_output=True,
                              text=True, timeout=60)

    r = brook("acl", "add", "--principal", "User:bob", "--operation", "read",
              "--topic", topic)
    assert r.returncode == 0, r.stderr
    r = brook("acl", "list", "--topic", topic)
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert ["TOPIC", topic, "LITERAL", "User:bob", "*", "READ", "ALLOW"] in rows, r.stdout
    # (alice has no ACL on the cluster here; another test gives bob DESCRIBE on it.)
    r = brook("acl", "list", user="alice")
    assert r.returncode != 0 and "CLUSTER_AUTHORIZATION_FAILED" in r.stderr, r.stderr
    r = brook("acl", "remove", "--principal", "User:bob", "--operation", "read",
              "--topic", topic)
    assert r.returncode == 0 and "Removed 1 ACL(s)" in r.stdout, r.stdout + r.stderr
    r = brook("acl", "list", "--topic", topic)
    assert "User:bob" not in r.stdout, r.stdout
    # A wrong password is a clear error, not a hang.
    r = subprocess.run([find_brook_bin(), "acl", "list", "-b", b.sasl_bootstrap,
                        "-X", "security.protocol=SASL_PLAINTEXT", "-X", "sasl.mechanism=PLAIN",
                        "-X", "sasl.username=admin", "-X", "sasl.password=nope"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "SASL PLAIN login as admin" in r.stderr, r.stderr


def test_share_group_offsets_check_group_and_topic_acls(acl_broker, tmp_path):
    """Kafka's checks for the share group offset APIs: DESCRIBE on the group to list
    offsets (topics the principal may not DESCRIBE are left out), READ on the group and
    each topic to alter, DELETE on the group to delete."""
    from test_share_groups import ShareConsumer, share_admin
    b = acl_broker
    topic, group = unique_topic("shacl"), unique_topic("gshacl")
    create_topics(b, topic)
    jaas = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="{0}" password="{1}";')
    sasl = ["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN"]
    for user in ("admin", "bob"):
        (tmp_path / f"{user}.properties").write_text(
            "\n".join(sasl) + "\nsasl.jaas.config=" + jaas.format(user, USERS[user]) + "\n")

    def call(*args: str, user: str = "bob") -> list[str]:
        return share_admin(b.sasl_bootstrap, *args, properties=str(tmp_path / f"{user}.properties"))

    member = ShareConsumer(b.sasl_bootstrap, group, topic, "accept", *sasl,
                           "sasl.jaas.config=" + jaas.format("admin", USERS["admin"]))
    try:
        wait_until(member.ready, 60, what=f"share consumer ready\n{member.describe()}")
        # Its first poll may come before its first heartbeat made the group.
        wait_until(lambda: not call("list", group, user="admin")[-1].startswith("ERROR"), 60,
                   what="the share group exists")
    finally:
        member.stop()

    # The group is empty now; the super user gives it a start offset.
    assert call("alter", group, f"{topic}:0=0", user="admin")[-1] == "OK"
    assert call("list", group)[-1].startswith("ERROR GroupAuthorizationException")
    grant(b, acl(ResourceType.GROUP, group, "bob", AclOperation.DESCRIBE))
    assert call("list", group) == ["OK"]  # the topic is hidden
    grant(b, acl(ResourceType.TOPIC, topic, "bob", AclOperation.DESCRIBE))
    listed = call("list", group)
    assert listed[-1] == "OK" and listed[0].startswith(f"OFFSET {topic} 0 "), listed
    assert call("alter", group, f"{topic}:0=0")[-1].startswith(
        "ERROR GroupAuthorizationException")
    grant(b, acl(ResourceType.GROUP, group, "bob", AclOperation.READ))
    out = call("alter", group, f"{topic}:0=0")
    assert f"PARTITION {topic} 0 TopicAuthorizationException" in out, out
    grant(b, acl(ResourceType.TOPIC, topic, "bob", AclOperation.READ))
    assert call("alter", group, f"{topic}:0=0")[-1] == "OK"
    assert call("delete", group, topic)[-1].startswith("ERROR GroupAuthorizationException")
    grant(b, acl(ResourceType.GROUP, group, "bob", AclOperation.DELETE))
    assert call("delete", group, topic)[-1] == "OK"
    assert call("list", group) == ["OK"]


def test_read_revoked_during_a_fetch_session_is_refused_at_the_next_fetch(acl_broker):
    """kafka-python's consumer fetches in an incremental fetch session (KIP-227), naming
    only partitions whose position moved; the broker checks READ on the session's
    topics at every fetch, so records written after the ACL is removed never reach it
    and it is told TOPIC_AUTHORIZATION_FAILED, as Kafka tells it."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import TopicAuthorizationFailedError

    topic = unique_topic("acl-session")
    create_topics(acl_broker, topic)
    read = acl(ResourceType.TOPIC, topic, "alice", AclOperation.READ)
    grant(acl_broker, read)
    p = producer(acl_broker.sasl_bootstrap, **conf("admin"))

    def send(value):
        p.produce(topic, value, partition=0)
        assert p.flush(15) == 0

    send(b"before")
    c = KafkaConsumer(bootstrap_servers=acl_broker.sasl_bootstrap,
                      security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN",
                      sasl_plain_username="alice", sasl_plain_password=USERS["alice"],
                      enable_auto_commit=False, fetch_max_wait_ms=200)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        got = []
        wait_until(lambda: got.extend(r.value for rs in c.poll(500).values() for r in rs)
                   or got, timeout=15, what="the first record")
        assert got == [b"before"]
        revoke(acl_broker, read)
        send(b"after")
        refused = False
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not refused:
            try:
                got.extend(r.value for rs in c.poll(500).values() for r in rs)
            except TopicAuthorizationFailedError:
                refused = True
        assert refused, "no TOPIC_AUTHORIZATION_FAILED after the ACL was removed"
        assert got == [b"before"], got
    finally:
        c.close()
