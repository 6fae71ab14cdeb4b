"""Idempotent producer verdicts (Kafka 3.x rules) and their rebuild on reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from impl.storage.errors import StorageError
from impl.storage.producer_state import (
    APPEND,
    MAX_SEQUENCE,
    Duplicate,
    ProducerStateManager,
)
from impl.wire.records import BatchHeader, parse_header
from spec.errors import ErrorCode
from tests.storage.helpers import T0, batch, open_log


def _header(n: int, pid: int, epoch: int, seq: int, base: int = 0) -> BatchHeader:
    b = batch(n, pid=pid, epoch=epoch, seq=seq)
    b[0:8] = base.to_bytes(8, "big")
    return parse_header(b)


def test_verdicts() -> None:
    state = ProducerStateManager()
    assert state.check(_header(3, 1, 0, 0)) == APPEND
    state.update(_header(3, 1, 0, 0, base=10))
    assert state.check(_header(3, 1, 0, 0)) == Duplicate(10, 12)
    assert state.check(_header(2, 1, 0, 3)) == APPEND  # the next sequence
    assert state.check(_header(2, 1, 0, 4)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # a gap
    assert state.check(_header(2, 1, 0, 1)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER  # overlap
    assert state.check(_header(1, 1, 1, 5)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert state.check(_header(1, 1, 1, 0)) == APPEND  # a new epoch starts at 0
    state.update(_header(1, 1, 1, 0, base=13))
    assert state.check(_header(1, 1, 0, 3)) == ErrorCode.INVALID_PRODUCER_EPOCH
    assert state.check(_header(3, 1, 0, 0)) == ErrorCode.INVALID_PRODUCER_EPOCH  # old dup
    # An unknown producer is accepted at any sequence (KIP-360).
    assert state.check(_header(1, 2, 0, 77)) == APPEND
    assert state.check(_header(1, -1, -1, -1)) == APPEND
    assert state.check(_header(1, 3, 0, -1)) == ErrorCode.INVALID_RECORD


def test_only_the_last_five_batches_are_duplicates_and_sequences_wrap() -> None:
    state = ProducerStateManager()
    for i in range(6):
        state.update(_header(1, 1, 0, i, base=i))
    assert state.check(_header(1, 1, 0, 1)) == Duplicate(1, 1)
    assert state.check(_header(1, 1, 0, 0)) == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    state.update(_header(1, 5, 0, MAX_SEQUENCE, base=100))
    assert state.check(_header(1, 5, 0, 0)) == APPEND


def test_partition_log_append_runs_the_check(tmp_path: Path) -> None:
    log = open_log(str(tmp_path / "t-0"))
    log.append(batch(1), 0, T0)
    first = log.append(batch(2, pid=9, epoch=0, seq=0), 0, T0)
    assert (first.base_offset, first.last_offset) == (1, 2)
    retry = log.append(batch(2, pid=9, epoch=0, seq=0), 0, T0)
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (1, 2)
    assert log.end_offset == 3
    with pytest.raises(StorageError) as e:
        log.append(batch(1, pid=9, epoch=0, seq=5), 0, T0)
    assert e.value.code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert log.end_offset == 3


def test_producer_state_is_rebuilt_on_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "t-0")
    size = len(batch(1, pid=9, epoch=0, seq=0))
    log = open_log(path, segment_bytes=2 * size)
    for seq in range(4):
        log.append(batch(1, pid=9, epoch=0, seq=seq), 0, T0)
    log.append(batch(1, pid=4, epoch=2, seq=0), 0, T0)
    log.close()
    log = open_log(path, segment_bytes=2 * size)
    retry = log.append(batch(1, pid=9, epoch=0, seq=2), 0, T0)
    assert retry.duplicate and retry.base_offset == 2
    with pytest.raises(StorageError) as e:
        log.append(batch(1, pid=4, epoch=1, seq=1), 0, T0)
    assert e.value.code == ErrorCode.INVALID_PRODUCER_EPOCH
    assert log.append(batch(1, pid=9, epoch=0, seq=4), 0, T0).base_offset == 5
