"""ListOffsets through every client's API: earliest, latest and by timestamp (the first
offset whose record timestamp is at or after the one asked for; none past the last).

Each record is sent in a batch of its own with a CreateTime a second after the previous
one, so the expected offset of every timestamp is exact.
"""

from __future__ import annotations

import asyncio
import time

import aiokafka
import confluent_kafka
import kafka
import pytest

from harness.launcher import BrokerProcess
from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    create_topic,
    kcat,
    producer,
    unique_topic,
)

COUNT = 10
STEP_MS = 1000


@pytest.fixture(scope="module")
def broker_bootstrap(broker: BrokerProcess) -> str:
    return broker.bootstrap


@pytest.fixture(scope="module")
def timed(broker_bootstrap: str) -> tuple[str, int]:
    """A topic of COUNT records at timestamps base, base + 1s, ...; (topic, base)."""
    topic = create_topic(broker_bootstrap, unique_topic("times"))
    base = int(time.time() * 1000) - 3_600_000
    p = producer(broker_bootstrap, **{"linger.ms": 0})
    for i in range(COUNT):
        p.produce(topic, value=f"t{i}".encode(), partition=0, timestamp=base + i * STEP_MS)
        assert p.flush(CLIENT_TIMEOUT_S) == 0
    return topic, base


def expected(base: int) -> dict[int, int | None]:
    """Timestamp asked for -> the offset ListOffsets must answer (None: no such record)."""
    return {
        0: 0,
        base: 0,
        base + 1: 1,
        base + 2500: 3,
        base + (COUNT - 1) * STEP_MS: COUNT - 1,
        base + (COUNT - 1) * STEP_MS + 1: None,
    }


def test_confluent_watermarks_and_offsets_for_times(
    broker_bootstrap: str, timed: tuple[str, int]
) -> None:
    topic, base = timed
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": broker_bootstrap, "group.id": unique_topic("unused")}
    )
    try:
        tp = confluent_kafka.TopicPartition(topic, 0)
        assert consumer.get_watermark_offsets(tp, timeout=CLIENT_TIMEOUT_S) == (0, COUNT)
        for ts, offset in expected(base).items():
            [answer] = consumer.offsets_for_times(
                [confluent_kafka.TopicPartition(topic, 0, ts)], timeout=CLIENT_TIMEOUT_S
            )
            assert answer.error is None
            assert answer.offset == (confluent_kafka.OFFSET_END if offset is None else offset), ts
    finally:
        consumer.close()


def test_kafka_python_beginning_end_and_offsets_for_times(
    broker_bootstrap: str, timed: tuple[str, int]
) -> None:
    topic, base = timed
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker_bootstrap, group_id=None)
    try:
        tp = kafka.TopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: COUNT}
        for ts, offset in expected(base).items():
            answer = consumer.offsets_for_times({tp: ts})[tp]
            if offset is None:
                assert answer is None, ts
            else:
                assert answer is not None
                assert (answer.offset, answer.timestamp) == (offset, base + offset * STEP_MS)
    finally:
        consumer.close()


def test_aiokafka_beginning_end_and_offsets_for_times(
    broker_bootstrap: str, timed: tuple[str, int]
) -> None:
    topic, base = timed
    tp = aiokafka.TopicPartition(topic, 0)

    async def run() -> None:
        consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=broker_bootstrap, group_id=None)
        await consumer.start()
        try:
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: COUNT}
            for ts, offset in expected(base).items():
                answer = (await consumer.offsets_for_times({tp: ts}))[tp]
                if offset is None:
                    assert answer is None, ts
                else:
                    assert answer is not None
                    assert (answer.offset, answer.timestamp) == (offset, base + offset * STEP_MS)
        finally:
            await consumer.stop()

    asyncio.run(asyncio.wait_for(run(), CLIENT_TIMEOUT_S * 2))


def test_kcat_query_offsets_by_timestamp(broker_bootstrap: str, timed: tuple[str, int]) -> None:
    topic, base = timed
    for ts, offset in expected(base).items():
        if offset is None:
            continue  # kcat prints librdkafka's logical OFFSET_END for "none"
        out = kcat("-b", broker_bootstrap, "-Q", "-t", f"{topic}:0:{ts}").decode()
        assert f"offset {offset}" in out, (ts, out)
