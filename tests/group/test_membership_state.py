"""The group coordinator's membership rules without I/O (impl.group.requests and
impl.group.rebalance): joins and the KIP-394 round trip, the initial rebalance delay,
the leader's assignment relayed after its record is written, heartbeats signalling a
rebalance, session expiry, static membership, leaving, group.max.size, loading and
unloading, and the membership check of OffsetCommit."""

from __future__ import annotations

import itertools

import pytest

from impl.group.membership import GroupPhase, JoinResult, Parked, Protocol, SyncResult
from impl.group.rebalance import Answer, CoordinatorState, GroupConfig
from impl.group.records import GroupRecord, MemberRecord
from impl.group.requests import (
    JoinRequest,
    LeavingMember,
    MemberRef,
    SyncRequest,
    heartbeat,
    join_group,
    leave_group,
    sync_group,
    validate_commit,
)
from spec.errors import ErrorCode

G = "g"
SESSION = 10_000
REBALANCE = 20_000


def state(**config: int) -> CoordinatorState:
    """A coordinator whose member ids are ``<prefix>-<n>``; no initial delay by default."""
    counter = itertools.count(1)
    config.setdefault("initial_rebalance_delay_ms", 0)
    return CoordinatorState(GroupConfig(**config), lambda prefix: f"{prefix}-{next(counter)}")


def join(
    member_id: str = "",
    *,
    client_id: str = "c",
    instance: str | None = None,
    protocols: tuple[Protocol, ...] = (Protocol("range", b"m"),),
    protocol_type: str = "consumer",
    session_ms: int = SESSION,
    version: int = 9,
) -> JoinRequest:
    return JoinRequest(
        group_id=G,
        member_id=member_id,
        group_instance_id=instance,
        client_id=client_id,
        client_host="",
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=REBALANCE,
        protocol_type=protocol_type,
        protocols=protocols,
        require_known_member_id=version >= 4 and instance is None,
        supports_skip_assignment=version >= 9,
    )


def answers(s: CoordinatorState) -> dict[int, Answer]:
    return dict(s.take_outbox())


def finish_stores(s: CoordinatorState, error: ErrorCode = ErrorCode.NONE) -> int:
    """Complete every queued record write (as the log would); how many there were."""
    stores = s.take_stores()
    for store in stores:
        if store.on_stored is not None:
            store.on_stored(error, s.now_ms)
    return len(stores)


def new_member(s: CoordinatorState, now: int = 0, **kw: object) -> tuple[str, int]:
    """KIP-394: the member is named, then rejoins with its id and parks; (id, ticket)."""
    first = join_group(s, join(**kw), now)  # type: ignore[arg-type]
    assert isinstance(first, JoinResult)
    assert first.error is ErrorCode.MEMBER_ID_REQUIRED
    parked = join_group(s, join(first.member_id, **kw), now)  # type: ignore[arg-type]
    assert isinstance(parked, Parked)
    return first.member_id, parked.ticket


def stable_pair(s: CoordinatorState) -> tuple[str, str]:
    """Two members, a leader and a follower, in a Stable group at generation 1."""
    a, ta = new_member(s)
    b, _ = new_member(s)
    assert s.groups[G].phase is GroupPhase.PREPARING_REBALANCE  # a's join waits for b
    s.advance(0)
    out = answers(s)
    leader = out[ta]
    assert isinstance(leader, JoinResult) and leader.leader_id == a
    follower_sync = sync_group(s, SyncRequest(G, 1, b), 0)
    assert isinstance(follower_sync, Parked)
    leader_sync = sync_group(s, SyncRequest(G, 1, a, assignments={a: b"A", b: b"B"}), 0)
    assert isinstance(leader_sync, Parked)
    assert finish_stores(s) == 1
    out = answers(s)
    assert out[follower_sync.ticket] == SyncResult(ErrorCode.NONE, b"B", "consumer", "range")
    assert out[leader_sync.ticket] == SyncResult(ErrorCode.NONE, b"A", "consumer", "range")
    assert s.groups[G].phase is GroupPhase.STABLE
    return a, b


def test_kip394_member_id_round_trip_and_first_generation() -> None:
    s = state()
    first = join_group(s, join(client_id="app"), 0)
    assert first == JoinResult(ErrorCode.MEMBER_ID_REQUIRED, "app-1")
    assert s.groups[G].pending_members == {"app-1": SESSION}
    parked = join_group(s, join("app-1", client_id="app"), 0)
    assert isinstance(parked, Parked)
    s.advance(0)  # the InitialDelayedJoin of delay 0 fires
    (ticket, answer), *rest = s.take_outbox()
    assert not rest and ticket == parked.ticket
    assert answer == JoinResult(
        ErrorCode.NONE,
        "app-1",
        generation_id=1,
        protocol_type="consumer",
        protocol_name="range",
        leader_id="app-1",
        members=(answer.members[0],),  # type: ignore[union-attr]
    )
    assert s.groups[G].phase is GroupPhase.COMPLETING_REBALANCE


def test_old_versions_join_without_member_id_round_trip() -> None:
    s = state()
    assert isinstance(join_group(s, join(version=3), 0), Parked)
    assert list(s.groups[G].members) == ["c-1"]


def test_a_pending_member_id_expires_after_the_session_timeout() -> None:
    s = state()
    join_group(s, join(), 0)
    s.advance(SESSION - 1)
    assert s.groups[G].pending_members
    s.advance(SESSION)
    assert not s.groups[G].pending_members


def test_initial_rebalance_delay_extends_while_members_arrive() -> None:
    s = state(initial_rebalance_delay_ms=3000)
    a, ta = new_member(s, 0)
    b, tb = new_member(s, 1000)
    s.advance(2999)
    assert s.take_outbox() == []
    s.advance(3000)  # b arrived meanwhile: the delay is extended by another 3000
    assert s.take_outbox() == []
    timer = s.groups[G].join_timer
    assert timer is not None and timer.deadline_ms == 6000
    s.advance(6000)
    out = answers(s)
    assert set(out) == {ta, tb}
    lead = out[ta]
    assert isinstance(lead, JoinResult) and [m.member_id for m in lead.members] == [a, b]
    follower = out[tb]
    assert isinstance(follower, JoinResult) and follower.members == ()
    assert follower.leader_id == a and follower.generation_id == 1


def test_leader_assignment_is_relayed_once_stored() -> None:
    s = state()
    a, b = stable_pair(s)
    record = s.groups[G].to_record()
    assert record.generation == 1 and record.leader == a
    assert {m.member_id: m.assignment for m in record.members} == {a: b"A", b: b"B"}
    # in Stable a SyncGroup gets the current assignment at once
    assert sync_group(s, SyncRequest(G, 1, b), 1000) == SyncResult(
        ErrorCode.NONE, b"B", "consumer", "range"
    )


def test_failed_store_fails_the_sync_and_rebalances() -> None:
    s = state()
    a, _ = new_member(s)
    s.advance(0)
    s.take_outbox()
    parked = sync_group(s, SyncRequest(G, 1, a, assignments={a: b"A"}), 0)
    assert isinstance(parked, Parked)
    finish_stores(s, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    assert answers(s) == {parked.ticket: SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE)}
    assert s.groups[G].phase is GroupPhase.PREPARING_REBALANCE


def test_heartbeats_signal_a_rebalance_and_check_generation_and_member() -> None:
    s = state()
    a, b = stable_pair(s)
    now = 1000
    assert heartbeat(s, MemberRef(G, a, 1), now) is ErrorCode.NONE
    assert heartbeat(s, MemberRef(G, a, 0), now) is ErrorCode.ILLEGAL_GENERATION
    assert heartbeat(s, MemberRef(G, "nobody", 1), now) is ErrorCode.UNKNOWN_MEMBER_ID
    assert heartbeat(s, MemberRef("other", a, 1), now) is ErrorCode.UNKNOWN_MEMBER_ID
    _, tc = new_member(s, now)
    assert s.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    assert heartbeat(s, MemberRef(G, b, 1), now) is ErrorCode.REBALANCE_IN_PROGRESS
    assert sync_group(s, SyncRequest(G, 1, b), now) == SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
    # a and b rejoin: the join completes at once (everyone is in)
    ta = join_group(s, join(a), now)
    tb = join_group(s, join(b), now)
    assert isinstance(ta, Parked) and isinstance(tb, Parked)
    out = answers(s)
    assert {t for t in out} == {ta.ticket, tb.ticket, tc}
    assert all(isinstance(r, JoinResult) and r.generation_id == 2 for r in out.values())


def test_a_silent_member_is_removed_after_its_session_timeout() -> None:
    s = state()
    a, b = stable_pair(s)  # both sessions restarted at 0 by the SyncGroup answers
    assert heartbeat(s, MemberRef(G, a, 1), 6000) is ErrorCode.NONE
    s.advance(SESSION - 1)
    assert set(s.groups[G].members) == {a, b}
    s.advance(SESSION)
    g = s.groups[G]
    assert set(g.members) == {a}  # b never heartbeat
    assert g.phase is GroupPhase.PREPARING_REBALANCE
    assert heartbeat(s, MemberRef(G, a, 1), SESSION) is ErrorCode.REBALANCE_IN_PROGRESS
    rejoin = join_group(s, join(a), SESSION)
    assert isinstance(rejoin, Parked)
    (answer,) = answers(s).values()
    assert isinstance(answer, JoinResult) and answer.generation_id == 2


def test_no_member_rejoining_keeps_the_join_phase_open() -> None:
    s = state()
    join_group(s, join(instance="i1", session_ms=3 * REBALANCE), 0)  # a static leader
    s.advance(0)
    sync_group(s, SyncRequest(G, 1, "i1-1", "i1"), 0)
    finish_stores(s)
    d, _ = new_member(s, 1)  # a rebalance starts; the static leader does not rejoin
    assert leave_group(s, G, [LeavingMember(d)], 2) == [ErrorCode.NONE]
    s.take_outbox()
    s.advance(1 + REBALANCE)  # nobody rejoined: another rebalance timeout to wait
    g = s.groups[G]
    assert g.phase is GroupPhase.PREPARING_REBALANCE and g.generation_id == 1
    assert g.join_timer is not None and g.join_timer.deadline_ms == 1 + 2 * REBALANCE
    parked = join_group(s, join("i1-1", instance="i1", session_ms=3 * REBALANCE), 1 + REBALANCE)
    assert isinstance(parked, Parked)
    (answer,) = answers(s).values()  # its rejoin completes the phase
    assert isinstance(answer, JoinResult) and answer.generation_id == 2


def test_leave_rebalances_and_the_last_member_leaving_empties_the_group() -> None:
    s = state()
    a, b = stable_pair(s)
    now = 1000
    assert leave_group(s, G, [LeavingMember(b), LeavingMember("ghost")], now) == [
        ErrorCode.NONE,
        ErrorCode.UNKNOWN_MEMBER_ID,
    ]
    assert s.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    assert leave_group(s, G, [LeavingMember(a)], now) == [ErrorCode.NONE]
    g = s.groups[G]
    assert g.phase is GroupPhase.EMPTY and g.generation_id == 2 and g.protocol_name is None
    (store,) = s.take_stores()  # Kafka writes the empty group
    assert store.record is not None and store.record.members == () and store.record.generation == 2
    assert leave_group(s, "unknown", [LeavingMember(a)], now) == [ErrorCode.UNKNOWN_MEMBER_ID]


def test_static_member_rejoining_takes_a_new_id_and_fences_the_old() -> None:
    s = state()
    ta = join_group(s, join(instance="i1", client_id="x"), 0)
    assert isinstance(ta, Parked)
    old = s.groups[G].static_member_id("i1")
    assert old == "i1-1"
    s.advance(0)
    s.take_outbox()
    sync = sync_group(s, SyncRequest(G, 1, old, "i1", assignments={old: b"A"}), 0)
    finish_stores(s)
    assert answers(s) == {sync.ticket: SyncResult(ErrorCode.NONE, b"A", "consumer", "range")}  # type: ignore[union-attr]
    # the instance restarts: an empty member id with the same group.instance.id (v5-8)
    again = join_group(s, join(instance="i1", version=5), 10)
    assert isinstance(again, Parked)
    new = s.groups[G].static_member_id("i1")
    assert new == "i1-2"
    assert heartbeat(s, MemberRef(G, old, 1, "i1"), 10) is ErrorCode.FENCED_INSTANCE_ID
    assert s.take_outbox() == []  # answered once its record is written
    finish_stores(s)
    (answer,) = answers(s).values()
    # same generation, no rebalance; the old leader id so that it does not run the assignor
    assert answer == JoinResult(ErrorCode.NONE, new, 1, "consumer", "range", old)
    assert s.groups[G].phase is GroupPhase.STABLE
    assert heartbeat(s, MemberRef(G, new, 1, "i1"), 10) is ErrorCode.NONE
    # an admin removes it by instance id
    assert leave_group(s, G, [LeavingMember("", "i1")], 20) == [ErrorCode.NONE]
    assert s.groups[G].phase is GroupPhase.EMPTY


def test_static_member_store_failure_keeps_the_old_id() -> None:
    s = state()
    join_group(s, join(instance="i1"), 0)
    s.advance(0)
    sync_group(s, SyncRequest(G, 1, "i1-1", "i1"), 0)
    finish_stores(s)
    s.take_outbox()
    parked = join_group(s, join(instance="i1"), 5)
    finish_stores(s, ErrorCode.NOT_COORDINATOR)
    out = answers(s)
    reply = out[parked.ticket]  # type: ignore[union-attr]
    assert isinstance(reply, JoinResult) and reply.error is ErrorCode.NOT_COORDINATOR
    assert s.groups[G].static_member_id("i1") == "i1-1"


@pytest.mark.parametrize(
    ("request_", "error"),
    [
        (join(session_ms=5_999), ErrorCode.INVALID_SESSION_TIMEOUT),
        (join(session_ms=1_800_001), ErrorCode.INVALID_SESSION_TIMEOUT),
        (join("someone"), ErrorCode.UNKNOWN_MEMBER_ID),
        (join(protocol_type=""), ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
        (join(protocols=()), ErrorCode.INCONSISTENT_GROUP_PROTOCOL),
    ],
)
def test_join_errors(request_: JoinRequest, error: ErrorCode) -> None:
    reply = join_group(state(), request_, 0)
    assert isinstance(reply, JoinResult) and reply.error is error


def test_inconsistent_protocols_and_the_vote() -> None:
    s = state()
    both = (Protocol("range"), Protocol("roundrobin"))
    new_member(s, protocols=(Protocol("roundrobin"), Protocol("range")))
    new_member(s, protocols=both)
    new_member(s, protocols=(Protocol("roundrobin"),))
    reply = join_group(s, join(protocols=(Protocol("sticky"),)), 0)
    assert isinstance(reply, JoinResult) and reply.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    reply = join_group(s, join(protocol_type="connect"), 0)
    assert isinstance(reply, JoinResult) and reply.error is ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    s.advance(0)
    assert s.groups[G].protocol_name == "roundrobin"


def test_group_max_size() -> None:
    s = state(max_size=2)
    new_member(s)
    new_member(s)
    reply = join_group(s, join(version=3), 0)
    assert reply == JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, "")


def test_load_restores_stable_groups_and_unload_answers_not_coordinator() -> None:
    s = state()
    member = MemberRecord("m-1", None, "c", "/h", REBALANCE, SESSION, b"sub", b"asg")
    s.load({G: GroupRecord("consumer", 4, "range", "m-1", 123, (member,))}, 1000)
    g = s.groups[G]
    assert (g.phase, g.generation_id, g.leader_id) == (GroupPhase.STABLE, 4, "m-1")
    assert g.members["m-1"].heartbeat_deadline_ms == 1000 + SESSION
    assert sync_group(s, SyncRequest(G, 4, "m-1"), 1000) == SyncResult(
        ErrorCode.NONE, b"asg", "consumer", "range"
    )
    # a second member joins: the group prepares a rebalance, waiting for m-1 to rejoin
    c, ticket = new_member(s, 1000)
    s.unload([G], ErrorCode.NOT_COORDINATOR)
    assert answers(s) == {ticket: JoinResult(ErrorCode.NOT_COORDINATOR, c)}
    assert G not in s.groups


def test_validate_commit() -> None:
    s = state()
    # a simple consumer (assign()) commits to a group nobody joined
    assert validate_commit(s, MemberRef("simple", "", -1), 0) is ErrorCode.NONE
    assert s.groups["simple"].phase is GroupPhase.EMPTY
    assert validate_commit(s, MemberRef("nobody", "m", 3), 0) is ErrorCode.ILLEGAL_GENERATION
    a, _ = new_member(s)
    s.advance(0)  # CompletingRebalance
    assert validate_commit(s, MemberRef(G, a, 1), 0) is ErrorCode.REBALANCE_IN_PROGRESS
    assert validate_commit(s, MemberRef(G, a, 0), 0) is ErrorCode.ILLEGAL_GENERATION
    assert validate_commit(s, MemberRef(G, "x", 1), 0) is ErrorCode.UNKNOWN_MEMBER_ID
    assert validate_commit(s, MemberRef(G, "", -1), 0) is ErrorCode.UNKNOWN_MEMBER_ID
    sync_group(s, SyncRequest(G, 1, a), 0)
    finish_stores(s)
    assert validate_commit(s, MemberRef(G, a, 1), 0) is ErrorCode.NONE
