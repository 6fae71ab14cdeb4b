"""Appends, reads, rolls, the sparse index, timestamps and truncation of a PartitionLog."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from impl.storage.errors import (
    CorruptRecordError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    StorageError,
)
from impl.storage.index import ENTRY, ENTRY_SIZE
from impl.wire.records import decode_records, iter_batches
from tests.storage.helpers import T0, batch, offsets_in, open_log, read_all


def test_append_assigns_contiguous_offsets_and_read_returns_the_batches(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"))
    infos = [log.append(batch(n), 3, T0) for n in (1, 4, 2)]
    assert [(i.base_offset, i.last_offset) for i in infos] == [(0, 0), (1, 4), (5, 6)]
    assert all(not i.duplicate and i.log_start_offset == 0 for i in infos)
    assert log.end_offset == 7
    data = log.read(0, 1 << 20)
    assert offsets_in(data) == [(0, 0), (1, 4), (5, 6)]
    assert {h.partition_leader_epoch for _, h in iter_batches(data)} == {3}
    # A read from inside a batch starts at that batch; at the LEO it is empty.
    assert offsets_in(log.read(3, 1 << 20)) == [(1, 4), (5, 6)]
    assert log.read(7, 100) == b""
    assert [r.offset for r in decode_records(log.read(5, 1 << 20))] == [5, 6]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_append_leaves_the_batch_as_given_and_stores_offsets_and_epoch(
    tmp_path: Path, kind: type[bytes | bytearray | memoryview]
) -> None:
    log = open_log(str(tmp_path / "t-0"))
    log.append(batch(3), 0, T0)
    original = bytes(batch(2))
    given = kind(bytearray(original))
    info = log.append(given, 7, T0)
    assert bytes(given) == original
    stored = log.read(info.base_offset, 1 << 20)
    [(_, h)] = list(iter_batches(stored))  # the CRC still holds
    assert (h.base_offset, h.last_offset, h.partition_leader_epoch) == (3, 4, 7)
    assert stored[16:] == original[16:]


def test_read_limits_bytes_to_whole_batches_but_returns_at_least_one(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"))
    sizes = [len(batch(1, size=s)) for s in (100, 100, 100)]
    for s in (100, 100, 100):
        log.append(batch(1, size=s), 0, T0)
    assert offsets_in(log.read(0, sizes[0] + sizes[1])) == [(0, 0), (1, 1)]
    assert offsets_in(log.read(0, sizes[0] + sizes[1] - 1)) == [(0, 0)]
    assert offsets_in(log.read(0, 1)) == [(0, 0)]  # first batch larger than max_bytes
    assert offsets_in(log.read(0, 1 << 20, max_offset=2)) == [(0, 0), (1, 1)]
    assert log.read(2, 1 << 20, max_offset=2) == b""


def test_read_outside_the_log_is_out_of_range(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"))
    log.append(batch(2), 0, T0)
    with pytest.raises(OffsetOutOfRangeError) as e:
        log.read(3, 100)
    assert e.value.code.name == "OFFSET_OUT_OF_RANGE"


def test_roll_by_size_keeps_offsets_contiguous_and_reads_cross_segments(tmp_path: Path) -> None:
    size = len(batch(1, size=200))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=3 * size)
    for _ in range(10):
        log.append(batch(1, size=200), 0, T0)
    assert [s.base_offset for s in log.segments] == [0, 3, 6, 9]
    assert all(s.size <= 3 * size for s in log.segments)
    assert read_all(log) == [(i, i) for i in range(10)]
    names = sorted(os.listdir(tmp_path / "t-0"))
    assert "00000000000000000003.log" in names and "00000000000000000003.index" in names
    # A read stays within one segment.
    assert offsets_in(log.read(1, 1 << 20)) == [(1, 1), (2, 2)]


def test_roll_by_time_uses_the_first_batch_timestamp(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"), segment_ms=1000)
    log.append(batch(1, ts=T0), 0, T0)
    log.append(batch(1, ts=T0 + 1000), 0, T0)  # exactly segment.ms: no roll
    assert len(log.segments) == 1
    log.append(batch(1, ts=T0 + 1001), 0, T0)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_roll_by_time_without_timestamps_uses_the_segment_age(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"), now_ms=T0, segment_ms=1000)
    log.append(batch(1, ts=-1), 0, T0)
    log.append(batch(1, ts=-1), 0, T0 + 1000)
    assert len(log.segments) == 1
    log.append(batch(1, ts=-1), 0, T0 + 1001)
    assert [s.base_offset for s in log.segments] == [0, 2]


def test_sparse_index_is_written_and_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path, index_interval_bytes=500)
    for _ in range(20):
        log.append(batch(2, size=100), 0, T0)
    entries = log.active_segment.index.entries()
    assert 0 < len(entries) < 20
    log.close()
    raw = (Path(path) / "00000000000000000000.index").read_bytes()
    assert len(raw) == len(entries) * ENTRY_SIZE
    assert [(rel, pos) for rel, pos in ENTRY.iter_unpack(raw)] == entries  # base offset 0
    log = open_log(path, index_interval_bytes=500)
    index = log.active_segment.index
    assert index.entries() == entries
    # Every entry points at the batch whose last offset it names.
    for off, pos in entries:
        data = log.active_segment.read_batch(log.active_segment.positions.index(pos))
        assert offsets_in(data)[0][1] == off
    # A lookup gives a position at or before the batch holding the offset.
    off, pos = index.lookup(25)
    seg = log.active_segment
    assert off <= 25
    assert pos <= seg.positions[seg.batch_at_or_after(25)]
    assert index.lookup(-1) == (0, 0)
    assert read_all(log) == [(2 * i, 2 * i + 1) for i in range(20)]


def test_a_damaged_index_is_rebuilt_on_open(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path, index_interval_bytes=300)
    for _ in range(10):
        log.append(batch(1, size=100), 0, T0)
    log.append(batch(1, size=100), 0, T0 + 10**10)  # a second segment: the first is old
    entries = list(log.segments[0].index.positions)
    log.close()
    index_file = Path(path) / "00000000000000000000.index"
    index_file.write_bytes(b"\xff" * 13)
    log = open_log(path, index_interval_bytes=300)
    assert list(log.segments[0].index.positions) == entries


def test_invalid_batches_are_refused(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"), message_max_bytes=200)
    bad = batch(1)
    bad[-1] ^= 1
    with pytest.raises(CorruptRecordError):
        log.append(bad, 0, T0)
    with pytest.raises(CorruptRecordError):
        log.append(batch(1) + b"x", 0, T0)
    with pytest.raises(RecordTooLargeError):
        log.append(batch(1, size=300), 0, T0)
    assert log.end_offset == 0


def test_offset_for_timestamp_finds_the_first_record_at_or_after(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"), segment_bytes=200)
    for i in range(6):
        log.append(batch(2, ts=T0 + 10 * i), i // 2, T0)
    found = log.offset_for_timestamp(T0 + 15)
    assert found is not None
    assert (found.offset, found.timestamp, found.leader_epoch) == (4, T0 + 20, 1)
    found = log.offset_for_timestamp(0)
    assert found is not None and found.offset == 0
    assert log.offset_for_timestamp(T0 + 51) is None


def test_truncate_to_removes_the_suffix_and_later_segments(tmp_path: Path) -> None:
    size = len(batch(1))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=2 * size)
    for epoch in (0, 0, 1, 1, 2, 2):
        log.append(batch(1), epoch, T0)
    log.truncate_to(3)
    assert log.end_offset == 3
    assert read_all(log) == [(0, 0), (1, 1), (2, 2)]
    assert [s.base_offset for s in log.segments] == [0, 2]
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(0, 0), (1, 2)]
    assert log.append(batch(1), 3, T0).base_offset == 3
    log.truncate_to(100)
    assert log.end_offset == 4
    log.truncate_to(0)
    assert (log.start_offset, log.end_offset) == (0, 0)
    assert log.epoch_cache.entries == []


def test_truncate_fully_and_start_at(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path)
    log.append(batch(3), 0, T0)
    log.truncate_fully_and_start_at(50, T0)
    assert (log.start_offset, log.end_offset) == (50, 50)
    assert log.append(batch(1), 1, T0).base_offset == 50
    log.close()
    log = open_log(path)
    assert (log.start_offset, log.end_offset) == (50, 51)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(49, 100)


def test_append_replicated_keeps_offsets_and_epochs(tmp_path: Path) -> None:
    leader = open_log(str(tmp_path / "leader-0"))
    for epoch in (1, 1, 4):
        leader.append(batch(2, pid=3, epoch=0, seq=leader.end_offset), epoch, T0)
    follower = open_log(str(tmp_path / "follower-0"))
    info = follower.append_replicated(leader.read(0, 1 << 20), T0)
    assert info is not None and (info.base_offset, info.last_offset) == (0, 5)
    assert follower.read(0, 1 << 20) == leader.read(0, 1 << 20)
    assert follower.epoch_cache.entries == leader.epoch_cache.entries
    assert follower.append_replicated(b"", T0) is None
    with pytest.raises(StorageError):
        follower.append_replicated(leader.read(2, 1 << 20), T0)  # below the LEO
    retry = follower.append(batch(2, pid=3, epoch=0, seq=4), 4, T0)
    assert retry.duplicate and retry.base_offset == 4
