"""The ``kafkaref bench`` report: one table row per run and metric, ours beside the peer.

Each figure is the median over the repetitions of its run.  The ratio column is
ours / peer: for throughput higher is better, for latency lower is.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from rich import box
from rich.table import Table

from harness.bench_run import RunResult

MB = 1_000_000
"""MB/s counts record values only, in units of 10^6 bytes."""

METRICS: tuple[tuple[str, Callable[[RunResult], float], str], ...] = (
    ("produce records/s", lambda r: r.produce.records / r.produce.seconds, "{:,.0f}"),
    ("produce MB/s", lambda r: r.produce.bytes / MB / r.produce.seconds, "{:,.2f}"),
    ("produce p50 ms", lambda r: r.produce.p50_ms, "{:,.2f}"),
    ("produce p99 ms", lambda r: r.produce.p99_ms, "{:,.2f}"),
    ("consume records/s", lambda r: r.consume.records / r.consume.seconds, "{:,.0f}"),
    ("consume MB/s", lambda r: r.consume.bytes / MB / r.consume.seconds, "{:,.2f}"),
    ("consume first record ms", lambda r: r.consume.first_record_seconds * 1000, "{:,.2f}"),
)
"""Each row of a run: label, value, format."""


Repeats = Sequence[RunResult]
"""The repetitions of one scenario on one target."""


def report_table(
    ours: Sequence[Repeats], peer: Sequence[Repeats] | None, *, markdown: bool
) -> Table:
    """The figures of every scenario; with a peer, its figures and the ratio ours / peer."""
    table = Table(box=box.MARKDOWN if markdown else box.SIMPLE_HEAD, pad_edge=markdown)
    table.add_column("Run", no_wrap=True)
    table.add_column("Metric", no_wrap=True)
    table.add_column("ours", justify="right", no_wrap=True)
    if peer is not None:
        table.add_column("peer", justify="right", no_wrap=True)
        table.add_column("ours/peer", justify="right", no_wrap=True)
    for i, runs in enumerate(ours):
        others = peer[i] if peer is not None else None
        for j, (label, value, fmt) in enumerate(METRICS):
            mine = statistics.median(value(run) for run in runs)
            cells = [runs[0].scenario.label if j == 0 else "", label, _fmt(fmt, mine)]
            if others is not None:
                theirs = statistics.median(value(run) for run in others)
                cells += [_fmt(fmt, theirs), _ratio(mine, theirs)]
            table.add_row(*cells, end_section=j == len(METRICS) - 1 and not markdown)
    return table


def retention_notes(role: str, scenarios: Sequence[Repeats]) -> list[str]:
    """One line per scenario whose consume phases found fewer records than were produced."""
    notes = []
    for runs in scenarios:
        held = [run.consume.records for run in runs]
        produced = runs[0].consume.produced
        if min(held) < produced:
            span = f"{min(held):,}" if min(held) == max(held) else f"{min(held):,}-{max(held):,}"
            notes.append(
                f"{role}: {runs[0].scenario.label}: its log held {span} of the {produced:,} "
                "records produced; the consume figures are over those."
            )
    return notes


def _fmt(fmt: str, value: float) -> str:
    return "n/a" if math.isnan(value) else fmt.format(value)


def _ratio(mine: float, theirs: float) -> str:
    if math.isnan(mine) or math.isnan(theirs) or theirs == 0:
        return "n/a"
    return f"{mine / theirs:.2f}x"


def cluster_ratio_lines(
    cluster: Sequence[Repeats], single: Sequence[Repeats], brokers: int, target: float = 0.5
) -> list[str]:
    """One line per scenario: the cluster's produce records/s as a fraction of the single
    broker's (medians), beside the issue's target."""
    lines = []
    for mine, theirs in zip(cluster, single, strict=True):
        ours = statistics.median(r.produce.records / r.produce.seconds for r in mine)
        peer = statistics.median(r.produce.records / r.produce.seconds for r in theirs)
        ratio = ours / peer if peer else math.nan
        verdict = "meets" if ratio >= target else "misses"
        lines.append(
            f"{mine[0].scenario.label}: {brokers}-broker cluster (replication factor {brokers}) "
            f"produces {ratio:.2f}x the records/s of a single broker (replication factor 1); "
            f"{verdict} the target of {target:g}x"
        )
    return lines
