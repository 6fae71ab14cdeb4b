"""The ``__consumer_offsets`` record codec: Kafka's byte layouts checked against bytes
written out by hand, every version Kafka has written read back, and round trips of any
value (Hypothesis)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from impl.group import records as r
from impl.group.records import GroupRecord, MemberRecord, OffsetRecord


def _s(text: str | None) -> bytes:
    """A non-flexible (nullable) string: int16 length + UTF-8."""
    if text is None:
        return struct.pack(">h", -1)
    data = text.encode()
    return struct.pack(">h", len(data)) + data


def _b(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def test_offset_commit_key_layout() -> None:
    key = r.encode_offset_commit_key("g", "t", 7)
    assert key == struct.pack(">h", 1) + _s("g") + _s("t") + struct.pack(">i", 7)
    assert r.decode_key(key) == r.OffsetCommitKey("g", "t", 7)
    # version 0 has the same fields
    v0 = struct.pack(">h", 0) + key[2:]
    assert r.decode_key(v0) == r.OffsetCommitKey("g", "t", 7)


def test_group_metadata_key_layout() -> None:
    key = r.encode_group_metadata_key("grp")
    assert key == struct.pack(">h", 2) + _s("grp")
    assert r.decode_key(key) == r.GroupMetadataKey("grp")


def test_unknown_key_version_is_refused() -> None:
    with pytest.raises(r.RecordCodecError):
        r.decode_key(struct.pack(">h", 3) + _s("g"))


def test_offset_commit_value_v3_layout() -> None:
    value = r.encode_offset_commit_value(OffsetRecord(42, 5, "meta", 1000))
    assert value == struct.pack(">hqi", 3, 42, 5) + _s("meta") + struct.pack(">q", 1000)
    assert r.decode_offset_commit_value(value) == OffsetRecord(42, 5, "meta", 1000)


def test_offset_commit_value_with_expire_timestamp_is_v1() -> None:
    record = OffsetRecord(42, -1, "", 1000, expire_timestamp_ms=5000)
    value = r.encode_offset_commit_value(record)
    assert value == struct.pack(">hq", 1, 42) + _s("") + struct.pack(">qq", 1000, 5000)
    assert r.decode_offset_commit_value(value) == record


def test_offset_commit_value_old_versions() -> None:
    v0 = struct.pack(">hq", 0, 9) + _s("m") + struct.pack(">q", 77)
    assert r.decode_offset_commit_value(v0) == OffsetRecord(9, -1, "m", 77)
    v2 = struct.pack(">hq", 2, 9) + _s("m") + struct.pack(">q", 77)
    assert r.decode_offset_commit_value(v2) == OffsetRecord(9, -1, "m", 77)


def test_offset_commit_value_v4_flexible() -> None:
    # compact string "m" (length + 1 as an unsigned varint), then an empty tag section
    v4 = struct.pack(">hqi", 4, 9, 3) + b"\x02m" + struct.pack(">q", 77) + b"\x00"
    assert r.decode_offset_commit_value(v4) == OffsetRecord(9, 3, "m", 77)


def test_tombstones_are_none() -> None:
    assert r.decode_offset_commit_value(None) is None
    assert r.decode_group_metadata_value(None) is None


MEMBER = MemberRecord(
    member_id="m-1",
    group_instance_id="static-1",
    client_id="client",
    client_host="/127.0.0.1",
    rebalance_timeout_ms=300000,
    session_timeout_ms=10000,
    subscription=b"\x00\x01",
    assignment=b"\x02",
)
GROUP = GroupRecord("consumer", 3, "range", "m-1", 123456, (MEMBER,))


def test_group_metadata_value_v3_layout() -> None:
    value = r.encode_group_metadata_value(GROUP)
    member = (
        _s("m-1")
        + _s("static-1")
        + _s("client")
        + _s("/127.0.0.1")
        + struct.pack(">ii", 300000, 10000)
        + _b(b"\x00\x01")
        + _b(b"\x02")
    )
    expected = (
        struct.pack(">h", 3)
        + _s("consumer")
        + struct.pack(">i", 3)
        + _s("range")
        + _s("m-1")
        + struct.pack(">qi", 123456, 1)
        + member
    )
    assert value == expected
    assert r.decode_group_metadata_value(value) == GROUP


def test_group_metadata_value_old_versions() -> None:
    member_v0 = _s("m-1") + _s("client") + _s("/h") + struct.pack(">i", 10000) + _b(b"s") + _b(b"a")
    head = _s("consumer") + struct.pack(">i", 3) + _s(None) + _s(None)
    v0 = struct.pack(">h", 0) + head + struct.pack(">i", 1) + member_v0
    got = r.decode_group_metadata_value(v0)
    assert got is not None
    assert got.current_state_timestamp_ms == -1 and got.protocol is None and got.leader is None
    (m,) = got.members
    # before v1 a member has no rebalance timeout: Kafka reads it as the session timeout
    assert (m.rebalance_timeout_ms, m.session_timeout_ms) == (10000, 10000)
    assert m.group_instance_id is None and (m.subscription, m.assignment) == (b"s", b"a")
    member_v1 = (
        _s("m-1") + _s("client") + _s("/h") + struct.pack(">ii", 500, 10000) + _b(b"") + _b(b"")
    )
    v1 = struct.pack(">h", 1) + head + struct.pack(">i", 1) + member_v1
    got = r.decode_group_metadata_value(v1)
    assert got is not None and got.members[0].rebalance_timeout_ms == 500
    v2 = struct.pack(">h", 2) + head + struct.pack(">qi", 99, 1) + member_v1
    got = r.decode_group_metadata_value(v2)
    assert got is not None and got.current_state_timestamp_ms == 99


def test_truncated_or_trailing_bytes_are_refused() -> None:
    value = r.encode_offset_commit_value(OffsetRecord(1, 1, "x", 1))
    with pytest.raises(r.RecordCodecError):
        r.decode_offset_commit_value(value[:-1])
    with pytest.raises(r.RecordCodecError):
        r.decode_offset_commit_value(value + b"\x00")
    with pytest.raises(r.RecordCodecError):
        r.decode_group_metadata_value(r.encode_group_metadata_value(GROUP)[:-3])


# --- round trips ------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40)
int32s = st.integers(-(2**31), 2**31 - 1)
int64s = st.integers(-(2**63), 2**63 - 1)

members = st.builds(
    MemberRecord,
    member_id=texts,
    group_instance_id=st.none() | texts,
    client_id=texts,
    client_host=texts,
    rebalance_timeout_ms=int32s,
    session_timeout_ms=int32s,
    subscription=st.binary(max_size=50),
    assignment=st.binary(max_size=50),
)
groups = st.builds(
    GroupRecord,
    protocol_type=texts,
    generation=int32s,
    protocol=st.none() | texts,
    leader=st.none() | texts,
    current_state_timestamp_ms=int64s,
    members=st.lists(members, max_size=4).map(tuple),
)
offsets = st.builds(
    OffsetRecord,
    offset=int64s,
    leader_epoch=int32s,
    metadata=texts,
    commit_timestamp_ms=int64s,
    expire_timestamp_ms=st.just(-1) | st.integers(0, 2**63 - 1),
)


@given(offsets)
def test_offset_commit_value_round_trip(record: OffsetRecord) -> None:
    got = r.decode_offset_commit_value(r.encode_offset_commit_value(record))
    if record.expire_timestamp_ms != -1:
        # v1 has no leader epoch: it reads back as unknown
        record = OffsetRecord(
            record.offset,
            -1,
            record.metadata,
            record.commit_timestamp_ms,
            record.expire_timestamp_ms,
        )
    assert got == record


@given(groups)
def test_group_metadata_value_round_trip(record: GroupRecord) -> None:
    assert r.decode_group_metadata_value(r.encode_group_metadata_value(record)) == record


@given(texts, texts, int32s)
def test_keys_round_trip(group: str, topic: str, partition: int) -> None:
    assert r.decode_key(r.encode_offset_commit_key(group, topic, partition)) == (
        r.OffsetCommitKey(group, topic, partition)
    )
    assert r.decode_key(r.encode_group_metadata_key(group)) == r.GroupMetadataKey(group)


@given(st.binary(max_size=64))
def test_garbage_never_crashes_the_decoders(data: bytes) -> None:
    for decode in (r.decode_key, r.decode_offset_commit_value, r.decode_group_metadata_value):
        with contextlib.suppress(r.RecordCodecError):
            decode(data)
