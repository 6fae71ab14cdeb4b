"""The records of ``__consumer_offsets``: keys and values for committed offsets and for
group metadata, in Kafka's own layouts (so a Kafka tool could read our log), and the
values the coordinator hands to and gets back from the log.

Keys: OffsetCommitKey (versions 0 and 1: group, topic, partition) and GroupMetadataKey
(version 2: group).  Values: OffsetCommitValue (v3 written: offset, leader epoch,
metadata, commit timestamp; v1 when the commit carried a retention time, with its expire
timestamp; v0-v4 read) and GroupMetadataValue (v3 written, with the current state
timestamp and each member's group.instance.id; v0-v4 read).  A null value is a tombstone:
the offset, or the group, is gone."""

from __future__ import annotations

import struct
from typing import TypeAlias

import attrs


@attrs.frozen(slots=True)
class MemberRecord:
    """One member as GroupMetadataValue stores it."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@attrs.frozen(slots=True)
class GroupRecord:
    """A group's metadata as GroupMetadataValue stores it (written when a rebalance
    completes and when the group empties)."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    current_state_timestamp_ms: int
    members: tuple[MemberRecord, ...]


@attrs.frozen(slots=True)
class OffsetRecord:
    """One committed offset as OffsetCommitValue stores it."""

    offset: int
    leader_epoch: int  # -1: unknown
    metadata: str
    commit_timestamp_ms: int
    expire_timestamp_ms: int = -1  # only OffsetCommitValue v1 had it


# --- The codec: Kafka's layouts of __consumer_offsets keys and values ---------------------
#
# Every key and value starts with an int16 version.  Non-flexible versions (all but 4)
# write strings as int16 length + UTF-8 (-1: null), bytes as int32 length, arrays as
# int32 count; the flexible version 4 (Kafka 3.5+ can read it, 4.x writes it) uses
# unsigned-varint "compact" lengths (length + 1, 0: null) and a tagged-field section at
# the end of each struct.

OFFSET_COMMIT_KEY_VERSION = 1  # what Kafka writes (v0 has the same layout)
GROUP_METADATA_KEY_VERSION = 2
OFFSET_COMMIT_VALUE_VERSION = 3  # v1 when an expire timestamp is set (OffsetCommit v1-v4)
GROUP_METADATA_VALUE_VERSION = 3
_FLEXIBLE_VALUE_VERSION = 4

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")


class RecordCodecError(ValueError):
    """Bytes that are not a record of ``__consumer_offsets`` this codec can read."""


@attrs.frozen(slots=True)
class OffsetCommitKey:
    """The key of a committed offset: (group, topic, partition)."""

    group: str
    topic: str
    partition: int


@attrs.frozen(slots=True)
class GroupMetadataKey:
    """The key of a group's metadata."""

    group: str


RecordKey: TypeAlias = OffsetCommitKey | GroupMetadataKey


class _Writer:
    def __init__(self, version: int) -> None:
        self.out = bytearray(_I16.pack(version))

    def i32(self, n: int) -> None:
        self.out += _I32.pack(n)

    def i64(self, n: int) -> None:
        self.out += _I64.pack(n)

    def string(self, s: str | None) -> None:
        if s is None:
            self.out += _I16.pack(-1)
            return
        data = s.encode("utf-8")
        if len(data) > 0x7FFF:
            raise RecordCodecError(f"string of {len(data)} bytes is too long for an int16 length")
        self.out += _I16.pack(len(data)) + data

    def bytes_(self, b: bytes) -> None:
        self.out += _I32.pack(len(b)) + b


class _Reader:
    def __init__(self, data: bytes | memoryview) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.version = self._unpack(_I16)
        self.flexible = False

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise RecordCodecError("record runs past its end")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def _unpack(self, fmt: struct.Struct) -> int:
        value: int = fmt.unpack(self._take(fmt.size))[0]
        return value

    def i32(self) -> int:
        return self._unpack(_I32)

    def i64(self) -> int:
        return self._unpack(_I64)

    def uvarint(self) -> int:
        shift = n = 0
        while True:
            if shift > 28:
                raise RecordCodecError("unsigned varint longer than 5 bytes")
            b = self._take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def _length(self, width: int) -> int:
        """A string/bytes/array length (``width``: 2 or 4 bytes when not flexible); -1
        for null."""
        if self.flexible:
            return self.uvarint() - 1
        return self._unpack(_I16) if width == 2 else self.i32()

    def nullable_string(self) -> str | None:
        n = self._length(2)
        if n < 0:
            return None
        try:
            return self._take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordCodecError(f"string is not UTF-8: {e}") from None

    def string(self) -> str:
        s = self.nullable_string()
        if s is None:
            raise RecordCodecError("null where a string is required")
        return s

    def bytes_(self) -> bytes:
        n = self._length(4)
        return b"" if n < 0 else self._take(n)

    def array_length(self) -> int:
        n = self._length(4)
        if n < 0:
            raise RecordCodecError("null array")
        return n

    def tagged_fields(self) -> None:
        """Skip a flexible struct's tagged fields (none of them is read here)."""
        if self.flexible:
            for _ in range(self.uvarint()):
                self.uvarint()  # tag
                self._take(self.uvarint())

    def end(self) -> None:
        if self.pos != len(self.data):
            raise RecordCodecError(f"{len(self.data) - self.pos} bytes after the record")


def encode_offset_commit_key(group: str, topic: str, partition: int) -> bytes:
    """OffsetCommitKey v1: group, topic, partition."""
    w = _Writer(OFFSET_COMMIT_KEY_VERSION)
    w.string(group)
    w.string(topic)
    w.i32(partition)
    return bytes(w.out)


def encode_group_metadata_key(group: str) -> bytes:
    """GroupMetadataKey v2: group."""
    w = _Writer(GROUP_METADATA_KEY_VERSION)
    w.string(group)
    return bytes(w.out)


def decode_key(data: bytes | memoryview) -> RecordKey:
    """The key of a record of ``__consumer_offsets``; RecordCodecError for a key version
    this broker does not know (Kafka 3.7+'s consumer-group records, versions 3+)."""
    r = _Reader(data)
    key: RecordKey
    if r.version in (0, 1):
        key = OffsetCommitKey(r.string(), r.string(), r.i32())
    elif r.version == GROUP_METADATA_KEY_VERSION:
        key = GroupMetadataKey(r.string())
    else:
        raise RecordCodecError(f"unknown key version {r.version}")
    r.end()
    return key


def encode_offset_commit_value(record: OffsetRecord) -> bytes:
    """OffsetCommitValue v3 (offset, leader epoch, metadata, commit timestamp), or v1
    (offset, metadata, commit timestamp, expire timestamp) when the commit set an expire
    timestamp, as Kafka writes them."""
    if record.expire_timestamp_ms != -1:
        w = _Writer(1)
        w.i64(record.offset)
        w.string(record.metadata)
        w.i64(record.commit_timestamp_ms)
        w.i64(record.expire_timestamp_ms)
        return bytes(w.out)
    w = _Writer(OFFSET_COMMIT_VALUE_VERSION)
    w.i64(record.offset)
    w.i32(record.leader_epoch)
    w.string(record.metadata)
    w.i64(record.commit_timestamp_ms)
    return bytes(w.out)


def decode_offset_commit_value(data: bytes | memoryview | None) -> OffsetRecord | None:
    """OffsetCommitValue v0-v4; None for a tombstone (null value)."""
    if data is None:
        return None
    r = _Reader(data)
    if not 0 <= r.version <= _FLEXIBLE_VALUE_VERSION:
        raise RecordCodecError(f"unknown OffsetCommitValue version {r.version}")
    r.flexible = r.version >= _FLEXIBLE_VALUE_VERSION
    offset = r.i64()
    leader_epoch = r.i32() if r.version >= 3 else -1
    metadata = r.string()
    commit_timestamp = r.i64()
    expire_timestamp = r.i64() if r.version == 1 else -1
    r.tagged_fields()
    r.end()
    return OffsetRecord(offset, leader_epoch, metadata, commit_timestamp, expire_timestamp)


def encode_group_metadata_value(record: GroupRecord) -> bytes:
    """GroupMetadataValue v3: with the current state timestamp and each member's
    group.instance.id."""
    w = _Writer(GROUP_METADATA_VALUE_VERSION)
    w.string(record.protocol_type)
    w.i32(record.generation)
    w.string(record.protocol)
    w.string(record.leader)
    w.i64(record.current_state_timestamp_ms)
    w.i32(len(record.members))
    for m in record.members:
        w.string(m.member_id)
        w.string(m.group_instance_id)
        w.string(m.client_id)
        w.string(m.client_host)
        w.i32(m.rebalance_timeout_ms)
        w.i32(m.session_timeout_ms)
        w.bytes_(m.subscription)
        w.bytes_(m.assignment)
    return bytes(w.out)


def decode_group_metadata_value(data: bytes | memoryview | None) -> GroupRecord | None:
    """GroupMetadataValue v0-v4; None for a tombstone.  Before v1 a member has no
    rebalance timeout (Kafka reads it as the session timeout); before v2 there is no
    current state timestamp (-1); before v3 no group.instance.id (None)."""
    if data is None:
        return None
    r = _Reader(data)
    if not 0 <= r.version <= _FLEXIBLE_VALUE_VERSION:
        raise RecordCodecError(f"unknown GroupMetadataValue version {r.version}")
    r.flexible = r.version >= _FLEXIBLE_VALUE_VERSION
    protocol_type = r.string()
    generation = r.i32()
    protocol = r.nullable_string()
    leader = r.nullable_string()
    state_timestamp = r.i64() if r.version >= 2 else -1
    members = []
    for _ in range(r.array_length()):
        member_id = r.string()
        instance_id = r.nullable_string() if r.version >= 3 else None
        client_id = r.string()
        client_host = r.string()
        rebalance_timeout = r.i32() if r.version >= 1 else None
        session_timeout = r.i32()
        subscription = r.bytes_()
        assignment = r.bytes_()
        r.tagged_fields()
        members.append(
            MemberRecord(
                member_id=member_id,
                group_instance_id=instance_id,
                client_id=client_id,
                client_host=client_host,
                rebalance_timeout_ms=session_timeout
                if rebalance_timeout is None
                else rebalance_timeout,
                session_timeout_ms=session_timeout,
                subscription=subscription,
                assignment=assignment,
            )
        )
    r.tagged_fields()
    r.end()
    return GroupRecord(
        protocol_type=protocol_type,
        generation=generation,
        protocol=protocol,
        leader=leader,
        current_state_timestamp_ms=state_timestamp,
        members=tuple(members),
    )
