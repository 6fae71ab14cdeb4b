"""Leader election and the controller: clean election in assignment order, a partition
going offline with no live ISR member, unclean leader election, controller failover and
its epoch, and a ZooKeeper session expiry that leaves a fenced zombie leader.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from typing import Any

from spec.actions import (
    ACKS_LEADER,
    ApplyLeaderAndIsr,
    CompleteProduce,
    ControllerUpdatePartition,
    CrashBroker,
    ElectController,
    ExpireSession,
    Produce,
    ProducedRecord,
    Reregister,
    RestartBroker,
    ShrinkIsr,
    Tick,
)
from spec.cluster import internal_actions
from spec.errors import ErrorCode
from spec.state import NO_LEADER
from tests.spec.scenario_helpers import LAG_MS, TP, World

# --- leader election and the controller --------------------------------------------------


def test_clean_election_takes_the_first_live_isr_member_in_assignment_order() -> None:
    w = World(assignment=(1, 2, 0))
    assert w.zk.leader == 1
    w.ok(CrashBroker(1))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr, w.zk.leader_epoch) == (2, {0, 2}, 1)
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr, w.zk.leader_epoch) == (0, {0}, 2)
    w.check_invariants()


def shrunk_to_leader(**config: Any) -> World:
    """ISR {0}: the followers fell behind and the leader dropped them; then 0 crashed."""
    w = World(controller=1, **config)
    w.produce(0, "a", acks=ACKS_LEADER)
    w.ok(Tick(LAG_MS + 1))
    w.ok(ShrinkIsr(TP, 0, 1))
    w.ok(ShrinkIsr(TP, 0, 2))
    assert w.zk.isr == {0}
    w.ok(CrashBroker(0))
    return w


def test_no_live_isr_member_takes_the_partition_offline() -> None:
    w = shrunk_to_leader()
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr) == (NO_LEADER, {0})  # the last ISR member stays
    w.settle()
    assert w.zk.leader == NO_LEADER  # 1 and 2 are live but never elected
    for b in (1, 2):
        w.refuse(
            Produce(TP, b, (ProducedRecord(b"x"),), acks=ACKS_LEADER),
            ErrorCode.NOT_LEADER_OR_FOLLOWER,
        )
    # When the last ISR member returns, it leads again, with its records.
    w.ok(RestartBroker(0))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr) == (0, {0})
    w.settle()
    assert w.values(0) == ["a"]
    w.check_invariants()


def test_unclean_leader_election_elects_a_live_replica_outside_the_isr() -> None:
    w = shrunk_to_leader(unclean_leader_election_enable=True)
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.isr) == (1, {1})
    w.settle()
    assert w.values(1) == []  # "a" is gone from the new leader
    assert w.produce(1, "b", acks=ACKS_LEADER).base_offset == 0


def test_controller_failover_bumps_the_controller_epoch_and_keeps_electing() -> None:
    w = World()
    assert (w.s.controller, w.s.controller_epoch) == (0, 1)
    w.refuse(ElectController(1), ErrorCode.NOT_CONTROLLER)
    w.ok(CrashBroker(0))
    assert w.s.controller == NO_LEADER
    w.refuse(ControllerUpdatePartition(TP), ErrorCode.NOT_CONTROLLER)
    w.refuse(ApplyLeaderAndIsr(TP, 1), ErrorCode.NOT_CONTROLLER)
    w.refuse(ElectController(0), ErrorCode.BROKER_NOT_AVAILABLE)
    assert {a for a in internal_actions(w.s) if isinstance(a, ElectController)} == {
        ElectController(1),
        ElectController(2),
    }
    w.ok(ElectController(1))
    assert (w.s.controller, w.s.controller_epoch) == (1, 2)
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch, w.zk.controller_epoch) == (1, 1, 2)
    w.ok(CrashBroker(1))
    w.ok(ElectController(2))
    assert w.s.controller_epoch == 3
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch, w.zk.controller_epoch) == (2, 2, 3)
    w.settle()
    assert w.rep(2).known == w.zk
    w.check_invariants()


def test_zookeeper_session_expiry_leaves_a_fenced_zombie_leader() -> None:
    w = World(controller=2)
    w.produce(0, "committed", acks=ACKS_LEADER)
    w.settle()
    w.ok(ExpireSession(0))
    assert w.s.is_up(0)
    assert not w.s.is_live(0)
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch, w.zk.isr) == (1, 1, {1, 2})
    w.ok(ApplyLeaderAndIsr(TP, 1))
    w.ok(ApplyLeaderAndIsr(TP, 2))
    w.refuse(ApplyLeaderAndIsr(TP, 0), ErrorCode.BROKER_NOT_AVAILABLE)
    # The zombie still believes it leads and accepts writes...
    assert w.rep(0).presumes_leadership(0)
    w.produce(0, "zombie", acks=ACKS_LEADER)
    pending = w.produce(0, "zombie-all", timeout_ms=5_000).pending
    assert pending is not None
    hw = w.hw(0)
    # ...but nobody fetches from it, so its high watermark cannot move,
    w.settle()
    assert w.hw(0) == hw
    assert CompleteProduce(pending) not in set(internal_actions(w.s))
    # and its ISR writes are refused: without a session, then by the znode version.
    w.ok(Tick(LAG_MS + 1))
    w.refuse(ShrinkIsr(TP, 0, 1), ErrorCode.NOT_LEADER_OR_FOLLOWER)
    w.ok(Reregister(0))
    w.refuse(ShrinkIsr(TP, 0, 1), ErrorCode.INVALID_UPDATE_VERSION)
    w.refuse(ShrinkIsr(TP, 0, 2), ErrorCode.INVALID_UPDATE_VERSION)
    assert w.hw(0) == hw
    w.check_invariants()
    # The acks=all produce fails; the zombie then learns the new epoch and truncates.
    w.ok(Tick(5_000))
    response = w.ok(CompleteProduce(pending))
    assert response.error is ErrorCode.REQUEST_TIMED_OUT
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.settle()
    assert w.values(0) == ["committed"]
    assert w.values(0) == w.values(1) == w.values(2)
    w.check_invariants()
