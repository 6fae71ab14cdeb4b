"""Every request and response of the broker's APIs, at every version kio has, survives
encode -> frame -> decode unchanged, through the same functions broker and client use."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.wire import codec, framing
from tests.wire.strategies import broker_api_versions, requests, responses

ROUND_TRIP = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=5,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VERSIONS = broker_api_versions()


def _id(kv: tuple[int, int]) -> str:
    return f"key{kv[0]}-v{kv[1]}"


@pytest.mark.parametrize(("api_key", "version"), VERSIONS, ids=map(_id, VERSIONS))
@ROUND_TRIP
@given(data=st.data(), correlation_id=st.integers(-(2**31), 2**31 - 1))
def test_request_round_trip(
    api_key: int, version: int, data: st.DataObject, correlation_id: int
) -> None:
    entity: Any = data.draw(requests(api_key, version))
    client_id = data.draw(st.none() | st.text(max_size=8))
    wire = codec.encode_request(entity, correlation_id, client_id)
    reader = framing.FrameReader()
    [frame] = reader.feed(wire)
    assert reader.buffered == 0
    header, offset = framing.parse_request_header(frame)
    assert header == framing.RequestHeader(api_key, version, correlation_id, client_id)
    assert codec.decode_request(header, frame, offset) == entity


@pytest.mark.parametrize(("api_key", "version"), VERSIONS, ids=map(_id, VERSIONS))
@ROUND_TRIP
@given(data=st.data(), correlation_id=st.integers(-(2**31), 2**31 - 1))
def test_response_round_trip(
    api_key: int, version: int, data: st.DataObject, correlation_id: int
) -> None:
    entity: Any = data.draw(responses(api_key, version))
    header = framing.RequestHeader(api_key, version, correlation_id, "c")
    wire = codec.encode_response(header, entity)
    [frame] = framing.FrameReader().feed(wire)
    assert codec.decode_response(api_key, version, frame) == (correlation_id, entity)
