"""Running a conformance check: Hypothesis search, then shrinking of what it found.

:func:`run_conformance` runs the state machine of ``harness.conform_machine`` against a
session's target for a number of examples (one Hypothesis run from one seed) or for a
time budget (consecutive runs of a few examples each, seeds counting up from the first).
It stops at the first divergence and shrinks it by replaying operations
(``harness.conform_shrink``), within a shrink budget of its own.

Hypothesis only generates here: its own shrinker works on its choice sequence, where
removing one rule shifts the meaning of every later choice (the enabled rules change),
while the operation-level shrinker keeps each operation's meaning.  No example database is
kept: a search is reproduced by its seed (``--seed S --examples N``) against a target
that answers the same way, a divergence exactly by its operations (``--replay``).
"""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

import attrs
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.stateful import run_state_machine_as_test

from harness.client import API_NAMES
from harness.conform_check import DivergenceError, Tally
from harness.conform_machine import ConformanceMachine
from harness.conform_session import Divergence, ProtocolError, Session
from harness.conform_shrink import Shrinker
from harness.conform_target import TargetDeclaration, feature_status

DEFAULT_STEPS = 30
DEFAULT_SHRINK_BUDGET_S = 30.0
BUDGET_BATCH = 5
"""Examples per Hypothesis run when the run is bounded by time."""


@attrs.define
class RunResult:
    """Everything the summary, the JSON report and the JUnit file show."""

    target: str
    declaration: TargetDeclaration
    features: dict[str, str]
    versions: dict[str, int]
    seed: int
    tally: Tally
    divergences: list[Divergence] = attrs.field(factory=list)
    seconds: float = 0.0
    shrink_replays: int = 0
    shrink_seconds: float = 0.0
    notes: list[str] = attrs.field(factory=list)
    protocol_errors: list[ProtocolError] = attrs.field(factory=list)
    """Wire-level breaches found before the search (``harness.conform_mock_wire``)."""

    @property
    def conformant(self) -> bool:
        return not self.divergences and not self.protocol_errors


def hypothesis_settings(examples: int, steps: int) -> settings:
    """Quiet, generation only, no example database, no deadline (the target's latency is
    not the spec's business)."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
    )


def find_divergence(error: BaseException) -> DivergenceError | None:
    """The DivergenceError inside what Hypothesis raised (it may wrap it)."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DivergenceError):
            return e
        if isinstance(e, BaseExceptionGroup):
            todo += list(e.exceptions)
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
    return None


@contextmanager
def seeded_generation_only() -> Iterator[None]:
    """Make the seed alone decide what Hypothesis generates, for the run's duration.

    Hypothesis also draws, now and then, literals it finds in the code loaded in the
    process ("local constants"), so the same seed generated different examples in
    ``kafkaref conform`` and in a test process that had loaded other modules.  Here its
    pool of local constants is empty (and its cache of them fresh) until the run ends.
    This reaches into Hypothesis's internals; if they change, generation still works,
    only the seed then reproduces a search in the same program only.
    """
    try:
        providers: Any = importlib.import_module("hypothesis.internal.conjecture.providers")
        constants_ast: Any = importlib.import_module("hypothesis.internal.constants_ast")
        floats: Any = importlib.import_module("hypothesis.internal.floats")
        sorted_set: Any = importlib.import_module("sortedcontainers").SortedSet
        empty = constants_ast.Constants(
            integers=sorted_set(),
            floats=sorted_set(key=floats.float_to_int),
            bytes=sorted_set(),
            strings=sorted_set(),
        )
        saved = (providers._get_local_constants, providers.CONSTANTS_CACHE)
        fresh_cache = type(providers.CONSTANTS_CACHE)(1024)
    except (ImportError, AttributeError, TypeError):
        yield
        return
    providers._get_local_constants = lambda: empty
    providers.CONSTANTS_CACHE = fresh_cache
    try:
        yield
    finally:
        providers._get_local_constants, providers.CONSTANTS_CACHE = saved


def run_examples(session: Session, examples: int, seed: int, steps: int) -> DivergenceError | None:
    """One Hypothesis run of ``examples`` examples from ``seed``; its divergence, if any."""

    # A session on a cluster the harness manages has its own machine (``machine_class``).
    machine: Any = getattr(session, "machine_class", ConformanceMachine)

    def factory() -> ConformanceMachine:
        made: ConformanceMachine = machine(session.new_example(), session.declaration)
        return made

    hypothesis_seed(seed)(factory)
    # Hypothesis takes any callable that makes a machine, though it is typed as a class.
    machines = cast(type[ConformanceMachine], factory)
    try:
        with seeded_generation_only():
            run_state_machine_as_test(machines, settings=hypothesis_settings(examples, steps))
    except Exception as e:
        found = find_divergence(e)
        if found is None:
            raise
        return found
    return None


def run_conformance(
    session: Session,
    *,
    examples: int | None = None,
    budget_s: float | None = None,
    seed: int | None = None,
    steps: int = DEFAULT_STEPS,
    shrink_budget_s: float = DEFAULT_SHRINK_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Check the target for ``examples`` examples, or until ``budget_s`` has passed."""
    if (examples is None) == (budget_s is None):
        raise ValueError("give either examples or a time budget")
    first = random.randrange(1 << 32) if seed is None else seed
    started = clock()
    client = session.client
    result = RunResult(
        target=f"{client.host}:{client.port}",
        declaration=session.declaration,
        features={
            **feature_status(session.declaration, client, session.can_restart),
            **getattr(session, "feature_overrides", {}),
        },
        versions={API_NAMES[k]: client.version(k) for k in sorted(API_NAMES) if client.offers(k)},
        seed=first,
        tally=session.tally,
        notes=list(session.notes),
        protocol_errors=list(session.protocol_errors),
    )
    batch_seed = first
    while True:
        if examples is not None:
            size = examples
        elif clock() - started < (budget_s or 0.0):
            size = BUDGET_BATCH
        else:
            break
        found = run_examples(session, size, batch_seed, steps)
        if found is not None:
            shrinking = clock()
            shrinker = Shrinker(session, shrink_budget_s, clock)
            result.divergences.append(shrinker.shrink(Divergence.of(found, batch_seed, size)))
            result.shrink_replays = shrinker.replays
            result.shrink_seconds = clock() - shrinking
            break
        if examples is not None:
            break
        batch_seed = (batch_seed + 1) % (1 << 32)
    result.seconds = clock() - started
    return result
