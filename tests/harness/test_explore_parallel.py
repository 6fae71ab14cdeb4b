"""The parallel explorer agrees with the spec's serial one: the same number of states and
depth when every invariant holds, the same invariant and shortest-trace length when one
fails, and a trace that replays to a state breaking it."""

from __future__ import annotations

import pytest

from harness.explore_parallel import explore_parallel
from spec.explorer import Bounds, explore
from spec.invariants import INVARIANTS
from spec.variants import Variant


@pytest.mark.parametrize(
    "bounds",
    [Bounds(brokers=2, records=2, crashes=2), Bounds(brokers=3, records=1, crashes=1)],
    ids=["2-2-2", "3-1-1"],
)
def test_same_states_as_the_serial_explorer(bounds: Bounds) -> None:
    serial = explore(bounds)
    parallel = explore_parallel(bounds, workers=2)
    assert serial.violation is None and parallel.result.violation is None
    assert parallel.result.states == serial.states
    assert parallel.result.depth == serial.depth
    assert parallel.collision_probability < 1e-9


@pytest.mark.parametrize("variant", [Variant.ACK_BEFORE_ISR, Variant.TRUNCATE_TO_HIGH_WATERMARK])
def test_same_shortest_violation_as_the_serial_explorer(variant: Variant) -> None:
    bounds = Bounds(brokers=3, records=1, crashes=2, variants=frozenset({variant}))
    serial = explore(bounds)
    parallel = explore_parallel(bounds, workers=2).result
    assert serial.violation is not None and parallel.violation is not None
    assert len(parallel.violation.trace) == len(serial.violation.trace)
    assert not INVARIANTS[parallel.violation.invariant](parallel.violation.state)


def test_workers_share_the_search() -> None:
    """Every worker holds about an equal part of each level, not just the one that was
    handed the start state."""
    bounds = Bounds(brokers=3, records=1, crashes=1)
    par = explore_parallel(bounds, workers=3)
    assert len(par.shares) == 3
    assert sum(par.shares) == par.result.states - 1  # all but the start state
    assert min(par.shares) >= 0.3 * max(par.shares)
