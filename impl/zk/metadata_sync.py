"""The broker's ZooKeeper watches: /brokers/ids (live brokers), /controller, /brokers/topics
(topics, their assignments and configs) and each partition's state znode keep the
metadata cache (ctx.cluster) current, and every partition state of a partition assigned
here is delivered to ctx.replicas.apply_leader_and_isr (the stand-in for Kafka's
LeaderAndIsr request, see impl.zk.session); a deleted topic's replicas get stop_replica
with delete.  Watch callbacks only enqueue; one task handles the queue in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from impl.broker.topics import TopicInfo
from impl.zk import layout
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext
    from impl.zk.session import ZkSession

_log = logging.getLogger(__name__)


class MetadataSync:
    """Mirror ZooKeeper into ctx.cluster; deliver partition states to the replica manager
    once ``deliver`` has been switched on (after this broker registered)."""

    def __init__(self, ctx: BrokerContext, zk: ZkSession) -> None:
        self._ctx = ctx
        self._zk = zk
        self._queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._topic_watches: dict[str, list[Callable[[], None]]] = {}
        self._watched_states: set[TopicPartition] = set()
        self._stops: list[Callable[[], None]] = []
        self._delivering = False

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        put = self._queue.put_nowait
        self._stops.append(
            await self._zk.watch_children(layout.BROKER_IDS, lambda c: put(("brokers", c)))
        )
        self._stops.append(
            await self._zk.watch_data(layout.CONTROLLER, lambda d, _v: put(("controller", d)))
        )
        self._stops.append(
            await self._zk.watch_children(layout.BROKER_TOPICS, lambda c: put(("topics", c)))
        )

    async def synced(self, timeout_s: float = 30.0) -> None:
        """Wait until everything enqueued so far has been handled."""
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(("barrier", done))
        await asyncio.wait_for(done, timeout_s)

    async def deliver(self) -> None:
        """Start delivering partition states to the replica manager, beginning with every
        state known now for a partition assigned here."""
        done = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(("deliver", done))
        await done

    async def close(self) -> None:
        for stop in self._stops:
            stop()
        for stops in self._topic_watches.values():
            for stop in stops:
                stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._handle(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("metadata event %s failed", event[0])

    async def _handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "brokers":
            await self._on_brokers(event[1])
        elif kind == "controller":
            data: bytes | None = event[1]
            self._ctx.cluster.set_controller(
                layout.NO_LEADER if data is None else layout.decode_controller(data)
            )
        elif kind == "topics":
            await self._on_topics(event[1])
        elif kind == "topic":
            await self._on_topic(event[1], event[2])
        elif kind == "state":
            await self._on_state(event[1], event[2], event[3])
        elif kind == "deliver":
            self._delivering = True
            for tp, state in sorted(self._ctx.cluster.states.items()):
                await self._apply(tp, state)
            event[1].set_result(None)
        elif kind == "barrier":
            event[1].set_result(None)

    async def _on_brokers(self, children: list[str] | None) -> None:
        ids = sorted(int(c) for c in children or () if c.lstrip("-").isdigit())
        found = await asyncio.gather(*(self._zk.get(layout.broker_path(i)) for i in ids))
        brokers = {}
        for broker_id, entry in zip(ids, found, strict=True):
            if entry is not None:
                brokers[broker_id] = layout.decode_broker(broker_id, entry[0])
        self._ctx.cluster.set_brokers(brokers)

    async def _on_topics(self, children: list[str] | None) -> None:
        names = set(children or ())
        for name in sorted(names - set(self._topic_watches)):
            self._topic_watches[name] = [
                await self._zk.watch_data(layout.topic_path(name), self._enqueue("topic", name))
            ]
        for name in sorted(set(self._topic_watches) - names):
            self._forget_topic(name)

    def _forget_topic(self, name: str) -> None:
        for stop in self._topic_watches.pop(name, []):
            stop()
        info = self._ctx.cluster.remove_topic(name)
        self._watched_states = {tp for tp in self._watched_states if tp.topic != name}
        if info is None:
            return
        _log.info("topic %s deleted", name)
        if self._ctx.group_log is not None:  # the groups' offsets of it go
            self._ctx.group_log.topics_deleted([name])
        replicas = self._ctx.replicas
        for index, assigned in enumerate(info.replicas):
            if replicas is not None and self._ctx.broker_id in assigned:
                replicas.stop_replica(TopicPartition(name, index), True)

    async def _on_topic(self, name: str, data: bytes | None) -> None:
        if name not in self._topic_watches:
            return
        if data is None:
            self._forget_topic(name)
            return
        assignment = layout.decode_topic(data)
        old = self._ctx.cluster.topic(name)
        topic_id = assignment.topic_id
        if topic_id is None:  # written by a Kafka older than 2.8: keep what we had
            topic_id = old.topic_id if old is not None else layout_topic_id(name)
        configs = old.configs if old is not None else await self._read_configs(name)
        info = TopicInfo(name, topic_id, assignment.replicas(), configs)
        self._ctx.cluster.topics.put(info)
        self._ctx.cluster.notify()
        for index in range(info.partitions):
            tp = TopicPartition(name, index)
            if tp in self._watched_states:
                continue
            self._watched_states.add(tp)
            self._topic_watches[name].append(
                await self._zk.watch_data(
                    layout.state_path(name, index), self._enqueue("state", tp)
                )
            )

    def _enqueue(self, kind: str, key: object) -> Callable[[bytes | None, int | None], None]:
        def callback(data: bytes | None, version: int | None) -> None:
            self._queue.put_nowait((kind, key, data, version))

        return callback

    async def _read_configs(self, name: str) -> dict[str, str]:
        found = await self._zk.get(layout.topic_config_path(name))
        return {} if found is None else layout.decode_topic_config(found[0])

    async def _on_state(self, tp: TopicPartition, data: bytes | None, version: int | None) -> None:
        if data is None or version is None or tp not in self._watched_states:
            return
        state = layout.decode_leader_and_isr(data, version)
        self._ctx.cluster.set_state(tp, state)
        if self._delivering:
            await self._apply(tp, state)

    async def _apply(self, tp: TopicPartition, state: layout.LeaderAndIsr) -> None:
        replicas = self._ctx.replicas
        assignment = self._ctx.cluster.assignment(tp)
        if replicas is None or assignment is None or self._ctx.broker_id not in assignment:
            return
        await replicas.apply_leader_and_isr(tp, assignment, state)


def layout_topic_id(name: str) -> uuid.UUID:
    """A stable topic id for a topic znode without one (derived from the name)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"kafkaref-topic:{name}")
