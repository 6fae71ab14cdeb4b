"""The idempotent producer (InitProducerId, then sequence numbers per partition) of
confluent-kafka, kafka-python and aiokafka: every record acknowledged once, at
consecutive offsets, and read back exactly once."""

from __future__ import annotations

import asyncio

import aiokafka
import confluent_kafka
import kafka

from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    Record,
    consume_confluent,
    create_topic,
    produce_all,
    unique_topic,
)

PARTITIONS = 3
COUNT = 300


def values() -> list[bytes]:
    return [f"value-{i}".encode() for i in range(COUNT)]


def assert_exactly_once(bootstrap: str, topic: str, acked: list[Record]) -> None:
    for p in range(PARTITIONS):
        offsets = sorted(r.offset for r in acked if r.partition == p)
        assert offsets == list(range(len(offsets))), f"partition {p}: {offsets}"
    starts = dict.fromkeys(range(PARTITIONS), confluent_kafka.OFFSET_BEGINNING)
    seen = consume_confluent(bootstrap, topic, starts, len(acked))
    assert sorted(r.value or b"" for r in seen) == sorted(values())
    as_acked = {(r.partition, r.offset): r.value for r in acked}
    assert {(r.partition, r.offset): r.value for r in seen} == as_acked


def test_confluent_idempotent_producer(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("idem-c"), PARTITIONS)
    messages = [(f"k{i % 17}".encode(), v) for i, v in enumerate(values())]
    acked = produce_all(
        bootstrap,
        topic,
        messages,
        config={"enable.idempotence": True, "max.in.flight.requests.per.connection": 5},
    )
    assert_exactly_once(bootstrap, topic, acked)


def test_kafka_python_idempotent_producer(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("idem-kp"), PARTITIONS)
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        sent = [(i % PARTITIONS, v) for i, v in enumerate(values())]
        futures = [producer.send(topic, value=v, partition=p) for p, v in sent]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        metas = [f.get(timeout=CLIENT_TIMEOUT_S) for f in futures]
    finally:
        producer.close(timeout=CLIENT_TIMEOUT_S)
    acked = [Record(m.partition, m.offset, None, v) for m, (_, v) in zip(metas, sent, strict=True)]
    assert_exactly_once(bootstrap, topic, acked)


def test_aiokafka_idempotent_producer(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("idem-aio"), PARTITIONS)

    async def produce() -> list[Record]:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            sent = [(i % PARTITIONS, v) for i, v in enumerate(values())]
            futures = [await producer.send(topic, value=v, partition=p) for p, v in sent]
            metas = await asyncio.gather(*futures)
            return [
                Record(m.partition, m.offset, None, v)
                for m, (_, v) in zip(metas, sent, strict=True)
            ]
        finally:
            await producer.stop()

    acked = asyncio.run(asyncio.wait_for(produce(), CLIENT_TIMEOUT_S * 2))
    assert_exactly_once(bootstrap, topic, acked)
