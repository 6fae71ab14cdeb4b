"""The logs of one data directory: a ``<topic>-<partition>`` directory per partition.

Every partition directory is opened (and recovered) on start; files and directories
whose names are not ``<topic>-<partition>`` (other components' state files, Kafka's
``-delete`` directories) are left alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping

from impl import mutants
from impl.storage.config import LogConfig
from impl.storage.partition_log import PartitionLog
from spec.state import TopicPartition


def partition_dir_name(tp: TopicPartition) -> str:
    return f"{tp.topic}-{tp.partition}"


def parse_partition_dir(name: str) -> TopicPartition | None:
    """The partition a directory name ``<topic>-<partition>`` stands for, or None."""
    topic, sep, partition = name.rpartition("-")
    if not sep or not topic or not partition.isdigit() or name.startswith("."):
        return None
    return TopicPartition(topic, int(partition))


class LogManager:
    """The partition logs under ``data_dir``."""

    def __init__(
        self,
        data_dir: str,
        default_config: LogConfig,
        now_ms: int,
        config_for: Callable[[TopicPartition], LogConfig] | None = None,
    ) -> None:
        """Open every partition log in ``data_dir`` (created if missing); ``config_for``
        gives a partition's config (default: ``default_config``)."""
        self.data_dir = data_dir
        self.default_config = default_config
        self.logs: dict[TopicPartition, PartitionLog] = {}
        os.makedirs(data_dir, exist_ok=True)
        for name in sorted(os.listdir(data_dir)):
            tp = parse_partition_dir(name)
            if tp is None or not os.path.isdir(os.path.join(data_dir, name)):
                continue
            config = config_for(tp) if config_for is not None else default_config
            self.logs[tp] = PartitionLog.open(os.path.join(data_dir, name), config, now_ms)

    def get(self, tp: TopicPartition) -> PartitionLog | None:
        return self.logs.get(tp)

    def all(self) -> Iterator[tuple[TopicPartition, PartitionLog]]:
        return iter(list(self.logs.items()))

    def create(
        self, tp: TopicPartition, now_ms: int, overrides: Mapping[str, str] | None = None
    ) -> PartitionLog:
        """The log of ``tp``, created (with the topic-level config ``overrides``) when it
        does not exist yet."""
        log = self.logs.get(tp)
        if log is None:
            config = self.default_config.with_overrides(overrides or {})
            path = os.path.join(self.data_dir, partition_dir_name(tp))
            log = self.logs[tp] = PartitionLog.open(path, config, now_ms)
        return log

    def set_config(self, tp: TopicPartition, overrides: Mapping[str, str]) -> None:
        """Apply changed topic-level config to an existing log."""
        log = self.logs.get(tp)
        if log is not None:
            log.config = self.default_config.with_overrides(overrides)

    def delete(self, tp: TopicPartition) -> bool:
        """Remove the log of ``tp`` and its directory; whether there was one."""
        log = self.logs.pop(tp, None)
        if log is None:
            return False
        log.delete()
        return True

    def apply_retention(
        self, now_ms: int, high_watermark: Callable[[TopicPartition], int | None] | None = None
    ) -> int:
        """Run retention over every log; returns how many segments were deleted."""
        deleted = 0
        for tp, log in self.all():
            hw = high_watermark(tp) if high_watermark is not None else None
            deleted += log.apply_retention(now_ms, hw)
            if mutants.active(mutants.REUSE_OFFSETS_AFTER_RETENTION):
                deleted += _restart_expired_log(log, now_ms, hw)
        return deleted

    def flush(self) -> None:
        for _, log in self.all():
            log.flush()

    def close(self) -> None:
        """Flush and close every log."""
        for _, log in self.all():
            log.close()
        self.logs.clear()


def _restart_expired_log(log: PartitionLog, now_ms: int, high_watermark: int | None) -> int:
    """The seeded defect reuse-offsets-after-retention (impl.mutants): when the one segment
    left holds only records past retention.ms, all below the high watermark, delete it and
    start the log again at offset 0 (Kafka rolls a new segment at the log end offset)."""
    seg, limit = log.active_segment, log.config.retention_ms
    if (
        len(log.segments) > 1
        or seg.batch_count == 0
        or limit < 0
        or now_ms - seg.largest_timestamp <= limit
        or (high_watermark is not None and high_watermark < log.end_offset)
    ):
        return 0
    log.truncate_fully_and_start_at(0, now_ms)
    return 1
