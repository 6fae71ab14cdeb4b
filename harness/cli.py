"""The ``kafkaref`` command line: one typer app, one module per subcommand.

This module only assembles the app.  Each subcommand lives in its own module under
``harness`` with a ``register(app)`` function, listed in ``COMMANDS``: today ``explore``
(``harness.explore_cli``), ``broker`` (``harness.broker_cli``), ``bench``
(``harness.bench``) and ``cluster`` (``harness.cluster_cli``); ``conform`` joins the same
way.  Packages that depend on harness add theirs through the entry-point group
``kafkaref.commands`` (``chaos = "chaos.cli:register"`` gives ``kafkaref chaos``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib.metadata import entry_points

import typer

from harness import bench, broker_cli, cluster_cli, conform_cli, explore_cli

COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    explore_cli.register,
    broker_cli.register,
    bench.register,
    cluster_cli.register,
    conform_cli.register,
)
"""Each subcommand module's ``register``, in the order ``kafkaref --help`` lists them."""

app = typer.Typer(
    name="kafkaref",
    help="kafkaref: a formally checked reference implementation of Apache Kafka's core "
    "semantics, and a harness that holds any Kafka-protocol system to them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _kafkaref() -> None:
    """Present so that typer keeps subcommands even while there is only one."""


PLUGIN_GROUP = "kafkaref.commands"
"""Entry-point group of commands from packages that depend on harness (``chaos``): each
entry point is a ``register(app)``.  harness never imports them by name."""


def plugin_commands() -> list[Callable[[typer.Typer], None]]:
    """The ``register`` of every entry point in PLUGIN_GROUP, by name; one that fails to
    load is reported on stderr and left out, so the other commands still work."""
    found: list[Callable[[typer.Typer], None]] = []
    for point in sorted(entry_points(group=PLUGIN_GROUP), key=lambda p: p.name):
        try:
            found.append(point.load())
        except Exception as exc:  # any failure of another package's import
            print(f"kafkaref: warning: command {point.name!r} not loaded: {exc}", file=sys.stderr)
    return found


for _register in (*COMMANDS, *plugin_commands()):
    _register(app)


def main() -> None:
    """The console script ``kafkaref``: run the app (it exits with the command's status)."""
    app(prog_name="kafkaref")
