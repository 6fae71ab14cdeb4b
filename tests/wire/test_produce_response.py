"""The directly written Produce responses are byte for byte kio's encoding of the same
answers, for every version the broker serves, and read back by the codec."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from kio.schema.errors import ErrorCode as KioErrorCode

from impl.wire import codec
from impl.wire.framing import RequestHeader
from impl.wire.produce_response import (
    FIRST_VERSION,
    LAST_VERSION,
    PartitionAnswer,
    encode_produce_response,
)

RESULTS: list[tuple[str, list[PartitionAnswer]]] = [
    ("orders", [(0, 0, 1234567890123, 0, None), (3, 6, -1, 17, "NOT_LEADER_OR_FOLLOWER")]),
    ("ünïcode-topic", [(1, 87, -1, -1, "batch of 2000000 bytes exceeds max.message.bytes")]),
    ("empty", []),
]


def _kio_response(version: int, results: list[tuple[str, list[PartitionAnswer]]]) -> Any:
    module = importlib.import_module(f"kio.schema.produce.v{version}.response")
    fields = module.PartitionProduceResponse.__dataclass_fields__
    topics = []
    for name, answers in results:
        parts = []
        for index, code, base, start, message in answers:
            values: dict[str, Any] = {
                "index": index,
                "error_code": KioErrorCode(code),
                "base_offset": base,
                "log_append_time": None,
                "log_start_offset": start,
                "record_errors": (),
                "error_message": message,
            }
            parts.append(
                module.PartitionProduceResponse(**{k: v for k, v in values.items() if k in fields})
            )
        topics.append(module.TopicProduceResponse(name=name, partition_responses=tuple(parts)))
    return module.ProduceResponse(responses=tuple(topics))


@pytest.mark.parametrize("version", range(FIRST_VERSION, LAST_VERSION + 1))
@pytest.mark.parametrize("results", [RESULTS, RESULTS[:1], []])
def test_same_bytes_as_kio(version: int, results: list[tuple[str, list[PartitionAnswer]]]) -> None:
    header = RequestHeader(0, version, 424242, "client")
    ours = encode_produce_response(header, results)
    theirs = b"".join(
        bytes(p) for p in codec.encode_response_parts(header, _kio_response(version, results))
    )
    assert ours == theirs
    correlation_id, decoded = codec.decode_response(0, version, ours[4:])
    entity: Any = decoded
    assert correlation_id == 424242
    assert [t.name for t in entity.responses] == [name for name, _ in results]


@pytest.mark.parametrize("version", [FIRST_VERSION - 1, LAST_VERSION + 1])
def test_other_versions_refused(version: int) -> None:
    with pytest.raises(ValueError, match="not written here"):
        encode_produce_response(RequestHeader(0, version, 1, None), RESULTS)
