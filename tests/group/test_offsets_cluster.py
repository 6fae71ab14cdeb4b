"""Committed offsets in a three-broker cluster: ``__consumer_offsets`` is not created
while fewer brokers than offsets.topic.replication.factor are registered, then created
with replication factor 3; a commit on the group's coordinator survives SIGKILL of that
broker: FindCoordinator moves to the partition's new leader, which loads the partition
and returns the committed offset."""

from __future__ import annotations

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from impl.zk import layout
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, brokers, wait_for, wait_value, zk, zookeeper
from tests.cluster.replication_support import create_topic, live_brokers
from tests.group import offsets_wire as ow
from tests.impl.wire_client import WireClient

__all__ = ["brokers", "zk", "zookeeper"]  # the cluster fixtures these tests use

CONFIG = {"offsets.topic.num.partitions": 3, "replica.lag.time.max.ms": 4000}
GROUP = "cluster-group"


def client(broker: BrokerProcess) -> WireClient:
    return WireClient(broker.host, broker.port)


def find(broker: BrokerProcess, group: str) -> tuple[ErrorCode, int]:
    """(error, node id) of FindCoordinator asked of ``broker``."""
    try:
        with client(broker) as c:
            found = ow.find_coordinator(c, group)
    except OSError:
        return ErrorCode.COORDINATOR_NOT_AVAILABLE, -1
    return ErrorCode(found.error_code), int(found.node_id)


def fetch_on(broker: BrokerProcess, group: str) -> tuple[ErrorCode, ow.Fetched]:
    with client(broker) as c:
        return ow.fetch(c, group, None)


def test_offsets_survive_the_coordinators_death(brokers: BrokerFactory, zk: KazooClient) -> None:
    first = brokers(1, CONFIG)
    # alone, broker 1 cannot make a topic of replication factor 3
    assert find(first, GROUP) == (ErrorCode.COORDINATOR_NOT_AVAILABLE, -1)
    assert zk.exists(layout.topic_path(GROUP_METADATA_TOPIC_NAME)) is None
    b = {1: first, 2: brokers(2, CONFIG), 3: brokers(3, CONFIG)}
    wait_for(lambda: live_brokers(first) == 3, what="broker 1 seeing 3 brokers")
    _, node = wait_value(
        lambda: find(first, GROUP),
        lambda found: found[0] is ErrorCode.NONE,
        what="a coordinator for the group",
    )
    data, _ = zk.get(layout.topic_path(GROUP_METADATA_TOPIC_NAME))
    replicas = layout.decode_topic(data).replicas()
    assert len(replicas) == 3 and {len(r) for r in replicas} == {3}

    create_topic(first, "t", 2)
    coordinator = b[node]
    wait_value(
        lambda: fetch_on(coordinator, GROUP)[0],
        lambda code: code is ErrorCode.NONE,
        what="the coordinator loaded",
    )
    with client(coordinator) as c:
        got = ow.commit(c, GROUP, {("t", 0): (42, "before"), ("t", 1): (7, None)})
    assert set(got.values()) == {ErrorCode.NONE}

    coordinator.kill()
    survivors = [broker for i, broker in b.items() if i != node]
    error, new_node = wait_value(
        lambda: find(survivors[0], GROUP),
        lambda found: found[0] is ErrorCode.NONE and found[1] != node,
        what="the coordinator moving to a live broker",
    )
    assert error is ErrorCode.NONE
    _, fetched = wait_value(
        lambda: fetch_on(b[new_node], GROUP),
        lambda answer: answer[0] is ErrorCode.NONE,
        what="the new coordinator loaded",
    )
    assert fetched == {
        ("t", 0): (42, -1, "before", ErrorCode.NONE),
        ("t", 1): (7, -1, "", ErrorCode.NONE),
    }
    # the other survivor is not the coordinator
    other = next(broker for i, broker in b.items() if i not in (node, new_node))
    assert fetch_on(other, GROUP)[0] is ErrorCode.NOT_COORDINATOR
    with client(b[new_node]) as c:
        assert ow.commit(c, GROUP, {("t", 0): (43, "after")}) == {("t", 0): ErrorCode.NONE}
    assert fetch_on(b[new_node], GROUP)[1][("t", 0)] == (43, -1, "after", ErrorCode.NONE)
