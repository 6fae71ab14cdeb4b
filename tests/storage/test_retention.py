"""Retention by time and by size: whole segments, never the active one, the log start
offset advanced and checkpointed."""

from __future__ import annotations

from pathlib import Path

import pytest

from impl.storage import checkpoint
from impl.storage.errors import OffsetOutOfRangeError
from tests.storage.helpers import T0, batch, open_log, read_all

DAY = 86_400_000


def test_retention_by_time_deletes_old_segments_and_advances_the_start(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    size = len(batch(1))
    log = open_log(path, segment_bytes=2 * size, retention_ms=DAY)
    for i in range(6):  # segments [0,1] ts T0..T0+1, [2,3], [4,5]
        log.append(batch(1, ts=T0 + i), 0, T0)
    assert [s.base_offset for s in log.segments] == [0, 2, 4]
    assert log.apply_retention(T0 + 1 + DAY) == 0  # exactly retention.ms old: kept
    assert log.apply_retention(T0 + 2 + DAY) == 1
    assert log.start_offset == 2
    assert [s.base_offset for s in log.segments] == [2, 4]
    assert not (Path(path) / "00000000000000000000.log").exists()
    with pytest.raises(OffsetOutOfRangeError):
        log.read(1, 100)
    assert read_all(log) == [(i, i) for i in range(2, 6)]
    # The active segment stays however old it is.
    assert log.apply_retention(T0 + 100 * DAY) == 1
    assert [s.base_offset for s in log.segments] == [4]
    assert log.start_offset == 4
    log.close()
    saved = checkpoint.read_offset(str(Path(path) / checkpoint.LOG_START_OFFSET_CHECKPOINT))
    assert saved == 4
    log = open_log(path, segment_bytes=2 * size, retention_ms=DAY)
    assert (log.start_offset, log.end_offset) == (4, 6)


def test_retention_by_time_deletes_only_a_prefix(tmp_path: Path) -> None:
    size = len(batch(1))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=size, retention_ms=DAY)
    for ts in (T0 + DAY, T0, T0, T0):  # a newer segment first stops the deletion
        log.append(batch(1, ts=ts), 0, T0)
    assert log.apply_retention(T0 + 2 * DAY - 1) == 0
    assert log.start_offset == 0


def test_retention_by_size_keeps_at_least_retention_bytes(tmp_path: Path) -> None:
    size = len(batch(1))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=2 * size, retention_bytes=3 * size)
    for _ in range(7):  # segments of 2, 2, 2, 1 batches: 7 batches
        log.append(batch(1), 0, T0)
    # Kafka deletes a segment only while the log stays >= retention.bytes without it.
    assert log.apply_retention(T0) == 2
    assert [s.base_offset for s in log.segments] == [4, 6]
    assert log.size == 3 * size
    assert log.start_offset == 4
    with pytest.raises(OffsetOutOfRangeError):
        log.read(3, 100)
    assert log.apply_retention(T0) == 0


def test_retention_never_deletes_the_active_segment_nor_past_the_high_watermark(
    tmp_path: Path,
) -> None:
    size = len(batch(1))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=2 * size, retention_bytes=0)
    for _ in range(5):
        log.append(batch(1), 0, T0)
    assert log.apply_retention(T0, high_watermark=3) == 1  # [2,3] reaches past the HW
    assert log.apply_retention(T0) == 1
    assert [s.base_offset for s in log.segments] == [4]
    assert read_all(log) == [(4, 4)]


def test_start_offset_increment_deletes_segments_below_it(tmp_path: Path) -> None:
    size = len(batch(1))
    log = open_log(str(tmp_path / "t-0"), segment_bytes=2 * size)
    for e in range(6):
        log.append(batch(1), e, T0)
    assert log.maybe_increment_log_start_offset(3)
    assert not log.maybe_increment_log_start_offset(2)
    assert log.apply_retention(T0) == 1
    assert [s.base_offset for s in log.segments] == [2, 4]
    assert log.start_offset == 3
    # The epoch cache entry covering the new start moves up to it.
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries][:2] == [(3, 3), (4, 4)]
