"""CrossHair catches deliberately wrong spec functions, and passes their correct twins.

The CI stage (``.ci/crosshair.sh``) shows that CrossHair finds no counterexample to the
spec's contracts.  That means something only if CrossHair, with these settings, finds
one when there is one.  So this runs ``crosshair check`` on the mutants of
``tests/spec/crosshair_mutants.py`` and expects a counterexample for each:

* a log append that leaves a gap before the new record;
* a truncation that keeps an empty epoch's cache entry at the LEO (truncation by leader
  epoch then looped forever);
* retention that moves the log start offset past the LEO;
* a truncation offset beyond the follower's LEO, and truncation to the high watermark
  (Kafka before KIP-101);
* the unclean-leader-election and hw-advance-without-isr variants of the model;
* ``abs`` for Kafka's ``toPositive``, and a sticky partitioner that sticks.

It runs the correct twins and the CI drivers too, and expects no counterexample there.

Each mutant is refuted within a few seconds of CPU (CrossHair's search is seeded, so the
same paths come first every time); the per-condition timeouts are caps, and the twins'
short one bounds the run.  The two CrossHair runs go in parallel.
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spec import partitioner
from spec.log import Log
from spec.replication import truncation_offset
from tests.spec import crosshair_drivers, crosshair_mutants
from tests.spec.crosshair_drivers import contract

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / ".ci" / "crosshair_plugin.py"

# CPU seconds per condition.  A mutant is refuted long before its cap; a twin uses all of
# its budget (CrossHair cannot exhaust these paths), so it is kept short.
MUTANT_TIMEOUT = 30
TWIN_TIMEOUT = 2
WALL_TIMEOUT = 240

# What CrossHair must refute, and what it must not.  The drivers evaluate the contract
# of the spec function they call; the others carry lines of one (SPEC_OF).
MUTANTS: list[Callable[..., Any]] = [
    crosshair_mutants.append_with_gap,
    crosshair_mutants.truncate_to_keeping_empty_epoch,
    crosshair_mutants.delete_prefix_past_leo,
    crosshair_mutants.truncation_offset_unclipped,
    crosshair_mutants.follower_behind_truncating_to_high_watermark,
    crosshair_mutants.elect_leader_unclean_variant,
    crosshair_mutants.advance_hw_without_isr_variant,
    crosshair_mutants.to_positive_abs,
    crosshair_mutants.sticky_choices_keeping_old,
]
TWINS: list[Callable[..., Any]] = [
    crosshair_mutants.append_twin,
    crosshair_mutants.truncate_to_twin,
    crosshair_mutants.delete_prefix_twin,
    crosshair_mutants.truncation_offset_twin,
    crosshair_drivers.follower_behind,
    crosshair_drivers.elect_leader,
    crosshair_drivers.advance_hw,
    crosshair_mutants.to_positive_twin,
    crosshair_mutants.sticky_choices_twin,
]
# A mutant or twin -> the spec function whose contract lines it carries.
SPEC_OF: dict[Callable[..., Any], Callable[..., Any]] = {
    crosshair_mutants.append_with_gap: Log.append,
    crosshair_mutants.append_twin: Log.append,
    crosshair_mutants.truncate_to_keeping_empty_epoch: Log.truncate_to,
    crosshair_mutants.truncate_to_twin: Log.truncate_to,
    crosshair_mutants.delete_prefix_past_leo: Log.delete_prefix,
    crosshair_mutants.delete_prefix_twin: Log.delete_prefix,
    crosshair_mutants.truncation_offset_unclipped: truncation_offset,
    crosshair_mutants.truncation_offset_to_high_watermark: truncation_offset,
    crosshair_mutants.truncation_offset_twin: truncation_offset,
    crosshair_mutants.to_positive_abs: partitioner.to_positive,
    crosshair_mutants.to_positive_twin: partitioner.to_positive,
    crosshair_mutants.sticky_choices_keeping_old: partitioner.Sticky.choices,
    crosshair_mutants.sticky_choices_twin: partitioner.Sticky.choices,
}

_ERROR = re.compile(r"^(?P<file>.+?):(?P<line>\d+): error: (?P<message>.*)$")


def _target(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _crosshair(targets: list[Callable[..., Any]], per_condition: float) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "crosshair",
        "check",
        "--analysis_kind=PEP316",
        f"--per_condition_timeout={per_condition}",
        f"--extra_plugin={PLUGIN}",  # one value: the option takes several
        *map(_target, targets),
    ]
    return subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


class Run:
    """A finished ``crosshair check``: its exit status, output, and errors per function."""

    def __init__(self, proc: subprocess.Popen[str], targets: list[Callable[..., Any]]) -> None:
        try:
            self.output, _ = proc.communicate(timeout=WALL_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            pytest.fail(f"crosshair check did not finish within {WALL_TIMEOUT}s")
        self.returncode = proc.returncode
        self.errors: dict[Callable[..., Any], list[str]] = {fn: [] for fn in targets}
        self.stray: list[str] = []
        for line in self.output.splitlines():
            m = _ERROR.match(line)
            if not m:
                continue
            owner = next((fn for fn in targets if _owns(fn, m["file"], int(m["line"]))), None)
            if owner is None:
                self.stray.append(line)
            else:
                self.errors[owner].append(m["message"])


def _owns(fn: Callable[..., Any], file: str, line: int) -> bool:
    """Whether ``file:line`` (where CrossHair reports a counterexample: a contract line or
    the function) lies in ``fn``'s source."""
    if Path(file).resolve() != Path(inspect.getsourcefile(fn) or "").resolve():
        return False
    lines, first = inspect.getsourcelines(fn)
    return first <= line < first + len(lines)


@pytest.fixture(scope="module")
def runs() -> Iterator[tuple[Run, Run]]:
    mutant_proc = _crosshair(MUTANTS, MUTANT_TIMEOUT)
    twin_proc = _crosshair(TWINS, TWIN_TIMEOUT)
    yield Run(mutant_proc, MUTANTS), Run(twin_proc, TWINS)


def _spec_lines(fn: Callable[..., Any]) -> set[str]:
    pre, post = contract(fn)
    return {f"pre: {src}" for src, _ in pre} | {f"post: {src}" for src, _ in post}


@pytest.mark.parametrize("fn", list(SPEC_OF), ids=lambda fn: fn.__name__)
def test_contract_lines_are_the_specs(fn: Callable[..., Any]) -> None:
    """A mutant or twin of a spec function is held to lines of that function's own
    contract, not to a contract of its own."""
    lines = _spec_lines(fn)
    assert any(line.startswith("post: ") for line in lines)
    assert lines <= _spec_lines(SPEC_OF[fn]), lines - _spec_lines(SPEC_OF[fn])


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda fn: fn.__name__)
def test_crosshair_finds_the_mutant(runs: tuple[Run, Run], mutant: Callable[..., Any]) -> None:
    run, _ = runs
    assert run.errors[mutant], f"no counterexample for {mutant.__name__}:\n{run.output}"
    assert run.returncode == 1, run.output


def test_no_counterexample_in_the_twins(runs: tuple[Run, Run]) -> None:
    _, run = runs
    found = {fn.__name__: errs for fn, errs in run.errors.items() if errs}
    assert not found and not run.stray, run.output
    assert run.returncode == 0, run.output
