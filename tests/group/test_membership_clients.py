"""Real clients as members of a consumer group on one broker: librdkafka (confluent-kafka),
kafka-python and aiokafka each run two consumers of a two-partition topic.  The first
gets both partitions; when the second joins, the group rebalances and each gets one;
when the second closes (LeaveGroup), the first gets both again.  Each client negotiates
its own versions of JoinGroup, SyncGroup, Heartbeat and LeaveGroup (KIP-394 included)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiokafka
import confluent_kafka
import kafka
import pytest

from tests.group import membership_wire as mw
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess

DEADLINE_S = 60.0
CONFIG = {**mw.PROPERTIES, "group.min.session.timeout.ms": "6000"}
PYTHON_CLIENT_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 300,
    "enable_auto_commit": False,
}
"""kafka-python's and aiokafka's consumer settings (librdkafka's have their own names)."""


class ConsumerThread(threading.Thread):
    """One consumer polling in its own thread; ``assignment`` is what it holds now."""

    def __init__(self, client: str, bootstrap: str, group: str, topic: str) -> None:
        super().__init__(daemon=True, name=f"{client}-consumer")
        self.client, self.bootstrap, self.group, self.topic = client, bootstrap, group, topic
        self.assignment: frozenset[int] = frozenset()
        self.failure: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            if self.client == "confluent":
                self._confluent()
            elif self.client == "kafka-python":
                self._kafka_python()
            else:
                asyncio.run(self._aiokafka())
        except BaseException as e:
            self.failure = e

    def stop(self) -> None:
        self.done.set()
        self.join(DEADLINE_S)
        assert not self.is_alive(), f"{self.name} did not close"
        assert self.failure is None, self.failure

    def _confluent(self) -> None:
        c = confluent_kafka.Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 300,
                "enable.auto.commit": False,
            }
        )
        c.subscribe([self.topic])
        while not self.done.is_set():
            c.poll(0.1)
            self.assignment = frozenset(p.partition for p in c.assignment())
        c.close()

    def _kafka_python(self) -> None:
        c = kafka.KafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            **PYTHON_CLIENT_SETTINGS,
        )
        while not self.done.is_set():
            c.poll(timeout_ms=100)
            self.assignment = frozenset(tp.partition for tp in c.assignment())
        c.close()

    async def _aiokafka(self) -> None:
        c = aiokafka.AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            **PYTHON_CLIENT_SETTINGS,
        )
        await c.start()
        try:
            while not self.done.is_set():
                await c.getmany(timeout_ms=100)
                self.assignment = frozenset(tp.partition for tp in c.assignment())
        finally:
            await c.stop()


def wait_until(probe: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not probe():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling a condition with a deadline


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerProcess]:
    b = BrokerProcess(tmp_path, 1, CONFIG)
    yield b
    b.kill()
    assert "Traceback" not in b.stderr(), b.stderr()


@pytest.mark.parametrize("client", ["confluent", "kafka-python", "aiokafka"])
def test_two_consumers_share_and_hand_back_partitions(broker: BrokerProcess, client: str) -> None:
    topic, group = f"t-{client}", f"g-{client}"
    with broker.client() as wire:
        (created,) = wire.request(kr.create_topics([(topic, 2, 1)])).topics
        assert created.error_code == 0
    bootstrap = f"{broker.host}:{broker.port}"
    first = ConsumerThread(client, bootstrap, group, topic)
    first.start()
    second = ConsumerThread(client, bootstrap, group, topic)
    try:
        wait_until(lambda: first.assignment == {0, 1}, "the first consumer to get both")
        second.start()
        wait_until(
            lambda: (
                len(first.assignment) == len(second.assignment) == 1
                and first.assignment | second.assignment == {0, 1}
            ),
            "the partitions to be shared",
        )
        with broker.client() as wire:
            described = mw.describe(wire, group)
            assert (described.group_state, len(described.members)) == ("Stable", 2)
        second.stop()
        wait_until(lambda: first.assignment == {0, 1}, "the first consumer to get both back")
    finally:
        second.done.set()
        first.stop()
