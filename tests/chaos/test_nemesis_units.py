"""The nemesis and its schedule without Docker: a fake cluster records what is done to it.

Each fault kind and shape is aimed at the role the plan names (the leader of the planned
partition, the controller, a minority, a majority), done, healed, and recorded as a
fault and a heal of process "nemesis" that ``fault_windows`` pairs up; a failing action
is recorded ``info``; ``heal_everything`` leaves nothing killed, paused or partitioned;
and the schedule is a function of its seed.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Collection, Mapping

import pytest

from chaos.generator import (
    FAULT_KINDS,
    TARGETS,
    FaultPlan,
    Pacer,
    ScheduleOptions,
    SendGenerator,
    fault_schedule,
    plan_prefix,
)
from chaos.nemesis import Nemesis
from harness.history import NEMESIS, F, Fault, MemoryHistory, OpType, fault_windows


class FakeCluster:
    """Three brokers and ZooKeeper nodes; records every action."""

    def __init__(self, zookeepers: int = 1) -> None:
        self.names = [f"broker-{i}" for i in (1, 2, 3)]
        self.names += [f"zookeeper-{i}" for i in range(1, zookeepers + 1)]
        self.state = dict.fromkeys(self.names, "running")
        self.grudge: dict[str, frozenset[str]] = {}
        self.actions: list[tuple[str, object]] = []
        self.fail_on: str | None = None

    def _act(self, what: str, arg: object) -> None:
        if what == self.fail_on:
            raise RuntimeError(f"{what} failed")
        self.actions.append((what, arg))

    def kill(self, name: str) -> None:
        self._act("kill", name)
        self.state[name] = "exited"

    def start_node(self, name: str, timeout_s: float = 0.0) -> None:
        self._act("start", name)
        self.state[name] = "running"

    def pause(self, name: str) -> None:
        self._act("pause", name)
        self.state[name] = "paused"

    def unpause(self, name: str) -> None:
        self._act("unpause", name)
        self.state[name] = "running"

    def partition(self, *components: Collection[str]) -> dict[str, frozenset[str]]:
        listed = {n for c in components for n in c}
        groups = [set(c) for c in components] + [set(self.names) - listed]
        grudge = {n: frozenset(set(self.names) - g) for g in groups for n in g}
        return self.drop(grudge)

    def drop(self, grudge: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
        self._act("drop", {k: sorted(v) for k, v in grudge.items()})
        self.grudge = {k: frozenset(v) for k, v in grudge.items() if v}
        return dict(self.grudge)

    def heal(self) -> None:
        self._act("heal", None)
        self.grudge = {}

    def status(self, name: str) -> str:
        return self.state[name]

    def wait_healthy(self, timeout_s: float = 0.0) -> None:
        self.actions.append(("wait_healthy", None))


class FakeRoles:
    def __init__(self, zookeepers: int = 1, leader: int | None = 2, controller: int = 3) -> None:
        self._zookeepers = zookeepers
        self._leader = leader
        self._controller = controller

    def brokers(self) -> list[int]:
        return [1, 2, 3]

    def zookeepers(self) -> list[int]:
        return list(range(1, self._zookeepers + 1))

    def leader(self, partition: int) -> int | None:
        return self._leader

    def controller(self) -> int | None:
        return self._controller


def nemesis(db: FakeCluster, roles: FakeRoles | None = None) -> tuple[Nemesis, MemoryHistory]:
    history = MemoryHistory()
    n = Nemesis(db, roles or FakeRoles(), history, schedule=iter(()), rng=random.Random(7))
    return n, history


def plan(kind: str, target: str, shape: str | None = None) -> FaultPlan:
    return FaultPlan(kind, shape or kind, target, partition=0, quiet_s=0.0, duration_s=1.0)


def no_wait(_seconds: float) -> None:
    """The schedule's hold, skipped: the fake cluster has no time."""


def test_kill_of_the_leader_is_recorded_and_healed() -> None:
    db = FakeCluster()
    n, history = nemesis(db)
    n.run_step(plan("kill", "leader"), no_wait)
    assert db.actions[:2] == [("kill", "broker-2"), ("start", "broker-2")]
    assert ("wait_healthy", None) in db.actions
    ops = [(op.f, op.type, op.value) for op in history.ops]
    fault = Fault("kill", ("broker-2",), "leader of partition 0")
    assert ops == [
        (F.FAULT, OpType.INVOKE, fault),
        (F.FAULT, OpType.OK, fault),
        (F.HEAL, OpType.INVOKE, fault),
        (F.HEAL, OpType.OK, fault),
    ]
    assert all(op.process == NEMESIS for op in history.ops)
    (window,) = fault_windows(history.ops)
    assert window.kind == "kill" and window.targets == ("broker-2",)
    assert window.end_ns is not None and window.end_ns >= window.start_ns


def test_pause_of_the_controller() -> None:
    db = FakeCluster()
    n, _ = nemesis(db)
    n.run_step(plan("pause", "controller"), no_wait)
    assert db.actions[:2] == [("pause", "broker-3"), ("unpause", "broker-3")]


def test_unknown_leader_falls_back_to_a_random_broker_and_says_so() -> None:
    db = FakeCluster()
    n, history = nemesis(db, FakeRoles(leader=None))
    n.run_step(plan("kill", "leader"), no_wait)
    value = history.ops[0].value
    assert isinstance(value, Fault) and "unknown" in value.note
    assert value.targets[0] in ("broker-1", "broker-2", "broker-3")


@pytest.mark.parametrize(("target", "size"), [("minority", 1), ("majority", 2)])
def test_minority_and_majority_sizes(target: str, size: int) -> None:
    db = FakeCluster()
    n, history = nemesis(db)
    n.run_step(plan("kill", target), no_wait)
    value = history.ops[0].value
    assert isinstance(value, Fault) and len(value.targets) == size
    assert [a for a in db.actions if a[0] == "kill"] == [("kill", t) for t in value.targets]


def test_isolating_the_leader_cuts_it_off_from_every_node() -> None:
    db = FakeCluster()
    n, _ = nemesis(db)
    strike = n.strike(plan("partition", "leader", "isolate"))
    assert strike is not None and strike.targets == ("broker-2",)
    assert db.grudge["broker-2"] == {"broker-1", "broker-3", "zookeeper-1"}
    assert db.grudge["zookeeper-1"] == {"broker-2"}
    n.heal(strike)
    assert db.grudge == {}


def test_halves_split_every_node_in_two() -> None:
    db = FakeCluster(zookeepers=3)
    n, _ = nemesis(db, FakeRoles(zookeepers=3))
    strike = n.strike(plan("partition", "minority", "halves"))
    assert strike is not None and len(strike.targets) == 3
    small = set(strike.targets)
    for name in small:
        assert db.grudge[name] == set(db.names) - small


def test_a_bridge_node_hears_both_sides() -> None:
    db = FakeCluster(zookeepers=3)
    n, _ = nemesis(db, FakeRoles(zookeepers=3))
    strike = n.strike(plan("partition", "majority", "bridge"))
    assert strike is not None
    (bridge,) = strike.targets
    assert bridge not in db.grudge
    sides = {frozenset(g) for g in db.grudge.values()}
    assert len(sides) == 2
    left, right = sides
    assert not left & right and left | right == set(db.names) - {bridge}


def test_zookeeper_faults() -> None:
    db = FakeCluster()
    n, _ = nemesis(db)
    n.run_step(plan("zookeeper", "one", "kill"), no_wait)
    assert db.actions[:2] == [("kill", "zookeeper-1"), ("start", "zookeeper-1")]
    db.actions.clear()
    strike = n.strike(plan("zookeeper", "leader", "cut-broker"))
    assert strike is not None and strike.targets == ("broker-2",)
    assert db.grudge == {"broker-2": {"zookeeper-1"}, "zookeeper-1": {"broker-2"}}
    n.heal(strike)
    strike = n.strike(plan("zookeeper", "one", "cut-brokers"))
    assert strike is not None and strike.targets == ("broker-1", "broker-2", "broker-3")
    assert db.grudge["zookeeper-1"] == {"broker-1", "broker-2", "broker-3"}
    assert db.grudge["broker-1"] == {"zookeeper-1"}


def test_a_failed_action_is_recorded_info() -> None:
    db = FakeCluster()
    db.fail_on = "kill"
    n, history = nemesis(db)
    n.strike(plan("kill", "leader"))
    assert [op.type for op in history.ops] == [OpType.INVOKE, OpType.INFO]
    assert "kill failed" in (history.ops[1].error or "")


def test_heal_everything_repairs_what_is_left() -> None:
    db = FakeCluster()
    n, history = nemesis(db)
    db.kill("broker-1")
    db.pause("broker-2")
    db.partition(["broker-3"])
    n.heal_everything()
    assert set(db.state.values()) == {"running"} and db.grudge == {}
    heals = [op.value for op in history.ops if op.f is F.HEAL and op.type is OpType.OK]
    kinds = sorted(v.kind for v in heals if isinstance(v, Fault))
    assert kinds == ["kill", "partition", "pause"]


def test_heal_everything_heals_the_fault_being_held() -> None:
    db = FakeCluster()
    n, history = nemesis(db)
    n.strike(plan("pause", "leader"))
    n.heal_everything()
    assert db.state["broker-2"] == "running"
    windows = fault_windows(history.ops)
    assert [w.end_ns is not None for w in windows] == [True]


def test_the_schedule_is_a_function_of_the_seed() -> None:
    options = ScheduleOptions(zookeepers=3)
    first = plan_prefix(options, 5, 300.0)
    assert first == plan_prefix(options, 5, 300.0)
    assert first != plan_prefix(options, 6, 300.0)
    assert {p.kind for p in first} == set(FAULT_KINDS)
    assert {p.target for p in first} <= set(TARGETS)
    assert first[0].quiet_s == options.first_s
    for p in first:
        assert options.duration_s * 0.7 - 0.1 <= p.duration_s <= options.duration_s * 1.3 + 0.1


def test_the_schedule_keeps_to_the_kinds_and_targets_asked_for() -> None:
    options = ScheduleOptions(kinds=("partition",), targets=("leader",))
    steps = plan_prefix(options, 1, 200.0)
    assert steps and {(p.kind, p.shape, p.target) for p in steps} == {
        ("partition", "isolate", "leader")
    }
    with pytest.raises(ValueError, match="fault kinds"):
        next(fault_schedule(ScheduleOptions(kinds=("flood",)), random.Random(0)))


def test_send_values_are_unique_per_process() -> None:
    gen = SendGenerator(4, 3, random.Random(0))
    sends = [gen.next() for _ in range(50)]
    assert len({s.value for s in sends}) == 50
    assert all(s.value.startswith("4-") and 0 <= s.partition < 3 for s in sends)
    assert all(s.key == f"k{s.partition}" for s in sends)


def test_pacer_stops_when_told() -> None:
    stop = threading.Event()
    pacer = Pacer(1000.0, stop)
    assert pacer.wait()
    stop.set()
    assert not pacer.wait()
