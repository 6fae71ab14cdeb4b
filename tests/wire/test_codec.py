"""The codec on concrete messages: exact bytes where Kafka fixes them, header versions,
records carried through Produce and Fetch, and the errors the broker relies on."""

from __future__ import annotations

import datetime
import struct
from types import ModuleType

import pytest
from kio.schema.api_versions import v0 as api_versions_v0
from kio.schema.api_versions import v3 as api_versions_v3
from kio.schema.errors import ErrorCode
from kio.schema.fetch import v4 as fetch_v4
from kio.schema.fetch import v12 as fetch_v12
from kio.schema.metadata import v1 as metadata_v1
from kio.schema.metadata import v9 as metadata_v9
from kio.schema.produce import v3 as produce_v3
from kio.schema.produce import v9 as produce_v9
from kio.schema.types import BrokerId, TopicName
from kio.static.primitive import Records, i16, i32, i32Timedelta, i64

from impl.wire import codec, records
from impl.wire.framing import FrameReader, RequestHeader, encode_frame, parse_request_header

ZERO_MS = i32Timedelta.parse(datetime.timedelta(0))


def _one_frame(wire: bytes) -> bytes:
    reader = FrameReader()
    [frame] = reader.feed(wire)
    assert reader.buffered == 0
    return frame


def test_api_versions_v0_request_bytes_are_kafkas() -> None:
    wire = codec.encode_request(api_versions_v0.ApiVersionsRequest(), 1, "a")
    # length 11 | api key 18 | version 0 | correlation id 1 | client id "a" | empty body
    assert wire == b"\x00\x00\x00\x0b\x00\x12\x00\x00\x00\x00\x00\x01\x00\x01a"


def test_flexible_request_uses_header_v2() -> None:
    request = api_versions_v3.ApiVersionsRequest(
        client_software_name="kio", client_software_version="1"
    )
    wire = codec.encode_request(request, 9, None)
    # header v2: ... client id null (-1) then an empty tagged-field section (0)
    assert wire[4:16] == b"\x00\x12\x00\x03\x00\x00\x00\x09\xff\xff\x00\x04"
    frame = _one_frame(wire)
    header, offset = parse_request_header(frame)
    assert (header, offset) == (RequestHeader(18, 3, 9, None), 11)
    assert codec.decode_request(header, frame, offset) == request


def _api_versions_v3_response() -> api_versions_v3.ApiVersionsResponse:
    return api_versions_v3.ApiVersionsResponse(
        error_code=ErrorCode.none,
        api_keys=(
            api_versions_v3.response.ApiVersion(
                api_key=i16(18), min_version=i16(0), max_version=i16(3)
            ),
        ),
        throttle_time=ZERO_MS,
    )


def test_api_versions_response_always_uses_header_v0() -> None:
    header = RequestHeader(18, 3, 77, "c")
    wire = codec.encode_response(header, _api_versions_v3_response())
    # correlation id, then straight to the error code: no tagged-field byte (KIP-511)
    assert wire[4:8] == struct.pack(">i", 77)
    assert wire[8:10] == b"\x00\x00"
    assert wire[10] == 2  # compact array of one api key
    assert codec.decode_response(18, 3, _one_frame(wire)) == (77, _api_versions_v3_response())


def test_flexible_response_uses_header_v1_and_others_v0() -> None:
    flexible = metadata_v9.MetadataResponse(
        throttle_time=ZERO_MS,
        brokers=(),
        cluster_id=None,
        controller_id=BrokerId(-1),
        topics=(),
        cluster_authorized_operations=i32(0),
    )
    wire = codec.encode_response(RequestHeader(3, 9, 5, None), flexible)
    assert wire[8] == 0  # empty tagged fields of response header v1
    assert codec.decode_response(3, 9, _one_frame(wire)) == (5, flexible)

    legacy = metadata_v1.MetadataResponse(brokers=(), controller_id=BrokerId(1), topics=())
    wire = codec.encode_response(RequestHeader(3, 1, 6, None), legacy)
    assert wire == b"\x00\x00\x00\x10" + struct.pack(">iiii", 6, 0, 1, 0)


def test_encode_response_rejects_an_entity_that_does_not_answer_the_request() -> None:
    with pytest.raises(ValueError, match="does not answer"):
        codec.encode_response(RequestHeader(18, 2, 1, None), _api_versions_v3_response())
    with pytest.raises(ValueError, match="does not answer"):
        codec.encode_response(RequestHeader(18, 0, 1, None), api_versions_v0.ApiVersionsRequest())


def test_unsupported_api_versions_answer_is_kafkas_v0_layout() -> None:
    wire = codec.api_versions_unsupported_v0(3, {18: (0, 3), 0: (3, 9)})
    expected_body = (
        struct.pack(">ihi", 3, 35, 2) + struct.pack(">hhh", 0, 3, 9) + struct.pack(">hhh", 18, 0, 3)
    )
    assert wire == encode_frame(expected_body)
    # A client that asked v3 falls back to reading v0, as Kafka's clients do.
    correlation_id, response = codec.decode_response(18, 3, _one_frame(wire))
    assert correlation_id == 3
    assert isinstance(response, api_versions_v0.ApiVersionsResponse)
    assert response.error_code is ErrorCode.unsupported_version
    assert [(k.api_key, k.min_version, k.max_version) for k in response.api_keys] == [
        (0, 3, 9),
        (18, 0, 3),
    ]


def test_request_versions_are_kios() -> None:
    assert codec.request_versions(18) == (0, 4)
    assert codec.request_versions(0)[0] == 3
    with pytest.raises(KeyError):
        codec.request_versions(9999)


def _batch() -> bytes:
    return records.build_batch([(b"k", b"v1"), (None, b"v2")], timestamp=1_700_000_000_000)


@pytest.mark.parametrize("module", [produce_v3, produce_v9], ids=["v3", "v9"])
def test_produce_carries_a_record_batch_unchanged(module: ModuleType) -> None:
    batch = _batch()
    partition = module.request.PartitionProduceData(index=i32(0), records=Records(batch))
    topic = module.request.TopicProduceData(name=TopicName("t"), partition_data=(partition,))
    request = module.ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=30)),
        topic_data=(topic,),
    )
    frame = _one_frame(codec.encode_request(request, 11, "producer"))
    header, offset = parse_request_header(frame)
    decoded = codec.decode_request(header, frame, offset)
    assert decoded == request
    assert isinstance(decoded, module.ProduceRequest)
    carried = decoded.topic_data[0].partition_data[0].records
    assert carried == batch
    assert [r.value for r in records.decode_records(carried)] == [b"v1", b"v2"]


def test_fetch_responses_carry_stored_batches_unchanged() -> None:
    stored = _batch() + records.build_batch([(None, b"v3")], base_offset=2)
    for module, version in [(fetch_v4, 4), (fetch_v12, 12)]:
        partition = module.response.PartitionData(
            partition_index=i32(0),
            error_code=ErrorCode.none,
            high_watermark=i64(3),
            last_stable_offset=i64(3),
            aborted_transactions=None,
            records=Records(stored),
        )
        topic = module.response.FetchableTopicResponse(
            topic=TopicName("t"), partitions=(partition,)
        )
        response = module.FetchResponse(
            throttle_time=ZERO_MS,
            responses=(topic,),
            **({"error_code": ErrorCode.none, "session_id": i32(0)} if version >= 7 else {}),
        )
        wire = codec.encode_response(RequestHeader(1, version, 4, None), response)
        corr, decoded = codec.decode_response(1, version, _one_frame(wire))
        assert (corr, decoded) == (4, response)
        assert isinstance(decoded, module.FetchResponse)
        got = decoded.responses[0].partitions[0].records
        assert [h.base_offset for _, h in records.iter_batches(got)] == [0, 2]


def test_bytes_after_a_request_body_are_ignored_as_kafka_does() -> None:
    """librdkafka's Metadata v12 requests carry three bytes beyond the schema; Kafka's
    parser reads its fields and ignores the rest, and so does ours."""
    request = api_versions_v3.ApiVersionsRequest(
        client_software_name="kio", client_software_version="1"
    )
    frame = _one_frame(codec.encode_request(request, 1, None)) + b"\x00\x01\x02"
    header, offset = parse_request_header(frame)
    assert codec.decode_request(header, frame, offset) == request


def test_bytes_after_a_response_body_are_a_decode_error() -> None:
    wire = codec.encode_response(RequestHeader(18, 3, 7, None), _api_versions_v3_response())
    with pytest.raises(codec.DecodeError):
        codec.decode_response(18, 3, _one_frame(wire) + b"\x00")


def test_truncated_body_is_a_decode_error() -> None:
    request = api_versions_v3.ApiVersionsRequest(
        client_software_name="kio", client_software_version="1"
    )
    frame = _one_frame(codec.encode_request(request, 1, None))
    header, offset = parse_request_header(frame[:-2])
    with pytest.raises(codec.DecodeError):
        codec.decode_request(header, frame[:-2], offset)


@pytest.mark.parametrize(("key", "version"), [(9999, 0), (18, 99), (0, 0)])
def test_unknown_api_or_version_is_a_decode_error(key: int, version: int) -> None:
    with pytest.raises(codec.UnknownApiError):
        codec.decode_request(RequestHeader(key, version, 1, None), b"", 0)
    with pytest.raises(codec.DecodeError):
        codec.decode_response(key, version, b"\x00\x00\x00\x01")
