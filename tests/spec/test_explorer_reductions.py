"""The explorer's reductions lose no behaviour: with and without them, the same states are
reachable once the bookkeeping they touch (the truncation-done flag, the delayed-produce
list, the acknowledged-record history) is set aside; and every state reached with them
is one reached without them, acknowledgements included."""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

import pytest

from spec.canonical import canonical_key
from spec.explorer import Bounds, Node, start_state, successors


def _reachable(bounds: Bounds, reductions: bool) -> list[Node]:
    s0, _ = start_state(bounds)
    root = Node(s0, 0, 0)
    seen: dict[Hashable, Node] = {(canonical_key(s0), 0, 0): root}
    frontier = deque([root])
    while frontier:
        node = frontier.popleft()
        for _action, nxt in successors(node, bounds, reductions):
            key = (canonical_key(nxt.state), nxt.produced, nxt.faults)
            if key not in seen:
                seen[key] = nxt
                frontier.append(nxt)
    return list(seen.values())


def _projection(node: Node) -> Hashable:
    """The canonical key without the flag, the pending list and the acknowledgements."""
    key = canonical_key(node.state)
    assert isinstance(key, tuple)
    parts = tuple((*p[:5], tuple((*r[:4], *r[5:]) for r in p[5])) for p in key[4])
    return (*key[:4], parts, *key[7:], node.produced, node.faults)


@pytest.mark.parametrize(
    "bounds",
    [
        Bounds(brokers=2, records=2, crashes=2),
        Bounds(brokers=3, records=1, crashes=1),
    ],
    ids=["2-brokers-2-records-2-crashes", "3-brokers-1-record-1-crash"],
)
def test_reductions_reach_the_same_states(bounds: Bounds) -> None:
    reduced = _reachable(bounds, reductions=True)
    full = _reachable(bounds, reductions=False)
    assert len(reduced) < len(full)
    assert {_projection(n) for n in reduced} == {_projection(n) for n in full}
    # Acknowledgements are given at least as early with the reductions: every reduced state
    # acknowledges no record that the full exploration never acknowledges.
    acked_full = set().union(*(n.state.acked for n in full))
    assert set().union(*(n.state.acked for n in reduced)) <= acked_full
