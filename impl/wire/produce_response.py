"""Produce responses (v3 to v9) written straight from the per-partition answers.

Every produce request is answered, so its response is on the broker's hottest path; kio's
generic entities and writer cost several times what these few fields need.  The layout is
Kafka's ProduceResponse schema: per topic its name and per partition index, error code,
base offset, log append time (-1: CreateTime topics), log start offset (v5+), record
errors (always empty) and error message (v8+); throttle time last.  v9 is flexible
(compact arrays and strings, empty tagged fields, response header v1).  The tests check
the bytes against kio's encoding of the same answers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from impl.wire.framing import RequestHeader

FIRST_VERSION = 3
FLEXIBLE_VERSION = 9
LAST_VERSION = 9
NO_APPEND_TIME = -1

# One partition's answer: (index, error code, base offset, log start offset, message).
PartitionAnswer = tuple[int, int, int, int, str | None]

_FRAME_START = struct.Struct(">ii")  # frame length (patched at the end), correlation id
_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_PARTITION = struct.Struct(">ihqq")  # index, error code, base offset, log append time
_I64 = struct.Struct(">q")
_NO_THROTTLE = _I32.pack(0)


def _uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _string(out: bytearray, value: str | None, flexible: bool) -> None:
    if value is None:
        if flexible:
            out.append(0)
        else:
            out += _I16.pack(-1)
        return
    data = value.encode()
    if flexible:
        _uvarint(out, len(data) + 1)
    else:
        out += _I16.pack(len(data))
    out += data


def _count(out: bytearray, n: int, flexible: bool) -> None:
    if flexible:
        _uvarint(out, n + 1)
    else:
        out += _I32.pack(n)


def encode_produce_response(
    header: RequestHeader, results: Sequence[tuple[str, Sequence[PartitionAnswer]]]
) -> bytes:
    """The whole response frame (length prefix included) answering the Produce request
    ``header`` with ``results``: per topic, its name and its partitions' answers."""
    version = header.api_version
    if not FIRST_VERSION <= version <= LAST_VERSION:
        raise ValueError(f"produce response v{version} is not written here")
    flexible = version >= FLEXIBLE_VERSION
    out = bytearray(_FRAME_START.pack(0, header.correlation_id))
    if flexible:
        out.append(0)  # response header v1: no tagged fields
    _count(out, len(results), flexible)
    for name, answers in results:
        _string(out, name, flexible)
        _count(out, len(answers), flexible)
        for index, code, base_offset, log_start_offset, message in answers:
            out += _PARTITION.pack(index, code, base_offset, NO_APPEND_TIME)
            if version >= 5:
                out += _I64.pack(log_start_offset)
            if version >= 8:
                _count(out, 0, flexible)  # record errors
                _string(out, message, flexible)
            if flexible:
                out.append(0)
        if flexible:
            out.append(0)
    out += _NO_THROTTLE
    if flexible:
        out.append(0)
    _I32.pack_into(out, 0, len(out) - 4)
    return bytes(out)
