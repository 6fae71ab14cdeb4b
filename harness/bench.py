"""``kafkaref bench``: produce and consume throughput and produce latency, ours beside a peer.

This module owns the command's options, the order of the runs, topic naming and clean-up,
and the exit status: 0 when every run completed, 1 when one failed (records undelivered,
lost or duplicated, or a client error), 2 for bad arguments, 3 when a target cannot be
reached or started, 130 when interrupted.  Targets live in ``bench_targets``, a run in
``bench_run``, the table in ``bench_report``.
"""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Annotated

import typer
from rich.console import Console

from harness.bench_report import cluster_ratio_lines, report_table, retention_notes
from harness.bench_run import BenchFailedError, RunResult, Scenario, run_scenario
from harness.bench_targets import (
    MOCK,
    BootstrapUnreachableError,
    LocalBrokerTarget,
    LocalClusterTarget,
    Target,
    TopicSetupError,
    open_target,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130

ACKS = ("1", "all")
CLUSTER_ACKS = ("all",)
CLUSTER_TARGET_RATIO = 0.5
"""Issue 4: a replicated cluster's acks=all produce throughput, at least this fraction of a
single broker's."""

HELP = """Measure produce and consume throughput and produce latency of a Kafka bootstrap.

With the confluent-kafka (librdkafka) producer and consumer, each run creates its own
topic, produces N records of the given size as fast as the producer takes them (records/s,
MB/s, and the p50/p99 of each record's produce-to-delivery-report latency), then reads them
all back with manual assignment from the beginning (records/s, MB/s).  Runs: acks=1 and
acks=all, on 1 partition and on --partitions partitions.  With --compare, each run is
repeated on the second target straight after the first, and the table shows both and the
ratio ours / peer.

A target is HOST:PORT, or "mock": librdkafka's mock cluster (one broker), started in this
process for the run.  The mock keeps only the last 5 MiB of each partition, so it may
serve fewer records than were produced; the report says so when it happens.

With --cluster N instead of --bootstrap, the bench starts a local kafkaref cluster of N
brokers (ZooKeeper, replication factor N) as "ours" and a single kafkaref broker
(replication factor 1) as "peer", runs acks=all only, and prints the cluster's produce
throughput as a fraction of the single broker's (the target is at least 0.5x).

Exit status: 0 when every run completed with every record delivered and read back, 1 when
a run failed, 2 for bad arguments, 3 when a target cannot be reached.
"""

SHORT_HELP = "Measure throughput and latency of a bootstrap, beside a peer (e.g. the mock)."


def register(app: typer.Typer) -> None:
    """Add the ``bench`` command to the ``kafkaref`` app."""
    app.command("bench", help=HELP, short_help=SHORT_HELP)(bench_command)


def _target_name(value: str | None) -> str | None:
    """Validate HOST:PORT or ``mock``."""
    if value is None or value == MOCK:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise typer.BadParameter(f"expected HOST:PORT or {MOCK!r}, got {value!r}")
    return value


def bench_command(
    *,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            callback=_target_name,
            help='The system to measure ("ours"): a bootstrap address, or "mock".',
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            metavar="HOST:PORT",
            callback=_target_name,
            help='A second target ("peer") measured in the same run: an address, or "mock".',
        ),
    ] = None,
    records: Annotated[
        int, typer.Option(min=1, metavar="N", help="Records produced (and consumed) per run.")
    ] = 200_000,
    record_size: Annotated[
        int, typer.Option(min=1, metavar="BYTES", help="Size of each record's value.")
    ] = 100,
    partitions: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Partition count of the multi-partition runs (and 1)."
        ),
    ] = 6,
    replication_factor: Annotated[
        int,
        typer.Option(min=1, metavar="N", help="Replication factor of the bench's topics."),
    ] = 1,
    timeout: Annotated[
        float,
        typer.Option(
            min=0.1,
            metavar="SECONDS",
            help="Limit for reaching a target and for each phase of a run.",
        ),
    ] = 120.0,
    repeat: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", help="Runs per scenario and target; the table shows medians."
        ),
    ] = 1,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the table as Markdown (for the docs).")
    ] = False,
    cluster: Annotated[
        int | None,
        typer.Option(
            min=2,
            metavar="N",
            help="Instead of --bootstrap/--compare: a local N-broker cluster (replication "
            "factor N, acks=all) against a local single broker (replication factor 1).",
            show_default=False,
        ),
    ] = None,
) -> None:
    if cluster is not None and (bootstrap is not None or compare is not None):
        raise typer.BadParameter(
            "--cluster starts both targets itself: leave out --bootstrap and --compare",
            param_hint="--cluster",
        )
    if cluster is None and bootstrap is None:
        raise typer.BadParameter(
            "give the system to measure (HOST:PORT or mock), or --cluster N",
            param_hint="--bootstrap",
        )
    # Wide enough that no cell is ever cut short, on a terminal or in a pipe.
    out = Console(highlight=False, soft_wrap=True, width=200)
    progress = Console(stderr=True, highlight=False)
    opened: list[tuple[str, Target]] = []
    created: list[tuple[Target, str]] = []
    try:
        if cluster is not None:
            progress.print(f"starting a local cluster of {cluster} brokers and a single broker")
            opened.append(("ours", LocalClusterTarget(cluster, timeout_s=timeout)))
            opened.append(("peer", LocalBrokerTarget(timeout_s=timeout)))
        for role, name in (("ours", bootstrap), ("peer", compare)):
            if name is not None:
                opened.append(
                    (
                        role,
                        open_target(name, replication_factor=replication_factor, timeout_s=timeout),
                    )
                )
        results = _run_all(
            opened=opened,
            created=created,
            records=records,
            record_size=record_size,
            partitions=partitions,
            repeat=repeat,
            timeout_s=timeout,
            progress=progress,
            acks=CLUSTER_ACKS if cluster is not None else ACKS,
        )
    except BootstrapUnreachableError as exc:
        progress.print(f"kafkaref bench: {exc}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    except (BenchFailedError, TopicSetupError) as exc:
        progress.print(f"kafkaref bench: run failed: {exc}")
        raise typer.Exit(EXIT_FAILED) from None
    except KeyboardInterrupt:
        progress.print("kafkaref bench: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        _clean_up(created, opened)
    out.print(f"kafkaref bench: {records:,} records of {record_size} bytes per run")
    for role, target in opened:
        out.print(f"{role}: {target.description}")
    ours = results["ours"]
    peer = results.get("peer")
    out.print(report_table(ours, peer, markdown=markdown))
    for role, runs in results.items():
        for note in retention_notes(role, runs):
            out.print(note)
    if cluster is not None and peer is not None:
        for line in cluster_ratio_lines(ours, peer, cluster, CLUSTER_TARGET_RATIO):
            out.print(line)


def _run_all(
    *,
    opened: list[tuple[str, Target]],
    created: list[tuple[Target, str]],
    records: int,
    record_size: int,
    partitions: int,
    repeat: int,
    timeout_s: float,
    progress: Console,
    acks: tuple[str, ...] = ACKS,
) -> dict[str, list[list[RunResult]]]:
    """Every scenario on every target, each repetition on a fresh topic, the targets
    taking turns so that both see the same conditions on the machine."""
    run_id = f"{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
    results: dict[str, list[list[RunResult]]] = {role: [] for role, _ in opened}
    for count in dict.fromkeys((1, partitions)):
        for ack in acks:
            scenario = Scenario(acks=ack, partitions=count)
            for role, _ in opened:
                results[role].append([])
            for rep, (role, target) in itertools.product(range(repeat), opened):
                topic = f"kafkaref-bench-{run_id}-{role}-acks{ack}-p{count}-{rep}"
                target.create_topic(topic, count)
                created.append((target, topic))
                progress.print(f"{role}: {scenario.label} ...", end="")
                result = run_scenario(
                    target.bootstrap,
                    topic,
                    scenario,
                    records=records,
                    record_size=record_size,
                    timeout_s=timeout_s,
                )
                progress.print(
                    f" produced in {result.produce.seconds:.2f} s,"
                    f" consumed in {result.consume.seconds:.2f} s"
                )
                results[role][-1].append(result)
    return results


def _clean_up(created: list[tuple[Target, str]], opened: list[tuple[str, Target]]) -> None:
    """Delete the bench's topics (best effort: a failure leaves a topic behind) and close."""
    for target, topic in created:
        try:
            target.delete_topic(topic)
        except Exception:  # clean-up must not hide the run's own outcome
            continue
    for _, target in opened:
        target.close()
