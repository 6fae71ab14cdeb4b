"""The garbage-collector policy for long explorations.

The explorer keeps every state it has seen, and none of them form reference cycles, yet
CPython's cyclic collector keeps re-walking that growing heap: about a third of a long
run's time.  While a search runs, objects that exist already are frozen out of the
collector's view and its young generation is made far larger; the old settings come back
afterwards.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_GENERATION = 100_000


@contextmanager
def search_gc() -> Iterator[None]:
    """Collect rarely while the block runs (a search that keeps what it allocates)."""
    before = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
