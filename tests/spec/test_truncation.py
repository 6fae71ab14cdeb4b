"""Truncation scenarios: a follower truncates by leader epoch (KIP-101, KIP-279) and keeps
committed records, where truncating to the high watermark would lose one; divergent logs;
``spec.replication.truncation_offset`` over several rounds and after an empty epoch.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

from spec.actions import (
    ACKS_LEADER,
    ApplyLeaderAndIsr,
    CompleteProduce,
    ControllerUpdatePartition,
    CrashBroker,
    ElectController,
    ExpireSession,
    Fetch,
    FollowerFetch,
    Reregister,
    RestartBroker,
)
from spec.errors import ErrorCode
from spec.invariants import INVARIANTS
from spec.log import EpochEntry, Log, Record
from spec.produce import ProduceResponse
from spec.replication import truncation_offset
from spec.state import AckedRecord
from spec.variants import Variant
from tests.spec.scenario_helpers import TP, World

# --- truncation by leader epoch: KIP-101 and KIP-279 ------------------------------------


def kip_101(variants: frozenset[Variant]) -> World:
    """KIP-101's first scenario on three replicas 0, 1, 2 (leader 0, min ISR 2).

    m1 and m2 are acknowledged with acks=all; follower 1 holds m2 but has only heard of
    high watermark 1.  Broker 2 fails, so follower 1 receives a LeaderAndIsr (leader 0,
    ISR {0, 1}); then leader 0 fails before follower 1 fetches again, and 1 is elected.
    """
    w = World(controller=2, variants=variants)
    m1 = w.produce(0, "m1").pending
    w.settle()
    assert m1 is not None
    assert w.ok(CompleteProduce(m1)).error is ErrorCode.NONE
    m2 = w.produce(0, "m2").pending
    assert m2 is not None
    w.fetch_rounds(1, 2)  # 1 gets m2 and reports it; 2 has not: HW stays 1
    w.fetch_rounds(2, 2)  # 2 reports m2 last: HW 2
    assert (w.hw(0), w.hw(1), w.hw(2)) == (2, 1, 2)
    assert w.values(1) == ["m1", "m2"]
    assert w.ok(CompleteProduce(m2)) == ProduceResponse(m2, ErrorCode.NONE, 1)
    w.ok(CrashBroker(2))
    w.ok(ElectController(0))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.ok(ApplyLeaderAndIsr(TP, 1))  # follower 1 learns leader epoch 1
    w.ok(CrashBroker(0))
    w.ok(ElectController(1))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr) == (1, {1})
    w.ok(ApplyLeaderAndIsr(TP, 1))
    return w


def test_kip_101_truncation_by_leader_epoch_keeps_committed_records() -> None:
    w = kip_101(frozenset())
    assert w.values(1) == ["m1", "m2"]
    assert w.ok(Fetch(TP, 1, 1)).records == ()  # HW 1 on the new leader, m2 still there
    w.check_invariants()


def test_kip_101_truncation_to_the_high_watermark_loses_an_acknowledged_record() -> None:
    w = kip_101(frozenset({Variant.TRUNCATE_TO_HIGH_WATERMARK}))
    assert w.values(1) == ["m1"]
    assert AckedRecord(TP, 1, w.rep(0).log.records[1]) in w.s.acked
    assert not INVARIANTS["LeaderCompleteness"](w.s)
    # The new leader hands offset 1 to another record.
    assert w.produce(1, "other", acks=ACKS_LEADER).base_offset == 1


def test_divergent_logs_are_truncated_to_where_they_agree() -> None:
    """Two leaders wrote different records at offset 1 in different epochs: the old leader
    comes back as a follower and truncates its uncommitted record away (KIP-101/279)."""
    w = World(brokers=2, min_insync_replicas=1)
    w.produce(0, "r0", acks=ACKS_LEADER)
    w.settle()
    assert w.hw(0) == w.hw(1) == 1
    w.produce(0, "a", acks=ACKS_LEADER)  # epoch 0, offset 1: never replicated
    w.ok(CrashBroker(0))
    w.ok(ElectController(1))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(ApplyLeaderAndIsr(TP, 1))
    w.produce(1, "b", "c", acks=ACKS_LEADER)  # epoch 1, offsets 1 and 2
    assert w.values(0) == ["r0", "a"]
    w.ok(RestartBroker(0))
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.ok(FollowerFetch(TP, 0))  # the truncation round
    assert w.values(0) == ["r0"]
    assert w.rep(0).log.epochs == (EpochEntry(0, 0),)
    w.ok(FollowerFetch(TP, 0))
    assert w.values(0) == ["r0", "b", "c"]
    assert w.rep(0).log.records == w.rep(1).log.records
    assert w.rep(0).log.epochs == w.rep(1).log.epochs
    w.check_invariants()


def log_of(*records: tuple[str, int]) -> Log:
    log = Log()
    for value, epoch in records:
        log = log.append(Record(value.encode(), leader_epoch=epoch))
    return log


def test_truncation_offset_kip_279_leader_lacks_the_followers_epoch() -> None:
    # The follower wrote x at offset 1 as leader of epoch 2; meanwhile the real leader wrote
    # y at offset 1 in epoch 1 and z in epoch 3.  Asked for epoch 2, the leader answers
    # (epoch 1, end 2); KIP-101 alone would keep x at offset 1, below 2.
    follower = log_of(("r0", 0), ("x", 2))
    leader = log_of(("r0", 0), ("y", 1), ("z", 3))
    assert leader.end_offset_for_epoch(2) == (1, 2)
    assert truncation_offset(follower, 0, leader) == 1


def test_truncation_offset_over_several_rounds() -> None:
    # The follower has epochs 0, 2, 4; the leader 0, 1, 3, 5.  Each round drops one of the
    # follower's epochs until both agree on epoch 0, which ends at offset 2 on the leader.
    follower = log_of(("a", 0), ("b", 0), ("c", 2), ("d", 4))
    leader = log_of(("a", 0), ("b", 0), ("p", 1), ("q", 3), ("r", 5))
    assert truncation_offset(follower, 0, leader) == 2


def test_truncation_offset_keeps_everything_the_leader_has() -> None:
    leader = log_of(("a", 0), ("b", 0), ("c", 1), ("d", 1))
    for upto in range(5):
        follower = log_of(*[(v, e) for v, e in (("a", 0), ("b", 0), ("c", 1), ("d", 1))][:upto])
        assert truncation_offset(follower, 0, leader) == upto
    # The follower ahead in the leader's latest epoch is cut to the leader's end.
    longer = log_of(("a", 0), ("b", 0), ("c", 1), ("d", 1), ("e", 1))
    assert truncation_offset(longer, 0, leader) == 4


def test_truncation_offset_same_epoch_later_start_on_the_follower() -> None:
    # Both have epoch 1, but the leader's epoch 1 ends at 2 (epoch 2 began there).
    follower = log_of(("a", 0), ("b", 1), ("x", 1), ("y", 1))
    leader = log_of(("a", 0), ("b", 1), ("c", 2))
    assert truncation_offset(follower, 0, leader) == 2


def test_truncation_offset_without_epochs_falls_back_to_the_high_watermark() -> None:
    follower = Log(records=(Record(b"a"), Record(b"b"), Record(b"c")))  # no epoch cache
    leader = log_of(("a", 0))
    assert truncation_offset(follower, 2, leader) == 2
    # And a leader that knows none of the follower's epochs answers UNDEFINED too.
    assert truncation_offset(log_of(("a", 7), ("b", 7)), 1, log_of(("a", 0))) == 1


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise TimeoutError if the block uses more than ``seconds`` of CPU time (a CPU-time
    timer, SIGVTALRM, leaves pytest-timeout's SIGALRM alone)."""

    def expire(_signum: int, _frame: object) -> None:
        raise TimeoutError(f"did not finish within {seconds} s of CPU time")

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def test_truncation_offset_after_an_empty_epoch_terminates() -> None:
    follower = log_of(("r0", 0)).assign_epoch(2)  # led epoch 2, wrote nothing
    leader = log_of(("r0", 0), ("r1", 1)).assign_epoch(3)
    with time_limit(1):
        assert truncation_offset(follower, 1, leader) == 1


def test_follower_that_led_an_empty_epoch_can_fetch_again() -> None:
    """Reachable with clean elections: brokers 0, 1, 2 (assignment order), min ISR 1.
    Epoch 1 (after 1's session expired and it rejoined): leader 0 writes r1, only 2 gets
    it.  0 crashes: 1 is elected (epoch 2) and writes nothing.  1 crashes: 2 is elected
    (epoch 3).  1 restarts as follower: recovery drops its empty epoch-2 entry, leaving
    [(0,0)] and LEO 1; the leader's [(0,0),(1,1),(3,2)] answers (0, 1) for epoch 0, so 1
    keeps r0 and fetches r1.  (Without the crash, the empty entry stays and the truncation
    must still end: test_truncation_offset_after_an_empty_epoch_terminates.)
    """
    w = World(min_insync_replicas=1)
    w.produce(0, "r0", acks=ACKS_LEADER)
    w.settle()
    w.ok(ExpireSession(1))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(Reregister(1))
    w.settle()
    assert (w.zk.leader_epoch, w.zk.isr) == (1, {0, 1, 2})
    w.produce(0, "r1", acks=ACKS_LEADER)
    w.fetch_rounds(2)
    w.ok(CrashBroker(0))
    w.ok(ElectController(2))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch) == (1, 2)
    w.ok(ApplyLeaderAndIsr(TP, 1))
    w.ok(CrashBroker(1))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch) == (2, 3)
    w.ok(ApplyLeaderAndIsr(TP, 2))
    w.ok(RestartBroker(1))
    w.ok(ApplyLeaderAndIsr(TP, 1))
    # Recovery on restart drops the entry of the epoch 1 led without writing (Kafka's log
    # loading truncates the cache from the log end); the truncation below copes either way.
    assert w.rep(1).log.epochs == (EpochEntry(0, 0),)
    assert w.rep(2).log.epochs == (EpochEntry(0, 0), EpochEntry(1, 1), EpochEntry(3, 2))
    with time_limit(1):
        w.ok(FollowerFetch(TP, 1))
        w.ok(FollowerFetch(TP, 1))
    assert w.values(1) == ["r0", "r1"]
    w.check_invariants()
