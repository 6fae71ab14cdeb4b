"""The broker's metadata cache: the live brokers and their endpoints, the controller, the
topics (assignment, topic id, configs: the topic registry) and every partition's leader,
leader epoch and ISR.  Metadata, DescribeCluster and the replica fetchers answer from it.

In cluster mode the ZooKeeper watches (impl.zk.metadata_sync) keep it current; in
single-broker mode it holds this broker alone, as the controller and every partition's
leader at leader epoch 0."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from impl.broker.topics import TopicInfo, TopicRegistry
from impl.zk.layout import NO_LEADER, BrokerInfo, LeaderAndIsr
from spec.state import TopicPartition

__all__ = ["BrokerInfo", "ClusterMetadata", "LeaderAndIsr"]


class ClusterMetadata:
    """What this broker knows of the cluster; ``changed`` wakes waiters on every update."""

    def __init__(self, topics: TopicRegistry, controller_id: int = NO_LEADER) -> None:
        self.topics = topics
        self.controller_id = controller_id
        self.brokers: dict[int, BrokerInfo] = {}
        self.states: dict[TopicPartition, LeaderAndIsr] = {}
        self._changed = asyncio.Condition()
        self._pending_notify = False

    @classmethod
    def single_broker(cls, topics: TopicRegistry, me: BrokerInfo) -> ClusterMetadata:
        """This broker alone: the only live broker and the controller."""
        metadata = cls(topics, me.broker_id)
        metadata.brokers[me.broker_id] = me
        return metadata

    @property
    def cluster_id(self) -> str:
        return self.topics.cluster_id

    # --- reading ---------------------------------------------------------------------------

    def live_broker_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.brokers))

    def broker(self, broker_id: int) -> BrokerInfo | None:
        return self.brokers.get(broker_id)

    def topic(self, name: str) -> TopicInfo | None:
        return self.topics.get(name)

    def assignment(self, tp: TopicPartition) -> tuple[int, ...] | None:
        info = self.topics.get(tp.topic)
        if info is None or not 0 <= tp.partition < info.partitions:
            return None
        return info.replicas[tp.partition]

    def state(self, tp: TopicPartition) -> LeaderAndIsr | None:
        return self.states.get(tp)

    def leader(self, tp: TopicPartition) -> int:
        """The partition's leader, or -1 (none, or not known yet)."""
        state = self.states.get(tp)
        return NO_LEADER if state is None else state.leader

    def offline_replicas(self, tp: TopicPartition) -> tuple[int, ...]:
        """Assigned replicas on brokers that are not registered."""
        replicas = self.assignment(tp) or ()
        return tuple(r for r in replicas if r not in self.brokers)

    # --- updating (the metadata watches, or admin in single-broker mode) -------------------

    def set_brokers(self, brokers: dict[int, BrokerInfo]) -> None:
        self.brokers = dict(brokers)
        self.notify()

    def set_controller(self, controller_id: int) -> None:
        self.controller_id = controller_id
        self.notify()

    def set_state(self, tp: TopicPartition, state: LeaderAndIsr) -> None:
        self.states[tp] = state
        self.notify()

    def remove_topic(self, name: str) -> TopicInfo | None:
        info = self.topics.remove(name)
        for tp in [tp for tp in self.states if tp.topic == name]:
            del self.states[tp]
        self.notify()
        return info

    def notify(self) -> None:
        """Wake everything waiting in ``wait_until`` (from synchronous code too)."""
        if self._pending_notify:
            return
        self._pending_notify = True
        try:
            asyncio.get_running_loop().create_task(self._notify())
        except RuntimeError:  # no loop (tests, boot): nobody can be waiting
            self._pending_notify = False

    async def _notify(self) -> None:
        self._pending_notify = False
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        """Wait until ``condition()`` holds (checked after every update); False at the
        deadline."""
        deadline = time.monotonic() + timeout_s
        async with self._changed:
            while not condition():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    return condition()
        return True
