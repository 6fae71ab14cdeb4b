"""The operations the conformance harness performs on a target, and what it observes.

An operation is one Kafka request as the harness means it, in the model's terms: topics by
their logical names (``t0``, ``t1``: each example maps them to fresh names on the target),
idempotent producers by their slot (``p0``: the producer id the target handed out to that
slot).  An observation is the part of the answer the spec speaks about, normalised so that
what the target answered and what the spec allows compare with ``==`` (an error answer
keeps only its error code; fetched batches become records with their offsets).

Both round-trip through JSON, which is how a divergence's operations are stored for replay.
The consumer group operations and answers are ``harness.conform_group_ops``'s.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from harness.client import Error, error_name
from harness.conform_cluster_ops import (
    CLUSTER_KINDS,
    ClusterObservation,
    ClusterOperation,
    cluster_op_from_json,
)
from harness.conform_faults import RestartBroker, Restarted, corrupt
from harness.conform_group_ops import (
    GROUP_KINDS,
    GroupAnswer,
    GroupOperation,
    GroupStep,
    SlotAnswer,
    group_op_from_json,
)
from harness.conform_retention import AwaitRetention, Configs
from impl.wire import records as wire_records
from spec.actions import ACKS_ALL, EARLIEST_TIMESTAMP
from spec.state import TopicPartition

LOGICAL_TOPIC = re.compile(r"t\d+")
INVALID_TOPIC_NAMES = (".", "..", "bad name", "bad/name", "x" * 250)
"""Topic names Kafka refuses (INVALID_TOPIC_EXCEPTION), used literally on the target."""

Records = tuple[tuple[bytes | None, bytes], ...]
"""(key, value) of each record of a batch."""


# --- operations ----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class CreateTopic:
    """CreateTopics of one topic: ``partitions`` (-1: the broker's num.partitions) with
    replication factor 1, or with ``explicit`` the replica assignment the spec computes;
    ``configs``: topic-level settings (``harness.conform_retention``)."""

    topic: str
    partitions: int
    explicit: bool = False
    configs: Configs = ()

    def describe(self) -> str:
        how = "explicit assignment" if self.explicit else "replication factor 1"
        settings = "".join(f" {k}={v}" for k, v in self.configs)
        return f"CreateTopics {self.topic} partitions={self.partitions} ({how}){settings}"


@attrs.frozen(slots=True)
class Batch:
    """One record batch of a Produce request: for ``tp``, uncompressed or gzip, plain or
    from the idempotent producer in ``producer`` slot (-1: none) with its epoch and base
    sequence; ``corrupt``: with a byte flipped after it was built (its CRC fails)."""

    tp: TopicPartition
    records: Records
    producer: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    gzip: bool = False
    corrupt: bool = False

    def build(self, producer_id: int, timestamp: int) -> bytes:
        """The batch's bytes with the target's ``producer_id`` for the slot (-1: none)."""
        if self.corrupt:
            return corrupt(attrs.evolve(self, corrupt=False).build(producer_id, timestamp))
        return wire_records.build_batch(
            self.records,
            timestamp=timestamp,
            producer_id=producer_id,
            producer_epoch=self.producer_epoch if producer_id >= 0 else -1,
            base_sequence=self.base_sequence if producer_id >= 0 else -1,
            compression=wire_records.GZIP if self.gzip else wire_records.NONE,
        )

    def describe(self) -> str:
        shown = ", ".join(_record_text(k, v) for k, v in self.records)
        idem = (
            f" p{self.producer} epoch={self.producer_epoch} seq={self.base_sequence}"
            if self.producer >= 0
            else ""
        )
        flags = (" gzip" if self.gzip else "") + (" CORRUPT (CRC fails)" if self.corrupt else "")
        return f"{self.tp} [{shown}]{flags}{idem}"


@attrs.frozen(slots=True)
class Produce:
    """One Produce request with one batch per partition, at ``acks`` (0, 1, -1; others are
    invalid and must be refused)."""

    batches: tuple[Batch, ...]
    acks: int = ACKS_ALL

    def describe(self) -> str:
        return f"Produce acks={self.acks} " + "; ".join(b.describe() for b in self.batches)


@attrs.frozen(slots=True)
class Fetch:
    """A consumer's Fetch of ``tp`` at ``offset``."""

    tp: TopicPartition
    offset: int

    def describe(self) -> str:
        return f"Fetch {self.tp} at offset {self.offset}"


@attrs.frozen(slots=True)
class ListOffsets:
    """ListOffsets of ``tp``: -2 earliest, -1 latest."""

    tp: TopicPartition
    timestamp: int

    def describe(self) -> str:
        which = "earliest" if self.timestamp == EARLIEST_TIMESTAMP else "latest"
        return f"ListOffsets {self.tp} {which}"


@attrs.frozen(slots=True)
class InitProducerId:
    """InitProducerId for the idempotent producer in ``slot``."""

    slot: int

    def describe(self) -> str:
        return f"InitProducerId for p{self.slot}"


@attrs.frozen(slots=True)
class Metadata:
    """Metadata of ``topics``, without creating unknown ones."""

    topics: tuple[str, ...]

    def describe(self) -> str:
        return f"Metadata {', '.join(self.topics)}"


Operation = (
    CreateTopic
    | Produce
    | Fetch
    | ListOffsets
    | InitProducerId
    | Metadata
    | RestartBroker
    | AwaitRetention
    | GroupOperation
    | ClusterOperation
)


def _record_text(key: bytes | None, value: bytes | None) -> str:
    def show(b: bytes | None) -> str:
        if b is None:
            return "null"
        if not b:
            return "''"
        return b.hex() if len(b) <= 8 else f"{b[:6].hex()}..({len(b)}B)"

    return show(value) if key is None else f"{show(key)}={show(value)}"


# --- observations --------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Closed:
    """The target closed the connection (Kafka's answer to a failed acks=0 produce)."""

    def describe(self) -> str:
        return "connection closed by the broker"


@attrs.frozen(slots=True)
class NoAnswer:
    """No answer, as an acks=0 produce gets, and the connection stayed open."""

    def describe(self) -> str:
        return "no answer (acks=0), connection open"


@attrs.frozen(slots=True)
class Failed:
    """The conversation failed otherwise: no answer in time, or an undecodable one."""

    reason: str

    def describe(self) -> str:
        return self.reason


@attrs.frozen(slots=True)
class ErrorAnswer:
    """An answer that is only an error code (CreateTopics)."""

    error: Error

    def describe(self) -> str:
        return error_name(self.error)


@attrs.frozen(slots=True)
class PartitionAnswer:
    """A Produce answer for one partition (offsets -1 when it failed)."""

    tp: TopicPartition
    error: Error
    base_offset: int = -1
    log_start_offset: int = -1

    def describe(self) -> str:
        if self.error:
            return f"{self.tp} {error_name(self.error)}"
        return f"{self.tp} base offset {self.base_offset} (log start {self.log_start_offset})"


@attrs.frozen(slots=True)
class ProduceAnswer:
    partitions: tuple[PartitionAnswer, ...]

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.partitions)


@attrs.frozen(slots=True)
class FetchedRecord:
    """A record as a consumer sees it: offset, key, value, and from its batch the
    producer id, epoch and sequence and the partition leader epoch."""

    offset: int
    key: bytes | None
    value: bytes | None
    producer_id: int = -1
    producer_epoch: int = -1
    sequence: int = -1
    leader_epoch: int = -1


@attrs.frozen(slots=True)
class FetchAnswer:
    """A Fetch answer for one partition (high watermark and log start -1 on error)."""

    error: Error
    high_watermark: int = -1
    log_start_offset: int = -1
    records: tuple[FetchedRecord, ...] = ()

    def describe(self) -> str:
        if self.error:
            return error_name(self.error)
        shown = ", ".join(f"{r.offset}:{_record_text(r.key, r.value)}" for r in self.records)
        return (
            f"high watermark {self.high_watermark}, log start {self.log_start_offset}, "
            f"records [{shown}]"
        )


@attrs.frozen(slots=True)
class OffsetAnswer:
    error: Error
    offset: int = -1

    def describe(self) -> str:
        return error_name(self.error) if self.error else f"offset {self.offset}"


@attrs.frozen(slots=True)
class ProducerIdAnswer:
    """InitProducerId: the error, whether the id is one the target never handed out
    before in this run, and the epoch."""

    error: Error
    fresh_id: bool = False
    producer_epoch: int = -1

    def describe(self) -> str:
        if self.error:
            return error_name(self.error)
        which = "a fresh" if self.fresh_id else "a REUSED"
        return f"{which} producer id, epoch {self.producer_epoch}"


@attrs.frozen(slots=True)
class PartitionInfo:
    partition: int
    error: Error
    leader: int = -1
    leader_epoch: int = -1
    replicas: tuple[int, ...] = ()
    isr: tuple[int, ...] = ()


@attrs.frozen(slots=True)
class TopicInfo:
    topic: str
    error: Error
    partitions: tuple[PartitionInfo, ...] = ()


@attrs.frozen(slots=True)
class MetadataAnswer:
    topics: tuple[TopicInfo, ...]

    def describe(self) -> str:
        parts = []
        for t in self.topics:
            if t.error:
                parts.append(f"{t.topic} {error_name(t.error)}")
                continue
            ps = ", ".join(
                f"{p.partition}: leader {p.leader} epoch {p.leader_epoch} "
                f"replicas {list(p.replicas)} isr {list(p.isr)}"
                if not p.error
                else f"{p.partition}: {error_name(p.error)}"
                for p in t.partitions
            )
            parts.append(f"{t.topic} {{{ps}}}")
        return "; ".join(parts)


Observation = (
    Closed
    | NoAnswer
    | Failed
    | ErrorAnswer
    | ProduceAnswer
    | FetchAnswer
    | OffsetAnswer
    | ProducerIdAnswer
    | MetadataAnswer
    | Restarted
    | GroupStep
    | SlotAnswer
    | GroupAnswer
    | ClusterObservation
)


# --- JSON ----------------------------------------------------------------------------------

_OPS: Mapping[str, type[Any]] = {
    "create_topic": CreateTopic,
    "produce": Produce,
    "fetch": Fetch,
    "list_offsets": ListOffsets,
    "init_producer_id": InitProducerId,
    "metadata": Metadata,
    "restart_broker": RestartBroker,
    "await_retention": AwaitRetention,
    **GROUP_KINDS,
    **CLUSTER_KINDS,
}
_KIND = {cls: kind for kind, cls in _OPS.items()}


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, TopicPartition):
        return [value.topic, value.partition]
    if attrs.has(type(value)):
        return {f.name: _to_json(getattr(value, f.name)) for f in attrs.fields(type(value))}
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    return value


def op_to_json(op: Operation) -> dict[str, Any]:
    """``op`` as a JSON object, ``{"op": kind, ...fields}``."""
    return {"op": _KIND[type(op)], **_to_json(op)}


def _bytes(v: Any) -> bytes | None:
    return None if v is None else bytes.fromhex(v["hex"])


def _tp(v: Any) -> TopicPartition:
    return TopicPartition(str(v[0]), int(v[1]))


def op_from_json(data: Mapping[str, Any]) -> Operation:
    """The operation ``op_to_json`` wrote (ValueError for an unknown kind)."""
    kind = data.get("op")
    if kind == "produce":
        batches = tuple(
            Batch(
                tp=_tp(b["tp"]),
                records=tuple((_bytes(k), _bytes(v) or b"") for k, v in b["records"]),
                producer=int(b["producer"]),
                producer_epoch=int(b["producer_epoch"]),
                base_sequence=int(b["base_sequence"]),
                gzip=bool(b["gzip"]),
                corrupt=bool(b.get("corrupt", False)),
            )
            for b in data["batches"]
        )
        return Produce(batches, int(data["acks"]))
    if kind in ("fetch", "list_offsets"):
        other = data["offset"] if kind == "fetch" else data["timestamp"]
        return _OPS[kind](_tp(data["tp"]), int(other))  # type: ignore[no-any-return]
    if kind == "create_topic":
        configs = tuple((str(k), str(v)) for k, v in data.get("configs", ()))
        return CreateTopic(
            str(data["topic"]), int(data["partitions"]), bool(data["explicit"]), configs
        )
    if kind == "await_retention":
        offset, goal, wait = (int(data[f]) for f in ("offset", "goal", "wait_ms"))
        return AwaitRetention(_tp(data["tp"]), offset, goal, wait)
    if kind == "init_producer_id":
        return InitProducerId(int(data["slot"]))
    if kind == "metadata":
        return Metadata(tuple(str(t) for t in data["topics"]))
    if kind == "restart_broker":
        return RestartBroker(int(data["broker"]))
    if isinstance(kind, str) and kind in GROUP_KINDS:
        return group_op_from_json(kind, data)
    if isinstance(kind, str) and kind in CLUSTER_KINDS:
        return cluster_op_from_json(kind, data)
    raise ValueError(f"unknown operation {kind!r}")


def observation_to_json(obs: Observation) -> dict[str, Any]:
    """``obs`` as JSON, with its one-line description (error codes by number)."""
    out: dict[str, Any] = {"kind": type(obs).__name__, "text": obs.describe()}
    out.update(_to_json(obs))
    return out


def physical_topic(namespace: str, topic: str) -> str:
    """The name of logical topic ``topic`` on the target (invalid names stay literal)."""
    return f"{namespace}{topic}" if LOGICAL_TOPIC.fullmatch(topic) else topic
