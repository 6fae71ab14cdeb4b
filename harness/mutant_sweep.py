"""The seeded-defect sweep: ``kafkaref conform --local --mutant NAME`` for every defect.

``python -m harness.mutant_sweep [--budget S] [--seed N] [--only NAME ...] [--docs FILE]``

The registry is the broker's (``python -m impl.broker --list-mutants``, JSON): the harness
never imports it, it only passes names on.  Each defect the local check must catch
(``local`` in the registry: one broker, with restarts and groups) gets one run of the
real command in a subprocess, with a time budget and a fixed first seed; the correct
broker gets one too.  The table shows per defect the exit status (1: caught), the rule
whose operation got the answer the spec does not allow, the time until the divergence
was found (before shrinking), the length of the trace when found and after shrinking,
and the answer that diverged.  Defects that need a cluster run too (the command starts a
three-broker cluster for them, with a budget of their own); those that need retention are
listed with what catches them instead (the registry's ``caught_by``).

With ``--docs FILE`` the table replaces the text between the markers ``<!-- mutant-sweep:
begin -->`` and ``<!-- mutant-sweep:end -->`` in FILE (docs/harness.md).  Exit status 0
when every local defect was caught and the correct broker conformed, else 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from harness.launcher import DEFAULT_COMMAND

CONFORM = (sys.executable, "-c", "from harness.cli import main; main()", "conform")
BEGIN = "<!-- mutant-sweep:begin -->"
END = "<!-- mutant-sweep:end -->"
DEFAULT_BUDGET_S = 60.0
DEFAULT_CLUSTER_BUDGET_S = 300.0
"""Defects that need a cluster run longer: ``conform --local --mutant NAME`` starts three
brokers on a local ZooKeeper for them, and kills and pauses take seconds each."""
NOT_REACHABLE: dict[str, str] = {}
"""Defects the sweep runs but does not expect to be caught, and why (none now:
stale-leader-accepts-produce, once out of reach of process faults, is reached by the
cluster target's cut of a broker's link to ZooKeeper)."""
DEFAULT_SEED = 1
DEFAULT_SHRINK_BUDGET_S = 30.0
CORRECT = "(none: the correct broker)"
ANSWER_WIDTH = 70


@attrs.frozen(slots=True)
class SweepRow:
    """One run: the defect (CORRECT for none), its needs, and what the check did."""

    name: str
    needs: str
    exit_code: int
    rule: str = ""
    detect_s: float | None = None
    found_length: int = 0
    shrunk_length: int = 0
    answer: str = ""
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        """Caught (exit 1) for a defect, conformant (exit 0) for the correct broker."""
        return self.exit_code == (0 if self.name == CORRECT else 1)


def list_mutants(command: Sequence[str] = DEFAULT_COMMAND) -> list[dict[str, Any]]:
    """The broker's registry of seeded defects."""
    done = subprocess.run(
        [*command, "--list-mutants"], capture_output=True, text=True, check=True, timeout=120
    )
    registry: list[dict[str, Any]] = json.loads(done.stdout)
    return registry


def run_one(
    name: str | None,
    needs: str,
    work: Path,
    *,
    budget_s: float = DEFAULT_BUDGET_S,
    seed: int = DEFAULT_SEED,
    shrink_budget_s: float = DEFAULT_SHRINK_BUDGET_S,
) -> SweepRow:
    """``kafkaref conform --local [--mutant name]`` once, read back from its report."""
    label = name or "correct"
    report = work / f"{label}.json"
    argv = [
        *CONFORM,
        "--local",
        "--budget",
        str(budget_s),
        "--seed",
        str(seed),
        "--shrink-budget",
        str(shrink_budget_s),
        "--report",
        str(report),
        "--replay-file",
        str(work / f"{label}-replay.json"),
    ]
    if name is not None:
        argv += ["--mutant", name]
    started = time.monotonic()
    done = subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=budget_s + shrink_budget_s + 300
    )
    wall = time.monotonic() - started
    row = SweepRow(name or CORRECT, needs, done.returncode, wall_s=wall)
    if not report.exists():
        return attrs.evolve(row, answer=_last_line(done.stderr))
    data = json.loads(report.read_text(encoding="utf-8"))
    if not data["divergences"]:
        return row
    d = data["divergences"][0]
    return attrs.evolve(
        row,
        rule=d["rule"],
        detect_s=float(data["seconds"]) - float(data.get("shrink_seconds", 0.0)),
        found_length=int(d["found_length"]),
        shrunk_length=len(d["operations"]),
        answer=f"{d['steps'][-1]['operation']['op']}: {d['observed']['text']}",
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _cut(text: str, width: int = ANSWER_WIDTH) -> str:
    text = text.replace("|", "/")
    return text if len(text) <= width else text[: width - 3] + "..."


def table(
    rows: Sequence[SweepRow],
    others: Sequence[dict[str, Any]],
    budget_s: float,
    cluster_budget_s: float = DEFAULT_CLUSTER_BUDGET_S,
) -> str:
    """The markdown table of the runs, then the defects the local check does not drive."""
    lines = [
        f"Each run: `kafkaref conform --local --mutant NAME --budget {budget_s:g} "
        f"--seed {DEFAULT_SEED}` (2 shared CPUs); `--budget {cluster_budget_s:g}` for the "
        "defects that need a cluster (the command starts three brokers for them).",
        "",
        "| defect | needs | exit | caught by rule | found after | found at op | "
        "shrunk to | diverging answer (observed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        found = f"{r.detect_s:.1f} s" if r.detect_s is not None else "-"
        ops = (str(r.found_length), str(r.shrunk_length)) if r.rule else ("-", "-")
        lines.append(
            f"| `{r.name}` | {r.needs} | {r.exit_code} | {r.rule or '-'} | {found} | "
            f"{ops[0]} | {ops[1]} | {_cut(r.answer) or NOT_REACHABLE.get(r.name, '-')} |"
        )
    if others:
        lines += ["", "| defect | needs | caught by |", "|---|---|---|"]
        lines += [f"| `{m['name']}` | {m['needs']} | {m['caught_by']} |" for m in others]
    return "\n".join(lines) + "\n"


def write_docs(path: Path, text: str) -> None:
    """Replace what is between the sweep markers in ``path`` with ``text``."""
    doc = path.read_text(encoding="utf-8")
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no {BEGIN} ... {END} markers")
    path.write_text(doc[: start + len(BEGIN)] + "\n" + text + doc[end:], encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.mutant_sweep", description=__doc__)
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, metavar="SECONDS")
    parser.add_argument(
        "--cluster-budget", type=float, default=DEFAULT_CLUSTER_BUDGET_S, metavar="SECONDS"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="N")
    parser.add_argument("--shrink-budget", type=float, default=DEFAULT_SHRINK_BUDGET_S)
    parser.add_argument("--only", action="append", metavar="NAME", help="just these defects")
    parser.add_argument("--no-correct", action="store_true", help="skip the correct broker")
    parser.add_argument("--docs", type=Path, metavar="FILE", help="write the table into FILE")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep each run's report and replay file in DIR"
    )
    args = parser.parse_args(argv)
    registry = list_mutants()
    runnable = [m for m in registry if m["local"] or m["needs"] == "cluster"]
    local = [m for m in runnable if not args.only or m["name"] in args.only]
    others = [m for m in registry if m not in runnable and not args.only]
    rows: list[SweepRow] = []
    with tempfile.TemporaryDirectory(prefix="kafkaref-sweep-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        work.mkdir(parents=True, exist_ok=True)
        runs: list[tuple[str | None, str]] = [(m["name"], m["needs"]) for m in local]
        if not args.no_correct:
            runs.insert(0, (None, "-"))
        for name, needs in runs:
            row = run_one(
                name,
                needs,
                work,
                budget_s=args.cluster_budget if needs == "cluster" else args.budget,
                seed=args.seed,
                shrink_budget_s=args.shrink_budget,
            )
            rows.append(row)
            verdict = "ok" if row.ok else "NOT CAUGHT" if name else "DIVERGED"
            if name in NOT_REACHABLE and not row.ok:
                verdict = f"not caught, as expected: {NOT_REACHABLE[name]}"
            print(f"{row.name}: exit {row.exit_code} ({verdict}), {row.wall_s:.1f} s", flush=True)
    text = table(rows, others, args.budget, args.cluster_budget)
    print(text)
    if args.docs is not None:
        write_docs(args.docs, text)
    return 0 if all(r.ok or r.name in NOT_REACHABLE for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
