"""A bounds check of flexible message bodies before kio's native reader sees them.

kio 0.6's native reader reserves memory for a compact array from its declared length
before reading any element: a 5-byte length of 2**32 - 1 asks for 32 GiB and the process
aborts (Rust's allocation failure is not an exception).  One malformed request would kill
the broker.  Kafka's own generated readers refuse an array whose length exceeds the bytes
remaining ("Tried to allocate a collection of size N, but there are only M bytes
remaining"); ``check_body`` does the same walk over the schema, without building anything,
and raises ``BoundsError`` where Kafka would refuse.  Once it passes, every array really has
its elements in the frame, so kio allocates at most a few bytes per frame byte.

Non-flexible (legacy) arrays need no guard: kio checks their lengths itself.  Only the
structure is walked; values are left to kio.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any, Union, get_args, get_origin

Buffer = bytes | bytearray | memoryview
# (buffer, position, end) -> the position after the item
Skip = Callable[[Buffer, int, int], int]

_FIXED = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_VARIABLE = frozenset({"string", "bytes", "records"})


class BoundsError(ValueError):
    """A length in the body points past the end of the frame."""


def _uvarint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if pos >= end:
            raise BoundsError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise BoundsError("varint longer than 5 bytes")


def _advance(pos: int, n: int, end: int) -> int:
    pos += n
    if pos > end:
        raise BoundsError("field runs past the end of the frame")
    return pos


def _compact_bytes(buf: Buffer, pos: int, end: int) -> int:
    n, pos = _uvarint(buf, pos, end)
    return _advance(pos, n - 1, end) if n else pos


def _fixed(width: int) -> Skip:
    def skip(buf: Buffer, pos: int, end: int) -> int:
        return _advance(pos, width, end)

    return skip


def _array(item: Skip | int) -> Skip:
    def skip(buf: Buffer, pos: int, end: int) -> int:
        n, pos = _uvarint(buf, pos, end)
        if n == 0:  # null array
            return pos
        count = n - 1
        if count > end - pos:
            raise BoundsError(f"array of {count} items, only {end - pos} bytes remaining")
        if isinstance(item, int):
            return _advance(pos, count * item, end)
        for _ in range(count):
            pos = item(buf, pos, end)
        return pos

    return skip


def _nullable_struct(inner: Skip) -> Skip:
    def skip(buf: Buffer, pos: int, end: int) -> int:
        if pos >= end:
            raise BoundsError("truncated nullable struct marker")
        if buf[pos] == 0xFF:  # int8 -1: null (KIP-893)
            return pos + 1
        return inner(buf, pos + 1, end)

    return skip


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (types.UnionType, Union):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(get_args(tp))
    return tp, False


def _field_skip(field: dataclasses.Field[Any], tagged: bool) -> Skip | int:
    """An int for a fixed-width field, otherwise a skip function."""
    tp, optional = _unwrap_optional(field.type)
    if tagged:
        optional = False  # a tagged field's presence is its tag (as kio encodes it)
    if get_origin(tp) is tuple:
        inner, _ = _unwrap_optional(get_args(tp)[0])
        item: Skip | int
        if dataclasses.is_dataclass(inner):
            item = struct_skip(inner)  # type: ignore[arg-type]
        else:
            kafka_type = field.metadata["kafka_type"]
            item = _FIXED.get(kafka_type, _compact_bytes)
        return _array(item)
    if dataclasses.is_dataclass(tp):
        inner_skip = struct_skip(tp)  # type: ignore[arg-type]
        return _nullable_struct(inner_skip) if optional else inner_skip
    kafka_type = field.metadata["kafka_type"]
    if kafka_type in _FIXED:
        return _FIXED[kafka_type]
    if kafka_type in _VARIABLE:
        return _compact_bytes
    raise TypeError(f"unknown kafka_type {kafka_type!r} in {field.name}")


_STRUCT_SKIPS: dict[type[Any], Skip] = {}


def struct_skip(entity_type: type[Any]) -> Skip:
    """The skip function of a flexible kio entity: its fields, then its tagged fields
    (built once per entity type)."""
    cached = _STRUCT_SKIPS.get(entity_type)
    if cached is None:
        cached = _STRUCT_SKIPS[entity_type] = _build_struct_skip(entity_type)
    return cached


def _build_struct_skip(entity_type: type[Any]) -> Skip:
    steps: list[Skip | int] = []
    tags: dict[int, Skip] = {}
    for field in dataclasses.fields(entity_type):
        tag = field.metadata.get("tag")
        step = _field_skip(field, tagged=tag is not None)
        if tag is not None:
            tags[int(tag)] = _fixed(step) if isinstance(step, int) else step
        elif isinstance(step, int) and steps and isinstance(steps[-1], int):
            steps[-1] += step  # merge runs of fixed-width fields
        else:
            steps.append(step)
    plan = tuple(steps)

    def skip(buf: Buffer, pos: int, end: int) -> int:
        for step in plan:
            pos = _advance(pos, step, end) if isinstance(step, int) else step(buf, pos, end)
        count, pos = _uvarint(buf, pos, end)
        for _ in range(count):
            tag, pos = _uvarint(buf, pos, end)
            size, pos = _uvarint(buf, pos, end)
            field_end = _advance(pos, size, end)
            known = tags.get(tag)
            if known is not None:
                known(buf, pos, field_end)
            pos = field_end
        return pos

    return skip


def check_body(entity_type: type[Any], buf: Buffer, pos: int) -> None:
    """Raise BoundsError unless every length in the flexible body of ``entity_type`` at
    ``buf[pos:]`` stays inside ``buf``; non-flexible bodies are not walked."""
    if entity_type.__flexible__:
        struct_skip(entity_type)(buf, pos, len(buf))
