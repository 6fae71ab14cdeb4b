"""Jepsen's *generator*: what the workload and the nemesis do, and when, from one seed.

Everything random in a chaos run is drawn here, from :class:`random.Random` instances
seeded by the run's ``--seed``, so a run's plan (which faults, in which order, on which
kind of target, for how long; which partition each send goes to; when a consumer is
restarted) is the same every time the seed is; only what the cluster does in response
differs.

* :func:`fault_schedule` - the nemesis's plan: a sequence of :class:`FaultPlan` steps,
  each a quiet period, then one fault of an enabled kind held for a while, then its heal.
  Targets are *roles* (``leader``, ``controller``, ``one``, ``minority``, ``majority``)
  resolved by the nemesis against the cluster at the moment it strikes.
* :class:`SendGenerator` - a producer's records: unique values ``"<process>-<n>"``, the
  partition each goes to, at a steady pace.
* :class:`Pacer` - spaces a worker's operations to a rate (the schedule's own waits are
  part of the experiment, not synchronisation).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Final

import attrs

FAULT_KINDS: Final = ("kill", "pause", "partition", "zookeeper")
"""The kinds ``--faults`` accepts."""

TARGETS: Final = ("one", "leader", "controller", "minority", "majority")
"""The broker roles a fault may be aimed at (``--target``)."""

PARTITION_SHAPES: Final = ("isolate", "halves", "bridge", "group")
"""How a network partition splits the nodes: one broker cut off from every other node
(``isolate``), a random majority/minority split of every node, ZooKeeper included
(``halves``), Jepsen's *bridge* (two halves that both still hear one node in the middle),
or the targeted group of brokers (minority/majority) cut off from the rest (``group``)."""

ZOOKEEPER_SHAPES: Final = ("kill", "isolate", "cut-broker", "cut-brokers")
"""ZooKeeper faults: a ZooKeeper node killed and restarted, a ZooKeeper node cut off from
every other node, one (targeted) broker cut off from ZooKeeper alone while it still hears
the other brokers, or every broker cut off from ZooKeeper."""


@attrs.frozen(slots=True)
class FaultPlan:
    """One step of the nemesis: wait ``quiet_s``, strike, hold ``duration_s``, heal."""

    kind: str
    """One of :data:`FAULT_KINDS`."""
    shape: str
    """For ``kill`` and ``pause`` the same as the kind; a partition's or ZooKeeper fault's
    shape (:data:`PARTITION_SHAPES`, :data:`ZOOKEEPER_SHAPES`)."""
    target: str
    """The role aimed at (:data:`TARGETS`)."""
    partition: int
    """The topic partition whose leader ``leader`` means."""
    quiet_s: float
    duration_s: float

    def describe(self) -> str:
        """A short name for the terminal: ``partition/isolate leader(p1) 12.0s``."""
        target = f"leader(p{self.partition})" if self.target == "leader" else self.target
        if self.kind == "zookeeper" and self.shape != "cut-broker":
            target = "zookeeper-n" if self.shape in ("kill", "isolate") else "every broker"
        shape = "" if self.shape == self.kind else f"/{self.shape}"
        return f"{self.kind}{shape} {target} {self.duration_s:.1f}s"


@attrs.frozen(slots=True)
class ScheduleOptions:
    """What the fault schedule may use."""

    kinds: Sequence[str] = FAULT_KINDS
    targets: Sequence[str] = TARGETS
    partitions: int = 3
    """Partitions of the topic (``leader`` picks one of them)."""
    zookeepers: int = 1
    duration_s: float = 10.0
    """The mean time a fault is held (each is drawn from 0.7-1.3 times it)."""
    interval_s: float = 8.0
    """The mean quiet time between a heal and the next fault (0.7-1.3 times it)."""
    first_s: float = 5.0
    """The quiet time before the first fault (not drawn: the workload warms up)."""


def _shapes(kind: str, target: str, zookeepers: int) -> tuple[str, ...]:
    """The shapes a fault of ``kind`` can take against ``target``."""
    if kind == "partition":
        if target in ("minority", "majority"):
            return ("group", "halves", "bridge")
        return ("isolate",)
    if kind == "zookeeper":
        shapes = ["kill", "cut-brokers"]
        if zookeepers > 1:
            shapes.append("isolate")
        if target in ("one", "leader", "controller"):
            shapes.append("cut-broker")
        return tuple(shapes)
    return (kind,)


def fault_schedule(options: ScheduleOptions, rng: random.Random) -> Iterator[FaultPlan]:
    """The nemesis's plan, endless: each step a fault of an enabled kind on an enabled
    target (a ``zookeeper`` fault aimed at a role other than one broker cuts every broker
    off from ZooKeeper, or kills or isolates a ZooKeeper node)."""
    unknown = set(options.kinds) - set(FAULT_KINDS)
    if unknown or not options.kinds:
        raise ValueError(f"fault kinds {sorted(unknown) or 'none'}; known: {FAULT_KINDS}")
    bad_targets = set(options.targets) - set(TARGETS)
    if bad_targets or not options.targets:
        raise ValueError(f"targets {sorted(bad_targets) or 'none'}; known: {TARGETS}")
    quiet = options.first_s
    while True:
        kind = rng.choice(list(options.kinds))
        target = rng.choice(list(options.targets))
        shape = rng.choice(_shapes(kind, target, options.zookeepers))
        yield FaultPlan(
            kind=kind,
            shape=shape,
            target=target,
            partition=rng.randrange(options.partitions),
            quiet_s=quiet,
            duration_s=round(options.duration_s * rng.uniform(0.7, 1.3), 1),
        )
        quiet = round(options.interval_s * rng.uniform(0.7, 1.3), 1)


def plan_prefix(options: ScheduleOptions, seed: int, total_s: float) -> list[FaultPlan]:
    """The steps of the schedule that can start within ``total_s`` seconds if every
    fault took exactly its planned time (for showing the plan before a run)."""
    steps: list[FaultPlan] = []
    elapsed = 0.0
    for plan in fault_schedule(options, random.Random(seed)):
        elapsed += plan.quiet_s
        if elapsed >= total_s:
            return steps
        steps.append(plan)
        elapsed += plan.duration_s
    return steps  # the schedule is endless: never reached


@attrs.frozen(slots=True)
class SendPlan:
    """One record to send."""

    partition: int
    key: str
    value: str


class SendGenerator:
    """A producer process's records: values ``"<process>-<n>"`` (unique across the run as
    long as process numbers are), each to a partition drawn from the generator's stream."""

    def __init__(self, process: int, partitions: int, rng: random.Random) -> None:
        self.process = process
        self.partitions = partitions
        self._rng = rng
        self._n = 0

    def next(self) -> SendPlan:
        partition = self._rng.randrange(self.partitions)
        value = f"{self.process}-{self._n}"
        self._n += 1
        return SendPlan(partition, f"k{partition}", value)


class Pacer:
    """Spaces events ``1 / rate`` seconds apart (catching up after a stall, but never by
    more than one second's worth), or returns at once when ``stop`` is set."""

    def __init__(self, rate_per_s: float, stop: threading.Event) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"rate {rate_per_s}")
        self.interval_s = 1.0 / rate_per_s
        self._stop = stop
        self._next = time.monotonic()

    def wait(self) -> bool:
        """Wait for the next slot; False if the run is stopping."""
        now = time.monotonic()
        self._next = max(self._next + self.interval_s, now - 1.0)
        delay = self._next - now
        if delay > 0:
            return not self._stop.wait(delay)  # the workload's pace, part of the experiment
        return not self._stop.is_set()


def consumer_restarts(rng: random.Random, mean_s: float) -> Iterator[float]:
    """Seconds between a consumer's restarts (``mean_s`` 0: never restarted)."""
    while True:
        yield float("inf") if mean_s <= 0 else rng.uniform(0.5, 1.5) * mean_s
