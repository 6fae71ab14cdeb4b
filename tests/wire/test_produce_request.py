"""The hand-written Produce request reader against kio's, for every version the broker
serves: the same fields from random valid requests that kio encodes, and the same verdict
(equal fields, or DecodeError) on random and mutated bodies."""

from __future__ import annotations

import datetime
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.wire import codec
from impl.wire.framing import FrameReader, RequestHeader, parse_request_header
from impl.wire.produce_request import (
    FIRST_VERSION,
    LAST_VERSION,
    ProduceRequest,
    decode_produce_request,
    from_entity,
)
from tests.wire.strategies import mutated, requests

VERSIONS = range(FIRST_VERSION, LAST_VERSION + 1)
CHECKS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_versions = st.sampled_from(list(VERSIONS))
_MS = datetime.timedelta(milliseconds=1)

# What both readers' results are compared as: (transactional id, acks, timeout ms,
# ((topic, ((index, records bytes or None), ...)), ...)).
Plain = tuple[Any, ...]


def plain_ours(request: ProduceRequest) -> Plain:
    return (
        request.transactional_id,
        request.acks,
        request.timeout_ms,
        tuple(
            (name, tuple((i, None if r is None else bytes(r)) for i, r in parts))
            for name, parts in request.topics
        ),
    )


def plain_kio(entity: Any) -> Plain | None:
    """kio's reading through ``from_entity``; None for a null topic or partition array,
    which kio reads as None and this module refuses."""
    try:
        return plain_ours(from_entity(entity))
    except codec.DecodeError:
        return None


def frame_of(entity: Any) -> tuple[RequestHeader, bytes, int]:
    frame = FrameReader().feed(codec.encode_request(entity, 7, "client"))[0]
    header, offset = parse_request_header(frame)
    return header, frame, offset


def same_verdict(version: int, frame: bytes, offset: int) -> None:
    """Both readers accept ``frame`` with equal fields, or both refuse it."""
    try:
        theirs = plain_kio(codec.decode_request(RequestHeader(0, version, 7, None), frame, offset))
    except codec.DecodeError:
        theirs = None
    try:
        ours: Plain | None = plain_ours(decode_produce_request(version, frame, offset))
    except codec.DecodeError:
        ours = None
    assert ours == theirs


_requests = _versions.flatmap(lambda v: requests(0, v))


@CHECKS
@given(entity=_requests)
def test_same_fields_as_kio(entity: Any) -> None:
    header, frame, offset = frame_of(entity)
    ours = plain_ours(decode_produce_request(header.api_version, frame, offset))
    assert ours == plain_kio(codec.decode_request(header, frame, offset))
    # and as the entity kio encoded, field by field
    assert ours == (
        entity.transactional_id,
        entity.acks,
        entity.timeout // _MS,
        tuple(
            (t.name, tuple((p.index, p.records) for p in t.partition_data))
            for t in entity.topic_data
        ),
    )


@CHECKS
@given(entity=_requests)
def test_records_are_views_of_the_frame(entity: Any) -> None:
    header, frame, offset = frame_of(entity)
    for _, partitions in decode_produce_request(header.api_version, frame, offset).topics:
        for _, records in partitions:
            assert records is None or records.obj is frame


@CHECKS
@given(data=st.data())
def test_mutated_bodies_get_the_same_verdict(data: st.DataObject) -> None:
    header, frame, offset = frame_of(data.draw(_requests))
    body = data.draw(mutated(frame[offset:]))
    same_verdict(header.api_version, frame[:offset] + body, offset)


@CHECKS
@given(version=_versions, body=st.binary(max_size=60))
def test_random_bodies_get_the_same_verdict(version: int, body: bytes) -> None:
    same_verdict(version, body, 0)


def _legacy_body(topics: bytes) -> bytes:
    return struct.pack(">hhi", -1, 1, 1000) + topics


def _one_partition(records: bytes) -> bytes:
    """A legacy topics array: topic "t", partition 0 with ``records`` (length included)."""
    return struct.pack(">ih", 1, 1) + b"t" + struct.pack(">ii", 1, 0) + records


def _flexible_body(topics: bytes, tail: bytes = b"\x00") -> bytes:
    return b"\x00" + struct.pack(">hi", 1, 1000) + topics + tail


# Hand-made bodies at the edges of the layout: (version, body).
EDGES = {
    "empty": (3, b""),
    "null transactional id, no topics": (3, _legacy_body(struct.pack(">i", 0))),
    "negative array length": (5, _legacy_body(struct.pack(">i", -2))),
    "transactional id length -2": (3, struct.pack(">hhii", -2, 1, 0, 0)),
    "null topic name": (3, _legacy_body(struct.pack(">ih", 1, -1))),
    "invalid utf-8 topic name": (4, _legacy_body(b"\x00\x00\x00\x01\x00\x01\xff" + bytes(4))),
    "surrogate in a name": (8, _legacy_body(b"\x00\x00\x00\x01\x00\x03\xed\xa0\x80" + bytes(4))),
    "records": (3, _legacy_body(_one_partition(struct.pack(">i", 3) + b"abc"))),
    "null records": (3, _legacy_body(_one_partition(struct.pack(">i", -1)))),
    "records length -2": (3, _legacy_body(_one_partition(struct.pack(">i", -2)))),
    "records past the frame": (3, _legacy_body(_one_partition(struct.pack(">i", 9) + b"abc"))),
    "huge topic count": (6, _legacy_body(struct.pack(">i", 2**31 - 1))),
    "bytes after the body": (7, _legacy_body(struct.pack(">i", 0)) + b"xyz"),
    "flexible: no topics": (9, _flexible_body(b"\x01")),
    "flexible: null records": (9, _flexible_body(b"\x02\x02t\x02" + bytes(4) + b"\x00\x00\x00")),
    "flexible: records": (9, _flexible_body(b"\x02\x02t\x02" + bytes(4) + b"\x04abc\x00\x00")),
    "flexible: null topic name": (9, _flexible_body(b"\x02\x00\x01\x00")),
    "flexible: tagged field": (9, _flexible_body(b"\x01", b"\x01\x00\x02ab")),
    "flexible: tagged field past the end": (9, _flexible_body(b"\x01", b"\x01\x00\x09ab")),
    "flexible: overlong varint": (9, _flexible_body(b"\x81\x80\x80\x80\x00")),
    "flexible: 6-byte varint": (9, _flexible_body(b"\x81\x80\x80\x80\x80\x00")),
    "flexible: huge topic count": (9, _flexible_body(b"\xff\xff\xff\xff\x0f")),
    "flexible: no tagged fields at the end": (9, _flexible_body(b"\x01", b"")),
    "flexible: bytes after the body": (9, _flexible_body(b"\x01", b"\x00zz")),
}


@pytest.mark.parametrize("case", sorted(EDGES))
def test_edges_get_the_same_verdict(case: str) -> None:
    version, body = EDGES[case]
    same_verdict(version, body, 0)


@pytest.mark.parametrize(
    ("version", "body"),
    [(3, _legacy_body(struct.pack(">i", -1))), (9, _flexible_body(b"\x00"))],
    ids=["legacy", "flexible"],
)
def test_null_topic_array_is_refused_where_kio_reads_none(version: int, body: bytes) -> None:
    theirs: Any = codec.decode_request(RequestHeader(0, version, 1, None), body, 0)
    assert theirs.topic_data is None
    with pytest.raises(codec.DecodeError, match="null topic array"):
        from_entity(theirs)
    with pytest.raises(codec.DecodeError, match="array"):
        decode_produce_request(version, body, 0)


@pytest.mark.parametrize("version", [FIRST_VERSION - 1, LAST_VERSION + 1])
def test_other_versions_are_not_read_here(version: int) -> None:
    with pytest.raises(ValueError, match="not read here"):
        decode_produce_request(version, _legacy_body(struct.pack(">i", 0)), 0)
