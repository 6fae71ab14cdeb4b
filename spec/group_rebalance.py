"""The steps the group coordinator takes on its own during a rebalance.

Kafka's ``GroupCoordinator`` runs these from request handlers and from purgatory
callbacks: ``prepareRebalance``, ``onCompleteJoin`` (a new generation), the propagation of
the leader's assignment, member removal, heartbeat rescheduling.  Here each is a pure
function from a coordinator state and a group id to the next state; responses owed to
parked JoinGroup/SyncGroup requests go to the outbox.  The request handlers live in
``spec.group``, the timers in ``spec.group_timers``.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_state import (
    NO_LEADER,
    UNKNOWN_MEMBER_ID,
    Abandoned,
    Completed,
    Coordinator,
    Group,
    GroupPhase,
    JoinMember,
    JoinResponse,
    JoinTimer,
    Member,
    ParkedReply,
    Pending,
    Protocol,
    StoredGroup,
    SyncResponse,
)
from spec.outcome import Ok, Outcome, Rejected

_CAN_REBALANCE = frozenset({GroupPhase.STABLE, GroupPhase.COMPLETING_REBALANCE, GroupPhase.EMPTY})


# --- plumbing --------------------------------------------------------------------------


def put(c: Coordinator, g: Group) -> Coordinator:
    """``c`` with ``g`` stored under its id."""
    return attrs.evolve(c, groups=c.groups.set(g.group_id, g))


def put_member(c: Coordinator, gid: str, m: Member) -> Coordinator:
    """``c`` with member ``m`` stored in group ``gid``."""
    g = c.groups[gid]
    return put(c, attrs.evolve(g, members=g.members.set(m.member_id, m)))


def answer(
    c: Coordinator, ticket: int, response: JoinResponse | SyncResponse | Abandoned
) -> Coordinator:
    """Queue the response to the parked request ``ticket``."""
    return attrs.evolve(c, outbox=(*c.outbox, Completed(ticket, response)))


def take_ticket(c: Coordinator) -> tuple[Coordinator, int]:
    """A fresh ticket for a request about to be parked."""
    return attrs.evolve(c, next_ticket=c.next_ticket + 1), c.next_ticket


def new_member_id(c: Coordinator, prefix: str) -> tuple[Coordinator, str]:
    """``GroupMetadata.generateMemberId``, deterministic: ``<prefix>-<n>`` (Kafka: a UUID)."""
    return attrs.evolve(c, next_member_seq=c.next_member_seq + 1), f"{prefix}-{c.next_member_seq}"


def transition(g: Group, phase: GroupPhase, now_ms: int) -> Group:
    """``transitionTo``: the new phase, with the state timestamp KIP-211 expires from."""
    return attrs.evolve(g, phase=phase, state_timestamp_ms=now_ms)


def join_error(member_id: str, error: ErrorCode) -> JoinResponse:
    """``JoinGroupResult(memberId, error)``."""
    return JoinResponse(error=error, member_id=member_id)


def settle(out: Outcome[Coordinator, ParkedReply]) -> Outcome[Coordinator, ParkedReply]:
    """A request parked by an action and answered by that same action gets its response as
    the action's reply, not through the outbox."""
    if isinstance(out, Rejected) or not isinstance(out.reply, Pending):
        return out
    ticket = out.reply.ticket
    s = out.state
    done = next((d for d in s.outbox if d.ticket == ticket), None)
    if done is None or isinstance(done.response, Abandoned):
        return out
    outbox = tuple(d for d in s.outbox if d.ticket != ticket)
    return Ok(attrs.evolve(s, outbox=outbox), done.response)


def status_error(c: Coordinator, group_id: str, *, empty_id_ok: bool) -> ErrorCode:
    """``validateGroupStatus``: INVALID_GROUP_ID for an empty group id (allowed by the offset
    APIs for compatibility), then the coordinator's own status (see ``CoordinatorStatus``)."""
    if not group_id and not empty_id_ok:
        return ErrorCode.INVALID_GROUP_ID
    return c.status.error


def validate_current_member(g: Group, member_id: str, group_instance_id: str | None) -> ErrorCode:
    """``validateCurrentMember``: a static member's instance id must be bound to this
    member id (else FENCED_INSTANCE_ID, or UNKNOWN_MEMBER_ID if unbound); the member id
    must belong to the group (else UNKNOWN_MEMBER_ID)."""
    if group_instance_id is not None:
        bound = g.static_member_id(group_instance_id)
        if bound is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if bound != member_id:
            return ErrorCode.FENCED_INSTANCE_ID
    return ErrorCode.NONE if member_id in g.members else ErrorCode.UNKNOWN_MEMBER_ID


# --- members ---------------------------------------------------------------------------


def touch(c: Coordinator, gid: str, mid: str, timeout_ms: int | None = None) -> Coordinator:
    """``completeAndScheduleNextExpiration``: the member is alive now and must be heard
    from again within its session timeout (or ``timeout_ms``)."""
    m = c.groups[gid].members.get(mid)
    if m is None:
        return c
    t = m.session_timeout_ms if timeout_ms is None else timeout_ms
    m = attrs.evolve(m, last_heartbeat_ms=c.now_ms, heartbeat_deadline_ms=c.now_ms + t)
    return put_member(c, gid, m)


def answer_join(c: Coordinator, gid: str, mid: str, response: JoinResponse) -> Coordinator:
    """``maybeInvokeJoinCallback``: answer the member's parked JoinGroup, if any."""
    m = c.groups[gid].members.get(mid)
    if m is None or m.join_ticket is None:
        return c
    c = answer(c, m.join_ticket, response)
    return put_member(c, gid, attrs.evolve(m, join_ticket=None))


def answer_sync(
    c: Coordinator, gid: str, mid: str, response: SyncResponse
) -> tuple[Coordinator, bool]:
    """``maybeInvokeSyncCallback``: answer the member's parked SyncGroup, if any."""
    m = c.groups[gid].members.get(mid)
    if m is None or m.sync_ticket is None:
        return c, False
    c = answer(c, m.sync_ticket, response)
    return put_member(c, gid, attrs.evolve(m, sync_ticket=None)), True


def add_member(c: Coordinator, gid: str, m: Member) -> Coordinator:
    """``GroupMetadata.add``: the first member sets the protocol type and, with no leader
    yet, becomes leader; a KIP-394 pending id becomes a member."""
    g = c.groups[gid]
    g = attrs.evolve(
        g,
        protocol_type=g.protocol_type if g.members else m.protocol_type,
        leader_id=g.leader_id if g.leader_id is not None else m.member_id,
        members=g.members.set(m.member_id, m),
        pending_members=g.pending_members.delete(m.member_id),
    )
    return put(c, g)


def remove_member(c: Coordinator, gid: str, mid: str) -> Coordinator:
    """``GroupMetadata.remove``: the member goes; requests it still had parked are
    forgotten; if it led the group, another member leads (Kafka: any; spec: smallest id)."""
    g = c.groups[gid]
    m = g.members.get(mid)
    if m is not None:
        for ticket in (m.join_ticket, m.sync_ticket):
            if ticket is not None:
                c = answer(c, ticket, Abandoned())
    members = g.members.delete(mid)
    leader = g.leader_id
    if leader == mid:
        leader = min(members) if members else None
    g = attrs.evolve(
        g,
        members=members,
        leader_id=leader,
        pending_members=g.pending_members.delete(mid),
        pending_sync_members=g.pending_sync_members - {mid},
    )
    return put(c, g)


def update_member(
    c: Coordinator,
    gid: str,
    mid: str,
    *,
    protocols: tuple[Protocol, ...],
    rebalance_timeout_ms: int,
    session_timeout_ms: int,
    ticket: int,
) -> Coordinator:
    """``GroupMetadata.updateMember``: new protocols and timeouts, and the member's
    JoinGroup parked under ``ticket`` (an earlier parked JoinGroup is never answered)."""
    m = c.groups[gid].members[mid]
    if m.join_ticket is not None:
        c = answer(c, m.join_ticket, Abandoned())
    m = attrs.evolve(
        m,
        protocols=protocols,
        rebalance_timeout_ms=rebalance_timeout_ms,
        session_timeout_ms=session_timeout_ms,
        join_ticket=ticket,
    )
    return put_member(c, gid, m)


def leader_members(g: Group) -> tuple[JoinMember, ...]:
    """``currentMemberMetadata``: every member with its metadata for the chosen protocol."""
    name = g.protocol_name or ""
    return tuple(
        JoinMember(mid, g.members[mid].group_instance_id, g.members[mid].metadata_for(name) or b"")
        for mid in g.member_ids()
    )


def member_join_response(g: Group, mid: str) -> JoinResponse:
    """The successful JoinGroup response for ``mid`` in the current generation; only the
    leader gets the member list."""
    return JoinResponse(
        error=ErrorCode.NONE,
        member_id=mid,
        generation_id=g.generation_id,
        protocol_type=g.protocol_type,
        protocol_name=g.protocol_name,
        leader_id=g.leader_id or NO_LEADER,
        members=leader_members(g) if g.leader_id == mid else (),
    )


def store_group(g: Group, assignment: Mapping[str, bytes] | None = None) -> Group:
    """``GroupMetadataManager.storeGroup``: write the group metadata record (the spec's
    writes to ``__consumer_offsets`` are atomic and always succeed)."""
    members = []
    for mid in g.member_ids():
        m = g.members[mid]
        meta = m.metadata_for(g.protocol_name) if g.protocol_name is not None else None
        members.append(
            Member(
                member_id=mid,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                session_timeout_ms=m.session_timeout_ms,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                protocol_type=m.protocol_type,
                protocols=m.protocols if meta is None else (Protocol(g.protocol_name or "", meta),),
                assignment=m.assignment if assignment is None else assignment.get(mid, b""),
            )
        )
    stored = StoredGroup(
        generation_id=g.generation_id,
        protocol_type=g.protocol_type,
        protocol_name=g.protocol_name,
        leader_id=g.leader_id,
        state_timestamp_ms=g.state_timestamp_ms,
        members=tuple(members),
    )
    return attrs.evolve(g, stored=stored)


# --- the rebalance ---------------------------------------------------------------------


def propagate_assignment(c: Coordinator, gid: str, error: ErrorCode) -> Coordinator:
    """``propagateAssignment``: answer every parked SyncGroup with the member's assignment
    (or ``error``), and restart the session timer of each member answered."""
    g = c.groups[gid]
    ok = error is ErrorCode.NONE
    ptype, pname = (g.protocol_type, g.protocol_name) if ok else (None, None)
    for mid in g.member_ids():
        m = c.groups[gid].members[mid]
        c, answered = answer_sync(c, gid, mid, SyncResponse(error, m.assignment, ptype, pname))
        if answered:
            c = touch(c, gid, mid)
    return c


def set_and_propagate_assignment(
    c: Coordinator, gid: str, assignment: Mapping[str, bytes]
) -> Coordinator:
    """``setAndPropagateAssignment``: install the leader's assignment (members it left
    out get empty bytes) and answer the parked SyncGroups."""
    g = c.groups[gid]
    members = {
        mid: attrs.evolve(m, assignment=assignment.get(mid, b"")) for mid, m in g.members.items()
    }
    c = put(c, attrs.evolve(g, members=FrozenMap(members)))
    return propagate_assignment(c, gid, ErrorCode.NONE)


def reset_and_propagate_assignment_error(c: Coordinator, gid: str, error: ErrorCode) -> Coordinator:
    """``resetAndPropagateAssignmentError``: clear assignments, answer SyncGroups with ``error``."""
    g = c.groups[gid]
    members = {mid: attrs.evolve(m, assignment=b"") for mid, m in g.members.items()}
    c = put(c, attrs.evolve(g, members=FrozenMap(members)))
    return propagate_assignment(c, gid, error)


def prepare_rebalance(c: Coordinator, gid: str) -> Coordinator:
    """``prepareRebalance``: members awaiting sync are told REBALANCE_IN_PROGRESS; the
    group enters PreparingRebalance and arms its DelayedJoin (the rebalance timeout), or
    for an Empty group the InitialDelayedJoin (``group.initial.rebalance.delay.ms``)."""
    if c.groups[gid].phase is GroupPhase.COMPLETING_REBALANCE:
        c = reset_and_propagate_assignment_error(c, gid, ErrorCode.REBALANCE_IN_PROGRESS)
    g = c.groups[gid]
    now = c.now_ms
    if g.phase is GroupPhase.EMPTY:
        delay = c.config.group_initial_rebalance_delay_ms
        remaining = max(g.rebalance_timeout_ms - delay, 0)
        timer = JoinTimer(now + delay, initial=True, delay_ms=delay, remaining_ms=remaining)
    else:
        timer = JoinTimer(now + g.rebalance_timeout_ms)
    g = attrs.evolve(g, join_timer=timer, pending_sync_members=frozenset(), sync_deadline_ms=None)
    c = put(c, transition(g, GroupPhase.PREPARING_REBALANCE, now))
    return try_complete_join(c, gid)


def maybe_prepare_rebalance(c: Coordinator, gid: str) -> Coordinator:
    """``maybePrepareRebalance``: rebalance unless one is already being prepared."""
    return prepare_rebalance(c, gid) if c.groups[gid].phase in _CAN_REBALANCE else c


def try_complete_join(c: Coordinator, gid: str) -> Coordinator:
    """``tryCompleteJoin`` (the join purgatory's checkAndComplete): finish the join
    phase now if every member has rejoined.  The InitialDelayedJoin never finishes early."""
    g = c.groups[gid]
    t = g.join_timer
    if (
        g.phase is GroupPhase.PREPARING_REBALANCE
        and t is not None
        and not t.initial
        and g.all_members_joined
    ):
        return complete_join(c, gid)
    return c


def _init_next_generation(g: Group, now_ms: int) -> Group:
    """``initNextGeneration``: bump the generation, choose the protocol."""
    if g.members:
        g = attrs.evolve(g, generation_id=g.generation_id + 1, protocol_name=g.select_protocol())
        phase = GroupPhase.COMPLETING_REBALANCE
    else:
        g = attrs.evolve(g, generation_id=g.generation_id + 1, protocol_name=None)
        phase = GroupPhase.EMPTY
    g = attrs.evolve(
        g, subscribed_topics=g.compute_subscribed_topics(), pending_sync_members=frozenset()
    )
    return transition(g, phase, now_ms)


def complete_join(c: Coordinator, gid: str) -> Coordinator:
    """``onCompleteJoin``: dynamic members that did not rejoin are removed (static ones
    stay); if no member rejoined the group waits another rebalance timeout; otherwise a
    new generation starts: every parked JoinGroup is answered (the leader gets the member
    list) and each member must send SyncGroup within the rebalance timeout."""
    g = c.groups[gid]
    for mid in g.member_ids():
        m = c.groups[gid].members[mid]
        if not m.awaiting_join and not m.is_static:
            c = remove_member(c, gid, mid)
    g = attrs.evolve(c.groups[gid], join_timer=None)
    now = c.now_ms
    if g.leader_id is not None and not g.members[g.leader_id].awaiting_join:
        joined = [mid for mid in g.member_ids() if g.members[mid].awaiting_join]
        if joined:
            g = attrs.evolve(g, leader_id=joined[0])
        else:
            # no member rejoined: wait (Kafka re-arms a DelayedJoin) until sessions expire
            return put(c, attrs.evolve(g, join_timer=JoinTimer(now + g.rebalance_timeout_ms)))
    g = _init_next_generation(g, now)
    if g.phase is GroupPhase.EMPTY:
        return put(c, store_group(g, {}))
    c = put(c, g)
    for mid in g.member_ids():
        c = answer_join(c, gid, mid, member_join_response(g, mid))
        c = touch(c, gid, mid)
        c = put_member(c, gid, attrs.evolve(c.groups[gid].members[mid], is_new=False))
    g = c.groups[gid]
    g = attrs.evolve(
        g,
        pending_sync_members=frozenset(g.members),
        sync_deadline_ms=now + g.rebalance_timeout_ms,
    )
    return put(c, g)


def remove_member_and_update_group(c: Coordinator, gid: str, mid: str) -> Coordinator:
    """``removeMemberAndUpdateGroup``: a parked JoinGroup gets UNKNOWN_MEMBER_ID, the
    member goes, and the group rebalances (or re-checks its join phase)."""
    c = answer_join(c, gid, mid, join_error(UNKNOWN_MEMBER_ID, ErrorCode.UNKNOWN_MEMBER_ID))
    c = remove_member(c, gid, mid)
    phase = c.groups[gid].phase
    if phase in (GroupPhase.STABLE, GroupPhase.COMPLETING_REBALANCE):
        return maybe_prepare_rebalance(c, gid)
    if phase is GroupPhase.PREPARING_REBALANCE:
        return try_complete_join(c, gid)
    return c


def remove_pending_member_and_update_group(c: Coordinator, gid: str, mid: str) -> Coordinator:
    """``removePendingMemberAndUpdateGroup``: forget a KIP-394 pending member id."""
    g = c.groups[gid]
    c = put(c, attrs.evolve(g, pending_members=g.pending_members.delete(mid)))
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return try_complete_join(c, gid)
    return c
