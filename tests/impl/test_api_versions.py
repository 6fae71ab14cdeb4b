"""ApiVersions against a running broker: every version, the table, and a too-new version
answered with UNSUPPORTED_VERSION in the v0 layout on a connection that stays usable."""

from __future__ import annotations

import struct

import pytest

from impl.broker.apis import APIS
from impl.wire import codec
from tests.impl import kio_requests as k
from tests.impl.conftest import BrokerProcess

EXPECTED = {
    0: (3, 9),
    1: (4, 12),
    2: (1, 7),
    3: (0, 12),
    8: (2, 9),
    9: (1, 9),
    10: (0, 5),
    11: (0, 9),
    12: (0, 4),
    13: (0, 5),
    14: (0, 5),
    15: (0, 5),
    16: (0, 5),
    18: (0, 4),
    19: (2, 7),
    20: (1, 6),
    22: (0, 4),
    23: (2, 4),
    32: (1, 4),
    60: (0, 1),
}


def test_table_is_within_what_kio_has() -> None:
    for key, api in APIS.items():
        low, high = codec.request_versions(key)
        assert low <= api.min_version <= api.max_version <= high


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_every_version_lists_the_table(broker: BrokerProcess, version: int) -> None:
    with broker.client() as client:
        response = client.request(k.api_versions(version))
    assert response.error_code == 0
    got = {int(a.api_key): (int(a.min_version), int(a.max_version)) for a in response.api_keys}
    assert got == EXPECTED


def test_too_new_version_gets_unsupported_version_in_v0_layout(broker: BrokerProcess) -> None:
    with broker.client() as client:
        # ApiVersions v9 (no such version): header v1 and an arbitrary body.
        body = struct.pack(">hhih", 18, 9, 77, 1) + b"x" + b"\x00\x01\x02"
        client.send_raw(struct.pack(">i", len(body)) + body)
        frame = client.read_frame()
        assert frame is not None
        correlation_id, error, count = struct.unpack_from(">ihi", frame, 0)
        assert (correlation_id, error) == (77, 35)
        listed = {}
        for i in range(count):
            key, low, high = struct.unpack_from(">hhh", frame, 10 + 6 * i)
            listed[key] = (low, high)
        assert listed == EXPECTED
        assert len(frame) == 10 + 6 * count
        # The client retries with a version it now knows is supported, on the same socket.
        response = client.request(k.api_versions(3))
        assert response.error_code == 0
