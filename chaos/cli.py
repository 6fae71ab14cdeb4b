"""``kafkaref chaos build|clean``: the chaos experiments' command group.

Registered with the ``kafkaref`` app through the entry-point group ``kafkaref.commands``
(pyproject.toml: ``chaos = "chaos.cli:register"``), since harness never imports chaos.

* ``build`` makes (or reuses) the Docker images: the debootstrap base and the project
  image (``chaos.image``); it prints the project image's tag on stdout, progress on
  stderr.
* ``clean`` removes the containers and networks of chaos runs whose owner process is
  gone (a crashed harness), or of every run with ``--all`` (``chaos.docker_util``).

Exit status: 0 done, 1 the build failed, 2 it cannot run here (no Docker engine, no
debootstrap, not root).
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

from chaos import docker_util
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
