"""The ``kafkaref`` command line: one typer app, one module per subcommand.

This module only assembles the app.  Each subcommand lives in its own module under
``harness`` with a ``register(app)`` function, listed in ``COMMANDS``: today ``explore``
(``harness.explore_cli``), ``broker`` (``harness.broker_cli``), ``bench``
(``harness.bench``) and ``cluster`` (``harness.cluster_cli``); ``conform`` and ``chaos``
join the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import typer

from harness import bench, broker_cli, cluster_cli, explore_cli

COMMANDS: tuple[Callable[[typer.Typer], None], ...] = (
    explore_cli.register,
    broker_cli.register,
    bench.register,
    cluster_cli.register,
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


for _register in COMMANDS:
    _register(app)


def main() -> None:
    """The console script ``kafkaref``: run the app (it exits with the command's status)."""
    app(prog_name="kafkaref")
