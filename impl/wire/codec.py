"""Request and response bodies through kio's schemas: the broker's decode/encode and the
client's encode/decode, each a whole frame or a frame payload.

Header versions follow Kafka: requests use header v2 when flexible and v1 otherwise;
responses use header v1 when flexible and v0 otherwise, except ApiVersions responses, which
always use header v0 so that a client that does not yet know the broker's versions can read
them (KIP-511).  kio's readers and writers are looked up once per (api key, version).

Decoding raises only DecodeError, whatever the bytes: every kio failure is wrapped, bodies
must end exactly where the schema does, and flexible bodies pass ``guard.check_body`` first
(kio 0.6 aborts the process on some array lengths).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping
from typing import Any, cast

from kio.index import load_request_schema, load_response_schema
from kio.schema.index import api_key_map, schema_name_map
from kio.serial import entity_reader, entity_writer
from kio.static.constants import EntityType
from kio.static.protocol import Payload, RequestPayload, ResponsePayload

from impl.wire.framing import FrameError, RequestHeader, skip_tagged_fields
from impl.wire.guard import check_body

API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35  # ErrorCode.UNSUPPORTED_VERSION

_I16 = struct.Struct(">h")
_I32 = struct.Struct(">i")
_RESPONSE_V0 = struct.Struct(">ii")  # frame length, correlation id
_REQUEST_V1 = struct.Struct(">ihhi")  # frame length, api key, api version, correlation id
_API_VERSION_V0 = struct.Struct(">hhh")

_Reader = Callable[[bytes | bytearray | memoryview, int], tuple[Any, int]]
_Writer = Callable[["_FrameParts", Any], None]  # kio calls only write()


class DecodeError(ValueError):
    """A frame whose body does not match the schema of its API key and version."""


class UnknownApiError(DecodeError):
    """kio has no schema for the API key and version (also a DecodeError)."""


def request_versions(api_key: int) -> tuple[int, int]:
    """The (min, max) request versions kio has for ``api_key``; KeyError if none."""
    versions = [
        v
        for v, entry in schema_name_map[api_key_map[api_key]].items()
        if EntityType.request in entry
    ]
    if not versions:
        raise KeyError(api_key)
    return min(versions), max(versions)


@functools.cache
def request_type(api_key: int, version: int) -> type[RequestPayload]:
    """kio's request class; UnknownApiError when it has none."""
    try:
        return load_request_schema(api_key, version)
    except Exception as e:  # kio's UnknownAPIKey / UnknownEntity (RuntimeError)
        raise UnknownApiError(f"no request schema for api key {api_key} v{version}") from e


@functools.cache
def response_type(api_key: int, version: int) -> type[ResponsePayload]:
    """kio's response class; UnknownApiError when it has none."""
    try:
        return load_response_schema(api_key, version)
    except Exception as e:
        raise UnknownApiError(f"no response schema for api key {api_key} v{version}") from e


@functools.cache
def _request_reader(api_key: int, version: int) -> _Reader:
    return cast(_Reader, entity_reader(request_type(api_key, version)))


@functools.cache
def _response_reader(api_key: int, version: int) -> _Reader:
    return cast(_Reader, entity_reader(response_type(api_key, version)))


@functools.cache
def _writer(entity_type: type[Payload]) -> _Writer:
    return cast(_Writer, entity_writer(entity_type))


def response_header_version(api_key: int, version: int) -> int:
    """0 or 1: the response header version Kafka uses for this API version."""
    if api_key == API_VERSIONS_KEY:
        return 0
    return 1 if response_type(api_key, version).__flexible__ else 0


def _read_body(
    entity_type: type[Any],
    reader: _Reader,
    frame: bytes | bytearray | memoryview,
    pos: int,
    *,
    trailing_ok: bool = False,
) -> Any:
    try:
        check_body(entity_type, frame, pos)  # kio would abort the process on some lengths
        entity, size = reader(frame, pos)
    except Exception as e:  # kio raises its own errors, ValueError, UnicodeDecodeError, ...
        raise DecodeError(f"{type(e).__name__}: {e}") from e
    if pos + size != len(frame) and not trailing_ok:
        raise DecodeError(f"{len(frame) - pos - size} bytes after the body")
    return entity


def decode_request(
    header: RequestHeader, frame: bytes | bytearray | memoryview, body_offset: int
) -> RequestPayload:
    """The request body of ``frame`` (a frame payload) after its header; DecodeError when
    kio has no schema for it or the bytes do not hold the schema's fields.

    Bytes after the body are ignored, as Kafka's request parser ignores them: librdkafka
    sends Metadata v12 requests with three bytes more than the schema has."""
    key, version = header.api_key, header.api_version
    body = _read_body(
        request_type(key, version),
        _request_reader(key, version),
        frame,
        body_offset,
        trailing_ok=True,
    )
    return cast(RequestPayload, body)


LARGE_WRITE_BYTES = 16384
"""Writes at least this long (record batches) are kept by reference, not copied."""

Buffer = bytes | bytearray | memoryview


class _FrameParts:
    """A write target for kio's writers that copies small writes into the current piece
    and keeps large ones (a Fetch response's records) by reference, so a response of
    several MiB is not copied (nor allocated) once more before it reaches the socket."""

    __slots__ = ("_tail", "parts", "size")

    def __init__(self, prefix: bytes) -> None:
        self._tail = bytearray(prefix)
        self.parts: list[Buffer] = [self._tail]
        self.size = len(prefix)

    def write(self, data: Buffer) -> int:
        n = len(data)
        if n >= LARGE_WRITE_BYTES:
            self.parts.append(data)
            self._tail = bytearray()
            self.parts.append(self._tail)
        else:
            self._tail += data
        self.size += n
        return n


def _frame_parts(prefix: bytes, tagged: bool, entity: Payload) -> list[Buffer]:
    """A whole frame as consecutive pieces: length placeholder already in ``prefix``
    (patched here), header tagged fields when ``tagged``, then the body."""
    out = _FrameParts(prefix)
    if tagged:
        out.write(b"\x00")  # no tagged fields
    _writer(type(entity))(out, entity)
    first = out.parts[0]
    assert isinstance(first, bytearray)
    _I32.pack_into(first, 0, out.size - 4)
    return [part for part in out.parts if len(part)]


def _check_answers(header: RequestHeader, entity: Payload) -> None:
    if entity.__type__ is not EntityType.response or (
        entity.__api_key__,
        entity.__version__,
    ) != (header.api_key, header.api_version):
        raise ValueError(
            f"{type(entity).__name__} v{entity.__version__} does not answer api key "
            f"{header.api_key} v{header.api_version}"
        )


def encode_response_parts(header: RequestHeader, entity: Payload) -> list[Buffer]:
    """The whole response frame answering ``header`` as pieces to write in order (large
    byte fields such as record batches are the entity's own objects, not copies)."""
    _check_answers(header, entity)
    tagged = header.api_key != API_VERSIONS_KEY and entity.__flexible__
    return _frame_parts(_RESPONSE_V0.pack(0, header.correlation_id), tagged, entity)


def encode_response(header: RequestHeader, entity: Payload) -> bytes:
    """The whole response frame (length, response header, body) answering ``header``."""
    return b"".join(encode_response_parts(header, entity))


def encode_request(entity: Payload, correlation_id: int, client_id: str | None) -> bytes:
    """The whole request frame (length, request header v1 or v2, body)."""
    if entity.__type__ is not EntityType.request:
        raise ValueError(f"{type(entity).__name__} is not a request")
    prefix = _REQUEST_V1.pack(0, entity.__api_key__, entity.__version__, correlation_id)
    if client_id is None:
        prefix += _I16.pack(-1)
    else:
        raw = client_id.encode()
        prefix += _I16.pack(len(raw)) + raw
    return b"".join(_frame_parts(prefix, entity.__flexible__, entity))


def decode_response(
    api_key: int, api_version: int, frame: bytes | bytearray | memoryview
) -> tuple[int, ResponsePayload]:
    """(correlation id, body) of a response frame payload to an ``api_key`` request of
    ``api_version``.  An ApiVersions response that does not parse at the version asked
    for is read as v0, as Kafka's clients do: a broker answers a too-new ApiVersions
    request with UNSUPPORTED_VERSION in the v0 layout."""
    if len(frame) < 4:
        raise DecodeError("response shorter than its correlation id")
    (correlation_id,) = _I32.unpack_from(frame, 0)
    pos = 4
    if response_header_version(api_key, api_version) == 1:
        try:
            pos = skip_tagged_fields(frame, pos)
        except FrameError as e:
            raise DecodeError(str(e)) from e
    try:
        body = _read_body(
            response_type(api_key, api_version), _response_reader(api_key, api_version), frame, pos
        )
    except DecodeError:
        if api_key != API_VERSIONS_KEY or api_version == 0:
            raise
        body = _read_body(response_type(api_key, 0), _response_reader(api_key, 0), frame, pos)
    return correlation_id, cast(ResponsePayload, body)


def api_versions_unsupported_v0(
    correlation_id: int, supported: Mapping[int, tuple[int, int]]
) -> bytes:
    """The whole frame of an ApiVersions v0 response with UNSUPPORTED_VERSION and the
    ``supported`` {api key: (min, max)} list, Kafka's answer to a too-new ApiVersions."""
    body = bytearray(_I32.pack(correlation_id))
    body += _I16.pack(UNSUPPORTED_VERSION)
    body += _I32.pack(len(supported))
    for key in sorted(supported):
        low, high = supported[key]
        body += _API_VERSION_V0.pack(key, low, high)
    return _I32.pack(len(body)) + body
