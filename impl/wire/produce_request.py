"""Produce requests (v3 to v9) read straight from the frame.

Every Produce request carries record batches of up to a few MiB; kio's generic reader
builds an entity per partition and copies each batch into a new ``bytes``.  This reader
builds only what the broker uses (``ProduceRequest``: acks, timeout, transactional id,
and per topic its partitions' indexes and batches) and leaves each batch in the frame: a
``memoryview`` of it, not a copy.

The layout is Kafka's ProduceRequest schema: transactional id (nullable string), acks
(int16), timeout (int32 ms), topics (array: name, partitions (array: index int32,
records nullable bytes)).  v9 is flexible: compact strings, arrays and bytes (unsigned
varint length + 1, 0 for null) and a tagged-field section after each partition, each
topic and the request.

It accepts and refuses exactly what ``codec.decode_request`` does (the tests check both
against each other on random valid and mutated requests), raising the same
``DecodeError``, so the broker closes the same connections; the one difference is a null
topic or partition array, which kio reads as None (the handler could not iterate it) and
this reader refuses.  Tagged fields are refused, as kio refuses them: Produce v9 defines
none.
"""

from __future__ import annotations

import datetime
import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from impl.wire.codec import DecodeError

if TYPE_CHECKING:
    from kio.static.protocol import Entity

FIRST_VERSION = 3
FLEXIBLE_VERSION = 9
LAST_VERSION = 9

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_ACKS_TIMEOUT = struct.Struct(">hi")
_PARTITION_LEGACY = struct.Struct(">ii")  # index, records length
_MIN_TOPIC_LEGACY = 6  # name length, partition count
_MIN_PARTITION_LEGACY = 8  # index, records length
_MAX_VARINT_BYTES = 5

Buffer = bytes | bytearray | memoryview


# One partition's data: its index and its records (a view into the frame, None if null).
ProducePartition = tuple[int, memoryview | None]
# One topic's data: its name and partitions.
ProduceTopic = tuple[str, tuple[ProducePartition, ...]]


class ProduceRequest(NamedTuple):
    """The fields of a Produce request the broker uses."""

    transactional_id: str | None
    acks: int
    timeout_ms: int
    topics: tuple[ProduceTopic, ...]


def decode_produce_request(version: int, frame: Buffer, pos: int) -> ProduceRequest:
    """The Produce request body of ``version`` at ``frame[pos:]`` (bytes after it are
    ignored, as ``codec.decode_request`` ignores them); DecodeError when malformed.
    The records are views of ``frame``."""
    if not FIRST_VERSION <= version <= LAST_VERSION:
        raise ValueError(f"produce request v{version} is not read here")
    view = memoryview(frame)
    try:
        if version >= FLEXIBLE_VERSION:
            return _read_flexible(view, pos)
        return _read_legacy(view, pos)
    except (struct.error, IndexError, UnicodeDecodeError) as e:
        raise DecodeError(f"{type(e).__name__}: {e}") from None


def from_entity(request: Entity) -> ProduceRequest:
    """A Produce request as kio decodes it (``codec.decode_request``), as this module
    reads it: DecodeError for a null topic or partition array."""
    req: Any = request
    if req.topic_data is None:
        raise DecodeError("null topic array")
    topics: list[ProduceTopic] = []
    for t in req.topic_data:
        if t.partition_data is None:
            raise DecodeError("null partition array")
        partitions: list[ProducePartition] = [
            (int(p.index), None if p.records is None else memoryview(p.records))
            for p in t.partition_data
        ]
        topics.append((str(t.name), tuple(partitions)))
    timeout_ms = req.timeout // datetime.timedelta(milliseconds=1)
    return ProduceRequest(req.transactional_id, int(req.acks), timeout_ms, tuple(topics))


def _text(buf: memoryview, pos: int, n: int) -> tuple[str, int]:
    end = pos + n
    if end > len(buf):
        raise DecodeError(f"string of {n} bytes runs past the frame")
    return str(buf[pos:end], "utf-8"), end


def _count_legacy(buf: memoryview, pos: int, item_size: int, what: str) -> int:
    count: int = _I32.unpack_from(buf, pos)[0]
    if count < 0:
        # -1 is a null array: kio reads it as None; the field is not nullable.
        raise DecodeError(f"{what} array length {count}")
    if count * item_size > len(buf) - pos - 4:
        raise DecodeError(f"{count} {what}s, only {len(buf) - pos - 4} bytes remaining")
    return count


def _read_legacy(buf: memoryview, pos: int) -> ProduceRequest:
    (n,) = _I16.unpack_from(buf, pos)
    pos += 2
    transactional_id: str | None = None
    if n >= 0:
        transactional_id, pos = _text(buf, pos, n)
    elif n != -1:
        raise DecodeError(f"transactional id length {n}")
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(buf, pos)
    pos += 6
    topic_count = _count_legacy(buf, pos, _MIN_TOPIC_LEGACY, "topic")
    pos += 4
    topics: list[ProduceTopic] = []
    for _ in range(topic_count):
        (n,) = _I16.unpack_from(buf, pos)
        if n < 0:
            raise DecodeError(f"topic name length {n}")
        name, pos = _text(buf, pos + 2, n)
        partition_count = _count_legacy(buf, pos, _MIN_PARTITION_LEGACY, "partition")
        pos += 4
        partitions: list[ProducePartition] = []
        for _ in range(partition_count):
            index, size = _PARTITION_LEGACY.unpack_from(buf, pos)
            pos += 8
            records: memoryview | None = None
            if size >= 0:
                end = pos + size
                if end > len(buf):
                    raise DecodeError(f"records of {size} bytes run past the frame")
                records = buf[pos:end]
                pos = end
            elif size != -1:
                raise DecodeError(f"records length {size}")
            partitions.append((index, records))
        topics.append((name, tuple(partitions)))
    return ProduceRequest(transactional_id, acks, timeout_ms, tuple(topics))


def _uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``buf[pos:]`` (at most 5 bytes, as Kafka's lengths) and the
    position after it."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    value = b & 0x7F
    for shift in range(7, 7 * _MAX_VARINT_BYTES, 7):
        pos += 1
        b = buf[pos]
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos + 1
    raise DecodeError(f"varint longer than {_MAX_VARINT_BYTES} bytes")


def _count_flexible(buf: memoryview, pos: int, what: str) -> tuple[int, int]:
    n, pos = _uvarint(buf, pos)
    if n == 0:
        raise DecodeError(f"null {what} array")  # kio: None; the field is not nullable
    if n - 1 > len(buf) - pos:
        raise DecodeError(f"{n - 1} {what}s, only {len(buf) - pos} bytes remaining")
    return n - 1, pos


def _no_tagged_fields(buf: memoryview, pos: int) -> int:
    if buf[pos] == 0:
        return pos + 1
    count, after = _uvarint(buf, pos)
    if count:
        raise DecodeError("tagged fields in a Produce request (v9 defines none)")
    return after  # zero written in more than one byte


def _read_flexible(buf: memoryview, pos: int) -> ProduceRequest:
    n, pos = _uvarint(buf, pos)
    transactional_id: str | None = None
    if n:
        transactional_id, pos = _text(buf, pos, n - 1)
    acks, timeout_ms = _ACKS_TIMEOUT.unpack_from(buf, pos)
    topic_count, pos = _count_flexible(buf, pos + 6, "topic")
    topics: list[ProduceTopic] = []
    for _ in range(topic_count):
        n, pos = _uvarint(buf, pos)
        if n == 0:
            raise DecodeError("null topic name")
        name, pos = _text(buf, pos, n - 1)
        partition_count, pos = _count_flexible(buf, pos, "partition")
        partitions: list[ProducePartition] = []
        for _ in range(partition_count):
            (index,) = _I32.unpack_from(buf, pos)
            n, pos = _uvarint(buf, pos + 4)
            records: memoryview | None = None
            if n:
                end = pos + n - 1
                if end > len(buf):
                    raise DecodeError(f"records of {n - 1} bytes run past the frame")
                records = buf[pos:end]
                pos = end
            pos = _no_tagged_fields(buf, pos)
            partitions.append((index, records))
        pos = _no_tagged_fields(buf, pos)
        topics.append((name, tuple(partitions)))
    _no_tagged_fields(buf, pos)
    return ProduceRequest(transactional_id, acks, timeout_ms, tuple(topics))
