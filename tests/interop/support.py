"""Shared plumbing of the interop tests: waits with deadlines, topic set-up and read-back.

Every client here is a real, unmodified one (confluent-kafka / librdkafka, kafka-python,
aiokafka, kcat); nothing of the broker is imported.  Consumption uses manual assignment
only (consumer groups are issue 5): confluent-kafka needs a ``group.id`` to make a
consumer at all, but with ``assign()``, explicit start offsets and no commits it never
needs a group coordinator.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiokafka
import attrs
import confluent_kafka
import kafka
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

T = TypeVar("T")

KCAT = shutil.which("kcat") or "/usr/bin/kcat"
CLIENT_TIMEOUT_S = 20.0
_names = itertools.count()


def unique_topic(prefix: str) -> str:
    """A topic name no other test in this run uses."""
    return f"{prefix}-{os.getpid()}-{next(_names)}"


def wait_until(probe: Callable[[], T | None], what: str, timeout: float = CLIENT_TIMEOUT_S) -> T:
    """Call ``probe`` until it returns something other than None (or False); return that.

    Fails with ``what`` in the message when the deadline passes first.
    """
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last is not None and last is not False:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@attrs.frozen
class Record:
    """One record as a consumer saw it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = -1


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(
    bootstrap: str, name: str, partitions: int = 1, config: dict[str, str] | None = None
) -> str:
    """Create ``name`` with confluent-kafka's AdminClient and wait until metadata shows it."""
    client = admin(bootstrap)
    futures = client.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=CLIENT_TIMEOUT_S,
        request_timeout=CLIENT_TIMEOUT_S,
    )
    futures[name].result(timeout=CLIENT_TIMEOUT_S)
    wait_until(
        lambda: topic_partitions(bootstrap, name) == partitions,
        f"topic {name} with {partitions} partitions in metadata",
    )
    return name


def topic_partitions(bootstrap: str, name: str) -> int | None:
    """How many partitions metadata lists for ``name``, None if it lists no such topic.

    It asks for all topics: a Metadata request naming the topic would, from librdkafka's
    AdminClient (a producer handle, allow.auto.create.topics=true), auto-create it.
    """
    md = admin(bootstrap).list_topics(timeout=CLIENT_TIMEOUT_S)
    topic = md.topics.get(name)
    if topic is None or topic.error is not None:
        return None
    return len(topic.partitions)


def producer(bootstrap: str, **config: object) -> confluent_kafka.Producer:
    """A confluent-kafka producer with acks=all and Java's murmur2 partitioner by default."""
    settings: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "partitioner": "murmur2_random",
        "message.timeout.ms": int(CLIENT_TIMEOUT_S * 1000),
        "linger.ms": 5,
    }
    settings.update(config)
    return confluent_kafka.Producer(settings)


def produce_all(
    bootstrap: str,
    topic: str,
    messages: Sequence[tuple[bytes | None, bytes]],
    *,
    partition: int | None = None,
    config: Mapping[str, object] | None = None,
) -> list[Record]:
    """Produce ``(key, value)`` pairs with confluent-kafka; the acknowledged records.

    Fails if any delivery report carries an error or any message is not acknowledged.
    """
    acked: list[Record] = []
    errors: list[str] = []

    def on_delivery(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            acked.append(_confluent_record(msg))

    p = producer(bootstrap, **(config or {}))
    for key, value in messages:
        if partition is None:
            p.produce(topic, key=key, value=value, on_delivery=on_delivery)
        else:
            p.produce(topic, key=key, value=value, partition=partition, on_delivery=on_delivery)
        p.poll(0)
    left = p.flush(CLIENT_TIMEOUT_S)
    assert left == 0, f"{left} messages not acknowledged; errors: {errors}"
    assert not errors, errors
    assert len(acked) == len(messages)
    return acked


def confluent_consumer(bootstrap: str, **config: object) -> confluent_kafka.Consumer:
    """A consumer for manual assignment: librdkafka insists on a group.id, never uses it here."""
    settings: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_topic("unused-group"),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
    }
    settings.update(config)
    return confluent_kafka.Consumer(settings)


def consume_confluent(
    bootstrap: str,
    topic: str,
    starts: dict[int, int],
    count: int,
    *,
    timeout: float = CLIENT_TIMEOUT_S,
    config: Mapping[str, object] | None = None,
) -> list[Record]:
    """Assign ``{partition: start offset}`` (or a logical offset) and read ``count`` records."""
    consumer = confluent_consumer(bootstrap, **(config or {}))
    try:
        consumer.assign([confluent_kafka.TopicPartition(topic, p, o) for p, o in starts.items()])
        return poll_confluent(consumer, count, timeout)
    finally:
        consumer.close()


def poll_confluent(
    consumer: confluent_kafka.Consumer, count: int, timeout: float = CLIENT_TIMEOUT_S
) -> list[Record]:
    """Poll until ``count`` records arrived; a consumer error fails the test."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(records)} of {count} records: {records[-3:]}"
        msg = consumer.poll(min(left, 0.5))
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
                continue
            raise AssertionError(f"consumer error: {err}")
        records.append(_confluent_record(msg))
    return records


def wait_for_end(consumer: confluent_kafka.Consumer, timeout: float = CLIENT_TIMEOUT_S) -> int:
    """The offset at which a consumer made with ``enable.partition.eof`` reached the end.

    librdkafka's ``position()`` stays unset until a record is consumed, so the
    partition-EOF event is how a test knows where a consumer at "latest" stands.
    """
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        msg = consumer.poll(min(left, 0.5))
        if msg is None:
            continue
        err = msg.error()
        assert err is not None, f"a record before the end: offset {msg.offset()}"
        if err.code() == confluent_kafka.KafkaError._PARTITION_EOF:
            offset = msg.offset()
            assert offset is not None
            return offset
        raise AssertionError(f"consumer error: {err}")
    raise AssertionError(f"the consumer did not reach the end within {timeout}s")


def kcat(*args: str, stdin: bytes | None = None, timeout: float = 60.0) -> bytes:
    """Run kcat; its standard output.  A non-zero exit fails with kcat's stderr."""
    out = subprocess.run(
        [KCAT, *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        check=False,
        stdin=None if stdin is not None else subprocess.DEVNULL,
    )
    assert out.returncode == 0, f"kcat {' '.join(args)} exited {out.returncode}: {out.stderr!r}"
    return out.stdout


def kcat_metadata(bootstrap: str) -> dict[str, object]:
    """``kcat -L -J``: the cluster's metadata as kcat reports it."""
    data: dict[str, object] = json.loads(kcat("-b", bootstrap, "-L", "-J"))
    return data


def poll_kafka_python(
    consumer: kafka.KafkaConsumer, count: int, timeout: float = CLIENT_TIMEOUT_S
) -> list[Record]:
    """Poll a kafka-python consumer until ``count`` records arrived (deadline: ``timeout``)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(records)} of {count} records: {records[-3:]}"
        for tp, batch in consumer.poll(timeout_ms=int(min(left, 0.5) * 1000)).items():
            records.extend(
                Record(tp.partition, m.offset, m.key, m.value, m.timestamp) for m in batch
            )
    return records


async def poll_aiokafka(
    consumer: aiokafka.AIOKafkaConsumer, count: int, timeout: float = CLIENT_TIMEOUT_S
) -> list[Record]:
    """Poll an aiokafka consumer until ``count`` records arrived (deadline: ``timeout``)."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"got {len(records)} of {count} records: {records[-3:]}"
        got = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
        for tp, batch in got.items():
            records.extend(
                Record(tp.partition, m.offset, m.key, m.value, m.timestamp) for m in batch
            )
    return records


def _record(partition: int, message: Any) -> Record:
    """A kafka-python or aiokafka ConsumerRecord as a :class:`Record`."""
    return Record(partition, message.offset, message.key, message.value, message.timestamp)


def _confluent_record(msg: confluent_kafka.Message) -> Record:
    partition, offset = msg.partition(), msg.offset()
    assert partition is not None and offset is not None, msg
    key, value = msg.key(), msg.value()
    return Record(partition, offset, key, value, msg.timestamp()[1])
