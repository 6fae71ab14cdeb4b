"""The search for ``--mock``: every distinct divergence, not only the first.

``harness.conform_run`` stops at the first divergence: against a broker that is meant to
be Kafka, one finding is news enough.  librdkafka's mock cluster diverges within the first
few operations of almost every example (it answers acks=0 requests, accepts acks=2, ...),
so a search that stopped there would only ever show those.  This one goes on: after each
divergence the next Hypothesis run starts from the next seed, until the examples or the
time budget are spent, and each divergence of a new kind is shrunk and kept (unless it
shrinks to a kind already kept: an acks=0 produce answered after the topic was created
may shrink to one without the topic).  A kind is
what the operation was, the class of answer observed and the classes of answer the spec
allowed (``t0-0 NONE`` where INVALID_REQUIRED_ACKS was due is one kind; where
CORRUPT_MESSAGE was due, another).  A divergence of a kind already kept is counted, not
shrunk again.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

from hypothesis.errors import Flaky

from harness.client import API_NAMES
from harness.conform_check import DivergenceError, answer_class
from harness.conform_run import (
    BUDGET_BATCH,
    DEFAULT_SHRINK_BUDGET_S,
    DEFAULT_STEPS,
    RunResult,
    run_examples,
)
from harness.conform_session import Divergence, Session
from harness.conform_shrink import Shrinker
from harness.conform_target import feature_status

Kind = tuple[str, str, tuple[str, ...]]


def kind(found: DivergenceError | Divergence) -> Kind:
    """The operation's type, the observed answer's class, the allowed answers' classes."""
    last = found.steps[-1]
    allowed = tuple(sorted({answer_class(a) for a in found.allowed}))
    return type(last.op).__name__, answer_class(last.observed), allowed


def search_distinct(
    session: Session,
    *,
    examples: int | None = None,
    budget_s: float | None = None,
    seed: int | None = None,
    steps: int = DEFAULT_STEPS,
    shrink_budget_s: float = DEFAULT_SHRINK_BUDGET_S,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Run ``examples`` examples, or until ``budget_s`` has passed, keeping one shrunk
    divergence per kind (``RunResult.notes`` counts how often each kind was met)."""
    if (examples is None) == (budget_s is None):
        raise ValueError("give either examples or a time budget")
    first = random.randrange(1 << 32) if seed is None else seed
    started = clock()
    client = session.client
    result = RunResult(
        target=f"{client.host}:{client.port}",
        declaration=session.declaration,
        features=feature_status(session.declaration, client, session.can_restart),
        versions={API_NAMES[k]: client.version(k) for k in sorted(API_NAMES) if client.offers(k)},
        seed=first,
        tally=session.tally,
        notes=list(session.notes),
        protocol_errors=list(session.protocol_errors),
    )
    met: Counter[Kind] = Counter()
    tried: set[Kind] = set()
    kept: set[Kind] = set()
    flaky: list[str] = []
    batch_seed = first
    done_before = session.tally.examples
    while True:
        if examples is not None:
            size = min(BUDGET_BATCH, examples - (session.tally.examples - done_before))
            if size <= 0:
                break
        elif clock() - started < (budget_s or 0.0):
            size = BUDGET_BATCH
        else:
            break
        try:
            found = run_examples(session, size, batch_seed, steps)
        except Flaky as e:
            # The target answered a re-run of an example differently (Hypothesis re-runs
            # the failing one): a nondeterministic target, noted and passed over.
            flaky.append(f"seed {batch_seed}: {type(e).__name__}")
            found = None
        batch_seed = (batch_seed + 1) % (1 << 32)
        if found is None:
            continue
        met[kind(found)] += 1
        if kind(found) in tried:
            continue
        tried.add(kind(found))
        shrinking = clock()
        shrinker = Shrinker(session, shrink_budget_s, clock)
        shrunk = shrinker.shrink(Divergence.of(found, (batch_seed - 1) % (1 << 32), size))
        result.shrink_replays += shrinker.replays
        result.shrink_seconds += clock() - shrinking
        if kind(shrunk) not in kept:  # shrinking may lead to a kind already kept
            kept.add(kind(shrunk))
            result.divergences.append(shrunk)
    result.seconds = clock() - started
    if met:
        result.notes.append(
            "divergences of each kind met (kept once, shrunk): "
            + "; ".join(f"{op} {obs} where {'|'.join(ok)}: {n}" for (op, obs, ok), n in met.items())
        )
    if flaky:
        result.notes.append(
            f"{len(flaky)} Hypothesis runs were passed over because the target answered a "
            f"re-run of an example differently ({', '.join(flaky[:5])})"
        )
    return result
