"""What the process-level replication tests share: three cluster-mode brokers known to
each other, a partition's state read from ZooKeeper, and produce through the wire."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, wait_for
from tests.impl import kio_requests as kr
from tests.impl.wire_client import DEFAULT_TIMEOUT_S, WireClient


def partition_state(zk: KazooClient, topic: str, partition: int = 0) -> LeaderAndIsr | None:
    """The partition's state znode as ZooKeeper holds it, or None before it exists."""
    path = layout.state_path(topic, partition)
    if zk.exists(path) is None:
        return None
    data, stat = zk.get(path)
    return layout.decode_leader_and_isr(data, stat.version)


def produce(
    broker: BrokerProcess,
    topic: str,
    values: list[bytes],
    *,
    partition: int = 0,
    acks: int = -1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Any:
    """The partition's answer to one produce of ``values`` as one batch."""
    data = records.build_batch([(None, v) for v in values], timestamp=1000)
    with WireClient(broker.host, broker.port, timeout_s) as client:
        response = client.request(kr.produce(topic, partition, data, acks=acks))
    return response.responses[0].partition_responses[0]


def error_code(answer: Any) -> ErrorCode:
    return ErrorCode(int(answer.error_code))


def live_brokers(broker: BrokerProcess) -> int:
    """How many brokers ``broker``'s Metadata lists."""
    with WireClient(broker.host, broker.port) as client:
        return len(client.request(kr.metadata([])).brokers)


def start_three(
    brokers: BrokerFactory, zk: KazooClient, config: Mapping[str, object] | None = None
) -> dict[int, BrokerProcess]:
    """Brokers 1, 2 and 3, registered, and broker 1's metadata listing all three (a topic
    created through broker 1 before that would find too few brokers for RF 3)."""
    b = {i: brokers(i, config) for i in (1, 2, 3)}
    wait_for(lambda: len(zk.get_children(layout.BROKER_IDS)) == 3, what="3 registered brokers")
    wait_for(lambda: live_brokers(b[1]) == 3, what="broker 1's metadata with 3 brokers")
    return b


def create_topic(
    broker: BrokerProcess, topic: str, partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create ``topic`` with replication factor 3 through ``broker``."""
    with WireClient(broker.host, broker.port) as client:
        created = client.request(kr.create_topics([(topic, partitions, 3)], configs=configs))
    assert created.topics[0].error_code == 0, created
