"""Per-log configuration, with Kafka's broker defaults and topic-level override names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

# Topic-level config name -> LogConfig field (the broker-level names are log.<...>).
TOPIC_CONFIG_FIELDS = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "index.interval.bytes": "index_interval_bytes",
    "max.message.bytes": "message_max_bytes",
}


@attrs.frozen(slots=True)
class LogConfig:
    """How one partition log rolls, retains and flushes.

    ``flush_every_append`` is the option of an fsync after every append (Kafka's
    ``flush.messages=1``); the default leaves flushing to the OS page cache as Kafka does.
    """

    segment_bytes: int = 1073741824  # log.segment.bytes
    segment_ms: int = 168 * 3600 * 1000  # log.roll.hours = 168
    retention_ms: int = 604800000  # log.retention.ms (log.retention.hours = 168); -1 = forever
    retention_bytes: int = -1  # log.retention.bytes; -1 = unlimited
    index_interval_bytes: int = 4096  # log.index.interval.bytes
    flush_every_append: bool = False  # log.flush.interval.messages = Long.MAX_VALUE
    message_max_bytes: int = 1048588  # message.max.bytes

    def with_overrides(self, overrides: Mapping[str, str]) -> LogConfig:
        """This config with topic-level overrides (``retention.ms`` ...) applied; names
        that are not log settings are ignored; raises ValueError on a bad value."""
        changes: dict[str, Any] = {}
        for name, value in overrides.items():
            if name in TOPIC_CONFIG_FIELDS:
                changes[TOPIC_CONFIG_FIELDS[name]] = int(value)
            elif name == "flush.messages":
                changes["flush_every_append"] = int(value) <= 1
        return attrs.evolve(self, **changes)
