"""Hypothesis strategies for kio entities, built from the schema dataclasses' fields, and
the API versions the broker needs."""

from __future__ import annotations

import dataclasses
import datetime
import types
from typing import Any, Union, get_args, get_origin

from hypothesis import strategies as st
from kio.schema.errors import ErrorCode

from impl.wire import codec

# The APIs the broker serves (issue 3): api key -> name.
BROKER_APIS = {
    18: "ApiVersions",
    3: "Metadata",
    0: "Produce",
    1: "Fetch",
    2: "ListOffsets",
    23: "OffsetForLeaderEpoch",
    19: "CreateTopics",
    20: "DeleteTopics",
    32: "DescribeConfigs",
    60: "DescribeCluster",
    22: "InitProducerId",
}

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def broker_api_versions() -> list[tuple[int, int]]:
    """Every (api key, version) kio has for the broker's APIs."""
    out: list[tuple[int, int]] = []
    for key in sorted(BROKER_APIS):
        low, high = codec.request_versions(key)
        out.extend((key, v) for v in range(low, high + 1))
    return out


_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_uuid = st.uuids().filter(lambda u: u.int != 0)  # kio reads the zero uuid as null

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.booleans(),
    "int8": st.integers(-(2**7), 2**7 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "uint16": st.integers(0, 2**16 - 1),
    "float64": st.floats(allow_nan=False, allow_infinity=False),
    "string": _text,
    "bytes": st.binary(max_size=24),
    "records": st.binary(max_size=24),
    "uuid": _uuid,
    "error_code": st.sampled_from(list(ErrorCode)),
    "timedelta_i32": st.integers(-(2**31), 2**31 - 1).map(
        lambda ms: datetime.timedelta(milliseconds=ms)
    ),
    "timedelta_i64": st.integers(-(2**40), 2**40).map(
        lambda ms: datetime.timedelta(milliseconds=ms)
    ),
    "datetime_i64": st.integers(0, 2**42).map(
        lambda ms: EPOCH + datetime.timedelta(milliseconds=ms)
    ),
}


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (types.UnionType, Union):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(get_args(tp))
    return tp, False


def _field_strategy(field: dataclasses.Field[Any]) -> st.SearchStrategy[Any]:
    tp, optional = _unwrap_optional(field.type)
    if get_origin(tp) is tuple:
        inner, inner_optional = _unwrap_optional(get_args(tp)[0])
        if dataclasses.is_dataclass(inner):
            item: st.SearchStrategy[Any] = entities(inner)  # type: ignore[arg-type]
        else:
            item = _PRIMITIVES[field.metadata["kafka_type"]]
            if inner_optional:
                item = st.none() | item
        strategy: st.SearchStrategy[Any] = st.lists(item, max_size=2).map(tuple)
    elif dataclasses.is_dataclass(tp):
        strategy = entities(tp)  # type: ignore[arg-type]
    else:
        strategy = _PRIMITIVES[field.metadata["kafka_type"]]
    if optional:
        strategy = st.none() | strategy
    return strategy


def entities(entity_type: type[Any]) -> st.SearchStrategy[Any]:
    """Instances of a kio schema dataclass with every field drawn from its Kafka type."""
    return st.builds(
        entity_type,
        **{f.name: _field_strategy(f) for f in dataclasses.fields(entity_type)},
    )


def requests(api_key: int, version: int) -> st.SearchStrategy[Any]:
    return entities(codec.request_type(api_key, version))


def responses(api_key: int, version: int) -> st.SearchStrategy[Any]:
    return entities(codec.response_type(api_key, version))


@st.composite
def mutated(draw: st.DrawFn, blob: bytes) -> bytes:
    """``blob`` after a few random edits: byte flips, cuts, insertions and deletions."""
    out = bytearray(blob)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "set"]))
        at = draw(st.integers(0, len(out)))
        if op == "flip" and at < len(out):
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(out):
            out[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del out[at : at + draw(st.integers(1, 8))]
    return bytes(out)


@st.composite
def valid_request_frames(draw: st.DrawFn) -> bytes:
    """A whole request frame (length prefix included) of a broker API."""
    api_key, version = draw(st.sampled_from(broker_api_versions()))
    entity = draw(requests(api_key, version))
    return codec.encode_request(entity, draw(st.integers(0, 2**31 - 1)), draw(st.text(max_size=6)))
