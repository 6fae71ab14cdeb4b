"""The conformance harness's consumer group rules: the group oracle's verdicts (no
broker), group operations through JSON, the leader's range assignment; then against
kafkaref brokers: the reference broker conforms with the group rules on, and seeded group
defects are caught and shrunk to a few Kafka operations."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.conform_faults import ProcessControl, RestartBroker
from harness.conform_group_ids import NEW, learn, learnt_id
from harness.conform_group_model import observed, settled
from harness.conform_group_ops import (
    ADMIN,
    CommitAnswer,
    DescribeGroup,
    GroupErrorAnswer,
    Heartbeat,
    JoinAnswer,
    JoinGroup,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    OffsetsAnswer,
    SyncGroup,
)
from harness.conform_group_oracle import GroupOracle
from harness.conform_group_rules import range_assignment
from harness.conform_ops import Operation, op_from_json, op_to_json
from harness.conform_run import run_conformance
from harness.conform_session import Session, open_session, replay
from harness.conform_target import LOCAL, LOCAL_BROKER_CONFIG
from harness.launcher import BrokerProcess, start_broker
from impl import mutants
from spec.config import SpecConfig
from spec.consumer_protocol import Subscription, decode_assignment, encode_subscription
from spec.errors import ErrorCode
from spec.state import TopicPartition

pytestmark = pytest.mark.timeout(120)

T0 = TopicPartition("t0", 0)
GROUP_RULES = {"join_group", "sync_group", "heartbeat", "consumer_poll", "commit_offsets"}


def exists(tp: TopicPartition) -> bool:
    return tp.topic == "t0" and 0 <= tp.partition < 2


def read(o: GroupOracle, op: object, *answers: tuple[int, object]) -> bool:
    """Send ``op`` and observe ``answers`` (what must be read)."""
    o.send(op, exists)  # type: ignore[arg-type]
    assert o.must_read(s for s, _ in answers) == [s for s, _ in answers]
    return o.observe(list(answers))


# --- the oracle, without a broker ---------------------------------------------------------


def test_a_new_member_is_named_then_joins_alone() -> None:
    o = GroupOracle(SpecConfig(), cleanup=False)
    assert read(o, JoinGroup(0), (0, JoinAnswer(ErrorCode.MEMBER_ID_REQUIRED, "m0.0")))
    o.send(JoinGroup(0, 0), exists)
    # parked until the zero initial delay fires: every settled state has its answer due
    assert o.must_read([0]) == [0]
    wrong = JoinAnswer(ErrorCode.NONE, "m0.0", 2, "consumer", "range", "m0.0")
    assert not o.observe([(0, wrong)])
    assert any("generation 1" in a.describe() for a in o.verdict.allowed)
    members = (("m0.0", None, _subscription()),)
    right = JoinAnswer(ErrorCode.NONE, "m0.0", 1, "consumer", "range", "m0.0", False, members)
    assert o.observe([(0, right)])


def _subscription(*topics: str) -> bytes:
    return encode_subscription(Subscription(topics))


def _form_group(o: GroupOracle) -> None:
    """Member 0 leads generation 1, synced; member 1 asks for its id and joins (parked,
    PreparingRebalance); member 0 rejoins: generation 2 with both."""
    meta = _subscription()
    assert read(o, JoinGroup(0), (0, JoinAnswer(ErrorCode.MEMBER_ID_REQUIRED, "m0.0")))
    one = (("m0.0", None, meta),)
    gen1 = JoinAnswer(ErrorCode.NONE, "m0.0", 1, "consumer", "range", "m0.0", False, one)
    assert read(o, JoinGroup(0, 0), (0, gen1))
    assignment = range_assignment(one, {"t0": 2}, -1)
    sync = SyncGroup(0, 0, 1, False, "range", assignment)
    o.send(sync, exists)
    assert o.must_read([0]) == [0]
    assert o.observe([(0, _observed(o, 0))])
    assert read(o, JoinGroup(1), (1, JoinAnswer(ErrorCode.MEMBER_ID_REQUIRED, "m1.0")))
    o.send(JoinGroup(1, 0), exists)
    assert o.must_read([1]) == []  # parked until member 0 rejoins
    assert o.needs_barrier() or all(settled(c) for c in o.candidates)


def _observed(o: GroupOracle, slot: int) -> object:
    """The answer the model has due to ``slot`` (the same in every candidate)."""
    c = next(c for c in o.candidates if slot in c.ready)
    return observed(c.ready[slot], c.ids)


def test_a_heartbeat_during_a_rebalance_must_tell_the_member_to_rejoin() -> None:
    o = GroupOracle(SpecConfig(), cleanup=False)
    _form_group(o)
    # the barrier: DescribeGroups shows member 1's JoinGroup handled
    wanted = o.settled_descriptions()
    assert {d.state for d in wanted} == {"PreparingRebalance"}
    assert o.observe_description(next(iter(wanted)))
    ok = GroupErrorAnswer("Heartbeat", ErrorCode.REBALANCE_IN_PROGRESS)
    assert not read(o, Heartbeat(0, 0, 1), (0, GroupErrorAnswer("Heartbeat", ErrorCode.NONE)))
    assert [a.answer for a in o.verdict.allowed] == [ok]


def test_commits_are_fenced_by_generation_and_unknown_topics_refused() -> None:
    o = GroupOracle(SpecConfig(), cleanup=False)
    _form_group(o)
    assert o.observe_description(next(iter(o.settled_descriptions())))
    stale = OffsetCommit(0, 0, 0, ((T0, 5, ""),))
    assert read(o, stale, (0, CommitAnswer(((T0, ErrorCode.ILLEGAL_GENERATION),))))
    # a simple consumer may not commit to a group with members; a partition of an
    # unknown topic is refused before the group is looked at
    gone = TopicPartition("t9", 0)
    simple = OffsetCommit(ADMIN, NEW, -1, ((T0, 5, ""), (gone, 1, "")))
    expected = ((T0, ErrorCode.UNKNOWN_MEMBER_ID), (gone, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION))
    assert read(o, simple, (ADMIN, CommitAnswer(tuple(sorted(expected)))))
    assert read(o, OffsetFetch(None), (ADMIN, OffsetsAnswer(ErrorCode.NONE, ())))


def drive(o: GroupOracle, op: object) -> dict[int, object]:
    """Send ``op`` and play a target that answers as the model's first settled state
    says (and has handled everything before DescribeGroups is asked); what was read."""
    o.send(op, exists)  # type: ignore[arg-type]
    if o.needs_barrier():
        assert o.observe_description(sorted(o.settled_descriptions(), key=repr)[0])
    c = next(c for c in o.candidates if settled(c))
    slots = o.must_read(range(-1, 3))
    ids = dict(c.ids)
    for s in slots:
        learn(ids, s, learnt_id(c.ready[s]))
    due: dict[int, object] = {s: observed(c.ready[s], ids) for s in slots}
    assert o.observe(list(due.items()))
    return due


def test_a_new_leader_may_be_any_remaining_member() -> None:
    """Kafka picks the new leader from a HashMap: the spec's smallest id is one choice,
    each other member another candidate."""
    o = GroupOracle(SpecConfig(), cleanup=False)
    for slot in range(3):
        drive(o, JoinGroup(slot))
        drive(o, JoinGroup(slot, 0))
    answers = drive(o, JoinGroup(0, 0))  # the leader rejoins: all three are answered
    assert sorted(answers) == [0, 1, 2]
    assert {getattr(a, "generation", None) for a in answers.values()} == {2}
    assert {getattr(a, "leader", None) for a in answers.values()} == {"m0.0"}
    drive(o, LeaveGroup(0, 0))
    leaders = {c.coord.groups["g"].leader_id for c in o.candidates}
    assert len(leaders) == 2  # m1's or m2's member id
    drive(o, JoinGroup(1, 0))
    answers = drive(o, JoinGroup(2, 0))
    assert sorted(answers) == [1, 2]
    # both are allowed to lead; the answers tell which one does
    allowed = {getattr(c.ready.get(1), "leader_id", None) for c in o.candidates}
    assert len({c.coord.groups["g"].leader_id for c in o.candidates}) == 1, allowed


# --- a broker restart: what of the group's writes it may lose -----------------------------


def _possible(o: GroupOracle, slot: int) -> set[Any]:
    """Every answer some candidate has due to ``slot``, as the harness would read it."""
    out = set()
    for c in o.candidates:
        if slot in c.ready:
            ids = dict(c.ids)
            learn(ids, slot, learnt_id(c.ready[slot]))
            out.add(observed(c.ready[slot], ids))
    return out


def _generations(o: GroupOracle) -> set[int | None]:
    """The group's generation in each candidate (None: the coordinator has no group)."""
    return {g.generation_id if (g := c.coord.groups.get("g")) else None for c in o.candidates}


def _static_member_joins_and_leaves(o: GroupOracle) -> None:
    answers = drive(o, JoinGroup(0, NEW, True))
    assert answers[0].generation == 1  # type: ignore[attr-defined]
    drive(o, LeaveGroup(0, 0, True))  # the group is Empty at generation 2, store on its way
    assert _generations(o) == {2}


@pytest.mark.parametrize("generation", [1, 3])
def test_a_restart_may_lose_the_store_of_a_group_left_empty(generation: int) -> None:
    """Found by ``conform --local``: LeaveGroup is answered before the Empty generation 2
    is written, so a broker killed then may come back without it (nothing was ever
    stored: the static member's rejoin starts generation 1) or with it (generation 3)."""
    o = GroupOracle(SpecConfig(), cleanup=False)
    _static_member_joins_and_leaves(o)
    o.restart()
    assert _generations(o) == {None, 2}
    o.send(JoinGroup(0, NEW, True), exists)
    assert o.must_read([0]) == [0]
    answers = {a.generation: a for a in _possible(o, 0)}
    assert sorted(answers) == [1, 3]
    assert o.observe([(0, answers[generation])])
    assert _generations(o) == {generation}


def test_an_acknowledged_commit_survives_a_restart_with_the_writes_before_it() -> None:
    """OffsetCommit is answered once its offsets are written, after the Empty group's
    record in the same partition: both must survive; losing them is a divergence."""
    o = GroupOracle(SpecConfig(), cleanup=False)
    _static_member_joins_and_leaves(o)
    commit = OffsetCommit(ADMIN, NEW, -1, ((T0, 5, "m"),))
    assert read(o, commit, (ADMIN, CommitAnswer(((T0, ErrorCode.NONE),))))
    o.restart()
    assert _generations(o) == {2}
    assert not read(o, OffsetFetch(None), (ADMIN, OffsetsAnswer(ErrorCode.NONE, ())))
    assert [a.answer for a in o.verdict.allowed] == [OffsetsAnswer(ErrorCode.NONE, ((T0, 5, "m"),))]


def test_a_commit_not_answered_before_the_restart_may_or_may_not_survive() -> None:
    for kept in ((), ((T0, 5, ""),)):
        o = GroupOracle(SpecConfig(), cleanup=False)
        o.send(OffsetCommit(ADMIN, NEW, -1, ((T0, 5, ""),)), exists)
        o.restart()  # the answer was never read
        assert read(o, OffsetFetch(None), (ADMIN, OffsetsAnswer(ErrorCode.NONE, kept)))


def test_the_leaders_sync_is_answered_once_the_generation_is_stored() -> None:
    """A joined generation is not stored (a restart forgets it); once SyncGroup is
    answered it is, and a restart brings the group back Stable at that generation."""
    o = GroupOracle(SpecConfig(), cleanup=False)
    drive(o, JoinGroup(0, NEW, True))
    o.restart()
    assert _generations(o) == {None}
    o = GroupOracle(SpecConfig(), cleanup=False)
    drive(o, JoinGroup(0, NEW, True))
    drive(o, SyncGroup(0, 0, 1, True, "range", (("i0.0", b""),)))
    o.restart()
    assert _generations(o) == {1}
    assert {c.coord.groups["g"].phase.value for c in o.candidates} == {"Stable"}


@given(
    st.sampled_from(
        [
            JoinGroup(1, NEW, True, (("range", ("t0", "t1")), ("roundrobin", ("t0", "t1")))),
            SyncGroup(0, 0, 3, False, "range", (("m1.0", b"\x00\x01"),)),
            Heartbeat(2, 1, 4, True),
            LeaveGroup(0, 2),
            OffsetCommit(ADMIN, NEW, -1, ((T0, 7, "meta"),)),
            OffsetFetch((T0,)),
            OffsetFetch(None),
            DescribeGroup(),
        ]
    )
)
def test_group_operations_round_trip_through_json(op: Operation) -> None:
    assert op_from_json(op_to_json(op)) == op


def test_the_leaders_assignment_deals_each_partition_to_one_member() -> None:
    meta = {"m0.0": ("t0", "t1"), "m1.0": ("t0",), "i2.0": ("t1",)}
    members = tuple((m, None, _subscription(*ts)) for m, ts in sorted(meta.items()))
    out = dict(range_assignment(members, {"t0": 3, "t1": 2}, -1))
    owned = {m: decode_assignment(a).partitions for m, a in out.items()}
    every = [tp for tps in owned.values() for tp in tps]
    assert sorted(every) == sorted(
        [TopicPartition("t0", p) for p in range(3)] + [TopicPartition("t1", p) for p in range(2)]
    )
    assert all(tp.topic in meta[m] for m, tps in owned.items() for tp in tps)
    assert len(dict(range_assignment(members, {"t0": 3}, 1))) == 2


# --- against kafkaref brokers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def reference() -> Iterator[BrokerProcess]:
    with start_broker(config=dict(LOCAL_BROKER_CONFIG)) as b:
        yield b


def session(broker: BrokerProcess) -> Session:
    return open_session(broker.host, broker.port, LOCAL)


@pytest.mark.parametrize("seed", [1, 5])
def test_the_reference_broker_conforms_with_the_group_rules(
    reference: BrokerProcess, seed: int
) -> None:
    s = session(reference)
    try:
        result = run_conformance(s, examples=12, seed=seed)
    finally:
        s.close()
    assert result.conformant, result.divergences
    assert result.features["groups"] == "checked"
    assert set(result.tally.rules) >= GROUP_RULES
    answers = {a for (r, a) in result.tally.answers if r in GROUP_RULES}
    assert {"NONE", "PARKED", "MEMBER_ID_REQUIRED"} <= answers


@pytest.mark.parametrize(
    ("mutant", "seed", "rules"),
    [
        (mutants.HEARTBEAT_IGNORES_REBALANCE, 5, {"heartbeat", "consumer_poll"}),
        (mutants.COMMIT_IGNORES_GENERATION, 2, {"commit_offsets"}),
    ],
)
def test_group_defects_are_caught(mutant: str, seed: int, rules: set[str]) -> None:
    config = {**LOCAL_BROKER_CONFIG, mutants.PROPERTY: mutant}
    with start_broker(config=config) as broker:
        s = session(broker)
        try:
            result = run_conformance(s, examples=20, seed=seed, shrink_budget_s=10)
        finally:
            s.close()
    assert len(result.divergences) == 1, f"{mutant} was not caught"
    d = result.divergences[0]
    assert d.rule in rules
    assert d.reproduced
    assert len(d.steps) <= 6


def test_a_static_member_rejoining_after_a_restart_is_accepted_either_way() -> None:
    """The regression against a real broker: join, leave, SIGKILL and restart, rejoin.
    Whether the Empty group's record was written before the kill is the broker's race;
    the harness must accept the rejoin's generation either way (each repetition is a
    new group)."""
    ops: list[Operation] = [
        JoinGroup(0, NEW, True),
        LeaveGroup(0, 0, True),
        RestartBroker(0),
        JoinGroup(0, NEW, True),
        DescribeGroup(),
    ]
    with start_broker(config=dict(LOCAL_BROKER_CONFIG)) as broker:
        s = session(broker)
        s.control = ProcessControl({broker.broker_id: broker})
        try:
            for _ in range(3):
                steps, divergence = replay(s, ops)
                assert divergence is None, divergence
                assert len(steps) == len(ops)
        finally:
            s.close()
