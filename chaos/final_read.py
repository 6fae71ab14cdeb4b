"""The final read of a chaos run: every partition read from its beginning up to the high
watermark its leader reports once the faults are healed and the workload has stopped,
each recorded as one ``final`` poll (:func:`final_read`), which is what lets the checker
call an acknowledged value missing from it a lost write.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from chaos.client import WorkloadOptions, consumer_config, text_of
from harness.history import F, PartitionRead, Partitions, Poll, Recorder
from spec.state import TopicPartition


@attrs.frozen(slots=True)
class FinalRead:
    """What the final read found per partition: the end it read to and how many records."""

    high_watermarks: Mapping[int, int]
    records: Mapping[int, int]
    incomplete: Mapping[int, str]
    """Partitions not read to their end, and why (their reads are not marked final)."""


def final_read(
    recorder: Recorder,
    bootstrap: str,
    options: WorkloadOptions,
    logger: logging.Logger,
    *,
    process: str = "final",
    timeout_s: float = 90.0,
    progress: Callable[[str], None] = lambda _: None,
) -> FinalRead:
    """Read every partition from its beginning to the high watermark its leader reports
    now, each recorded as one ``final`` poll (``ok``, not final, if it fell short)."""
    highs: dict[int, int] = {}
    counts: dict[int, int] = {}
    incomplete: dict[int, str] = {}
    deadline = time.monotonic() + timeout_s
    consumer = Consumer(consumer_config(bootstrap, "chaos-final-read", logger, commit=False))
    try:
        for p in range(options.partitions):
            tp = TopicPartition(options.topic, p)
            recorder.invoke(process, F.ASSIGN, Partitions((tp,)))
            recorder.ok(process, F.ASSIGN, Partitions((tp,)))
            recorder.invoke(process, F.POLL, Poll(final=True))
            records, high, why = _read_partition(consumer, tp, deadline)
            highs[p], counts[p] = high, len(records)
            read = PartitionRead(tp.topic, tp.partition, tuple(records))
            if why is None:
                recorder.ok(process, F.POLL, Poll((read,), final=True))
            else:
                incomplete[p] = why
                recorder.ok(process, F.POLL, Poll((read,)))
            progress(f"final read of partition {p}: {len(records)} records to offset {high}")
    finally:
        consumer.close()
    return FinalRead(highs, counts, incomplete)


def _read_partition(
    consumer: Any, tp: TopicPartition, deadline: float
) -> tuple[list[tuple[int, str]], int, str | None]:
    """(records, high watermark, None) or, short of the end, the reason."""
    ktp = KafkaTopicPartition(tp.topic, tp.partition)
    high = -1
    while high < 0:
        try:
            _low, high = consumer.get_watermark_offsets(ktp, timeout=5.0)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                return [], -1, f"no high watermark: {exc}"
            threading.Event().wait(0.5)  # back off before asking the leader again
    consumer.assign([KafkaTopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)])
    records: list[tuple[int, str]] = []
    while not records or records[-1][0] < high - 1:
        if high == 0:
            break
        if time.monotonic() > deadline:
            last = records[-1][0] if records else -1
            return records, high, f"read to offset {last} of {high} before the deadline"
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            continue
        if records and msg.offset() <= records[-1][0]:
            # librdkafka reset the position (silently, auto.offset.reset=earliest).
            return records, high, f"the consumer's position went back to {msg.offset()}"
        records.append((msg.offset(), text_of(msg.value())))
    consumer.unassign()
    return records, high, None
