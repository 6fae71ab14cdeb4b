"""Jepsen's *nemesis*: faults done to the cluster on the generator's schedule, each one and
its healing recorded in the history.

The nemesis runs in its own thread.  For each :class:`chaos.generator.FaultPlan` it waits
the quiet time, resolves the plan's target role against the cluster as it is at that
moment (:class:`ClusterRoles`: the partition's leader and the controller from Metadata
and ZooKeeper's ``/controller``), strikes, holds the fault, heals it and waits (with a
deadline) until the cluster is healthy again before the next quiet period.  The faults:

``kill``
    SIGKILL the target brokers; healing starts them again (same address, same data).
``pause``
    freeze every process of the target brokers (SIGSTOP through the cgroup freezer);
    healing thaws them.
``partition``
    iptables grudges between the containers: the target broker isolated from every
    other node, a targeted minority or majority cut off from the rest, random halves
    of all nodes, or a bridge; healing lifts every rule.
``zookeeper``
    a ZooKeeper node killed and restarted or isolated, the target broker cut off from
    ZooKeeper alone (it still hears the other brokers and the clients), or every broker
    cut off from ZooKeeper.

Every fault is an operation of process ``"nemesis"`` (``f`` ``fault``, invoked before the
action and completed ``ok`` after it, ``info`` if the action failed), and so is its heal
(``f`` ``heal``, same kind and targets), so :func:`harness.history.fault_windows` finds
each window.  :meth:`Nemesis.stop` interrupts a fault being held, heals it, and then
:meth:`Nemesis.heal_everything` makes sure no node is left killed, paused or cut off
before the final read.
"""

from __future__ import annotations

import contextlib
import functools
import json
import random
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Protocol

import attrs

from chaos.generator import FaultPlan
from harness.cluster import ClusterError
from harness.cluster_metadata import MetadataError, fetch_metadata
from harness.history import NEMESIS, F, Fault, Recorder

SETTLE_TIMEOUT_S = 60.0
"""How long the nemesis waits for a healthy cluster after a heal before going on."""

METADATA_TIMEOUT_S = 3.0
BROKER_PORT = 9092


class ClusterControl(Protocol):
    """What the nemesis does to a cluster (:class:`chaos.db.ContainerCluster` has it)."""

    grudge: dict[str, frozenset[str]]

    def kill(self, name: str) -> None: ...
    def start_node(self, name: str, timeout_s: float = ...) -> None: ...
    def pause(self, name: str) -> None: ...
    def unpause(self, name: str) -> None: ...
    def partition(self, *components: Collection[str]) -> dict[str, frozenset[str]]: ...
    def drop(self, grudge: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]: ...
    def heal(self) -> None: ...
    def status(self, name: str) -> str: ...
    def wait_healthy(self, timeout_s: float = ...) -> None: ...


class Roles(Protocol):
    """Who plays which part in the cluster right now (None: unknown)."""

    def brokers(self) -> list[int]: ...
    def zookeepers(self) -> list[int]: ...
    def leader(self, partition: int) -> int | None: ...
    def controller(self) -> int | None: ...


def broker_name(broker_id: int) -> str:
    return f"broker-{broker_id}"


def zookeeper_name(node_id: int) -> str:
    return f"zookeeper-{node_id}"


class ClusterRoles:
    """:class:`Roles` of a :class:`chaos.db.ContainerCluster`: the leader from the
    Metadata of the running brokers (the answer with the highest leader epoch wins), the
    controller from ZooKeeper's ``/controller`` (else from Metadata)."""

    def __init__(self, db: Any, topic: str) -> None:
        self.db = db
        self.topic = topic

    def brokers(self) -> list[int]:
        return [int(n.node_id) for n in self.db.broker_nodes()]

    def zookeepers(self) -> list[int]:
        return [int(n.node_id) for n in self.db.zookeeper_nodes()]

    def _views(self) -> Iterable[Any]:
        for node in self.db.broker_nodes():
            with contextlib.suppress(Exception):
                if self.db.status(node.name) != "running":
                    continue
                yield fetch_metadata(node.ip, BROKER_PORT, METADATA_TIMEOUT_S)

    def leader(self, partition: int) -> int | None:
        best: tuple[int, int] | None = None
        for view in self._views():
            p = view.partition(self.topic, partition)
            if p is not None and p.leader >= 0 and (best is None or p.leader_epoch > best[0]):
                best = (p.leader_epoch, p.leader)
        return None if best is None else best[1]

    def controller(self) -> int | None:
        with contextlib.suppress(Exception):
            data, _ = self.db.zk().get_async("/controller").get(timeout=METADATA_TIMEOUT_S)
            return int(json.loads(data)["brokerid"])
        for view in self._views():
            with contextlib.suppress(MetadataError):
                if view.controller_id >= 0:
                    return int(view.controller_id)
        return None


@attrs.frozen(slots=True)
class Strike:
    """A fault in effect: what the history says and how to heal it."""

    kind: str
    targets: tuple[str, ...]
    note: str
    apply: Callable[[], None]
    heal: Callable[[], None]


class Nemesis:
    """Runs a fault schedule against ``db`` in a thread, recording into ``recorder``."""

    def __init__(
        self,
        db: ClusterControl,
        roles: Roles,
        recorder: Recorder,
        *,
        schedule: Iterable[FaultPlan],
        rng: random.Random,
        progress: Callable[[str], None] = lambda _: None,
        settle_timeout_s: float = SETTLE_TIMEOUT_S,
    ) -> None:
        self.db = db
        self.roles = roles
        self.recorder = recorder
        self.schedule = schedule
        self.rng = rng
        self.progress = progress
        self.settle_timeout_s = settle_timeout_s
        self.active: Strike | None = None
        self.struck: list[Strike] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- the thread

    def start(self) -> Nemesis:
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 180.0) -> None:
        """Stop the schedule: a fault being held is healed now; waits for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                self.errors.append(f"the nemesis did not stop within {timeout_s:g} s")

    def _run(self) -> None:
        try:
            for plan in self.schedule:
                if self._stop.wait(plan.quiet_s):  # the schedule's quiet time
                    return
                self.run_step(plan, self._stop.wait)
                if self._stop.is_set():
                    return
        except Exception as exc:  # a nemesis bug must not hang the run: report it
            self.errors.append(f"nemesis: {type(exc).__name__}: {exc}")
            self.progress(f"nemesis stopped: {exc}")

    def run_step(self, plan: FaultPlan, hold: Callable[[float], object]) -> None:
        """Strike, hold (``hold(seconds)``), heal, then wait for a healthy cluster."""
        strike = self.strike(plan)
        if strike is None:
            return
        hold(plan.duration_s)
        self.heal(strike)
        self.settle()

    # ---------------------------------------------------------------- faults

    def strike(self, plan: FaultPlan) -> Strike | None:
        """Resolve the plan's targets, record the fault and do it; None if nothing could
        be aimed at (no broker known to play the role)."""
        try:
            strike = self._aim(plan)
        except ClusterError as exc:
            self.progress(f"skipped {plan.describe()}: {exc}")
            return None
        self.recorder.invoke(NEMESIS, F.FAULT, Fault(strike.kind, strike.targets, strike.note))
        self.active = strike
        try:
            strike.apply()
        except Exception as exc:  # recorded: the fault may be half done
            self.recorder.info(
                NEMESIS, F.FAULT, Fault(strike.kind, strike.targets, strike.note), _err(exc)
            )
            self.progress(f"fault {strike.kind} {','.join(strike.targets)} failed: {exc}")
        else:
            self.recorder.ok(NEMESIS, F.FAULT, Fault(strike.kind, strike.targets, strike.note))
            self.progress(f"fault: {strike.kind} {','.join(strike.targets)} ({strike.note})")
        self.struck.append(strike)
        return strike

    def heal(self, strike: Strike) -> None:
        """Undo ``strike`` and record it."""
        value = Fault(strike.kind, strike.targets, strike.note)
        self.recorder.invoke(NEMESIS, F.HEAL, value)
        try:
            strike.heal()
        except Exception as exc:  # recorded; heal_everything tries again
            self.recorder.info(NEMESIS, F.HEAL, value, _err(exc))
            self.errors.append(f"healing {strike.kind} {strike.targets}: {exc}")
            self.progress(f"heal of {strike.kind} {','.join(strike.targets)} failed: {exc}")
        else:
            self.recorder.ok(NEMESIS, F.HEAL, value)
            self.progress(f"healed: {strike.kind} {','.join(strike.targets)}")
        self.active = None

    def settle(self) -> None:
        """Wait (with a deadline) until the cluster is healthy again."""
        try:
            self.db.wait_healthy(self.settle_timeout_s)
        except ClusterError as exc:
            self.progress(f"not healthy {self.settle_timeout_s:g} s after a heal: {exc}")

    def heal_everything(self) -> None:
        """Leave no node killed, paused or partitioned (each repair recorded as a heal)."""
        if self.active is not None:
            self.heal(self.active)
        names = [broker_name(b) for b in self.roles.brokers()]
        names += [zookeeper_name(z) for z in self.roles.zookeepers()]
        if self.db.grudge:
            self._repair("partition", tuple(sorted(self.db.grudge)), self.db.heal)
        for name in names:
            state = self.db.status(name)
            if state == "paused":
                self._repair("pause", (name,), functools.partial(self.db.unpause, name))
            elif state not in ("running", "paused"):
                self._repair("kill", (name,), functools.partial(self.db.start_node, name))

    def _repair(self, kind: str, targets: tuple[str, ...], action: Callable[[], None]) -> None:
        self.heal(Strike(kind, targets, "healed at the end of the run", _nothing, action))

    # ---------------------------------------------------------------- aiming

    def _brokers(self, plan: FaultPlan) -> tuple[list[int], str]:
        """The brokers the plan's target role names now, and how they were found."""
        brokers = self.roles.brokers()
        if not brokers:
            raise ClusterError("no brokers")
        target = plan.target
        if target in ("leader", "controller"):
            found = (
                self.roles.leader(plan.partition) if target == "leader" else self.roles.controller()
            )
            what = f"leader of partition {plan.partition}" if target == "leader" else target
            if found is not None and found in brokers:
                return [found], what
            return [self.rng.choice(brokers)], f"random broker ({what} unknown)"
        if target == "minority":
            return sorted(self.rng.sample(brokers, max(1, (len(brokers) - 1) // 2))), target
        if target == "majority":
            return sorted(self.rng.sample(brokers, len(brokers) // 2 + 1)), target
        return [self.rng.choice(brokers)], "random broker"

    def _aim(self, plan: FaultPlan) -> Strike:
        db = self.db
        zookeepers = [zookeeper_name(z) for z in self.roles.zookeepers()]
        brokers = [broker_name(b) for b in self.roles.brokers()]
        if plan.kind == "zookeeper" and plan.shape in ("kill", "isolate"):
            node = self.rng.choice(zookeepers)
            if plan.shape == "kill":
                return Strike(
                    "zookeeper",
                    (node,),
                    "killed",
                    lambda: db.kill(node),
                    lambda: db.start_node(node),
                )
            return Strike("zookeeper", (node,), "isolated", lambda: _partition(db, [node]), db.heal)
        if plan.kind == "zookeeper" and plan.shape == "cut-brokers":
            note = "every broker cut off from ZooKeeper"
            return Strike(
                "zookeeper", tuple(brokers), note, lambda: _partition(db, zookeepers), db.heal
            )
        ids, what = self._brokers(plan)
        targets = tuple(broker_name(b) for b in ids)
        per_broker: dict[str, tuple[Callable[[str], None], Callable[[str], None]]] = {
            "kill": (db.kill, db.start_node),
            "pause": (db.pause, db.unpause),
        }
        if plan.kind in per_broker:
            act, undo = per_broker[plan.kind]
            return Strike(
                plan.kind,
                targets,
                what,
                functools.partial(_each, act, targets),
                functools.partial(_each, undo, targets),
            )
        if plan.kind == "zookeeper":  # cut-broker: it and ZooKeeper hear nothing of each other
            grudge: dict[str, Collection[str]] = {t: zookeepers for t in targets}
            grudge.update({z: targets for z in zookeepers})
            note = f"{what} cut off from ZooKeeper"
            return Strike("zookeeper", targets, note, lambda: _drop(db, grudge), db.heal)
        if plan.shape in ("isolate", "group"):
            return Strike(
                "partition", targets, f"{what} isolated", lambda: _partition(db, targets), db.heal
            )
        everyone = brokers + zookeepers
        self.rng.shuffle(everyone)
        middle = len(everyone) // 2
        if plan.shape == "halves":
            small = tuple(sorted(everyone[:middle]))
            note = f"halves: {' '.join(small)} | {' '.join(sorted(everyone[middle:]))}"
            return Strike("partition", small, note, lambda: _partition(db, small), db.heal)
        left, bridge, right = everyone[:middle], everyone[middle], everyone[middle + 1 :]
        bridged: dict[str, Collection[str]] = {n: right for n in left}
        bridged.update({n: left for n in right})
        note = f"bridge {bridge}: {' '.join(left)} | {' '.join(right)}"
        return Strike("partition", (bridge,), note, lambda: _drop(db, bridged), db.heal)


def _nothing() -> None:
    """A strike's apply when it is only a record of a repair."""


def _each(action: Callable[[str], None], targets: Iterable[str]) -> None:
    for target in targets:
        action(target)


def _partition(db: ClusterControl, *components: Collection[str]) -> None:
    db.partition(*components)


def _drop(db: ClusterControl, grudge: Mapping[str, Collection[str]]) -> None:
    db.drop(grudge)


def _err(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]
