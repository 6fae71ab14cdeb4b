"""What ``kafkaref explore`` prints when it is done: the bounds explored, the figures, the
verdict and, for a violation, the invariant, the shortest trace and the final state.

Pure text: every function returns lines, so the command decides where they go.
"""

from __future__ import annotations

import inspect
import textwrap
from collections import defaultdict
from collections.abc import Iterable

from harness.explore_replay import ReplayedStep, replay
from harness.state_text import describe_state
from spec.explorer import Bounds, Result, Violation, config_for, start_state
from spec.invariants import INVARIANTS
from spec.state import AckedRecord, TopicPartition, initial_state

INDENT = "  "
WIDTH = 88


def plural(n: int, word: str) -> str:
    """``1 broker``, ``2 brokers``."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def bounds_lines(bounds: Bounds) -> list[str]:
    """The configuration explored, in Kafka's terms."""
    rf = bounds.replication_factor or bounds.brokers
    faults = ["broker crashes and restarts"]
    if bounds.session_expiry:
        faults.append("ZooKeeper session expiries")
    if bounds.lose_unflushed:
        faults.append("power losses that drop unflushed data")
    unclean = str(bounds.unclean_leader_election_enable).lower()
    variants = ", ".join(sorted(bounds.variants)) or "none (the correct model)"
    return [
        "Bounds: "
        + ", ".join(
            [
                plural(bounds.brokers, "broker"),
                plural(bounds.partitions, "partition") + f" (replication factor {rf})",
                plural(bounds.records, "record") + " produced with acks=all",
                f"at most {plural(bounds.crashes, 'fault')}" if bounds.crashes else "no faults",
            ]
        ),
        f"Faults: {'; '.join(faults)}",
        f"Config: min.insync.replicas={bounds.min_insync_replicas}, "
        f"unclean.leader.election.enable={unclean},",
        "        replica.lag.time.max.ms=-1 (a lagging follower may leave the ISR at any step)",
        f"Variants: {variants}",
    ]


def figures_lines(result: Result) -> list[str]:
    """States explored, transitions, depth, seconds, states per second."""
    rows = [
        ("States explored", f"{result.states:,}"),
        ("Transitions", f"{result.transitions:,}"),
        ("Depth", f"{result.depth:,}"),
        ("Seconds", f"{result.seconds:,.2f}"),
        ("States per second", f"{result.states_per_second:,.0f}"),
    ]
    width = max(len(label) for label, _ in rows)
    return [f"{label.ljust(width)}  {value}" for label, value in rows]


def report_lines(bounds: Bounds, result: Result, max_states: int | None) -> list[str]:
    """The whole report: bounds, figures, then the violation or the verdict."""
    lines = [*bounds_lines(bounds), "", *figures_lines(result), ""]
    if result.violation is not None:
        return lines + violation_lines(bounds, result.violation)
    return lines + verdict_lines(result, max_states)


def verdict_lines(result: Result, max_states: int | None) -> list[str]:
    """When no invariant failed: that, and how complete the search was."""
    names = ", ".join(INVARIANTS)
    if max_states is not None and result.states >= max_states:
        return [
            f"CUT SHORT: the exploration stopped at --max-states {max_states:,}, so it is NOT "
            "exhaustive.",
            f"No invariant failed in the {plural(result.states, 'state')} seen; the states "
            "beyond them were never checked.",
            *textwrap.wrap(f"Invariants checked: {names}.", WIDTH),
        ]
    return [
        f"No invariant violated: all {len(INVARIANTS)} invariants hold in every one of the "
        f"{plural(result.states, 'reachable state')}.",
        *textwrap.wrap(f"Invariants checked: {names}.", WIDTH),
    ]


def invariant_summary(name: str) -> str:
    """The first paragraph of the invariant's docstring, on one line."""
    inv = INVARIANTS.get(name)
    doc = inspect.getdoc(inv) if inv is not None else None
    if not doc:
        return name
    text = " ".join(doc.split("\n\n", 1)[0].split())
    text = text.removeprefix(f"{name}: ")
    return text[:1].upper() + text[1:]


def violation_lines(bounds: Bounds, violation: Violation) -> list[str]:
    """The broken invariant, the shortest trace with acks=all answers marked, and the
    final state."""
    summary = textwrap.wrap(invariant_summary(violation.invariant), WIDTH - len(INDENT))
    lines = [f"Invariant {violation.invariant} violated", *(INDENT + line for line in summary)]
    lines += ["", *trace_lines(bounds, violation)]
    lines += ["", "Final state:"]
    lines += [
        INDENT + line
        for line in describe_state(violation.state, recovery_points=bounds.lose_unflushed)
    ]
    return lines


def trace_lines(bounds: Bounds, violation: Violation) -> list[str]:
    """One numbered line per action, in Kafka's words, with what producers were told."""
    trace = violation.trace
    setup = len(start_state(bounds)[1])
    replayed = replay(initial_state(config_for(bounds), bounds.brokers), trace, setup)
    width = len(str(len(trace)))
    explored = len(trace) - setup
    lines = [
        f"Shortest trace: {plural(len(trace), 'step')} "
        f"({setup} to set the cluster up, then {explored} explored):"
    ]
    for i, action in enumerate(trace):
        if i == setup:
            lines.append(f"{INDENT}{' ' * width}  -- the cluster is set up; exploration starts --")
        lines.append(f"{INDENT}{i + 1:>{width}}. {action.describe()}")
        if i < len(replayed.steps):
            lines += [f"{INDENT}{' ' * width}  {note}" for note in _answers(replayed.steps[i])]
    if replayed.diverged is not None:
        lines.append(f"(replay stopped: the model rejected {replayed.diverged})")
    elif replayed.steps and replayed.steps[-1].state != violation.state:
        lines.append("(replaying the trace did not reproduce the explorer's final state)")
    return lines


def _answers(s: ReplayedStep) -> list[str]:
    notes = [f"-> acks=all answered: {where}" for where in _offsets(s.acknowledged)]
    notes += [f"-> acks=all answered with error {err.name}" for err in s.errors]
    return notes


def _offsets(acked: Iterable[AckedRecord]) -> list[str]:
    """``offset 0 of t-0``, ``offsets 0, 1 of t-0``: one entry per partition."""
    by_tp: dict[TopicPartition, list[int]] = defaultdict(list)
    for a in acked:
        by_tp[a.tp].append(a.offset)
    out = []
    for tp, offsets in sorted(by_tp.items()):
        word = "offset" if len(offsets) == 1 else "offsets"
        out.append(f"{word} {', '.join(str(o) for o in sorted(offsets))} of {tp}")
    return out
