"""The controller of a real three-broker cluster on a real ZooKeeper: registration, one
controller, controller failover with a higher /controller_epoch, topic creation laid out
as Kafka's, leader failover to the next ISR member (leader epoch + 1, ISR shrunk), a
returning broker taking back its offline partition, topic deletion, and Metadata /
DescribeCluster from every broker showing the current state."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.zk import layout
from tests.cluster.conftest import SESSION_TIMEOUT_MS, BrokerFactory, wait_for, wait_value
from tests.cluster.replication_support import start_three as start_brokers
from tests.impl import kio_requests as rq
from tests.impl.wire_client import WireClient

FAILOVER_DEADLINE_S = 2 * SESSION_TIMEOUT_MS / 1000 + 10


def registered(zk: KazooClient) -> list[int]:
    return sorted(int(c) for c in zk.get_children(layout.BROKER_IDS))


def controller(zk: KazooClient) -> tuple[int, int] | None:
    """(controller id, controller epoch), or None while there is no controller."""
    if zk.exists(layout.CONTROLLER) is None:
        return None
    try:
        data, _ = zk.get(layout.CONTROLLER)
    except Exception:
        return None
    epoch, _ = zk.get(layout.CONTROLLER_EPOCH)
    return layout.decode_controller(data), layout.decode_controller_epoch(epoch)


def state(zk: KazooClient, topic: str, partition: int) -> dict[str, Any] | None:
    path = layout.state_path(topic, partition)
    if zk.exists(path) is None:
        return None
    data, _ = zk.get(path)
    value: dict[str, Any] = json.loads(data)
    return value


def metadata(broker: BrokerProcess, topics: list[str] | None) -> Any:
    with WireClient(broker.host, broker.port) as client:
        return client.request(rq.metadata(topics, allow_auto=False))


def names_controller(broker: BrokerProcess, controller_id: int) -> bool:
    return bool(metadata(broker, []).controller_id == controller_id)


def topic_unknown(broker: BrokerProcess, topic: str) -> bool:
    return int(metadata(broker, [topic]).topics[0].error_code) == 3  # UNKNOWN_TOPIC_OR_PARTITION


def start_three(brokers: BrokerFactory, zk: KazooClient) -> dict[int, BrokerProcess]:
    """Three brokers known to broker 1, and a controller."""
    started = start_brokers(brokers, zk)
    wait_for(lambda: controller(zk), what="a controller")
    return started


def test_three_brokers_register_and_elect_one_controller_that_fails_over(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    started = start_three(brokers, zk)
    registration = json.loads(zk.get(layout.broker_path(2))[0])
    assert registration["version"] == 5
    assert registration["endpoints"] == [f"PLAINTEXT://127.0.0.1:{started[2].port}"]
    assert zk.get(layout.CLUSTER_ID)[0]
    first = controller(zk)
    assert first is not None
    old_id, old_epoch = first
    for broker in started.values():
        answer = wait_value(
            partial(metadata, broker, []),
            lambda m: len(m.brokers) == 3,
            what="three brokers in Metadata",
        )
        assert answer.controller_id == old_id
        assert sorted(b.node_id for b in answer.brokers) == [1, 2, 3]

    started[old_id].kill()
    new = wait_value(
        lambda: controller(zk),
        lambda c: c is not None and c[0] != old_id,
        FAILOVER_DEADLINE_S,
        "a new controller",
    )
    assert new is not None
    assert new[1] > old_epoch
    assert registered(zk) == sorted(set(started) - {old_id})
    for broker_id, broker in started.items():
        if broker_id != old_id:
            wait_for(
                partial(names_controller, broker, new[0]),
                what="Metadata naming the new controller",
            )


def test_topic_creation_and_leader_failover(brokers: BrokerFactory, zk: KazooClient) -> None:
    started = start_three(brokers, zk)
    with WireClient(started[1].host, started[1].port) as client:
        created = client.request(rq.create_topics([("t", 3, 3)]))
    assert [int(t.error_code) for t in created.topics] == [0]

    topic = json.loads(zk.get(layout.topic_path("t"))[0])
    assert topic["version"] == 3 and topic["topic_id"]
    assignment = {int(p): r for p, r in topic["partitions"].items()}
    assert sorted(assignment) == [0, 1, 2]
    assert all(sorted(r) == [1, 2, 3] for r in assignment.values())
    assert sorted(r[0] for r in assignment.values()) == [1, 2, 3]  # leadership spread
    epoch = controller(zk)
    assert epoch is not None
    for p, replicas in assignment.items():
        s = state(zk, "t", p)
        assert s == {
            "controller_epoch": epoch[1],
            "leader": replicas[0],
            "version": 1,
            "leader_epoch": 0,
            "isr": replicas,
        }

    # Every broker's Metadata shows the leaders and ISRs.
    def every_leader(b: BrokerProcess) -> bool:
        return all(
            p.leader_id == assignment[p.partition_index][0] and sorted(p.isr_nodes) == [1, 2, 3]
            for p in metadata(b, ["t"]).topics[0].partitions
        )

    for broker in started.values():
        wait_for(partial(every_leader, broker), what="Metadata with every leader")

    # Kill a leader that is not the controller: the next ISR member leads, epoch + 1.
    p, replicas = next((p, r) for p, r in assignment.items() if r[0] != epoch[0])
    victim = replicas[0]
    started[victim].kill()
    expected_leader = replicas[1]
    moved = wait_value(
        lambda: state(zk, "t", p),
        lambda s: s is not None and s["leader"] != victim,
        FAILOVER_DEADLINE_S,
        "a new leader",
    )
    assert moved is not None
    assert moved["leader"] == expected_leader
    assert moved["leader_epoch"] == 1
    assert sorted(moved["isr"]) == sorted(set(replicas) - {victim})
    # Partitions the victim followed lose it from their ISR (their leaders stay).
    for q, r in assignment.items():
        if r[0] != victim:
            s = wait_value(
                partial(state, zk, "t", q), lambda s: s is not None and victim not in s["isr"]
            )
            assert s is not None
            assert s["leader"] == r[0] and s["leader_epoch"] == 1

    for broker_id, broker in started.items():
        if broker_id == victim:
            continue

        def current(b: BrokerProcess = broker) -> Any:
            parts = {x.partition_index: x for x in metadata(b, ["t"]).topics[0].partitions}
            part = parts[p]
            ok = part.leader_id == expected_leader and victim not in part.isr_nodes
            return part if ok else None

        part = wait_for(current, what="Metadata with the new leader")
        assert part.leader_epoch == 1
        assert list(part.offline_replicas) == [victim]
        assert sorted(part.replica_nodes) == [1, 2, 3]


def test_offline_partition_returns_with_its_broker_and_topics_are_deleted(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    started = start_three(brokers, zk)
    with WireClient(started[1].host, started[1].port) as client:
        created = client.request(rq.create_topics([("solo", 3, 1)]))
    assert [int(t.error_code) for t in created.topics] == [0]
    assignment = {
        int(p): r for p, r in json.loads(zk.get(layout.topic_path("solo"))[0])["partitions"].items()
    }
    ctl = controller(zk)
    assert ctl is not None
    p, (owner,) = next((p, r) for p, r in assignment.items() if r[0] != ctl[0])

    started[owner].kill()
    offline = wait_value(
        lambda: state(zk, "solo", p),
        lambda s: s is not None and s["leader"] == -1,
        FAILOVER_DEADLINE_S,
        "the partition offline",
    )
    assert offline is not None
    assert offline["isr"] == [owner] and offline["leader_epoch"] == 1  # clean: ISR kept
    survivor = started[ctl[0]]
    part = wait_value(
        lambda: metadata(survivor, ["solo"]).topics[0].partitions[p],
        lambda x: x.leader_id == -1,
        what="Metadata without a leader",
    )
    assert int(part.error_code) == 5  # LEADER_NOT_AVAILABLE

    started[owner].restart()
    back = wait_value(
        lambda: state(zk, "solo", p),
        lambda s: s is not None and s["leader"] == owner,
        FAILOVER_DEADLINE_S,
        "the broker leading again",
    )
    assert back is not None
    assert back["leader_epoch"] == 2 and back["isr"] == [owner]

    with WireClient(survivor.host, survivor.port) as client:
        deleted = client.request(rq.delete_topics(["solo"]))
    assert [int(t.error_code) for t in deleted.responses] == [0]
    assert zk.exists(layout.topic_path("solo")) is None
    assert zk.exists(layout.delete_topic_path("solo")) is None
    for broker in started.values():
        wait_for(
            partial(topic_unknown, broker, "solo"),
            what="the topic gone from Metadata",
        )
