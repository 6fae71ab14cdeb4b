"""Retention deletes old segments and advances the log start offset; consumers below it
get OFFSET_OUT_OF_RANGE and reset by ``auto.offset.reset``.

Each test starts its own broker with small segments (``log.segment.bytes``) and a short
``log.retention.check.interval.ms``, then waits (condition, deadline) until the log start
offset moves.  By time: the old records carry a CreateTime an hour back, older than
``log.retention.ms``, so their segments are due at once; by size: ``log.retention.bytes``.
Every record is sent in a batch of its own, so segments roll between records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiokafka
import confluent_kafka
import kafka
import kafka.errors
import pytest

from harness.launcher import BrokerProcess, start_broker
from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    confluent_consumer,
    consume_confluent,
    create_topic,
    kcat,
    poll_aiokafka,
    poll_confluent,
    poll_kafka_python,
    producer,
    unique_topic,
    wait_for_end,
    wait_until,
)

OLD = 40
FRESH = 5
RETENTION_BYTES = 2048
SMALL_SEGMENTS = {
    "log.segment.bytes": 1024,
    "log.retention.check.interval.ms": 100,
}


def retention_broker(tmp_path: Path, **config: object) -> BrokerProcess:
    return start_broker(1, work_dir=tmp_path, config={**SMALL_SEGMENTS, **config})


@pytest.fixture
def by_time(tmp_path: Path) -> Iterator[BrokerProcess]:
    with retention_broker(tmp_path, **{"log.retention.ms": 600_000}) as b:
        yield b


@pytest.fixture
def by_size(tmp_path: Path) -> Iterator[BrokerProcess]:
    with retention_broker(tmp_path, **{"log.retention.bytes": RETENTION_BYTES}) as b:
        yield b


def produce_one_per_batch(bootstrap: str, topic: str, count: int, first: int, ts: int) -> None:
    p = producer(bootstrap, **{"linger.ms": 0})
    for i in range(first, first + count):
        p.produce(topic, value=f"record-{i:04d}-".encode() * 8, partition=0, timestamp=ts)
        assert p.flush(CLIENT_TIMEOUT_S) == 0, f"record {i} not acknowledged"


def watermarks(bootstrap: str, topic: str) -> tuple[int, int]:
    consumer = confluent_consumer(bootstrap)
    try:
        low, high = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition(topic, 0), timeout=CLIENT_TIMEOUT_S
        )
        return low, high
    finally:
        consumer.close()


def wait_for_log_start_to_move(bootstrap: str, topic: str) -> int:
    def moved() -> int | None:
        low, _ = watermarks(bootstrap, topic)
        return low if low > 0 else None

    return wait_until(moved, f"retention to advance the log start offset of {topic}")


def wait_for_size_retention_to_settle(broker: BrokerProcess, topic: str, limit: int) -> int:
    """The log start offset once retention by size has nothing more to delete.

    Retention runs while the records arrive, so the first move of the log start offset
    may not be the last; it is settled when the log without its oldest segment is below
    ``limit`` (``log.retention.bytes``) or only the active segment is left.
    """
    directory = broker.data_dir / f"{topic}-0"

    def settled() -> int | None:
        sizes = [p.stat().st_size for p in sorted(directory.glob("*.log"))]
        if len(sizes) > 1 and sum(sizes) - sizes[0] >= limit:
            return None
        low, _ = watermarks(broker.bootstrap, topic)
        return low if low > 0 else None

    return wait_until(settled, f"retention by size to settle on {topic}")


def test_retention_by_time_and_consumers_resetting(by_time: BrokerProcess) -> None:
    bootstrap = by_time.bootstrap
    topic = create_topic(bootstrap, unique_topic("ret-time"))
    now = int(time.time() * 1000)
    produce_one_per_batch(bootstrap, topic, OLD, 0, now - 3_600_000)
    produce_one_per_batch(bootstrap, topic, FRESH, OLD, now)

    start = wait_for_log_start_to_move(bootstrap, topic)
    assert 0 < start <= OLD, "only segments older than log.retention.ms may go"
    assert watermarks(bootstrap, topic) == (start, OLD + FRESH)

    # Below the log start offset: OFFSET_OUT_OF_RANGE, then auto.offset.reset decides.
    earliest = consume_confluent(
        bootstrap, topic, {0: 0}, OLD + FRESH - start, config={"auto.offset.reset": "earliest"}
    )
    assert [r.offset for r in earliest] == list(range(start, OLD + FRESH))
    assert earliest[-1].value == b"record-0044-" * 8

    latest = confluent_consumer(
        bootstrap, **{"auto.offset.reset": "latest", "enable.partition.eof": True}
    )
    try:
        latest.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
        assert wait_for_end(latest) == OLD + FRESH
        produce_one_per_batch(bootstrap, topic, 1, OLD + FRESH, int(time.time() * 1000))
        [after] = poll_confluent(latest, 1)
        assert after.offset == OLD + FRESH
    finally:
        latest.close()

    failing = confluent_consumer(bootstrap, **{"auto.offset.reset": "error"})
    try:
        failing.assign([confluent_kafka.TopicPartition(topic, 0, 0)])

        def out_of_range() -> confluent_kafka.KafkaError | None:
            msg = failing.poll(0.5)
            err = None if msg is None else msg.error()
            return err if err is not None and err.code() != err._PARTITION_EOF else None

        err = wait_until(out_of_range, "the consumer error for an offset below log start")
        assert err.code() == confluent_kafka.KafkaError._AUTO_OFFSET_RESET, err
        assert "out of range" in err.str().lower() or "OFFSET_OUT_OF_RANGE" in err.str()
    finally:
        failing.close()


def test_retention_by_size_with_every_client_resetting(by_size: BrokerProcess) -> None:
    bootstrap = by_size.bootstrap
    topic = create_topic(bootstrap, unique_topic("ret-size"))
    produce_one_per_batch(bootstrap, topic, OLD, 0, int(time.time() * 1000))
    start = wait_for_size_retention_to_settle(by_size, topic, RETENTION_BYTES)
    assert 0 < start < OLD
    assert watermarks(bootstrap, topic) == (start, OLD)
    left = OLD - start

    tp = kafka.TopicPartition(topic, 0)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        got = poll_kafka_python(consumer, left)
        assert [r.offset for r in got] == list(range(start, OLD))
    finally:
        consumer.close()

    strict = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="none"
    )
    try:
        strict.assign([tp])
        strict.seek(tp, 0)
        with pytest.raises(kafka.errors.OffsetOutOfRangeError):
            poll_kafka_python(strict, 1)
    finally:
        strict.close()

    async def aio() -> list[int]:
        c = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await c.start()
        try:
            atp = aiokafka.TopicPartition(topic, 0)
            c.assign([atp])
            c.seek(atp, 0)
            return [r.offset for r in await poll_aiokafka(c, left)]
        finally:
            await c.stop()

    assert asyncio.run(asyncio.wait_for(aio(), CLIENT_TIMEOUT_S * 2)) == list(range(start, OLD))

    out = kcat("-b", bootstrap, "-t", topic, "-p", "0", "-C", "-o", "beginning", "-e", "-f", "%o\n")
    assert [int(o) for o in out.split()] == list(range(start, OLD))
