"""The group coordinator model: JoinGroup, SyncGroup, Heartbeat, LeaveGroup as Kafka 3.x answers."""

from __future__ import annotations

import attrs

from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.group import (
    generation_never_decreases,
    group_assignment_exclusive,
    group_well_formed,
    in_flight,
    next_deadline,
    step,
)
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
)
from spec.group_state import (
    Abandoned,
    GroupPhase,
    JoinResponse,
    Pending,
    Protocol,
    SyncResponse,
    coordinator,
)
from tests.spec.group_helpers import (
    REBALANCE,
    SESSION,
    G,
    asg,
    drain,
    form_group,
    hb,
    join,
    keep_alive,
    new_member,
    ok,
    refused,
    tick,
)

# --- happy path, KIP-394 ---------------------------------------------------------------


def test_three_members_join_leader_syncs_everyone_gets_assignment() -> None:
    c = coordinator()
    ids = []
    for i in range(3):
        c, mid, reply = new_member(c, f"c{i}")
        assert isinstance(reply, Pending) and mid.startswith(f"c{i}-")
        ids.append(mid)
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    c = tick(c, 0)
    c, due = drain(c)
    g = c.groups[G]
    assert g.phase is GroupPhase.COMPLETING_REBALANCE and g.generation_id == 1
    responses = [r for r in due.values() if isinstance(r, JoinResponse)]
    assert {r.member_id for r in responses} == set(ids)
    assert all(r.generation_id == 1 and r.protocol_name == "range" for r in responses)
    assert all(r.leader_id == g.leader_id for r in responses)
    leader = next(r for r in responses if r.member_id == g.leader_id)
    assert {m.member_id for m in leader.members} == set(ids)
    assert all(not r.members for r in responses if r is not leader)
    tickets = {}
    for mid in ids:
        if mid != g.leader_id:
            c, r = ok(step(c, SyncGroup(G, 1, mid)))
            assert isinstance(r, Pending)
            tickets[r.ticket] = mid
    plan = {mid: asg(("t", i)) for i, mid in enumerate(ids)}
    c, r = ok(step(c, SyncGroup(G, 1, g.leader_id or "", assignments=plan)))
    assert r == SyncResponse(ErrorCode.NONE, plan[g.leader_id or ""], "consumer", "range")
    c, due = drain(c)
    assert {t: x.assignment for t, x in due.items() if isinstance(x, SyncResponse)} == {
        t: plan[mid] for t, mid in tickets.items()
    }
    assert c.groups[G].phase is GroupPhase.STABLE
    assert group_assignment_exclusive(c) and group_well_formed(c) and not in_flight(c)
    for mid in ids:
        c, _ = ok(hb(c, mid))


def test_kip394_member_id_required_round_trip() -> None:
    c = coordinator()
    c, reply = ok(join(c, "c0", version=4))
    assert isinstance(reply, JoinResponse) and reply.error is ErrorCode.MEMBER_ID_REQUIRED
    mid = reply.member_id
    assert mid.startswith("c0-") and mid in c.groups[G].pending_members
    assert not c.groups[G].members and c.groups[G].phase is GroupPhase.EMPTY
    c, reply = ok(join(c, "c0", mid, version=4))
    assert isinstance(reply, Pending) and mid in c.groups[G].members
    assert not c.groups[G].pending_members
    # before v4 the coordinator names the member and parks it straight away
    c, reply = ok(join(c, "c1", version=3))
    assert isinstance(reply, Pending) and len(c.groups[G].members) == 2


def test_unclaimed_member_id_expires_after_session_timeout() -> None:
    c = coordinator()
    c, reply = ok(join(c, "c0"))
    assert isinstance(reply, JoinResponse)
    c = tick(c, SESSION)
    assert not c.groups[G].pending_members
    refused(join(c, "c0", reply.member_id), ErrorCode.UNKNOWN_MEMBER_ID)


def test_initial_rebalance_delay_extends_while_members_arrive() -> None:
    c = coordinator(SpecConfig(group_initial_rebalance_delay_ms=3000))
    c, _, _ = new_member(c, "c0")
    c, _, _ = new_member(c, "c1")  # a new member arrives during the first delay
    c = tick(c, 5999)
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    c = tick(c, 1)
    assert c.groups[G].phase is GroupPhase.COMPLETING_REBALANCE


# --- expiry and rebalance --------------------------------------------------------------


def test_member_that_stops_heartbeating_expires_and_generation_bumps() -> None:
    c, ids = form_group(3)
    a, b, dead = ids
    c = tick(c, SESSION // 2)
    c, _ = ok(hb(c, a))
    c, _ = ok(hb(c, b))
    c = tick(c, SESSION // 2)  # the third member's session ends now
    g = c.groups[G]
    assert dead not in g.members and g.phase is GroupPhase.PREPARING_REBALANCE
    c = refused(hb(c, a), ErrorCode.REBALANCE_IN_PROGRESS)
    c, ra = ok(join(c, "c0", a))
    c, rb = ok(join(c, "c1", b))
    c, due = drain(c)
    g = c.groups[G]
    assert g.phase is GroupPhase.COMPLETING_REBALANCE and g.generation_id == 2
    assert set(g.members) == {a, b}
    for r in (ra, rb):
        resp = due[r.ticket] if isinstance(r, Pending) else r
        assert isinstance(resp, JoinResponse) and resp.generation_id == 2
    refused(hb(c, dead, 1), ErrorCode.UNKNOWN_MEMBER_ID)
    refused(hb(c, a, 1), ErrorCode.ILLEGAL_GENERATION)


def test_member_that_does_not_rejoin_is_removed_at_rebalance_timeout() -> None:
    c, ids = form_group(2)
    leader = c.groups[G].leader_id or ""
    follower = next(m for m in ids if m != leader)
    c, r = ok(join(c, "c", leader))  # the leader rejoining forces a rebalance
    assert isinstance(r, Pending) and c.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    for _ in range(REBALANCE // 5000 - 1):
        c = tick(c, 5000)
        c = refused(hb(c, follower), ErrorCode.REBALANCE_IN_PROGRESS)  # alive, never rejoins
    c = tick(c, 5000)
    c, due = drain(c)
    g = c.groups[G]
    assert set(g.members) == {leader} and g.generation_id == 2
    assert isinstance(due[r.ticket], JoinResponse)


def test_new_member_stuck_in_join_is_dropped_after_five_minutes() -> None:
    c, (a,) = form_group(1)
    c = tick(c, 1)
    c, r = ok(join(c, "late", version=3, rebalance=600_000))
    assert isinstance(r, Pending)
    for _ in range(300_000 // 5000):  # the old member keeps its session, never rejoins
        c = refused(hb(c, a), ErrorCode.REBALANCE_IN_PROGRESS)
        c = tick(c, 5000)
    c, due = drain(c)
    assert due[r.ticket] == JoinResponse(ErrorCode.UNKNOWN_MEMBER_ID, "")


def test_member_that_never_syncs_is_removed_after_rebalance_timeout() -> None:
    c = coordinator()
    c, a, _ = new_member(c, "c0")
    c, b, _ = new_member(c, "c1")
    c, _ = drain(tick(c, 0))
    g = c.groups[G]
    c, _ = ok(step(c, SyncGroup(G, 1, g.leader_id or "", assignments={a: b"", b: b""})))
    silent = b if g.leader_id == a else a
    c = keep_alive(c, [a, b], REBALANCE - 5000)  # both heartbeat; one never sends SyncGroup
    assert silent in c.groups[G].members
    c = keep_alive(c, [a, b], 5000)
    assert silent not in c.groups[G].members
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE


# --- static membership (KIP-345) -------------------------------------------------------


def test_static_member_rejoin_takes_new_id_without_rebalance_and_fences_old_id() -> None:
    c, ids = form_group(2, static=True)
    g = c.groups[G]
    old = next(m for m in ids if m != g.leader_id)
    inst = g.members[old].group_instance_id
    c, r = ok(join(c, "c1", instance=inst))
    assert isinstance(r, JoinResponse) and r.error is ErrorCode.NONE
    new = r.member_id
    assert new != old and new.startswith(f"{inst}-")
    g2 = c.groups[G]
    assert g2.phase is GroupPhase.STABLE and g2.generation_id == g.generation_id
    assert g2.members[new].assignment == g.members[old].assignment
    refused(hb(c, old, inst=inst), ErrorCode.FENCED_INSTANCE_ID)
    ok(hb(c, new, inst=inst))


def test_static_leader_rejoin_before_v9_is_told_the_old_leader_id() -> None:
    c, _ = form_group(2, static=True)
    g = c.groups[G]
    leader = g.leader_id or ""
    inst = g.members[leader].group_instance_id
    c, r = ok(join(c, "c0", instance=inst, version=8))
    assert isinstance(r, JoinResponse) and r.leader_id == leader and not r.members
    assert c.groups[G].leader_id == r.member_id  # the coordinator did move the leadership


def test_static_member_is_kept_when_it_misses_the_rebalance() -> None:
    c, ids = form_group(2, static=True)
    g = c.groups[G]
    leader = g.leader_id or ""
    other = next(m for m in ids if m != leader)
    c, _ = ok(join(c, "c", leader, instance=g.members[leader].group_instance_id))
    c = keep_alive(c, [other], REBALANCE)  # alive but does not rejoin
    g = c.groups[G]
    assert other in g.members and g.generation_id == 2


# --- errors ----------------------------------------------------------------------------


def test_join_errors() -> None:
    c = coordinator()
    refused(join(c, "c", "nobody"), ErrorCode.UNKNOWN_MEMBER_ID)
    refused(join(c, "c", session=1000), ErrorCode.INVALID_SESSION_TIMEOUT)
    refused(step(c, JoinGroup("")), ErrorCode.INVALID_GROUP_ID)
    c, _, _ = new_member(c, "c0")
    refused(
        join(c, "c1", protocols=(Protocol("roundrobin"),)), ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    )
    c2 = refused(step(c, JoinGroup("h", protocols=())), ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    assert c2.groups["h"].phase is GroupPhase.EMPTY  # Kafka created the group first


def test_sync_and_heartbeat_errors_by_phase() -> None:
    c = coordinator()
    c, a, _ = new_member(c, "c0")
    refused(step(c, SyncGroup(G, 0, a)), ErrorCode.REBALANCE_IN_PROGRESS)
    refused(hb(c, a, 0), ErrorCode.REBALANCE_IN_PROGRESS)
    c, _ = drain(tick(c, 0))
    ok(hb(c, a, 1))  # CompletingRebalance: a heartbeat is fine (KAFKA-10134)
    refused(step(c, SyncGroup(G, 0, a)), ErrorCode.ILLEGAL_GENERATION)
    refused(step(c, SyncGroup(G, 1, "x")), ErrorCode.UNKNOWN_MEMBER_ID)
    refused(step(c, SyncGroup(G, 1, a, protocol_name="rr")), ErrorCode.INCONSISTENT_GROUP_PROTOCOL)
    refused(step(c, SyncGroup("h", 1, a)), ErrorCode.UNKNOWN_MEMBER_ID)
    refused(step(c, Heartbeat("h", 1, a)), ErrorCode.UNKNOWN_MEMBER_ID)


def test_member_the_leader_leaves_out_gets_an_empty_assignment() -> None:
    c, (a, b) = form_group(2)
    leader = c.groups[G].leader_id or ""
    other = b if leader == a else a
    c, _ = ok(join(c, "c", leader))
    c, _ = ok(join(c, "c", other))
    c, _ = drain(c)
    g = c.groups[G]
    assert g.generation_id == 2
    c, r = ok(step(c, SyncGroup(G, 2, other)))
    assert isinstance(r, Pending)
    c, _ = ok(step(c, SyncGroup(G, 2, leader, assignments={leader: asg(("t", 0), ("t", 1))})))
    c, due = drain(c)
    assert due[r.ticket] == SyncResponse(ErrorCode.NONE, b"", "consumer", "range")
    assert c.groups[G].members[other].assignment == b""


def test_parked_syncs_are_told_rebalance_in_progress_when_a_rebalance_starts() -> None:
    c = coordinator()
    c, a, _ = new_member(c, "c0")
    c, b, _ = new_member(c, "c1")
    c, _ = drain(tick(c, 0))
    follower = b if c.groups[G].leader_id == a else a
    c, r = ok(step(c, SyncGroup(G, 1, follower)))
    assert isinstance(r, Pending)
    c, _, _ = new_member(c, "c2")  # a new member: CompletingRebalance -> PreparingRebalance
    c, due = drain(c)
    assert due[r.ticket] == SyncResponse(ErrorCode.REBALANCE_IN_PROGRESS)
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE


def test_second_join_from_same_member_abandons_the_first() -> None:
    c = coordinator()
    c, a, r1 = new_member(c, "c0")
    c, r2 = ok(join(c, "c0", a))
    assert isinstance(r1, Pending) and isinstance(r2, Pending)
    c, due = drain(tick(c, 0))
    assert due[r1.ticket] == Abandoned() and isinstance(due[r2.ticket], JoinResponse)


def test_leader_leaving_triggers_rebalance_and_new_leader() -> None:
    c, ids = form_group(3)
    leader = c.groups[G].leader_id or ""
    c, r = ok(step(c, LeaveGroup(G, (MemberIdentity(leader), MemberIdentity("ghost")))))
    assert isinstance(r, LeaveResponse)
    assert [m.error for m in r.members] == [ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]
    g = c.groups[G]
    assert g.phase is GroupPhase.PREPARING_REBALANCE and g.leader_id in set(ids) - {leader}


def test_admin_removes_static_member_by_instance_id() -> None:
    c, _ = form_group(2, static=True)
    c, r = ok(step(c, LeaveGroup(G, (MemberIdentity("", "i1"),))))
    assert r == LeaveResponse((MemberLeaveResult("", "i1", ErrorCode.NONE),))
    assert c.groups[G].static_member_id("i1") is None
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE


# --- the coordinator itself ------------------------------------------------------------


def test_coordinator_status_errors() -> None:
    c, (a,) = form_group(1)
    gen = c.groups[G].generation_id
    c, _ = ok(step(c, CoordinatorResigned()))
    refused(hb(c, a, gen), ErrorCode.NOT_COORDINATOR)
    c, _ = ok(step(c, CoordinatorElected()))
    refused(join(c, "c"), ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
    refused(step(c, SyncGroup(G, gen, a)), ErrorCode.REBALANCE_IN_PROGRESS)
    assert ok(hb(c, a, gen))[1] is None  # answered blindly while loading
    c, _ = ok(step(c, CoordinatorShutdown()))
    refused(hb(c, a, gen), ErrorCode.COORDINATOR_NOT_AVAILABLE)
    refused(step(c, CoordinatorLoaded()), ErrorCode.INVALID_REQUEST)
    c, _ = ok(step(c, CoordinatorStartup()))
    refused(hb(c, a, gen), ErrorCode.NOT_COORDINATOR)


def test_failover_answers_parked_requests_and_restores_last_stored_generation() -> None:
    c, (a, b) = form_group(2)
    c, r = ok(join(c, "c", c.groups[G].leader_id or ""))
    assert isinstance(r, Pending)
    c, _ = ok(step(c, CoordinatorResigned()))
    c, due = drain(c)
    assert due[r.ticket] == JoinResponse(ErrorCode.NOT_COORDINATOR, c.groups[G].leader_id or "")
    c = ok(step(c, CoordinatorElected()))[0]
    c = ok(step(c, CoordinatorLoaded()))[0]
    g = c.groups[G]
    assert g.phase is GroupPhase.STABLE and g.generation_id == 1 and set(g.members) == {a, b}
    assert group_assignment_exclusive(c) and group_well_formed(c)
    assert next_deadline(c) == c.now_ms + SESSION


def test_group_assignment_exclusive_catches_overlap() -> None:
    c, (a, b) = form_group(2)
    assert group_assignment_exclusive(c)
    g = c.groups[G]
    overlap = attrs.evolve(g.members[b], assignment=g.members[a].assignment)
    bad = attrs.evolve(g, members=g.members.set(b, overlap))
    assert not group_assignment_exclusive(attrs.evolve(c, groups=c.groups.set(G, bad)))
    rebalancing = attrs.evolve(bad, phase=GroupPhase.COMPLETING_REBALANCE)
    assert group_assignment_exclusive(attrs.evolve(c, groups=c.groups.set(G, rebalancing)))


def test_generation_never_decreases_catches_a_decrease() -> None:
    c, _ = form_group(1)
    g = c.groups[G]
    older = attrs.evolve(c, groups=c.groups.set(G, attrs.evolve(g, generation_id=0)))
    assert generation_never_decreases(older, c)
    assert not generation_never_decreases(c, older)
