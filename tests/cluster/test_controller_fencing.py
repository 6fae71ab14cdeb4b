"""Controller fencing on a real ZooKeeper, with the controller in the test's process: a
controller whose /controller_epoch has moved on (another controller was elected while it
still believes it leads) has its next partition-state write refused by the multi-op's
check of /controller_epoch's version, resigns, and leaves the state as it was."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble
from impl.controller.controller import KafkaController
from impl.zk import layout
from impl.zk.layout import BrokerInfo, LeaderAndIsr, TopicAssignment
from impl.zk.session import ZkSession

pytestmark = pytest.mark.timeout(120)

DEADLINE_S = 30.0


async def until(condition: Callable[[], object], what: str) -> None:
    """Poll ``condition`` on the loop until it holds; fail at the deadline."""
    end = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def read_state(zk: KazooClient) -> LeaderAndIsr | None:
    path = layout.state_path("t", 0)
    if zk.exists(path) is None:
        return None
    data, stat = zk.get(path)
    return layout.decode_leader_and_isr(data, stat.version)


def test_a_controller_with_a_stale_epoch_cannot_write_and_resigns(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    for broker_id in (1, 2):  # two brokers, registered by the test's own session
        zk.create(
            layout.broker_path(broker_id),
            layout.encode_broker(BrokerInfo(broker_id, "127.0.0.1", 9000 + broker_id)),
            ephemeral=True,
            makepath=True,
        )
    zk.create(
        layout.topic_path("t"),
        layout.encode_topic(TopicAssignment(uuid.uuid4(), {0: (1, 2)})),
        makepath=True,
    )

    async def run() -> None:
        session = ZkSession(zookeeper.connect_string, 6000)
        await session.start()
        ctl = KafkaController(session, 1, unclean_default=False)
        await ctl.start()
        try:
            await until(lambda: ctl.active, "the controller elected")
            epoch = ctl.epoch
            assert epoch is not None
            await until(lambda: read_state(zk) is not None, "the partition's first state")
            first = read_state(zk)
            assert first == LeaderAndIsr(1, 0, (1, 2), epoch, 0)

            # Another controller is elected elsewhere: /controller_epoch moves on, and
            # this controller has not heard of it.
            await asyncio.to_thread(
                zk.set, layout.CONTROLLER_EPOCH, layout.encode_controller_epoch(epoch + 1)
            )
            assert ctl.active
            # Broker 2 goes: the stale controller would shrink the ISR to (1,) ...
            await asyncio.to_thread(zk.delete, layout.broker_path(2))
            # ... but its write is refused by the epoch check, and it resigns.
            await until(lambda: not ctl.active, "the stale controller resigning")
            assert read_state(zk) == first
        finally:
            await ctl.close()
            await session.close()

    asyncio.run(run())
