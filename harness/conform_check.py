"""One example's checked conversation with the target: perform, observe, judge, record.

An :class:`ExampleRun` pairs the example's executor (the target side) with its oracle
(the spec side).  :meth:`ExampleRun.perform` sends one operation, asks the oracle whether
the answer is one the spec allows, appends the step to the example's trace and raises
:class:`DivergenceError` when it is not, carrying the whole trace: after Hypothesis has
shrunk the example, that trace is the minimal reproduction the report shows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs

from harness import client_admin
from harness.client import ClientError
from harness.conform_exec import Executor
from harness.conform_ops import LOGICAL_TOPIC, CreateTopic, ErrorAnswer, Observation, Operation
from harness.conform_oracle import Oracle
from spec.errors import ErrorCode


@attrs.frozen(slots=True)
class Step:
    """One operation of a trace, the rule that chose it, and what the target answered."""

    rule: str
    op: Operation
    observed: Observation


class DivergenceError(AssertionError):
    """The target answered something the spec does not allow."""

    def __init__(
        self, steps: tuple[Step, ...], allowed: tuple[Observation, ...], namespace: str
    ) -> None:
        last = steps[-1]
        super().__init__(
            f"{last.op.describe()}: observed {last.observed.describe()}; the spec allows "
            + " | ".join(a.describe() for a in allowed)
        )
        self.steps = steps
        self.allowed = allowed
        self.namespace = namespace

    @property
    def observed(self) -> Observation:
        return self.steps[-1].observed


@attrs.define
class Tally:
    """What a run did: rules exercised and each rule's answers (by error name)."""

    rules: Counter[str] = attrs.field(factory=Counter)
    answers: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    operations: int = 0
    examples: int = 0

    def count(self, rule: str, observed: Observation) -> None:
        self.rules[rule] += 1
        self.operations += 1
        self.answers[(rule, answer_class(observed))] += 1


def answer_class(observed: Observation) -> str:
    """A short class of an answer for the tally: its error names, or its kind."""
    errors = sorted(
        {
            getattr(p.error, "name", str(p.error))
            for p in getattr(observed, "partitions", ())
            if hasattr(p, "error")
        }
    )
    if errors:
        return ",".join(errors)
    code = getattr(observed, "error", None)
    if code is not None:
        return str(getattr(code, "name", code))
    return type(observed).__name__


class ExampleRun:
    """One Hypothesis example: its executor, oracle and trace so far."""

    def __init__(
        self,
        executor: Executor,
        oracle: Oracle,
        tally: Tally,
        on_step: Callable[[], None] | None = None,
    ) -> None:
        self.executor = executor
        self.oracle = oracle
        executor.attach(oracle)
        self.tally = tally
        self.steps: list[Step] = []
        self._on_step = on_step

    def perform(self, rule: str, op: Operation) -> Observation:
        """Send ``op``; its answer if the spec allows it, else DivergenceError."""
        explicit: tuple[tuple[int, ...], ...] = ()
        if isinstance(op, CreateTopic) and op.explicit:
            explicit = self.oracle.explicit_assignment(op)
        observed = self.executor.run(op, explicit)
        self.tally.count(rule, observed)
        self.steps.append(Step(rule, op, observed))
        self.oracle.timing = self.executor.timing  # the model's clock follows the harness's
        verdict = self.oracle.check(op, observed, self.executor.producer_ids)
        if self._on_step is not None:
            self._on_step()
        if not verdict.ok:
            raise DivergenceError(tuple(self.steps), verdict.allowed, self.executor.namespace)
        return observed

    def cleanup(self) -> None:
        """Delete the topics this example created on the target (best effort: a target
        that refuses, or a closed connection, leaves them); close the group members'
        connections."""
        self.executor.close_groups()
        names = [
            self.executor.topic(s.op.topic)
            for s in self.steps
            if isinstance(s.op, CreateTopic)
            and LOGICAL_TOPIC.fullmatch(s.op.topic)
            and s.observed == ErrorAnswer(ErrorCode.NONE)
        ]
        client = self.executor.client
        if not names or not client.connected:
            return
        try:
            client_admin.delete_topics(client, names)
        except (ClientError, OSError):
            client.close()
