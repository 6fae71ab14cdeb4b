"""One bench run: produce N records to a fresh topic, then consume them all back.

The produce phase sends fixed-size records with confluent-kafka's Producer (its
defaults, except ``acks``) as fast as its queue takes them, and times from the first
``produce()`` to the end of ``flush()``.  Each record's latency is librdkafka's own
measure, ``Message.latency()``: from ``produce()`` to its delivery report.  Every record
must be delivered, and each partition's high watermark must then equal the number of
records delivered to it.

The consume phase assigns every partition from the beginning (manual assignment: no
group membership, no commits) and reads up to the high watermarks found after
producing, checking that offsets come contiguously from the log start offset with no gap
and no duplicate.  A target may have dropped the oldest records by then (librdkafka's
mock cluster keeps only the last 5 MiB of each partition): the phase then reads, and
reports, what the log still holds.
"""

from __future__ import annotations

import math
import time
from collections import Counter

import attrs
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition

from harness.bench_targets import client_config

CONSUME_BATCH = 10_000
"""Records asked for per ``Consumer.consume()`` call."""


class BenchFailedError(RuntimeError):
    """A run did not complete: records undelivered, lost, duplicated, or a client error."""


@attrs.frozen
class Scenario:
    """One row group of the report: the producer's acks and the topic's partition count."""

    acks: str
    partitions: int

    @property
    def label(self) -> str:
        plural = "" if self.partitions == 1 else "s"
        return f"acks={self.acks}, {self.partitions} partition{plural}"


@attrs.frozen
class ProduceResult:
    records: int
    bytes: int
    seconds: float
    p50_ms: float
    p99_ms: float


@attrs.frozen
class ConsumeResult:
    records: int
    """Records read: those the log still held, from its start offset to the high watermark."""
    bytes: int
    seconds: float
    """From the first record received to the last: the rate once data flows."""
    produced: int
    """Records the produce phase delivered; more than ``records`` if the log dropped some."""
    first_record_seconds: float = 0.0
    """From assigning the partitions to the first record: resolving the start offsets
    (ListOffsets) and the first Fetch round trip, apart from the streaming rate."""


@attrs.frozen
class RunResult:
    scenario: Scenario
    produce: ProduceResult
    consume: ConsumeResult


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def run_scenario(
    bootstrap: str,
    topic: str,
    scenario: Scenario,
    *,
    records: int,
    record_size: int,
    timeout_s: float,
) -> RunResult:
    """Produce then consume ``records`` records on an existing, empty ``topic``."""
    value = bytes(i % 251 for i in range(record_size))
    produced, delivered = _produce(
        bootstrap, topic=topic, scenario=scenario, records=records, value=value, timeout_s=timeout_s
    )
    consumed = _consume(bootstrap, topic, scenario.partitions, delivered, timeout_s)
    return RunResult(scenario, produced, consumed)


def _produce(
    bootstrap: str,
    *,
    topic: str,
    scenario: Scenario,
    records: int,
    value: bytes,
    timeout_s: float,
) -> tuple[ProduceResult, Counter[int]]:
    latencies: list[float] = []
    delivered: Counter[int] = Counter()
    errors: list[str] = []

    def on_delivery(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(str(err))
            return
        delivered[msg.partition() or 0] += 1
        latency = msg.latency()
        if latency is not None:
            latencies.append(latency)

    config: dict[str, object] = {
        **client_config(bootstrap),
        "acks": scenario.acks,
        "on_delivery": on_delivery,
    }
    producer = Producer(config)
    _wait_for_leaders(producer, topic, scenario.partitions, timeout_s)
    deadline = time.monotonic() + timeout_s
    start = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(topic, value)
                break
            except BufferError:  # the local queue is full: serve delivery reports
                producer.poll(0.1)
                if time.monotonic() > deadline:
                    raise BenchFailedError(
                        f"{scenario.label}: the producer's queue stayed full for "
                        f"{timeout_s:g} s ({i} of {records} records sent)"
                    ) from None
        if i % 1000 == 0:
            producer.poll(0)
    undelivered = producer.flush(max(0.0, deadline - time.monotonic()))
    seconds = time.perf_counter() - start
    if errors:
        raise BenchFailedError(
            f"{scenario.label}: {len(errors)} of {records} records failed: {errors[0]}"
        )
    if undelivered or sum(delivered.values()) != records:
        raise BenchFailedError(
            f"{scenario.label}: {sum(delivered.values())} of {records} records delivered "
            f"within {timeout_s:g} s"
        )
    latencies.sort()
    result = ProduceResult(
        records=records,
        bytes=records * len(value),
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50) * 1000 if latencies else math.nan,
        p99_ms=percentile(latencies, 0.99) * 1000 if latencies else math.nan,
    )
    return result, delivered


def _wait_for_leaders(producer: Producer, topic: str, partitions: int, timeout_s: float) -> None:
    """Wait (metadata requests, up to a deadline) until every partition has a leader.

    This also warms the producer's metadata, so the timed phase starts with it known.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = producer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        ready = (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) == partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        )
        if ready:
            return
        if time.monotonic() > deadline:
            raise BenchFailedError(f"{topic}: partitions without a leader after {timeout_s:g} s")
        producer.poll(0.1)


def _consume(
    bootstrap: str, topic: str, partitions: int, delivered: Counter[int], timeout_s: float
) -> ConsumeResult:
    # confluent-kafka insists on a group.id; the bench joins no group and commits nothing.
    config: dict[str, object] = {
        **client_config(bootstrap),
        "group.id": f"{topic}-reader",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        # librdkafka stops fetching a partition whose local queue holds queued.min.messages
        # and tries again only after fetch.queue.backoff.ms (default 1000 ms): in runs
        # longer than 100,000 records that pause, not the target, sets the pace (about
        # 0.2M records/s against either target).  Retry at once instead.
        "fetch.queue.backoff.ms": 1,
    }
    consumer = Consumer(config)
    try:
        return _read_all(consumer, topic, partitions, delivered, timeout_s)
    finally:
        consumer.close()


def _read_all(
    consumer: Consumer,
    topic: str,
    partitions: int,
    delivered: Counter[int],
    timeout_s: float,
) -> ConsumeResult:
    start_offset: dict[int, int] = {}
    end_offset: dict[int, int] = {}
    for p in range(partitions):
        low, high = consumer.get_watermark_offsets(
            KafkaTopicPartition(topic, p), timeout=timeout_s, cached=False
        )
        if high != delivered[p]:
            raise BenchFailedError(
                f"{topic} [{p}]: high watermark {high} after {delivered[p]} records "
                "were delivered to it"
            )
        start_offset[p], end_offset[p] = low, high
    expected = dict(start_offset)
    remaining = sum(end_offset[p] - start_offset[p] for p in range(partitions))
    total = remaining
    nbytes = 0
    consumer.list_topics(topic, timeout=timeout_s)  # warm the metadata before timing
    deadline = time.monotonic() + timeout_s
    start = time.perf_counter()
    # Only partitions with records to read, each dropped from the assignment once read
    # to its end: a fetch holding only partitions with nothing to give waits out
    # fetch.wait.max.ms at the broker, and would stall the others behind it.
    unread = [p for p in range(partitions) if end_offset[p] > start_offset[p]]
    consumer.assign([KafkaTopicPartition(topic, p, OFFSET_BEGINNING) for p in unread])
    first: float | None = None
    while remaining > 0:
        if time.monotonic() > deadline:
            raise BenchFailedError(
                f"{topic}: {total - remaining} of {total} records read within {timeout_s:g} s"
            )
        # consume() returns when it has the number asked for (or at the timeout): never
        # ask for more than remain, or the last call would wait out its timeout.
        for msg in consumer.consume(min(CONSUME_BATCH, remaining), timeout=0.5):
            err = msg.error()
            if err is not None:
                raise BenchFailedError(f"{topic}: consumer error: {err}")
            if first is None:
                first = time.perf_counter()
            p, offset = msg.partition() or 0, msg.offset()
            if offset != expected[p]:
                raise BenchFailedError(
                    f"{topic} [{p}]: read offset {offset} where {expected[p]} was next"
                )
            if offset >= end_offset[p]:
                raise BenchFailedError(
                    f"{topic} [{p}]: read offset {offset} beyond the high watermark {end_offset[p]}"
                )
            expected[p] = offset + 1
            if expected[p] == end_offset[p]:
                consumer.incremental_unassign([KafkaTopicPartition(topic, p)])
            nbytes += len(msg.value() or b"")
            remaining -= 1
    end = time.perf_counter()
    first = end if first is None else first
    return ConsumeResult(
        records=total,
        bytes=nbytes,
        seconds=max(end - first, 1e-9),
        produced=sum(delivered.values()),
        first_record_seconds=first - start,
    )
