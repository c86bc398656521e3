"""Static group membership (KIP-345, `group.instance.id`) against a real `brook`.

A static member that goes away without LeaveGroup (SIGKILL, or Consumer.close(), which
for a static librdkafka member sends no LeaveGroup) and comes back with the same
group.instance.id within session.timeout.ms takes its old place: the group does not
rebalance, the generation stays the same, every member keeps its partitions, and the
other members see no revoke/assign at all. A static member that stays away longer than
the session timeout is removed; a second process with a live member's instance id
fences the first one.

Members are confluent-kafka consumers in subprocesses (GroupWorker from test_groups).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import ConsumerGroupState

from test_groups import (  # noqa: F401 - spawn_worker is a fixture
    HEARTBEAT_MS,
    SESSION_TIMEOUT_MS,
    all_offsets,
    create_topic,
    describe_group,
    high_watermarks,
    keyed,
    produce,
    spawn_worker,
    unique,
    wait_until,
)

pytestmark = pytest.mark.brook_config({"group.initial.rebalance.delay.ms": 0})

PARTS = 6
INSTANCES = ("static-a", "static-b", "static-c")
REBALANCE_EVENTS = ("assign", "revoke", "lost", "join")


def _start_members(brook, spawn_worker, group, topic):
    def member(inst, start=True, gen=[0]):  # noqa: B006 - a counter for names
        gen[0] += 1
        return spawn_worker(brook.bootstrap, group, topic, f"{inst}-{gen[0]}", start=start,
                            **{"group.instance.id": inst})

    workers = {inst: member(inst) for inst in INSTANCES}

    def stable():
        owned = [w.owned() for w in workers.values()]
        joins = [w.last_join() for w in workers.values()]
        if (any(not o for o in owned) or set().union(*owned) != set(range(PARTS))
                or sum(map(len, owned)) != PARTS or any(j is None for j in joins)
                or len({j["generation"] for j in joins}) != 1):
            return None
        desc = describe_group(brook.bootstrap, group)
        if desc.state != ConsumerGroupState.STABLE or len(desc.members) != len(INSTANCES):
            return None
        return desc

    desc = wait_until(stable, 40, "3 static members, Stable, complete disjoint assignment")
    return member, workers, desc


def _by_instance(desc, topic) -> dict[str, set[int]]:
    out = {}
    for m in desc.members:
        assert m.group_instance_id, f"member {m.member_id} has no group.instance.id"
        out[m.group_instance_id] = {tp.partition for tp in m.assignment.topic_partitions
                                    if tp.topic == topic}
    return out


def _rebalance_events(w, since: int) -> list[dict]:
    return [e for e in w.snapshot()[since:] if e["ev"] in REBALANCE_EVENTS]


@pytest.mark.deadline(90)
def test_static_member_restart_within_session_timeout_does_not_rebalance(
        brook, spawn_worker):
    topic, group = unique("stat"), unique("gstat")
    create_topic(brook.bootstrap, topic, PARTS)
    member, workers, desc = _start_members(brook, spawn_worker, group, topic)

    generation = next(iter(workers.values())).last_join()["generation"]
    assignment = {inst: w.owned() for inst, w in workers.items()}
    assert _by_instance(desc, topic) == assignment
    assert all(len(a) == 2 for a in assignment.values()), assignment
    leader = [inst for inst, w in workers.items() if w.last_join()["leader"]]
    assert len(leader) == 1, {i: w.last_join() for i, w in workers.items()}
    leader = leader[0]
    follower = next(i for i in INSTANCES if i != leader)

    produce(brook.bootstrap, topic, keyed(300))
    hw1 = high_watermarks(brook.bootstrap, topic, PARTS)
    wait_until(lambda: set().union(*(w.consumed() for w in workers.values()))
               >= all_offsets(hw1), 30, "batch 1 consumed")
    for w in workers.values():
        w.commit()

    marks = {inst: len(w.snapshot()) for inst, w in workers.items()}
    first_gone = None

    def restart(inst: str, how: str) -> float:
        nonlocal first_gone
        old = workers[inst]
        new = member(inst, start=False)      # process up, consumer not created yet
        if how == "kill":
            gone = old.kill()
        else:
            old.close()                       # static member: no LeaveGroup
            gone = time.time()
        first_gone = first_gone or gone
        new.start()
        ev = new.wait_event(lambda e: e["ev"] == "owned" and e["partitions"], 20,
                            f"{inst} back with an assignment")
        back_s = ev["t"] - gone
        print(f"\nstatic member {inst} ({'leader' if inst == leader else 'follower'}, "
              f"{how}) back with its partitions {back_s:.2f}s after it went away")
        assert back_s < SESSION_TIMEOUT_MS / 1000, (
            f"{inst} took {back_s:.2f}s to come back: not within the session timeout, "
            "the test cannot tell anything")
        join = new.last_join()
        assert join["generation"] == generation, (
            f"{inst} rejoined in generation {join['generation']}, the group was in "
            f"{generation}: the group rebalanced ({join['line']})")
        assert set(ev["partitions"]) == assignment[inst], (
            f"{inst} got {ev['partitions']} back, it had {sorted(assignment[inst])}")
        workers[inst] = new
        marks[inst] = 0
        return gone

    restart(follower, "kill")
    restart(leader, "close")

    # Any rebalance shows up at the others' next heartbeat; and the replaced members'
    # sessions (their old member ids) must not expire later and cause one either.
    time.sleep(max(3 * HEARTBEAT_MS / 1000,
                   first_gone + SESSION_TIMEOUT_MS / 1000 + 2 - time.time()))
    for inst, w in workers.items():
        if inst in (leader, follower):
            evs = [e for e in _rebalance_events(w, 0) if e["ev"] != "join"]
            # the new process: exactly one assign of its old partitions
            assert [e["ev"] for e in evs] == ["assign"], evs
        else:
            evs = _rebalance_events(w, marks[inst])
            assert not evs, f"{inst} saw a rebalance while static members restarted: {evs}"
        assert w.owned() == assignment[inst], (inst, w.owned())
    desc = describe_group(brook.bootstrap, group)
    assert desc.state == ConsumerGroupState.STABLE, desc.state
    assert len(desc.members) == len(INSTANCES), [m.member_id for m in desc.members]
    assert _by_instance(desc, topic) == assignment
    assert {m.member_id for m in desc.members} == {w.member_id() for w in workers.values()}

    # The restarted members resume at their committed offsets; nothing is lost.
    produce(brook.bootstrap, topic, keyed(300, start=300))
    hw2 = high_watermarks(brook.bootstrap, topic, PARTS)
    wait_until(lambda: set().union(*(w.consumed() for w in workers.values()))
               >= all_offsets(hw2) - all_offsets(hw1), 30, "batch 2 consumed")
    for inst in (leader, follower):
        got = workers[inst].consumed()
        for p in assignment[inst]:
            first = min(o for q, o in got if q == p)
            assert first == hw1[p], (f"{inst} restarted at offset {first} of partition "
                                     f"{p}, its committed offset is {hw1[p]}")
    for inst, w in workers.items():
        assert {p for p, _ in w.consumed()} <= assignment[inst]
        assert not w.errors(), (inst, w.errors())


@pytest.mark.deadline(60)
def test_static_member_gone_longer_than_session_timeout_is_removed(brook, spawn_worker):
    topic, group = unique("statgone"), unique("gstatgone")
    create_topic(brook.bootstrap, topic, PARTS)
    _member, workers, _desc = _start_members(brook, spawn_worker, group, topic)
    generation = workers[INSTANCES[0]].last_join()["generation"]

    victim = workers.pop(INSTANCES[2])
    t_kill = victim.kill()

    def taken_over():
        owned = [w.owned() for w in workers.values()]
        return (all(owned) and set().union(*owned) == set(range(PARTS))
                and sum(map(len, owned)) == PARTS
                and all(w.last_join()["generation"] > generation for w in workers.values()))

    wait_until(taken_over, SESSION_TIMEOUT_MS / 1000 + 20,
               "the remaining static members to take over all partitions")
    took = time.time() - t_kill
    print(f"\nstatic member removed and its partitions reassigned {took:.2f}s after SIGKILL")
    assert took >= (SESSION_TIMEOUT_MS - HEARTBEAT_MS) / 1000 - 1.0, (
        f"reassigned after {took:.2f}s: before the static member's session expired")
    desc = describe_group(brook.bootstrap, group)
    assert desc.state == ConsumerGroupState.STABLE
    assert {m.group_instance_id for m in desc.members} == set(INSTANCES[:2])


@pytest.mark.deadline(60)
def test_second_process_with_same_instance_id_fences_the_first(brook, spawn_worker):
    topic, group = unique("statfence"), unique("gstatfence")
    create_topic(brook.bootstrap, topic, PARTS)
    member, workers, desc = _start_members(brook, spawn_worker, group, topic)
    generation = workers[INSTANCES[0]].last_join()["generation"]
    assignment = {inst: w.owned() for inst, w in workers.items()}
    marks = {inst: len(w.snapshot()) for inst, w in workers.items()}

    old = workers[INSTANCES[1]]
    new = member(INSTANCES[1])      # the old one is still alive and heartbeating
    ev = new.wait_event(lambda e: e["ev"] == "owned" and e["partitions"], 20,
                        "the new process to get the instance's partitions")
    assert set(ev["partitions"]) == assignment[INSTANCES[1]]
    assert new.last_join()["generation"] == generation
    # the old process is fenced at its next heartbeat (FENCED_INSTANCE_ID)
    err = old.wait_event(lambda e: e["ev"] == "error" and "fenc" in e["error"].lower(),
                         10, "the old process to be fenced")
    print(f"\nold process: {err['error']}")

    time.sleep(3 * HEARTBEAT_MS / 1000)
    for inst in (INSTANCES[0], INSTANCES[2]):
        evs = _rebalance_events(workers[inst], marks[inst])
        assert not evs, f"{inst} saw a rebalance: {evs}"
    desc = describe_group(brook.bootstrap, group)
    assert desc.state == ConsumerGroupState.STABLE
    assert len(desc.members) == 3
    assert _by_instance(desc, topic) == assignment
    assert new.member_id() in {m.member_id for m in desc.members}
