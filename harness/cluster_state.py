"""The local cluster's state file, and processes known only by their process id.

This module owns ``<data-dir>/cluster.json``: where each ZooKeeper node and broker of a
local cluster listens, its data directory and its process id, so that a later
``kafkaref cluster status|kill|restart|down`` in another shell finds the processes that
``kafkaref cluster up`` left running.  It also owns signalling such a process: a process
id is only trusted while ``/proc/<pid>/cmdline`` still names the same broker or
ZooKeeper configuration (a process id can be reused once its process has gone), and a
process that has exited but not yet been reaped (a zombie) counts as gone.  Linux only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import attrs

STATE_FILE = "cluster.json"
FORMAT = 1
_POLL_S = 0.05


Marker = tuple[tuple[str, ...], ...]
"""Runs of arguments that a process's command line must each hold, to be the one meant."""


class StateError(RuntimeError):
    """No usable state file in the data directory (the message says why)."""


@attrs.define
class ZooKeeperRecord:
    myid: int
    client_port: int
    peer_port: int
    election_port: int
    data_dir: Path
    pid: int | None = None

    @property
    def config_file(self) -> Path:
        return self.data_dir / "zoo.cfg"

    def marker(self) -> Marker:
        """Arguments that the node's command line holds, and no other process's would."""
        return ((str(self.config_file),),)


@attrs.define
class BrokerRecord:
    broker_id: int
    port: int
    data_dir: Path
    config_file: Path | None
    pid: int | None = None

    def marker(self) -> Marker:
        return (("--id", str(self.broker_id)), ("--data-dir", str(self.data_dir)))


@attrs.define
class ClusterState:
    """Everything needed to find, stop or restart a local cluster's processes."""

    work_dir: Path
    host: str
    command: tuple[str, ...]
    zookeeper: list[ZooKeeperRecord]
    brokers: list[BrokerRecord]
    broker_config: dict[str, str] = attrs.Factory(dict)

    @property
    def connect_string(self) -> str:
        return ",".join(f"{self.host}:{z.client_port}" for z in self.zookeeper)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{b.port}" for b in self.brokers)

    def broker(self, broker_id: int) -> BrokerRecord:
        for b in self.brokers:
            if b.broker_id == broker_id:
                return b
        known = ", ".join(str(b.broker_id) for b in self.brokers)
        raise KeyError(f"no broker {broker_id} in this cluster (its brokers: {known})")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "work_dir": str(self.work_dir),
            "host": self.host,
            "command": list(self.command),
            "zookeeper": {
                "connect": self.connect_string,
                "nodes": [
                    {
                        "myid": z.myid,
                        "client_port": z.client_port,
                        "peer_port": z.peer_port,
                        "election_port": z.election_port,
                        "data_dir": str(z.data_dir),
                        "pid": z.pid,
                    }
                    for z in self.zookeeper
                ],
            },
            "bootstrap": self.bootstrap,
            "brokers": [
                {
                    "id": b.broker_id,
                    "port": b.port,
                    "data_dir": str(b.data_dir),
                    "config_file": None if b.config_file is None else str(b.config_file),
                    "pid": b.pid,
                }
                for b in self.brokers
            ],
            "broker_config": dict(self.broker_config),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClusterState:
        if data.get("format") != FORMAT:
            raise StateError(f"state file format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            work_dir=Path(data["work_dir"]),
            host=str(data["host"]),
            command=tuple(str(c) for c in data["command"]),
            zookeeper=[
                ZooKeeperRecord(
                    myid=int(z["myid"]),
                    client_port=int(z["client_port"]),
                    peer_port=int(z["peer_port"]),
                    election_port=int(z["election_port"]),
                    data_dir=Path(z["data_dir"]),
                    pid=None if z["pid"] is None else int(z["pid"]),
                )
                for z in data["zookeeper"]["nodes"]
            ],
            brokers=[
                BrokerRecord(
                    broker_id=int(b["id"]),
                    port=int(b["port"]),
                    data_dir=Path(b["data_dir"]),
                    config_file=None if b["config_file"] is None else Path(b["config_file"]),
                    pid=None if b["pid"] is None else int(b["pid"]),
                )
                for b in data["brokers"]
            ],
            broker_config={str(k): str(v) for k, v in data.get("broker_config", {}).items()},
        )


def state_path(work_dir: Path) -> Path:
    return work_dir / STATE_FILE


def save_state(state: ClusterState) -> Path:
    """Write the state file atomically (a reader never sees half of it)."""
    path = state_path(state.work_dir)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_state(work_dir: Path) -> ClusterState:
    """The state file of the cluster in ``work_dir``; StateError when there is none."""
    path = state_path(work_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StateError(f"no cluster in {work_dir} (no {STATE_FILE})") from None
    try:
        return ClusterState.from_json(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        raise StateError(f"{path} is not a kafkaref cluster state file: {exc}") from exc


def remove_state(work_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        state_path(work_dir).unlink()


def pid_running(pid: int | None, marker: Marker) -> bool:
    """Whether ``pid`` runs (not a zombie) and its command line holds each run of
    arguments in ``marker``."""
    if pid is None:
        return False
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return False
    # The state is the field after the command name, which is in parentheses.
    if stat[stat.rfind(")") + 2 :].startswith(("Z", "X")):
        return False
    return all(_holds(argv, run) for run in marker)


def _holds(argv: list[str], run: tuple[str, ...]) -> bool:
    width = len(run)
    return any(tuple(argv[i : i + width]) == run for i in range(len(argv) - width + 1))


def send_signal(pid: int | None, marker: Marker, sig: signal.Signals) -> None:
    """Send ``sig`` to the process if it is still the one named."""
    if pid is not None and pid_running(pid, marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def signal_and_wait(pid: int | None, marker: Marker, sig: signal.Signals, timeout_s: float) -> bool:
    """Send ``sig`` to the process (if it is still the one named) and wait until it is gone.

    True when it is gone within ``timeout_s``; a process that was not running is gone.
    """
    if not pid_running(pid, marker):
        return True
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while pid_running(pid, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)  # polling interval of a condition wait with a deadline
    return True


def terminate(pid: int | None, marker: Marker, timeout_s: float) -> None:
    """SIGTERM, and SIGKILL if the process is still there after ``timeout_s``."""
    if not signal_and_wait(pid, marker, signal.SIGTERM, timeout_s):
        signal_and_wait(pid, marker, signal.SIGKILL, timeout_s)
