"""FrameReader and the request header: splitting a byte stream into frames, limits, the
v1/v2 header layouts, and random or mutated bytes (only FrameError may escape)."""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.wire.framing import (
    DEFAULT_MAX_FRAME_BYTES,
    FrameError,
    FrameReader,
    RequestHeader,
    encode_frame,
    is_flexible,
    parse_request_header,
)
from tests.wire.strategies import mutated, valid_request_frames

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def test_whole_frames_come_out_in_order() -> None:
    reader = FrameReader()
    wire = encode_frame(b"one") + encode_frame(b"") + encode_frame(b"three")
    assert reader.feed(wire) == [b"one", b"", b"three"]
    assert reader.buffered == 0


def test_partial_frames_are_buffered_until_complete() -> None:
    reader = FrameReader()
    wire = encode_frame(b"hello") + encode_frame(b"world")
    assert reader.feed(wire[:2]) == []  # half a length
    assert reader.feed(wire[2:7]) == []  # length and one byte
    assert reader.buffered == 7
    assert reader.feed(wire[7:11]) == [b"hello"]
    assert reader.feed(wire[11:]) == [b"world"]
    assert reader.buffered == 0


def test_byte_at_a_time_and_reused_input_buffers() -> None:
    reader = FrameReader()
    wire = encode_frame(b"abc") + encode_frame(b"defgh")
    scratch = bytearray(1)
    out: list[bytes] = []
    for byte in wire:
        scratch[0] = byte
        out += reader.feed(memoryview(scratch))  # the caller reuses its buffer
        scratch[0] = 0
    assert out == [b"abc", b"defgh"]
    assert reader.buffered == 0


def test_negative_length_is_rejected() -> None:
    with pytest.raises(FrameError):
        FrameReader().feed(struct.pack(">i", -1))


def test_length_above_the_maximum_is_rejected_before_the_body_arrives() -> None:
    reader = FrameReader()
    with pytest.raises(FrameError):
        reader.feed(struct.pack(">i", DEFAULT_MAX_FRAME_BYTES + 1))
    # Exactly the maximum is allowed: the reader waits for the body.
    assert FrameReader().feed(struct.pack(">i", DEFAULT_MAX_FRAME_BYTES)) == []


def test_custom_maximum() -> None:
    reader = FrameReader(max_frame_bytes=4)
    assert reader.feed(encode_frame(b"1234")) == [b"1234"]
    with pytest.raises(FrameError):
        reader.feed(encode_frame(b"12345"))


@FUZZ
@given(
    payloads=st.lists(st.binary(max_size=40), max_size=6),
    cuts=st.lists(st.integers(0, 300), max_size=8),
)
def test_any_split_of_a_stream_yields_the_same_frames(
    payloads: list[bytes], cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(p) for p in payloads)
    bounds = sorted({min(c, len(wire)) for c in cuts} | {0, len(wire)})
    reader = FrameReader()
    out: list[bytes] = []
    for a, b in itertools.pairwise(bounds):
        out += reader.feed(memoryview(wire)[a:b])
    assert out == payloads
    assert reader.buffered == 0


@FUZZ
@given(chunks=st.lists(st.binary(max_size=64), max_size=6))
def test_random_bytes_give_frames_or_frame_error(chunks: list[bytes]) -> None:
    reader = FrameReader(max_frame_bytes=1 << 20)
    try:
        for chunk in chunks:
            for frame in reader.feed(chunk):
                assert len(frame) <= 1 << 20
    except FrameError:
        pass


# --- request header ------------------------------------------------------------------


def _header_v1(key: int, version: int, corr: int, client: bytes | None) -> bytes:
    raw = struct.pack(">hhi", key, version, corr)
    return raw + (
        struct.pack(">h", -1) if client is None else struct.pack(">h", len(client)) + client
    )


def test_header_v1_of_a_non_flexible_request() -> None:
    frame = _header_v1(3, 1, 42, b"me") + b"BODY"  # Metadata v1
    header, offset = parse_request_header(frame)
    assert header == RequestHeader(3, 1, 42, "me")
    assert frame[offset:] == b"BODY"


def test_header_v2_skips_tagged_fields_even_unknown_ones() -> None:
    # Metadata v9 is flexible: header v2; two tagged fields (tag 0, 3 bytes; tag 7, 0 bytes).
    tags = bytes([2, 0, 3]) + b"xyz" + bytes([7, 0])
    frame = _header_v1(3, 9, 7, None) + tags + b"BODY"
    header, offset = parse_request_header(frame)
    assert header == RequestHeader(3, 9, 7, None)
    assert frame[offset:] == b"BODY"


def test_any_negative_client_id_length_reads_as_null_like_kafka() -> None:
    frame = struct.pack(">hhih", 18, 0, 1, -5)
    assert parse_request_header(frame) == (RequestHeader(18, 0, 1, None), 10)


def test_unknown_api_key_and_too_new_version_are_read_as_header_v1() -> None:
    for key, version in [(999, 0), (18, 99), (-1, -1)]:
        assert is_flexible(key, version) is None
        frame = _header_v1(key, version, 5, b"c") + b"\x01\x02"
        header, offset = parse_request_header(frame)
        assert header == RequestHeader(key, version, 5, "c")
        assert offset == 11


def test_flexibility_comes_from_kio() -> None:
    assert is_flexible(18, 2) is False
    assert is_flexible(18, 3) is True
    assert is_flexible(3, 8) is False
    assert is_flexible(3, 9) is True
    assert is_flexible(0, 9) is True


def test_invalid_utf8_client_id_is_replaced_not_fatal() -> None:
    header, _ = parse_request_header(_header_v1(18, 0, 1, b"\xff\xfe"))
    assert header.client_id == "\ufffd\ufffd"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\x00\x12\x00\x00\x00\x00\x00",  # cut inside the correlation id
        b"\x00\x12\x00\x00\x00\x00\x00\x01\x00",  # cut inside the client id length
        _header_v1(18, 0, 1, b"abc")[:-1],  # client id runs past the frame
        _header_v1(3, 9, 1, b""),  # flexible, tagged-field count missing
        _header_v1(3, 9, 1, b"") + bytes([1, 0, 9]) + b"ab",  # tagged field cut short
        _header_v1(3, 9, 1, b"") + b"\xff\xff\xff\xff\xff\x01",  # varint too long
    ],
)
def test_malformed_headers_raise_frame_error(frame: bytes) -> None:
    with pytest.raises(FrameError):
        parse_request_header(frame)


@FUZZ
@given(frame=st.binary(max_size=64))
def test_random_headers_parse_or_raise_frame_error(frame: bytes) -> None:
    try:
        header, offset = parse_request_header(frame)
    except FrameError:
        return
    assert 10 <= offset <= len(frame)
    assert struct.unpack_from(">hhi", frame) == (
        header.api_key,
        header.api_version,
        header.correlation_id,
    )


@FUZZ
@given(data=st.data())
def test_mutated_valid_frames_parse_or_raise_frame_error(data: st.DataObject) -> None:
    wire = data.draw(valid_request_frames())
    frame = data.draw(mutated(wire[4:]))
    try:
        _, offset = parse_request_header(frame)
    except FrameError:
        return
    assert offset <= len(frame)
