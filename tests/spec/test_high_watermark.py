"""High watermark scenarios: the leader's high watermark is the minimum log end offset over
its ISR and only moves up, ISR expansion never lowers it, and followers take it from the
leader.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_LEADER,
    ControllerUpdatePartition,
    CrashBroker,
    ExpandIsr,
    FollowerFetch,
    ShrinkIsr,
    Tick,
)
from spec.errors import ErrorCode
from spec.state import ClusterState, FollowerProgress
from tests.spec.scenario_helpers import LAG_MS, TP, World


def expected_hw(s: ClusterState, leader: int) -> int:
    """Kafka's rule: the minimum log end offset over the leader's ISR."""
    rep = s.partitions[TP].replica[leader]
    assert rep.known is not None
    leos = [rep.log.end_offset]
    for f in rep.known.isr - {leader}:
        leos.append(rep.followers.get(f, FollowerProgress()).log_end_offset)
    return min(leos)


# --- high watermark --------------------------------------------------------------------


def test_high_watermark_is_the_minimum_leo_over_the_isr_and_only_moves_up() -> None:
    w = World()
    w.produce(0, "a", "b", "c", acks=ACKS_LEADER)
    history = [w.hw(0)]
    for b in (1, 2, 1, 2, 1):
        w.ok(FollowerFetch(TP, b))
        assert w.hw(0) == max(0, expected_hw(w.s, 0))
        history.append(w.hw(0))
        w.produce(0, f"more{b}", acks=ACKS_LEADER)
        assert w.hw(0) == history[-1]  # appending does not move it
    assert history == sorted(history)
    assert history[-1] > 0
    # A follower outside the ISR does not hold the high watermark back.
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    w.settle()
    assert w.zk.isr == {0, 1}
    assert w.hw(0) == w.rep(0).log.end_offset
    w.check_invariants()


def test_expanding_the_isr_never_lowers_the_high_watermark() -> None:
    w = World()
    w.produce(0, "a", acks=ACKS_LEADER)
    w.ok(Tick(LAG_MS + 1))
    w.ok(ShrinkIsr(TP, 0, 2))
    w.fetch_rounds(1, 2)
    assert w.hw(0) == 1
    # Follower 2 cannot rejoin before it reaches the high watermark.
    w.refuse(ExpandIsr(TP, 0, 2), ErrorCode.INVALID_REQUEST)
    w.fetch_rounds(2, 2)
    w.ok(ExpandIsr(TP, 0, 2))
    assert w.zk.isr == {0, 1, 2}
    assert w.hw(0) == 1
    w.check_invariants()


def test_follower_takes_the_leaders_high_watermark() -> None:
    w = World()
    w.produce(0, "a", acks=ACKS_LEADER)
    w.fetch_rounds(1, 1)
    assert w.rep(1).log.end_offset == 1
    assert w.hw(1) == 0  # the leader has not heard of it yet
    w.fetch_rounds(2, 2)
    w.fetch_rounds(1, 1)
    assert w.hw(0) == 1
    assert w.hw(1) == 1
