"""Produce with acks=all and keys from every client: each record is acknowledged at the
offset a consumer then finds it at, in the partition Kafka's default partitioner picks
(``toPositive(murmur2(key)) % partitions``, as ``spec.partitioner`` computes it).

librdkafka's own default is ``consistent_random`` (CRC32); these tests configure
``murmur2_random``, the Java-compatible one, for confluent-kafka and kcat.  kafka-python
and aiokafka use murmur2 by default.
"""

from __future__ import annotations

import asyncio

import aiokafka
import confluent_kafka
import kafka

from spec.partitioner import partition_for_key
from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    Record,
    consume_confluent,
    create_topic,
    kcat,
    produce_all,
    unique_topic,
)

PARTITIONS = 5
KEYS = [b"", b"a", b"key-1", *(f"user-{i}".encode() for i in range(40))]


def messages() -> list[tuple[bytes, bytes]]:
    """Two records per key, values numbered so per-key order can be checked."""
    return [(k, f"{k.decode()}#{n}".encode()) for n in range(2) for k in KEYS]


def read_back(bootstrap: str, topic: str, count: int) -> list[Record]:
    starts = dict.fromkeys(range(PARTITIONS), confluent_kafka.OFFSET_BEGINNING)
    return consume_confluent(bootstrap, topic, starts, count)


def assert_partitioned_by_murmur2(records: list[Record]) -> None:
    for r in records:
        assert r.key is not None
        assert r.partition == partition_for_key(r.key, PARTITIONS), r
    by_partition: dict[int, list[int]] = {}
    for r in records:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for p, offsets in by_partition.items():
        assert sorted(offsets) == list(range(len(offsets))), f"partition {p}: {offsets}"
    for key in {r.key for r in records}:
        values = [r.value for r in sorted(records, key=lambda r: (r.partition, r.offset))]
        mine = [v for v in values if v is not None and v.rsplit(b"#", 1)[0] == key]
        assert mine == sorted(mine), f"records of key {key!r} out of order: {mine}"


def assert_read_back_as_acked(acked: list[Record], seen: list[Record]) -> None:
    as_acked = {(r.partition, r.offset): (r.key, r.value) for r in acked}
    as_seen = {(r.partition, r.offset): (r.key, r.value) for r in seen}
    assert as_seen == as_acked


def test_confluent_keys_land_in_murmur2_partitions(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("keys-c"), PARTITIONS)
    acked = produce_all(bootstrap, topic, messages())
    assert_partitioned_by_murmur2(acked)
    assert_read_back_as_acked(acked, read_back(bootstrap, topic, len(acked)))


def test_kafka_python_keys_land_in_murmur2_partitions(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("keys-kp"), PARTITIONS)
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages()]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        metas = [f.get(timeout=CLIENT_TIMEOUT_S) for f in futures]
    finally:
        producer.close(timeout=CLIENT_TIMEOUT_S)
    acked = [
        Record(m.partition, m.offset, k, v) for m, (k, v) in zip(metas, messages(), strict=True)
    ]
    assert_partitioned_by_murmur2(acked)
    assert_read_back_as_acked(acked, read_back(bootstrap, topic, len(acked)))


def test_aiokafka_keys_land_in_murmur2_partitions(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("keys-aio"), PARTITIONS)

    async def produce() -> list[Record]:
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            acked = []
            for k, v in messages():
                meta = await producer.send_and_wait(topic, key=k, value=v)
                acked.append(Record(meta.partition, meta.offset, k, v))
            return acked
        finally:
            await producer.stop()

    acked = asyncio.run(asyncio.wait_for(produce(), CLIENT_TIMEOUT_S * 2))
    assert_partitioned_by_murmur2(acked)
    assert_read_back_as_acked(acked, read_back(bootstrap, topic, len(acked)))


def test_kcat_keys_land_in_murmur2_partitions(bootstrap: str) -> None:
    topic = create_topic(bootstrap, unique_topic("keys-kcat"), PARTITIONS)
    sent = [(k, v) for k, v in messages() if k]  # kcat sends an empty key as a null key
    lines = b"".join(k + b"\t" + v + b"\n" for k, v in sent)
    kcat(
        *("-b", bootstrap, "-t", topic, "-P", "-K", "\t"),
        *("-X", "partitioner=murmur2_random", "-X", "acks=all"),
        stdin=lines,
    )
    seen = read_back(bootstrap, topic, len(sent))
    assert_partitioned_by_murmur2(seen)
    assert sorted((r.key, r.value) for r in seen) == sorted(sent)
