"""``kafkaref explore``: the exhaustive explorer of the specification, from the command line.

This module owns the command's options, their validation and its exit status: 0 when no
invariant fails, 1 when one does (with the shortest trace), 2 for bad arguments, 130 when
interrupted.  The search is ``spec.explorer.explore``; progress display and the report
live in their own modules.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import typer

from harness.explore_gc import search_gc
from harness.explore_parallel import explore_parallel
from harness.explore_progress import progress_display
from harness.explore_report import report_lines
from spec.explorer import Bounds, explore, start_state
from spec.variants import Variant

EXIT_OK = 0
EXIT_VIOLATION = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_DEFAULT = Bounds()
_VARIANT_NAMES = ", ".join(v.value for v in Variant)
_VARIANT_LINES = "\n".join(f"  {v.value}" for v in Variant)

HELP = f"""Explore every reachable state of a small cluster and check every invariant in each.

Breadth-first, the way TLC explores a TLA+ model: from a cluster with one topic whose
replicas have taken up their roles, it interleaves acks=all produces, broker crashes and
restarts and every action of brokers and controller, so the first violation found has a
shortest trace.

Exit status: 0 when every invariant holds in every reachable state, 1 when one fails (the
shortest trace and the final state are printed), 2 for bad arguments.

\b
Known-bad variants of the model, each for an invariant to catch (--variant):
{_VARIANT_LINES}
"""

SHORT_HELP = "Exhaustively explore the model's reachable states and check every invariant."


def register(app: typer.Typer) -> None:
    """Add the ``explore`` command to the ``kafkaref`` app."""
    app.command("explore", help=HELP, short_help=SHORT_HELP)(explore_command)


def explore_command(
    *,
    brokers: Annotated[
        int, typer.Option(min=1, metavar="N", help="Number of brokers in the cluster.")
    ] = _DEFAULT.brokers,
    partitions: Annotated[
        int, typer.Option(min=1, metavar="N", help="Number of partitions of the one topic.")
    ] = _DEFAULT.partitions,
    records: Annotated[
        int,
        typer.Option(
            min=0, metavar="N", help="Number of records produced (acks=all), each a new value."
        ),
    ] = _DEFAULT.records,
    crashes: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            help="Number of faults: broker crashes (and, when enabled, session expiries "
            "and power losses). Restarts are free.",
        ),
    ] = _DEFAULT.crashes,
    variant: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Switch on a known-bad variant of the model (names above); repeatable.",
            show_default=False,
        ),
    ] = None,
    min_insync_replicas: Annotated[
        int, typer.Option(min=1, metavar="N", help="min.insync.replicas of the topic.")
    ] = _DEFAULT.min_insync_replicas,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            min=1, metavar="N", help="Replication factor of the topic.  Default: --brokers."
        ),
    ] = _DEFAULT.replication_factor,
    session_expiry: Annotated[
        bool,
        typer.Option(
            "--session-expiry", help="Also explore ZooKeeper session expiries (as faults)."
        ),
    ] = _DEFAULT.session_expiry,
    lose_unflushed: Annotated[
        bool,
        typer.Option(
            "--lose-unflushed",
            help="Also explore crashes that lose unflushed log data (power loss), and flushes.",
        ),
    ] = _DEFAULT.lose_unflushed,
    unclean_leader_election: Annotated[
        bool,
        typer.Option(
            "--unclean-leader-election",
            help="Set unclean.leader.election.enable=true (Kafka's own setting, which "
            "trades acknowledged records for availability).",
        ),
    ] = _DEFAULT.unclean_leader_election_enable,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            help="Worker processes sharing the search (1: the spec's own serial explorer). "
            "Default: the number of CPUs.",
        ),
    ] = os.cpu_count() or 1,
    max_states: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Stop after this many states.  The exploration is then not exhaustive.",
        ),
    ] = None,
) -> None:
    bounds = Bounds(
        brokers=brokers,
        partitions=partitions,
        records=records,
        crashes=crashes,
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
        session_expiry=session_expiry,
        lose_unflushed=lose_unflushed,
        unclean_leader_election_enable=unclean_leader_election,
        variants=parse_variants(variant or []),
    )
    check_bounds(bounds)
    for note in notes(bounds):
        typer.echo(f"note: {note}", err=True)
    try:
        with search_gc(), progress_display(max_states) as progress:
            if workers == 1:
                result = explore(
                    bounds, progress=progress, max_states=max_states, clock=time.monotonic
                )
            else:
                par = explore_parallel(
                    bounds,
                    workers=workers,
                    progress=progress,
                    max_states=max_states,
                    clock=time.monotonic,
                )
                result = par.result
                typer.echo(
                    f"{workers} workers; chance that a fingerprint collision hid a state: "
                    f"{par.collision_probability:.1e}",
                    err=True,
                )
    except KeyboardInterrupt:
        typer.echo("kafkaref explore: interrupted; no verdict.", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    typer.echo("\n".join(report_lines(bounds, result, max_states)))
    raise typer.Exit(EXIT_OK if result.violation is None else EXIT_VIOLATION)


def parse_variants(names: list[str]) -> frozenset[Variant]:
    """The variants named, or a usage error listing the valid names."""
    found = set()
    for name in names:
        try:
            found.add(Variant(name))
        except ValueError:
            raise typer.BadParameter(
                f"unknown variant {name!r}. The known-bad variants are: {_VARIANT_NAMES}.",
                param_hint="'--variant'",
            ) from None
    return frozenset(found)


def check_bounds(bounds: Bounds) -> None:
    """Reject combinations the explorer cannot start from, with a usage error."""
    rf = bounds.replication_factor
    if rf is not None and rf > bounds.brokers:
        raise typer.BadParameter(
            f"replication factor {rf} is larger than the number of brokers "
            f"({bounds.brokers}); Kafka refuses such a topic (INVALID_REPLICATION_FACTOR).",
            param_hint="'--replication-factor'",
        )
    try:
        start_state(bounds)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def notes(bounds: Bounds) -> list[str]:
    """Legal but probably unintended settings, worth a word before a long run."""
    out = []
    rf = bounds.replication_factor or bounds.brokers
    if bounds.min_insync_replicas > rf:
        out.append(
            f"min.insync.replicas {bounds.min_insync_replicas} is larger than the replication "
            f"factor {rf}: every acks=all produce is refused with NOT_ENOUGH_REPLICAS."
        )
    if bounds.crashes == 0 and bounds.session_expiry:
        out.append("--session-expiry has no effect with --crashes 0 (an expiry is a fault).")
    if bounds.crashes == 0 and bounds.lose_unflushed:
        out.append("--lose-unflushed loses nothing with --crashes 0 (a power loss is a fault).")
    if bounds.records == 0:
        out.append("--records 0: nothing is produced, so no acknowledged record can be lost.")
    return out
