"""Recovery on open: a torn or corrupted tail written by the test is cut; every whole
batch before it stays; the epoch cache and producer state follow."""

from __future__ import annotations

import os
from pathlib import Path

from impl.storage import checkpoint
from tests.storage.helpers import T0, batch, open_log, read_all


def _segment_file(path: str, base: int) -> Path:
    return Path(path) / f"{base:020d}.log"


def test_a_torn_tail_is_truncated_to_the_last_whole_batch(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path, index_interval_bytes=100)
    for i in range(5):
        log.append(batch(2, size=60), i, T0)
    log.close()
    f = _segment_file(path, 0)
    whole = f.stat().st_size
    os.truncate(f, whole - 7)  # the last batch loses its last bytes
    log = open_log(path, index_interval_bytes=100)
    assert log.end_offset == 8
    assert read_all(log) == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert f.stat().st_size == whole * 4 // 5
    assert all(pos < f.stat().st_size for pos in log.active_segment.index.positions)
    assert log.epoch_cache.latest_epoch == 3
    assert log.end_offset_for_epoch(3) == (3, 8)
    # The log continues where the good data ends.
    assert log.append(batch(1), 9, T0).base_offset == 8


def test_a_flipped_byte_in_the_last_batch_drops_it_and_nothing_before(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path)
    for _ in range(4):
        log.append(batch(1, size=50), 0, T0)
    log.close()
    f = _segment_file(path, 0)
    data = bytearray(f.read_bytes())
    data[-5] ^= 0x40
    f.write_bytes(bytes(data))
    log = open_log(path)
    assert read_all(log) == [(0, 0), (1, 1), (2, 2)]
    assert f.stat().st_size == len(data) * 3 // 4


def test_garbage_after_the_last_batch_is_cut(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path)
    log.append(batch(3), 0, T0)
    log.close()
    f = _segment_file(path, 0)
    good = f.stat().st_size
    with open(f, "ab") as out:
        out.write(b"\x00" * 30)
    log = open_log(path)
    assert log.end_offset == 3 and f.stat().st_size == good


def test_corruption_in_an_unflushed_older_segment_drops_later_segments(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    size = len(batch(1))
    log = open_log(path, segment_bytes=2 * size)
    for _ in range(6):
        log.append(batch(1), 0, T0)
    log.close()
    # The recovery point says nothing was flushed, so every segment is checked.
    checkpoint.write_offset(str(Path(path) / checkpoint.RECOVERY_POINT_CHECKPOINT), 0)
    f = _segment_file(path, 2)
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    log = open_log(path, segment_bytes=2 * size)
    assert read_all(log) == [(0, 0), (1, 1), (2, 2)]
    assert [s.base_offset for s in log.segments] == [0, 2]
    assert not _segment_file(path, 4).exists()
    assert log.recovery_point == 3


def test_a_flushed_segment_below_the_recovery_point_is_not_crc_checked(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    size = len(batch(1))
    log = open_log(path, segment_bytes=2 * size)
    for _ in range(4):
        log.append(batch(1), 0, T0)
    log.close()  # recovery point 4: only the last segment is checked on open
    f = _segment_file(path, 0)
    data = bytearray(f.read_bytes())
    data[-1] ^= 1  # a record byte: the header still parses
    f.write_bytes(bytes(data))
    log = open_log(path, segment_bytes=2 * size)
    assert log.end_offset == 4


def test_epoch_cache_and_producer_state_follow_the_cut(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path)
    log.append(batch(1, pid=7, epoch=0, seq=0), 1, T0)
    log.append(batch(1, pid=7, epoch=0, seq=1), 2, T0)
    log.close()
    f = _segment_file(path, 0)
    os.truncate(f, f.stat().st_size - 1)
    log = open_log(path)
    assert log.end_offset == 1
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries] == [(1, 0)]
    # The batch with sequence 1 is gone, so its retry is new, not a duplicate.
    info = log.append(batch(1, pid=7, epoch=0, seq=1), 3, T0)
    assert (info.base_offset, info.duplicate) == (1, False)
