"""What a conformance run shows: live progress, the summary, the JSON report, JUnit XML.

The summary has three parts: the rules exercised (how often, and the answers they got),
the optional features (checked, declared unsupported by the target, not offered in its
ApiVersions, or not yet checked by the harness), and each divergence as its minimal
reproduction: the numbered Kafka operations with what the target answered, the last one
with every answer the spec allows, then how to replay it.  Protocol errors (answers that
break the wire format, found by a wire check before the search) come before the
divergences, each with its API, versions and a sample of the answer.

The JSON report holds the same, with each divergence's operations in the form
``kafkaref conform --replay`` reads.  The JUnit file has one test case per rule (and one
per divergence, failed; one per unsupported feature, skipped), for CI dashboards.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO
from xml.etree import ElementTree

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.conform_check import Step, Tally
from harness.conform_ops import Observation, observation_to_json, op_to_json
from harness.conform_run import RunResult
from harness.conform_session import Divergence
from harness.conform_target import FEATURES

PLAIN_EVERY_SECONDS = 10.0
ProgressCallback = Callable[[Tally, int], None]
"""``(tally, divergences)``, called after every operation."""


@contextmanager
def progress_display(
    examples: int | None, budget_s: float | None, stream: TextIO | None = None
) -> Iterator[ProgressCallback]:
    """A live progress line on a terminal (a bar over the examples or the time budget);
    elsewhere a plain line every ten seconds."""
    out = sys.stderr if stream is None else stream
    started = time.monotonic()
    if not out.isatty():
        next_at = [PLAIN_EVERY_SECONDS]

        def plain(tally: Tally, divergences: int) -> None:
            elapsed = time.monotonic() - started
            if elapsed >= next_at[0]:
                next_at[0] = elapsed + PLAIN_EVERY_SECONDS
                print(
                    f"kafkaref conform: {tally.operations:,} operations, {tally.examples:,} "
                    f"examples, {divergences} divergences, {elapsed:,.0f} s elapsed",
                    file=out,
                    flush=True,
                )

        yield plain
        return
    columns = [
        SpinnerColumn(),
        TextColumn("conform"),
        BarColumn(),
        TextColumn(
            "{task.fields[operations]:,} operations · {task.fields[examples]:,} examples · "
            "{task.fields[divergences]} divergences ·"
        ),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(file=out), transient=True) as bar:
        total = float(examples) if examples is not None else budget_s
        task = bar.add_task("conform", total=total, operations=0, examples=0, divergences=0)

        def live(tally: Tally, divergences: int) -> None:
            done = tally.examples if examples is not None else time.monotonic() - started
            bar.update(
                task,
                completed=min(done, total or done),
                operations=tally.operations,
                examples=tally.examples,
                divergences=divergences,
            )

        yield live


# --- summary ---------------------------------------------------------------------------


def _answers(tally: Tally, rule: str) -> str:
    found = sorted(((n, a) for (r, a), n in tally.answers.items() if r == rule), reverse=True)
    return ", ".join(f"{a} {n}" for n, a in found)


def step_lines(steps: tuple[Step, ...] | list[Step], allowed: tuple[Observation, ...]) -> list[str]:
    """A trace as numbered lines; the last with what the spec allows, when given."""
    lines = []
    for i, s in enumerate(steps, 1):
        lines.append(f"{i:>3}. {s.op.describe()}")
        lines.append(f"       -> {s.observed.describe()}")
    if allowed:
        lines[-1] = f"       -> observed:   {steps[-1].observed.describe()}"
        for a in allowed:
            lines.append(f"          spec allows: {a.describe()}")
    return lines


def replay_files(first: Path, count: int) -> list[Path]:
    """Where the replay files of ``count`` divergences go: ``first``, then ``first`` with
    ``-2``, ``-3``, ... before its suffix (only ``--mock`` keeps several divergences)."""
    more = [first.with_name(f"{first.stem}-{i}{first.suffix}") for i in range(2, count + 1)]
    return [first, *more] if count else []


def replay_hint(d: Divergence, replay_file: Path | None, target_option: str) -> list[str]:
    """The commands that reproduce ``d``: its search by seed, its operations by file."""
    lines = [
        f"reproduce the search: kafkaref conform {target_option} "
        f"--seed {d.seed} --examples {d.examples}"
    ]
    if replay_file is not None:
        lines.append(
            f"replay the operations: kafkaref conform {target_option} --replay {replay_file}"
        )
    return lines


def print_summary(
    result: RunResult,
    console: Console,
    replay_file: Path | None = None,
    target_option: str | None = None,
) -> None:
    """The summary tables and the divergences, on ``console``; ``target_option`` is how
    the replay hints name the target (default ``--bootstrap`` and its address)."""
    target_option = target_option or f"--bootstrap {result.target}"
    tally = result.tally
    rules = Table(title="rules exercised", title_justify="left")
    rules.add_column("rule")
    rules.add_column("count", justify="right")
    rules.add_column("answers")
    for rule, n in sorted(tally.rules.items()):
        rules.add_row(rule, str(n), _answers(tally, rule))
    console.print(rules)
    features = Table(title="features", title_justify="left")
    features.add_column("feature")
    features.add_column("status")
    features.add_column("covers")
    for name, status in result.features.items():
        features.add_row(name, status, FEATURES[name])
    console.print(features)
    for note in result.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    verdict = "CONFORMANT" if result.conformant else f"{len(result.divergences)} DIVERGENCE"
    if result.protocol_errors:
        verdict += f", {len(result.protocol_errors)} PROTOCOL ERRORS"
    console.print(
        f"target {result.target} ({result.declaration.name}): {verdict} - "
        f"{tally.operations:,} operations in {tally.examples:,} examples, "
        f"{result.seconds:,.1f} s, seed {result.seed}",
        markup=False,
        highlight=False,
    )
    for e in result.protocol_errors:
        console.print(f"\nprotocol error: {e.describe()}", markup=False, highlight=False)
        if e.sample:
            console.print(f"  answer (hex): {e.sample}", markup=False, highlight=False)
    shrinking = f" in {result.shrink_replays} replays ({result.shrink_seconds:.1f} s)"
    if len(result.divergences) > 1:  # the replays are the run's, not each divergence's
        console.print(f"shrinking took{shrinking} in all", markup=False, highlight=False)
        shrinking = ""
    files = replay_files(replay_file, len(result.divergences)) if replay_file else []
    for i, d in enumerate(result.divergences):
        how = (
            f"found after {d.found_length} operations, shrunk to {len(d.steps)}{shrinking}"
            if d.reproduced
            else f"{len(d.steps)} operations; it did NOT diverge again when replayed"
        )
        console.print(
            f"\ndivergence in rule {d.rule}: {how}; topics named {d.namespace}<t>:",
            markup=False,
            highlight=False,
        )
        hint = replay_hint(d, files[i] if files else None, target_option)
        for line in step_lines(d.steps, d.allowed) + hint:
            console.print(line, markup=False, highlight=False)


# --- files -------------------------------------------------------------------------------


def divergence_json(d: Divergence) -> dict[str, Any]:
    return {
        "rule": d.rule,
        "seed": d.seed,
        "examples": d.examples,
        "namespace": d.namespace,
        "found_length": d.found_length,
        "reproduced": d.reproduced,
        "steps": [
            {
                "rule": s.rule,
                "operation": op_to_json(s.op),
                "observed": observation_to_json(s.observed),
            }
            for s in d.steps
        ],
        "observed": observation_to_json(d.steps[-1].observed),
        "allowed": [observation_to_json(a) for a in d.allowed],
        "operations": [op_to_json(op) for op in d.operations],
    }


def report_json(result: RunResult) -> dict[str, Any]:
    """The whole run as JSON (``--report``)."""
    tally = result.tally
    return {
        "target": result.target,
        "declaration": result.declaration.to_json(),
        "conformant": result.conformant,
        "seed": result.seed,
        "seconds": round(result.seconds, 3),
        "shrink_seconds": round(result.shrink_seconds, 3),
        "shrink_replays": result.shrink_replays,
        "operations": tally.operations,
        "examples": tally.examples,
        "api_versions": result.versions,
        "features": result.features,
        "notes": result.notes,
        "rules": {
            rule: {
                "count": n,
                "answers": {a: c for (r, a), c in sorted(tally.answers.items()) if r == rule},
            }
            for rule, n in sorted(tally.rules.items())
        },
        "divergences": [divergence_json(d) for d in result.divergences],
        "protocol_errors": [
            {"api": e.api, "versions": list(e.versions), "problem": e.problem, "sample": e.sample}
            for e in result.protocol_errors
        ],
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def junit_xml(result: RunResult) -> str:
    """JUnit XML: a test case per rule, per divergence (failed), per unsupported feature
    (skipped)."""
    suite = ElementTree.Element(
        "testsuite",
        name="kafkaref-conform",
        tests="0",
        failures=str(len(result.divergences) + len(result.protocol_errors)),
        skipped="0",
        time=f"{result.seconds:.3f}",
    )
    cases = 0
    skipped = 0
    for rule, n in sorted(result.tally.rules.items()):
        case = ElementTree.SubElement(suite, "testcase", classname="conform.rules", name=rule)
        ElementTree.SubElement(case, "system-out").text = f"{n} operations"
        cases += 1
    for i, d in enumerate(result.divergences, 1):
        case = ElementTree.SubElement(
            suite, "testcase", classname="conform.divergences", name=f"divergence-{i}"
        )
        failure = ElementTree.SubElement(
            case,
            "failure",
            message=f"{d.steps[-1].op.describe()}: observed {d.steps[-1].observed.describe()}",
        )
        failure.text = "\n".join(step_lines(d.steps, d.allowed))
        cases += 1
    for e in result.protocol_errors:
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname="conform.protocol",
            name=f"{e.api} " + ",".join(f"v{v}" for v in e.versions),
        )
        ElementTree.SubElement(case, "failure", message=e.describe()).text = e.sample
        cases += 1
    for name, status in result.features.items():
        if status != "checked":
            case = ElementTree.SubElement(
                suite, "testcase", classname="conform.features", name=name
            )
            ElementTree.SubElement(case, "skipped", message=status)
            cases += 1
            skipped += 1
    suite.set("tests", str(cases))
    suite.set("skipped", str(skipped))
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"
