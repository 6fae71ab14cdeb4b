"""Progress of a running exploration, on stderr.

On a terminal: one live rich status line (states explored, depth, states per second,
elapsed time; a bar when ``--max-states`` bounds the run) that disappears when the
exploration ends.  Anywhere else (a CI log, a pipe): a plain line every ten seconds, so
logs show the run is alive without filling up.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

ProgressCallback = Callable[[int, int, float], None]
"""``(states, depth, seconds)``, as ``spec.explorer.explore`` reports progress."""

PLAIN_EVERY_SECONDS = 10.0


class PlainProgress:
    """A plain progress line every ``every`` seconds of exploration."""

    def __init__(self, stream: TextIO, every: float = PLAIN_EVERY_SECONDS) -> None:
        self._stream = stream
        self._every = every
        self._next = every

    def __call__(self, states: int, depth: int, seconds: float) -> None:
        if seconds < self._next:
            return
        self._next = seconds + self._every
        rate = states / seconds if seconds > 0 else float(states)
        print(
            f"kafkaref explore: {states:,} states explored, depth {depth}, "
            f"{rate:,.0f} states/s, {seconds:,.0f} s elapsed",
            file=self._stream,
            flush=True,
        )


@contextmanager
def progress_display(
    max_states: int | None = None, stream: TextIO | None = None
) -> Iterator[ProgressCallback]:
    """A progress callback for ``explore``: live on a terminal, plain lines elsewhere."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        yield PlainProgress(out)
        return
    columns: list[ProgressColumn] = [SpinnerColumn(), TextColumn("exploring")]
    if max_states is not None:
        columns += [BarColumn(), TaskProgressColumn()]
    columns += [
        TextColumn(
            "{task.completed:,.0f} states explored · depth {task.fields[depth]} · "
            "{task.fields[rate]:,.0f} states/s ·"
        ),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(file=out), transient=True) as bar:
        task = bar.add_task("explore", total=max_states, depth=0, rate=0.0)

        def update(states: int, depth: int, seconds: float) -> None:
            rate = states / seconds if seconds > 0 else float(states)
            bar.update(task, completed=states, depth=depth, rate=rate)

        yield update
