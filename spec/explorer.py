"""An exhaustive, bounded, breadth-first explorer of the cluster model (in the manner of TLC).

From a cluster with one topic whose replicas have all taken up their roles, it visits every
state reachable by interleaving producer writes (acks=all, each a new unique value),
broker crashes and restarts (optionally ZooKeeper session expiries, and power losses that
drop unflushed data) and every internal action of brokers and controller, deduplicating
states, and checks every named invariant in each.  Being breadth-first, the first
violation it meets has a shortest trace.  Time is abstracted: replica.lag.time.max.ms is
-1, so a lagging follower may be dropped from the ISR at any step.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterator

import attrs

from spec.actions import (
    ACKS_ALL,
    Action,
    ApplyLeaderAndIsr,
    CompleteProduce,
    CrashBroker,
    CreateTopic,
    ElectController,
    ExpireSession,
    FlushLogs,
    Produce,
    ProducedRecord,
    Reregister,
    RestartBroker,
)
from spec.admin import assign_replicas
from spec.canonical import canonical_key
from spec.cluster import internal_steps, step
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.invariants import INVARIANTS, Invariant
from spec.outcome import Ok
from spec.replication import leader_for_fetch, truncation_offset
from spec.state import ClusterState, TopicPartition, initial_state
from spec.variants import Variant

TOPIC = "t"


@attrs.frozen(slots=True)
class Bounds:
    """The configuration explored: cluster size, how many records are produced and how many
    faults (crashes, session expiries) may happen."""

    brokers: int = 3
    partitions: int = 1
    records: int = 2
    crashes: int = 2
    replication_factor: int | None = None
    min_insync_replicas: int = 2
    session_expiry: bool = False
    lose_unflushed: bool = False
    unclean_leader_election_enable: bool = False
    variants: frozenset[Variant] = frozenset()


@attrs.frozen(slots=True, cache_hash=True)
class Node:
    """A state together with the budget already spent reaching it."""

    state: ClusterState
    produced: int
    faults: int


@attrs.frozen(slots=True)
class Violation:
    """An invariant broken, with the shortest trace of actions that reaches it."""

    invariant: str
    trace: tuple[Action, ...]
    state: ClusterState


@attrs.frozen(slots=True)
class Result:
    """What one exploration found."""

    states: int
    transitions: int
    depth: int
    seconds: float
    violation: Violation | None

    @property
    def states_per_second(self) -> float:
        return self.states / self.seconds if self.seconds > 0 else float(self.states)


def config_for(bounds: Bounds) -> SpecConfig:
    return SpecConfig(
        min_insync_replicas=bounds.min_insync_replicas,
        unclean_leader_election_enable=bounds.unclean_leader_election_enable,
        replica_lag_time_max_ms=-1,
        variants=bounds.variants,
    )


def start_state(bounds: Bounds) -> tuple[ClusterState, tuple[Action, ...]]:
    """The starting cluster, reached through the model's own actions: broker 0 becomes
    controller, creates the topic, and every replica applies its LeaderAndIsr."""
    s = initial_state(config_for(bounds), bounds.brokers)
    rf = bounds.replication_factor or bounds.brokers
    brokers = tuple(range(bounds.brokers))
    setup: list[Action] = [
        ElectController(0),
        CreateTopic(TOPIC, assign_replicas(brokers, bounds.partitions, rf, 0, 0)),
    ]
    for p, replicas in enumerate(assign_replicas(brokers, bounds.partitions, rf, 0, 0)):
        setup += [ApplyLeaderAndIsr(TopicPartition(TOPIC, p), b) for b in replicas]
    for action in setup:
        out = step(s, action)
        if not isinstance(out, Ok):
            raise ValueError(f"cannot set up the explorer's start state: {action.describe()}")
        s = out.state
    return s, tuple(setup)


def _environment(node: Node, bounds: Bounds) -> Iterator[tuple[Action, int, int]]:
    """Client writes and faults possible from ``node``: (action, records used, faults used)."""
    s = node.state
    if node.produced < bounds.records:
        value = str(node.produced).encode()
        for tp, part in s.partitions.items():
            for b, rep in part.replica.items():
                if s.is_up(b) and rep.presumes_leadership(b):
                    yield Produce(tp, b, (ProducedRecord(value),), acks=ACKS_ALL), 1, 0
    for b in s.brokers:
        if s.is_up(b):
            if node.faults < bounds.crashes:
                yield CrashBroker(b), 0, 1
                if bounds.lose_unflushed:
                    yield CrashBroker(b, lose_unflushed=True), 0, 1
                if bounds.session_expiry and s.is_live(b):
                    yield ExpireSession(b), 0, 1
            if bounds.lose_unflushed:
                yield FlushLogs(b), 0, 0
            if not s.is_live(b):
                yield Reregister(b), 0, 0
        else:
            yield RestartBroker(b), 0, 0


FORCED_ANSWERS = frozenset({ErrorCode.NONE, ErrorCode.NOT_LEADER_OR_FOLLOWER})


def acknowledge_due(s: ClusterState) -> ClusterState:
    """Answer every delayed produce that can now be answered with success, or that can only
    ever be answered NOT_LEADER_OR_FOLLOWER (its broker stopped leading).

    A reduction: answering a successful produce later instead only leaves fewer records
    acknowledged in between (the answer changes nothing else), and every invariant only
    gets harder to keep with more acknowledged records, so exploring the eager answer
    covers the late ones; a forced error answer changes nothing but the pending list.
    Other error answers are explored as ordinary steps."""
    for req in s.pending:
        out = step(s, CompleteProduce(req.request_id))
        if isinstance(out, Ok) and out.reply.error in FORCED_ANSWERS:
            s = out.state
    return s


def settle_truncations(s: ClusterState) -> ClusterState:
    """Mark as done every follower's pending truncation by leader epoch that would cut
    nothing.

    A reduction: such a truncation step changes nothing but the flag, and its leader's log
    only grows while it leads in that epoch, so the answer stays "nothing" until the
    follower learns a new epoch (and must truncate afresh).  Taking the step at once loses
    no behaviour."""
    for tp, part in s.partitions.items():
        for b, rep in part.replica.items():
            if rep.truncated or not s.is_up(b):
                continue
            leader = leader_for_fetch(s, tp, b)
            if isinstance(leader, ErrorCode):
                continue
            lrep = part.replica[leader]
            if truncation_offset(rep.log, rep.high_watermark, lrep.log) >= rep.log.end_offset:
                s = s.with_replica(tp, b, attrs.evolve(rep, truncated=True))
    return s


def settle(s: ClusterState) -> ClusterState:
    """The forced steps the explorer takes after every explored step (with reductions)."""
    return settle_truncations(acknowledge_due(s))


def successors(
    node: Node, bounds: Bounds, reductions: bool = True
) -> Iterator[tuple[Action, Node]]:
    """Every (action, next node) from ``node`` that changes the state.  With
    ``reductions`` the forced steps (:func:`settle`) are taken at once after each step
    instead of being explored as steps of their own."""

    def after(s: ClusterState) -> ClusterState:
        return settle(s) if reductions else s

    for action, out in internal_steps(node.state):
        forced = isinstance(action, CompleteProduce) and out.reply.error in FORCED_ANSWERS
        if reductions and forced:
            continue
        yield action, Node(after(out.state), node.produced, node.faults)
    for action, used_records, used_faults in _environment(node, bounds):
        env = step(node.state, action)
        if isinstance(env, Ok) and env.state != node.state:
            nxt = after(env.state)
            yield action, Node(nxt, node.produced + used_records, node.faults + used_faults)


def first_violated(s: ClusterState, checks: dict[str, Invariant]) -> str | None:
    """The name of the first invariant in ``checks`` that ``s`` breaks, or None."""
    for name, inv in checks.items():
        if not inv(s):
            return name
    return None


def state_key(node: Node) -> Hashable:
    """What deduplication compares: the state's canonical key and the budget spent."""
    return (canonical_key(node.state), node.produced, node.faults)


def explore(
    bounds: Bounds,
    *,
    invariants: dict[str, Invariant] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    max_states: int | None = None,
    reductions: bool = True,
    clock: Callable[[], float] | None = None,
) -> Result:
    """Breadth-first search of every reachable state within ``bounds``.

    ``progress(states, depth, seconds)`` is called about once a second of ``clock``, the
    caller's (the spec itself reads no clock; without one, no time is reported).  Stops at
    the first violated invariant (whose trace is then a shortest one) or when all states
    are seen.
    """
    checks = INVARIANTS if invariants is None else invariants
    now_s = clock if clock is not None else (lambda: 0.0)
    started = now_s()
    s0, setup = start_state(bounds)
    root = Node(s0, 0, 0)
    root_key = state_key(root)
    # For each state seen (by key): the key of the state it was reached from, and how.
    parent: dict[Hashable, tuple[Hashable, Action] | None] = {root_key: None}
    frontier: deque[tuple[Node, Hashable, int]] = deque([(root, root_key, 0)])
    transitions = 0
    depth = 0
    last_report = started

    def trace_to(key: Hashable) -> tuple[Action, ...]:
        steps: list[Action] = []
        link = parent[key]
        while link is not None:
            key, action = link
            steps.append(action)
            link = parent[key]
        return setup + tuple(reversed(steps))

    def check(node: Node, key: Hashable) -> Violation | None:
        name = first_violated(node.state, checks)
        return None if name is None else Violation(name, trace_to(key), node.state)

    def result(violation: Violation | None) -> Result:
        return Result(len(parent), transitions, depth, now_s() - started, violation)

    if (v := check(root, root_key)) is not None:
        return result(v)
    while frontier:
        node, node_key, d = frontier.popleft()
        depth = max(depth, d)
        for action, nxt in successors(node, bounds, reductions):
            transitions += 1
            key = state_key(nxt)
            if key in parent:
                continue
            parent[key] = (node_key, action)
            if (v := check(nxt, key)) is not None:
                depth = d + 1
                return result(v)
            frontier.append((nxt, key, d + 1))
            if max_states is not None and len(parent) >= max_states:
                return result(None)
        now = now_s()
        if progress is not None and now - last_report >= 1.0:
            progress(len(parent), depth, now - started)
            last_report = now
    return result(None)
