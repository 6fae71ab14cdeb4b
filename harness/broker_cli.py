"""``kafkaref broker``: run one kafkaref broker in the foreground.

This module owns the command's options and their validation, nothing else: once they are
valid the process becomes ``python -m impl.broker`` with the same options (``os.execv``,
same process id), so signals sent to ``kafkaref broker`` reach the broker itself (SIGTERM
is its clean shutdown) and its exit status is the command's.  The harness never imports
the broker; this is the one place it names the broker's module, on a command line.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

BROKER_MODULE = "impl.broker"

HELP = """Run one kafkaref broker in the foreground, speaking the Kafka wire protocol.

Until the replicated cluster exists it runs alone and holds all metadata itself
(single-broker mode). It prints "kafkaref broker N listening on HOST:PORT" once it accepts
connections; SIGTERM (or Ctrl-C) shuts it down cleanly.

Settings use Kafka's own property names (log.segment.bytes, log.retention.ms,
log.retention.bytes, message.max.bytes, num.partitions, ...) in a Java .properties file
given with --config; every setting not given takes Kafka's default.

--mutant NAME starts it with a seeded defect switched on (the broker property
kafkaref.mutant), to prove that a check catches it; `python -m impl.broker --list-mutants`
lists them.
"""

SHORT_HELP = "Run one kafkaref broker (Kafka wire protocol) in the foreground."


def register(app: typer.Typer) -> None:
    """Add the ``broker`` command to the ``kafkaref`` app."""
    app.command("broker", help=HELP, short_help=SHORT_HELP)(broker_command)


def parse_listen(value: str) -> str:
    """Check ``HOST:PORT`` (port 0-65535; an IPv6 host in brackets) and return it."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise typer.BadParameter(f"expected HOST:PORT with a port from 0 to 65535, got {value!r}")
    return value


def broker_argv(
    broker_id: int, listen: str, data_dir: Path, config: Path | None, mutant: str | None = None
) -> list[str]:
    """The command line that ``kafkaref broker`` becomes."""
    argv = [
        sys.executable,
        "-m",
        BROKER_MODULE,
        "--id",
        str(broker_id),
        "--listen",
        listen,
        "--data-dir",
        str(data_dir),
    ]
    if config is not None:
        argv += ["--config", str(config)]
    if mutant is not None:
        argv += ["--mutant", mutant]
    return argv


def broker_command(
    *,
    broker_id: Annotated[
        int,
        typer.Option(
            "--id", min=0, metavar="N", help="broker.id: this broker's id in the cluster."
        ),
    ],
    listen: Annotated[
        str,
        typer.Option(
            metavar="HOST:PORT",
            callback=parse_listen,
            help="Address to accept client connections on (the listener), e.g. 127.0.0.1:9092.",
        ),
    ],
    data_dir: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            file_okay=False,
            help="log.dirs: the directory holding the partition logs and the broker's "
            "metadata (made if missing).",
        ),
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            exists=True,
            dir_okay=False,
            readable=True,
            help="A Java .properties file of broker settings, with Kafka's property names.",
            show_default=False,
        ),
    ] = None,
    mutant: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Switch on a seeded defect (deliberately wrong behaviour, for proving "
            "checks); the broker refuses an unknown name. List: python -m impl.broker "
            "--list-mutants.",
            show_default=False,
        ),
    ] = None,
) -> None:
    argv = broker_argv(broker_id, listen, data_dir, config, mutant)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
