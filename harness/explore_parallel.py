"""The spec's exhaustive explorer run on several worker processes.

The search is ``spec.explorer.explore``'s breadth-first search, level by level, with the
work of a level (successors, canonical keys, invariants) shared among forked workers.
States never leave the worker that made them: a worker sends the coordinator only each
successor's fingerprint (a 64-bit hash of its canonical key, as TLC fingerprints
states), the fingerprint of its parent and the successor's position among its parent's
successors, packed in arrays.  It keeps the states the coordinator accepts as new as its
share of the next level, and checks the invariants on those alone, so each state is
checked once.  The coordinator keeps, per fingerprint, how it was first reached, so a
violation's shortest trace is rebuilt by stepping again from the start state.  The chance
that two distinct states share a fingerprint, which would leave one unexplored, is
estimated as TLC does and reported.
"""

from __future__ import annotations

import multiprocessing as mp
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import attrs

from harness.explore_gc import search_gc
from spec.actions import Action
from spec.explorer import (
    Bounds,
    Node,
    Result,
    Violation,
    first_violated,
    start_state,
    state_key,
    successors,
)
from spec.invariants import INVARIANTS

MASK = 0xFFFF_FFFF_FFFF_FFFF


@attrs.frozen(slots=True)
class ParallelResult:
    """A result together with the estimated chance that a fingerprint collision hid a state."""

    result: Result
    workers: int
    collision_probability: float
    shares: tuple[int, ...] = ()
    """How many states each worker checked and expanded."""


def fingerprint(node: Node) -> int:
    """A 64-bit fingerprint of the node's canonical key (stable within one run: the workers
    are forked, so they share the string-hash seed)."""
    return hash(state_key(node)) & MASK


def _worker(conn: Connection, bounds: Bounds) -> None:
    """Expand this worker's share of each level on request; keep the accepted successors.

    ``expand`` answers (transitions, candidates): candidates is a flat array of
    (fingerprint, parent's fingerprint, successor index) triples, one per distinct
    successor this worker has not kept before.  ``keep`` answers (states kept, violations
    among them as (fingerprint, invariant) pairs)."""
    frontier: list[tuple[Node, int]] = []
    pending: dict[int, Node] = {}
    kept: set[int] = set()
    while True:
        msg = conn.recv()
        if msg[0] == "seed":
            node = msg[1]
            frontier = [(node, fingerprint(node))]
            kept.add(frontier[0][1])
        elif msg[0] == "expand":
            pending = {}
            out = array("Q")
            transitions = 0
            for node, fp in frontier:
                for index, (_action, nxt) in enumerate(successors(node, bounds)):
                    transitions += 1
                    nfp = fingerprint(nxt)
                    if nfp in pending or nfp in kept:
                        continue
                    pending[nfp] = nxt
                    out.extend((nfp, fp, index))
            conn.send((transitions, out))
        elif msg[0] == "keep":
            keep: array[int] = msg[1]
            give: dict[int, list[int]] = msg[2]
            moving = {fp for fps in give.values() for fp in fps}
            frontier = [(pending[fp], fp) for fp in keep if fp not in moving]
            conn.send({w: [(pending[fp], fp) for fp in fps] for w, fps in give.items()})
            pending = {}
        elif msg[0] == "take":
            frontier += msg[1]
            kept.update(fp for _node, fp in frontier)
            bad = [
                (fp, name)
                for node, fp in frontier
                if (name := first_violated(node.state, INVARIANTS)) is not None
            ]
            conn.send((len(frontier), bad))
        else:
            conn.close()
            return


def _rebalance(keep: list[array[int]]) -> list[dict[int, list[int]]]:
    """Which kept states each worker hands to which other, so that every worker starts the
    next level with about the same share (a worker only ever expands states it holds, so
    without this the worker holding the start state would do all the work)."""
    target = -(-sum(len(k) for k in keep) // len(keep))
    surplus = [k[target:].tolist() for k in keep]
    gives: list[dict[int, list[int]]] = [{} for _ in keep]
    for w, k in enumerate(keep):
        room = target - len(k)
        for giver, extra in enumerate(surplus):
            if room <= 0:
                break
            if extra:
                gives[giver][w] = extra[:room]
                del extra[:room]
                room -= len(gives[giver][w])
    return gives


def _walk(root: Node, path: list[int], bounds: Bounds) -> tuple[tuple[Action, ...], Node]:
    """The actions and the node that following successor indexes ``path`` from ``root``
    reaches (the explorer's steps, each with its forced steps)."""
    actions: list[Action] = []
    node = root
    for index in path:
        for i, (action, nxt) in enumerate(successors(node, bounds)):
            if i == index:
                actions.append(action)
                node = nxt
                break
        else:
            raise RuntimeError("a recorded trace does not replay: the model is not deterministic")
    return tuple(actions), node


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
    with search_gc():
        return _explore_parallel(bounds, workers, progress, max_states, clock)


def _explore_parallel(
    bounds: Bounds,
    workers: int,
    progress: Callable[[int, int, float], None] | None,
    max_states: int | None,
    clock: Callable[[], float] | None,
) -> ParallelResult:
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
        proc = ctx.Process(target=_worker, args=(there, bounds), daemon=True)
        proc.start()
        conns.append(here)
        procs.append(proc)
    # Per fingerprint seen: the parent's fingerprint and the successor index (root: None).
    parent: dict[int, tuple[int, int] | None] = {root_fp: None}
    transitions = 0
    depth = 0
    last_report = started
    violation: tuple[int, str] | None = None
    shares = [0] * workers
    try:
        conns[0].send(("seed", root))
        violated_at_root = first_violated(s0, INVARIANTS)
        if violated_at_root is not None:
            violation = (root_fp, violated_at_root)
        live = 1
        while live and violation is None:
            for c in conns:
                c.send(("expand",))
            reports: list[array[int]] = []
            for c in conns:
                count, cands = c.recv()
                transitions += count
                reports.append(cands)
            # A state several workers reached goes to the one its fingerprint picks, if it
            # is among them, so the levels stay shared about evenly.
            owner: dict[int, int] = {}
            for w, cands in enumerate(reports):
                for fp in cands[0::3]:
                    if fp not in parent and (fp not in owner or fp % workers == w):
                        owner[fp] = w
            keep: list[array[int]] = [array("Q") for _ in conns]
            full = False
            for w, cands in enumerate(reports):
                for fp, pfp, index in zip(cands[0::3], cands[1::3], cands[2::3], strict=True):
                    if owner.get(fp) != w or fp in parent:
                        continue
                    full = max_states is not None and len(parent) >= max_states
                    if full:
                        break
                    parent[fp] = (pfp, index)
                    keep[w].append(fp)
            gives = _rebalance(keep)
            for c, k, give in zip(conns, keep, gives, strict=True):
                c.send(("keep", k, give))
            takes: list[list[tuple[Node, int]]] = [[] for _ in conns]
            for c in conns:
                for w, nodes in c.recv().items():
                    takes[w] += nodes
            for c, nodes in zip(conns, takes, strict=True):
                c.send(("take", nodes))
            live = 0
            for w, c in enumerate(conns):
                count, bad = c.recv()
                live += count
                shares[w] += count
                if bad and violation is None:
                    violation = bad[0]
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
        path: list[int] = []
        link = parent[fp]
        while link is not None:
            fp, index = link
            path.append(index)
            link = parent[fp]
        path.reverse()
        actions, node = _walk(root, path, bounds)
        found = Violation(name, setup + actions, node.state)
        depth = len(actions)
    n = len(parent)
    result = Result(n, transitions, depth, now() - started, found)
    # TLC's estimate for fingerprint collisions: n states among 2**64 fingerprints, checked
    # once per transition.
    collision = min(1.0, n * transitions / 2.0**64)
    return ParallelResult(result, workers, collision, tuple(shares))
