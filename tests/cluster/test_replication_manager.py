"""Replication between brokers running in this test's event loop: each node is a real
BrokerServer on a real port with real partition logs in tmp dirs, its own ZooKeeper
session on a private ZooKeeper and its own ReplicaManager.  The test plays the
controller: it writes the partition state znodes with kazoo and hands every node the
state (what the metadata watches do in a broker process).  Clients talk Kafka over TCP.
Every wait is a condition with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble
from impl.broker.cluster_metadata import ClusterMetadata
from impl.broker.config import BrokerConfig
from impl.broker.context import BrokerContext
from impl.broker.producer_ids import ProducerIdAllocator
from impl.broker.server import BrokerServer
from impl.broker.topics import TopicInfo, TopicRegistry
from impl.replication.connection import BrokerConnection
from impl.replication.manager import ReplicaManager
from impl.storage.log_manager import LogManager
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import BrokerInfo, LeaderAndIsr
from impl.zk.session import ZkSession
from spec.errors import ErrorCode
from spec.state import TopicPartition
from tests.impl import kio_requests as kr

TOPIC = "replicated"
TP = TopicPartition(TOPIC, 0)
DEADLINE_S = 30.0


async def eventually(
    condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S
) -> None:
    """Wait for ``condition`` with a deadline (checked every few milliseconds of loop time,
    while the brokers in this loop make progress)."""
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Node:
    """One in-process broker in cluster mode."""

    def __init__(self, broker_id: int, data_dir: Path, zk_connect: str, props: dict[str, str]):
        self.broker_id = broker_id
        self.data_dir = data_dir
        self.zk_connect = zk_connect
        self.props = props
        self.server: BrokerServer | None = None

    async def start(self, port: int = 0) -> None:
        config = BrokerConfig.build(
            self.broker_id, "127.0.0.1", port, str(self.data_dir), self.props
        )
        topics = TopicRegistry.load(self.data_dir, self.broker_id)
        logs = LogManager(str(self.data_dir), config.log_config(), int(time.time() * 1000))
        self.ctx = BrokerContext(
            broker_id=self.broker_id,
            host="127.0.0.1",
            port=port,
            config=config,
            logs=logs,
            partitions={},
            topics=topics,
            producer_ids=ProducerIdAllocator.open(self.data_dir),
            data_arrived=asyncio.Condition(),
            cluster=ClusterMetadata(topics),
            zk=ZkSession(self.zk_connect, 6000),
        )
        assert self.ctx.zk is not None
        await self.ctx.zk.start()
        self.manager = ReplicaManager(self.ctx)
        self.ctx.replicas = self.manager
        self.server = BrokerServer(self.ctx)
        await self.server.start("127.0.0.1", port)
        self.ctx.port = self.server.bound_port
        self.manager.start()

    async def stop(self) -> None:
        """Stop as a crash would leave it for the others: connections gone (the logs are
        closed so the files can be reopened by a restart)."""
        await self.manager.close()
        if self.server is not None:
            await self.server.close()
        assert self.ctx.zk is not None
        await self.ctx.zk.close()
        self.ctx.logs.close()

    @property
    def info(self) -> BrokerInfo:
        return BrokerInfo(self.broker_id, "127.0.0.1", self.ctx.port)

    def log_bytes(self) -> bytes:
        log = self.ctx.logs.get(TP)
        assert log is not None
        return log.read(log.start_offset, 1 << 30) if log.end_offset > log.start_offset else b""

    def leo(self) -> int:
        log = self.ctx.logs.get(TP)
        return -1 if log is None else log.end_offset


class Cluster:
    """The nodes, and the test's controller writes."""

    def __init__(self, tmp: Path, zk: KazooClient, connect: str) -> None:
        self.tmp = tmp
        self.zk = zk
        self.connect = connect
        self.nodes: dict[int, Node] = {}
        self.assignment: tuple[int, ...] = ()
        self.up: set[int] = set()

    async def start(self, ids: tuple[int, ...], props: dict[str, str]) -> None:
        for i in ids:
            node = Node(i, self.tmp / f"broker-{i}", self.connect, props)
            await node.start()
            self.nodes[i] = node
            self.up.add(i)
        self.publish_brokers()

    def publish_brokers(self) -> None:
        brokers = {i: self.nodes[i].info for i in self.up}
        for i in self.up:
            self.nodes[i].ctx.cluster.set_brokers(brokers)

    def create_topic(self, assignment: tuple[int, ...], configs: dict[str, str]) -> None:
        self.assignment = assignment
        info = TopicInfo(TOPIC, uuid.uuid4(), (assignment,), configs)
        for node in self.nodes.values():
            node.ctx.topics.put(info)

    def read_state(self) -> LeaderAndIsr:
        data, stat = self.zk.get(layout.state_path(TOPIC, 0))
        return layout.decode_leader_and_isr(data, stat.version)

    async def write_state(self, leader: int, leader_epoch: int, isr: tuple[int, ...]) -> None:
        """The controller's write, then every live node applies the new state."""
        path = layout.state_path(TOPIC, 0)
        state = LeaderAndIsr(leader, leader_epoch, isr, 1, 0)
        if self.zk.exists(path) is None:
            self.zk.create(path, layout.encode_leader_and_isr(state), makepath=True)
        else:
            self.zk.set(path, layout.encode_leader_and_isr(state))
        await self.deliver()

    async def deliver(self) -> None:
        """Hand the current state znode to every live node (the metadata watch's job)."""
        state = self.read_state()
        for i in sorted(self.up):
            await self.nodes[i].manager.apply_leader_and_isr(TP, self.assignment, state)

    async def stop(self, broker_id: int) -> None:
        self.up.discard(broker_id)
        await self.nodes[broker_id].stop()
        self.publish_brokers()

    async def restart(self, broker_id: int) -> None:
        old = self.nodes[broker_id]
        node = Node(broker_id, old.data_dir, self.connect, old.props)
        await node.start(old.ctx.port)
        self.nodes[broker_id] = node
        self.up.add(broker_id)
        self.publish_brokers()
        info = TopicInfo(TOPIC, uuid.uuid4(), (self.assignment,), {})
        node.ctx.topics.put(info)


Scenario = Callable[[Cluster], Coroutine[Any, Any, None]]


@pytest.fixture
def run_cluster(
    tmp_path: Path, zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> Callable[[Scenario], None]:
    """Run a scenario on a fresh in-process cluster in its own event loop; the nodes
    still up are stopped afterwards."""

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            c = Cluster(tmp_path, zk, zookeeper.connect_string)
            try:
                await scenario(c)
            finally:
                for i in sorted(c.up):
                    await c.nodes[i].stop()

        asyncio.run(main())

    return run


async def client(node: Node) -> BrokerConnection:
    return await BrokerConnection.open("127.0.0.1", node.ctx.port, "test", 10.0)


def batch(values: list[bytes]) -> bytes:
    return records.build_batch([(None, v) for v in values], timestamp=1000)


async def produce(
    conn: BrokerConnection, data: bytes, acks: int = -1, timeout_ms: int = 30000
) -> Any:
    request = dataclasses.replace(kr.produce(TOPIC, 0, data, acks=acks), timeout=kr.ms(timeout_ms))
    response = await conn.request(request, 60.0)
    return response.responses[0].partition_responses[0]


def code(answer: Any) -> ErrorCode:
    return ErrorCode(int(answer.error_code))


PROPS = {"replica.lag.time.max.ms": "3000", "replica.fetch.backoff.ms": "200"}


def test_followers_copy_the_leaders_log_byte_for_byte(
    run_cluster: Callable[[Scenario], None],
) -> None:
    run_cluster(_followers_copy_the_leaders_log_byte_for_byte)


async def _followers_copy_the_leaders_log_byte_for_byte(cluster: Cluster) -> None:
    await cluster.start((1, 2, 3), PROPS)
    cluster.create_topic((1, 2, 3), {"min.insync.replicas": "2"})
    await cluster.write_state(1, 0, (1, 2, 3))
    conn = await client(cluster.nodes[1])
    try:
        for i in range(20):
            answer = await produce(conn, batch([b"v%d-%d" % (i, k) for k in range(5)]))
            assert code(answer) == ErrorCode.NONE
            assert int(answer.base_offset) == i * 5
            # acks=all returned: every ISR member has the batch already.
            for b in (2, 3):
                assert cluster.nodes[b].leo() >= (i + 1) * 5
    finally:
        conn.close()
    leader = cluster.nodes[1]
    await eventually(
        lambda: all(cluster.nodes[b].log_bytes() == leader.log_bytes() for b in (2, 3)),
        "identical logs",
    )
    assert leader.ctx.partitions[TP].high_watermark == 100
    assert len(leader.log_bytes()) > 0


def test_not_enough_replicas_and_stale_leader(run_cluster: Callable[[Scenario], None]) -> None:
    run_cluster(_not_enough_replicas_and_stale_leader)


async def _not_enough_replicas_and_stale_leader(cluster: Cluster) -> None:
    await cluster.start((1, 2, 3), PROPS)
    cluster.create_topic((1, 2, 3), {"min.insync.replicas": "2"})
    await cluster.write_state(1, 0, (1, 2, 3))
    conn = await client(cluster.nodes[1])
    try:
        assert code(await produce(conn, batch([b"a"]))) == ErrorCode.NONE
        # Two of three replicas down: the leader shrinks its ISR after
        # replica.lag.time.max.ms (a conditional write), then refuses acks=all.
        await cluster.stop(2)
        await cluster.stop(3)
        leader = cluster.nodes[1]
        answer = await produce(conn, batch([b"b"]), timeout_ms=20000)
        # Appended while the ISR still had three; answered once the ISR shrank to one.
        assert code(answer) == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        await eventually(lambda: leader.ctx.partitions[TP].isr == {1}, "ISR shrunk to {1}")
        assert cluster.read_state().isr == (1,)
        assert code(await produce(conn, batch([b"c"]))) == ErrorCode.NOT_ENOUGH_REPLICAS
        assert code(await produce(conn, batch([b"d"]), acks=1)) == ErrorCode.NONE
        # A new leader elsewhere (the test's controller): the old one now answers
        # NOT_LEADER_OR_FOLLOWER.
        await cluster.restart(2)
        await cluster.write_state(2, 1, (2,))
        assert code(await produce(conn, batch([b"e"]))) == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert code(await produce(conn, batch([b"e"]), acks=1)) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    finally:
        conn.close()


def test_restarted_follower_truncates_divergent_data_and_rejoins_the_isr(
    run_cluster: Callable[[Scenario], None],
) -> None:
    run_cluster(_restarted_follower_truncates_divergent_data_and_rejoins_the_isr)


async def _restarted_follower_truncates_divergent_data_and_rejoins_the_isr(
    cluster: Cluster,
) -> None:
    await cluster.start((1, 2, 3), PROPS)
    cluster.create_topic((1, 2, 3), {"min.insync.replicas": "1"})
    await cluster.write_state(1, 0, (1, 2, 3))
    conn = await client(cluster.nodes[1])
    try:
        for i in range(5):
            assert code(await produce(conn, batch([b"x%d" % i]))) == ErrorCode.NONE
        # Only the leader gets the next batches: followers 2 and 3 are stopped, the leader
        # keeps appending with acks=1 (uncommitted data that will diverge).
        await cluster.stop(2)
        await cluster.stop(3)
        for i in range(3):
            assert code(await produce(conn, batch([b"lost%d" % i]), acks=1)) == ErrorCode.NONE
    finally:
        conn.close()
    assert cluster.nodes[1].leo() == 8
    # The leader dies; 2 comes back and is elected (unclean as far as the test goes: the
    # controller's choice), writes new data in epoch 1.
    await cluster.stop(1)
    await cluster.restart(2)
    await cluster.write_state(2, 1, (2,))
    conn = await client(cluster.nodes[2])
    try:
        for i in range(4):
            assert code(await produce(conn, batch([b"new%d" % i]))) == ErrorCode.NONE
    finally:
        conn.close()
    # 1 returns as a follower: it must cut offsets 5..7 of epoch 0 (KIP-101) and copy the
    # new leader's epoch 1, then join the ISR (the leader's conditional write).
    await cluster.restart(1)
    await cluster.restart(3)
    await cluster.deliver()
    new_leader = cluster.nodes[2]
    await eventually(
        lambda: all(cluster.nodes[b].log_bytes() == new_leader.log_bytes() for b in (1, 3)),
        "the followers' logs equal the new leader's",
    )
    assert cluster.nodes[1].leo() == 9
    await eventually(lambda: set(cluster.read_state().isr) == {1, 2, 3}, "ISR {1,2,3} in ZooKeeper")
    # The leader takes the ISR it wrote when its write's answer reaches its loop, which may
    # be after this test's own read of the znode.
    await eventually(
        lambda: new_leader.ctx.partitions[TP].isr == {1, 2, 3}, "the leader's ISR {1,2,3}"
    )
    log = cluster.nodes[1].ctx.logs.get(TP)
    assert log is not None
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(0, 0), (1, 5)]
    assert os.path.isdir(cluster.nodes[1].data_dir)
