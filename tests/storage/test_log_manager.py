"""The data directory: partition directories found on start, created, deleted."""

from __future__ import annotations

from pathlib import Path

from impl.storage.config import LogConfig
from impl.storage.log_manager import LogManager, parse_partition_dir
from spec.state import TopicPartition
from tests.storage.helpers import T0, batch


def test_logs_are_created_reloaded_and_deleted(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    logs = LogManager(data, LogConfig(), T0)
    a, b = TopicPartition("my-topic", 0), TopicPartition("my-topic", 1)
    logs.create(a, T0, {"retention.ms": "1000", "cleanup.policy": "delete"}).append(batch(2), 0, T0)
    logs.create(b, T0)
    log_a = logs.get(a)
    assert log_a is not None and log_a.config.retention_ms == 1000
    (tmp_path / "data" / "topics.json").write_text("{}")  # another component's file
    logs.close()
    logs = LogManager(data, LogConfig(), T0)
    assert {tp for tp, _ in logs.all()} == {a, b}
    log_a = logs.get(a)
    assert log_a is not None and log_a.end_offset == 2
    assert logs.delete(b)
    assert not (tmp_path / "data" / "my-topic-1").exists()
    assert not logs.delete(b)


def test_partition_dir_names() -> None:
    assert parse_partition_dir("a-b-12") == TopicPartition("a-b", 12)
    assert parse_partition_dir("topics.json") is None
    assert parse_partition_dir("t-0.abc-delete") is None


def test_config_overrides_and_flush_every_append(tmp_path: Path) -> None:
    config = LogConfig().with_overrides({"flush.messages": "1", "segment.bytes": "1000"})
    assert config.flush_every_append and config.segment_bytes == 1000
    logs = LogManager(str(tmp_path), config, T0)
    log = logs.create(TopicPartition("t", 0), T0)
    log.append(batch(1), 0, T0)
    assert log.recovery_point == 1
