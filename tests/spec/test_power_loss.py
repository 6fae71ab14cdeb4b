"""Power-loss scenarios: Kafka does not fsync before acknowledging, so a crash that loses a
log's unflushed suffix can lose an acknowledged record, and a follower that loses power
stays in the ISR until the controller acts.  These show why the power-loss property runs
(PowerLossMachine in test_cluster_properties.py) leave some invariants unchecked.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_LEADER,
    ApplyLeaderAndIsr,
    CompleteProduce,
    ControllerUpdatePartition,
    CrashBroker,
    ElectController,
    FlushLogs,
    RestartBroker,
)
from spec.errors import ErrorCode
from spec.invariants import INVARIANTS
from tests.spec.scenario_helpers import TP, World


def test_one_power_loss_can_lose_an_acknowledged_record() -> None:
    """Why the power-loss property runs leave some invariants unchecked.  Kafka does not
    fsync before acknowledging; a broker that loses its unflushed suffix comes back still
    named in the ISR if the controller never saw it leave (here both brokers went down
    together, the controller with them), and is elected cleanly (the gap KIP-966 closes).
    """
    w = World(brokers=2)
    req = w.produce(0, "acked").pending
    w.settle()
    assert req is not None
    assert w.ok(CompleteProduce(req)).error is ErrorCode.NONE
    w.ok(CrashBroker(1))  # keeps "acked" on disk
    w.ok(CrashBroker(0, lose_unflushed=True))  # never flushed: loses it
    assert w.values(0) == []
    assert w.values(1) == ["acked"]
    w.ok(RestartBroker(0))
    w.ok(ElectController(0))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr) == (0, {0})
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.produce(0, "other", acks=ACKS_LEADER)
    assert w.hw(0) == 1
    broken = {name for name, inv in INVARIANTS.items() if not inv(w.s)}
    assert broken == {"LeaderCompleteness", "LogMatching", "ConsistentRead"}
    # A flush before the power loss would have kept it.
    w2 = World(brokers=2)
    req = w2.produce(0, "acked").pending
    assert req is not None
    w2.settle()
    w2.ok(CompleteProduce(req))
    w2.ok(FlushLogs(0))
    w2.ok(CrashBroker(1))
    w2.ok(CrashBroker(0, lose_unflushed=True))
    assert w2.values(0) == ["acked"]


def test_a_follower_that_loses_power_stays_in_the_isr_until_the_controller_acts() -> None:
    w = World(brokers=2)
    w.produce(0, "a")
    w.settle()
    assert w.hw(0) == 1
    w.ok(CrashBroker(1, lose_unflushed=True))
    assert w.values(1) == []
    assert w.zk.isr == {0, 1}
    assert not INVARIANTS["WeakIsr"](w.s)
    assert not INVARIANTS["StrongIsr"](w.s)
    w.ok(ControllerUpdatePartition(TP))
    assert w.zk.isr == {0}
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.check_invariants()
