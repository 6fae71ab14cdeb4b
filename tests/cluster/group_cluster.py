"""The three-broker cluster of the consumer-group tests: small ``__consumer_offsets``
(5 partitions, replication factor 3), a short initial rebalance delay, a follower that
stops fetching leaves the ISR after 5 s (so acks=all commits go on once a broker is
killed); topics of replication factor 3 whose partitions all have a leader."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from tests.cluster.conftest import BrokerFactory
from tests.cluster.replication_support import create_topic, start_three
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient
from tests.interop.group_wire import DEADLINE_S, wait_for

GROUP_BROKER_CONFIG: Mapping[str, object] = {
    "offsets.topic.num.partitions": 5,
    "offsets.topic.replication.factor": 3,
    "group.initial.rebalance.delay.ms": 100,
    "replica.lag.time.max.ms": 5000,
}


def start_group_cluster(brokers: BrokerFactory, zk: KazooClient) -> dict[int, BrokerProcess]:
    """Brokers 1, 2, 3 with the group settings, all registered and known to broker 1."""
    return start_three(brokers, zk, GROUP_BROKER_CONFIG)


def bootstrap_of(cluster: Mapping[int, BrokerProcess], *, skip: int | None = None) -> str:
    """``bootstrap.servers`` naming every broker (but ``skip``)."""
    return ",".join(b.bootstrap for i, b in sorted(cluster.items()) if i != skip)


def leaders(broker: BrokerProcess, topic: str) -> dict[int, int]:
    """{partition: leader id} as ``broker``'s Metadata shows ``topic``."""
    with WireClient(broker.host, broker.port) as client:
        answer = client.request(kr.metadata([topic], allow_auto=False))
    for t in answer.topics:
        if t.name == topic and t.error_code == 0:
            return {p.partition_index: p.leader_id for p in t.partitions}
    return {}


def all_led(broker: BrokerProcess, topic: str, partitions: int) -> bool:
    got = leaders(broker, topic)
    return len(got) == partitions and all(leader >= 0 for leader in got.values())


def create_group_topic(cluster: Mapping[int, BrokerProcess], topic: str, partitions: int) -> None:
    """Create ``topic`` (replication factor 3) and wait until every broker's Metadata
    shows a leader for each of its partitions."""
    create_topic(cluster[1], topic, partitions)
    for broker in cluster.values():
        wait_for(
            functools.partial(all_led, broker, topic, partitions),
            f"leaders of every partition of {topic} in broker {broker.broker_id}'s metadata",
            DEADLINE_S,
        )
