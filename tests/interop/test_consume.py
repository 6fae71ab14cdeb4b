"""Consume from earliest and from latest with every client, by manual assignment (no
consumer group): a consumer starting at earliest reads every record from offset 0; one
starting at latest reads only what is produced after its position was resolved.

kafka-python and aiokafka with ``group_id=None`` have no committed offset to start from,
so their ``auto_offset_reset`` decides; confluent-kafka is given the logical offsets
OFFSET_BEGINNING / OFFSET_END (with a group.id, an unset offset would ask the group
coordinator for a committed one); kcat uses ``-o beginning`` and ``-o -N``.
"""

from __future__ import annotations

import asyncio

import aiokafka
import confluent_kafka
import kafka

from tests.interop.support import (
    CLIENT_TIMEOUT_S,
    confluent_consumer,
    consume_confluent,
    create_topic,
    kcat,
    poll_aiokafka,
    poll_confluent,
    poll_kafka_python,
    produce_all,
    unique_topic,
    wait_for_end,
)

BEFORE = [(None, f"before-{i}".encode()) for i in range(30)]
AFTER = [(None, f"after-{i}".encode()) for i in range(7)]


def topic_with_records(bootstrap: str, prefix: str) -> str:
    topic = create_topic(bootstrap, unique_topic(prefix))
    produce_all(bootstrap, topic, BEFORE, partition=0)
    return topic


def test_confluent_from_earliest(bootstrap: str) -> None:
    topic = topic_with_records(bootstrap, "early-c")
    got = consume_confluent(bootstrap, topic, {0: confluent_kafka.OFFSET_BEGINNING}, len(BEFORE))
    assert [(r.offset, r.value) for r in got] == [(i, v) for i, (_, v) in enumerate(BEFORE)]


def test_confluent_from_latest(bootstrap: str) -> None:
    topic = topic_with_records(bootstrap, "late-c")
    consumer = confluent_consumer(bootstrap, **{"enable.partition.eof": True})
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_END)])
        assert wait_for_end(consumer) == len(BEFORE)
        produce_all(bootstrap, topic, AFTER, partition=0)
        got = poll_confluent(consumer, len(AFTER))
    finally:
        consumer.close()
    assert [(r.offset, r.value) for r in got] == [
        (len(BEFORE) + i, v) for i, (_, v) in enumerate(AFTER)
    ]


def test_kafka_python_earliest_and_latest(bootstrap: str) -> None:
    topic = topic_with_records(bootstrap, "kp-reset")
    tp = kafka.TopicPartition(topic, 0)
    consumers = {
        reset: kafka.KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset=reset
        )
        for reset in ("earliest", "latest")
    }
    try:
        for consumer in consumers.values():
            consumer.assign([tp])
        assert consumers["earliest"].position(tp, timeout_ms=20000) == 0
        assert consumers["latest"].position(tp, timeout_ms=20000) == len(BEFORE)
        produce_all(bootstrap, topic, AFTER, partition=0)
        early = poll_kafka_python(consumers["earliest"], len(BEFORE) + len(AFTER))
        late = poll_kafka_python(consumers["latest"], len(AFTER))
    finally:
        for consumer in consumers.values():
            consumer.close()
    assert [r.value for r in early] == [v for _, v in BEFORE + AFTER]
    assert [r.offset for r in early] == list(range(len(BEFORE) + len(AFTER)))
    assert [(r.offset, r.value) for r in late] == [
        (len(BEFORE) + i, v) for i, (_, v) in enumerate(AFTER)
    ]


def test_aiokafka_earliest_and_latest(bootstrap: str) -> None:
    topic = topic_with_records(bootstrap, "aio-reset")
    tp = aiokafka.TopicPartition(topic, 0)

    async def run() -> tuple[list[int], list[int]]:
        early = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
        )
        late = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="latest"
        )
        await early.start()
        await late.start()
        try:
            early.assign([tp])
            late.assign([tp])
            assert await early.position(tp) == 0
            assert await late.position(tp) == len(BEFORE)
            await asyncio.to_thread(produce_all, bootstrap, topic, AFTER, partition=0)
            got_early = await poll_aiokafka(early, len(BEFORE) + len(AFTER))
            got_late = await poll_aiokafka(late, len(AFTER))
            return [r.offset for r in got_early], [r.offset for r in got_late]
        finally:
            await early.stop()
            await late.stop()

    early, late = asyncio.run(asyncio.wait_for(run(), CLIENT_TIMEOUT_S * 2))
    assert early == list(range(len(BEFORE) + len(AFTER)))
    assert late == list(range(len(BEFORE), len(BEFORE) + len(AFTER)))


def test_kcat_from_beginning_and_from_end(bootstrap: str) -> None:
    topic = topic_with_records(bootstrap, "kcat-reset")
    args = ("-b", bootstrap, "-t", topic, "-p", "0", "-C", "-e", "-f", "%o %s\n")
    everything = kcat(*args, "-o", "beginning").splitlines()
    assert everything == [f"{i} {v.decode()}".encode() for i, (_, v) in enumerate(BEFORE)]
    last_three = kcat(*args, "-o", "-3").splitlines()
    assert last_three == everything[-3:]
    assert kcat(*args, "-o", "end") == b""
