"""``kafkaref conform --local --brokers 3``: the conformance check on a replicated cluster
the harness manages (ZooKeeper and three broker processes, killed, restarted, paused, cut
off from ZooKeeper).

The oracle alone first (no cluster): what it allows when followers stop, the high
watermark a killed broker may come back with, the properties named after the spec's
invariants, the normalisation that keeps ISR changes from growing the state space, and
the operations' JSON.  Then on real clusters: the correct one conforms (two fixed seeds,
a few examples: kills, cuts from ZooKeeper, pauses, the fault pattern), a follower killed
under an acks=1 write shows serve-above-high-watermark, the fault pattern
``lose_leader_with_tail`` finds skip-truncation (an old leader that keeps its unreplicated
tail serves it once it leads again, where acknowledged records were), and the fault
pattern ``zombie_leader`` (a leader and a follower cut off from ZooKeeper) lets the
correct zombie time out its acks=all writes and finds stale-leader-accepts-produce (a
zombie that takes the ISR shrink ZooKeeper never accepted acknowledges them).  The
search's own detection of each cluster defect is the sweep's (``python -m harness.mutant_sweep``,
numbers in docs/harness.md).  Runs are bounded by examples from fixed seeds; the whole file
takes about three minutes (the zombie pattern waits out sessions and produce timeouts).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest

from harness.conform_check import DivergenceError
from harness.conform_cluster import (
    CLUSTER_LOCAL,
    ClusterSession,
    local_cluster_session,
    mutant_needs,
)
from harness.conform_cluster_history import ClusterHistory
from harness.conform_cluster_machine import ClusterMachine
from harness.conform_cluster_ops import (
    AwaitLeaders,
    CreateReplicated,
    CutFromZooKeeper,
    FaultDone,
    FetchFrom,
    HealZooKeeperLink,
    KillBroker,
    Leaders,
    ListOffsetsFrom,
    PauseBroker,
    ProduceTo,
    PropertyBroken,
    ResumeBroker,
    StartBroker,
)
from harness.conform_cluster_oracle import ClusterOracle, normalise
from harness.conform_cluster_widening import checkpointed
from harness.conform_ops import (
    ErrorAnswer,
    FetchAnswer,
    FetchedRecord,
    Operation,
    PartitionAnswer,
    ProduceAnswer,
    op_from_json,
    op_to_json,
)
from harness.conform_run import run_conformance
from harness.conform_session import replay
from harness.zookeeper import ZOOKEEPER_JAR
from spec.errors import ErrorCode
from spec.state import ClusterState, TopicPartition
from tests.harness.test_cli_explore import kafkaref

pytestmark = pytest.mark.timeout(240)

TP = TopicPartition("t0", 0)
NONE = ErrorCode.NONE


def _produced(base: int) -> ProduceAnswer:
    return ProduceAnswer((PartitionAnswer(TP, NONE, base, 0),))


def _settled_oracle() -> ClusterOracle:
    """An oracle of three brokers (target ids 1-3, controller 1) with t0 led by model
    broker 0 and one record acknowledged to an acks=all producer."""
    oracle = ClusterOracle(CLUSTER_LOCAL.spec_config(), [1, 2, 3], 1)
    assert oracle.check(CreateReplicated("t0", (0, 1, 2)), ErrorAnswer(NONE), {}).ok
    settled = Leaders((("t0", 0, 0, 0),), full_isr=True)
    assert oracle.check(AwaitLeaders(("t0",), full_isr=True), settled, {}).ok
    assert oracle.check(ProduceTo(0, TP, ((None, b"a"),), -1), _produced(0), {}).ok
    return oracle


def _leader_hw(state: ClusterState) -> int:
    rep = state.replica(TP, 0)
    assert rep is not None
    return rep.high_watermark


def _errors(allowed: tuple[object, ...]) -> set[ErrorCode | int]:
    return {
        p.error for a in allowed if isinstance(a, ProduceAnswer) for p in a.partitions
    }  # fmt: skip


# --- the oracle, without a cluster ----------------------------------------------------------


def test_acks_all_with_both_followers_paused_is_never_acknowledged() -> None:
    oracle = _settled_oracle()
    for b in (1, 2):
        assert oracle.check(PauseBroker(b), FaultDone("paused"), {}).ok
    verdict = oracle.check(ProduceTo(0, TP, ((None, b"b"),), -1), _produced(1), {})
    assert not verdict.ok
    allowed = _errors(verdict.allowed)
    assert NONE not in allowed
    assert {ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, ErrorCode.REQUEST_TIMED_OUT} <= allowed
    # One follower is enough: with the other in sync the write may be acknowledged.
    one = _settled_oracle()
    assert one.check(PauseBroker(2), FaultDone("paused"), {}).ok
    assert one.check(ProduceTo(0, TP, ((None, b"b"),), -1), _produced(1), {}).ok


def _zombie_oracle() -> ClusterOracle:
    """Leader 0 and follower 1 cut off from ZooKeeper; 2 leads once their sessions have
    expired, and takes an acks=1 write (until it does, it may still be fetching from 0
    as far as the model knows: its Metadata is not its replica's state)."""
    oracle = _settled_oracle()
    for b in (0, 1):
        assert oracle.check(CutFromZooKeeper(b), FaultDone("cut off from ZooKeeper"), {}).ok
    assert oracle.check(AwaitLeaders(("t0",)), Leaders((("t0", 0, 2, 1),)), {}).ok
    assert oracle.check(ProduceTo(2, TP, ((None, b"n"),), 1), _produced(1), {}).ok
    return oracle


def test_a_zombie_leader_never_acknowledges_acks_all() -> None:
    """0 still takes writes, but cannot drop 2 from its ISR: acks=all times out."""
    verdict = _zombie_oracle().check(ProduceTo(0, TP, ((None, b"b"),), -1), _produced(1), {})
    assert not verdict.ok
    assert _errors(verdict.allowed) == {ErrorCode.REQUEST_TIMED_OUT}
    oracle = _zombie_oracle()
    timed_out = ProduceAnswer((PartitionAnswer(TP, ErrorCode.REQUEST_TIMED_OUT),))
    assert oracle.check(ProduceTo(0, TP, ((None, b"b"),), -1), timed_out, {}).ok
    assert oracle.check(ProduceTo(0, TP, ((None, b"c"),), 1), _produced(2), {}).ok
    for b in (0, 1):
        assert oracle.check(HealZooKeeperLink(b), FaultDone("reaches ZooKeeper again"), {}).ok
    settled = Leaders((("t0", 0, 2, 1),), full_isr=True)
    assert oracle.check(AwaitLeaders(("t0",), full_isr=True), settled, {}).ok
    records = (
        FetchedRecord(0, None, b"a", leader_epoch=0),
        FetchedRecord(1, None, b"n", leader_epoch=1),
    )
    assert oracle.check(FetchFrom(2, TP, 0), FetchAnswer(NONE, 2, 0, records), {}).ok


def test_a_healed_zombie_may_follow_before_it_registers_again() -> None:
    """Healed, its session expired, a broker learns the partition state from its new
    watches, possibly before its registration is back: followed and taken into the ISR,
    then out again by the controller (a new epoch), it is back once registered."""
    oracle = _zombie_oracle()
    timed_out = ProduceAnswer((PartitionAnswer(TP, ErrorCode.REQUEST_TIMED_OUT),))
    assert oracle.check(ProduceTo(0, TP, ((None, b"b"),), -1), timed_out, {}).ok
    for b in (0, 1):
        assert oracle.check(HealZooKeeperLink(b), FaultDone("reaches ZooKeeper again"), {}).ok
    settled = Leaders((("t0", 0, 2, 2),), full_isr=True)
    assert oracle.check(AwaitLeaders(("t0",), full_isr=True), settled, {}).ok


def test_a_fetch_above_the_high_watermark_names_the_property() -> None:
    oracle = _settled_oracle()
    assert oracle.check(PauseBroker(1), FaultDone("paused"), {}).ok
    assert oracle.check(ProduceTo(0, TP, ((None, b"b"),), 1), _produced(1), {}).ok
    served = FetchAnswer(NONE, 1, 0, (FetchedRecord(1, None, b"b", leader_epoch=0),))
    verdict = oracle.check(FetchFrom(0, TP, 1), served, {})
    assert not verdict.ok
    assert isinstance(verdict.allowed[0], PropertyBroken)
    assert verdict.allowed[0].name == "BelowHighWatermark"
    committed = FetchAnswer(NONE, 2, 0, (FetchedRecord(1, None, b"b", leader_epoch=0),))
    assert committed in verdict.allowed  # once the other follower has it


def test_a_killed_leader_comes_back_with_its_checkpointed_high_watermark() -> None:
    oracle = _settled_oracle()
    read = FetchAnswer(NONE, 1, 0, (FetchedRecord(0, None, b"a", leader_epoch=0),))
    assert oracle.check(FetchFrom(0, TP, 0), read, {}).ok
    (state, *_) = [s for s in oracle.candidates if _leader_hw(s) == 1]
    assert sorted(_leader_hw(s) for s in checkpointed(state, 0)) == [0, 1]
    assert oracle.check(KillBroker(0), FaultDone("killed"), {}).ok
    assert oracle.check(StartBroker(0), FaultDone("started"), {}).ok


def test_isr_changes_do_not_grow_the_state_space() -> None:
    """A leader's ISR writes bump the znode version; normalised, a shrink followed by an
    expand is the state it started from."""
    (s, *_) = _settled_oracle().candidates
    part = s.partitions[TP]
    leader = part.replica[0]
    assert leader.known is not None
    bumped_zk = attrs.evolve(part.zk, version=part.zk.version + 2)
    bumped = s.with_partition(
        TP,
        attrs.evolve(
            part,
            zk=bumped_zk,
            replica=part.replica.set(
                0, attrs.evolve(leader, known=attrs.evolve(leader.known, version=bumped_zk.version))
            ),
        ),
    )
    assert bumped != s
    assert normalise(bumped) == normalise(s)


def test_history_properties() -> None:
    history = ClusterHistory()
    assert history.check(ProduceTo(0, TP, ((b"k", b"v"),), -1), _produced(0)) is None
    read = FetchAnswer(NONE, 1, 0, (FetchedRecord(0, b"k", b"v", leader_epoch=0),))
    assert history.check(FetchFrom(0, TP, 0), read) is None
    lost = FetchAnswer(NONE, 1, 0, (FetchedRecord(0, None, b"x", leader_epoch=1),))
    broken = history.check(FetchFrom(1, TP, 0), lost)
    assert broken is not None and broken.name == "ConsistentRead"
    reused = history.check(ProduceTo(1, TP, ((None, b"y"),), 1), _produced(0))
    assert reused is not None and reused.name == "OffsetsNeverReused"
    fresh = ClusterHistory()
    assert fresh.check(ProduceTo(0, TP, ((None, b"v"),), -1), _produced(3)) is None
    gap = FetchAnswer(NONE, 5, 0, tuple(FetchedRecord(o, None, b"w") for o in (2, 4)))
    missing = fresh.check(FetchFrom(0, TP, 2), gap)
    assert missing is not None and missing.name == "NoCommittedRecordLostGlobally"


def test_cluster_operations_round_trip_through_json() -> None:
    ops: list[Operation] = [
        CreateReplicated("t0", (2, 0, 1)),
        ProduceTo(1, TP, ((None, b"\x00"), (b"", b"v")), 0),
        FetchFrom(2, TP, 7),
        ListOffsetsFrom(0, TP, -2),
        KillBroker(1),
        StartBroker(1),
        PauseBroker(2),
        ResumeBroker(2),
        CutFromZooKeeper(0),
        HealZooKeeperLink(0),
        AwaitLeaders(("t0",), full_isr=True),
    ]
    assert [op_from_json(op_to_json(op)) for op in ops] == ops


def test_brokers_needs_local() -> None:
    out = kafkaref("conform", "--bootstrap", "127.0.0.1:1", "--brokers", "3")
    assert out.returncode == 2 and "--brokers needs --local" in out.stderr


def test_a_defect_that_needs_a_cluster_is_known_from_the_brokers_registry() -> None:
    assert mutant_needs("serve-above-high-watermark") == "cluster"
    assert mutant_needs("fetch-off-by-one") == "single broker"
    assert mutant_needs("no-such-defect") is None


# --- on real clusters -------------------------------------------------------------------------


@pytest.fixture
def cluster_session() -> Iterator[ClusterSession]:
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("ZooKeeper is not installed")
    with local_cluster_session() as session:
        yield session


@pytest.mark.parametrize("seed", [6, 8])
def test_the_correct_cluster_conforms(cluster_session: ClusterSession, seed: int) -> None:
    """Seed 6 kills and starts brokers, cuts one off from ZooKeeper and heals it; seed 8
    also pauses and resumes one and runs the fault pattern lose_leader_with_tail."""
    result = run_conformance(cluster_session, examples=3, seed=seed, steps=15, shrink_budget_s=0)
    assert result.conformant, [d.steps[-1] for d in result.divergences]
    exercised = set(cluster_session.tally.rules)
    assert {"produce", "fetch", "await_leaders"} <= exercised
    assert exercised & {"kill_broker", "pause_broker", "lose_leader_with_tail"}
    assert {"cut_from_zookeeper", "heal_zookeeper_link"} <= exercised


def test_serve_above_high_watermark_is_caught() -> None:
    """A follower killed (still in the ISR for seconds), an acks=1 write, a fetch: the
    defect serves records the high watermark has not passed."""
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("ZooKeeper is not installed")
    ops: list[Operation] = [
        CreateReplicated("t0", (0, 1, 2)),
        AwaitLeaders(("t0",), full_isr=True),
        KillBroker(2),
        ProduceTo(0, TP, ((None, b"a"), (None, b"b")), 1),
        FetchFrom(0, TP, 0),
    ]
    with local_cluster_session(mutant="serve-above-high-watermark") as session:
        steps, divergence = replay(session, ops)
    assert divergence is not None, [s.observed for s in steps]
    assert isinstance(divergence.steps[-1].op, FetchFrom)
    (named, *_) = divergence.allowed
    assert isinstance(named, PropertyBroken) and named.name == "BelowHighWatermark"


def test_skip_truncation_is_found_by_the_lose_leader_with_tail_pattern() -> None:
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("ZooKeeper is not installed")
    with local_cluster_session(mutant="skip-truncation") as session:
        machine = ClusterMachine(session.new_example(), session.declaration)
        try:
            machine.create_topic(0)
            with pytest.raises(DivergenceError) as caught:
                machine.lose_leader_with_tail(
                    ((None, b"A1"),),
                    ((None, b"A2"), (None, b"A3")),
                    ((None, b"B1"),),
                    ((None, b"B2"),),
                )
        finally:
            machine.teardown()
    assert isinstance(caught.value.steps[-1].op, FetchFrom)
    names = {a.name for a in caught.value.allowed if isinstance(a, PropertyBroken)}
    assert names & {"NoCommittedRecordLostGlobally", "ConsistentRead"}


ZOMBIE_WRITES = (((None, b"N1"),), ((None, b"Z1"),), ((None, b"Z2"),))


def _zombie_leader(session: ClusterSession) -> ClusterMachine:
    """Run the zombie_leader pattern on a fresh topic led by model broker 0."""
    machine = ClusterMachine(session.new_example(), session.declaration)
    try:
        machine.create_topic(0)
        machine.zombie_leader(0, *ZOMBIE_WRITES)
    finally:
        machine.teardown()
    return machine


def test_a_zombie_leader_of_the_correct_cluster_times_out_acks_all(
    cluster_session: ClusterSession,
) -> None:
    """As a ZooKeeper-mode Kafka leader: cut off, it keeps the ISR it cached (its write
    waits for ZooKeeper), so its acks=all writes wait for the follower that left it."""
    machine = _zombie_leader(cluster_session)
    answers = [
        s.observed
        for s in machine.example.steps
        if s.rule == "zombie_leader" and isinstance(s.op, ProduceTo) and s.op.acks == -1
    ]
    assert _errors(tuple(answers)) == {ErrorCode.REQUEST_TIMED_OUT}, answers


def test_stale_leader_accepts_produce_is_found_by_the_zombie_leader_pattern() -> None:
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("ZooKeeper is not installed")
    with (
        local_cluster_session(mutant="stale-leader-accepts-produce") as session,
        pytest.raises(DivergenceError) as caught,
    ):
        _zombie_leader(session)
    last = caught.value.steps[-1]
    assert isinstance(last.op, ProduceTo) and last.op.acks == -1
    assert _errors((last.observed,)) == {NONE}
