"""A history of operations against a Kafka cluster, as Jepsen records one.

Every operation a client performs is recorded twice: once when it is *invoked* and once
when it *completes*, as ``ok`` (it happened), ``fail`` (it definitely did not happen) or
``info`` (the outcome is unknown: a timeout, a lost connection, a crashed client).  Each
operation names its *process* (the client that performed it), its function ``f`` and a
value; faults injected by the nemesis are operations of process ``"nemesis"``.

The functions, in Kafka's terms:

``send``
    a producer sends one record with a unique value to a topic; the partition may be
    unknown until the acknowledgement, which also carries the record's offset.
``poll``
    a consumer fetches; the completion carries, per partition, the ``(offset, value)``
    pairs read, in the order the consumer saw them.  The polls that make up the final
    read of every partition from its beginning are marked ``final``.
``assign``, ``seek``, ``crash``
    a consumer's position changes legitimately: a new assignment (also the one a group
    rebalance hands out), an explicit seek, or a client restarted after a crash.
``fault``, ``heal``
    the nemesis starts or heals a fault of some kind (kill, pause, partition, ...) on
    some targets (containers, brokers).

On disk a history is JSON Lines, one operation per line, appended and flushed as it
happens, so a run that crashes leaves a usable history: :func:`read_history` drops a torn
last line.  One line::

    {"index": 7, "time": 81234567, "wall": 1700000000.25, "process": 0, "type": "ok",
     "f": "send", "value": {"topic": "t", "partition": 1, "key": "k3", "value": "0-17",
     "offset": 42}}

``time`` is monotonic nanoseconds since the recorder started; ``wall`` is Unix seconds.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeAlias, TypeVar

import attrs

from spec.state import TopicPartition

Process: TypeAlias = int | str
"""A client's id (Jepsen numbers them), or :data:`NEMESIS`."""

NEMESIS: Final = "nemesis"
"""The process of the fault injector's operations."""

_T = TypeVar("_T")

Json: TypeAlias = bool | int | float | str | list["Json"] | dict[str, "Json"] | None
"""A value that :func:`json.dumps` renders."""


class HistoryFormatError(ValueError):
    """A history line (or an operation built in code) that is not a valid operation."""


class OpType(StrEnum):
    """Jepsen's operation types: an invocation and its three possible completions."""

    INVOKE = "invoke"
    OK = "ok"
    FAIL = "fail"
    """Definitely did not take effect (for a send: the record was not written)."""
    INFO = "info"
    """Unknown outcome: it may or may not have taken effect."""


class F(StrEnum):
    """What an operation does."""

    SEND = "send"
    POLL = "poll"
    ASSIGN = "assign"
    SEEK = "seek"
    CRASH = "crash"
    FAULT = "fault"
    HEAL = "heal"


@attrs.frozen(slots=True)
class Send:
    """One record sent: the partition is ``None`` until known; the offset comes with ok."""

    topic: str
    partition: int | None
    key: str | None
    value: str
    offset: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.partition is not None and self.partition < 0:
            raise HistoryFormatError(f"send of {self.value!r}: partition {self.partition}")
        if self.offset is not None and self.offset < 0:
            raise HistoryFormatError(f"send of {self.value!r}: offset {self.offset}")

    @property
    def tp(self) -> TopicPartition | None:
        """The partition written to, once known."""
        return None if self.partition is None else TopicPartition(self.topic, self.partition)


@attrs.frozen(slots=True)
class PartitionRead:
    """What one poll read from one partition: ``(offset, value)`` pairs in the order seen."""

    topic: str
    partition: int
    records: tuple[tuple[int, str], ...]

    @property
    def tp(self) -> TopicPartition:
        """The partition read."""
        return TopicPartition(self.topic, self.partition)


@attrs.frozen(slots=True)
class Poll:
    """A poll: empty when invoked; on ok, the records read from each partition."""

    reads: tuple[PartitionRead, ...] = ()
    final: bool = False
    """Part of the final read of every partition from its beginning to its end."""


@attrs.frozen(slots=True)
class Partitions:
    """The partitions an assign or seek concerns; empty means all of the consumer's."""

    partitions: tuple[TopicPartition, ...] = ()


@attrs.frozen(slots=True)
class Fault:
    """A nemesis fault: its kind (kill, pause, partition, ...) and targets."""

    kind: str
    targets: tuple[str, ...] = ()
    note: str = ""


OpValue: TypeAlias = Send | Poll | Partitions | Fault | None

_VALUE_TYPES: Final[Mapping[F, type[Any] | None]] = {
    F.SEND: Send,
    F.POLL: Poll,
    F.ASSIGN: Partitions,
    F.SEEK: Partitions,
    F.CRASH: None,
    F.FAULT: Fault,
    F.HEAL: Fault,
}


@attrs.frozen(slots=True)
class Op:
    """One line of a history."""

    index: int
    time: int
    """Monotonic nanoseconds since the recorder started."""
    wall: float
    """Unix time in seconds."""
    process: Process
    type: OpType
    f: F
    value: OpValue
    error: str | None = None
    """Why it failed or is unknown: a Kafka error name, ``timeout``, ..."""

    def __attrs_post_init__(self) -> None:
        expected = _VALUE_TYPES[self.f]
        if (expected is None) != (self.value is None) or (
            expected is not None and not isinstance(self.value, expected)
        ):
            raise HistoryFormatError(f"op {self.index}: f {self.f} with value {self.value!r}")
        if self.type is OpType.OK and isinstance(self.value, Send) and self.value.tp is None:
            raise HistoryFormatError(f"op {self.index}: acknowledged send without a partition")

    def to_json(self) -> dict[str, Json]:
        """The JSON object of this operation (one history line)."""
        line: dict[str, Json] = {
            "index": self.index,
            "time": self.time,
            "wall": self.wall,
            "process": self.process,
            "type": self.type.value,
            "f": self.f.value,
            "value": _value_json(self.value),
        }
        if self.error is not None:
            line["error"] = self.error
        return line

    @classmethod
    def from_json(cls, obj: object) -> Op:
        """The operation a history line holds; :class:`HistoryFormatError` if it is not one."""
        o = _dict(obj, "operation")
        process = o.get("process")
        if isinstance(process, bool) or not isinstance(process, int | str):
            raise HistoryFormatError(f"process {process!r}")
        try:
            op_type, f = OpType(_get(o, "type", str)), F(_get(o, "f", str))
        except ValueError as e:
            raise HistoryFormatError(str(e)) from None
        error = o.get("error")
        if error is not None and not isinstance(error, str):
            raise HistoryFormatError(f"error {error!r}")
        wall = o.get("wall")
        if isinstance(wall, bool) or not isinstance(wall, int | float):
            raise HistoryFormatError(f"wall {wall!r}")
        return cls(
            index=_get(o, "index", int),
            time=_get(o, "time", int),
            wall=float(wall),
            process=process,
            type=op_type,
            f=f,
            value=_value_from_json(f, o.get("value")),
            error=error,
        )


def _value_json(v: OpValue) -> Json:
    if isinstance(v, Send):
        out: dict[str, Json] = {"topic": v.topic, "partition": v.partition, "key": v.key}
        out["value"] = v.value
        return out if v.offset is None else {**out, "offset": v.offset}
    if isinstance(v, Poll):
        reads: list[Json] = [
            {
                "topic": r.topic,
                "partition": r.partition,
                "records": [[offset, value] for offset, value in r.records],
            }
            for r in v.reads
        ]
        return {"final": v.final, "reads": reads}
    if isinstance(v, Partitions):
        return {
            "partitions": [{"topic": tp.topic, "partition": tp.partition} for tp in v.partitions]
        }
    if isinstance(v, Fault):
        return {"kind": v.kind, "targets": list(v.targets), "note": v.note}
    return None


def _value_from_json(f: F, raw: object) -> OpValue:
    if _VALUE_TYPES[f] is None:
        if raw is not None:
            raise HistoryFormatError(f"{f} carries no value, got {raw!r}")
        return None
    v = _dict(raw, f"{f} value")
    if f is F.SEND:
        topic, partition, key = (
            _get(v, "topic", str),
            _opt(v, "partition", int),
            _opt(v, "key", str),
        )
        return Send(topic, partition, key, _get(v, "value", str), _opt(v, "offset", int))
    if f is F.POLL:
        final = v.get("final", False)
        if not isinstance(final, bool):
            raise HistoryFormatError(f"final {final!r}")
        return Poll(reads=tuple(_read(r) for r in _get(v, "reads", list)), final=final)
    if f in (F.ASSIGN, F.SEEK):
        return Partitions(tuple(_tp(p) for p in _get(v, "partitions", list)))
    targets = _get(v, "targets", list)
    if not all(isinstance(t, str) for t in targets):
        raise HistoryFormatError(f"targets {targets!r}")
    return Fault(_get(v, "kind", str), tuple(str(t) for t in targets), _opt(v, "note", str) or "")


def _read(raw: object) -> PartitionRead:
    r = _dict(raw, "read")
    records: list[tuple[int, str]] = []
    for pair in _get(r, "records", list):
        if not (isinstance(pair, list) and len(pair) == 2):
            raise HistoryFormatError(f"record {pair!r}: expected [offset, value]")
        offset, value = pair
        if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(value, str):
            raise HistoryFormatError(f"record {pair!r}: expected [offset, value]")
        records.append((offset, value))
    return PartitionRead(_get(r, "topic", str), _get(r, "partition", int), tuple(records))


def _tp(raw: object) -> TopicPartition:
    p = _dict(raw, "partition")
    return TopicPartition(_get(p, "topic", str), _get(p, "partition", int))


def _dict(raw: object, what: str) -> dict[str, object]:
    if not isinstance(raw, dict):
        raise HistoryFormatError(f"{what}: expected an object, got {raw!r}")
    return raw


def _get(o: Mapping[str, object], name: str, kind: type[_T]) -> _T:
    v = o.get(name)
    if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
        raise HistoryFormatError(f"{name}: expected {kind.__name__}, got {v!r}")
    return v


def _opt(o: Mapping[str, object], name: str, kind: type[_T]) -> _T | None:
    return None if o.get(name) is None else _get(o, name, kind)


class Recorder:
    """Numbers operations and stamps their times; subclasses decide where they go.

    Safe to call from several threads.  The convenience methods record one operation of
    each type; the process's invocation must be recorded before its completion.
    """

    def __init__(
        self,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock_ns = clock_ns
        self._wall_clock = wall_clock
        self._origin = clock_ns()
        self._lock = threading.Lock()
        self._next_index = 0

    def record(
        self,
        process: Process,
        op_type: OpType,
        f: F,
        value: OpValue = None,
        error: str | None = None,
    ) -> Op:
        """Record one operation now and return it."""
        with self._lock:
            op = Op(
                index=self._next_index,
                time=self._clock_ns() - self._origin,
                wall=self._wall_clock(),
                process=process,
                type=op_type,
                f=f,
                value=value,
                error=error,
            )
            self._emit(op)
            self._next_index += 1
            return op

    def invoke(self, process: Process, f: F, value: OpValue = None) -> Op:
        """Record an invocation."""
        return self.record(process, OpType.INVOKE, f, value)

    def ok(self, process: Process, f: F, value: OpValue = None) -> Op:
        """Record a completion that took effect."""
        return self.record(process, OpType.OK, f, value)

    def fail(self, process: Process, f: F, value: OpValue = None, error: str | None = None) -> Op:
        """Record a completion that definitely did not take effect."""
        return self.record(process, OpType.FAIL, f, value, error)

    def info(self, process: Process, f: F, value: OpValue = None, error: str | None = None) -> Op:
        """Record a completion whose outcome is unknown (or a nemesis event)."""
        return self.record(process, OpType.INFO, f, value, error)

    def _emit(self, op: Op) -> None:
        raise NotImplementedError


class MemoryHistory(Recorder):
    """A recorder that keeps its operations in :attr:`ops`."""

    def __init__(
        self,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock_ns=clock_ns, wall_clock=wall_clock)
        self.ops: list[Op] = []

    def _emit(self, op: Op) -> None:
        self.ops.append(op)


class HistoryWriter(Recorder):
    """A recorder that writes a JSON Lines history file, flushing every line.

    A flushed line survives a crash of this process; a line cut short by one is dropped
    by :func:`read_history`.  Creates (or replaces) the file.
    """

    def __init__(
        self,
        path: Path,
        *,
        clock_ns: Callable[[], int] = time.monotonic_ns,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock_ns=clock_ns, wall_clock=wall_clock)
        self.path = path
        self._file = path.open("w", encoding="utf-8")

    def _emit(self, op: Op) -> None:
        self._file.write(json.dumps(op.to_json(), separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@attrs.frozen(slots=True)
class History:
    """A history read from a file."""

    ops: tuple[Op, ...]
    torn_tail: bool = False
    """The last line was cut short (the recording process crashed) and was dropped."""

    def __iter__(self) -> Iterator[Op]:
        return iter(self.ops)

    def __len__(self) -> int:
        return len(self.ops)


def write_history(path: Path, ops: Iterable[Op]) -> None:
    """Write ``ops`` as a JSON Lines history (replacing ``path``)."""
    with path.open("w", encoding="utf-8") as out:
        for op in ops:
            out.write(json.dumps(op.to_json(), separators=(",", ":")) + "\n")


def read_history(path: Path) -> History:
    """The operations of a JSON Lines history.

    A last line without its newline that does not parse is a torn write and is dropped
    (:attr:`History.torn_tail`); any other bad line raises :class:`HistoryFormatError`
    naming it.  Blank lines are ignored.
    """
    return parse_history(path.read_text(encoding="utf-8"), name=str(path))


def parse_history(text: str, *, name: str = "<history>") -> History:
    """The operations of JSON Lines ``text`` (see :func:`read_history`)."""
    lines = text.split("\n")
    tail = lines.pop()  # after the last newline: "" when the text ends with one
    ops = [_parse_line(line, name, n) for n, line in enumerate(lines, 1) if line.strip()]
    if tail.strip():
        try:
            ops.append(_parse_line(tail, name, len(lines) + 1))
        except HistoryFormatError:
            return History(tuple(ops), torn_tail=True)
    return History(tuple(ops))


def _parse_line(line: str, name: str, n: int) -> Op:
    try:
        return Op.from_json(json.loads(line))
    except (json.JSONDecodeError, HistoryFormatError) as e:
        raise HistoryFormatError(f"{name}:{n}: {e}") from None


@attrs.frozen(slots=True)
class FaultWindow:
    """A fault in effect: from the nemesis's fault op to the heal that ended it."""

    kind: str
    targets: tuple[str, ...]
    start_ns: int
    end_ns: int | None
    """``None`` if the history ends before the heal."""


def fault_windows(ops: Sequence[Op]) -> list[FaultWindow]:
    """The nemesis's faults with their durations, for shading plots.

    A fault starts at its first operation (invocation or completion) and ends at the
    completion of the next heal of the same kind whose targets include its own (a heal
    without targets heals every fault of its kind).  One pass over ``ops``.
    """
    windows: list[FaultWindow] = []
    open_: dict[tuple[str, tuple[str, ...]], tuple[int, int]] = {}  # -> (start_ns, slot)
    for op in ops:
        if op.process != NEMESIS or not isinstance(op.value, Fault):
            continue
        kind, targets = op.value.kind, op.value.targets
        if op.f is F.FAULT and (kind, targets) not in open_:
            open_[kind, targets] = (op.time, len(windows))
            windows.append(FaultWindow(kind, targets, op.time, None))
        elif op.f is F.HEAL and op.type is not OpType.INVOKE:
            healed = [
                k for k in open_ if k[0] == kind and (not targets or set(k[1]) <= set(targets))
            ]
            for k in healed:
                start, slot = open_.pop(k)
                windows[slot] = FaultWindow(kind, k[1], start, op.time)
    return windows
