"""Record batches: build/parse round trips, CRC damage and torn tails detected, and random
or mutated bytes (only CorruptBatchError may escape)."""

from __future__ import annotations

import contextlib
import struct

import crc32c
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from impl.wire import records
from impl.wire.records import CorruptBatchError
from tests.wire.strategies import mutated

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_kv = st.tuples(st.none() | st.binary(max_size=16), st.none() | st.binary(max_size=32))
_records = st.lists(_kv, min_size=1, max_size=5)
_codec = st.sampled_from([records.NONE, records.GZIP])


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    return records.build_batch(
        draw(_records),
        timestamp=draw(st.integers(0, 2**45)),
        base_offset=draw(st.integers(0, 2**40)),
        producer_id=draw(st.integers(-1, 2**40)),
        producer_epoch=draw(st.integers(-1, 2**15 - 1)),
        base_sequence=draw(st.integers(-1, 2**31 - 1)),
        compression=draw(_codec),
    )


def _reseal(batch: bytearray) -> bytes:
    """``batch`` with its CRC recomputed (to reach the checks behind the CRC)."""
    struct.pack_into(">I", batch, 17, crc32c.crc32c(bytes(batch[records.CRC_START :])))
    return bytes(batch)


def _with_payload(payload: bytes, count: int) -> bytes:
    """A one-batch header around a hand-written records payload."""
    head = bytearray(records.build_batch([(None, b"x")])[: records.HEADER_SIZE])
    struct.pack_into(">i", head, 8, records.HEADER_SIZE - records.LOG_OVERHEAD + len(payload))
    struct.pack_into(">ii", head, 23, count - 1, 0)  # lastOffsetDelta (timestamps unchanged)
    struct.pack_into(">i", head, 57, count)
    return _reseal(head + payload)


def _record(body: bytes) -> bytes:
    out = bytearray()
    records.write_varint(out, len(body))
    return bytes(out) + body


# --- round trips ---------------------------------------------------------------------


@FUZZ
@given(
    kvs=_records,
    compression=_codec,
    base=st.integers(0, 2**40),
    ts=st.integers(0, 2**45),
    producer=st.tuples(st.integers(-1, 2**40), st.integers(-1, 2**31 - 1)),
)
def test_built_batches_parse_back(
    kvs: list[tuple[bytes | None, bytes | None]],
    compression: int,
    base: int,
    ts: int,
    producer: tuple[int, int],
) -> None:
    pid, seq = producer
    batch = records.build_batch(
        kvs,
        timestamp=ts,
        base_offset=base,
        producer_id=pid,
        producer_epoch=0,
        base_sequence=seq,
        compression=compression,
    )
    h = records.parse_header(batch)
    assert (h.base_offset, h.size, h.records_count, h.last_offset) == (
        base,
        len(batch),
        len(kvs),
        base + len(kvs) - 1,
    )
    assert (h.compression, h.producer_id, h.base_sequence) == (compression, pid, seq)
    assert h.is_idempotent == (pid >= 0)
    assert records.crc_ok(batch, 0, h)
    decoded = records.decode_records(batch)
    assert [(r.key, r.value) for r in decoded] == kvs
    assert [r.offset for r in decoded] == list(range(base, base + len(kvs)))
    assert {r.timestamp for r in decoded} == {ts}


@FUZZ
@given(parts=st.lists(batches(), min_size=1, max_size=4))
def test_concatenated_batches_iterate_and_form_a_valid_prefix(parts: list[bytes]) -> None:
    buf = b"".join(parts)
    positions = [pos for pos, _ in records.iter_batches(memoryview(buf))]
    assert positions == [sum(map(len, parts[:i])) for i in range(len(parts))]
    headers, size = records.valid_prefix(buf)
    assert (len(headers), size) == (len(parts), len(buf))


@FUZZ
@given(batch=batches(), offset=st.integers(0, 2**50), epoch=st.integers(0, 2**31 - 1))
def test_assign_offsets_keeps_the_crc_valid(batch: bytes, offset: int, epoch: int) -> None:
    buf = bytearray(batch)
    records.assign_offsets(buf, offset, epoch)
    [(_, h)] = list(records.iter_batches(buf))
    assert (h.base_offset, h.partition_leader_epoch) == (offset, epoch)
    assert records.decode_records(bytes(buf))[0].offset == offset


def test_last_sequence_wraps_like_kafkas() -> None:
    batch = records.build_batch(
        [(None, b"a"), (None, b"b")], producer_id=1, base_sequence=2**31 - 1
    )
    assert records.parse_header(batch).last_sequence == 0


# --- damage is detected --------------------------------------------------------------


@FUZZ
@given(batch=batches(), data=st.data())
def test_any_bit_flip_under_the_crc_is_reported(batch: bytes, data: st.DataObject) -> None:
    # the CRC field itself and everything after it
    at = data.draw(st.integers(17, len(batch) - 1))
    damaged = bytearray(batch)
    damaged[at] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(CorruptBatchError):
        list(records.iter_batches(damaged))
    assert records.valid_prefix(damaged + batch) == ([], 0)
    headers, size = records.valid_prefix(batch + damaged)
    assert (len(headers), size) == (1, len(batch))


@FUZZ
@given(parts=st.lists(batches(), min_size=1, max_size=3), data=st.data())
def test_a_torn_tail_is_cut_at_the_last_whole_batch(
    parts: list[bytes], data: st.DataObject
) -> None:
    whole = b"".join(parts[:-1])
    torn = parts[-1][: data.draw(st.integers(0, len(parts[-1]) - 1))]
    headers, size = records.valid_prefix(whole + torn)
    assert (len(headers), size) == (len(parts) - 1, len(whole))
    if torn:
        with pytest.raises(CorruptBatchError):
            list(records.iter_batches(whole + torn))


@pytest.mark.parametrize(
    ("payload", "count", "message"),
    [
        (_record(b"\x00\x00\x00\x01\x01\x01"), 1, "invalid number of record headers"),
        (_record(b"\x00\x00\x00\x01\x01\x02\x01\x00"), 1, "null record header key"),
        (_record(b"\x00\x00\x00\x01\x01\x00") + b"\x00", 1, "after the batch's last record"),
        (_record(b"\x00\x00\x00\x01\x01\x00"), 2, "truncated"),
        (_record(b"\x00\x00\x00\x01\x01\x00\x00"), 1, "does not match"),
        (b"\x80" * 11, 1, "overlong"),
    ],
)
def test_malformed_records_are_corrupt(payload: bytes, count: int, message: str) -> None:
    batch = _with_payload(payload, count)
    assert list(records.iter_batches(batch))  # the batch itself is well-formed
    with pytest.raises(CorruptBatchError, match=message):
        records.decode_records(batch)


def test_hand_written_record_decodes() -> None:
    # attributes 0, ts delta 0, offset delta 0, key null, value "v", one header "h" -> null
    batch = _with_payload(_record(b"\x00\x00\x00\x01\x02v\x02\x02h\x01"), 1)
    [r] = records.decode_records(batch)
    assert (r.key, r.value, r.headers) == (None, b"v", (("h", None),))


def test_wrong_magic_and_unknown_codec_are_corrupt() -> None:
    batch = bytearray(records.build_batch([(None, b"v")]))
    batch[16] = 1
    with pytest.raises(CorruptBatchError, match="magic"):
        records.parse_header(batch)
    batch[16] = 2
    struct.pack_into(">h", batch, 21, 7)
    with pytest.raises(CorruptBatchError, match="compression"):
        records.parse_header(_reseal(batch))


# --- random and mutated bytes --------------------------------------------------------


def _exercise(buf: bytes) -> None:
    """Every reader on ``buf``: only CorruptBatchError may escape."""
    headers, size = records.valid_prefix(buf)
    assert 0 <= size <= len(buf)
    assert sum(h.size for h in headers) == size
    with contextlib.suppress(CorruptBatchError):
        records.parse_header(buf)
    with contextlib.suppress(CorruptBatchError):
        for _ in records.iter_batches(buf):
            pass
    with contextlib.suppress(CorruptBatchError):
        records.decode_records(buf)


@FUZZ
@given(buf=st.binary(max_size=200))
def test_random_bytes_raise_only_corrupt_batch_error(buf: bytes) -> None:
    _exercise(buf)


@FUZZ
@given(data=st.data())
def test_mutated_batches_raise_only_corrupt_batch_error(data: st.DataObject) -> None:
    batch = data.draw(batches())
    _exercise(data.draw(mutated(batch)))


@FUZZ
@given(data=st.data())
def test_mutated_records_behind_a_valid_crc_raise_only_corrupt_batch_error(
    data: st.DataObject,
) -> None:
    batch = data.draw(batches())
    body = data.draw(mutated(batch[records.HEADER_SIZE :]))
    head = bytearray(batch[: records.HEADER_SIZE])
    struct.pack_into(">i", head, 8, records.HEADER_SIZE - records.LOG_OVERHEAD + len(body))
    _exercise(_reseal(head + body))
