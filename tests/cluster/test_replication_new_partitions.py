"""A partition added to a follower's fetcher while its fetch is parked at the leader is
fetched at once, not after replica.fetch.wait.max.ms: with that wait longer than the
produce timeout, an acks=all produce to a topic created while every fetcher waits on an
idle topic still succeeds (it would get REQUEST_TIMED_OUT if the new partition waited for
the parked fetch).  Three cluster-mode broker processes on a private ZooKeeper, clients
over TCP; waits are conditions with deadlines."""

from __future__ import annotations

from functools import partial

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, wait_for
from tests.cluster.replication_support import (
    create_topic,
    error_code,
    partition_state,
    start_three,
)
from tests.cluster.replication_support import produce as produce_to

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


def produce(broker: BrokerProcess, topic: str, partition: int, value: bytes) -> ErrorCode:
    answer = produce_to(broker, topic, [value], partition=partition, timeout_s=CLIENT_TIMEOUT_S)
    return error_code(answer)


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


def test_a_new_partition_does_not_wait_for_a_parked_fetch(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b = start_three(brokers, zk, CONFIG)

    # Three partitions, each led by another broker: every follower has a fetcher to
    # every leader.  One acks=all record each: both followers fetched it and fetched
    # again, and those fetches now wait at the leaders (nothing more arrives).
    create_topic(b[1], "idle", 3)
    for p in range(3):
        first = wait_for(partial(partition_state, zk, "idle", p), what=f"idle-{p}'s state")
        assert set(first.isr) == {1, 2, 3}
        assert produce_when_led(b[first.leader], "idle", p, b"x") == ErrorCode.NONE

    create_topic(b[1], "fresh", 1)
    fresh = wait_for(lambda: partition_state(zk, "fresh", 0), what="fresh-0's state")
    assert set(fresh.isr) == {1, 2, 3}
    assert produce_when_led(b[fresh.leader], "fresh", 0, b"y") == ErrorCode.NONE
