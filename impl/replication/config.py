"""The replication settings, under Kafka's broker property names and with Kafka's defaults
(read from the broker configuration, where unknown keys are kept as given)."""

from __future__ import annotations

import attrs

from impl.broker.config import BrokerConfig

DEFAULTS = {
    "replica.lag.time.max.ms": 30000,
    "replica.fetch.wait.max.ms": 500,
    "replica.fetch.min.bytes": 1,
    "replica.fetch.max.bytes": 1048576,
    "replica.fetch.response.max.bytes": 10485760,
    "replica.fetch.backoff.ms": 1000,
    "replica.socket.timeout.ms": 30000,
    "replica.high.watermark.checkpoint.interval.ms": 5000,
}


@attrs.frozen(slots=True)
class ReplicationConfig:
    """What the replica manager and the fetchers need to know."""

    replica_lag_time_max_ms: int = DEFAULTS["replica.lag.time.max.ms"]
    replica_fetch_wait_max_ms: int = DEFAULTS["replica.fetch.wait.max.ms"]
    replica_fetch_min_bytes: int = DEFAULTS["replica.fetch.min.bytes"]
    replica_fetch_max_bytes: int = DEFAULTS["replica.fetch.max.bytes"]
    replica_fetch_response_max_bytes: int = DEFAULTS["replica.fetch.response.max.bytes"]
    replica_fetch_backoff_ms: int = DEFAULTS["replica.fetch.backoff.ms"]
    replica_socket_timeout_ms: int = DEFAULTS["replica.socket.timeout.ms"]
    replica_high_watermark_checkpoint_interval_ms: int = DEFAULTS[
        "replica.high.watermark.checkpoint.interval.ms"
    ]

    @classmethod
    def from_broker(cls, config: BrokerConfig) -> ReplicationConfig:
        def value(name: str) -> int:
            raw = config.get(name)
            return DEFAULTS[name] if raw is None else int(raw.strip())

        return cls(*(value(name) for name in DEFAULTS))
