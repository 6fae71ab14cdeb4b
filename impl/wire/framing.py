"""Kafka's framing and request header: size-delimited frames and the header every request
starts with.

A frame is a 4-byte big-endian signed length followed by that many bytes.  The reader is
sans-IO: callers feed it whatever the socket gave and get back every complete frame payload.

Request header v1 (``api_key int16 | api_version int16 | correlation_id int32 | client_id
nullable string``) and v2 (the same followed by tagged fields), v2 when the request's API
version is flexible.  Requests that kio has no schema for (unknown key or version) are read
as v1 so the broker can still answer or close with the correlation id in hand.
"""

from __future__ import annotations

import functools
import struct

import attrs
from kio.schema.index import api_key_map, schema_name_map
from kio.static.constants import EntityType

# socket.request.max.bytes, Kafka's default: the largest request a broker accepts.
DEFAULT_MAX_FRAME_BYTES = 104857600

_LENGTH = struct.Struct(">i")
_HEADER_V1 = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length
_MIN_HEADER = _HEADER_V1.size


class FrameError(ValueError):
    """Bytes that cannot be a Kafka frame or request header: the connection must close."""


class FrameReader:
    """Splits a byte stream into frame payloads (without their length prefix).

    A frame that arrives in pieces is kept as the list of pieces and joined once, when it
    is complete: a large record batch is copied once, not once per piece."""

    __slots__ = ("_chunks", "_pending", "_size", "_stub", "max_frame_bytes")

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._stub = b""  # fewer than 4 bytes: the start of a length prefix
        self._chunks: list[bytes] = []  # an incomplete frame, length prefix included
        self._pending = 0  # bytes in _chunks
        self._size = 0  # payload size of the incomplete frame

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame are waiting for the rest."""
        return len(self._stub) + self._pending

    def _check(self, size: int) -> None:
        if size < 0 or size > self.max_frame_bytes:
            raise FrameError(
                f"frame length {size} outside 0..{self.max_frame_bytes} (socket.request.max.bytes)"
            )

    def feed(self, data: bytes | bytearray | memoryview) -> list[bytes]:
        """Every frame completed by ``data``, in order; raises FrameError on a negative
        length or one above ``max_frame_bytes`` (the reader is then unusable)."""
        frames: list[bytes] = []
        if self._stub:
            data = self._stub + data
            self._stub = b""
        with memoryview(data) as view:
            pos = 0
            if self._chunks:
                need = 4 + self._size - self._pending
                if len(view) < need:
                    self._chunks.append(bytes(data))
                    self._pending += len(view)
                    return frames
                first, *middle = self._chunks
                frames.append(b"".join([memoryview(first)[4:], *middle, view[:need]]))
                self._chunks = []
                self._pending = 0
                pos = need
            end = len(view)
            while end - pos >= 4:
                (size,) = _LENGTH.unpack_from(view, pos)
                self._check(size)
                if end - pos - 4 < size:
                    # bytes are immutable: the whole of ``data`` is kept, not copied
                    kept = data if pos == 0 and isinstance(data, bytes) else view[pos:].tobytes()
                    self._chunks = [kept]
                    self._pending = end - pos
                    self._size = size
                    return frames
                frames.append(view[pos + 4 : pos + 4 + size].tobytes())
                pos += 4 + size
            self._stub = view[pos:].tobytes()
        return frames


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` with its 4-byte length prefix."""
    return _LENGTH.pack(len(payload)) + payload


@attrs.frozen(slots=True)
class RequestHeader:
    """The header fields of one request (header v1 or v2)."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


@functools.cache
def is_flexible(api_key: int, version: int) -> bool | None:
    """Whether kio's schema of this request version is flexible (compact encodings, tagged
    fields, request header v2); None when kio has no such API key or version."""
    name = api_key_map.get(api_key)
    if name is None:
        return None
    entry = schema_name_map[name].get(version)
    if entry is None or EntityType.request not in entry:
        return None
    from kio.index import load_request_schema  # noqa: PLC0415 (imports schemas lazily)

    return bool(load_request_schema(api_key, version).__flexible__)


def read_unsigned_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int]:
    """The unsigned varint at ``buf[pos:]`` (at most 5 bytes) and the position after it;
    FrameError when truncated or too long."""
    value = 0
    for shift in range(0, 35, 7):
        if pos >= len(buf):
            raise FrameError("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
    raise FrameError("varint longer than 5 bytes")


def skip_tagged_fields(buf: bytes | bytearray | memoryview, pos: int) -> int:
    """The position after the tagged-field section at ``buf[pos:]`` (FrameError when
    malformed): Kafka skips tags it does not know, and the headers define none."""
    count, pos = read_unsigned_varint(buf, pos)
    for _ in range(count):
        _tag, pos = read_unsigned_varint(buf, pos)
        size, pos = read_unsigned_varint(buf, pos)
        pos += size
        if pos > len(buf):
            raise FrameError("tagged field runs past the frame")
    return pos


def parse_request_header(frame: bytes | bytearray | memoryview) -> tuple[RequestHeader, int]:
    """The request header at the start of a frame payload and where the body starts.

    Header v2 when kio says the request is flexible, v1 otherwise (also for API keys and
    versions kio does not know).  FrameError when the header is cut short or malformed.
    """
    if len(frame) < _MIN_HEADER:
        raise FrameError(f"request header needs at least {_MIN_HEADER} bytes, got {len(frame)}")
    api_key, api_version, correlation_id, id_len = _HEADER_V1.unpack_from(frame, 0)
    pos = _MIN_HEADER
    client_id: str | None
    if id_len < 0:  # Kafka reads any negative length as null
        client_id = None
    else:
        if pos + id_len > len(frame):
            raise FrameError("client id runs past the frame")
        # Java's String constructor replaces malformed UTF-8 rather than failing.
        client_id = bytes(frame[pos : pos + id_len]).decode("utf-8", "replace")
        pos += id_len
    header = RequestHeader(api_key, api_version, correlation_id, client_id)
    if is_flexible(api_key, api_version):
        pos = skip_tagged_fields(frame, pos)
    return header, pos
