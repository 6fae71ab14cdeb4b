"""The configuration the spec is parameterised by, under Kafka's own property names.

Defaults are Kafka's.  ``variants`` names known-bad behaviours (``spec.variants``) that the
explorer and the tests switch on to prove that the invariants catch them; the correct model
has none.
"""

from __future__ import annotations

import attrs

from spec.variants import Variant

DAY_MS = 24 * 60 * 60 * 1000


@attrs.frozen(slots=True)
class SpecConfig:
    """Broker, topic and group settings the model depends on (Kafka's names, snake_case)."""

    min_insync_replicas: int = 1
    unclean_leader_election_enable: bool = False
    replica_lag_time_max_ms: int = 30_000
    request_timeout_ms: int = 30_000
    num_partitions: int = 1
    default_replication_factor: int = 1
    log_retention_ms: int = 7 * DAY_MS
    log_retention_bytes: int = -1
    message_max_bytes: int = 1_048_588
    group_min_session_timeout_ms: int = 6_000
    group_max_session_timeout_ms: int = 1_800_000
    group_initial_rebalance_delay_ms: int = 0
    offsets_retention_minutes: int = 7 * 24 * 60
    producer_max_inflight_batches: int = 5
    variants: frozenset[Variant] = frozenset()

    def has(self, variant: Variant) -> bool:
        """Whether the known-bad ``variant`` is switched on."""
        return variant in self.variants
