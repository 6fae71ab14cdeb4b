"""The history checker: the anomalies of Jepsen's Kafka workload, found in any history.

A history (:mod:`harness.history`) records what producers were told about their sends
and what consumers read.  From it the checker rebuilds, per partition, which value each
offset held (every acknowledgement with an offset and every record read is a witness),
and reports, with Jepsen's names:

``lost-write``
    a send acknowledged (ok) whose value is missing from the final read of its
    partition; without a final read of the partition, one never read although a later
    offset of its partition was.
``unseen``
    an acknowledged value no poll ever read.  Informational: with a final read every
    unseen value is also a lost write.
``duplicate``
    a value found at more than one offset.
``inconsistent-offsets``
    an offset witnessed with different values (two reads, or an acknowledgement and a
    read).
``nonmonotonic-send``
    one producer process's acknowledged offsets on one partition not increasing in the
    order it invoked the sends.
``nonmonotonic-poll``
    one consumer process reading an offset at or below one it read before on the same
    partition (within a poll or across its successive polls), with no assign, seek or
    crash in between.
``poll-skip``
    one consumer process's successive reads on a partition jumping over offsets known
    to exist (read by anyone or acknowledged), with no assign, seek or crash in between.
``G1a``
    a value whose send failed (definitely not written) read back by a poll.

A send whose outcome is unknown (``info``, or never completed) may or may not appear:
neither is an anomaly.  A consumer's ``info`` poll (it may have consumed records it never
reported) forgets its positions, as an assign would.

Cost: linear in the history's size (operations plus records read).  Two passes over the
operations, dictionaries and sets keyed by value, offset and partition; examples are
capped at :data:`MAX_EXAMPLES`.  Ranking a partition's known offsets (for poll-skip) walks
their span when the offsets are dense, as Kafka's are (gaps only for transaction markers
and compaction), and falls back to one sort of the partition's distinct offsets when
they are not.  :attr:`Stats.steps` counts the elementary steps taken, so tests can hold
the checker to that bound.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from typing import Final

import attrs

from harness.history import NEMESIS, F, Json, Op, OpType, Partitions, Poll, Process, Send
from spec.state import TopicPartition

LOST_WRITE: Final = "lost-write"
UNSEEN: Final = "unseen"
DUPLICATE: Final = "duplicate"
INCONSISTENT_OFFSETS: Final = "inconsistent-offsets"
NONMONOTONIC_SEND: Final = "nonmonotonic-send"
NONMONOTONIC_POLL: Final = "nonmonotonic-poll"
POLL_SKIP: Final = "poll-skip"
G1A: Final = "G1a"

ANOMALIES: Final = (
    LOST_WRITE,
    UNSEEN,
    DUPLICATE,
    INCONSISTENT_OFFSETS,
    NONMONOTONIC_SEND,
    NONMONOTONIC_POLL,
    POLL_SKIP,
    G1A,
)
"""Every anomaly the checker reports, in report order."""

INFORMATIONAL: Final = frozenset({UNSEEN})
"""Anomalies reported that never make a history invalid."""

MAX_EXAMPLES: Final = 8
"""Examples kept per anomaly (the count covers all)."""


@attrs.frozen(slots=True)
class Anomaly:
    """One kind of anomaly found: how many times, and the first few cases."""

    name: str
    count: int
    examples: tuple[dict[str, Json], ...]

    def to_json(self) -> dict[str, Json]:
        """``{"count": n, "examples": [...]}``."""
        return {"count": self.count, "examples": list(self.examples)}


@attrs.frozen(slots=True)
class Stats:
    """What the history holds."""

    ops: int
    by_type: Mapping[str, int]
    by_f: Mapping[str, int]
    sends_acknowledged: int
    sends_failed: int
    sends_unknown: int
    """Sends completed ``info``, or invoked and never completed."""
    records_read: int
    """``(offset, value)`` pairs in ok polls, the final read included."""
    values_read: int
    """Distinct values read."""
    partitions: int
    """Partitions with a witnessed offset."""
    final_read_partitions: int
    nemesis_ops: int
    steps: int
    """Elementary steps the checker took: a constant times the history's size."""

    def to_json(self) -> dict[str, Json]:
        """The statistics as a JSON object."""
        return {
            "ops": self.ops,
            "by-type": dict(self.by_type),
            "by-f": dict(self.by_f),
            "sends-acknowledged": self.sends_acknowledged,
            "sends-failed": self.sends_failed,
            "sends-unknown": self.sends_unknown,
            "records-read": self.records_read,
            "values-read": self.values_read,
            "partitions": self.partitions,
            "final-read-partitions": self.final_read_partitions,
            "nemesis-ops": self.nemesis_ops,
            "steps": self.steps,
        }


@attrs.frozen(slots=True)
class CheckResult:
    """The checker's verdict on a history."""

    valid: bool
    anomalies: Mapping[str, Anomaly]
    """The anomalies found, in :data:`ANOMALIES` order."""
    allowed: frozenset[str]
    """Anomalies reported without making the history invalid."""
    stats: Stats

    @property
    def anomaly_types(self) -> tuple[str, ...]:
        """The names of the anomalies found."""
        return tuple(self.anomalies)

    @property
    def bad_anomaly_types(self) -> tuple[str, ...]:
        """The anomalies found that make the history invalid."""
        return tuple(n for n in self.anomalies if n not in self.allowed)

    def to_json(self) -> dict[str, Json]:
        """The verdict as the JSON object ``results.json`` holds."""
        return {
            "valid": self.valid,
            "anomaly-types": list(self.anomaly_types),
            "bad-anomaly-types": list(self.bad_anomaly_types),
            "anomalies": {name: a.to_json() for name, a in self.anomalies.items()},
            "stats": self.stats.to_json(),
        }

    def summary(self) -> str:
        """One line for a terminal."""
        s = self.stats
        head = "valid" if self.valid else "INVALID"
        found = ", ".join(f"{a.name} {a.count}" for a in self.anomalies.values())
        return f"{head}: {s.sends_acknowledged} sends acknowledged, {s.values_read} values read" + (
            f"; {found}" if found else ""
        )


def check(ops: Iterable[Op], *, allowed: Collection[str] = ()) -> CheckResult:
    """Check a history; the names in ``allowed`` (for example ``duplicate`` when producers
    are not idempotent and retry) are reported but do not make it invalid."""
    unknown = set(allowed) - set(ANOMALIES)
    if unknown:
        raise ValueError(f"unknown anomalies {sorted(unknown)}; known: {list(ANOMALIES)}")
    return _Analysis(list(ops), frozenset(allowed) | INFORMATIONAL).result()


_Position = tuple[int, int]  # (offset, op index) of a consumer's last read on a partition


class _Findings:
    """Counts and the first examples of each anomaly."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[dict[str, Json]]] = {}

    def add(self, name: str, example: dict[str, Json]) -> None:
        self.counts[name] += 1
        shown = self.examples.setdefault(name, [])
        if len(shown) < MAX_EXAMPLES:
            shown.append(example)


class _Analysis:
    """The state of one check: pass one gathers the witnesses, pass two follows each
    consumer's reads through the partitions' version orders."""

    def __init__(self, ops: list[Op], allowed: frozenset[str]) -> None:
        self.ops = ops
        self.allowed = allowed
        self.steps = 0
        self.found = _Findings()
        # Pass one.
        self.log: dict[TopicPartition, dict[int, str]] = {}  # offset -> first value seen
        self.conflicts: dict[tuple[TopicPartition, int], list[str]] = {}
        self.where: dict[str, tuple[TopicPartition, int]] = {}  # value -> first offset
        self.elsewhere: dict[str, list[tuple[TopicPartition, int]]] = {}
        self.acked: dict[str, tuple[Send, int]] = {}  # value -> (ack, op index)
        self.failed: dict[str, int] = {}
        self.sends: set[str] = set()
        self.send_order: dict[Process, list[str]] = {}  # invocation order
        self.first_read: dict[str, int] = {}  # value -> index of the first poll reading it
        self.final: dict[TopicPartition, set[str]] = {}
        self.max_read: dict[TopicPartition, int] = {}
        self.records_read = 0
        self.by_type: Counter[str] = Counter()
        self.by_f: Counter[str] = Counter()
        self.nemesis_ops = 0

    def result(self) -> CheckResult:
        self.gather()
        self.offset_anomalies()
        self.send_anomalies()
        self.follow_consumers()
        anomalies = {
            name: Anomaly(name, self.found.counts[name], tuple(self.found.examples[name]))
            for name in ANOMALIES
            if self.found.counts[name]
        }
        valid = all(name in self.allowed for name in anomalies)
        return CheckResult(valid, anomalies, self.allowed, self.stats())

    def stats(self) -> Stats:
        acked = len(self.acked)
        failed = sum(1 for v in self.failed if v not in self.acked)
        return Stats(
            ops=len(self.ops),
            by_type=dict(self.by_type),
            by_f=dict(self.by_f),
            sends_acknowledged=acked,
            sends_failed=failed,
            sends_unknown=len(self.sends) - acked - failed,
            records_read=self.records_read,
            values_read=len(self.first_read),
            partitions=len(self.log),
            final_read_partitions=len(self.final),
            nemesis_ops=self.nemesis_ops,
            steps=self.steps,
        )

    # Pass one: witnesses of which value each offset holds.

    def gather(self) -> None:
        for op in self.ops:
            self.steps += 1
            self.by_type[op.type.value] += 1
            self.by_f[op.f.value] += 1
            if op.process == NEMESIS:
                self.nemesis_ops += 1
            elif isinstance(op.value, Send):
                self.gather_send(op, op.value)
            elif isinstance(op.value, Poll) and op.type is OpType.OK:
                self.gather_poll(op, op.value)

    def gather_send(self, op: Op, send: Send) -> None:
        value = send.value
        if value not in self.sends:
            self.sends.add(value)
            self.send_order.setdefault(op.process, []).append(value)
        if op.type is OpType.OK:
            self.acked[value] = (send, op.index)
            tp = send.tp
            if tp is not None and send.offset is not None:
                self.witness(tp, send.offset, value)
        elif op.type is OpType.FAIL:
            self.failed.setdefault(value, op.index)

    def gather_poll(self, op: Op, poll: Poll) -> None:
        for read in poll.reads:
            tp = read.tp
            final = self.final.setdefault(tp, set()) if poll.final else None
            for offset, value in read.records:
                self.steps += 1
                self.records_read += 1
                self.witness(tp, offset, value)
                self.first_read.setdefault(value, op.index)
                if final is not None:
                    final.add(value)
                if offset > self.max_read.get(tp, -1):
                    self.max_read[tp] = offset

    def witness(self, tp: TopicPartition, offset: int, value: str) -> None:
        """Offset ``offset`` of ``tp`` was seen holding ``value``."""
        held = self.log.setdefault(tp, {})
        first = held.setdefault(offset, value)
        if first != value:
            seen = self.conflicts.setdefault((tp, offset), [first])
            if value not in seen and len(seen) < MAX_EXAMPLES:
                seen.append(value)
        at = self.where.setdefault(value, (tp, offset))
        if at != (tp, offset):
            others = self.elsewhere.setdefault(value, [])
            if (tp, offset) not in others and len(others) < MAX_EXAMPLES:
                others.append((tp, offset))

    # What the witnesses say about offsets and values.

    def offset_anomalies(self) -> None:
        for (tp, offset), values in self.conflicts.items():
            self.steps += 1
            self.found.add(
                INCONSISTENT_OFFSETS, {**_tp_json(tp), "offset": offset, "values": [*values]}
            )
        for value, others in self.elsewhere.items():
            self.steps += 1
            places = [self.where[value], *others]
            example: dict[str, Json] = {
                "value": value,
                "offsets": [{**_tp_json(tp), "offset": o} for tp, o in places],
            }
            self.found.add(DUPLICATE, example)

    def send_anomalies(self) -> None:
        for value, (send, index) in self.acked.items():
            self.steps += 1
            tp = send.tp
            assert tp is not None  # Op checks that an ok send names its partition
            where: dict[str, Json] = {
                "value": value,
                **_tp_json(tp),
                "offset": send.offset,
                "send-index": index,
            }
            read = value in self.first_read
            if not read:
                self.found.add(UNSEEN, where)
            final = self.final.get(tp)
            if final is not None:
                if value not in final:
                    self.found.add(LOST_WRITE, where)
            elif not read and send.offset is not None:
                end = self.max_read.get(tp, -1)
                if end > send.offset:
                    self.found.add(LOST_WRITE, {**where, "max-offset-read": end})
        for value, index in self.failed.items():
            self.steps += 1
            if value in self.first_read and value not in self.acked:
                tp, offset = self.where[value]
                example: dict[str, Json] = {
                    "value": value,
                    **_tp_json(tp),
                    "offset": offset,
                    "send-index": index,
                    "read-index": self.first_read[value],
                }
                self.found.add(G1A, example)
        self.send_order_anomalies()

    def send_order_anomalies(self) -> None:
        for process, values in self.send_order.items():
            last: dict[TopicPartition, tuple[int, str, int]] = {}
            for value in values:
                self.steps += 1
                ack = self.acked.get(value)
                if ack is None:
                    continue
                send, index = ack
                tp, offset = send.tp, send.offset
                if tp is None or offset is None:
                    continue
                before = last.get(tp)
                if before is not None and offset <= before[0]:
                    example: dict[str, Json] = {
                        "process": process,
                        **_tp_json(tp),
                        "values": [before[1], value],
                        "offsets": [before[0], offset],
                        "send-indexes": [before[2], index],
                    }
                    self.found.add(NONMONOTONIC_SEND, example)
                last[tp] = (offset, value, index)

    # Pass two: each consumer's successive reads, in the version order of each partition.

    def follow_consumers(self) -> None:
        ranks = {tp: self.version_order(held) for tp, held in self.log.items()}
        positions: dict[Process, dict[TopicPartition, _Position]] = {}
        for op in self.ops:
            self.steps += 1
            if op.process == NEMESIS or op.type is OpType.INVOKE:
                continue
            mine = positions.setdefault(op.process, {})
            if op.f is F.CRASH or (op.f is F.POLL and op.type is OpType.INFO):
                mine.clear()
            elif isinstance(op.value, Partitions):
                if op.value.partitions:
                    for tp in op.value.partitions:
                        mine.pop(tp, None)
                else:
                    mine.clear()
            elif isinstance(op.value, Poll) and op.type is OpType.OK:
                for read in op.value.reads:
                    tp = read.tp
                    for offset, _value in read.records:
                        self.steps += 1
                        before = mine.get(tp)
                        if before is not None:
                            self.successive(op, tp, before, offset, ranks[tp])
                        mine[tp] = (offset, op.index)

    def successive(
        self,
        op: Op,
        tp: TopicPartition,
        before: _Position,
        offset: int,
        version_order: tuple[list[int], dict[int, int]],
    ) -> None:
        """Process ``op.process`` read ``offset`` of ``tp`` right after ``before``."""
        last, last_index = before
        example: dict[str, Json] = {
            "process": op.process,
            **_tp_json(tp),
            "offsets": [last, offset],
            "poll-indexes": [last_index, op.index],
        }
        if offset <= last:
            self.found.add(NONMONOTONIC_POLL, example)
            return
        order, rank = version_order
        skipped = rank[offset] - rank[last] - 1
        if skipped > 0:
            start = rank[last] + 1
            shown = order[start : start + min(skipped, MAX_EXAMPLES)]
            self.found.add(POLL_SKIP, {**example, "skipped": skipped, "skipped-offsets": [*shown]})

    def version_order(self, held: dict[int, str]) -> tuple[list[int], dict[int, int]]:
        """The partition's known offsets in order, and each one's position among them."""
        low, high = min(held), max(held)
        span = high - low + 1
        self.steps += len(held)
        if span <= 2 * len(held) + 64:  # dense, as Kafka's offsets are: walk the span
            self.steps += span
            order = [o for o in range(low, high + 1) if o in held]
        else:
            order = sorted(held)
        return order, {o: i for i, o in enumerate(order)}


def _tp_json(tp: TopicPartition) -> dict[str, Json]:
    return {"topic": tp.topic, "partition": tp.partition}
