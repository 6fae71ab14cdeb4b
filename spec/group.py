"""The group coordinator: consumer-group membership and the rebalance protocol, as a state machine.

This module owns the request handlers of Kafka's classic group protocol as the ZooKeeper-era
``GroupCoordinator`` (Kafka 3.x) answers them: JoinGroup, SyncGroup, Heartbeat, LeaveGroup;
and ``step``, the one transition function over every group-coordinator action (the offset
requests are handled in ``spec.offsets``, the lifecycle in ``spec.group_load``).

Blocking requests.  JoinGroup and SyncGroup may park in purgatory.  ``step`` then replies
``Ok(state, Pending(ticket))``; when a later action (another member's request, a ``Tick``)
completes the phase, the response lands in the state's outbox as ``Completed(ticket,
response)``.  A response produced by the very action that sent the request is returned
directly as the reply instead.  A harness drives a real coordinator alongside::

    out = step(model, JoinGroup("g", ...))          # and send the same JoinGroup
    if isinstance(out.reply, Pending):               # real response not due yet
        inflight[out.reply.ticket] = request
    model, due = take_responses(out.state)           # responses the model now owes

Every response a real broker sends for a parked request must match the model's
``Completed`` entry for that ticket once the model has produced it; ``next_deadline`` says
how far to ``Tick`` the model for the next timer-driven completion.  ``Abandoned`` marks a
request Kafka never answers.  Member ids are compared structurally (see
``spec.group_state``).

Errors follow ``Outcome``: a request refused with a bare error is ``Rejected(state,
error)`` (the state may still change: JoinGroup creates the group first, Heartbeat in
PreparingRebalance restarts the session timer); parked requests that end in an error carry
it in the response's ``error``.  MEMBER_ID_REQUIRED is the KIP-394 handshake, not a
failure: it is ``Ok`` with a ``JoinResponse`` whose ``error`` says so and whose
``member_id`` the client must rejoin with; :func:`reply_error` reads any reply's error.
"""

from __future__ import annotations

from typing import TypeVar

import attrs

from spec.errors import ErrorCode
from spec.group_actions import (
    CoordinatorElected,
    CoordinatorLoaded,
    CoordinatorResigned,
    CoordinatorShutdown,
    CoordinatorStartup,
    Heartbeat,
    JoinGroup,
    LeaveGroup,
    LeaveResponse,
    MemberIdentity,
    MemberLeaveResult,
    SyncGroup,
    Tick,
)
from spec.group_invariants import (
    generation_never_decreases,
    group_assignment_exclusive,
    group_well_formed,
)
from spec.group_join import join_group
from spec.group_load import elected, loaded, resigned, shutdown, startup
from spec.group_rebalance import (
    answer,
    put,
    put_member,
    remove_member_and_update_group,
    remove_pending_member_and_update_group,
    set_and_propagate_assignment,
    settle,
    status_error,
    store_group,
    take_ticket,
    touch,
    transition,
    validate_current_member,
)
from spec.group_state import (
    UNKNOWN_MEMBER_ID,
    Abandoned,
    Completed,
    Coordinator,
    GroupPhase,
    JoinResponse,
    ParkedReply,
    Pending,
    SyncResponse,
    coordinator,
)
from spec.group_timers import advance, next_deadline
from spec.offsets import (
    DeleteTopicOffsets,
    ExpireOffsets,
    OffsetCommit,
    OffsetCommitResponse,
    OffsetFetch,
    OffsetFetchResponse,
    delete_topic_offsets,
    expire_offsets,
    offset_commit,
    offset_fetch,
)
from spec.outcome import Ok, Outcome, Rejected

__all__ = [
    "Completed",
    "CoordinatorElected",
    "CoordinatorLoaded",
    "CoordinatorResigned",
    "CoordinatorShutdown",
    "CoordinatorStartup",
    "DeleteTopicOffsets",
    "ExpireOffsets",
    "GroupAction",
    "Heartbeat",
    "JoinGroup",
    "JoinResponse",
    "LeaveGroup",
    "OffsetCommit",
    "OffsetFetch",
    "Pending",
    "Reply",
    "SyncGroup",
    "SyncResponse",
    "Tick",
    "group_phase",
    "completed_responses",
    "coordinator",
    "generation_never_decreases",
    "group_assignment_exclusive",
    "group_well_formed",
    "heartbeat",
    "in_flight",
    "join_group",
    "leave_group",
    "next_deadline",
    "reply_error",
    "step",
    "sync_group",
    "take_responses",
]

GroupAction = (
    JoinGroup
    | SyncGroup
    | Heartbeat
    | LeaveGroup
    | Tick
    | OffsetCommit
    | OffsetFetch
    | ExpireOffsets
    | DeleteTopicOffsets
    | CoordinatorShutdown
    | CoordinatorStartup
    | CoordinatorElected
    | CoordinatorLoaded
    | CoordinatorResigned
)
Reply = (
    JoinResponse
    | SyncResponse
    | Pending
    | LeaveResponse
    | OffsetCommitResponse
    | OffsetFetchResponse
    | None
)


# --- the response queue ----------------------------------------------------------------


def completed_responses(state: Coordinator) -> tuple[Completed, ...]:
    """Responses to parked requests that are due and not yet taken, in completion order."""
    return state.outbox


def take_responses(state: Coordinator) -> tuple[Coordinator, tuple[Completed, ...]]:
    """The due responses, and the state without them (each is delivered once)."""
    return attrs.evolve(state, outbox=()), state.outbox


def in_flight(state: Coordinator) -> frozenset[int]:
    """Tickets of requests still parked (neither answered nor abandoned)."""
    return frozenset(
        t
        for g in state.groups.values()
        for m in g.members.values()
        for t in (m.join_ticket, m.sync_ticket)
        if t is not None
    )


def group_phase(state: Coordinator, group_id: str) -> GroupPhase:
    """The group's state as DescribeGroups names it (Dead for a group the coordinator
    does not hold)."""
    g = state.groups.get(group_id)
    return GroupPhase.DEAD if g is None else g.phase


def reply_error(outcome: Outcome[Coordinator, Reply]) -> ErrorCode:
    """The error code the client sees for ``outcome`` (NONE for a parked request)."""
    if isinstance(outcome, Rejected):
        return outcome.error
    reply = outcome.reply
    if isinstance(reply, JoinResponse | SyncResponse):
        return reply.error
    return ErrorCode.NONE


_R = TypeVar("_R", ParkedReply, LeaveResponse, OffsetCommitResponse, OffsetFetchResponse, None)


def _widen(out: Outcome[Coordinator, _R]) -> Outcome[Coordinator, Reply]:
    return out if isinstance(out, Rejected) else Ok(out.state, out.reply)


# --- SyncGroup, Heartbeat, LeaveGroup --------------------------------------------------


def sync_group(c: Coordinator, a: SyncGroup) -> Outcome[Coordinator, ParkedReply]:
    """``handleSyncGroup``: followers park until the leader's SyncGroup brings the
    assignment; the group is then Stable."""
    err = status_error(c, a.group_id, empty_id_ok=False)
    if err is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
        return Rejected(c, ErrorCode.REBALANCE_IN_PROGRESS)  # older clients cannot take it
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    g = c.groups.get(a.group_id)
    if g is None:
        return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)
    err = validate_current_member(g, a.member_id, a.group_instance_id)
    if err is ErrorCode.NONE and a.generation_id != g.generation_id:
        err = ErrorCode.ILLEGAL_GENERATION
    if err is ErrorCode.NONE and (
        (a.protocol_type is not None and a.protocol_type != g.protocol_type)
        or (a.protocol_name is not None and a.protocol_name != g.protocol_name)
    ):
        err = ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return Rejected(c, ErrorCode.REBALANCE_IN_PROGRESS)
    if g.phase not in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE):
        return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)
    gid, mid = a.group_id, a.member_id
    pending = g.pending_sync_members - {mid}
    g = attrs.evolve(
        g,
        pending_sync_members=pending,
        sync_deadline_ms=g.sync_deadline_ms if pending else None,
    )
    c = put(c, g)
    if g.phase is GroupPhase.STABLE:
        m = g.members[mid]
        resp = SyncResponse(ErrorCode.NONE, m.assignment, g.protocol_type, g.protocol_name)
        return Ok(touch(c, gid, mid), resp)
    c, ticket = take_ticket(c)
    m = g.members[mid]
    if m.sync_ticket is not None:
        c = answer(c, m.sync_ticket, Abandoned())
    c = put_member(c, gid, attrs.evolve(m, sync_ticket=ticket))
    if g.leader_id == mid:
        assignment = {x: a.assignments.get(x, b"") for x in g.members}
        c = put(c, store_group(c.groups[gid], assignment))
        c = set_and_propagate_assignment(c, gid, assignment)
        c = put(c, transition(c.groups[gid], GroupPhase.STABLE, c.now_ms))
    return settle(Ok(c, Pending(ticket)))


def heartbeat(c: Coordinator, a: Heartbeat) -> Outcome[Coordinator, None]:
    """``handleHeartbeat``: restarts the member's session timer; in PreparingRebalance the
    answer REBALANCE_IN_PROGRESS tells the member to rejoin."""
    err = status_error(c, a.group_id, empty_id_ok=False)
    if err is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
        return Ok(c, None)  # Kafka answers blindly while loading
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    g = c.groups.get(a.group_id)
    if g is None:
        return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)
    err = validate_current_member(g, a.member_id, a.group_instance_id)
    if err is ErrorCode.NONE and a.generation_id != g.generation_id:
        err = ErrorCode.ILLEGAL_GENERATION
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    if g.phase is GroupPhase.EMPTY:
        return Rejected(c, ErrorCode.UNKNOWN_MEMBER_ID)
    c = touch(c, a.group_id, a.member_id)
    if g.phase is GroupPhase.PREPARING_REBALANCE:
        return Rejected(c, ErrorCode.REBALANCE_IN_PROGRESS)
    return Ok(c, None)


def leave_group(c: Coordinator, a: LeaveGroup) -> Outcome[Coordinator, LeaveResponse]:
    """``handleLeaveGroup``: each named member leaves (a pending KIP-394 id is forgotten);
    a member that leaves triggers a rebalance."""
    err = status_error(c, a.group_id, empty_id_ok=False)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    gid = a.group_id
    if gid not in c.groups:
        return Ok(
            c, LeaveResponse(tuple(_result(i, ErrorCode.UNKNOWN_MEMBER_ID) for i in a.members))
        )
    results = []
    for ident in a.members:
        g = c.groups[gid]
        if ident.member_id == UNKNOWN_MEMBER_ID:
            bound = g.static_member_id(ident.group_instance_id)
            if bound is None:
                results.append(_result(ident, ErrorCode.UNKNOWN_MEMBER_ID))
                continue
            c = remove_member_and_update_group(c, gid, bound)
        elif ident.member_id in g.pending_members:
            c = remove_pending_member_and_update_group(c, gid, ident.member_id)
        else:
            err = validate_current_member(g, ident.member_id, ident.group_instance_id)
            if err is not ErrorCode.NONE:
                results.append(_result(ident, err))
                continue
            c = remove_member_and_update_group(c, gid, ident.member_id)
        results.append(_result(ident, ErrorCode.NONE))
    return Ok(c, LeaveResponse(tuple(results)))


def _result(ident: MemberIdentity, error: ErrorCode) -> MemberLeaveResult:
    return MemberLeaveResult(ident.member_id, ident.group_instance_id, error)


# --- the transition function -----------------------------------------------------------


def step(state: Coordinator, action: GroupAction) -> Outcome[Coordinator, Reply]:
    """Apply one action to the group coordinator.  Never raises for an action that is
    invalid in the state: it is ``Rejected`` with Kafka's error (INVALID_REQUEST for a
    lifecycle event that cannot happen in the state, or a negative ``Tick``)."""
    match action:
        case JoinGroup():
            return _widen(join_group(state, action))
        case SyncGroup():
            return _widen(sync_group(state, action))
        case Heartbeat():
            return _widen(heartbeat(state, action))
        case LeaveGroup():
            return _widen(leave_group(state, action))
        case OffsetCommit():
            return _widen(offset_commit(state, action))
        case OffsetFetch():
            return _widen(offset_fetch(state, action))
        case Tick(ms=ms):
            if ms < 0:
                return Rejected(state, ErrorCode.INVALID_REQUEST)
            return Ok(advance(state, state.now_ms + ms), None)
        case ExpireOffsets():
            return Ok(expire_offsets(state), None)
        case DeleteTopicOffsets(topics=topics):
            return Ok(delete_topic_offsets(state, topics), None)
        case CoordinatorShutdown():
            return _widen(shutdown(state))
        case CoordinatorStartup():
            return _widen(startup(state))
        case CoordinatorElected():
            return _widen(elected(state))
        case CoordinatorLoaded():
            return _widen(loaded(state))
        case CoordinatorResigned():
            return _widen(resigned(state))
