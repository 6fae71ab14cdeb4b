"""The replication settings, under Kafka's broker property names and with Kafka's defaults
(read from the broker configuration, where unknown keys are kept as given)."""

from __future__ import annotations

import attrs

from impl.broker.config import BROKER_PROPERTIES, BrokerConfig

PROPERTIES = (
    "replica.lag.time.max.ms",
    "replica.fetch.wait.max.ms",
    "replica.fetch.min.bytes",
    "replica.fetch.max.bytes",
    "replica.fetch.response.max.bytes",
    "replica.fetch.backoff.ms",
    "replica.socket.timeout.ms",
    "replica.high.watermark.checkpoint.interval.ms",
)
"""The properties read here, in the order of ReplicationConfig's fields."""


def _default(name: str) -> int:
    default = BROKER_PROPERTIES[name].default
    assert default is not None, name
    return int(default)


# Kafka's defaults, as the broker configuration defines them (one place for both).
DEFAULTS = {name: _default(name) for name in PROPERTIES}


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
        return cls(*(config.get_int(name) for name in PROPERTIES))
