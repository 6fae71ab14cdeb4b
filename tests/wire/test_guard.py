"""The bounds check that keeps kio's native reader from aborting the process on a huge
compact-array length, and that it accepts everything kio itself writes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from kio.schema.delete_topics import v4 as delete_topics_v4
from kio.schema.metadata import v9 as metadata_v9

from impl.wire import codec
from impl.wire.framing import RequestHeader
from impl.wire.guard import BoundsError, check_body

# DeleteTopics v4 (flexible): topic_names is a compact array; 0xffffffff0f declares
# 2**32 - 2 names in a 5-byte body.  kio 0.6.5 reserves 32 GiB for it and aborts.
HUGE_ARRAY_BODY = bytes.fromhex("ffffffff0f")


def test_huge_compact_array_length_is_refused_before_kio_reads_it() -> None:
    with pytest.raises(BoundsError, match="array of 4294967294 items"):
        check_body(delete_topics_v4.DeleteTopicsRequest, HUGE_ARRAY_BODY, 0)
    with pytest.raises(codec.DecodeError, match="BoundsError"):
        codec.decode_request(RequestHeader(20, 4, 1, None), HUGE_ARRAY_BODY, 0)


def test_the_process_survives_a_huge_array_length() -> None:
    # In a child process, so a regression aborts the child and fails this test instead of
    # killing the test run.
    code = (
        "from impl.wire import codec\n"
        "from impl.wire.framing import RequestHeader\n"
        "try:\n"
        f"    codec.decode_request(RequestHeader(20, 4, 1, None), {HUGE_ARRAY_BODY!r}, 0)\n"
        "except codec.DecodeError:\n"
        "    print('refused')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (0, "refused\n"), done.stderr[-2000:]


def test_arrays_that_fit_pass_the_guard_and_decode() -> None:
    # 3 empty names, timeout 0, no tagged fields.
    body = bytes([4, 1, 1, 1]) + bytes(4) + bytes([0])
    check_body(delete_topics_v4.DeleteTopicsRequest, body, 0)
    decoded = codec.decode_request(RequestHeader(20, 4, 1, None), body, 0)
    assert isinstance(decoded, delete_topics_v4.DeleteTopicsRequest)
    assert decoded.topic_names == ("", "", "")


def test_tagged_field_running_past_the_frame_is_refused() -> None:
    # Metadata v9 request: topics null (0), two bools, then one tagged field of 9 bytes.
    body = bytes([0, 1, 1, 1, 5, 9]) + b"abc"
    with pytest.raises(BoundsError):
        check_body(metadata_v9.MetadataRequest, body, 0)


def test_legacy_bodies_are_not_walked() -> None:
    from kio.schema.metadata import v1 as metadata_v1  # noqa: PLC0415

    check_body(metadata_v1.MetadataRequest, b"", 0)  # kio checks legacy arrays itself
