"""What a transition returns: the next state and what the caller observes, or a rejection.

``Ok`` carries the next state and the reply the client sees (an offset, a high watermark,
records...).  ``Rejected`` carries the state after the rejection (almost always unchanged)
and the Kafka error the client sees.  A transition never raises for an action that is
invalid in the state: it returns ``Rejected``.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

from spec.errors import ErrorCode

S = TypeVar("S")
R = TypeVar("R")


@attrs.frozen(slots=True)
class Ok(Generic[S, R]):
    """The action took effect; ``reply`` is what the caller observes."""

    state: S
    reply: R

    @property
    def error(self) -> ErrorCode:
        return ErrorCode.NONE


@attrs.frozen(slots=True)
class Rejected(Generic[S]):
    """The action was refused with Kafka's ``error``; ``state`` is the state afterwards."""

    state: S
    error: ErrorCode


Outcome = Ok[S, R] | Rejected[S]


def rejected(state: S, error: ErrorCode) -> Rejected[S]:
    """Shorthand for a rejection that leaves ``state`` unchanged."""
    return Rejected(state, error)
