"""Group membership in a three-broker cluster: a group made Stable on its coordinator
(the leader of its ``__consumer_offsets`` partition) survives SIGKILL of that broker.
The partition's new leader loads the group's record (written with acks=all before the
SyncGroup was answered): the same generation, leader, members and assignments, so the
members go on heartbeating there and a new member makes the group rebalance."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, brokers, wait_for, wait_value, zk, zookeeper
from tests.cluster.replication_support import live_brokers
from tests.group import membership_wire as mw
from tests.group import offsets_wire as ow
from tests.impl.wire_client import WireClient

__all__ = ["brokers", "zk", "zookeeper"]  # the cluster fixtures these tests use

CONFIG = {
    "offsets.topic.num.partitions": 1,
    "group.initial.rebalance.delay.ms": 0,
    "replica.lag.time.max.ms": 4000,
}
GROUP = "cluster-members"


def find(broker: BrokerProcess) -> tuple[ErrorCode, int]:
    """(error, node id) of FindCoordinator asked of ``broker``."""
    try:
        with WireClient(broker.host, broker.port) as c:
            found = ow.find_coordinator(c, GROUP)
    except OSError:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1
    return ErrorCode(found.error_code), int(found.node_id)


def request(broker: BrokerProcess, entity: Any) -> Any:
    with WireClient(broker.host, broker.port) as c:
        return c.request(entity)


def test_a_stable_group_moves_with_its_coordinator(brokers: BrokerFactory, zk: KazooClient) -> None:
    b = {i: brokers(i, CONFIG) for i in (1, 2, 3)}
    wait_for(lambda: live_brokers(b[1]) == 3, what="broker 1 seeing 3 brokers")
    _, node = wait_value(lambda: find(b[1]), lambda f: f[0] is ErrorCode.NONE, what="coordinator")
    coordinator = b[node]
    with WireClient(coordinator.host, coordinator.port) as c:
        ow.wait_coordinator(c, GROUP)
        first = c.request(mw.join_request(GROUP, version=3, session_ms=10_000))
        assert (first.error_code, first.generation_id) == (0, 1)
        member = first.member_id
        synced = c.request(mw.sync_request(GROUP, 1, member, {member: b"A"}))
        assert (synced.error_code, synced.assignment) == (0, b"A")

    coordinator.kill()
    survivors = [broker for i, broker in b.items() if i != node]
    _, new_node = wait_value(
        lambda: find(survivors[0]),
        lambda f: f[0] is ErrorCode.NONE and f[1] != node,
        what="the coordinator moving to a live broker",
    )
    new = b[new_node]
    wait_value(
        lambda: describe_on(new),
        lambda d: d.error_code == 0,
        what="the group loaded on the new coordinator",
    )
    described = describe_on(new)
    assert (described.group_state, described.protocol_data) == ("Stable", "range")
    assert [(m.member_id, m.member_assignment) for m in described.members] == [(member, b"A")]
    assert request(new, mw.heartbeat_request(GROUP, 1, member)).error_code == 0
    assert request(new, mw.heartbeat_request(GROUP, 0, member)).error_code == (
        ErrorCode.ILLEGAL_GENERATION
    )
    # a new member: the group prepares a rebalance there
    with WireClient(new.host, new.port) as c:
        c.send(mw.join_request(GROUP, version=3, session_ms=10_000))
        wait_for(
            lambda: (
                request(new, mw.heartbeat_request(GROUP, 1, member)).error_code
                == ErrorCode.REBALANCE_IN_PROGRESS
            ),
            what="the old member told to rejoin",
        )
        rejoined = request(new, mw.join_request(GROUP, member, version=3, session_ms=10_000))
        _, second = c.receive(mw.JOIN_GROUP, 3)
    assert rejoined.generation_id == second.generation_id == 2
    assert rejoined.leader == member


def describe_on(broker: BrokerProcess) -> Any:
    with WireClient(broker.host, broker.port) as c:
        return mw.describe(c, GROUP)
