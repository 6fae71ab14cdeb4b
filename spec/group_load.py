"""The group coordinator's lifecycle: startup, election and loading, resignation, shutdown.

Which error a group request gets when this broker cannot serve the group is Kafka's
``validateGroupStatus``: COORDINATOR_NOT_AVAILABLE while the coordinator is not active
(not started, shut down), COORDINATOR_LOAD_IN_PROGRESS while it loads the group's
``__consumer_offsets`` partition, NOT_COORDINATOR when it does not lead that partition.

While the coordinator does not serve its groups, ``Coordinator.groups`` holds what the
partition's log holds: each group as its last metadata record (``StoredGroup``) plus its
committed offsets, with no members parked and no timers armed.  Loading restores them as
Kafka's loader does: a group with members comes back Stable at the stored generation,
otherwise Empty; every member's session restarts at the load time.  A rebalance that was
in flight is lost, so a generation can go back to the last one stored.
"""

from __future__ import annotations

import attrs

from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_rebalance import answer, answer_join, answer_sync, join_error, put, touch
from spec.group_state import (
    Abandoned,
    Coordinator,
    CoordinatorStatus,
    Group,
    GroupPhase,
    SyncResponse,
)
from spec.outcome import Ok, Outcome, Rejected


def persisted(g: Group) -> Group | None:
    """The group as its ``__consumer_offsets`` records hold it, or ``None`` if nothing of
    it was ever written (no metadata record, no offsets)."""
    s = g.stored
    if s is None:
        return Group(g.group_id, offsets=g.offsets) if g.offsets else None
    members = FrozenMap((m.member_id, m) for m in s.members)
    h = Group(
        group_id=g.group_id,
        phase=GroupPhase.STABLE if members else GroupPhase.EMPTY,
        state_timestamp_ms=s.state_timestamp_ms,
        generation_id=s.generation_id,
        protocol_type=s.protocol_type,
        protocol_name=s.protocol_name,
        leader_id=s.leader_id,
        members=members,
        offsets=g.offsets,
        stored=s,
    )
    return attrs.evolve(h, subscribed_topics=h.compute_subscribed_topics())


def _unload(c: Coordinator, status: CoordinatorStatus, error: ErrorCode | None) -> Coordinator:
    """Answer (or, with ``error`` None, abandon) every parked request, keep what is persisted."""
    for gid in sorted(c.groups):
        g = c.groups[gid]
        for mid in g.member_ids():
            if error is not None and g.phase is GroupPhase.PREPARING_REBALANCE:
                c = answer_join(c, gid, mid, join_error(mid, error))
            elif error is not None:
                c, _ = answer_sync(c, gid, mid, SyncResponse(error))
            m = c.groups[gid].members[mid]
            for ticket in (m.join_ticket, m.sync_ticket):
                if ticket is not None:
                    c = answer(c, ticket, Abandoned())
    kept = {gid: persisted(g) for gid, g in c.groups.items()}
    groups = FrozenMap((gid, g) for gid, g in kept.items() if g is not None)
    return attrs.evolve(c, status=status, groups=groups)


def _load(c: Coordinator) -> Coordinator:
    c = attrs.evolve(c, status=CoordinatorStatus.ACTIVE)
    for gid in sorted(c.groups):
        g = c.groups[gid]
        if g.stored is None:
            c = put(c, attrs.evolve(g, state_timestamp_ms=c.now_ms))
        for mid in g.member_ids():
            c = touch(c, gid, mid)
    return c


def _not_applicable(c: Coordinator) -> Rejected[Coordinator]:
    return Rejected(c, ErrorCode.INVALID_REQUEST)


def shutdown(c: Coordinator) -> Outcome[Coordinator, None]:
    """``GroupCoordinator.shutdown``: nothing parked is answered; groups are unloaded."""
    if c.status is CoordinatorStatus.INACTIVE:
        return _not_applicable(c)
    return Ok(_unload(c, CoordinatorStatus.INACTIVE, None), None)


def startup(c: Coordinator) -> Outcome[Coordinator, None]:
    """``GroupCoordinator.startup``: active, but leading no offsets partition yet."""
    if c.status is not CoordinatorStatus.INACTIVE:
        return _not_applicable(c)
    return Ok(attrs.evolve(c, status=CoordinatorStatus.NOT_COORDINATOR), None)


def elected(c: Coordinator) -> Outcome[Coordinator, None]:
    """``onElection``: loading of the partition begins."""
    if c.status is not CoordinatorStatus.NOT_COORDINATOR:
        return _not_applicable(c)
    return Ok(attrs.evolve(c, status=CoordinatorStatus.LOADING), None)


def loaded(c: Coordinator) -> Outcome[Coordinator, None]:
    """Loading finished (``onGroupLoaded`` for each group)."""
    if c.status is not CoordinatorStatus.LOADING:
        return _not_applicable(c)
    return Ok(_load(c), None)


def resigned(c: Coordinator) -> Outcome[Coordinator, None]:
    """``onResignation`` / ``onGroupUnloaded``: in PreparingRebalance parked JoinGroups get
    NOT_COORDINATOR; in CompletingRebalance or Stable parked SyncGroups do."""
    if c.status not in (CoordinatorStatus.ACTIVE, CoordinatorStatus.LOADING):
        return _not_applicable(c)
    return Ok(_unload(c, CoordinatorStatus.NOT_COORDINATOR, ErrorCode.NOT_COORDINATOR), None)
