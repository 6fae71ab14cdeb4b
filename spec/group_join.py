"""JoinGroup at the group coordinator: naming members, KIP-394, static membership, rejoining.

Owns ``handleJoinGroup`` and its branches as Kafka 3.x's ``GroupCoordinator`` takes them
(``doNewMemberJoinGroup``, ``doCurrentMemberJoinGroup``, ``updateStaticMemberAndRebalance``).
A JoinGroup either gets an immediate answer or parks until the join phase completes
(``Pending``); see ``spec.group`` for how parked responses are delivered.
"""

from __future__ import annotations

import attrs

from spec.errors import ErrorCode
from spec.group_actions import JoinGroup
from spec.group_rebalance import (
    add_member,
    answer,
    answer_join,
    maybe_prepare_rebalance,
    member_join_response,
    new_member_id,
    prepare_rebalance,
    put,
    settle,
    status_error,
    store_group,
    take_ticket,
    touch,
    try_complete_join,
    update_member,
    validate_current_member,
)
from spec.group_state import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    NO_LEADER,
    UNKNOWN_MEMBER_ID,
    Coordinator,
    Group,
    GroupPhase,
    JoinResponse,
    Member,
    ParkedReply,
    Pending,
    SyncResponse,
)
from spec.outcome import Ok, Outcome, Rejected


def join_group(c: Coordinator, a: JoinGroup) -> Outcome[Coordinator, ParkedReply]:
    """``handleJoinGroup``."""
    err = status_error(c, a.group_id, empty_id_ok=False)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    cfg = c.config
    if (
        not cfg.group_min_session_timeout_ms
        <= a.session_timeout_ms
        <= cfg.group_max_session_timeout_ms
    ):
        return Rejected(c, ErrorCode.INVALID_SESSION_TIMEOUT)
    unknown = a.member_id == UNKNOWN_MEMBER_ID
    if a.group_id not in c.groups:
        if not unknown:
            return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)
        c = put(c, Group(a.group_id, state_timestamp_ms=c.now_ms))
    out = _new_member_join(c, a) if unknown else _current_member_join(c, a)
    s = out.state
    if s.groups[a.group_id].phase is GroupPhase.PREPARING_REBALANCE:
        s = try_complete_join(s, a.group_id)
    out = Rejected(s, out.error) if isinstance(out, Rejected) else Ok(s, out.reply)
    return settle(out)


def _new_member_join(c: Coordinator, a: JoinGroup) -> Outcome[Coordinator, ParkedReply]:
    """``doNewMemberJoinGroup``: name the member, then static rejoin, KIP-394, or join."""
    g = c.groups[a.group_id]
    if not g.supports_protocols(a.protocol_type, (p.name for p in a.protocols)):
        return Rejected(c, ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    c, new_id = new_member_id(c, a.group_instance_id or a.client_id)
    if a.group_instance_id is not None:
        old_id = g.static_member_id(a.group_instance_id)
        if old_id is not None:
            return _replace_static_member(c, a, old_id, new_id)
        return _add_member_and_rebalance(c, a, new_id)
    if a.require_known_member_id:
        deadline = c.now_ms + a.session_timeout_ms
        c = put(c, attrs.evolve(g, pending_members=g.pending_members.set(new_id, deadline)))
        return Ok(c, JoinResponse(ErrorCode.MEMBER_ID_REQUIRED, new_id))
    return _add_member_and_rebalance(c, a, new_id)


def _add_member_and_rebalance(
    c: Coordinator, a: JoinGroup, mid: str
) -> Outcome[Coordinator, ParkedReply]:
    """``addMemberAndRebalance``: a new member, parked until the join phase completes."""
    c, ticket = take_ticket(c)
    m = Member(
        member_id=mid,
        group_instance_id=a.group_instance_id,
        client_id=a.client_id,
        session_timeout_ms=a.session_timeout_ms,
        rebalance_timeout_ms=a.rebalance_timeout_ms,
        protocol_type=a.protocol_type,
        protocols=a.protocols,
        join_ticket=ticket,
        is_new=True,
    )
    g = c.groups[a.group_id]
    if g.phase is GroupPhase.PREPARING_REBALANCE and g.generation_id == 0:
        c = put(c, attrs.evolve(g, new_member_added=True))
    c = add_member(c, a.group_id, m)
    c = touch(c, a.group_id, mid, NEW_MEMBER_JOIN_TIMEOUT_MS)
    return Ok(maybe_prepare_rebalance(c, a.group_id), Pending(ticket))


def _update_member_and_rebalance(c: Coordinator, a: JoinGroup) -> Outcome[Coordinator, ParkedReply]:
    """``updateMemberAndRebalance``: a known member rejoins, parked until the phase completes."""
    c, ticket = take_ticket(c)
    c = _park_rejoin(c, a, a.member_id, ticket)
    return Ok(maybe_prepare_rebalance(c, a.group_id), Pending(ticket))


def _park_rejoin(c: Coordinator, a: JoinGroup, mid: str, ticket: int) -> Coordinator:
    return update_member(
        c,
        a.group_id,
        mid,
        protocols=a.protocols,
        rebalance_timeout_ms=a.rebalance_timeout_ms,
        session_timeout_ms=a.session_timeout_ms,
        ticket=ticket,
    )


def _current_member_join(c: Coordinator, a: JoinGroup) -> Outcome[Coordinator, ParkedReply]:
    """``doCurrentMemberJoinGroup``."""
    g = c.groups[a.group_id]
    if not g.supports_protocols(a.protocol_type, (p.name for p in a.protocols)):
        return Rejected(c, ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    if a.member_id in g.pending_members:
        if a.group_instance_id is not None:
            # Kafka throws IllegalStateException here; the client sees UNKNOWN_SERVER_ERROR
            return Rejected(c, ErrorCode.UNKNOWN_SERVER_ERROR)
        return _add_member_and_rebalance(c, a, a.member_id)
    err = validate_current_member(g, a.member_id, a.group_instance_id)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    m = g.members[a.member_id]
    same = m.protocols == a.protocols
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return _update_member_and_rebalance(c, a)
    if g.phase is GroupPhase.COMPLETING_REBALANCE:
        # a member that missed its JoinGroup response gets it again
        return (
            Ok(c, member_join_response(g, a.member_id))
            if same
            else _update_member_and_rebalance(c, a)
        )
    if g.phase is GroupPhase.STABLE:
        # the leader rejoining forces a rebalance (e.g. topic metadata changed)
        if g.leader_id == a.member_id or not same:
            return _update_member_and_rebalance(c, a)
        return Ok(c, member_join_response(g, a.member_id))
    return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)


def _replace_static_member(
    c: Coordinator, a: JoinGroup, old_id: str, new_id: str
) -> Outcome[Coordinator, ParkedReply]:
    """``updateStaticMemberAndRebalance`` (KIP-345): a static member rejoining with an empty
    member id takes a new id; requests parked under the old id are FENCED_INSTANCE_ID."""
    gid = a.group_id
    g = c.groups[gid]
    current_leader = g.leader_id
    m = g.members[old_id]
    if m.join_ticket is not None:
        c = answer(c, m.join_ticket, JoinResponse(ErrorCode.FENCED_INSTANCE_ID, old_id))
    if m.sync_ticket is not None:
        c = answer(c, m.sync_ticket, SyncResponse(ErrorCode.FENCED_INSTANCE_ID))
    m = attrs.evolve(m, member_id=new_id, join_ticket=None, sync_ticket=None)
    # Kafka leaves the old id in the pending-sync set (replaceStaticMember does not touch it)
    g = attrs.evolve(
        g,
        members=g.members.delete(old_id).set(new_id, m),
        leader_id=new_id if g.leader_id == old_id else g.leader_id,
    )
    c = touch(put(c, g), gid, new_id)
    c, ticket = take_ticket(c)
    c = _park_rejoin(c, a, new_id, ticket)
    g = c.groups[gid]
    if g.phase is GroupPhase.STABLE:
        if g.protocol_name != g.select_protocol():
            return Ok(maybe_prepare_rebalance(c, gid), Pending(ticket))
        g = store_group(g)
        c = put(c, g)
        if a.supports_skip_assignment:
            lead = g.leader_id == new_id
            resp = attrs.evolve(member_join_response(g, new_id), skip_assignment=lead)
        else:
            # the old leader id, so that a rejoining leader does not run the assignor
            resp = attrs.evolve(
                member_join_response(g, new_id), leader_id=current_leader or NO_LEADER, members=()
            )
        return Ok(answer_join(c, gid, new_id, resp), Pending(ticket))
    if g.phase is GroupPhase.COMPLETING_REBALANCE:
        return Ok(prepare_rebalance(c, gid), Pending(ticket))
    return Ok(c, Pending(ticket))
