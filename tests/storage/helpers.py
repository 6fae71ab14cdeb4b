"""Batches and logs for the storage tests."""

from __future__ import annotations

from impl.storage.config import LogConfig
from impl.storage.partition_log import PartitionLog
from impl.wire.records import build_batch, iter_batches

T0 = 1_700_000_000_000


def batch(
    n: int = 1,
    *,
    ts: int = T0,
    size: int = 10,
    pid: int = -1,
    epoch: int = -1,
    seq: int = -1,
    tag: bytes = b"v",
) -> bytearray:
    """A batch of ``n`` records, each value ``size`` bytes."""
    value = (tag * size)[:size]
    return bytearray(
        build_batch(
            [(None, value)] * n,
            timestamp=ts,
            producer_id=pid,
            producer_epoch=epoch,
            base_sequence=seq,
        )
    )


def offsets_in(data: bytes) -> list[tuple[int, int]]:
    """(base offset, last offset) of each batch in ``data``."""
    return [(h.base_offset, h.last_offset) for _, h in iter_batches(data)]


def read_all(log: PartitionLog) -> list[tuple[int, int]]:
    """(base, last) of every batch from the log start offset to the end."""
    out: list[tuple[int, int]] = []
    offset = log.start_offset
    while offset < log.end_offset:
        data = log.read(offset, 1 << 20)
        assert data
        out += offsets_in(data)
        offset = out[-1][1] + 1
    return out


def open_log(path: str, now_ms: int = T0, **config: int | bool) -> PartitionLog:
    return PartitionLog.open(path, LogConfig(**config), now_ms)  # type: ignore[arg-type]
