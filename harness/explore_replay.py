"""Replaying an explorer trace step by step, to see what each step told producers.

The explorer takes the forced steps right after each step (``spec.explorer.settle``):
it answers every delayed acks=all produce that can succeed, so an acknowledgement never
appears as a step of its own.  Replaying the trace the same way (the set-up steps
plainly, then each step followed by ``settle``) shows after which step each produce was
answered, and how.
"""

from __future__ import annotations

import attrs

from spec.actions import Action
from spec.cluster import step
from spec.errors import ErrorCode
from spec.explorer import settle
from spec.outcome import Ok
from spec.produce import ProduceResponse
from spec.state import AckedRecord, ClusterState


@attrs.frozen(slots=True)
class ReplayedStep:
    """One step of a trace: the action, the acks=all acknowledgements it led to (records
    newly acknowledged), the error answers it gave to delayed produces, and the state after
    it."""

    action: Action
    acknowledged: tuple[AckedRecord, ...]
    errors: tuple[ErrorCode, ...]
    state: ClusterState


@attrs.frozen(slots=True)
class Replay:
    """The replayed steps; ``diverged`` names the step the model rejected, if any (which
    would mean the trace and the model disagree, and the replay stops there)."""

    steps: tuple[ReplayedStep, ...]
    diverged: str | None = None


def replay(start: ClusterState, trace: tuple[Action, ...], setup: int) -> Replay:
    """Replay ``trace`` from ``start``; its first ``setup`` actions build the explorer's
    start state and are applied without answering produces."""
    s = start
    steps: list[ReplayedStep] = []
    for i, action in enumerate(trace):
        out = step(s, action)
        if not isinstance(out, Ok):
            return Replay(tuple(steps), f"step {i + 1} ({action.describe()}): {out.error.name}")
        after = out.state
        errors: tuple[ErrorCode, ...] = ()
        if isinstance(out.reply, ProduceResponse) and out.reply.error != ErrorCode.NONE:
            errors = (out.reply.error,)
        if i >= setup:
            after = settle(after)
        new = sorted(after.acked - s.acked, key=lambda a: (a.tp, a.offset))
        steps.append(ReplayedStep(action, tuple(new), errors, after))
        s = after
    return Replay(tuple(steps))
