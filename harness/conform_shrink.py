"""Shrinking a divergence to a minimal list of Kafka operations, by replaying them.

Hypothesis finds a failing example; this module shrinks it at the level the report shows:
operations.  Each candidate (the trace with an operation removed, or one operation made
simpler) is replayed on the target in a fresh namespace and checked by the oracle; it is
kept when it still diverges the same way (the same kind of operation gets the same class
of answer, at its last operation or earlier).  Removal goes by chunks (halves, quarters,
... single operations), then each operation is simplified (fewer batches, records and
topics; shorter values; no key, compression or producer id; partition 0, offset 0; one
partition per topic).  Rounds repeat
until nothing more can go or the shrink budget is spent.

Operations are self-contained (logical topic names, producer slots), so any sublist is a
valid trace: an operation on a topic whose creation was removed simply gets the answer the
spec gives for an unknown topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import attrs

from harness.conform_check import Step, Tally, answer_class
from harness.conform_ops import (
    LOGICAL_TOPIC,
    Batch,
    CreateTopic,
    Fetch,
    ListOffsets,
    Metadata,
    Operation,
    Produce,
)
from harness.conform_retention import AwaitRetention
from harness.conform_session import Divergence, Session, replay
from spec.state import TopicPartition

Signature = tuple[str, str]


def signature(step: Step) -> Signature:
    """What a divergence must keep while it shrinks: the kind of operation and the class
    of the answer the target gave."""
    return type(step.op).__name__, answer_class(step.observed)


def _batch_simplifications(batch: Batch) -> Iterator[Batch]:
    if batch.producer >= 0:
        yield attrs.evolve(batch, producer=-1, producer_epoch=-1, base_sequence=-1)
    if batch.tp.partition != 0:
        yield attrs.evolve(batch, tp=TopicPartition(batch.tp.topic, 0))
    records = batch.records
    if len(records) > 1:
        for i in range(len(records)):
            yield attrs.evolve(batch, records=records[:i] + records[i + 1 :])
    for i, (key, value) in enumerate(records):
        if value:
            half = (key, value[: len(value) // 2])
            yield attrs.evolve(batch, records=(*records[:i], half, *records[i + 1 :]))
        if key is not None and batch.producer < 0:
            yield attrs.evolve(batch, records=(*records[:i], (None, value), *records[i + 1 :]))
    if batch.gzip:
        yield attrs.evolve(batch, gzip=False)


def simplifications(op: Operation) -> Iterator[Operation]:
    """Simpler variants of ``op``, the biggest simplification first."""
    if isinstance(op, Produce):
        if len(op.batches) > 1:
            for i in range(len(op.batches)):
                yield attrs.evolve(op, batches=op.batches[:i] + op.batches[i + 1 :])
        for i, batch in enumerate(op.batches):
            for simpler in _batch_simplifications(batch):
                yield attrs.evolve(op, batches=(*op.batches[:i], simpler, *op.batches[i + 1 :]))
    elif isinstance(op, Fetch | ListOffsets):
        if op.tp.partition != 0:
            yield attrs.evolve(op, tp=TopicPartition(op.tp.topic, 0))
        if isinstance(op, Fetch) and op.offset != 0:
            yield attrs.evolve(op, offset=0)
    elif isinstance(op, CreateTopic):
        if op.partitions > 1:
            yield attrs.evolve(op, partitions=1)
        if op.explicit:
            yield attrs.evolve(op, explicit=False)
    elif isinstance(op, Metadata) and len(op.topics) > 1:
        for i in range(len(op.topics)):
            yield attrs.evolve(op, topics=op.topics[:i] + op.topics[i + 1 :])


def _rename_topic(op: Operation, names: dict[str, str]) -> Operation:
    def tp(x: TopicPartition) -> TopicPartition:
        return TopicPartition(names.get(x.topic, x.topic), x.partition)

    if isinstance(op, CreateTopic):
        return attrs.evolve(op, topic=names.get(op.topic, op.topic))
    if isinstance(op, Produce):
        return attrs.evolve(op, batches=tuple(attrs.evolve(b, tp=tp(b.tp)) for b in op.batches))
    if isinstance(op, Fetch | ListOffsets | AwaitRetention):
        return attrs.evolve(op, tp=tp(op.tp))
    if isinstance(op, Metadata):
        return attrs.evolve(op, topics=tuple(names.get(t, t) for t in op.topics))
    return op


def _topics_of(op: Operation) -> list[str]:
    if isinstance(op, CreateTopic):
        return [op.topic]
    if isinstance(op, Produce):
        return [b.tp.topic for b in op.batches]
    if isinstance(op, Fetch | ListOffsets | AwaitRetention):
        return [op.tp.topic]
    if isinstance(op, Metadata):
        return list(op.topics)
    return []


def canonical(ops: list[Operation]) -> list[Operation]:
    """``ops`` with logical topics renamed t0, t1, ... in order of first appearance."""
    names: dict[str, str] = {}
    for op in ops:
        for topic in _topics_of(op):
            if LOGICAL_TOPIC.fullmatch(topic) and topic not in names:
                names[topic] = f"t{len(names)}"
    return [_rename_topic(op, names) for op in ops]


class Shrinker:
    """Shrinks one divergence within a time budget (``clock`` in seconds)."""

    def __init__(
        self,
        session: Session,
        budget_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.session = session
        self.clock = clock
        self.deadline = clock() + budget_s
        self.tally = Tally()
        self.replays = 0

    def _time_left(self) -> bool:
        return self.clock() < self.deadline

    def attempt(self, ops: list[Operation], wanted: Signature) -> Divergence | None:
        """The divergence ``ops`` replay to, if it has the ``wanted`` signature."""
        self.replays += 1
        _, found = replay(self.session, ops, self.tally)
        if found is not None and signature(found.steps[-1]) == wanted:
            return found
        return None

    def shrink(self, divergence: Divergence) -> Divergence:
        """The smallest divergence found; ``reproduced`` False when the original does not
        diverge again on replay (then it is returned as found)."""
        wanted = signature(divergence.steps[-1])
        ops = list(divergence.operations)
        first = self.attempt(ops, wanted)
        if first is None:
            return attrs.evolve(divergence, reproduced=False)
        best = first
        changed = True
        while changed and self._time_left():
            changed = False
            size = max(1, (len(best.steps) - 1) // 2)
            while size >= 1 and self._time_left():
                start = len(best.steps) - 1 - size
                while start >= 0 and self._time_left():
                    ops = list(best.operations)
                    found = self.attempt(ops[:start] + ops[start + size :], wanted)
                    if found is not None:
                        best, changed = found, True
                    start = min(start - size, len(best.steps) - 1 - size)
                size //= 2
            i = 0
            while i < len(best.steps) and self._time_left():
                ops = list(best.operations)
                for simpler in simplifications(ops[i]):
                    found = self.attempt([*ops[:i], simpler, *ops[i + 1 :]], wanted)
                    if found is not None:
                        best, changed = found, True
                        break
                else:
                    i += 1
        renamed = canonical(list(best.operations))
        if renamed != list(best.operations) and self._time_left():
            best = self.attempt(renamed, wanted) or best
        return attrs.evolve(
            best,
            rule=divergence.rule,
            seed=divergence.seed,
            examples=divergence.examples,
            found_length=len(divergence.steps),
        )
