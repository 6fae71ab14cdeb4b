"""Performing the harness's operations on a target and reading what it answered.

One :class:`Executor` per example: it owns the example's namespace (the prefix that makes
logical topic names fresh on the target) and the producer ids the target handed to the
example's producer slots.  Each operation is one request on the harness's client; the
answer becomes an observation (``harness.conform_ops``).  An acks=0 produce gets no
answer, so a cheap ApiVersions request follows it on the same connection: Kafka answers
requests of a connection in order, so its answer proves the produce was handled and the
connection stayed open (a failed acks=0 produce closes it).  A broker restart
(``harness.conform_faults``) goes through ``restart``, given by the session when the
harness holds the target's broker processes; the client reconnects afterwards.  The wait
for retention (``harness.conform_retention``) polls with Fetch; every operation leaves its
:class:`~harness.conform_retention.Timing` for the oracle (the model's clock).  A
target without CreateTopics gets its topics out of band, through ``create_topic`` (the
session's hook, ``--mock``).  Group
operations go to ``harness.conform_group_exec``, which checks their answers against the
example's oracle as it reads them (:meth:`Executor.attach` gives it the oracle).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from harness import client_admin
from harness.client import (
    API_VERSIONS,
    BrokerClosedError,
    ClientError,
    Error,
    FetchResult,
    KafkaClient,
    ResponseTimeoutError,
    UnexpectedResponseError,
)
from harness.client_admin import NewTopic
from harness.conform_faults import RestartBroker, Restarted
from harness.conform_group_exec import GroupExecutor, perform
from harness.conform_group_model import GroupOracleError
from harness.conform_group_ops import GROUP_OPERATIONS, GroupOperation
from harness.conform_ops import (
    LOGICAL_TOPIC,
    Closed,
    CreateTopic,
    ErrorAnswer,
    Failed,
    Fetch,
    FetchAnswer,
    FetchedRecord,
    InitProducerId,
    ListOffsets,
    Metadata,
    MetadataAnswer,
    NoAnswer,
    Observation,
    OffsetAnswer,
    Operation,
    PartitionAnswer,
    PartitionInfo,
    Produce,
    ProduceAnswer,
    ProducerIdAnswer,
    TopicInfo,
    physical_topic,
)
from harness.conform_oracle import Oracle, OracleError
from harness.conform_retention import POLL_S, SLACK_MS, AwaitRetention, Timing
from impl.wire import records as wire_records
from spec.state import TopicPartition


def fetch_answer(
    result: FetchResult, tp: TopicPartition, named: TopicPartition, offset: int
) -> Observation:
    """What a Fetch of ``tp`` from ``offset`` (``named`` in the model's topic names)
    answered: its error, or the high watermark, log start offset and decoded records."""
    got = result.partitions.get(tp)
    if result.error:
        return FetchAnswer(result.error)
    if got is None:
        return Failed(f"the Fetch response has no answer for {named}")
    if got.error:
        return FetchAnswer(got.error)
    fetched = decode_fetched(got.records, offset)
    if isinstance(fetched, str):
        return Failed(fetched)
    return FetchAnswer(got.error, got.high_watermark, got.log_start_offset, fetched)


def decode_fetched(data: bytes, from_offset: int) -> tuple[FetchedRecord, ...] | str:
    """The records at or after ``from_offset`` in fetched batches, or what is wrong with
    them.  A batch cut short at the end is dropped (Kafka may cut the last batch at the
    size limit); a whole batch with a bad CRC or an undecodable record is an error."""
    out: list[FetchedRecord] = []
    pos = 0
    while pos < len(data):
        try:
            h = wire_records.parse_header(data, pos)
        except wire_records.CorruptBatchError:
            if len(data) - pos < wire_records.HEADER_SIZE or _runs_past(data, pos):
                break
            return f"malformed record batch at byte {pos}"
        if not wire_records.crc_ok(data, pos, h):
            return f"record batch at offset {h.base_offset} fails its CRC"
        try:
            found = wire_records.decode_records(data[pos : pos + h.size])
        except wire_records.CorruptBatchError as e:
            return f"record batch at offset {h.base_offset}: {e}"
        for r in found:
            if r.offset < from_offset:
                continue
            sequence = -1
            if h.base_sequence >= 0:
                sequence = (h.base_sequence + (r.offset - h.base_offset)) % (1 << 31)
            out.append(
                FetchedRecord(
                    r.offset,
                    r.key,
                    r.value,
                    h.producer_id,
                    h.producer_epoch if h.producer_id >= 0 else -1,
                    sequence,
                    h.partition_leader_epoch,
                )
            )
        pos += h.size
    return tuple(out)


def _runs_past(data: bytes, pos: int) -> bool:
    """Whether the batch at ``pos`` claims more bytes than ``data`` has (cut short)."""
    length = int.from_bytes(data[pos + 8 : pos + 12], "big", signed=True)
    return pos + wire_records.LOG_OVERHEAD + length > len(data)


class Executor:
    """Runs operations for one example on ``client`` (reconnecting after a close)."""

    timing: Timing = Timing()
    """When the last operation's batches were stamped and its answer arrived."""

    def __init__(
        self,
        client: KafkaClient,
        namespace: str,
        issued_ids: set[int],
        clock_ms: Callable[[], int] | None = None,
        *,
        restart: Callable[[int], None] | None = None,
        create_topic: Callable[[str, int], Error] | None = None,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.issued_ids = issued_ids
        self.producer_ids: dict[int, int] = {}
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.restart = restart
        """Kill and restart a broker (by the model's id), when the harness may."""
        self.create_topic = create_topic
        """Create a topic out of band (name, partitions), for a target without CreateTopics."""
        self.groups = GroupExecutor(client, f"{namespace}g", self.topic, self.logical)
        self._oracle: Oracle | None = None
        self._batch_ms: int | None = None
        self.produced_ms: dict[TopicPartition, int] = {}
        """The timestamp of the example's last batch to each partition."""

    def attach(self, oracle: Oracle) -> None:
        """The example's oracle, which group operations are checked against as they go."""
        self._oracle = oracle

    def close_groups(self) -> None:
        """Close the group members' connections (at the example's end)."""
        self.groups.close()

    def topic(self, logical: str) -> str:
        return physical_topic(self.namespace, logical)

    def logical(self, physical: str) -> str:
        if physical.startswith(self.namespace):
            rest = physical[len(self.namespace) :]
            if LOGICAL_TOPIC.fullmatch(rest):
                return rest
        return physical

    def _tp(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(self.topic(tp.topic), tp.partition)

    def run(self, op: Operation, explicit: tuple[tuple[int, ...], ...] = ()) -> Observation:
        """Perform ``op``; what the target answered.  ``explicit`` is the replica
        assignment of an explicit CreateTopic (target broker ids)."""
        self._batch_ms = None
        observed = self._attempt(op, explicit)
        self.timing = Timing(self._batch_ms, self._clock_ms())
        return observed

    def _attempt(self, op: Operation, explicit: tuple[tuple[int, ...], ...]) -> Observation:
        try:
            if not self.client.connected:
                self.client.connect()
            return self._run(op, explicit)
        except BrokerClosedError:
            return Closed()
        except ResponseTimeoutError as e:
            return Failed(str(e))
        except (ClientError, OSError) as e:
            self.client.close()
            return Failed(f"{type(e).__name__}: {e}")

    def _run(self, op: Operation, explicit: tuple[tuple[int, ...], ...]) -> Observation:
        if isinstance(op, RestartBroker):
            return self._restart(op)
        if isinstance(op, GROUP_OPERATIONS):
            return self._group(op)
        if isinstance(op, CreateTopic) and self.create_topic is not None:
            return ErrorAnswer(self.create_topic(self.topic(op.topic), op.partitions))
        if isinstance(op, CreateTopic):
            configs = dict(op.configs)
            new = NewTopic(self.topic(op.topic), op.partitions, 1, configs=configs)
            if op.explicit:
                new = NewTopic(self.topic(op.topic), assignment=explicit, configs=configs)
            answer = client_admin.create_topics(self.client, [new]).get(new.name)
            if answer is None:
                return Failed(f"the CreateTopics response has no answer for {op.topic}")
            return ErrorAnswer(answer[0])
        if isinstance(op, Produce):
            return self._produce(op)
        if isinstance(op, Fetch):
            return self._fetch(op)
        if isinstance(op, AwaitRetention):
            return self._await_retention(op)
        if isinstance(op, ListOffsets):
            tp = self._tp(op.tp)
            got = self.client.list_offsets({tp: op.timestamp}).get(tp)
            if got is None:
                return Failed(f"the ListOffsets response has no answer for {op.tp}")
            return OffsetAnswer(got.error) if got.error else OffsetAnswer(got.error, got.offset)
        if isinstance(op, InitProducerId):
            pid = self.client.init_producer_id()
            if pid.error:
                return ProducerIdAnswer(pid.error)
            fresh = pid.producer_id >= 0 and pid.producer_id not in self.issued_ids
            self.issued_ids.add(pid.producer_id)
            self.producer_ids[op.slot] = pid.producer_id
            return ProducerIdAnswer(pid.error, fresh, pid.producer_epoch)
        if not isinstance(op, Metadata):
            return Failed(f"{op.describe()}: an operation for a managed cluster (--brokers)")
        return self._metadata(op)

    def _restart(self, op: RestartBroker) -> Observation:
        if self.restart is None:
            return Failed("the harness cannot restart this target's brokers")
        self.client.close()
        try:
            self.restart(op.broker)
        except Exception as e:
            return Failed(f"broker {op.broker} did not come back: {type(e).__name__}: {e}")
        self.groups.broker_restarted()
        return Restarted()

    def _group(self, op: GroupOperation) -> Observation:
        oracle = self._oracle
        if oracle is None:
            return Failed("group operations need the example's oracle (Executor.attach)")

        def exists(tp: TopicPartition) -> bool:
            return 0 <= tp.partition < (oracle.partition_count(tp.topic) or 0)

        try:
            return perform(self.groups, oracle.groups, op, exists)
        except GroupOracleError as e:
            raise OracleError(str(e)) from None

    def _produce(self, op: Produce) -> Observation:
        now = self._batch_ms = self._clock_ms()
        self.produced_ms.update((b.tp, now) for b in op.batches)
        batches = {
            self._tp(b.tp): b.build(self.producer_ids.get(b.producer, -1), now) for b in op.batches
        }
        answers = self.client.produce(batches, acks=op.acks)
        if answers is None:
            # Answered only if the connection is still open (else BrokerClosedError).
            try:
                self.client.request(
                    self.client.build(
                        API_VERSIONS, client_software_name="kafkaref", client_software_version="0"
                    )
                )
            except UnexpectedResponseError as e:
                if e.got != e.expected - 1:
                    raise
                return Failed("an answer to the acks=0 Produce (Kafka sends none)")
            return NoAnswer()
        out = []
        for b in op.batches:
            got = answers.get(self._tp(b.tp))
            if got is None:
                return Failed(f"the Produce response has no answer for {b.tp}")
            if got.error:
                out.append(PartitionAnswer(b.tp, got.error))
            else:
                out.append(PartitionAnswer(b.tp, got.error, got.base_offset, got.log_start_offset))
        return ProduceAnswer(tuple(out))

    def _fetch(self, op: Fetch) -> Observation:
        tp = self._tp(op.tp)
        return fetch_answer(self.client.fetch({tp: op.offset}), tp, op.tp, op.offset)

    def _await_retention(self, op: AwaitRetention) -> Observation:
        """Fetch until the wait is over (``AwaitRetention``); the last answer."""
        start = self._clock_ms()
        ready = self.produced_ms.get(op.tp, start) + op.wait_ms
        while True:
            answer = self._fetch(Fetch(op.tp, op.offset))
            now = self._clock_ms()
            if not isinstance(answer, FetchAnswer) or now >= max(ready, start) + SLACK_MS:
                return answer
            if now >= ready and op.settled(answer.error, answer.log_start_offset):
                return answer
            time.sleep(POLL_S)  # the broker's retention pass runs on its own clock

    def _metadata(self, op: Metadata) -> Observation:
        names = [self.topic(t) for t in op.topics]
        result = client_admin.metadata(self.client, names)
        topics = []
        for logical, name in zip(op.topics, names, strict=True):
            t = result.topics.get(name)
            if t is None:
                return Failed(f"the Metadata response has no answer for {logical}")
            if t.error:
                topics.append(TopicInfo(logical, t.error))
                continue
            parts = tuple(
                PartitionInfo(index, p.error)
                if p.error
                else PartitionInfo(
                    index, p.error, p.leader, p.leader_epoch, p.replicas, tuple(sorted(p.isr))
                )
                for index, p in sorted(t.partitions.items())
            )
            topics.append(TopicInfo(logical, t.error, parts))
        return MetadataAnswer(tuple(topics))
