"""Committed offsets: OffsetCommit fencing, OffsetFetch, expiry (KIP-211), topic deletion."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.group import step
from spec.group_actions import (
    CoordinatorElected,
    CoordinatorLoaded,
    CoordinatorResigned,
    LeaveGroup,
    MemberIdentity,
)
from spec.group_state import Coordinator, GroupPhase, JoinResponse, coordinator
from spec.offsets import (
    OFFSET_METADATA_MAX_BYTES,
    CommitOffset,
    DeleteTopicOffsets,
    ExpireOffsets,
    FetchedOffset,
    OffsetCommit,
    OffsetCommitResponse,
    OffsetFetch,
    OffsetFetchResponse,
    committed,
)
from spec.state import TopicPartition
from tests.spec.group_helpers import SESSION, G, form_group, hb, join, ok, refused, tick

T0 = TopicPartition("t", 0)
T1 = TopicPartition("t", 1)
U0 = TopicPartition("u", 0)
SHORT = SpecConfig(offsets_retention_minutes=1)
RETENTION_MS = 60_000


def commit(
    c: Coordinator,
    offset: int,
    gen: int = -1,
    member: str = "",
    *,
    tp: TopicPartition = T0,
    inst: str | None = None,
    group: str = G,
) -> Coordinator:
    c, r = ok(step(c, OffsetCommit(group, (CommitOffset(tp, offset),), gen, member, inst)))
    assert isinstance(r, OffsetCommitResponse) and r.errors[tp] is ErrorCode.NONE
    return c


def commit_refused(
    c: Coordinator, error: ErrorCode, gen: int = -1, member: str = "", inst: str | None = None
) -> Coordinator:
    return refused(step(c, OffsetCommit(G, (CommitOffset(T0, 1),), gen, member, inst)), error)


def fetch(
    c: Coordinator, *tps: TopicPartition, group: str = G
) -> dict[TopicPartition, FetchedOffset]:
    _, r = ok(step(c, OffsetFetch(group, tps or None)))
    assert isinstance(r, OffsetFetchResponse)
    return dict(r.partitions)


def offset_of(c: Coordinator, tp: TopicPartition = T0) -> int:
    return fetch(c, tp)[tp].offset


# --- simple commits and fetch ----------------------------------------------------------


def test_simple_commit_creates_empty_group_and_fetch_returns_it() -> None:
    c = commit(coordinator(), 42)
    assert c.groups[G].phase is GroupPhase.EMPTY
    assert fetch(c, T0, T1) == {T0: FetchedOffset(42), T1: FetchedOffset(-1)}
    assert fetch(c) == {T0: FetchedOffset(42)}
    assert fetch(c, T0, group="other") == {T0: FetchedOffset(-1)}
    c = commit(c, 7, group="")  # the empty group id is allowed for offsets
    assert committed(c, "", T0) is not None


def test_commit_with_generation_to_unknown_group_is_illegal_generation() -> None:
    c = commit_refused(coordinator(), ErrorCode.ILLEGAL_GENERATION, gen=3, member="m")
    assert G not in c.groups


def test_metadata_too_large_is_refused_per_partition() -> None:
    big = "x" * (OFFSET_METADATA_MAX_BYTES + 1)
    action = OffsetCommit(G, (CommitOffset(T0, 1, big), CommitOffset(T1, 2, "ok")))
    c, r = ok(step(coordinator(), action))
    assert isinstance(r, OffsetCommitResponse)
    assert dict(r.errors) == {T0: ErrorCode.OFFSET_METADATA_TOO_LARGE, T1: ErrorCode.NONE}
    assert fetch(c, T0, T1) == {T0: FetchedOffset(-1), T1: FetchedOffset(2, "ok")}


@given(st.lists(st.tuples(st.sampled_from([T0, T1, U0]), st.integers(0, 10**6)), max_size=20))
def test_fetch_returns_the_last_commit_per_partition(
    commits: list[tuple[TopicPartition, int]],
) -> None:
    c = coordinator()
    expected: dict[TopicPartition, int] = {}
    for tp, off in commits:
        c = commit(c, off, tp=tp)
        expected[tp] = off
    assert {tp: f.offset for tp, f in fetch(c).items()} == expected


# --- generation fencing ----------------------------------------------------------------


def test_member_commits_in_its_generation_stale_generation_is_illegal() -> None:
    c, (a, b) = form_group(2)
    c = commit(c, 10, 1, a)
    c, _ = ok(step(c, LeaveGroup(G, (MemberIdentity(b),))))  # rebalance: a must rejoin
    c, _ = ok(join(c, "c0", a))
    assert c.groups[G].generation_id == 2
    commit_refused(c, ErrorCode.ILLEGAL_GENERATION, 1, a)
    assert offset_of(c) == 10
    commit_refused(c, ErrorCode.REBALANCE_IN_PROGRESS, 2, a)  # CompletingRebalance


def test_unknown_member_and_simple_commit_to_live_group_are_unknown_member_id() -> None:
    c, _ = form_group(1)
    commit_refused(c, ErrorCode.UNKNOWN_MEMBER_ID, 1, "stranger")
    commit_refused(c, ErrorCode.UNKNOWN_MEMBER_ID)  # generation -1: only members may commit


def test_commit_during_preparing_rebalance_is_accepted_and_keeps_member_alive() -> None:
    c, (a, b) = form_group(2)
    leader = c.groups[G].leader_id
    other = b if leader == a else a
    c, _ = ok(join(c, "c", leader or ""))  # PreparingRebalance, generation still 1
    assert c.groups[G].phase is GroupPhase.PREPARING_REBALANCE
    c = tick(c, SESSION - 1)
    c = commit(c, 5, 1, other)  # accepted; also restarts other's session
    c = tick(c, 2)
    assert other in c.groups[G].members and offset_of(c) == 5


def test_static_member_with_stale_member_id_is_fenced() -> None:
    c, _ = form_group(2, static=True)
    g = c.groups[G]
    old = next(m for m in g.members if m != g.leader_id)
    inst = g.members[old].group_instance_id
    c, r = ok(join(c, "c1", instance=inst))  # the instance restarted and took a new id
    assert isinstance(r, JoinResponse)
    commit_refused(c, ErrorCode.FENCED_INSTANCE_ID, 1, old, inst)
    commit(c, 4, 1, r.member_id, inst=inst)


def test_group_that_became_empty_takes_simple_commits_again() -> None:
    c, (a,) = form_group(1)
    c = tick(c, SESSION)  # a's session expires; the group rebalances to Empty
    c = tick(c, 0)
    g = c.groups[G]
    assert g.phase is GroupPhase.EMPTY and g.generation_id == 2
    commit_refused(c, ErrorCode.UNKNOWN_MEMBER_ID, 1, a)
    c = commit(c, 99)
    refused(hb(c, a, 1), ErrorCode.UNKNOWN_MEMBER_ID)


# --- expiry and deletion ---------------------------------------------------------------


def test_offsets_of_an_empty_group_expire_retention_after_it_became_empty() -> None:
    c, (a,) = form_group(1, config=SHORT)
    c = commit(c, 3, 1, a)
    for _ in range(2 * RETENTION_MS // 5000):  # the member stays for two retention periods
        c, _ = ok(hb(c, a))
        c = tick(c, 5000)
    c, _ = ok(step(c, LeaveGroup(G, (MemberIdentity(a),))))
    c = tick(c, 0)
    became_empty = c.now_ms
    assert c.groups[G].phase is GroupPhase.EMPTY
    c, _ = ok(step(tick(c, RETENTION_MS - 1), ExpireOffsets()))
    assert offset_of(c) == 3  # committed long ago, but the group is Empty for < retention
    c = tick(c, 1)
    assert c.now_ms - became_empty == RETENTION_MS
    c, _ = ok(step(c, ExpireOffsets()))
    assert offset_of(c) == -1 and G not in c.groups  # no offsets left: the group is gone


def test_simple_group_offsets_expire_retention_after_their_commit() -> None:
    c = commit(coordinator(SHORT), 1, tp=T0)
    c = commit(tick(c, 1000), 2, tp=T1)
    c, _ = ok(step(tick(c, RETENTION_MS - 1000), ExpireOffsets()))
    assert fetch(c, T0, T1) == {T0: FetchedOffset(-1), T1: FetchedOffset(2)}


def test_stable_consumer_group_keeps_offsets_of_subscribed_topics() -> None:
    c, (a,) = form_group(1, config=SHORT)  # subscribed to "t" only
    c = commit(c, 1, 1, a, tp=T0)
    c = commit(c, 2, 1, a, tp=U0)
    for _ in range(RETENTION_MS // 5000):
        c, _ = ok(hb(c, a))
        c = tick(c, 5000)
    c, _ = ok(step(c, ExpireOffsets()))
    assert fetch(c, T0, U0) == {T0: FetchedOffset(1), U0: FetchedOffset(-1)}


def test_deleted_topic_offsets_go_away() -> None:
    c = commit(commit(coordinator(), 1, tp=T0), 2, tp=U0)
    c, _ = ok(step(c, DeleteTopicOffsets(frozenset({"u"}))))
    assert fetch(c) == {T0: FetchedOffset(1)}
    c, _ = ok(step(c, DeleteTopicOffsets(frozenset({"t"}))))
    assert G not in c.groups


# --- the coordinator -------------------------------------------------------------------


def test_offsets_requests_get_coordinator_errors_and_survive_failover() -> None:
    c = commit(coordinator(), 8)
    c, _ = ok(step(c, CoordinatorResigned()))
    commit_refused(c, ErrorCode.NOT_COORDINATOR)
    refused(step(c, OffsetFetch(G)), ErrorCode.NOT_COORDINATOR)
    c, _ = ok(step(c, CoordinatorElected()))
    commit_refused(c, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
    c, _ = ok(step(c, CoordinatorLoaded()))
    assert offset_of(c) == 8
