"""Time in the group coordinator: the delayed operations Kafka keeps in purgatories.

Four kinds of deadline live in a group's state: a member's DelayedHeartbeat (session
expiry), a KIP-394 pending member's expiry, the DelayedJoin / InitialDelayedJoin that
ends the join phase, and the DelayedSync (KAFKA-12890) that removes members who never
sent SyncGroup.  Only ``advance`` (the ``Tick`` action) fires them; no other action does,
so a deadline that is already due fires at the next tick, as Kafka's timer thread fires it
shortly after the request that armed it.

Deadlines are fired in time order; at one instant the order is pending member, heartbeat,
join, sync, then group id and member id (Kafka's timing wheel gives no order at one
instant, so a harness must allow any).  A timer re-armed with zero delay fires again at
the same instant, as Kafka's does, unless its firing changed nothing: Kafka would spin on
such a timer (a DelayedJoin with rebalance timeout 0 and no member rejoined) without any
observable effect, and the spec sets it aside until time moves on.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from spec.group_rebalance import (
    complete_join,
    prepare_rebalance,
    put,
    put_member,
    remove_member,
    remove_member_and_update_group,
    remove_pending_member_and_update_group,
)
from spec.group_state import Coordinator, GroupPhase, JoinTimer

_PENDING, _HEARTBEAT, _JOIN, _SYNC = 0, 1, 2, 3
Timer = tuple[int, int, str, str]
"""(deadline ms, kind, group id, member id or "")."""


def timers(c: Coordinator) -> Iterator[Timer]:
    """Every armed deadline of the coordinator."""
    for gid, g in c.groups.items():
        for mid, deadline in g.pending_members.items():
            yield deadline, _PENDING, gid, mid
        for mid, m in g.members.items():
            if m.heartbeat_deadline_ms is not None:
                yield m.heartbeat_deadline_ms, _HEARTBEAT, gid, mid
        if g.join_timer is not None:
            yield g.join_timer.deadline_ms, _JOIN, gid, ""
        if g.sync_deadline_ms is not None:
            yield g.sync_deadline_ms, _SYNC, gid, ""


def next_deadline(c: Coordinator) -> int | None:
    """The earliest armed deadline (ms), or ``None``: when the next timer-driven
    response or removal can happen.  A harness ticks to it to see what falls due."""
    return min((t[0] for t in timers(c)), default=None)


def advance(c: Coordinator, to_ms: int) -> Coordinator:
    """Let time run to ``to_ms``, firing every deadline on the way in order."""
    idle: set[tuple[int, str, str]] = set()
    while True:
        due = [t for t in timers(c) if t[0] <= to_ms and t[1:] not in idle]
        if not due:
            break
        t = min(due)
        at = max(t[0], c.now_ms)
        if at > c.now_ms:
            idle = set()
            c = attrs.evolve(c, now_ms=at)
        after = _fire(c, t)
        if after == c:
            idle.add(t[1:])
        c = after
    return attrs.evolve(c, now_ms=max(to_ms, c.now_ms))


def _fire(c: Coordinator, t: Timer) -> Coordinator:
    _, kind, gid, mid = t
    if kind == _PENDING:
        return remove_pending_member_and_update_group(c, gid, mid)
    if kind == _HEARTBEAT:
        return _expire_heartbeat(c, gid, mid)
    if kind == _JOIN:
        return _expire_join(c, gid)
    return _expire_sync(c, gid)


def _expire_heartbeat(c: Coordinator, gid: str, mid: str) -> Coordinator:
    """``onExpireHeartbeat``: a member not heard from within its session timeout is
    removed (and the group rebalances); one parked in the rebalance counts as alive."""
    m = c.groups[gid].members[mid]
    if m.heartbeat_satisfied:
        return put_member(c, gid, attrs.evolve(m, heartbeat_deadline_ms=None))
    return remove_member_and_update_group(c, gid, mid)


def _expire_join(c: Coordinator, gid: str) -> Coordinator:
    """The join phase's deadline: an InitialDelayedJoin extends itself while new members
    arrive (by min(delay, remaining), with remaining reduced by the delay that just
    ran, as Kafka computes it); otherwise the join phase completes."""
    g = c.groups[gid]
    t = g.join_timer
    assert t is not None
    if t.initial and g.new_member_added and t.remaining_ms != 0:
        delay = min(c.config.group_initial_rebalance_delay_ms, t.remaining_ms)
        remaining = max(t.remaining_ms - t.delay_ms, 0)
        timer = JoinTimer(c.now_ms + delay, initial=True, delay_ms=delay, remaining_ms=remaining)
        return put(c, attrs.evolve(g, join_timer=timer, new_member_added=False))
    return complete_join(put(c, attrs.evolve(g, join_timer=None)), gid)


def _expire_sync(c: Coordinator, gid: str) -> Coordinator:
    """``onExpirePendingSync``: members that never sent SyncGroup within the rebalance
    timeout are removed and the group rebalances."""
    g = attrs.evolve(c.groups[gid], sync_deadline_ms=None)
    c = put(c, g)
    live = g.phase in (GroupPhase.COMPLETING_REBALANCE, GroupPhase.STABLE)
    if not live or not g.pending_sync_members:
        return c
    for mid in sorted(g.pending_sync_members):
        c = remove_member(c, gid, mid)
    return prepare_rebalance(c, gid)
