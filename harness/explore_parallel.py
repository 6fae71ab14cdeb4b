"""The spec's exhaustive explorer run on several worker processes.

The search is ``spec.explorer.explore``'s breadth-first search, level by level, with the
work of a level (successors, canonical keys, invariants) shared among forked workers.
States never leave the worker that made them: a worker sends the coordinator only each
successor's fingerprint (a 64-bit hash of its canonical key, as TLC fingerprints
states), the fingerprint of its parent and the action, and keeps the states the
coordinator accepts as new as its share of the next level.  The coordinator keeps, per
fingerprint, how it was first reached, so a violation's shortest trace is rebuilt from
the start state.  The chance that two distinct states share a fingerprint, which would
leave one unexplored, is estimated as TLC does and reported.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import attrs

from spec.actions import Action
from spec.cluster import step
from spec.explorer import (
    Bounds,
    Node,
    Result,
    Violation,
    first_violated,
    settle,
    start_state,
    state_key,
    successors,
)
from spec.invariants import INVARIANTS
from spec.outcome import Ok
from spec.state import ClusterState

Candidate = tuple[int, int, Action, str | None]
"""A successor as a worker reports it: fingerprint, parent's fingerprint, action, and the
name of the invariant it breaks (or None)."""


@attrs.frozen(slots=True)
class ParallelResult:
    """A result together with the estimated chance that a fingerprint collision hid a state."""

    result: Result
    workers: int
    collision_probability: float


def fingerprint(node: Node) -> int:
    """A 64-bit fingerprint of the node's canonical key (stable within one run: the workers
    are forked, so they share the string-hash seed)."""
    return hash(state_key(node)) & 0xFFFF_FFFF_FFFF_FFFF


def _worker(conn: Connection, bounds: Bounds, reductions: bool) -> None:
    """Expand this worker's share of each level on request; keep the accepted successors."""
    frontier: list[tuple[Node, int]] = []
    pending: dict[int, Node] = {}
    while True:
        msg = conn.recv()
        if msg[0] == "seed":
            node = msg[1]
            frontier = [(node, fingerprint(node))]
        elif msg[0] == "expand":
            pending = {}
            out: list[Candidate] = []
            for node, fp in frontier:
                for action, nxt in successors(node, bounds, reductions):
                    nfp = fingerprint(nxt)
                    if nfp in pending:
                        out.append((nfp, fp, action, None))
                        continue
                    pending[nfp] = nxt
                    out.append((nfp, fp, action, first_violated(nxt.state, INVARIANTS)))
            conn.send(out)
        elif msg[0] == "keep":
            keep: list[int] = msg[1]
            frontier = [(pending[fp], fp) for fp in keep]
            pending = {}
            conn.send(len(frontier))
        else:
            conn.close()
            return


def _replay(s0: ClusterState, actions: list[Action]) -> ClusterState:
    """The state a trace of explored actions reaches (each step followed by its forced
    steps, as the explorer takes them)."""
    s = s0
    for action in actions:
        out = step(s, action)
        if not isinstance(out, Ok):
            raise RuntimeError(f"trace does not replay at {action.describe()}")
        s = settle(out.state)
    return s


def explore_parallel(
    bounds: Bounds,
    *,
    workers: int = 2,
    progress: Callable[[int, int, float], None] | None = None,
    max_states: int | None = None,
    clock: Callable[[], float] | None = None,
) -> ParallelResult:
    """Explore every reachable state within ``bounds`` on ``workers`` processes; the same
    verdict, states and depth as ``spec.explorer.explore`` (with its reductions)."""
    now = clock if clock is not None else (lambda: 0.0)
    started = now()
    s0, setup = start_state(bounds)
    root = Node(s0, 0, 0)
    root_fp = fingerprint(root)
    ctx = mp.get_context("fork")
    conns: list[Connection] = []
    procs: list[Any] = []
    for _ in range(workers):
        here, there = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(there, bounds, True), daemon=True)
        proc.start()
        conns.append(here)
        procs.append(proc)
    parent: dict[int, tuple[int, Action] | None] = {root_fp: None}
    transitions = 0
    depth = 0
    last_report = started
    violation: tuple[int, str] | None = None
    try:
        conns[0].send(("seed", root))
        violated_at_root = first_violated(s0, INVARIANTS)
        if violated_at_root is not None:
            violation = (root_fp, violated_at_root)
        live = 1
        while live and violation is None:
            for c in conns:
                c.send(("expand",))
            reports: list[list[Candidate]] = [c.recv() for c in conns]
            # A state several workers reached goes to the one its fingerprint picks, if it
            # is among them, so the levels stay shared about evenly.
            owner: dict[int, int] = {}
            for w, cands in enumerate(reports):
                for fp, _pfp, _a, _bad in cands:
                    if fp not in parent and (fp not in owner or fp % workers == w):
                        owner[fp] = w
            keep: list[list[int]] = [[] for _ in conns]
            full = False
            for w, cands in enumerate(reports):
                for fp, pfp, action, bad in cands:
                    full = max_states is not None and len(parent) >= max_states
                    if full:
                        break
                    transitions += 1
                    if owner.get(fp) != w or fp in parent:
                        continue
                    parent[fp] = (pfp, action)
                    keep[w].append(fp)
                    if bad is not None and violation is None:
                        violation = (fp, bad)
            for c, k in zip(conns, keep, strict=True):
                c.send(("keep", k))
            live = sum(c.recv() for c in conns)
            if live:
                depth += 1
            t = now()
            if progress is not None and t - last_report >= 1.0:
                progress(len(parent), depth, t - started)
                last_report = t
            if full:
                break
    finally:
        for c in conns:
            c.send(("stop",))
        for p in procs:
            p.join(timeout=10)
    found: Violation | None = None
    if violation is not None:
        fp, name = violation
        actions: list[Action] = []
        link = parent[fp]
        while link is not None:
            fp, action = link
            actions.append(action)
            link = parent[fp]
        actions.reverse()
        found = Violation(name, setup + tuple(actions), _replay(s0, actions))
        depth = len(actions)
    n = len(parent)
    result = Result(n, transitions, depth, now() - started, found)
    # TLC's estimate for fingerprint collisions: n states among 2**64 fingerprints, checked
    # once per transition.
    collision = min(1.0, n * transitions / 2.0**64)
    return ParallelResult(result, workers, collision)
