"""The ConsumerProtocol bytes a consumer group carries through the coordinator, decoded.

The group coordinator treats protocol metadata (JoinGroup) and assignments (SyncGroup) as
opaque bytes; for the protocol type ``consumer`` the Java client fills them with
``ConsumerProtocolSubscription`` and ``ConsumerProtocolAssignment`` structs.  This module
owns their layout so the spec can read them where Kafka reads them (the subscribed topics
that decide offset expiry, KIP-496) and where the spec checks assignments
(``GroupAssignmentExclusive``).

Layout (``clients/src/main/resources/common/message/ConsumerProtocol*.json``): an int16
version, then a non-flexible struct: arrays are int32-counted, strings int16-length,
bytes int32-length with -1 for null.

- Subscription v0: topics ``[]string``, user_data ``nullable bytes``; v1 adds
  owned_partitions ``[]{topic string, partitions []int32}``; v2 adds generation_id
  ``int32``; v3 adds rack_id ``nullable string``.
- Assignment v0-v3: assigned_partitions ``[]{topic string, partitions []int32}``,
  user_data ``nullable bytes``.

As Kafka does, a version newer than the newest known one is read with the newest layout;
trailing bytes are ignored.  Decoders raise :class:`ConsumerProtocolError` on malformed
input; :func:`assigned_partitions` and :func:`subscribed_topics` are the total forms the
spec uses (``None`` when the bytes cannot be read).
"""

from __future__ import annotations

import struct

import attrs

from spec.state import TopicPartition

PROTOCOL_TYPE = "consumer"
SUBSCRIPTION_MAX_VERSION = 3
ASSIGNMENT_MAX_VERSION = 3


class ConsumerProtocolError(ValueError):
    """The bytes are not a ConsumerProtocol struct (Kafka's ``SchemaException``)."""


@attrs.frozen(slots=True)
class Subscription:
    """What a consumer sends as its JoinGroup protocol metadata."""

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned_partitions: tuple[TopicPartition, ...] = ()
    generation_id: int = -1
    rack_id: str | None = None
    version: int = 0


@attrs.frozen(slots=True)
class Assignment:
    """What the leader sends per member in SyncGroup, and the member receives back."""

    partitions: tuple[TopicPartition, ...]
    user_data: bytes | None = None
    version: int = 0


class _Reader:
    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self._pos + n > len(self._buf):
            raise ConsumerProtocolError("truncated ConsumerProtocol struct")
        out = self._buf[self._pos : self._pos + n]
        self._pos += n
        return out

    def int16(self) -> int:
        return int(struct.unpack(">h", self._take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self._take(4))[0])

    def nullable_string(self) -> str | None:
        n = self.int16()
        if n == -1:
            return None
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConsumerProtocolError("string is not UTF-8") from e

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise ConsumerProtocolError("null in a non-nullable string")
        return s

    def nullable_bytes(self) -> bytes | None:
        n = self.int32()
        return None if n == -1 else self._take(n)

    def count(self) -> int:
        n = self.int32()
        if n < 0:
            raise ConsumerProtocolError("null in a non-nullable array")
        return n

    def topic_partitions(self) -> tuple[TopicPartition, ...]:
        out: list[TopicPartition] = []
        for _ in range(self.count()):
            topic = self.string()
            out.extend(TopicPartition(topic, self.int32()) for _ in range(self.count()))
        return tuple(out)


def _version(r: _Reader) -> int:
    v = r.int16()
    if v < 0:
        raise ConsumerProtocolError(f"unsupported ConsumerProtocol version {v}")
    return v


def decode_subscription(data: bytes) -> Subscription:
    """Read a ConsumerProtocol Subscription (JoinGroup protocol metadata)."""
    r = _Reader(data)
    version = _version(r)
    v = min(version, SUBSCRIPTION_MAX_VERSION)
    topics = tuple(r.string() for _ in range(r.count()))
    user_data = r.nullable_bytes()
    owned = r.topic_partitions() if v >= 1 else ()
    generation = r.int32() if v >= 2 else -1
    rack = r.nullable_string() if v >= 3 else None
    return Subscription(topics, user_data, owned, generation, rack, version)


def decode_assignment(data: bytes) -> Assignment:
    """Read a ConsumerProtocol Assignment (SyncGroup member assignment)."""
    r = _Reader(data)
    version = _version(r)
    partitions = r.topic_partitions()
    return Assignment(partitions, r.nullable_bytes(), version)


def _w_string(out: list[bytes], s: str | None) -> None:
    if s is None:
        out.append(struct.pack(">h", -1))
        return
    raw = s.encode("utf-8")
    out.append(struct.pack(">h", len(raw)) + raw)


def _w_bytes(out: list[bytes], b: bytes | None) -> None:
    out.append(struct.pack(">i", -1) if b is None else struct.pack(">i", len(b)) + b)


def _w_topic_partitions(out: list[bytes], tps: tuple[TopicPartition, ...]) -> None:
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    out.append(struct.pack(">i", len(by_topic)))
    for topic, parts in by_topic.items():
        _w_string(out, topic)
        out.append(struct.pack(">i", len(parts)) + b"".join(struct.pack(">i", p) for p in parts))


def encode_subscription(sub: Subscription) -> bytes:
    """Write ``sub`` at ``sub.version`` (fields the version lacks are left out)."""
    v = sub.version
    out = [struct.pack(">hi", v, len(sub.topics))]
    for t in sub.topics:
        _w_string(out, t)
    _w_bytes(out, sub.user_data)
    if v >= 1:
        _w_topic_partitions(out, sub.owned_partitions)
    if v >= 2:
        out.append(struct.pack(">i", sub.generation_id))
    if v >= 3:
        _w_string(out, sub.rack_id)
    return b"".join(out)


def encode_assignment(asg: Assignment) -> bytes:
    """Write ``asg`` (the layout is the same in every version)."""
    out = [struct.pack(">h", asg.version)]
    _w_topic_partitions(out, asg.partitions)
    _w_bytes(out, asg.user_data)
    return b"".join(out)


def assigned_partitions(data: bytes) -> frozenset[TopicPartition] | None:
    """The partitions an assignment gives its member; ``None`` if the bytes are not an
    Assignment.  Empty bytes (what the coordinator sends a member the leader left out)
    assign nothing."""
    if not data:
        return frozenset()
    try:
        return frozenset(decode_assignment(data).partitions)
    except ConsumerProtocolError:
        return None


def subscribed_topics(metadata: bytes) -> frozenset[str] | None:
    """The topics a subscription names; ``None`` if the bytes are not a Subscription."""
    try:
        return frozenset(decode_subscription(metadata).topics)
    except ConsumerProtocolError:
        return None
