"""``kafkaref chaos build|clean|run``: the chaos experiments' command group.

Registered with the ``kafkaref`` app through the entry-point group ``kafkaref.commands``
(pyproject.toml: ``chaos = "chaos.cli:register"``), since harness never imports chaos.

* ``build`` makes (or reuses) the Docker images: the debootstrap base and the project
  image (``chaos.image``); it prints the project image's tag on stdout, progress on
  stderr.
* ``run`` makes one experiment (``chaos.run``): the cluster in containers, the workload,
  the nemesis, the final read, the checker's verdict and the report.
* ``clean`` removes the containers and networks of chaos runs whose owner process is
  gone (a crashed harness), or of every run with ``--all`` (``chaos.docker_util``).

Exit status: 0 done, 1 the build failed, 2 it cannot run here (no Docker engine, no
debootstrap, not root); ``run``: 0 valid, 1 anomalies found, 2 the run could not be made.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from chaos import docker_util
from chaos.generator import FAULT_KINDS, TARGETS
from chaos.image import ensure_images
from chaos.image_base import BuildError, PrerequisiteMissingError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANNOT_RUN = 2

chaos_app = typer.Typer(
    name="chaos",
    help="Jepsen-style chaos experiments against a kafkaref cluster in Docker containers.",
    short_help="Chaos experiments in Docker: build the images, clean up after runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``chaos`` command group to the ``kafkaref`` app."""
    app.add_typer(chaos_app, name="chaos")


def _progress(started: float) -> docker_util.Progress:
    def say(message: str) -> None:
        _err.print(f"[{time.monotonic() - started:6.1f}s] {message}", markup=False)

    return say


def _connect() -> object:
    try:
        return docker_util.connect()
    except docker_util.DockerUnavailableError as exc:
        _err.print(f"kafkaref chaos: {exc}", markup=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from None


@chaos_app.command("build")
def build() -> None:
    """Build the Docker images the chaos experiments run (base once, project when changed).

    The base image comes from debootstrap of Debian bookworm with this machine's apt
    mirror (no registry needed) and is tagged by a hash of its package list; the project
    image adds a wheelhouse of kafkaref built here.  Prints the project image's tag.
    """
    client = _connect()
    started = time.monotonic()
    try:
        tag = ensure_images(client, _progress(started))
    except PrerequisiteMissingError as exc:
        _err.print(f"kafkaref chaos build: {exc}", markup=False)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    except BuildError as exc:
        _err.print(f"kafkaref chaos build: {exc}", markup=False)
        raise typer.Exit(EXIT_FAILED) from None
    _err.print(f"kafkaref chaos build: {tag} ready in {time.monotonic() - started:.1f}s")
    _out.print(tag, markup=False)


@chaos_app.command("clean")
def clean(
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Remove the containers and networks of every chaos run, running ones too.",
        ),
    ] = False,
) -> None:
    """Remove what crashed chaos runs left behind (containers, networks).

    Without --all only resources whose owner process (recorded in their labels) is gone
    are removed; runs in progress are left alone.
    """
    client = _connect()
    swept = docker_util.sweep(client, everything=everything, progress=_progress(time.monotonic()))
    _out.print(
        f"removed {len(swept.containers)} containers and {len(swept.networks)} networks"
        + (f"; left {len(swept.kept_runs)} live runs alone" if swept.kept_runs else ""),
        markup=False,
    )


def _names(
    raw: str, known: tuple[str, ...], what: str, *, none_ok: bool = False
) -> tuple[str, ...]:
    names = tuple(n.strip() for n in raw.split(",") if n.strip())
    if none_ok and raw.strip().lower() == "none":
        return ()
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        _err.print(f"kafkaref chaos run: {what} {unknown or raw!r}; known: {', '.join(known)}")
        raise typer.Exit(EXIT_CANNOT_RUN)
    return names


@chaos_app.command("run")
def run(  # noqa: PLR0917 - one parameter per command-line option
    time_s: Annotated[float, typer.Option("--time", help="Seconds of workload.")] = 60.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Fault kinds, comma-separated: kill,pause,partition,zookeeper (or none)."
        ),
    ] = ",".join(FAULT_KINDS),
    target: Annotated[
        str,
        typer.Option(
            help="Target roles, comma-separated: one,leader,controller,minority,majority."
        ),
    ] = ",".join(TARGETS),
    brokers: Annotated[int, typer.Option(help="Brokers.")] = 3,
    zookeepers: Annotated[int, typer.Option(help="ZooKeeper nodes: 1 or 3.")] = 1,
    mutant: Annotated[
        str | None, typer.Option(help="A seeded defect the brokers run with (impl/mutants.py).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("chaos-out"),
    seed: Annotated[int, typer.Option(help="Seed of the workload and the fault schedule.")] = 0,
    fault_duration: Annotated[float, typer.Option(help="Mean seconds a fault is held.")] = 10.0,
    fault_interval: Annotated[float, typer.Option(help="Mean seconds between faults.")] = 8.0,
    partitions: Annotated[int, typer.Option(help="Partitions of the topic.")] = 3,
    replication_factor: Annotated[int, typer.Option(help="Replication factor.")] = 3,
    min_insync: Annotated[int, typer.Option(help="min.insync.replicas of the topic.")] = 2,
    rate: Annotated[float, typer.Option(help="Sends per second, all producers.")] = 100.0,
    producers: Annotated[int, typer.Option(help="Producer clients.")] = 2,
    consumers: Annotated[int, typer.Option(help="Consumer clients.")] = 2,
    consumer_mode: Annotated[
        str, typer.Option(help="assign (every partition), group (subscribe), or both.")
    ] = "assign",
    idempotence: Annotated[bool, typer.Option(help="enable.idempotence of the producers.")] = True,
    unclean: Annotated[
        bool, typer.Option(help="unclean.leader.election.enable on the brokers.")
    ] = False,
    broker_config: Annotated[
        list[str] | None, typer.Option(help="More broker properties, NAME=VALUE (repeatable).")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(help="Run this project image instead of building (or finding) it."),
    ] = None,
) -> None:
    """Run a chaos experiment: cluster in containers, workload, faults, final read, check.

    Writes history.jsonl, results.json (the checker's verdict) and report.html (plots) in
    --out. Exit status: 0 valid, 1 anomalies found, 2 the run could not be made.
    """
    # Imported here: the workload's client and plotting libraries load only for a run.
    from chaos.client import WorkloadOptions  # noqa: PLC0415
    from chaos.run import RunOptions  # noqa: PLC0415
    from chaos.run import run as run_experiment  # noqa: PLC0415

    if consumer_mode not in ("assign", "group", "both") or zookeepers not in (1, 3, 5):
        _err.print("kafkaref chaos run: --consumer-mode assign|group|both, --zookeepers 1|3|5")
        raise typer.Exit(EXIT_CANNOT_RUN)
    if not 1 <= brokers <= 99 or partitions < 1 or rate <= 0:
        _err.print("kafkaref chaos run: --brokers 1-99, --partitions at least 1, --rate above 0")
        raise typer.Exit(EXIT_CANNOT_RUN)
    extra = []
    for item in broker_config or []:
        name, sep, value = item.partition("=")
        if not sep:
            _err.print(f"kafkaref chaos run: --broker-config {item!r} is not NAME=VALUE")
            raise typer.Exit(EXIT_CANNOT_RUN)
        extra.append((name.strip(), value.strip()))
    options = RunOptions(
        out=out,
        time_s=time_s,
        faults=_names(faults, FAULT_KINDS, "fault kinds", none_ok=True),
        targets=_names(target, TARGETS, "targets"),
        brokers=brokers,
        zookeepers=zookeepers,
        mutant=mutant,
        seed=seed,
        fault_duration_s=fault_duration,
        fault_interval_s=fault_interval,
        unclean_leader_election=unclean,
        broker_config=tuple(extra),
        image=image,
        workload=WorkloadOptions(
            partitions=partitions,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync,
            producers=producers,
            consumers=consumers,
            consumer_mode=consumer_mode,
            rate=rate,
            idempotence=idempotence,
            max_in_flight=5 if idempotence else 1,
        ),
    )
    outcome = run_experiment(options, _progress(time.monotonic()))
    verdict = {0: "valid", 1: "ANOMALIES FOUND", 2: "could not run"}[outcome.exit_code]
    _out.print(f"kafkaref chaos run: {verdict}; results in {out}", markup=False)
    raise typer.Exit(outcome.exit_code)
