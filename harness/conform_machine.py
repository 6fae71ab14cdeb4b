"""The conformance state machine: Hypothesis rules, each a Kafka operation on the target.

Each rule draws an operation from what exists so far in the example (its topics, its
idempotent producers) and performs it through :class:`harness.conform_check.ExampleRun`,
which fails the example when the answer is not one the spec allows.  Preconditions (not
``assume``) keep every rule meaningful, so Hypothesis never wastes or rejects a draw.

Rules:

``create_topic``             CreateTopics of a fresh topic, 1-4 partitions (sometimes 0,
                             which must fail, or -1, the broker's num.partitions), with
                             replication factor 1 or an explicit replica assignment
``create_refused_topic``     CreateTopics of a name the example already created, or of
                             a name Kafka refuses
``produce``                  one batch of random records (keys or none), acks 0/1/all (or
                             the invalid 2), uncompressed or gzip, to a partition that
                             exists or one past the last
``produce_keyed``            keyed records placed by the default partitioner
                             (``spec.partitioner.partition_for_key``), one batch per
                             partition in one request
``init_producer_id``         a new idempotent producer (InitProducerId)
``produce_idempotent``       the producer's next batch for a partition, in sequence
``produce_out_of_sequence``  a batch whose sequence leaves a gap
``retry_batch``              an acknowledged batch sent again, byte for byte (a duplicate
                             within the last five, out of order beyond)
``bump_epoch``               the producer bumps its epoch and restarts its sequences
                             (KIP-360; client side only, no request)
``fetch``                    a consumer fetch at any offset from -1 to the log end + 2
``list_offsets``             earliest or latest offset
``metadata``                 Metadata of some topics, and of one never created
``produce_stale_epoch``      a zombie producer: a new batch from an older epoch than the
                             partition has acknowledged (INVALID_PRODUCER_EPOCH)
``produce_corrupt``          a batch whose CRC fails (CORRUPT_MESSAGE)
``produce_too_large``        a batch over message.max.bytes (MESSAGE_TOO_LARGE)
``restart_broker``           the broker is killed (SIGKILL) and restarted on its data,
                             once per example, when the harness holds its process
``create_topic_with_retention``  CreateTopics of a one-partition topic whose records
                             expire after 100 ms (``harness.conform_retention``), once per
                             example; fetch, list_offsets, metadata use it like any topic
``produce_retained``         a batch of one record of a fixed size (one batch fills a
                             segment) to it, acks 0/1/all or the invalid 2
``await_retention``          wait for the broker's retention pass to delete what expired
                             since the last wait, then Fetch at the log end offset (the
                             log start offset moved, the log end offset did not)

and the consumer group rules of ``harness.conform_group_rules`` (join_group, sync_group,
heartbeat, leave_group, consumer_poll, commit_offsets, inspect_group), inherited, when
the target declares and offers groups.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from harness.conform_check import ExampleRun
from harness.conform_faults import RestartBroker
from harness.conform_group_rules import GroupRules
from harness.conform_ops import (
    INVALID_TOPIC_NAMES,
    Batch,
    CreateTopic,
    ErrorAnswer,
    Fetch,
    InitProducerId,
    ListOffsets,
    Metadata,
    Produce,
    ProduceAnswer,
    ProducerIdAnswer,
    Records,
)
from harness.conform_retention import RETAINED_VALUE_BYTES, AwaitRetention, retention_configs
from harness.conform_target import TargetDeclaration, retention_wait_ms
from spec.actions import ACKS_ALL, ACKS_LEADER, ACKS_NONE, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from spec.errors import ErrorCode
from spec.partitioner import partition_for_key
from spec.state import TopicPartition

MAX_TOPICS = 3
MAX_PRODUCERS = 2
RETRY_WINDOW = 7
"""How far back a retried batch may be: past the broker's five, to see it refused."""
NEVER_CREATED = "t99"
INVALID_ACKS = 2
MAX_RESTARTS = 1
"""Broker restarts per example (each takes a fraction of a second)."""
MAX_RETENTION_TOPICS = 1
"""Topics with retention per example (beyond MAX_TOPICS)."""
MAX_TOO_LARGE_BYTES = 8 << 20
"""produce_too_large sends a value of message.max.bytes: not when that is larger."""

VALUES = st.binary(max_size=40)
KEYS = st.one_of(st.none(), st.binary(max_size=6))
RECORDS: st.SearchStrategy[Records] = st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=6).map(
    tuple
)
KEYED_RECORDS: st.SearchStrategy[Records] = st.lists(
    st.tuples(st.binary(max_size=6), VALUES), min_size=1, max_size=6
).map(tuple)
ACKS = st.sampled_from([ACKS_ALL, ACKS_LEADER, ACKS_NONE, ACKS_ALL, ACKS_LEADER, INVALID_ACKS])
IDEMPOTENT_ACKS = st.sampled_from([ACKS_ALL, ACKS_LEADER])
RETAINED_VALUES = st.binary(min_size=RETAINED_VALUE_BYTES, max_size=RETAINED_VALUE_BYTES)
PARTITIONS = st.one_of(st.integers(1, 4), st.sampled_from([0, -1]))


@attrs.define
class ProducerView:
    """An idempotent producer as the client keeps it: its epoch, the next sequence per
    partition, and the batches the broker acknowledged (for retries)."""

    epoch: int = 0
    next_sequence: dict[TopicPartition, int] = attrs.field(factory=dict)
    acknowledged: list[Batch] = attrs.field(factory=list)


class ConformanceMachine(GroupRules):
    """One example: a fresh namespace of topics on the target, a fresh model."""

    def __init__(self, example: ExampleRun, declaration: TargetDeclaration) -> None:
        super().__init__()
        self.example = example
        self.declaration = declaration
        self.topics: dict[str, int] = {}
        self.created = 0
        self.producers: dict[int, ProducerView] = {}
        self.slots = 0
        self.restarts = 0
        self.max_bytes = declaration.spec_config().message_max_bytes
        self.retention_wait_ms = retention_wait_ms(declaration)
        self.retained: list[TopicPartition] = []
        """The partitions of the topics created with retention."""
        self.last_base: dict[TopicPartition, int] = {}
        """The base offset of the last batch appended to each partition."""
        self.awaited: dict[TopicPartition, int] = {}
        """The log end offset of each retained partition when retention was last awaited."""

    # --- helpers ------------------------------------------------------------------------

    def _perform(self, name: str, op: Any) -> Any:
        if not isinstance(op, Produce):
            return self.example.perform(name, op)
        oracle = self.example.oracle
        ends = {b.tp: oracle.log_end_offset(b.tp) for b in op.batches}
        try:
            return self.example.perform(name, op)
        finally:
            for tp, end in ends.items():
                if oracle.log_end_offset(tp) > end:
                    self.last_base[tp] = end

    def _topic(self, data: st.DataObject, retained: bool = True) -> str:
        names = sorted(self.topics) if retained else self._unretained()
        return data.draw(st.sampled_from(names), label="topic")

    def _unretained(self) -> list[str]:
        """The topics without retention settings: the produce rules but produce_retained
        keep to these, as their batches may not fit a retained topic's segment."""
        return sorted(set(self.topics) - {tp.topic for tp in self.retained})

    def _partition(self, data: st.DataObject, topic: str, beyond: bool) -> TopicPartition:
        last = self.topics[topic] if beyond else self.topics[topic] - 1
        return TopicPartition(topic, data.draw(st.integers(0, last), label="partition"))

    def _acknowledged(self, answer: Any, batch: Batch) -> bool:
        return isinstance(answer, ProduceAnswer) and any(
            p.tp == batch.tp and p.error == ErrorCode.NONE for p in answer.partitions
        )

    # --- topics -------------------------------------------------------------------------

    @precondition(lambda self: self.created < MAX_TOPICS)
    @rule(partitions=PARTITIONS, explicit=st.booleans())
    def create_topic(self, partitions: int, explicit: bool) -> None:
        topic = f"t{self.created}"
        self.created += 1
        if self.declaration.topics_out_of_band:
            partitions = max(partitions, 1)  # the harness makes only valid topics itself
        explicit = explicit and partitions > 0 and self.declaration.explicit_assignment
        answer = self._perform("create_topic", CreateTopic(topic, partitions, explicit))
        if answer == ErrorAnswer(ErrorCode.NONE):
            count = self.example.oracle.partition_count(topic)
            if count:
                self.topics[topic] = count

    @precondition(lambda self: bool(self.topics) and not self.declaration.topics_out_of_band)
    @rule(data=st.data(), invalid=st.booleans())
    def create_refused_topic(self, data: st.DataObject, invalid: bool) -> None:
        names = INVALID_TOPIC_NAMES if invalid else sorted(self.topics)
        topic = data.draw(st.sampled_from(names), label="topic")
        self._perform("create_refused_topic", CreateTopic(topic, 1))

    # --- plain produce ------------------------------------------------------------------

    @precondition(lambda self: bool(self._unretained()))
    @rule(data=st.data(), records=RECORDS, acks=ACKS, gzip=st.booleans())
    def produce(self, data: st.DataObject, records: Records, acks: int, gzip: bool) -> None:
        tp = self._partition(data, self._topic(data, retained=False), beyond=True)
        self._perform("produce", Produce((Batch(tp, records, gzip=gzip),), acks))

    @precondition(lambda self: bool(self._unretained()))
    @rule(data=st.data(), records=KEYED_RECORDS, acks=ACKS)
    def produce_keyed(self, data: st.DataObject, records: Records, acks: int) -> None:
        topic = self._topic(data, retained=False)
        by_partition: dict[int, list[tuple[bytes | None, bytes]]] = {}
        for key, value in records:
            assert key is not None
            by_partition.setdefault(partition_for_key(key, self.topics[topic]), []).append(
                (key, value)
            )
        batches = tuple(
            Batch(TopicPartition(topic, p), tuple(rs)) for p, rs in sorted(by_partition.items())
        )
        self._perform("produce_keyed", Produce(batches, acks))

    # --- idempotent producer ------------------------------------------------------------

    @precondition(lambda self: self.declaration.idempotence and self.slots < MAX_PRODUCERS)
    @rule()
    def init_producer_id(self) -> None:
        slot = self.slots
        self.slots += 1
        answer = self._perform("init_producer_id", InitProducerId(slot))
        if isinstance(answer, ProducerIdAnswer) and answer.error == ErrorCode.NONE:
            self.producers[slot] = ProducerView(epoch=answer.producer_epoch)

    def _idempotent(
        self, data: st.DataObject, records: Records, gap: int
    ) -> tuple[ProducerView, Batch]:
        slot = data.draw(st.sampled_from(sorted(self.producers)), label="producer")
        view = self.producers[slot]
        tp = self._partition(data, self._topic(data, retained=False), beyond=False)
        sequence = view.next_sequence.get(tp, 0) + gap
        return view, Batch(tp, records, slot, view.epoch, sequence)

    def _send_idempotent(self, name: str, view: ProducerView, batch: Batch, acks: int) -> None:
        answer = self._perform(name, Produce((batch,), acks))
        if self._acknowledged(answer, batch):
            view.next_sequence[batch.tp] = batch.base_sequence + len(batch.records)
            view.acknowledged.append(batch)

    @precondition(lambda self: bool(self.producers) and bool(self._unretained()))
    @rule(data=st.data(), records=RECORDS, acks=IDEMPOTENT_ACKS)
    def produce_idempotent(self, data: st.DataObject, records: Records, acks: int) -> None:
        view, batch = self._idempotent(data, records, 0)
        self._send_idempotent("produce_idempotent", view, batch, acks)

    @precondition(lambda self: bool(self.producers) and bool(self._unretained()))
    @rule(data=st.data(), records=RECORDS, gap=st.integers(1, 3))
    def produce_out_of_sequence(self, data: st.DataObject, records: Records, gap: int) -> None:
        view, batch = self._idempotent(data, records, gap)
        self._send_idempotent("produce_out_of_sequence", view, batch, ACKS_ALL)

    @precondition(lambda self: any(v.acknowledged for v in self.producers.values()))
    @rule(data=st.data(), acks=IDEMPOTENT_ACKS)
    def retry_batch(self, data: st.DataObject, acks: int) -> None:
        views = [v for _, v in sorted(self.producers.items()) if v.acknowledged]
        view = data.draw(st.sampled_from(views), label="producer")
        batch = data.draw(st.sampled_from(view.acknowledged[-RETRY_WINDOW:]), label="batch")
        self._perform("retry_batch", Produce((batch,), acks))

    @precondition(lambda self: bool(self.producers))
    @rule(data=st.data())
    def bump_epoch(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(sorted(self.producers)), label="producer")
        view = self.producers[slot]
        view.epoch += 1
        view.next_sequence.clear()
        self.example.tally.rules["bump_epoch"] += 1  # client side: no operation

    @precondition(lambda self: any(v.epoch and v.next_sequence for v in self.producers.values()))
    @rule(data=st.data(), records=RECORDS, sequence=st.integers(0, 3))
    def produce_stale_epoch(self, data: st.DataObject, records: Records, sequence: int) -> None:
        """A zombie producer: a new batch from an epoch older than the one the partition
        has acknowledged since the producer bumped it."""
        slots = [s for s, v in sorted(self.producers.items()) if v.epoch > 0 and v.next_sequence]
        slot = data.draw(st.sampled_from(slots), label="producer")
        view = self.producers[slot]
        tps = sorted(view.next_sequence, key=lambda tp: (tp.topic, tp.partition))
        tp = data.draw(st.sampled_from(tps), label="partition")
        epoch = data.draw(st.integers(0, view.epoch - 1), label="epoch")
        batch = Batch(tp, records, slot, epoch, sequence)
        self._perform("produce_stale_epoch", Produce((batch,), ACKS_ALL))

    # --- consume ------------------------------------------------------------------------

    @precondition(lambda self: bool(self.topics))
    @rule(data=st.data())
    def fetch(self, data: st.DataObject) -> None:
        tp = self._partition(data, self._topic(data), beyond=True)
        end = self.example.oracle.log_end_offset(tp)
        offset = data.draw(st.integers(-1, end + 2), label="offset")
        self._perform("fetch", Fetch(tp, offset))

    @precondition(lambda self: bool(self.topics))
    @rule(data=st.data(), latest=st.booleans())
    def list_offsets(self, data: st.DataObject, latest: bool) -> None:
        tp = self._partition(data, self._topic(data), beyond=True)
        timestamp = LATEST_TIMESTAMP if latest else EARLIEST_TIMESTAMP
        self._perform("list_offsets", ListOffsets(tp, timestamp))

    @precondition(lambda self: bool(self.topics))
    @rule(data=st.data())
    def metadata(self, data: st.DataObject) -> None:
        names = [*sorted(self.topics), NEVER_CREATED]
        topics = data.draw(
            st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True), label="topics"
        )
        self._perform("metadata", Metadata(tuple(topics)))

    # --- what the spec leaves to the harness: corrupt and oversized batches, restarts ----

    @precondition(lambda self: bool(self._unretained()))
    @rule(data=st.data(), records=RECORDS, acks=ACKS)
    def produce_corrupt(self, data: st.DataObject, records: Records, acks: int) -> None:
        tp = self._partition(data, self._topic(data, retained=False), beyond=True)
        self._perform("produce_corrupt", Produce((Batch(tp, records, corrupt=True),), acks))

    @precondition(lambda self: bool(self._unretained()) and self.max_bytes <= MAX_TOO_LARGE_BYTES)
    @rule(data=st.data(), acks=IDEMPOTENT_ACKS)
    def produce_too_large(self, data: st.DataObject, acks: int) -> None:
        tp = self._partition(data, self._topic(data, retained=False), beyond=False)
        records = ((None, bytes(self.max_bytes)),)
        self._perform("produce_too_large", Produce((Batch(tp, records),), acks))

    @precondition(
        lambda self: (
            self.example.executor.restart is not None
            and self.restarts < MAX_RESTARTS
            and bool(self.topics)
        )
    )
    @rule()
    def restart_broker(self) -> None:
        self.restarts += 1
        self._perform("restart_broker", RestartBroker(0))

    # --- retention (harness.conform_retention) -----------------------------------------

    @precondition(
        lambda self: (
            self.retention_wait_ms is not None and len(self.retained) < MAX_RETENTION_TOPICS
        )
    )
    @rule(by_size=st.booleans())
    def create_topic_with_retention(self, by_size: bool) -> None:
        topic = f"t{self.created}"
        self.created += 1
        op = CreateTopic(topic, 1, configs=retention_configs(by_size))
        answer = self._perform("create_topic_with_retention", op)
        if answer == ErrorAnswer(ErrorCode.NONE) and self.example.oracle.partition_count(topic):
            self.topics[topic] = 1
            self.retained.append(TopicPartition(topic, 0))

    @precondition(lambda self: bool(self.retained))
    @rule(data=st.data(), value=RETAINED_VALUES, acks=ACKS)
    def produce_retained(self, data: st.DataObject, value: bytes, acks: int) -> None:
        tp = data.draw(st.sampled_from(self.retained), label="partition")
        self._perform("produce_retained", Produce((Batch(tp, ((None, value),)),), acks))

    def _awaitable(self) -> list[TopicPartition]:
        """Retained partitions with records appended since retention was last awaited."""
        oracle = self.example.oracle
        return [tp for tp in self.retained if oracle.log_end_offset(tp) > self.awaited.get(tp, 0)]

    @precondition(lambda self: bool(self._awaitable()))
    @rule(data=st.data())
    def await_retention(self, data: st.DataObject) -> None:
        assert self.retention_wait_ms is not None
        tp = data.draw(st.sampled_from(self._awaitable()), label="partition")
        end = self.awaited[tp] = self.example.oracle.log_end_offset(tp)
        goal = self.last_base.get(tp, 0)
        self._perform("await_retention", AwaitRetention(tp, end, goal, self.retention_wait_ms))

    def teardown(self) -> None:
        """Delete the example's topics on the target (best effort, not checked)."""
        self.example.cleanup()
