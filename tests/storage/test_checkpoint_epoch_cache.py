"""Checkpoint files in Kafka's format and the leader-epoch cache's answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from impl.storage import checkpoint
from impl.storage.epoch_cache import LeaderEpochCache
from impl.storage.errors import StorageError
from tests.storage.helpers import T0, batch, open_log


def test_checkpoint_round_trip_in_kafkas_text_format(tmp_path: Path) -> None:
    path = str(tmp_path / "leader-epoch-checkpoint")
    checkpoint.write_checkpoint(path, [(0, 0), (3, 17)])
    assert Path(path).read_text() == "0\n2\n0 0\n3 17\n"
    assert checkpoint.read_checkpoint(path, 2) == [(0, 0), (3, 17)]
    assert not Path(path + ".tmp").exists()
    checkpoint.write_offset(str(tmp_path / "lso"), 42)
    assert (tmp_path / "lso").read_text() == "0\n1\n42\n"
    assert checkpoint.read_offset(str(tmp_path / "lso")) == 42
    assert checkpoint.read_offset(str(tmp_path / "missing")) is None


@pytest.mark.parametrize("text", ["1\n0\n", "0\n2\n1 1\n", "0\n1\n1\n", "zero\n", ""])
def test_a_malformed_checkpoint_is_an_error(tmp_path: Path, text: str) -> None:
    (tmp_path / "c").write_text(text)
    with pytest.raises(StorageError):
        checkpoint.read_checkpoint(str(tmp_path / "c"), 2)


def _cache(tmp_path: Path, *entries: tuple[int, int]) -> LeaderEpochCache:
    cache = LeaderEpochCache(str(tmp_path / "leader-epoch-checkpoint"))
    for epoch, offset in entries:
        cache.assign(epoch, offset)
    return cache


def test_end_offset_for_epoch_as_kip_101_and_279(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (2, 10), (4, 20), (7, 35))
    leo = 50
    assert cache.end_offset_for(7, leo) == (7, 50)  # the latest epoch: the LEO
    assert cache.end_offset_for(4, leo) == (4, 35)  # start of the next epoch
    assert cache.end_offset_for(5, leo) == (4, 35)  # the largest epoch below, KIP-279
    assert cache.end_offset_for(2, leo) == (2, 20)
    assert cache.end_offset_for(1, leo) == (1, 10)  # below every epoch: Kafka's answer
    assert cache.end_offset_for(8, leo) == (-1, -1)  # above the latest
    assert cache.end_offset_for(-1, leo) == (-1, -1)
    assert _cache(tmp_path).end_offset_for(0, leo) == (-1, -1)


def test_assign_keeps_epochs_and_offsets_increasing(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (1, 0), (1, 5), (2, 10), (3, 10))
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0), (3, 10)]
    cache.assign(2, 8)  # a lower epoch replaces the entries it contradicts
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0), (2, 8)]
    reloaded = LeaderEpochCache.load(cache.path)
    assert reloaded.entries == cache.entries


def test_truncation_from_end_and_start(tmp_path: Path) -> None:
    cache = _cache(tmp_path, (1, 0), (2, 10), (3, 20))
    cache.truncate_from_end(20)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(1, 0), (2, 10)]
    cache.truncate_from_start(15)
    assert [(e.epoch, e.start_offset) for e in cache.entries] == [(2, 15)]
    assert LeaderEpochCache.load(cache.path).entries == cache.entries


def test_partition_log_epoch_cache_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    log = open_log(path)
    for epoch in (0, 0, 2, 5):
        log.append(batch(2), epoch, T0)
    assert log.end_offset_for_epoch(1) == (0, 4)
    assert log.end_offset_for_epoch(2) == (2, 6)
    log.close()
    text = (Path(path) / "leader-epoch-checkpoint").read_text()
    assert text == "0\n3\n0 0\n2 4\n5 6\n"
    log = open_log(path)
    assert log.end_offset_for_epoch(5) == (5, 8)
    assert log.end_offset_for_epoch(3) == (2, 6)
    assert log.latest_epoch == 5
    # A checkpoint that ran ahead of the log (entries past the LEO) is cut back.
    log.close()
    checkpoint.write_checkpoint(str(Path(path) / "leader-epoch-checkpoint"), [(0, 0), (9, 8)])
    log = open_log(path)
    assert [(e.epoch, e.start_offset) for e in log.epoch_cache.entries][-1] == (5, 6)
