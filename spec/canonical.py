"""A canonical form of a cluster state for the explorer's deduplication.

Some numbers in the state matter only by how they compare, never by their value:
leader epochs (only ordered and compared), znode versions (a replica's cached version only
matters by being equal to ZooKeeper's or not), controller epochs (written, never read by
the model), and delayed-produce request ids (only identities).  Two states that differ
only in such numbers behave the same from then on, so the explorer visits one of them.
``canonical`` renames epochs by rank, versions to current/stale, and request ids by rank.
"""

from __future__ import annotations

import attrs

from spec.fmap import FrozenMap
from spec.log import UNDEFINED_EPOCH, EpochEntry, Log, Record
from spec.state import ClusterState, Partition, ZkPartitionState

STALE_VERSION = -1


def _epochs_in(s: ClusterState) -> set[int]:
    found: set[int] = set()
    for part in s.partitions.values():
        found.add(part.zk.leader_epoch)
        for rep in part.replica.values():
            if rep.known is not None:
                found.add(rep.known.leader_epoch)
            found.update(e.epoch for e in rep.log.epochs)
            found.update(r.leader_epoch for r in rep.log.records)
    for ack in s.acked:
        found.add(ack.record.leader_epoch)
    for recs in s.exposed.values():
        found.update(r.leader_epoch for r in recs)
    for p in s.pending:
        found.add(p.leader_epoch)
    found.discard(UNDEFINED_EPOCH)
    return found


def canonical(s: ClusterState) -> ClusterState:
    """``s`` with epochs, versions, controller epochs and request ids renamed canonically."""
    rank = {e: i for i, e in enumerate(sorted(_epochs_in(s)))}

    def ep(e: int) -> int:
        return rank.get(e, e)

    def rec(r: Record) -> Record:
        return attrs.evolve(r, leader_epoch=ep(r.leader_epoch))

    def log(lg: Log) -> Log:
        return attrs.evolve(
            lg,
            records=tuple(rec(r) for r in lg.records),
            epochs=tuple(EpochEntry(ep(e.epoch), e.start_offset) for e in lg.epochs),
        )

    def zk(z: ZkPartitionState, current: int) -> ZkPartitionState:
        version = 0 if z.version == current else STALE_VERSION
        return attrs.evolve(z, leader_epoch=ep(z.leader_epoch), controller_epoch=0, version=version)

    partitions = {}
    for tp, part in s.partitions.items():
        reps = {
            b: attrs.evolve(
                rep,
                log=log(rep.log),
                known=None if rep.known is None else zk(rep.known, part.zk.version),
            )
            for b, rep in part.replica.items()
        }
        partitions[tp] = Partition(part.replicas, zk(part.zk, part.zk.version), FrozenMap(reps))
    ids = {p.request_id: i for i, p in enumerate(sorted(s.pending, key=lambda p: p.request_id))}
    return attrs.evolve(
        s,
        controller_epoch=0,
        partitions=FrozenMap(partitions),
        pending=tuple(
            attrs.evolve(p, request_id=ids[p.request_id], leader_epoch=ep(p.leader_epoch))
            for p in s.pending
        ),
        next_request_id=len(ids),
        acked=frozenset(attrs.evolve(a, record=rec(a.record)) for a in s.acked),
        exposed=FrozenMap((tp, tuple(rec(r) for r in rs)) for tp, rs in s.exposed.items()),
    )
