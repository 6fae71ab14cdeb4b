"""``kafkaref conform``: hold a Kafka cluster to the spec, from the command line.

This module owns the command's options and exit status: 0 when the target conforms, 1
when it diverges (each divergence shrunk to a minimal list of operations), 2 when the
check could not run (nothing listening, a bad declaration, a harness failure), 130 when
interrupted.  The run itself is ``harness.conform_run``; what it prints and writes is
``harness.conform_report``.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from harness.conform_cluster import DEFAULT_BROKERS, local_cluster_session, mutant_needs
from harness.conform_faults import ProcessControl
from harness.conform_mock import mock_target
from harness.conform_mock_search import search_distinct
from harness.conform_ops import Operation, op_from_json
from harness.conform_oracle import OracleError
from harness.conform_report import (
    divergence_json,
    junit_xml,
    print_summary,
    progress_display,
    replay_files,
    report_json,
    step_lines,
    write_json,
)
from harness.conform_run import DEFAULT_SHRINK_BUDGET_S, DEFAULT_STEPS, run_conformance
from harness.conform_session import Session, TargetUnavailableError, open_session, replay
from harness.conform_target import LOCAL, LOCAL_BROKER_CONFIG, TargetDeclaration
from harness.launcher import BrokerStartError, start_broker

EXIT_CONFORMANT = 0
EXIT_DIVERGENT = 1
EXIT_NOT_RUN = 2
EXIT_INTERRUPTED = 130
DEFAULT_BUDGET_S = 60.0
DEFAULT_REPLAY_FILE = Path("kafkaref-conform-replay.json")
MUTANT_PROPERTY = "kafkaref.mutant"
"""The broker property that switches on a seeded defect (the registry is the broker's:
``python -m impl.broker --list-mutants``; the harness only passes the name on)."""

HELP = """Check a Kafka cluster against the specification, through the wire protocol only.

A Hypothesis state machine whose model is the spec drives the target: create topics,
produce (random keys and values, acks 0/1/all, idempotent or not, keyed records through
the default partitioner), fetch (also out of range), list offsets, metadata, and consumer
groups (join, sync, heartbeat, leave, commit and fetch offsets; members' parked requests
answered when the spec says).  After every operation the answer must be one the spec
allows from the model's state.  A divergence is
shrunk to a minimal list of operations, printed with what the spec allows, and written to
a replay file (--replay-file) that --replay performs again.

The target is --bootstrap HOST:PORT (any Kafka-protocol cluster), or --local: a kafkaref
broker this command starts and stops (and restarts, to check recovery); --mutant NAME
starts it with a seeded defect, which the check must find (python -m impl.broker
--list-mutants lists them).  --local --brokers N starts N brokers on a local ZooKeeper
and checks the replicated cluster while killing, restarting, pausing and resuming
brokers (a --mutant that needs a cluster starts three by itself).  --mock checks
librdkafka's mock cluster (from the
confluent-kafka wheel, started in this process): topics are created out of band through
its C API, a wire check first reports every API version whose answers break the
protocol and pins the versions that decode, and the search goes on after a divergence
(one shrunk reproduction per kind of divergence).  --target FILE.json declares what the
target offers (see docs/harness.md); features it declares unsupported are reported, not
failed.

Exit status: 0 conformant, 1 divergences found, 2 could not run.
"""

SHORT_HELP = "Check any Kafka cluster against the spec (model-based, Hypothesis)."


def register(app: typer.Typer) -> None:
    """Add the ``conform`` command to the ``kafkaref`` app."""
    app.command("conform", help=HELP, short_help=SHORT_HELP)(conform_command)


def parse_bootstrap(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT, got {value!r}", param_hint="'--bootstrap'")
    return host.strip("[]"), int(port)


def load_operations(path: Path) -> list[Operation]:
    """Operations from a replay file, a JSON report (its first divergence) or a list."""
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(data, dict) and "divergences" in data:
        if not data["divergences"]:
            raise ValueError(f"{path} is a report without divergences")
        data = data["divergences"][0]
    if isinstance(data, dict):
        data = data["operations"]
    return [op_from_json(op) for op in data]


@contextmanager
def _target(
    bootstrap: str | None,
    local: bool,
    declaration: TargetDeclaration | None,
    mutant: str | None = None,
    mock: bool = False,
    *,
    brokers: int | None = None,
) -> Iterator[Session]:
    if mock:
        with mock_target(declaration) as session:
            yield session
        return
    if local and brokers is not None and brokers > 1:
        with local_cluster_session(declaration, brokers, mutant) as cluster_session:
            yield cluster_session
        return
    declaration = declaration or (LOCAL if local else TargetDeclaration())
    if local:
        config: dict[str, object] = dict(LOCAL_BROKER_CONFIG)
        if mutant:
            config[MUTANT_PROPERTY] = mutant
        try:
            broker = start_broker(config=config)
        except BrokerStartError as e:
            raise TargetUnavailableError(f"cannot start the local broker: {e}") from e
        with broker:
            session = open_session(broker.host, broker.port, declaration)
            session.control = ProcessControl({broker.broker_id: broker})
            try:
                yield session
            finally:
                session.close()
        return
    assert bootstrap is not None
    host, port = parse_bootstrap(bootstrap)
    session = open_session(host, port, declaration)
    try:
        yield session
    finally:
        session.close()


def conform_command(
    *,
    bootstrap: Annotated[
        str | None, typer.Option(metavar="HOST:PORT", help="A broker of the cluster to check.")
    ] = None,
    local: Annotated[
        bool, typer.Option("--local", help="Start a local kafkaref broker and check it.")
    ] = False,
    mock: Annotated[
        bool,
        typer.Option(
            "--mock", help="Start librdkafka's mock cluster (confluent-kafka) and check it."
        ),
    ] = False,
    budget: Annotated[
        float | None,
        typer.Option(
            min=0.0, metavar="SECONDS", help=f"Run this long (default {DEFAULT_BUDGET_S:.0f} s)."
        ),
    ] = None,
    examples: Annotated[
        int | None, typer.Option(min=1, metavar="N", help="Run exactly N examples instead.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, metavar="N", help="Seed of the first example run.")
    ] = None,
    steps: Annotated[
        int, typer.Option(min=1, metavar="N", help="At most N operations per example.")
    ] = DEFAULT_STEPS,
    shrink_budget: Annotated[
        float,
        typer.Option(min=0.0, metavar="SECONDS", help="Time to spend shrinking a divergence."),
    ] = DEFAULT_SHRINK_BUDGET_S,
    target: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.json",
            help="The target's declaration (default: Kafka's defaults, every feature).",
        ),
    ] = None,
    report: Annotated[
        Path | None, typer.Option(metavar="FILE.json", help="Write the whole run as JSON.")
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(metavar="FILE.xml", help="Write JUnit XML for CI.")
    ] = None,
    replay_file: Annotated[
        Path,
        typer.Option(metavar="FILE.json", help="Where a divergence's operations are written."),
    ] = DEFAULT_REPLAY_FILE,
    replay_ops: Annotated[
        Path | None,
        typer.Option(
            "--replay",
            metavar="FILE.json",
            help="Perform the operations of a replay file (or a report's first divergence) "
            "once, checked, instead of searching.",
        ),
    ] = None,
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="With --local: start N brokers on a local ZooKeeper and check the replicated "
            "cluster (kills, restarts, pauses); automatic for a --mutant that needs a cluster.",
            show_default=False,
        ),
    ] = None,
    mutant: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="With --local: start the broker with this seeded defect switched on "
            "(python -m impl.broker --list-mutants); the check should exit 1.",
            show_default=False,
        ),
    ] = None,
) -> None:
    if [local, mock, bootstrap is not None].count(True) != 1:
        raise typer.BadParameter("give one of --bootstrap HOST:PORT, --local or --mock")
    if mutant is not None and not local:
        raise typer.BadParameter("--mutant needs --local (the harness starts that broker)")
    if brokers is not None and not local:
        raise typer.BadParameter("--brokers needs --local (the harness starts that cluster)")
    if local and brokers is None and mutant is not None and mutant_needs(mutant) == "cluster":
        brokers = DEFAULT_BROKERS  # the defect only shows on a replicated cluster
    if budget is not None and examples is not None:
        raise typer.BadParameter("give --budget or --examples, not both")
    console = Console()
    try:
        declaration = None if target is None else TargetDeclaration.load(target)
        operations = load_operations(replay_ops) if replay_ops is not None else None
    except (OSError, ValueError, KeyError, TypeError) as e:
        typer.echo(f"kafkaref conform: {e}", err=True)
        raise typer.Exit(EXIT_NOT_RUN) from None
    try:
        with _target(bootstrap, local, declaration, mutant, mock, brokers=brokers) as session:
            if operations is not None:
                raise typer.Exit(_replay(session, operations, console))
            if examples is None and budget is None:
                budget = DEFAULT_BUDGET_S
            with progress_display(examples, budget) as progress:
                session.on_step = lambda: progress(session.tally, 0)
                search = search_distinct if mock else run_conformance
                result = search(
                    session,
                    examples=examples,
                    budget_s=budget,
                    seed=seed,
                    steps=steps,
                    shrink_budget_s=shrink_budget,
                )
    except TargetUnavailableError as e:
        typer.echo(f"kafkaref conform: could not run: {e}", err=True)
        raise typer.Exit(EXIT_NOT_RUN) from None
    except OracleError as e:
        typer.echo(f"kafkaref conform: the model could not follow the target: {e}", err=True)
        raise typer.Exit(EXIT_NOT_RUN) from None
    except KeyboardInterrupt:
        typer.echo("kafkaref conform: interrupted; no verdict.", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except typer.Exit:
        raise
    except Exception:
        typer.echo(f"kafkaref conform: harness failure:\n{traceback.format_exc()}", err=True)
        raise typer.Exit(EXIT_NOT_RUN) from None
    for path, d in zip(
        replay_files(replay_file, len(result.divergences)), result.divergences, strict=True
    ):
        write_json(path, divergence_json(d))
    target_option = f"--bootstrap {bootstrap}"
    if local:
        target_option = f"--local --mutant {mutant}" if mutant else "--local"
        if brokers is not None and brokers > 1:
            target_option += f" --brokers {brokers}"
    if mock:
        target_option = "--mock"
    print_summary(result, console, replay_file if result.divergences else None, target_option)
    if report is not None:
        write_json(report, report_json(result))
    if junit is not None:
        junit.write_text(junit_xml(result), encoding="utf-8")
    raise typer.Exit(EXIT_CONFORMANT if result.conformant else EXIT_DIVERGENT)


def _replay(session: Session, operations: list[Operation], console: Console) -> int:
    steps, divergence = replay(session, operations)
    allowed = divergence.allowed if divergence is not None else ()
    for line in step_lines(steps, allowed):
        console.print(line, markup=False, highlight=False)
    if divergence is None:
        console.print(f"replayed {len(steps)} operations: every answer is one the spec allows")
        return EXIT_CONFORMANT
    console.print(f"divergence at operation {len(steps)} of {len(operations)}", markup=False)
    return EXIT_DIVERGENT
