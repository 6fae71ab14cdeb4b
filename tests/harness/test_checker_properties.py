"""The checker against a model of a correct Kafka log, with Hypothesis.

The model appends records to partition logs (offsets with occasional gaps, as transaction
markers leave), acknowledges a producer's sends in order, lets consumers read contiguous
runs, seek, crash and be reassigned, lets the nemesis come and go, and ends with a final
read of every partition.  Every history it makes is valid; each mutation of one (a write
dropped, a value duplicated, two offsets swapped, a failed write read back, ...) is
reported under the anomaly's name.  The checker's work stays within a constant times the
history's size.
"""

from __future__ import annotations

import itertools
import tempfile
from collections import deque
from collections.abc import Callable
from pathlib import Path

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.checker import (
    DUPLICATE,
    G1A,
    INCONSISTENT_OFFSETS,
    LOST_WRITE,
    NONMONOTONIC_POLL,
    NONMONOTONIC_SEND,
    POLL_SKIP,
    UNSEEN,
    check,
)
from harness.history import (
    NEMESIS,
    F,
    Fault,
    MemoryHistory,
    Op,
    OpType,
    PartitionRead,
    Partitions,
    Poll,
    Send,
    read_history,
    write_history,
)
from spec.state import TopicPartition

TOPIC = "t"
PRODUCERS = 3
CONSUMERS = (10, 11)
FINAL_READER = 99
ACTIONS = (
    *("send", "complete") * 2,
    *("poll",) * 4,
    *("seek", "crash", "assign", "info-poll", "nemesis"),
)
"""What the model may do next; the repetitions are the weights."""


class LogModel:
    """A correct cluster: every acknowledged record stays at its offset, forever."""

    def __init__(self, partitions: int, gaps: bool) -> None:
        self.h = MemoryHistory(clock_ns=itertools.count().__next__, wall_clock=lambda: 0.0)
        self.logs: list[list[tuple[int, str]]] = [[] for _ in range(partitions)]
        self.next_offset = [0] * partitions
        self.gaps = gaps
        self.in_flight: dict[int, deque[tuple[str, int]]] = {}
        self.positions: dict[int, list[int]] = {c: [0] * partitions for c in CONSUMERS}
        self.values = (f"v{i}" for i in itertools.count())

    def send(self, producer: int, partition: int, *, known: bool = True) -> None:
        value = next(self.values)
        shown = partition if known else None
        self.h.invoke(producer, F.SEND, Send(TOPIC, shown, f"k{partition}", value))
        self.in_flight.setdefault(producer, deque()).append((value, partition))

    def complete(self, producer: int, outcome: int, flip: bool) -> None:
        """Complete the producer's oldest send: ok, fail, or info (appended or not)."""
        queue = self.in_flight.get(producer)
        if not queue:
            return
        value, p = queue.popleft()
        if outcome == 2:
            self.h.fail(producer, F.SEND, Send(TOPIC, p, f"k{p}", value), "NOT_ENOUGH_REPLICAS")
        elif outcome == 3:
            if flip:
                self.append(p, value)
            self.h.info(producer, F.SEND, Send(TOPIC, None, f"k{p}", value), "timeout")
        else:
            offset = self.append(p, value, gap=flip)
            self.h.ok(producer, F.SEND, Send(TOPIC, p, f"k{p}", value, offset))

    def append(self, p: int, value: str, *, gap: bool = False) -> int:
        offset = self.next_offset[p]
        self.logs[p].append((offset, value))
        self.next_offset[p] = offset + 1 + (1 if gap and self.gaps else 0)
        return offset

    def poll(self, consumer: int, p: int, count: int) -> None:
        """Read up to ``count`` records from the consumer's position."""
        start = self.positions[consumer][p]
        records = tuple(self.logs[p][start : start + count])
        self.h.invoke(consumer, F.POLL, Poll())
        self.h.ok(consumer, F.POLL, Poll((PartitionRead(TOPIC, p, records),)))
        self.positions[consumer][p] += len(records)

    def run(self, kind: str, a: int, b: int) -> None:
        p = b % len(self.logs)
        consumer = CONSUMERS[a % len(CONSUMERS)]
        if kind == "send":
            self.send(a % PRODUCERS, p, known=b < 8)
        elif kind == "complete":
            self.complete(a % PRODUCERS, b % 4, flip=(a // PRODUCERS) % 2 == 1)
        elif kind == "poll":
            self.poll(consumer, p, 1 + a % 3)
        elif kind == "seek":
            moved = self.positions[consumer][p] + a - 8
            self.positions[consumer][p] = max(0, min(len(self.logs[p]), moved))
            self.h.ok(consumer, F.SEEK, Partitions((TopicPartition(TOPIC, p),)))
        elif kind in ("crash", "assign"):
            self.positions[consumer] = [b % (len(log) + 1) for log in self.logs]
            if kind == "crash":
                self.h.info(consumer, F.CRASH)
            else:
                self.h.info(consumer, F.ASSIGN, Partitions())
        elif kind == "info-poll":  # records may have been consumed, unreported
            self.h.invoke(consumer, F.POLL, Poll())
            self.h.info(consumer, F.POLL, Poll(), "disconnected")
            moved = self.positions[consumer][p] + 1 + a
            self.positions[consumer][p] = min(len(self.logs[p]), moved)
        else:
            f = F.FAULT if a % 2 == 0 else F.HEAL
            self.h.info(NEMESIS, f, Fault(("kill", "pause", "partition")[b % 3], (f"n{a % 3}",)))

    def finish(self, page: int) -> list[Op]:
        """Resolve what is in flight as unknown, then read every partition in full."""
        for producer, queue in self.in_flight.items():
            for i in range(len(queue)):
                self.complete(producer, 3, flip=i % 2 == 0)
        self.h.ok(FINAL_READER, F.ASSIGN, Partitions())
        for p, log in enumerate(self.logs):
            for start in range(0, len(log), page):
                records = tuple(log[start : start + page])
                self.h.invoke(FINAL_READER, F.POLL, Poll(final=True))
                self.h.ok(FINAL_READER, F.POLL, Poll((PartitionRead(TOPIC, p, records),), True))
        return self.h.ops


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    """A valid history: three acknowledged sends and one failed per partition to begin
    with, then random client calls and faults, then the final read."""
    model = LogModel(draw(st.integers(1, 3)), gaps=draw(st.booleans()))
    for p in range(len(model.logs)):
        for _ in range(3):
            model.send(0, p)
            model.complete(0, 0, flip=False)
        model.send(1, p)
        model.complete(1, 2, flip=False)
    steps = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 15), st.integers(0, 15))
    for kind, a, b in draw(st.lists(steps, min_size=10, max_size=150)):
        model.run(kind, a, b)
    return model.finish(page=draw(st.integers(1, 4)))


def size(ops: list[Op]) -> int:
    """Operations plus records read: what the checker's work is bounded by."""
    records = sum(
        len(r.records) for op in ops if isinstance(op.value, Poll) for r in op.value.reads
    )
    return len(ops) + records


STEPS_PER_ITEM = 8
"""The checker's steps per operation or record read (a partition adds at most 64 more)."""


@settings(max_examples=150, deadline=None)
@given(histories())
def test_a_correct_log_gives_a_valid_history(ops: list[Op]) -> None:
    result = check(ops)
    assert result.valid, result.to_json()
    assert not result.anomalies
    assert result.stats.steps <= STEPS_PER_ITEM * size(ops) + 64 * result.stats.partitions


# Mutations: each breaks a valid history in one way and names the anomaly it makes.

Mutation = Callable[[list[Op], st.DataObject], list[Op]]


Place = tuple[int, int, int]
"""A record of the final read: (op position, read, record)."""


def _final_records(ops: list[Op]) -> list[Place]:
    return [
        (i, j, k)
        for i, op in enumerate(ops)
        if isinstance(op.value, Poll) and op.value.final
        for j, read in enumerate(op.value.reads)
        for k in range(len(read.records))
    ]


def _read(ops: list[Op], at: Place) -> PartitionRead:
    poll = ops[at[0]].value
    assert isinstance(poll, Poll)
    return poll.reads[at[1]]


def _record(ops: list[Op], at: Place) -> tuple[int, str]:
    return _read(ops, at).records[at[2]]


def _replace(ops: list[Op], at: Place, new: tuple[tuple[int, str], ...]) -> list[Op]:
    """``ops`` with the record at ``at`` replaced by ``new`` (none, one or more records)."""
    i, j, k = at
    poll = ops[i].value
    assert isinstance(poll, Poll)
    records = poll.reads[j].records
    reads = list(poll.reads)
    reads[j] = attrs.evolve(reads[j], records=(*records[:k], *new, *records[k + 1 :]))
    op = attrs.evolve(ops[i], value=attrs.evolve(poll, reads=tuple(reads)))
    return [*ops[:i], op, *ops[i + 1 :]]


def _acked(ops: list[Op]) -> set[str]:
    return {op.value.value for op in ops if op.type is OpType.OK and isinstance(op.value, Send)}


def drop_acknowledged(ops: list[Op], data: st.DataObject) -> list[Op]:
    acked = _acked(ops)
    at = data.draw(st.sampled_from([a for a in _final_records(ops) if _record(ops, a)[1] in acked]))
    return _replace(ops, at, ())


def duplicate_value(ops: list[Op], data: st.DataObject) -> list[Op]:
    places = _final_records(ops)
    at = data.draw(st.sampled_from(places))
    end = max(_record(ops, a)[0] for a in places)
    return _replace(ops, at, (_record(ops, at), (end + 10, _record(ops, at)[1])))


def swap_offsets(ops: list[Op], data: st.DataObject) -> list[Op]:
    """Swap the values of two offsets of a partition, one of them acknowledged."""
    acked = _acked(ops)
    places = _final_records(ops)
    at = data.draw(st.sampled_from([a for a in places if _record(ops, a)[1] in acked]))
    tp = _read(ops, at).tp
    other = data.draw(st.sampled_from([a for a in places if a != at and _read(ops, a).tp == tp]))
    (o1, v1), (o2, v2) = _record(ops, at), _record(ops, other)
    return _replace(_replace(ops, at, ((o1, v2),)), other, ((o2, v1),))


def read_failed_send(ops: list[Op], data: st.DataObject) -> list[Op]:
    failed = [op.value.value for op in ops if op.type is OpType.FAIL and isinstance(op.value, Send)]
    value = data.draw(st.sampled_from(failed))
    at = _final_records(ops)[-1]
    last = _record(ops, at)
    return _replace(ops, at, (last, (last[0] + 1, value)))


def reorder_acks(ops: list[Op], data: st.DataObject) -> list[Op]:
    """Swap the offsets of two acknowledgements of producer 0 on one partition."""
    oks = [
        i
        for i, op in enumerate(ops)
        if op.process == 0 and op.type is OpType.OK and isinstance(op.value, Send)
    ]
    first = data.draw(st.sampled_from(oks))
    tp = _send(ops[first]).tp
    second = data.draw(st.sampled_from([i for i in oks if i != first and _send(ops[i]).tp == tp]))
    a, b = _send(ops[first]), _send(ops[second])
    ops = list(ops)
    ops[first] = attrs.evolve(ops[first], value=attrs.evolve(a, offset=b.offset))
    ops[second] = attrs.evolve(ops[second], value=attrs.evolve(b, offset=a.offset))
    return ops


def _send(op: Op) -> Send:
    assert isinstance(op.value, Send)
    return op.value


def replay_a_poll(ops: list[Op], data: st.DataObject) -> list[Op]:
    """The final reader reads one of its pages again at the end, without a seek."""
    pages = sorted({i for i, _, _ in _final_records(ops)})
    again = ops[data.draw(st.sampled_from(pages))]
    return [*ops, attrs.evolve(again, index=len(ops))]


def skip_a_record(ops: list[Op], data: st.DataObject) -> list[Op]:
    """A new consumer reads one record of a partition, then one two further on."""
    places = _final_records(ops)
    k = data.draw(st.integers(0, len(places) - 3))
    if _read(ops, places[k]).tp != _read(ops, places[k + 2]).tp:
        k = 0  # the first partition has at least three records
    p = _read(ops, places[k]).partition
    out = list(ops)
    for at in (places[k], places[k + 2]):
        read = PartitionRead(TOPIC, p, (_record(ops, at),))
        out.append(Op(len(out), 0, 0.0, 42, OpType.OK, F.POLL, Poll((read,))))
    return out


def forget_every_poll(ops: list[Op], data: st.DataObject) -> list[Op]:
    """No one ever reads: every acknowledged value is unseen, none provably lost."""
    return [op for op in ops if op.f is not F.POLL]


MUTATIONS: dict[str, tuple[Mutation, set[str] | None]] = {
    "drop an acknowledged value": (drop_acknowledged, {LOST_WRITE}),
    "duplicate a value": (duplicate_value, {DUPLICATE}),
    "swap two offsets": (swap_offsets, {INCONSISTENT_OFFSETS}),
    "read back a failed send": (read_failed_send, {G1A}),
    "reorder a producer's acks": (reorder_acks, {NONMONOTONIC_SEND}),
    "replay a poll": (replay_a_poll, {NONMONOTONIC_POLL}),
    "skip a record": (skip_a_record, None),  # exactly poll-skip, checked below
    "forget every poll": (forget_every_poll, None),  # exactly unseen, checked below
}


@settings(max_examples=40, deadline=None)
@given(histories(), st.sampled_from(sorted(MUTATIONS)), st.data())
def test_each_mutation_is_reported_by_name(
    ops: list[Op], mutation: str, data: st.DataObject
) -> None:
    mutate, expected = MUTATIONS[mutation]
    result = check(mutate(ops, data))
    if mutate is skip_a_record:
        assert set(result.anomalies) == {POLL_SKIP}
        assert result.anomalies[POLL_SKIP].examples[0]["skipped"] == 1
    elif mutate is forget_every_poll:
        assert set(result.anomalies) == {UNSEEN} and result.valid
        assert result.anomalies[UNSEEN].count == result.stats.sends_acknowledged
        return
    else:
        assert expected is not None and expected <= set(result.anomalies), result.to_json()
    assert not result.valid


@settings(max_examples=30, deadline=None)
@given(histories())
def test_a_history_file_round_trip_keeps_the_verdict(ops: list[Op]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.jsonl"
        write_history(path, ops)
        back = read_history(path)
    assert list(back.ops) == ops and not back.torn_tail
    assert check(back.ops) == check(ops)


def big_history(rounds: int) -> list[Op]:
    """A history that grows linearly with ``rounds``: every kind of operation, repeated."""
    model = LogModel(3, gaps=True)
    for r in range(rounds):
        for kind, a, b in (
            ("send", r, r),
            ("send", r + 1, r + 5),
            ("complete", r, r),
            ("complete", r + 1, 1),
            ("poll", r, r),
            ("nemesis", r, r),
            ("seek" if r % 7 == 0 else "poll", r + 1, r),
        ):
            model.run(kind, a % 16, b % 16)
    return model.finish(page=5)


def test_the_checker_is_linear_in_the_history() -> None:
    """Not timed: the checker counts its steps, and eight times the history takes about
    eight times the steps (a quadratic checker would take 64 times)."""
    small, large = big_history(250), big_history(2000)
    assert 7.5 * size(small) <= size(large) <= 8.5 * size(small)
    steps_small, steps_large = check(small).stats.steps, check(large).stats.steps
    assert steps_large <= 8.5 * steps_small
    assert steps_large <= STEPS_PER_ITEM * size(large) + 64 * 3


def test_sparse_offsets_take_the_sorting_path_and_stay_valid() -> None:
    h = MemoryHistory(clock_ns=itertools.count().__next__, wall_clock=lambda: 0.0)
    records = tuple((10**9 * i, f"v{i}") for i in range(50))
    for offset, value in records:
        h.invoke(0, F.SEND, Send(TOPIC, 0, None, value))
        h.ok(0, F.SEND, Send(TOPIC, 0, None, value, offset))
    h.ok(FINAL_READER, F.POLL, Poll((PartitionRead(TOPIC, 0, records),), final=True))
    h.ok(5, F.POLL, Poll((PartitionRead(TOPIC, 0, records[:1] + records[2:3]),)))
    result = check(h.ops)
    assert set(result.anomalies) == {POLL_SKIP}
    assert result.anomalies[POLL_SKIP].examples[0]["skipped-offsets"] == [10**9]
    assert result.stats.steps <= STEPS_PER_ITEM * size(h.ops) + 64
