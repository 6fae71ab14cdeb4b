"""Random and mutated-valid bytes into the broker's decode path and the client's: only
FrameError and DecodeError may come out, never another exception."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.wire import codec
from impl.wire.framing import FrameError, FrameReader, RequestHeader, parse_request_header
from tests.wire.strategies import (
    broker_api_versions,
    mutated,
    responses,
    valid_request_frames,
)

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=250,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_versions = st.sampled_from(broker_api_versions())


def _broker_decode(wire: bytes) -> None:
    """What the broker does with bytes off a socket."""
    for frame in FrameReader().feed(wire):
        header, offset = parse_request_header(frame)
        codec.decode_request(header, frame, offset)


@FUZZ
@given(kv=_versions, body=st.binary(max_size=80))
def test_random_bodies_decode_or_raise_decode_error(kv: tuple[int, int], body: bytes) -> None:
    with contextlib.suppress(codec.DecodeError):
        codec.decode_request(RequestHeader(kv[0], kv[1], 0, None), body, 0)


@FUZZ
@given(data=st.data())
def test_mutated_requests_raise_only_codec_errors(data: st.DataObject) -> None:
    wire = data.draw(valid_request_frames())
    with contextlib.suppress(FrameError, codec.DecodeError):
        _broker_decode(data.draw(mutated(wire)))


@FUZZ
@given(data=st.data())
def test_mutated_request_bodies_raise_only_decode_error(data: st.DataObject) -> None:
    """The header left intact so every mutation reaches kio's reader."""
    frame = FrameReader().feed(data.draw(valid_request_frames()))[0]
    header, offset = parse_request_header(frame)
    body = data.draw(mutated(frame[offset:]))
    with contextlib.suppress(codec.DecodeError):
        codec.decode_request(header, frame[:offset] + body, offset)


@FUZZ
@given(data=st.data())
def test_mutated_responses_raise_only_decode_error(data: st.DataObject) -> None:
    api_key, version = data.draw(_versions)
    entity = data.draw(responses(api_key, version))
    wire = codec.encode_response(RequestHeader(api_key, version, 1, None), entity)
    frame = data.draw(mutated(wire[4:]))
    with contextlib.suppress(codec.DecodeError):
        codec.decode_response(api_key, version, frame)


@FUZZ
@given(kv=_versions, frame=st.binary(max_size=80))
def test_random_responses_raise_only_decode_error(kv: tuple[int, int], frame: bytes) -> None:
    with contextlib.suppress(codec.DecodeError):
        codec.decode_response(kv[0], kv[1], frame)
