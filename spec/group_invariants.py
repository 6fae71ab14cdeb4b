"""Named invariants of the group coordinator model, each a small predicate with its meaning.

``GroupAssignmentExclusive`` is a property of a state; ``GenerationNeverDecreases`` of a
step (a pair of states); ``GroupWellFormed`` is the model's own bookkeeping, whose
violation means a bug in the spec, not in Kafka.
"""

from __future__ import annotations

from collections.abc import Callable

from spec.consumer_protocol import assigned_partitions
from spec.group_state import Coordinator, CoordinatorStatus, Group, GroupPhase
from spec.state import TopicPartition

AssignmentDecoder = Callable[[bytes], frozenset[TopicPartition] | None]


def group_assignment_exclusive(
    state: Coordinator, decode: AssignmentDecoder = assigned_partitions
) -> bool:
    """GroupAssignmentExclusive: in every Stable group, no partition is assigned to two
    members.  If it fails, two consumers of one group read (and commit) the same
    partition at once: records are processed twice and committed offsets race.

    Assignments are the leader's opaque bytes; ``decode`` reads them (by default as
    ConsumerProtocol assignments).  The coordinator only relays what the leader sent, so
    this checks the leader's assignor together with the coordinator's bookkeeping (every
    member holds the assignment of the current generation, or none).  Bytes ``decode``
    cannot read are not judged.
    """
    for g in state.groups.values():
        if g.phase is not GroupPhase.STABLE:
            continue
        owner: dict[TopicPartition, str] = {}
        for mid in g.member_ids():
            parts = decode(g.members[mid].assignment)
            for tp in parts or ():
                if owner.setdefault(tp, mid) != mid:
                    return False
    return True


def generation_never_decreases(before: Coordinator, after: Coordinator) -> bool:
    """GenerationNeverDecreases: while a coordinator serves a group, one step never lowers
    its generation id.  Members fence stale requests by generation (ILLEGAL_GENERATION);
    a generation that went back could accept a zombie's commit.  (A group that goes away
    and is created again starts at 0, and a coordinator that reloads a group restores
    its last stored generation; neither happens within one served step.)"""
    if (
        before.status is not CoordinatorStatus.ACTIVE
        or after.status is not CoordinatorStatus.ACTIVE
    ):
        return True
    for gid, g in after.groups.items():
        old = before.groups.get(gid)
        if old is not None and g.generation_id < old.generation_id:
            return False
    return True


def _group_well_formed(g: Group, active: bool, next_ticket: int) -> bool:
    members = g.members
    phase = g.phase
    ids = [m.group_instance_id for m in members.values() if m.group_instance_id is not None]
    checks = (
        phase is not GroupPhase.DEAD,
        all(mid == m.member_id for mid, m in members.items()),
        len(ids) == len(set(ids)),  # one member per group.instance.id
        not (g.pending_members.keys() & members.keys()),
        (g.leader_id in members) if members else g.leader_id is None,
        phase is not GroupPhase.EMPTY or not members,
        (g.join_timer is not None) == (phase is GroupPhase.PREPARING_REBALANCE),
        g.sync_deadline_ms is None or phase in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE),
        phase is GroupPhase.PREPARING_REBALANCE
        or not any(m.awaiting_join for m in members.values()),
        phase is GroupPhase.COMPLETING_REBALANCE
        or not any(m.awaiting_sync for m in members.values()),
        phase not in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE)
        or (
            g.protocol_name is not None
            and all(m.metadata_for(g.protocol_name) is not None for m in members.values())
        ),
        g.generation_id >= 0,
        active
        or (
            g.join_timer is None
            and g.sync_deadline_ms is None
            and not g.pending_members
            and all(
                m.heartbeat_deadline_ms is None and not m.awaiting_join and not m.awaiting_sync
                for m in members.values()
            )
        ),
        all(
            t < next_ticket
            for m in members.values()
            for t in (m.join_ticket, m.sync_ticket)
            if t is not None
        ),
    )
    return all(checks)


def group_well_formed(state: Coordinator) -> bool:
    """GroupWellFormed: the model's bookkeeping is consistent: the leader is a member,
    an Empty group has no members, only PreparingRebalance has a join deadline and parked
    JoinGroups, only CompletingRebalance parked SyncGroups, each ticket is parked at most
    once and never both parked and answered, a coordinator that does not serve its groups
    holds no timers."""
    active = state.status is CoordinatorStatus.ACTIVE
    parked = [
        t
        for g in state.groups.values()
        for m in g.members.values()
        for t in (m.join_ticket, m.sync_ticket)
        if t is not None
    ]
    answered = [d.ticket for d in state.outbox]
    return (
        len(parked) == len(set(parked))
        and len(answered) == len(set(answered))
        and not set(parked) & set(answered)
        and all(_group_well_formed(g, active, state.next_ticket) for g in state.groups.values())
    )
