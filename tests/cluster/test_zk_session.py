"""ZkSession against a real ZooKeeper: conditional partition-state writes, controller
fencing by /controller_epoch's version in the same multi-op, and watches delivered on the
asyncio loop."""

from __future__ import annotations

import asyncio

from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from impl.zk.session import ZkSession
from spec.state import TopicPartition

TP = TopicPartition("t", 0)


def _state(leader: int, epoch: int, isr: tuple[int, ...], controller_epoch: int) -> LeaderAndIsr:
    return LeaderAndIsr(leader, epoch, isr, controller_epoch, zk_version=-1)


def test_update_leader_and_isr_is_fenced_by_the_controller_epoch(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    zk.create(layout.CONTROLLER_EPOCH, b"1", makepath=True)  # version 0, epoch 1
    epoch_version = zk.exists(layout.CONTROLLER_EPOCH).version

    async def run() -> None:
        session = ZkSession(zookeeper.connect_string, 6000)
        await session.start()
        try:
            created = await session.create_leader_and_isr(
                TP, _state(1, 0, (1, 2, 3), 1), epoch_version
            )
            assert created == 0
            read = await session.read_leader_and_isr(TP)
            assert read == LeaderAndIsr(1, 0, (1, 2, 3), 1, 0)

            # The current controller writes: accepted, the znode version moves on.
            version = await session.update_leader_and_isr(
                TP, _state(2, 1, (2, 3), 1), 0, epoch_version
            )
            assert version == 1

            # A new controller is elected: /controller_epoch changes version.
            zk.set(layout.CONTROLLER_EPOCH, b"2", version=epoch_version)

            # The old controller's write (right znode version, stale epoch) is refused.
            stale = await session.update_leader_and_isr(TP, _state(3, 2, (3,), 1), 1, epoch_version)
            assert stale is None
            after = await session.read_leader_and_isr(TP)
            assert after == LeaderAndIsr(2, 1, (2, 3), 1, 1)

            # A wrong znode version is refused too (a leader's ISR write that lost a race).
            assert await session.update_leader_and_isr(TP, _state(2, 1, (2,), 1), 0) is None
            # The leader's conditional write at the version it knows succeeds.
            assert await session.update_leader_and_isr(TP, _state(2, 1, (2,), 1), 1) == 2
            # So does the new controller's, checked against the new epoch version.
            new_epoch_version = epoch_version + 1
            assert (
                await session.update_leader_and_isr(
                    TP, _state(3, 2, (2, 3), 2), 2, new_epoch_version
                )
                == 3
            )
            data, stat = zk.get(layout.state_path("t", 0))
            assert layout.decode_leader_and_isr(data, stat.version) == LeaderAndIsr(
                3, 2, (2, 3), 2, 3
            )
        finally:
            await session.close()

    asyncio.run(run())


def test_watches_run_on_the_loop(zookeeper: ZooKeeperEnsemble, zk: KazooClient) -> None:
    async def run() -> None:
        session = ZkSession(zookeeper.connect_string, 6000)
        await session.start()
        loop = asyncio.get_running_loop()
        seen: list[tuple[bytes | None, int | None]] = []
        children: list[list[str] | None] = []
        changed = asyncio.Event()

        def on_data(data: bytes | None, version: int | None) -> None:
            assert asyncio.get_running_loop() is loop
            seen.append((data, version))
            changed.set()

        def on_children(names: list[str] | None) -> None:
            children.append(names)
            changed.set()

        try:
            await session.watch_data("/w/x", on_data)
            await session.watch_children("/w", on_children)

            async def until(condition: object) -> None:
                async with asyncio.timeout(20):
                    while not condition():  # type: ignore[operator]
                        changed.clear()
                        await changed.wait()

            await until(lambda: seen == [(None, None)] and children == [[]])
            await asyncio.to_thread(zk.create, "/w/x", b"a")
            await until(lambda: (b"a", 0) in seen and ["x"] in children)
            await asyncio.to_thread(zk.set, "/w/x", b"b")
            await until(lambda: seen[-1] == (b"b", 1))
        finally:
            await session.close()

    asyncio.run(run())
