"""The group coordinator's request rules, sans-IO: JoinGroup, SyncGroup, Heartbeat,
LeaveGroup and the membership check of OffsetCommit, as Kafka 3.x ``GroupCoordinator``
takes them (``handleJoinGroup`` with ``doNewMemberJoinGroup``/``doCurrentMemberJoinGroup``/
``updateStaticMemberAndRebalance``, ``handleSyncGroup``, ``handleHeartbeat``,
``handleLeaveGroup``, ``validateOffsetCommit``).

Each function takes the ``CoordinatorState`` and the request's fields, and answers now
or parks the request (``Parked``); the caller has already checked that this broker
coordinates the group (``validateGroupStatus``).  Where Kafka writes the group's record
before answering (the leader's SyncGroup; a static member replaced in a Stable group),
the write is queued with the step that follows it.
"""

from __future__ import annotations

import attrs

from impl import mutants
from impl.group.membership import (
    NEW_MEMBER_JOIN_TIMEOUT_MS,
    NO_LEADER,
    UNKNOWN_MEMBER_ID,
    Abandoned,
    Group,
    GroupPhase,
    JoinResult,
    Member,
    Parked,
    Protocol,
    SyncResult,
    member_join_result,
    validate_current_member,
)
from impl.group.rebalance import CoordinatorState
from spec.errors import ErrorCode


@attrs.frozen(slots=True)
class JoinRequest:
    """A JoinGroup's fields (``member_id`` empty: a new member)."""

    group_id: str
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[Protocol, ...]
    require_known_member_id: bool  # v4+ and dynamic: KIP-394
    supports_skip_assignment: bool  # v9+: KIP-814


@attrs.frozen(slots=True)
class SyncRequest:
    """A SyncGroup's fields; the leader's carries the assignment per member id."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignments: dict[str, bytes] = attrs.field(factory=dict)


@attrs.frozen(slots=True)
class MemberRef:
    """Who a Heartbeat or an OffsetCommit comes from."""

    group_id: str
    member_id: str
    generation_id: int
    group_instance_id: str | None = None


@attrs.frozen(slots=True)
class LeavingMember:
    """One member a LeaveGroup names (v3+: by group.instance.id alone too)."""

    member_id: str
    group_instance_id: str | None = None


# --- JoinGroup ----------------------------------------------------------------------------


def join_group(s: CoordinatorState, r: JoinRequest, now_ms: int) -> JoinResult | Parked:
    """``handleJoinGroup``."""
    s.now_ms = max(now_ms, s.now_ms)
    cfg = s.config
    if not cfg.min_session_timeout_ms <= r.session_timeout_ms <= cfg.max_session_timeout_ms:
        return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, r.member_id)
    unknown = r.member_id == UNKNOWN_MEMBER_ID
    g = s.groups.get(r.group_id)
    if g is None:
        if not unknown:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, r.member_id)
        g = s.groups[r.group_id] = Group(r.group_id, state_timestamp_ms=s.now_ms)
    reply: JoinResult | Parked
    if not _accept_joining_member(s, g, r.member_id):
        s.remove_member(g, r.member_id)
        reply = JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, UNKNOWN_MEMBER_ID)
    elif unknown:
        reply = _new_member_join(s, g, r)
    else:
        reply = _current_member_join(s, g, r)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        s.try_complete_join(g)
    return reply


def _accept_joining_member(s: CoordinatorState, g: Group, member_id: str) -> bool:
    """``acceptJoiningMember`` (group.max.size): while preparing, members already parked
    plus new ones up to the limit; otherwise members plus new ones up to the limit."""
    limit = s.config.max_size
    m = g.members.get(member_id)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return (m is not None and m.awaiting_join) or g.num_awaiting_join < limit
    if g.phase in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE):
        return m is not None or len(g.members) < limit
    return True


def _new_member_join(s: CoordinatorState, g: Group, r: JoinRequest) -> JoinResult | Parked:
    """``doNewMemberJoinGroup``: name the member; static rejoin, KIP-394, or join."""
    if not g.supports_protocols(r.protocol_type, (p.name for p in r.protocols)):
        return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, r.member_id)
    new_id = s.new_member_id(r.group_instance_id or r.client_id)
    if r.group_instance_id is not None:
        old_id = g.static_member_id(r.group_instance_id)
        if old_id is not None:
            return _replace_static_member(s, g, r, old_id, new_id)
        return _add_member_and_rebalance(s, g, r, new_id)
    if r.require_known_member_id:
        g.pending_members[new_id] = s.now_ms + r.session_timeout_ms
        return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id)
    return _add_member_and_rebalance(s, g, r, new_id)


def _add_member_and_rebalance(
    s: CoordinatorState, g: Group, r: JoinRequest, member_id: str
) -> Parked:
    """``addMemberAndRebalance``: a new member, parked until the join phase completes."""
    ticket = s.take_ticket()
    m = Member(
        member_id=member_id,
        group_instance_id=r.group_instance_id,
        client_id=r.client_id,
        client_host=r.client_host,
        session_timeout_ms=r.session_timeout_ms,
        rebalance_timeout_ms=r.rebalance_timeout_ms,
        protocol_type=r.protocol_type,
        protocols=r.protocols,
        join_ticket=ticket,
        is_new=True,
    )
    if g.phase is GroupPhase.PREPARING_REBALANCE and g.generation_id == 0:
        g.new_member_added = True
    g.add(m)
    s.touch(g, member_id, NEW_MEMBER_JOIN_TIMEOUT_MS)
    s.maybe_prepare_rebalance(g)
    return Parked(ticket)


def _update_member_and_rebalance(
    s: CoordinatorState, g: Group, r: JoinRequest, member_id: str
) -> Parked:
    """``updateMemberAndRebalance``: a known member rejoins, parked until the join
    phase completes."""
    ticket = s.take_ticket()
    _park_rejoin(s, g, r, member_id, ticket)
    s.maybe_prepare_rebalance(g)
    return Parked(ticket)


def _park_rejoin(
    s: CoordinatorState, g: Group, r: JoinRequest, member_id: str, ticket: int
) -> None:
    s.update_member(
        g,
        member_id,
        protocols=r.protocols,
        rebalance_timeout_ms=r.rebalance_timeout_ms,
        session_timeout_ms=r.session_timeout_ms,
        ticket=ticket,
    )


def _current_member_join(s: CoordinatorState, g: Group, r: JoinRequest) -> JoinResult | Parked:
    """``doCurrentMemberJoinGroup``."""
    if not g.supports_protocols(r.protocol_type, (p.name for p in r.protocols)):
        return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, r.member_id)
    mid = r.member_id
    if mid in g.pending_members:
        if r.group_instance_id is not None:
            # Kafka throws IllegalStateException here: the client sees UNKNOWN_SERVER_ERROR
            return JoinResult(ErrorCode.UNKNOWN_SERVER_ERROR, mid)
        return _add_member_and_rebalance(s, g, r, mid)
    err = validate_current_member(g, mid, r.group_instance_id)
    if err is not ErrorCode.NONE:
        return JoinResult(err, mid)
    same = g.members[mid].protocols == r.protocols
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return _update_member_and_rebalance(s, g, r, mid)
    if g.phase is GroupPhase.COMPLETING_REBALANCE:
        # a member that missed its JoinGroup response gets it again
        return member_join_result(g, mid) if same else _update_member_and_rebalance(s, g, r, mid)
    if g.phase is GroupPhase.STABLE:
        # the leader rejoining forces a rebalance (e.g. its topic metadata changed)
        if g.leader_id == mid or not same:
            return _update_member_and_rebalance(s, g, r, mid)
        return member_join_result(g, mid)
    return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, mid)


def _replace_static_member(
    s: CoordinatorState, g: Group, r: JoinRequest, old_id: str, new_id: str
) -> Parked:
    """``updateStaticMemberAndRebalance`` (KIP-345): a static member rejoining with an
    empty member id takes a new id; requests parked under the old id get
    FENCED_INSTANCE_ID.  In a Stable group whose protocol would not change, the group's
    record is written and then the member is answered with the current generation."""
    current_leader = g.leader_id
    m = g.members[old_id]
    old = (m.protocols, m.rebalance_timeout_ms, m.session_timeout_ms)
    if m.join_ticket is not None:
        s.answer(m.join_ticket, JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
    if m.sync_ticket is not None:
        s.answer(m.sync_ticket, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
    m.join_ticket = m.sync_ticket = None
    g.replace_static_member(old_id, new_id)
    s.touch(g, new_id)
    ticket = s.take_ticket()
    _park_rejoin(s, g, r, new_id, ticket)
    if g.phase is GroupPhase.STABLE:
        if g.protocol_name != g.select_protocol():
            s.maybe_prepare_rebalance(g)
            return Parked(ticket)
        generation = g.generation_id

        def on_stored(error: ErrorCode, now_ms: int) -> None:
            s.now_ms = max(now_ms, s.now_ms)
            member = g.members.get(new_id)
            if (
                not s.is_current(g)
                or g.phase is not GroupPhase.STABLE
                or g.generation_id != generation
                or member is None
                or member.join_ticket != ticket
            ):
                return  # the group moved on: its rebalance answers the member
            if error is not ErrorCode.NONE:
                # the new member id was not persisted: the old one stays
                member.protocols, member.rebalance_timeout_ms, member.session_timeout_ms = old
                member.join_ticket = None
                g.replace_static_member(new_id, old_id)
                s.touch(g, old_id)
                s.answer(
                    ticket,
                    JoinResult(
                        error,
                        UNKNOWN_MEMBER_ID,
                        g.generation_id,
                        g.protocol_type,
                        g.protocol_name,
                        current_leader or NO_LEADER,
                    ),
                )
            elif r.supports_skip_assignment:
                lead = g.leader_id == new_id
                resp = attrs.evolve(member_join_result(g, new_id), skip_assignment=lead)
                s.answer_join(g, new_id, resp)
            else:
                # the old leader id, so that a rejoining leader does not run the assignor
                resp = attrs.evolve(
                    member_join_result(g, new_id),
                    leader_id=current_leader or NO_LEADER,
                    members=(),
                )
                s.answer_join(g, new_id, resp)

        s.store(g, on_stored=on_stored)
    elif g.phase is GroupPhase.COMPLETING_REBALANCE:
        s.prepare_rebalance(g)
    return Parked(ticket)


# --- SyncGroup, Heartbeat, LeaveGroup -----------------------------------------------------


def sync_group(s: CoordinatorState, r: SyncRequest, now_ms: int) -> SyncResult | Parked:
    """``handleSyncGroup``: followers park until the leader's SyncGroup brings the
    assignment, which is written to the log and then handed out; the group is Stable."""
    s.now_ms = max(now_ms, s.now_ms)
    g = s.groups.get(r.group_id)
    if g is None:
        return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
    member_id = r.member_id
    err = validate_current_member(g, member_id, r.group_instance_id)
    if err is ErrorCode.NONE and r.generation_id != g.generation_id:
        err = ErrorCode.ILLEGAL_GENERATION
    if err is ErrorCode.NONE and (
        (r.protocol_type is not None and r.protocol_type != g.protocol_type)
        or (r.protocol_name is not None and r.protocol_name != g.protocol_name)
    ):
        err = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    if err is not ErrorCode.NONE:
        return SyncResult(err)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
    if g.phase not in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE):
        return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
    g.pending_sync_members.discard(member_id)
    if not g.pending_sync_members:
        g.sync_deadline_ms = None
    m = g.members[member_id]
    if g.phase is GroupPhase.STABLE:
        s.touch(g, member_id)
        return SyncResult(ErrorCode.NONE, m.assignment, g.protocol_type, g.protocol_name)
    ticket = s.take_ticket()
    if m.sync_ticket is not None:
        s.answer(m.sync_ticket, Abandoned())
    m.sync_ticket = ticket
    if g.leader_id == member_id:
        assignment = {x: r.assignments.get(x, b"") for x in g.members}
        assignment = _mutated_assignment(assignment, r.assignments)
        generation = g.generation_id

        def on_stored(error: ErrorCode, now_ms: int) -> None:
            s.now_ms = max(now_ms, s.now_ms)
            if (
                not s.is_current(g)
                or g.phase is not GroupPhase.COMPLETING_REBALANCE
                or g.generation_id != generation
            ):
                return  # the group moved on while the record was written
            if error is not ErrorCode.NONE:
                s.reset_and_propagate_assignment_error(g, error)
                s.maybe_prepare_rebalance(g)
            else:
                s.set_and_propagate_assignment(g, assignment)
                g.transition(GroupPhase.STABLE, s.now_ms)

        s.store(g, assignment, on_stored)
    return Parked(ticket)


def _mutated_assignment(assignment: dict[str, bytes], sent: dict[str, bytes]) -> dict[str, bytes]:
    """The assignment as the seeded defects ``two-members-one-partition`` and
    ``assignment-to-wrong-member`` hand it out (unchanged without them)."""
    if mutants.active(mutants.TWO_MEMBERS_ONE_PARTITION) and sent:
        first = next(iter(sent.values()))
        return dict.fromkeys(assignment, first)
    if mutants.active(mutants.ASSIGNMENT_TO_WRONG_MEMBER) and len(assignment) > 1:
        ids = sorted(assignment)
        return {m: assignment[ids[(i + 1) % len(ids)]] for i, m in enumerate(ids)}
    return assignment


def heartbeat(s: CoordinatorState, r: MemberRef, now_ms: int) -> ErrorCode:
    """``handleHeartbeat``: restarts the member's session; in PreparingRebalance the
    answer REBALANCE_IN_PROGRESS tells the member to rejoin."""
    s.now_ms = max(now_ms, s.now_ms)
    g = s.groups.get(r.group_id)
    if g is None:
        return ErrorCode.UNKNOWN_MEMBER_ID
    err = validate_current_member(g, r.member_id, r.group_instance_id)
    if err is ErrorCode.NONE and r.generation_id != g.generation_id:
        err = ErrorCode.ILLEGAL_GENERATION
    if err is not ErrorCode.NONE:
        return err
    if g.phase is GroupPhase.EMPTY:
        return ErrorCode.UNKNOWN_MEMBER_ID
    s.touch(g, r.member_id)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        if mutants.active(mutants.HEARTBEAT_IGNORES_REBALANCE):
            return ErrorCode.NONE
        return ErrorCode.REBALANCE_IN_PROGRESS
    return ErrorCode.NONE


def leave_group(
    s: CoordinatorState, group_id: str, members: list[LeavingMember], now_ms: int
) -> list[ErrorCode]:
    """``handleLeaveGroup``: each named member leaves (a pending KIP-394 id is
    forgotten; an admin may name a static member by instance id alone); each member
    that leaves makes the group rebalance.  One error per named member."""
    s.now_ms = max(now_ms, s.now_ms)
    g = s.groups.get(group_id)
    if g is None:
        return [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
    errors = []
    for leaving in members:
        if leaving.member_id == UNKNOWN_MEMBER_ID:
            bound = g.static_member_id(leaving.group_instance_id)
            if bound is None:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            s.remove_member_and_update_group(g, bound)
        elif leaving.member_id in g.pending_members:
            s.remove_pending_member_and_update_group(g, leaving.member_id)
        else:
            err = validate_current_member(g, leaving.member_id, leaving.group_instance_id)
            if err is not ErrorCode.NONE:
                errors.append(err)
                continue
            s.remove_member_and_update_group(g, leaving.member_id)
        errors.append(ErrorCode.NONE)
    return errors


# --- OffsetCommit's membership check ------------------------------------------------------


def validate_commit(s: CoordinatorState, r: MemberRef, now_ms: int) -> ErrorCode:
    """``handleCommitOffsets``/``validateOffsetCommit`` up to the write: generation -1
    to an Empty group, or to an unknown one (then created, as Kafka does), is accepted
    whatever the member id (Kafka 3.6+: the admin client's or a consumer's outside group
    management); a commit to an unknown group with a generation is ILLEGAL_GENERATION;
    otherwise the member must be current and the generation the group's; in
    CompletingRebalance REBALANCE_IN_PROGRESS.  A valid member's commit restarts its
    session."""
    s.now_ms = max(now_ms, s.now_ms)
    group_id, member_id, generation_id = r.group_id, r.member_id, r.generation_id
    group_instance_id = r.group_instance_id
    g = s.groups.get(group_id)
    if g is None:
        if generation_id >= 0:
            return ErrorCode.ILLEGAL_GENERATION
        g = s.groups[group_id] = Group(group_id, state_timestamp_ms=s.now_ms)
    if generation_id < 0 and g.phase is GroupPhase.EMPTY:
        return ErrorCode.NONE
    if generation_id >= 0 or member_id != UNKNOWN_MEMBER_ID or group_instance_id is not None:
        err = validate_current_member(g, member_id, group_instance_id)
        if err is ErrorCode.NONE and generation_id != g.generation_id:
            err = ErrorCode.ILLEGAL_GENERATION
            if mutants.active(mutants.COMMIT_IGNORES_GENERATION) and generation_id >= 0:
                err = ErrorCode.NONE
    else:
        err = ErrorCode.UNKNOWN_MEMBER_ID  # only members may commit to a non-empty group
    if err is not ErrorCode.NONE:
        return err
    if g.phase is GroupPhase.COMPLETING_REBALANCE:
        return ErrorCode.REBALANCE_IN_PROGRESS
    if g.phase in (GroupPhase.STABLE, GroupPhase.PREPARING_REBALANCE):
        s.touch(g, member_id)
    return ErrorCode.NONE
