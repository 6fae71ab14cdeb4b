"""The spec as the conformance harness's oracle: which answers an operation may get.

The oracle keeps the model states the target may be in (``candidates``: spec
``ClusterState``s).  For an operation it runs the spec's transition in each candidate
(``spec.cluster.step``: ``spec.admin``, ``spec.produce``, ``spec.consume``) and turns the
spec's outcome into the observation a client would see; the target's observation must be
one of these.  The candidates that agree with it become the next candidates: the harness
never has to guess which of several allowed outcomes happened, it learns it.

Between operations every candidate takes the internal steps that are enabled (the
controller electing leaders, brokers applying LeaderAndIsr, followers fetching), one
settled state per candidate.  On a single broker these steps are forced and confluent, so
one candidate remains; a cluster with faults will widen this to the set of states the
internal steps can reach, and the same filtering keeps it small.

The target's broker ids are mapped to the model's (0..n-1, in sorted order); producer ids
are the target's own, as it handed them out.

Two things the spec does not model are decided here: a batch whose CRC fails is refused
with CORRUPT_MESSAGE wherever the spec would append it (Kafka validates the CRC after
everything the spec checks for a plain batch: partition, acks, ISR size, batch size), and
a broker restart is the spec's crash (nothing lost: a killed process's writes are in the
page cache) followed by its restart (``harness.conform_faults``); the group coordinator
restarts with it and reloads its groups from ``__consumer_offsets``.

Retention (``harness.conform_retention``) is the spec's too, but a broker runs it when it
likes: before an operation the candidates of the partitions it touches widen to every log
start offset retention may have reached by the time the answer arrived, and the model's
clock follows the harness's (:attr:`Oracle.timing`).

Consumer groups have an oracle of their own (``harness.conform_group_oracle``, the spec's
``spec.group``): their answers may come long after their requests, so they are checked as
the executor reads them, and ``check`` reports that verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from harness.conform_faults import ModelError, RestartBroker, Restarted, crash_and_restart
from harness.conform_group_ops import GROUP_OPERATIONS, GroupStep
from harness.conform_group_oracle import GroupOracle
from harness.conform_ops import (
    Closed,
    CreateTopic,
    ErrorAnswer,
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
)
from harness.conform_retention import AwaitRetention, Timing, at_time, retained, topic_config
from spec import actions
from spec.admin import assign_replicas
from spec.cluster import internal_steps, step
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.idempotence import ProducerIdState, init_producer_id
from spec.outcome import Ok
from spec.state import NO_LEADER, ClusterState, TopicPartition, initial_state

MAX_SETTLE_STEPS = 10_000
MAX_CANDIDATES = 256


class OracleError(RuntimeError):
    """The model cannot follow the target (too many candidate states, or no settling)."""


@attrs.frozen(slots=True)
class Verdict:
    """Whether the observation is one the spec allows, and every answer it allows."""

    ok: bool
    allowed: tuple[Observation, ...]


def settle(s: ClusterState) -> ClusterState:
    """``s`` after every enabled internal step (delayed produces stay pending: the
    harness answers them explicitly)."""
    for _ in range(MAX_SETTLE_STEPS):
        for action, out in internal_steps(s):
            if not isinstance(action, actions.CompleteProduce):
                s = out.state
                break
        else:
            return s
    raise OracleError("the model does not settle")


def fetch_answer_of(reply: Any) -> FetchAnswer:
    """The spec's successful Fetch reply as the harness observes an answer."""
    return FetchAnswer(
        ErrorCode.NONE,
        reply.high_watermark,
        reply.log_start_offset,
        tuple(
            FetchedRecord(
                reply.offset + i,
                r.key,
                r.value,
                r.producer_id,
                r.producer_epoch,
                r.sequence,
                r.leader_epoch,
            )
            for i, r in enumerate(reply.records)
        ),
    )


class Oracle:
    """The candidate model states of one example, and the spec's verdict on each answer.

    ``brokers`` are the target's broker ids; ``controller`` the one that controls the
    cluster; ``contact`` the one the harness sends its requests to."""

    timing: Timing = Timing()
    """When the operation being checked happened (``harness.conform_check`` sets it from
    the executor's): its batches' timestamp and when its answer arrived."""

    def __init__(
        self,
        config: SpecConfig,
        brokers: Sequence[int],
        controller: int,
        contact: int,
        *,
        offsets_cleanup: bool = True,
    ) -> None:
        self.target_ids = tuple(sorted(brokers))
        self._model_id = {b: i for i, b in enumerate(self.target_ids)}
        self.contact = self._model_id[contact]
        s = initial_state(config, len(self.target_ids))
        elected = step(s, actions.ElectController(self._model_id.get(controller, 0)))
        assert isinstance(elected, Ok)
        self.candidates: tuple[ClusterState, ...] = (settle(elected.state),)
        self.topic_configs: dict[str, tuple[tuple[str, str], ...]] = {}
        """Topic-level settings of the topics created with some."""
        self.groups = GroupOracle(config, cleanup=offsets_cleanup)
        """The example's group (``harness.conform_group_oracle``): group operations are
        checked as the executor performs them, and their verdict is read here."""

    # --- what the machine may ask -----------------------------------------------------

    def partition_count(self, topic: str) -> int | None:
        """Partitions of ``topic`` in the model (None when no candidate has it)."""
        counts = {len(s.topics[topic]) for s in self.candidates if topic in s.topics}
        return max(counts) if counts else None

    def log_end_offset(self, tp: TopicPartition) -> int:
        """The largest log end offset of ``tp``'s leader over the candidates (0 if none)."""
        ends = [0]
        for s in self.candidates:
            part = s.partitions.get(tp)
            if part is not None and part.zk.leader != NO_LEADER:
                ends.append(part.replica[part.zk.leader].log_end_offset)
        return max(ends)

    # --- checking -----------------------------------------------------------------------

    def check(
        self, op: Operation, observed: Observation, producer_ids: Mapping[int, int]
    ) -> Verdict:
        """The spec's verdict on ``observed`` as the answer to ``op``; when allowed, the
        candidates become the states consistent with it.  ``producer_ids`` maps producer
        slots to the ids the target handed out."""
        if isinstance(op, GROUP_OPERATIONS):
            ok = isinstance(observed, GroupStep) and self.groups.verdict.ok
            return Verdict(ok, self.groups.verdict.allowed)
        outcomes: list[tuple[Observation, ClusterState]] = []
        for s in self._retained(op):
            outcomes += self._outcomes(s, op, producer_ids)
        allowed = tuple(dict.fromkeys(obs for obs, _ in outcomes))
        kept = tuple(dict.fromkeys(settle(s) for obs, s in outcomes if obs == observed))
        if not kept:
            return Verdict(False, allowed)
        if len(kept) > MAX_CANDIDATES:
            raise OracleError(f"{len(kept)} model states agree with the target; too many")
        self.candidates = kept
        if isinstance(op, RestartBroker):
            self.groups.restart()
        if isinstance(op, CreateTopic) and op.configs and observed == ErrorAnswer(ErrorCode.NONE):
            self.topic_configs[op.topic] = op.configs
        return Verdict(True, allowed)

    def _retained(self, op: Operation) -> list[ClusterState]:
        """The candidates, and every state retention may have reached in them by the time
        the answer arrived on the partitions ``op`` touches."""
        tps: tuple[TopicPartition, ...] = ()
        if isinstance(op, Produce):
            tps = tuple(dict.fromkeys(b.tp for b in op.batches))
        elif isinstance(op, Fetch | ListOffsets | AwaitRetention):
            tps = (op.tp,)
        states = list(self.candidates)
        for tp in tps:
            widened: list[ClusterState] = []
            for s in states:
                config = topic_config(s.config, self.topic_configs.get(tp.topic, ()))
                widened += retained(s, tp, config, self.timing.answered_ms)
            states = list(dict.fromkeys(widened))
        return states

    def _outcomes(
        self, s: ClusterState, op: Operation, producer_ids: Mapping[int, int]
    ) -> list[tuple[Observation, ClusterState]]:
        if isinstance(op, CreateTopic):
            return [self._create(s, op, a) for a in self._assignments(s, op)]
        if isinstance(op, Produce):
            return [self._produce(s, op, producer_ids)]
        if isinstance(op, Fetch):
            return [(a, s) for a in self._one_segment(op.tp.topic, self._fetch(s, op))]
        if isinstance(op, AwaitRetention):
            return [(self._fetch(s, Fetch(op.tp, op.offset)), s)]
        if isinstance(op, ListOffsets):
            out = step(s, actions.ListOffsets(op.tp, self.contact, op.timestamp))
            obs = OffsetAnswer(out.error, out.reply.offset if isinstance(out, Ok) else -1)
            return [(obs, s)]
        if isinstance(op, InitProducerId):
            _, _, epoch = init_producer_id(ProducerIdState())
            return [(ProducerIdAnswer(ErrorCode.NONE, True, epoch), s)]
        if isinstance(op, RestartBroker):
            try:
                return [(Restarted(), crash_and_restart(s, op.broker))]
            except ModelError as e:
                raise OracleError(str(e)) from None
        assert isinstance(op, Metadata)
        return [(self._metadata(s, op), s)]

    def _assignments(
        self, s: ClusterState, op: CreateTopic
    ) -> Iterable[tuple[tuple[int, ...], ...]]:
        """Every replica assignment the target may choose (Kafka starts at a random broker
        with a random shift; an explicit assignment is the spec's own, start 0 shift 0)."""
        brokers = tuple(range(len(self.target_ids)))
        if op.partitions == -1:
            partitions, rf = s.config.num_partitions, s.config.default_replication_factor
        else:
            partitions, rf = op.partitions, 1
        if op.explicit:
            return [assign_replicas(brokers, partitions, rf, 0, 0)]
        return dict.fromkeys(
            assign_replicas(brokers, partitions, rf, start, shift)
            for start in brokers
            for shift in brokers
        )

    def explicit_assignment(self, op: CreateTopic) -> tuple[tuple[int, ...], ...]:
        """The assignment the harness sends for an explicit ``op``, in target broker ids."""
        brokers = tuple(range(len(self.target_ids)))
        model = assign_replicas(brokers, op.partitions, 1, 0, 0)
        return tuple(tuple(self.target_ids[b] for b in replicas) for replicas in model)

    def _create(
        self, s: ClusterState, op: CreateTopic, assignment: tuple[tuple[int, ...], ...]
    ) -> tuple[Observation, ClusterState]:
        out = step(s, actions.CreateTopic(op.topic, assignment))
        return ErrorAnswer(out.error), out.state

    def _produce(
        self, s: ClusterState, op: Produce, producer_ids: Mapping[int, int]
    ) -> tuple[Observation, ClusterState]:
        answers: dict[TopicPartition, PartitionAnswer] = {}
        pending: dict[int, tuple[TopicPartition, int]] = {}
        s = at_time(s, self.timing.batch_ms)  # the records' timestamp (CreateTime)
        for batch in op.batches:
            pid = producer_ids.get(batch.producer, -1) if batch.producer >= 0 else -1
            produce = actions.Produce(
                batch.tp,
                self.contact,
                tuple(actions.ProducedRecord(v, k) for k, v in batch.records),
                acks=op.acks,
                producer_id=pid,
                producer_epoch=batch.producer_epoch if pid >= 0 else -1,
                base_sequence=batch.base_sequence if pid >= 0 else -1,
                size_bytes=len(batch.build(pid, 0)),
            )
            out = step(s, produce)
            if batch.corrupt and isinstance(out, Ok):
                answers[batch.tp] = PartitionAnswer(batch.tp, ErrorCode.CORRUPT_MESSAGE)
                continue
            s = out.state
            if not isinstance(out, Ok):
                answers[batch.tp] = PartitionAnswer(batch.tp, out.error)
            elif out.reply.pending is not None:
                pending[out.reply.pending] = (batch.tp, out.reply.log_start_offset)
            else:
                reply = out.reply
                answers[batch.tp] = PartitionAnswer(
                    batch.tp, ErrorCode.NONE, reply.base_offset, reply.log_start_offset
                )
        if op.acks == actions.ACKS_NONE:
            failed = any(a.error != ErrorCode.NONE for a in answers.values())
            return (Closed() if failed else NoAnswer()), s
        if pending:
            s = settle(s)
            for request_id, (tp, log_start) in pending.items():
                done = step(s, actions.CompleteProduce(request_id))
                if not isinstance(done, Ok):
                    raise OracleError(f"the acks=all produce to {tp} never completes")
                s = done.state
                err, base = done.reply.error, done.reply.base_offset
                ok = err == ErrorCode.NONE
                answers[tp] = (
                    PartitionAnswer(tp, err, base, log_start) if ok else PartitionAnswer(tp, err)
                )
        return ProduceAnswer(tuple(answers[b.tp] for b in op.batches)), s

    def _fetch(self, s: ClusterState, op: Fetch) -> FetchAnswer:
        out = step(s, actions.Fetch(op.tp, self.contact, op.offset))
        if not isinstance(out, Ok):
            return FetchAnswer(out.error)
        return fetch_answer_of(out.reply)

    def _one_segment(self, topic: str, answer: FetchAnswer) -> list[FetchAnswer]:
        """Kafka answers a Fetch from one log segment: on a topic created with a small
        ``segment.bytes`` (one batch per segment, one record per batch:
        ``harness.conform_retention``) any non-empty prefix of the records."""
        records = answer.records
        if not records or "segment.bytes" not in dict(self.topic_configs.get(topic, ())):
            return [answer]
        return [attrs.evolve(answer, records=records[:k]) for k in range(len(records), 0, -1)]

    def _metadata(self, s: ClusterState, op: Metadata) -> MetadataAnswer:
        topics = []
        for name in op.topics:
            if name not in s.topics:
                topics.append(TopicInfo(name, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
                continue
            parts = []
            for p in range(len(s.topics[name])):
                part = s.partitions[TopicPartition(name, p)]
                zk = part.zk
                if zk.leader == NO_LEADER:
                    parts.append(PartitionInfo(p, ErrorCode.LEADER_NOT_AVAILABLE))
                    continue
                parts.append(
                    PartitionInfo(
                        p,
                        ErrorCode.NONE,
                        self.target_ids[zk.leader],
                        zk.leader_epoch,
                        tuple(self.target_ids[b] for b in part.replicas),
                        tuple(sorted(self.target_ids[b] for b in zk.isr)),
                    )
                )
            topics.append(TopicInfo(name, ErrorCode.NONE, tuple(parts)))
        return MetadataAnswer(tuple(topics))
