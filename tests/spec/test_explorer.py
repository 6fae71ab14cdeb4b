"""The bounded explorer: the correct model passes small bounds, every known-bad variant is
caught with a trace that replays, through ``spec.cluster.step``, to a violating state."""

from __future__ import annotations

import pytest

from spec.actions import Action
from spec.canonical import canonical_key
from spec.cluster import step
from spec.explorer import (
    Bounds,
    Result,
    Violation,
    acknowledge_due,
    config_for,
    explore,
    settle_truncations,
    start_state,
)
from spec.invariants import INVARIANTS
from spec.outcome import Ok
from spec.state import ClusterState, initial_state
from spec.variants import Variant

# The smallest bounds (found by trying) at which each variant is caught within a second or
# two; brokers=3, records=2, crashes=2 catches every one of them too, more slowly.
VARIANT_BOUNDS: dict[Variant, Bounds] = {
    Variant.TRUNCATE_TO_HIGH_WATERMARK: Bounds(brokers=3, records=1, crashes=1),
    Variant.UNCLEAN_LEADER_ELECTION: Bounds(brokers=2, records=2, crashes=1),
    Variant.HW_ADVANCE_WITHOUT_ISR: Bounds(brokers=2, records=1, crashes=1),
    Variant.ACK_BEFORE_ISR: Bounds(brokers=2, records=1, crashes=1),
    Variant.EXPAND_ISR_BEFORE_CAUGHT_UP: Bounds(brokers=2, records=1, crashes=1),
}


def with_variant(bounds: Bounds, variant: Variant) -> Bounds:
    return Bounds(
        brokers=bounds.brokers,
        partitions=bounds.partitions,
        records=bounds.records,
        crashes=bounds.crashes,
        replication_factor=bounds.replication_factor,
        min_insync_replicas=bounds.min_insync_replicas,
        session_expiry=bounds.session_expiry,
        lose_unflushed=bounds.lose_unflushed,
        unclean_leader_election_enable=bounds.unclean_leader_election_enable,
        variants=frozenset({variant}),
    )


def replay(bounds: Bounds, trace: tuple[Action, ...]) -> list[ClusterState]:
    """Every state along ``trace``, as the explorer reaches them: each action through
    ``step`` (each must succeed); after the setup actions, also the explorer's reductions:
    every delayed produce that is due is answered, and every follower truncation that
    would cut nothing is taken (both are no-ops when nothing is due)."""
    _, setup = start_state(bounds)
    s = initial_state(config_for(bounds), bounds.brokers)
    states = [s]
    for i, action in enumerate(trace):
        out = step(s, action)
        assert isinstance(out, Ok), (action.describe(), out)
        s = out.state
        if i >= len(setup):
            s = settle_truncations(acknowledge_due(s))
        states.append(s)
    return states


def broken(s: ClusterState) -> list[str]:
    return [name for name, inv in INVARIANTS.items() if not inv(s)]


def assert_passes(result: Result) -> None:
    assert result.violation is None, (
        result.violation.invariant,
        [a.describe() for a in result.violation.trace],
    )
    assert result.states > 1
    assert result.transitions >= result.states - 1
    assert result.depth > 0


# --- the correct model -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bounds",
    [
        Bounds(brokers=2, records=1, crashes=1),
        Bounds(brokers=3, records=1, crashes=1),
        Bounds(brokers=2, records=2, crashes=1),
        Bounds(brokers=2, records=1, crashes=1, session_expiry=True),
        Bounds(brokers=3, records=1, crashes=1, replication_factor=2),
    ],
    ids=[
        "2-brokers",
        "3-brokers",
        "2-brokers-2-records",
        "2-brokers-session-expiry",
        "3-brokers-rf2",
    ],
)
def test_the_correct_model_keeps_every_invariant(bounds: Bounds) -> None:
    # These include every variant's bounds below: what catches a variant is the variant.
    assert_passes(explore(bounds))


def test_the_start_state_is_reached_through_the_setup_actions() -> None:
    bounds = Bounds(brokers=3)
    s0, setup = start_state(bounds)
    assert replay(bounds, setup)[-1] == s0
    part = next(iter(s0.partitions.values()))
    assert part.zk.isr == {0, 1, 2}
    assert all(rep.known == part.zk for rep in part.replica.values())
    assert broken(s0) == []


def test_max_states_stops_the_search_early() -> None:
    result = explore(Bounds(brokers=3, records=1, crashes=1), max_states=200)
    assert result.violation is None
    assert result.states == 200


def test_progress_is_reported() -> None:
    calls: list[tuple[int, int, float]] = []
    result = explore(
        Bounds(brokers=2, records=1, crashes=1),
        progress=lambda states, depth, secs: calls.append((states, depth, secs)),
    )
    assert result.violation is None
    for states, _depth, secs in calls:  # called at most once a second: maybe never here
        assert 0 < states <= result.states
        assert secs >= 0


# --- known-bad variants ----------------------------------------------------------------


def test_every_variant_has_bounds() -> None:
    assert set(VARIANT_BOUNDS) == set(Variant)


def check_violation(bounds: Bounds, violation: Violation | None) -> None:
    assert violation is not None
    assert violation.invariant in INVARIANTS
    _, setup = start_state(bounds)
    trace = violation.trace
    assert trace[: len(setup)] == setup
    assert len(trace) > len(setup)
    states = replay(bounds, trace)
    # The replay reaches the state the explorer reported (up to the renaming its
    # deduplication ignores), which breaks the named invariant; every state before it kept
    # every invariant (the search is breadth-first and checks each state it meets).
    assert canonical_key(states[-1]) == canonical_key(violation.state)
    assert not INVARIANTS[violation.invariant](states[-1])
    assert violation.invariant == broken(states[-1])[0]
    for s in states[len(setup) : -1]:
        assert broken(s) == []


@pytest.mark.parametrize("variant", list(Variant), ids=[v.value for v in Variant])
def test_each_variant_is_caught_with_a_replayable_trace(variant: Variant) -> None:
    bounds = with_variant(VARIANT_BOUNDS[variant], variant)
    result = explore(bounds)
    check_violation(bounds, result.violation)


def test_unclean_leader_election_enabled_can_lose_what_consumers_read() -> None:
    # unclean.leader.election.enable trades durability for availability: the invariants,
    # which state the clean configuration's guarantees, must then fail.
    bounds = Bounds(brokers=2, records=2, crashes=1, unclean_leader_election_enable=True)
    result = explore(bounds)
    check_violation(bounds, result.violation)
