"""A partition added to a follower's fetcher while its fetch is parked at the leader is
fetched at once, not after replica.fetch.wait.max.ms: with that wait longer than the
produce timeout, an acks=all produce to a topic created while every fetcher waits on an
idle topic still succeeds (it would get REQUEST_TIMED_OUT if the new partition waited for
the parked fetch).  Three cluster-mode broker processes on a private ZooKeeper, clients
over TCP; waits are conditions with deadlines."""

from __future__ import annotations

from functools import partial
from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, wait_for
from tests.cluster.test_replication_lag import live_brokers
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

# Longer than the produce request's timeout (30 s): a fetch parked at a leader never
# returns within a produce's wait unless data for one of its partitions arrives.  Kafka
# wants replica.fetch.wait.max.ms <= replica.lag.time.max.ms < replica.socket.timeout.ms.
CONFIG = {
    "replica.fetch.wait.max.ms": 120_000,
    "replica.lag.time.max.ms": 120_000,
    "replica.socket.timeout.ms": 150_000,
}
CLIENT_TIMEOUT_S = 60.0
NOT_READY = (ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


def state(zk: KazooClient, topic: str, partition: int) -> LeaderAndIsr | None:
    path = layout.state_path(topic, partition)
    if zk.exists(path) is None:
        return None
    data, stat = zk.get(path)
    return layout.decode_leader_and_isr(data, stat.version)


def produce(broker: BrokerProcess, topic: str, partition: int, value: bytes) -> ErrorCode:
    data = records.build_batch([(None, value)], timestamp=1000)
    with WireClient(broker.host, broker.port, timeout_s=CLIENT_TIMEOUT_S) as client:
        response: Any = client.request(kr.produce(topic, partition, data, acks=-1))
    return ErrorCode(int(response.responses[0].partition_responses[0].error_code))


def produce_when_led(broker: BrokerProcess, topic: str, partition: int, value: bytes) -> ErrorCode:
    """The answer to an acks=all produce once ``broker`` serves the partition."""

    def answer() -> ErrorCode | None:
        code = produce(broker, topic, partition, value)
        return None if code in NOT_READY else code

    # ErrorCode.NONE is 0, falsy: wait on the pair, then take the code.
    return wait_for(
        lambda: (code,) if (code := answer()) is not None else None,
        what=f"{topic}-{partition} led by broker {broker.broker_id}",
    )[0]


def create(broker: BrokerProcess, topic: str, partitions: int) -> None:
    with WireClient(broker.host, broker.port) as client:
        created = client.request(kr.create_topics([(topic, partitions, 3)]))
    assert created.topics[0].error_code == 0, created


def test_a_new_partition_does_not_wait_for_a_parked_fetch(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b = {i: brokers(i, CONFIG) for i in (1, 2, 3)}
    wait_for(lambda: len(zk.get_children(layout.BROKER_IDS)) == 3, what="3 registered brokers")
    wait_for(lambda: live_brokers(b[1]) == 3, what="broker 1's metadata with 3 brokers")

    # Three partitions, each led by another broker: every follower has a fetcher to
    # every leader.  One acks=all record each: both followers fetched it and fetched
    # again, and those fetches now wait at the leaders (nothing more arrives).
    create(b[1], "idle", 3)
    for p in range(3):
        first = wait_for(partial(state, zk, "idle", p), what=f"idle-{p}'s state")
        assert set(first.isr) == {1, 2, 3}
        assert produce_when_led(b[first.leader], "idle", p, b"x") == ErrorCode.NONE

    create(b[1], "fresh", 1)
    fresh = wait_for(lambda: state(zk, "fresh", 0), what="fresh-0's state")
    assert set(fresh.isr) == {1, 2, 3}
    assert produce_when_led(b[fresh.leader], "fresh", 0, b"y") == ErrorCode.NONE
