"""The run's report: one self-contained ``report.html`` with the checker's verdict and
plots drawn with matplotlib (its object interface, no pyplot: figures rendered by the
Agg canvas, safe off the main thread), embedded as base64 PNG (the same PNGs are also written next
to it, for documents that want to show them).

The plots, each with the nemesis's fault windows shaded (:func:`harness.history.fault_windows`):

* throughput - sends completed per second by outcome (ok, info, fail) and records read
  per second by the consumers;
* latency - every send's time from invocation to completion, by outcome (log scale);
* offsets - per partition, the offset of each acknowledged send over time, the lost
  writes the checker found marked, and the end of the final read.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from harness.checker import LOST_WRITE, CheckResult
from harness.history import F, FaultWindow, Op, OpType, Poll, Send, fault_windows

FAULT_COLOURS: Final = {
    "kill": "#d62728",
    "pause": "#9467bd",
    "partition": "#ff7f0e",
    "zookeeper": "#17becf",
}
OUTCOME_COLOURS: Final = {"ok": "#2ca02c", "info": "#ff7f0e", "fail": "#d62728"}
PLOTS: Final = ("throughput", "latency", "offsets")


def _seconds(ns: int) -> float:
    return ns / 1e9


def _end_s(ops: Sequence[Op]) -> float:
    return _seconds(ops[-1].time) if ops else 0.0


def shade_faults(ax: Axes, windows: Sequence[FaultWindow], end_s: float) -> None:
    """Shade each fault window, labelled once per kind for the legend."""
    labelled: set[str] = set()
    for w in windows:
        colour = FAULT_COLOURS.get(w.kind, "#7f7f7f")
        stop = end_s if w.end_ns is None else _seconds(w.end_ns)
        label = None if w.kind in labelled else f"fault: {w.kind}"
        labelled.add(w.kind)
        ax.axvspan(_seconds(w.start_ns), stop, color=colour, alpha=0.15, label=label, lw=0)


def send_completions(ops: Sequence[Op]) -> list[tuple[float, float, str, Send]]:
    """(completion s, latency s, outcome, send) of every completed send."""
    invoked: dict[str, int] = {}
    out: list[tuple[float, float, str, Send]] = []
    for op in ops:
        if op.f is not F.SEND or not isinstance(op.value, Send):
            continue
        if op.type is OpType.INVOKE:
            invoked[op.value.value] = op.time
        elif op.value.value in invoked:
            start = invoked.pop(op.value.value)
            out.append((_seconds(op.time), _seconds(op.time - start), op.type.value, op.value))
    return out


def _per_second(
    times: Sequence[float], end_s: float, weights: Sequence[int] | None = None
) -> list[int]:
    bins = [0] * (int(end_s) + 1)
    for i, t in enumerate(times):
        bins[min(int(t), len(bins) - 1)] += 1 if weights is None else weights[i]
    return bins


def _finish(
    fig: Figure,
    ax: Axes,
    windows: Sequence[FaultWindow],
    end: float,
    labels: tuple[str, str, str],
    **legend: Any,
) -> Figure:
    """Shade the faults, name the axes (x label, y label, title), show time from 0 to
    ``end``, add the legend (upper left, small) and lay the figure out."""
    shade_faults(ax, windows, end)
    xlabel, ylabel, title = labels
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_xlim(0, max(end, 1.0))
    ax.legend(loc="upper left", **legend)
    fig.tight_layout()
    return fig


def plot_throughput(ops: Sequence[Op], windows: Sequence[FaultWindow]) -> Figure:
    end = _end_s(ops)
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    done = send_completions(ops)
    xs = list(range(int(end) + 1))
    for outcome in ("ok", "info", "fail"):
        times = [t for t, _, o, _ in done if o == outcome]
        if times or outcome == "ok":
            ax.plot(
                xs,
                _per_second(times, end),
                label=f"sends {outcome}",
                color=OUTCOME_COLOURS[outcome],
                lw=1.2,
            )
    polls = [op for op in ops if op.f is F.POLL and op.type is OpType.OK]
    polls = [op for op in polls if isinstance(op.value, Poll) and not op.value.final]
    counts = [
        sum(len(r.records) for r in op.value.reads) for op in polls if isinstance(op.value, Poll)
    ]
    ax.plot(
        xs,
        _per_second([_seconds(op.time) for op in polls], end, counts),
        label="records read",
        color="#1f77b4",
        lw=1.0,
        alpha=0.7,
    )
    labels = ("time (s)", "per second", "Throughput")
    return _finish(fig, ax, windows, end, labels, fontsize=8, ncol=3)


def plot_latency(ops: Sequence[Op], windows: Sequence[FaultWindow]) -> Figure:
    end = _end_s(ops)
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    done = send_completions(ops)
    for outcome in ("ok", "info", "fail"):
        pts = [(t, max(lat * 1000, 0.01)) for t, lat, o, _ in done if o == outcome]
        if pts:
            ax.scatter(
                [p[0] for p in pts],
                [p[1] for p in pts],
                s=3,
                alpha=0.5,
                color=OUTCOME_COLOURS[outcome],
                label=f"send {outcome}",
                lw=0,
            )
    ax.set_yscale("log")
    labels = ("time of completion (s)", "latency (ms)", "Send latency")
    return _finish(fig, ax, windows, end, labels, fontsize=8, ncol=4, markerscale=3)


def plot_offsets(ops: Sequence[Op], windows: Sequence[FaultWindow], result: CheckResult) -> Figure:
    end = _end_s(ops)
    acked = [(t, s) for t, _, o, s in send_completions(ops) if o == "ok"]
    partitions = sorted({(s.topic, s.partition or 0) for _, s in acked})
    final_end: dict[tuple[str, int], int] = {}
    final_values: dict[tuple[str, int], set[str]] = {}
    for op in ops:
        if op.type is OpType.OK and isinstance(op.value, Poll) and op.value.final:
            for r in op.value.reads:
                final_values.setdefault((r.topic, r.partition), set()).update(
                    v for _, v in r.records
                )
                if r.records:
                    final_end[r.topic, r.partition] = r.records[-1][0]
    # Lost writes: every acknowledged value missing from its partition's final read
    # (where there is none, the checker's examples of its weaker rule).
    lost = result.anomalies.get(LOST_WRITE)
    examples = {str(e.get("value")) for e in lost.examples} if lost is not None else set()
    lost_values = {
        s.value
        for _, s in acked
        if (s.topic, s.partition) in final_values
        and s.value not in final_values[s.topic, s.partition or 0]
    }
    lost_values |= examples
    rows = max(1, len(partitions))
    fig = Figure(figsize=(10, 1.9 * rows + 0.8))
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    for ax, tp in zip([a[0] for a in axes], partitions or [("", 0)], strict=False):
        mine = [(t, s) for t, s in acked if (s.topic, s.partition) == tp]
        ax.scatter(
            [t for t, _ in mine],
            [s.offset for _, s in mine],
            s=2,
            color="#2ca02c",
            label="acknowledged",
            lw=0,
        )
        marks = [(t, s) for t, s in mine if s.value in lost_values]
        if marks:
            ax.scatter(
                [t for t, _ in marks],
                [s.offset for _, s in marks],
                s=14,
                marker="x",
                lw=0.8,
                color="#d62728",
                label=f"lost write ({len(marks)})",
            )
        if tp in final_end:
            ax.axhline(final_end[tp], color="#1f77b4", lw=0.8, ls="--", label="final read end")
        shade_faults(ax, windows, end)
        ax.set_ylabel(f"p{tp[1]} offset")
        ax.legend(loc="upper left", fontsize=7, ncol=4, markerscale=2)
    axes[-1][0].set_xlabel("time of acknowledgement (s)")
    axes[-1][0].set_xlim(0, max(end, 1.0))
    axes[0][0].set_title("Offsets acknowledged per partition")
    fig.tight_layout()
    return fig


def render_plots(ops: Sequence[Op], result: CheckResult) -> dict[str, bytes]:
    """The report's plots as PNG bytes, by name (:data:`PLOTS`)."""
    windows = fault_windows(ops)
    figures = {
        "throughput": plot_throughput(ops, windows),
        "latency": plot_latency(ops, windows),
        "offsets": plot_offsets(ops, windows, result),
    }
    pngs: dict[str, bytes] = {}
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        pngs[name] = buf.getvalue()
    return pngs


_STYLE: Final = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222 }
.verdict { padding: .6em 1em; font-size: 1.4em; border-radius: 4px; color: white }
.valid { background: #2ca02c } .invalid { background: #d62728 } .unknown { background: #7f7f7f }
table { border-collapse: collapse; margin: .5em 0 1.2em } td, th { border: 1px solid #ccc;
padding: .2em .6em; text-align: left; vertical-align: top; font-size: .9em }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; font-size: .8em }
img { max-width: 100%; border: 1px solid #eee }
"""


def _table(rows: Sequence[Sequence[object]], head: Sequence[str] | None = None) -> str:
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    return "\n".join([*out, "</table>"])


def _faults_table(ops: Sequence[Op]) -> str:
    rows = []
    for op in ops:
        if op.f in (F.FAULT, F.HEAL) and op.type is not OpType.INVOKE and op.value is not None:
            v = op.value
            rows.append(
                (
                    f"{_seconds(op.time):.1f}",
                    op.f.value,
                    op.type.value,
                    getattr(v, "kind", ""),
                    " ".join(getattr(v, "targets", ())),
                    getattr(v, "note", ""),
                    op.error or "",
                )
            )
    if not rows:
        return "<p>No faults were injected.</p>"
    return _table(rows, ("time (s)", "op", "outcome", "kind", "targets", "note", "error"))


def render_html(
    ops: Sequence[Op], result: CheckResult, results: Mapping[str, Any], pngs: Mapping[str, bytes]
) -> str:
    """The report's HTML, images inline."""
    run = results.get("run", {})
    mutant = run.get("mutant")
    verdict = "VALID" if result.valid else "INVALID: " + ", ".join(result.bad_anomaly_types)
    css = "valid" if result.valid else "invalid"
    s = result.stats
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>kafkaref chaos run: {html.escape(verdict)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>kafkaref chaos run</h1>",
        f"<div class='verdict {css}'>{html.escape(verdict)}</div>",
        f"<p>{html.escape(result.summary())}</p>",
        "<h2>Run</h2>",
        _table(
            [
                ("workload time (s)", run.get("time_s")),
                ("faults", ", ".join(run.get("faults", ())) or "none"),
                ("targets", ", ".join(run.get("targets", ()))),
                ("brokers / ZooKeeper nodes", f"{run.get('brokers')} / {run.get('zookeepers')}"),
                ("seeded defect (mutant)", mutant or "none (the reference cluster)"),
                ("seed", run.get("seed")),
                ("image", results.get("image", "")),
                ("workload", json.dumps(run.get("workload", {}))),
                ("timings (s)", json.dumps(results.get("timings", {}))),
            ]
        ),
        "<h2>History</h2>",
        _table(
            [
                ("operations", s.ops),
                (
                    "sends acknowledged / failed / unknown",
                    f"{s.sends_acknowledged} / {s.sends_failed} / {s.sends_unknown}",
                ),
                ("records read (distinct values)", f"{s.records_read} ({s.values_read})"),
                ("partitions (finally read)", f"{s.partitions} ({s.final_read_partitions})"),
                ("nemesis operations", s.nemesis_ops),
            ]
        ),
        "<h2>Anomalies</h2>",
    ]
    if result.anomalies:
        for name, anomaly in result.anomalies.items():
            bad = "" if name in result.allowed else " (makes the history invalid)"
            parts.append(f"<h3>{html.escape(name)}: {anomaly.count}{bad}</h3>")
            parts.append(f"<pre>{html.escape(json.dumps(list(anomaly.examples), indent=1))}</pre>")
    else:
        parts.append("<p>None.</p>")
    titles = {"throughput": "Throughput", "latency": "Latency", "offsets": "Offsets"}
    for name, png in pngs.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(f"<h2>{titles.get(name, name)}</h2>")
        parts.append(f"<img alt='{name}' src='data:image/png;base64,{data}'>")
    parts += ["<h2>Faults</h2>", _faults_table(ops)]
    notes = results.get("notes") or []
    if notes:
        parts += ["<h2>Notes</h2>", "<ul>"] + [f"<li>{html.escape(str(n))}</li>" for n in notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    path: Path, ops: Sequence[Op], result: CheckResult, results: Mapping[str, Any]
) -> dict[str, Path]:
    """Write ``report.html`` at ``path`` and the plots as PNG beside it; answers the PNGs."""
    pngs = render_plots(ops, result)
    path.write_text(render_html(ops, result, results, pngs), encoding="utf-8")
    written: dict[str, Path] = {}
    for name, png in pngs.items():
        written[name] = path.with_name(f"{name}.png")
        written[name].write_bytes(png)
    return written
