"""Every compression codec round trip, from every client: the broker stores a compressed
batch as it came (it never decompresses) and serves it back, and the producing client
and librdkafka both read the records out of it.

kafka-python compresses with python-snappy, lz4 and zstandard, aiokafka with cramjam;
without those packages the client cannot use the codec at all, and the case is skipped
with the package to install.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiokafka
import aiokafka.codec
import confluent_kafka
import kafka
import kafka.codec
import pytest

from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    consume_confluent,
    create_topic,
    kcat,
    poll_aiokafka,
    poll_kafka_python,
    produce_all,
    unique_topic,
)

CODECS = ("gzip", "snappy", "lz4", "zstd")
COUNT = 200


def payloads(codec: str) -> list[tuple[bytes, bytes]]:
    """Compressible records (repetitive values), several per batch."""
    return [(f"k{i}".encode(), f"{codec} record {i} ".encode() * 20) for i in range(COUNT)]


def read_all_confluent(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    records = consume_confluent(bootstrap, topic, {0: confluent_kafka.OFFSET_BEGINNING}, COUNT)
    assert [r.offset for r in records] == list(range(COUNT))
    return [(r.key, r.value) for r in records]


def _has(module_check: Callable[[], bool], package: str) -> None:
    if not module_check():
        pytest.skip(f"the client has no codec library installed ({package})")


def kafka_python_codec(codec: str) -> None:
    checks = {
        "gzip": (kafka.codec.has_gzip, "gzip"),
        "snappy": (kafka.codec.has_snappy, "python-snappy"),
        "lz4": (kafka.codec.has_lz4, "lz4"),
        "zstd": (kafka.codec.has_zstd, "zstandard"),
    }
    _has(*checks[codec])


def aiokafka_codec(codec: str) -> None:
    checks = {
        "gzip": (aiokafka.codec.has_gzip, "gzip"),
        "snappy": (aiokafka.codec.has_snappy, "cramjam"),
        "lz4": (aiokafka.codec.has_lz4, "cramjam"),
        "zstd": (aiokafka.codec.has_zstd, "cramjam"),
    }
    _has(*checks[codec])


@pytest.mark.parametrize("codec", CODECS)
def test_confluent_round_trip(bootstrap: str, codec: str) -> None:
    topic = create_topic(bootstrap, unique_topic(f"z-c-{codec}"))
    sent = payloads(codec)
    acked = produce_all(bootstrap, topic, sent, config={"compression.type": codec, "linger.ms": 50})
    assert sorted(r.offset for r in acked) == list(range(COUNT))
    assert read_all_confluent(bootstrap, topic) == sent


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_round_trip(bootstrap: str, codec: str) -> None:
    kafka_python_codec(codec)
    topic = create_topic(bootstrap, unique_topic(f"z-kp-{codec}"))
    sent = payloads(codec)
    producer = kafka.KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", compression_type=codec, linger_ms=50
    )
    try:
        futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in sent]
        producer.flush(timeout=CLIENT_TIMEOUT_S)
        assert [f.get(timeout=CLIENT_TIMEOUT_S).offset for f in futures] == list(range(COUNT))
    finally:
        producer.close(timeout=CLIENT_TIMEOUT_S)

    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    try:
        tp = kafka.TopicPartition(topic, 0)
        consumer.assign([tp])
        got = poll_kafka_python(consumer, COUNT)
        assert [(r.key, r.value) for r in got] == sent
    finally:
        consumer.close()
    assert read_all_confluent(bootstrap, topic) == sent


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_round_trip(bootstrap: str, codec: str) -> None:
    aiokafka_codec(codec)
    topic = create_topic(bootstrap, unique_topic(f"z-aio-{codec}"))
    sent = payloads(codec)

    async def round_trip() -> list[tuple[bytes | None, bytes | None]]:
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", compression_type=codec, linger_ms=50
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, key=k, value=v, partition=0) for k, v in sent]
            metas = await asyncio.gather(*futures)
            assert [m.offset for m in metas] == list(range(COUNT))
        finally:
            await producer.stop()
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            consumer.assign([aiokafka.TopicPartition(topic, 0)])
            return [(r.key, r.value) for r in await poll_aiokafka(consumer, COUNT)]
        finally:
            await consumer.stop()

    assert asyncio.run(asyncio.wait_for(round_trip(), CLIENT_TIMEOUT_S * 2)) == sent
    assert read_all_confluent(bootstrap, topic) == sent


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_round_trip(bootstrap: str, codec: str) -> None:
    topic = create_topic(bootstrap, unique_topic(f"z-kcat-{codec}"))
    sent = [(k, v.replace(b" ", b"_")) for k, v in payloads(codec)]
    kcat(
        *("-b", bootstrap, "-t", topic, "-p", "0", "-P", "-K", "\t", "-z", codec),
        *("-X", "acks=all", "-X", "linger.ms=50"),
        stdin=b"".join(k + b"\t" + v + b"\n" for k, v in sent),
    )
    out = kcat(
        "-b", bootstrap, "-t", topic, "-p", "0", "-C", "-o", "beginning", "-e", "-f", "%o\t%k\t%s\n"
    )
    lines = [line.split(b"\t") for line in out.splitlines()]
    assert [int(o) for o, _, _ in lines] == list(range(COUNT))
    assert [(k, v) for _, k, v in lines] == sent
    assert read_all_confluent(bootstrap, topic) == sent
