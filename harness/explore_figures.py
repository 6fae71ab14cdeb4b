"""The explorer's figures for docs/spec.md: one run per row, printed as a Markdown table.

    .venv/bin/python -m harness.explore_figures [--workers N] [--quick]

Each row is the run ``kafkaref explore`` makes with the options shown (the correct model
at two bounds, then each known-bad variant at the default bounds); ``--quick`` leaves out
the long default-bound run of the correct model.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

from harness.explore_parallel import explore_parallel
from spec.explorer import Bounds, Result
from spec.variants import Variant


def _run(bounds: Bounds, workers: int) -> Result:
    return explore_parallel(bounds, workers=workers, clock=time.monotonic).result


def _row(command: str, model: str, result: Result) -> str:
    verdict = "no violation" if result.violation is None else f"`{result.violation.invariant}`"
    return (
        f"| `{command}` | {model} | {verdict} | {result.states:,} | {result.transitions:,} "
        f"| {result.depth} | {result.seconds:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(
        f"Measured on: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{args.workers} workers, commit {commit or '?'}."
    )
    print()
    print("| Command | Model | Verdict | States | Transitions | Depth | Seconds |")
    print("|---|---|---|---|---|---|---|")
    runs: list[tuple[str, str, Bounds]] = []
    if not args.quick:
        runs.append(("./kafkaref explore", "correct", Bounds()))
    runs.append(
        (
            "./kafkaref explore --records 1 --crashes 1",
            "correct",
            Bounds(records=1, crashes=1),
        )
    )
    runs += [
        (f"./kafkaref explore --variant {v.value}", "variant", Bounds(variants=frozenset({v})))
        for v in Variant
    ]
    for command, model, bounds in runs:
        print(_row(command, model, _run(bounds, args.workers)), flush=True)


if __name__ == "__main__":
    main()
