"""``kafkaref cluster up|status|kill|restart|down``: a local cluster from the command line.

This module owns the commands' options, their messages and exit status: 0 on success,
1 when the cluster could not be started or reached or the broker asked for is not in the
state the command needs (with what went wrong), 2 for bad arguments (an unknown broker
id among them).  The cluster itself is ``harness.cluster.LocalCluster``; ``up`` leaves
its processes running and records them in ``<data-dir>/cluster.json``, which the other
commands read, from any shell.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from harness import cluster_state as cs
from harness.cluster import ClusterError, LocalCluster
from harness.cluster_metadata import ClusterView
from harness.launcher import BrokerStartError
from harness.zookeeper import ZooKeeperError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DATA_DIR_ENV = "KAFKAREF_CLUSTER_DIR"
DEFAULT_DATA_DIR = Path(
    os.environ.get(DATA_DIR_ENV, Path(tempfile.gettempdir()) / "kafkaref-cluster")
)

HELP = f"""Run a local kafkaref cluster: a private ZooKeeper and brokers, each its own process.

`up` starts it and leaves it running; `status`, `kill`, `restart` and `down` find it
again through the state file in its data directory (default {DEFAULT_DATA_DIR}, or
${DATA_DIR_ENV}), from any shell.
"""

cluster_app = typer.Typer(
    name="cluster",
    help=HELP,
    short_help="Start, inspect, break and stop a local ZooKeeper-based cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DataDir = Annotated[
    Path,
    typer.Option(
        metavar="DIR",
        file_okay=False,
        envvar=DATA_DIR_ENV,
        help="The cluster's directory: ZooKeeper's and each broker's data, their output, "
        "and cluster.json.",
    ),
]
BrokerId = Annotated[int, typer.Argument(metavar="ID", help="The broker's id (1..N).")]

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the ``cluster`` command group to the ``kafkaref`` app."""
    app.add_typer(cluster_app, name="cluster")


def _fail(message: str, code: int = EXIT_FAILED) -> typer.Exit:
    _err.print(f"kafkaref cluster: {message}")
    return typer.Exit(code)


def _attach(data_dir: Path) -> LocalCluster:
    try:
        return LocalCluster.attach(data_dir.resolve())
    except cs.StateError as exc:
        raise _fail(f"{exc}; start one with `kafkaref cluster up --data-dir {data_dir}`") from None


def _check_id(cluster: LocalCluster, broker_id: int) -> None:
    if broker_id not in cluster.handles:
        known = ", ".join(str(i) for i in cluster.broker_ids)
        raise _fail(f"no broker {broker_id} in this cluster (its brokers: {known})", EXIT_USAGE)


def _zookeepers(value: int) -> int:
    if value not in (1, 3):
        raise typer.BadParameter(f"a ZooKeeper ensemble has 1 or 3 nodes, not {value}")
    return value


def _properties(values: list[str] | None) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE (a Kafka broker property), got {item!r}")
        result[key.strip()] = value.strip()
    return result


@cluster_app.command("up")
def up_command(
    *,
    brokers: Annotated[int, typer.Option(min=1, max=99, metavar="N", help="Brokers.")] = 3,
    zookeepers: Annotated[
        int, typer.Option(metavar="1|3", callback=_zookeepers, help="ZooKeeper nodes.")
    ] = 1,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    config: Annotated[
        list[str] | None,
        typer.Option(
            "--config",
            "-c",
            metavar="KEY=VALUE",
            help="A broker setting with Kafka's property name, for every broker (repeatable), "
            "e.g. -c zookeeper.session.timeout.ms=6000.",
            show_default=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1.0, metavar="SECONDS", help="Limit for becoming healthy.")
    ] = 120.0,
) -> None:
    """Start ZooKeeper and the brokers, wait until healthy, print the bootstrap string."""
    properties = _properties(config)
    work_dir = data_dir.resolve()
    try:
        old = LocalCluster.attach(work_dir)
    except cs.StateError:
        old = None
    if old is not None:
        if old.running() or _zookeeper_running(old):
            raise _fail(
                f"a cluster is already running in {work_dir} (bootstrap {old.bootstrap}); "
                f"`kafkaref cluster down --data-dir {data_dir}` stops it"
            )
        cs.remove_state(work_dir)  # left by processes that are gone (e.g. a reboot)
    cluster = LocalCluster(
        work_dir, brokers=brokers, zookeepers=zookeepers, broker_config=properties, detached=True
    )
    with _err.status("starting") as status:

        def progress(step: str) -> None:
            status.update(f"{step} ...")
            _err.print(f"[dim]{step}[/dim]")

        try:
            cluster.start(timeout_s=timeout, progress=progress)
        except (ClusterError, BrokerStartError, ZooKeeperError) as exc:
            raise _fail(f"the cluster did not start: {exc}") from None
        except KeyboardInterrupt:
            raise _fail("interrupted; everything started has been stopped", 130) from None
    _err.print(
        f"cluster up in {work_dir}: {brokers} broker(s), ZooKeeper at {cluster.connect_string}"
    )
    _out.print(cluster.bootstrap)


def _zookeeper_running(cluster: LocalCluster) -> bool:
    state = cluster.state
    return state is not None and any(cs.pid_running(z.pid, z.marker()) for z in state.zookeeper)


@cluster_app.command("status")
def status_command(*, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Print the brokers, the controller, and every partition's leader, replicas and ISR."""
    cluster = _attach(data_dir)
    state = cluster.state
    assert state is not None
    zk_up = _zookeeper_running(cluster)
    _out.print(f"data directory: {cluster.work_dir}")
    _out.print(f"bootstrap:      {cluster.bootstrap}")
    _out.print(
        f"zookeeper:      {cluster.connect_string} ({'running' if zk_up else 'NOT running'})"
    )
    registered: frozenset[int] = frozenset()
    controller: tuple[int, int] | None = None
    if zk_up:
        try:
            registered = cluster.registered()
            controller = cluster.controller()
        except ClusterError as exc:
            _out.print(f"zookeeper:      not readable: {exc}")
    _out.print(
        "controller:     "
        + ("none" if controller is None else f"broker {controller[0]} (epoch {controller[1]})")
    )
    table = Table("broker", "address", "pid", "process", "in /brokers/ids", title="brokers")
    for i in cluster.broker_ids:
        pid = cluster.pid(i)
        table.add_row(
            str(i),
            cluster.handles[i].bootstrap,
            "-" if pid is None else str(pid),
            "running" if pid is not None else "stopped",
            "yes" if i in registered else "no",
        )
    _out.print(table)
    try:
        view = cluster.metadata()
    except ClusterError as exc:
        _out.print(f"topics: unknown ({exc})")
    else:
        _out.print(_partitions_table(view))
    cluster.close_zk_client()


def _ids(ids: tuple[int, ...]) -> str:
    return ",".join(str(i) for i in ids) or "-"


def _partitions_table(view: ClusterView) -> Table:
    table = Table(
        "topic", "partition", "leader", "epoch", "replicas", "isr", "offline", title="partitions"
    )
    for p in view.partitions:
        table.add_row(
            p.topic,
            str(p.partition),
            "none" if p.leader < 0 else str(p.leader),
            str(p.leader_epoch),
            _ids(p.replicas),
            _ids(p.isr),
            _ids(p.offline),
        )
    if not view.partitions:
        table.add_row("(no topics)", "", "", "", "", "", "")
    return table


@cluster_app.command("kill")
def kill_command(broker_id: BrokerId, *, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Kill broker ID with SIGKILL (a crash: nothing is flushed, its session just ends)."""
    cluster = _attach(data_dir)
    _check_id(cluster, broker_id)
    pid = cluster.pid(broker_id)
    if pid is None:
        raise _fail(f"broker {broker_id} is not running")
    try:
        cluster.kill(broker_id)
    except ClusterError as exc:
        raise _fail(str(exc)) from None
    _out.print(f"broker {broker_id} (pid {pid}) killed with SIGKILL")


@cluster_app.command("restart")
def restart_command(
    broker_id: BrokerId,
    *,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    timeout: Annotated[
        float, typer.Option(min=1.0, metavar="SECONDS", help="Limit for re-registering.")
    ] = 120.0,
) -> None:
    """Start broker ID again on its port and data (a running one is stopped cleanly first),
    and wait until it has registered in ZooKeeper."""
    cluster = _attach(data_dir)
    _check_id(cluster, broker_id)
    if not _zookeeper_running(cluster):
        raise _fail("ZooKeeper is not running: `kafkaref cluster down`, then `up`")
    try:
        cluster.restart(broker_id, timeout_s=timeout)
    except (ClusterError, BrokerStartError) as exc:
        raise _fail(f"broker {broker_id} did not come back: {exc}") from None
    finally:
        cluster.close_zk_client()
    handle = cluster.handles[broker_id]
    _out.print(
        f"broker {broker_id} running again (pid {cluster.pid(broker_id)}) on {handle.bootstrap}"
    )


@cluster_app.command("down")
def down_command(*, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Stop every broker (SIGTERM) and ZooKeeper; the data stays in the directory."""
    cluster = _attach(data_dir)
    cluster.stop()
    _out.print(f"cluster in {cluster.work_dir} stopped (its data is kept)")
