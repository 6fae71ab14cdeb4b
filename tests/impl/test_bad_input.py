"""Bad input to a running broker: truncated frames, negative and huge lengths, unknown
API keys, unsupported versions, garbage bodies, corrupt batches.  Each gets Kafka's answer
(a closed connection, or an error code for a corrupt batch); through all of it the broker
keeps serving a connection opened before, accepts new ones, and its log holds exactly
what was acknowledged (produce before, fetch after)."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import pytest

from impl.wire import codec
from impl.wire.records import build_batch, decode_records
from spec.errors import ErrorCode
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess
from tests.impl.wire_client import WireClient

TOPIC = "keep"


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def header(api_key: int, version: int, correlation_id: int = 5, flexible: bool = False) -> bytes:
    client_id = b"bad"
    raw = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    return raw + (b"\x00" if flexible else b"")


def produce_value(client: WireClient, value: bytes) -> int:
    response = client.request(k.produce(TOPIC, 0, build_batch([(b"k", value)])))
    part = response.responses[0].partition_responses[0]
    assert part.error_code == 0
    return int(part.base_offset)


def values(client: WireClient) -> list[bytes | None]:
    response = client.request(k.fetch(TOPIC, 0, 0))
    part = response.responses[0].partitions[0]
    assert part.error_code == 0
    data = bytes(part.records or b"")
    found: list[bytes | None] = []
    pos = 0
    while pos < len(data):
        size = struct.unpack_from(">i", data, pos + 8)[0] + 12
        found += [r.value for r in decode_records(data[pos : pos + size])]
        pos += size
    return found


def corrupt_batch() -> bytes:
    batch = bytearray(build_batch([(b"k", b"corrupt")]))
    batch[-1] ^= 0xFF  # inside the CRC-covered part
    return bytes(batch)


CLOSING_CASES: dict[str, bytes] = {
    "negative length": struct.pack(">i", -1) + b"\x00" * 8,
    "huge length": struct.pack(">i", 2**31 - 1) + b"\x00" * 8,
    "over socket.request.max.bytes": struct.pack(">i", 104857601),
    "header too short": frame(b"\x00\x03\x00"),
    "client id past the frame": frame(struct.pack(">hhih", 3, 1, 1, 50) + b"ab"),
    "unknown api key": frame(header(9999, 0)),
    "api key not served": frame(header(24, 3) + b"\x00" * 20),
    "metadata version too new": frame(header(3, 99)),
    "produce version too old": frame(header(0, 2) + b"\x00" * 20),
    "metadata garbage body": frame(header(3, 12, flexible=True) + b"\xff\xfe\xfd\xfc" * 7),
    "fetch garbage body": frame(header(1, 12, flexible=True) + bytes(range(40))),
    "random bytes": frame(random.Random(3).randbytes(200)),
}


@pytest.fixture
def served(broker: BrokerProcess) -> tuple[BrokerProcess, WireClient]:
    """A broker with topic ``keep`` holding one acknowledged record, and an open
    connection to it made before any bad input."""
    observer = broker.client()
    created = observer.request(k.create_topics([(TOPIC, 1, 1)]))
    assert created.topics[0].error_code == 0
    assert produce_value(observer, b"before") == 0
    return broker, observer


def check_still_serving(broker: BrokerProcess, observer: WireClient) -> None:
    assert broker.alive()
    metadata = observer.request(k.metadata([TOPIC]))
    assert metadata.topics[0].error_code == 0
    with broker.client() as fresh:
        assert produce_value(fresh, b"after") == 1
        assert values(fresh) == [b"before", b"after"]
    assert "Traceback" not in broker.stderr()


@pytest.mark.parametrize("case", sorted(CLOSING_CASES))
def test_bad_frame_closes_only_its_connection(
    served: tuple[BrokerProcess, WireClient], case: str
) -> None:
    broker, observer = served
    with broker.client() as bad:
        bad.send_raw(CLOSING_CASES[case])
        assert bad.closed_by_peer()
    check_still_serving(broker, observer)


def test_requests_before_a_bad_frame_are_answered(
    served: tuple[BrokerProcess, WireClient],
) -> None:
    broker, observer = served
    with broker.client() as bad:
        good = codec.encode_request(k.metadata([TOPIC]), 41, "t")
        bad.send_raw(good + CLOSING_CASES["metadata garbage body"])
        correlation_id, response = bad.receive(3, 12)
        assert (correlation_id, response.topics[0].name) == (41, TOPIC)
        assert bad.closed_by_peer()
    check_still_serving(broker, observer)


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.send_raw(struct.pack(">i", 100) + b"\x00" * 10),
        lambda c: c.send_raw(b"\x00\x00"),
        lambda c: c.send_raw(frame(header(3, 12, flexible=True))[:-3]),
    ],
    ids=["body cut short", "length cut short", "header cut short"],
)
def test_truncated_frame_then_hang_up(
    served: tuple[BrokerProcess, WireClient], send: Callable[[WireClient], None]
) -> None:
    broker, observer = served
    with broker.client() as bad:
        send(bad)
    check_still_serving(broker, observer)


def test_corrupt_batch_gets_corrupt_message_and_is_not_stored(
    served: tuple[BrokerProcess, WireClient],
) -> None:
    broker, observer = served
    response = observer.request(k.produce(TOPIC, 0, corrupt_batch()))
    assert response.responses[0].partition_responses[0].error_code == ErrorCode.CORRUPT_MESSAGE
    check_still_serving(broker, observer)


def test_everything_at_once_then_restart(served: tuple[BrokerProcess, WireClient]) -> None:
    broker, observer = served
    for case in sorted(CLOSING_CASES):
        with broker.client() as bad:
            bad.send_raw(CLOSING_CASES[case])
            assert bad.closed_by_peer(), case
    check_still_serving(broker, observer)
    observer.close()
    assert broker.stop() == 0
