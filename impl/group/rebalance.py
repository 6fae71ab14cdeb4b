"""The group coordinator's state and the steps it takes on its own, sans-IO.

``CoordinatorState`` holds the groups this broker coordinates.  Its steps are Kafka 3.x
``GroupCoordinator``'s: ``prepareRebalance``, ``onCompleteJoin`` (a new generation), the
propagation of the leader's assignment, member removal, and the purgatories' deadlines
(a member's session, a KIP-394 pending member id, the DelayedJoin / InitialDelayedJoin,
the DelayedSync), fired by ``advance``.  The request rules live in
``impl.group.requests``; ``impl.group.coordinator`` drives all of it from asyncio.

What the driver must do after every call is queued here: ``outbox`` holds the answers
owed to parked requests (by ticket), ``stores`` the group metadata records to write to
``__consumer_offsets``; a store may carry ``on_stored``, the step to take once the write
is done (Kafka's ``storeGroup`` callback).  ``next_deadline`` says when to call
``advance`` next.  Time is whatever ``now_ms`` the driver passes in.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import attrs

from impl import mutants
from impl.group.membership import (
    UNKNOWN_MEMBER_ID,
    Abandoned,
    Group,
    GroupPhase,
    JoinResult,
    JoinTimer,
    Protocol,
    SyncResult,
    member_join_result,
)
from impl.group.records import GroupRecord
from spec.errors import ErrorCode

Answer = JoinResult | SyncResult | Abandoned

_PENDING, _HEARTBEAT, _JOIN, _SYNC = 0, 1, 2, 3
Timer = tuple[int, int, str, str]
"""(deadline ms, kind, group id, member id or "") - fired in this order at one instant."""


@attrs.frozen(slots=True)
class GroupConfig:
    """The broker's ``group.*`` settings."""

    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000
    initial_rebalance_delay_ms: int = 3_000
    max_size: int = 2**31 - 1


@attrs.frozen(slots=True)
class StoreGroup:
    """A group metadata record (None: a tombstone) to append to ``__consumer_offsets``;
    ``on_stored(error, now_ms)`` continues once the append is done."""

    group_id: str
    record: GroupRecord | None
    on_stored: Callable[[ErrorCode, int], None] | None = None


def random_member_id(prefix: str) -> str:
    """``GroupMetadata.generateMemberId``: ``<client.id or group.instance.id>-<UUID>``."""
    return f"{prefix}-{uuid.uuid4()}"


class CoordinatorState:
    """The groups of one broker's group coordinator, with what it owes its callers."""

    def __init__(
        self,
        config: GroupConfig | None = None,
        new_member_id: Callable[[str], str] = random_member_id,
    ) -> None:
        self.config = config or GroupConfig()
        self.new_member_id = new_member_id
        self.groups: dict[str, Group] = {}
        self.now_ms = 0
        self.outbox: list[tuple[int, Answer]] = []
        self.stores: list[StoreGroup] = []
        self._next_ticket = 1

    # --- plumbing ---------------------------------------------------------------------

    def take_outbox(self) -> list[tuple[int, Answer]]:
        out, self.outbox = self.outbox, []
        return out

    def take_stores(self) -> list[StoreGroup]:
        out, self.stores = self.stores, []
        return out

    def take_ticket(self) -> int:
        """A fresh ticket for a request about to be parked."""
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    def answer(self, ticket: int, response: Answer) -> None:
        self.outbox.append((ticket, response))

    def store(
        self,
        g: Group,
        assignment: dict[str, bytes] | None = None,
        on_stored: Callable[[ErrorCode, int], None] | None = None,
    ) -> None:
        """Queue the group's metadata record (``storeGroup``)."""
        self.stores.append(StoreGroup(g.group_id, g.to_record(assignment), on_stored))

    def is_current(self, g: Group) -> bool:
        """Whether ``g`` is still the group held under its id (not unloaded or dead)."""
        return self.groups.get(g.group_id) is g

    # --- members ----------------------------------------------------------------------

    def touch(self, g: Group, member_id: str, timeout_ms: int | None = None) -> None:
        """``completeAndScheduleNextExpiration``: the member is alive now and must be heard
        from again within its session timeout (or ``timeout_ms``)."""
        m = g.members.get(member_id)
        if m is not None:
            t = m.session_timeout_ms if timeout_ms is None else timeout_ms
            m.heartbeat_deadline_ms = self.now_ms + t

    def answer_join(self, g: Group, member_id: str, response: JoinResult) -> None:
        """``maybeInvokeJoinCallback``: answer the member's parked JoinGroup, if any."""
        m = g.members.get(member_id)
        if m is not None and m.join_ticket is not None:
            self.answer(m.join_ticket, response)
            m.join_ticket = None

    def answer_sync(self, g: Group, member_id: str, response: SyncResult) -> bool:
        """``maybeInvokeSyncCallback``: answer the member's parked SyncGroup, if any."""
        m = g.members.get(member_id)
        if m is None or m.sync_ticket is None:
            return False
        self.answer(m.sync_ticket, response)
        m.sync_ticket = None
        return True

    def remove_member(self, g: Group, member_id: str) -> None:
        """``GroupMetadata.remove``: requests the member still had parked are forgotten."""
        m = g.remove(member_id)
        if m is not None:
            for ticket in (m.join_ticket, m.sync_ticket):
                if ticket is not None:
                    self.answer(ticket, Abandoned())

    def update_member(
        self,
        g: Group,
        member_id: str,
        *,
        protocols: tuple[Protocol, ...],
        rebalance_timeout_ms: int,
        session_timeout_ms: int,
        ticket: int,
    ) -> None:
        """``updateMember``: new protocols and timeouts, and its JoinGroup parked under
        ``ticket`` (an earlier parked JoinGroup is never answered)."""
        m = g.members[member_id]
        if m.join_ticket is not None:
            self.answer(m.join_ticket, Abandoned())
        m.protocols = protocols
        m.rebalance_timeout_ms = rebalance_timeout_ms
        m.session_timeout_ms = session_timeout_ms
        m.join_ticket = ticket

    # --- the rebalance ----------------------------------------------------------------

    def propagate_assignment(self, g: Group, error: ErrorCode) -> None:
        """``propagateAssignment``: answer every parked SyncGroup with the member's
        assignment (or ``error``) and restart the session of each member answered."""
        ok = error is ErrorCode.NONE
        ptype, pname = (g.protocol_type, g.protocol_name) if ok else (None, None)
        for mid in g.member_ids():
            m = g.members[mid]
            if self.answer_sync(g, mid, SyncResult(error, m.assignment, ptype, pname)):
                self.touch(g, mid)

    def set_and_propagate_assignment(self, g: Group, assignment: dict[str, bytes]) -> None:
        """``setAndPropagateAssignment``: members the leader left out get empty bytes."""
        for mid, m in g.members.items():
            m.assignment = assignment.get(mid, b"")
        self.propagate_assignment(g, ErrorCode.NONE)

    def reset_and_propagate_assignment_error(self, g: Group, error: ErrorCode) -> None:
        """``resetAndPropagateAssignmentError``: clear assignments, answer SyncGroups."""
        for m in g.members.values():
            m.assignment = b""
        self.propagate_assignment(g, error)

    def prepare_rebalance(self, g: Group) -> None:
        """``prepareRebalance``: members awaiting sync are told REBALANCE_IN_PROGRESS; the
        group enters PreparingRebalance with its DelayedJoin (the rebalance timeout) or,
        when Empty, the InitialDelayedJoin (``group.initial.rebalance.delay.ms``)."""
        if g.phase is GroupPhase.COMPLETING_REBALANCE:
            self.reset_and_propagate_assignment_error(g, ErrorCode.REBALANCE_IN_PROGRESS)
        now = self.now_ms
        if g.phase is GroupPhase.EMPTY:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(g.rebalance_timeout_ms - delay, 0)
            timer = JoinTimer(now + delay, initial=True, delay_ms=delay, remaining_ms=remaining)
        else:
            timer = JoinTimer(now + g.rebalance_timeout_ms)
        g.join_timer = timer
        g.pending_sync_members = set()
        g.sync_deadline_ms = None
        g.transition(GroupPhase.PREPARING_REBALANCE, now)
        self.try_complete_join(g)

    def maybe_prepare_rebalance(self, g: Group) -> None:
        """``maybePrepareRebalance``: rebalance unless one is already being prepared."""
        if g.phase in (GroupPhase.STABLE, GroupPhase.COMPLETING_REBALANCE, GroupPhase.EMPTY):
            self.prepare_rebalance(g)

    def try_complete_join(self, g: Group) -> None:
        """The join purgatory's ``checkAndComplete``: finish the join phase now if every
        member has rejoined (an InitialDelayedJoin never finishes early)."""
        t = g.join_timer
        if (
            g.phase is GroupPhase.PREPARING_REBALANCE
            and t is not None
            and not t.initial
            and g.all_members_joined
        ):
            self.complete_join(g)

    def complete_join(self, g: Group) -> None:
        """``onCompleteJoin``: dynamic members that did not rejoin are removed; if no
        member rejoined, wait another rebalance timeout; otherwise a new generation:
        every parked JoinGroup is answered (the leader gets the member list) and each
        member must send SyncGroup within the rebalance timeout.  A group left without
        members becomes Empty and its record is written."""
        for mid in g.member_ids():
            m = g.members[mid]
            if not m.awaiting_join and not m.is_static:
                self.remove_member(g, mid)
        g.join_timer = None
        now = self.now_ms
        if g.leader_id is not None and not g.members[g.leader_id].awaiting_join:
            joined = [mid for mid in g.member_ids() if g.members[mid].awaiting_join]
            if not joined:
                g.join_timer = JoinTimer(now + g.rebalance_timeout_ms)
                return
            g.leader_id = joined[0]
        if not (mutants.active(mutants.GENERATION_NOT_BUMPED) and g.generation_id > 0):
            g.generation_id += 1
        g.pending_sync_members = set()
        if not g.members:
            g.protocol_name = None
            g.transition(GroupPhase.EMPTY, now)
            self.store(g, {})
            return
        g.protocol_name = g.select_protocol()
        g.transition(GroupPhase.COMPLETING_REBALANCE, now)
        for mid in g.member_ids():
            self.answer_join(g, mid, member_join_result(g, mid))
            self.touch(g, mid)
            g.members[mid].is_new = False
        g.pending_sync_members = set(g.members)
        g.sync_deadline_ms = now + g.rebalance_timeout_ms

    def remove_member_and_update_group(self, g: Group, member_id: str) -> None:
        """``removeMemberAndUpdateGroup``: a parked JoinGroup gets UNKNOWN_MEMBER_ID, the
        member goes, and the group rebalances (or re-checks its join phase)."""
        self.answer_join(g, member_id, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, UNKNOWN_MEMBER_ID))
        self.remove_member(g, member_id)
        if g.phase in (GroupPhase.STABLE, GroupPhase.COMPLETING_REBALANCE):
            self.maybe_prepare_rebalance(g)
        elif g.phase is GroupPhase.PREPARING_REBALANCE:
            self.try_complete_join(g)

    def remove_pending_member_and_update_group(self, g: Group, member_id: str) -> None:
        """``removePendingMemberAndUpdateGroup``: forget a KIP-394 pending member id."""
        g.pending_members.pop(member_id, None)
        if g.phase is GroupPhase.PREPARING_REBALANCE:
            self.try_complete_join(g)

    # --- time -------------------------------------------------------------------------

    def timers(self) -> Iterator[Timer]:
        """Every armed deadline."""
        for gid, g in self.groups.items():
            for mid, deadline in g.pending_members.items():
                yield deadline, _PENDING, gid, mid
            for mid, m in g.members.items():
                if m.heartbeat_deadline_ms is not None:
                    yield m.heartbeat_deadline_ms, _HEARTBEAT, gid, mid
            if g.join_timer is not None:
                yield g.join_timer.deadline_ms, _JOIN, gid, ""
            if g.sync_deadline_ms is not None:
                yield g.sync_deadline_ms, _SYNC, gid, ""

    def next_deadline(self) -> int | None:
        """The earliest armed deadline (ms), or None."""
        return min((t[0] for t in self.timers()), default=None)

    def advance(self, now_ms: int) -> None:
        """Let time run to ``now_ms``, firing every deadline due on the way in deadline
        order, each at its own time (a late timer fires as if on time, so what it arms
        counts from its deadline).  A timer re-armed at the same instant fires again,
        unless its firing changed nothing (a DelayedJoin with rebalance timeout 0 that
        no member rejoined): that one waits until time moves on."""
        idle: set[tuple[int, str, str]] = set()
        while True:
            due = [t for t in self.timers() if t[0] <= now_ms and t[1:] not in idle]
            if not due:
                break
            t = min(due)
            if t[0] > self.now_ms:
                idle = set()
                self.now_ms = t[0]
            if not self._fire(t):
                idle.add(t[1:])
        self.now_ms = max(now_ms, self.now_ms)

    def _fire(self, t: Timer) -> bool:
        """Fire one timer; whether that changed anything."""
        _, kind, gid, mid = t
        g = self.groups[gid]
        if kind == _PENDING:
            self.remove_pending_member_and_update_group(g, mid)
        elif kind == _HEARTBEAT:
            m = g.members[mid]
            if m.heartbeat_satisfied:  # parked in the rebalance: alive
                m.heartbeat_deadline_ms = None
            else:
                self.remove_member_and_update_group(g, mid)
        elif kind == _JOIN:
            before = (g.phase, g.generation_id, len(g.members), g.join_timer, g.new_member_added)
            self._expire_join(g)
            after = (g.phase, g.generation_id, len(g.members), g.join_timer, g.new_member_added)
            return before != after
        else:
            self._expire_sync(g)
        return True

    def _expire_join(self, g: Group) -> None:
        """The join phase's deadline: an InitialDelayedJoin extends itself while new
        members arrive; otherwise the join phase completes."""
        t = g.join_timer
        assert t is not None
        if t.initial and g.new_member_added and t.remaining_ms != 0:
            delay = min(self.config.initial_rebalance_delay_ms, t.remaining_ms)
            remaining = max(t.remaining_ms - t.delay_ms, 0)
            g.join_timer = JoinTimer(
                self.now_ms + delay, initial=True, delay_ms=delay, remaining_ms=remaining
            )
            g.new_member_added = False
            return
        g.join_timer = None
        self.complete_join(g)

    def _expire_sync(self, g: Group) -> None:
        """``onExpirePendingSync``: members that never sent SyncGroup within the
        rebalance timeout are removed and the group rebalances."""
        g.sync_deadline_ms = None
        live = g.phase in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE)
        if not live or not g.pending_sync_members:
            return
        for mid in sorted(g.pending_sync_members):
            self.remove_member(g, mid)
        self.prepare_rebalance(g)

    # --- loading and unloading --------------------------------------------------------

    def load(self, groups: dict[str, GroupRecord], now_ms: int) -> None:
        """``onGroupLoaded``: each group as its last record says (Stable with members,
        else Empty); every member's session restarts now; a group over
        ``group.max.size`` rebalances."""
        self.now_ms = max(now_ms, self.now_ms)
        for gid, record in groups.items():
            g = Group.from_record(gid, record)
            self.groups[gid] = g
            if len(g.members) > self.config.max_size:
                self.prepare_rebalance(g)
            for mid in g.member_ids():
                self.touch(g, mid)

    def unload(self, group_ids: list[str], error: ErrorCode) -> None:
        """``onGroupUnloaded``: the groups go (Dead); parked JoinGroups (in
        PreparingRebalance) or SyncGroups (otherwise) are answered ``error``, other
        parked requests are forgotten."""
        for gid in group_ids:
            g = self.groups.pop(gid, None)
            if g is None:
                continue
            preparing = g.phase is GroupPhase.PREPARING_REBALANCE
            for mid in g.member_ids():
                if preparing:
                    self.answer_join(g, mid, JoinResult(error, mid))
                else:
                    self.answer_sync(g, mid, SyncResult(error))
                m = g.members[mid]
                for ticket in (m.join_ticket, m.sync_ticket):
                    if ticket is not None:
                        self.answer(ticket, Abandoned())
                m.join_ticket = m.sync_ticket = None
            g.phase = GroupPhase.DEAD
