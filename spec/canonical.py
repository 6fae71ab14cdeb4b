"""A canonical key of a cluster state, for the explorer's deduplication.

Some numbers in the state matter only by how they compare, never by their value: leader
epochs (only ordered and compared), znode versions (a leader's cached version only
matters by being equal to ZooKeeper's or not), controller epochs (written, never read by
the model) and delayed-produce request ids (only identities).  Two states that differ
only in such numbers behave the same from then on, so the explorer visits one of them.
The key renames epochs by rank, versions to current/stale and request ids by rank, and
leaves out what a follower caches of the ISR and znode version (only a leader reads them).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

from spec.log import UNDEFINED_EPOCH, Log, Record
from spec.state import ClusterState, Replica

STALE_VERSION = -1


def _epochs_in(s: ClusterState) -> list[int]:
    # Every epoch in a record or a cache entry is also in that log's cache, and the cache
    # entries come from ZooKeeper states, so caches and partition states cover them all.
    found: set[int] = set()
    for part in s.partitions.values():
        found.add(part.zk.leader_epoch)
        for rep in part.replica.values():
            if rep.known is not None:
                found.add(rep.known.leader_epoch)
            found.update(e.epoch for e in rep.log.epochs)
    found.discard(UNDEFINED_EPOCH)
    return sorted(found)


def canonical_key(s: ClusterState) -> Hashable:
    """A value equal for two states exactly when they differ only in renamed numbers."""
    epochs = tuple(_epochs_in(s))
    parts = []
    for tp, part in sorted(s.partitions.items()):
        zk = part.zk
        reps = tuple(
            _replica_key(rep, b, epochs, zk.version) for b, rep in sorted(part.replica.items())
        )
        rank = epochs.index(zk.leader_epoch)
        parts.append((tp, part.replicas, zk.leader, rank, zk.isr, reps))
    ids = {p.request_id: i for i, p in enumerate(sorted(s.pending, key=lambda p: p.request_id))}
    return (
        s.now,
        tuple(sorted(s.brokers.items())),
        s.controller,
        s.topics,
        tuple(parts),
        tuple(
            (ids[p.request_id], p.tp, p.broker, p.base_offset, p.last_offset, p.deadline_ms)
            for p in s.pending
        ),
        frozenset((a.tp, a.offset, _record_key(a.record, epochs)) for a in s.acked),
        tuple(
            (tp, tuple(_record_key(r, epochs) for r in rs)) for tp, rs in sorted(s.exposed.items())
        ),
    )


def _rank(epoch: int, epochs: tuple[int, ...]) -> int:
    return epochs.index(epoch) if epoch in epochs else epoch


# Logs, records and replicas are shared between many states, so their keys are memoised.


@functools.lru_cache(maxsize=1 << 18)
def _record_key(r: Record, epochs: tuple[int, ...]) -> Hashable:
    return (
        r.value,
        r.key,
        r.timestamp,
        _rank(r.leader_epoch, epochs),
        r.producer_id,
        r.producer_epoch,
        r.sequence,
        getattr(r, "base_sequence", None),
    )


@functools.lru_cache(maxsize=1 << 18)
def _log_key(lg: Log, epochs: tuple[int, ...]) -> Hashable:
    return (
        lg.start_offset,
        lg.recovery_point,
        tuple(_record_key(r, epochs) for r in lg.records),
        tuple((_rank(e.epoch, epochs), e.start_offset) for e in lg.epochs),
    )


@functools.lru_cache(maxsize=1 << 18)
def _replica_key(rep: Replica, broker: int, epochs: tuple[int, ...], version: int) -> Hashable:
    z = rep.known
    if z is None:
        known: Hashable = None
    elif z.leader != broker:
        known = (z.leader, _rank(z.leader_epoch, epochs))
    else:
        known = (z.leader, _rank(z.leader_epoch, epochs), z.isr, z.version == version)
    return (
        broker,
        _log_key(rep.log, epochs),
        rep.high_watermark,
        known,
        rep.truncated,
        tuple(sorted(rep.followers.items())),
        rep.producers,
    )
