"""A local kafkaref cluster: a private ZooKeeper and N broker processes on this machine.

This module owns a cluster's life cycle for the tests, the bench and ``kafkaref cluster``:
start a ZooKeeper ensemble (``harness.zookeeper``, 1 or 3 nodes), then brokers 1..N with
``harness.launcher.start_broker`` and ``zookeeper.connect`` in their configuration; wait
until the cluster is healthy; kill a broker (SIGKILL), restart it on the same port and
data directory, stop everything.  Healthy means: every running broker is registered in
``/brokers/ids`` (read with kazoo), no other is, and every running broker answers
Metadata (over the wire, ``harness.cluster_metadata``) listing exactly the running
brokers, a controller among them, and a leader among them for every partition.

With ``zookeeper_links=True`` every broker reaches ZooKeeper through proxies of this
process (``harness.zookeeper_links``): :meth:`LocalCluster.cut_from_zookeeper` partitions
one broker from ZooKeeper while it keeps serving, :meth:`LocalCluster.heal_zookeeper_link`
ends that.

Every change is written to ``<data-dir>/cluster.json`` (``harness.cluster_state``), so a
cluster started by one process can be driven from another: :meth:`LocalCluster.attach`
reads it, and a cluster made with ``detached=True`` forgets its child processes instead
of killing them when the harness exits.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import attrs
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError

from harness import cluster_state as cs
from harness.cluster_health import ClusterError, ZooKeeperView, health_problems
from harness.cluster_metadata import ClusterView, MetadataError, fetch_metadata
from harness.launcher import DEFAULT_COMMAND, BrokerProcess, start_broker
from harness.zookeeper import ZooKeeperEnsemble, ZooKeeperNode
from harness.zookeeper_links import ZooKeeperLinks

__all__ = ["ClusterError", "LocalCluster"]

HEALTHY_TIMEOUT_S = 120.0
BROKER_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.1
_T = TypeVar("_T")

Progress = Callable[[str], None]
"""Told, in words, what the cluster is doing now (``kafkaref cluster up`` shows it)."""


def _quiet(_: str) -> None:
    """The default progress reporter: says nothing."""


def wait_until(condition: Callable[[], _T | None], timeout_s: float, what: Callable[[], str]) -> _T:
    """Poll ``condition`` until it returns something other than None (or False); raise
    ClusterError with ``what()`` (the reason it is still missing) at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise ClusterError(f"after {timeout_s:g} s: {what()}")
        time.sleep(_POLL_S)  # polling interval of a condition wait with a deadline


@attrs.define(eq=False)
class LocalCluster:
    """ZooKeeper plus brokers ``1..brokers`` under ``work_dir``; see the module docstring.

    ``broker_config`` (Kafka property names) goes to every broker, after
    ``zookeeper.connect``.  Use :meth:`start` (or ``with``) for a new cluster and
    :meth:`attach` for one that another process started.  ``zookeeper_links``: each
    broker's ZooKeeper traffic goes through proxies the harness can cut (not with
    ``detached``).
    """

    work_dir: Path
    brokers: int = 3
    zookeepers: int = 1
    broker_config: Mapping[str, object] = attrs.Factory(dict)
    host: str = "127.0.0.1"
    command: tuple[str, ...] = DEFAULT_COMMAND
    detached: bool = False
    zookeeper_links: bool = False
    state: cs.ClusterState | None = None
    handles: dict[int, BrokerProcess] = attrs.Factory(dict)
    ensemble: ZooKeeperEnsemble | None = None
    links: ZooKeeperLinks | None = None
    _zk: ZooKeeperView | None = None

    # ----------------------------------------------------------------- life cycle

    def start(
        self, timeout_s: float = HEALTHY_TIMEOUT_S, progress: Progress = _quiet
    ) -> LocalCluster:
        """Start ZooKeeper and every broker, and wait until the cluster is healthy."""
        if self.brokers < 1:
            raise ValueError(f"a cluster needs at least one broker, not {self.brokers}")
        if self.zookeeper_links and self.detached:
            raise ValueError("a detached cluster cannot have ZooKeeper links (they live here)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.ensemble = ZooKeeperEnsemble(self.work_dir, self.zookeepers, host=self.host)
        self.state = cs.ClusterState(
            work_dir=self.work_dir,
            host=self.host,
            command=tuple(self.command),
            zookeeper=[_zk_record(n) for n in self.ensemble.nodes],
            brokers=[],
            broker_config={k: _text(v) for k, v in self.broker_config.items()},
        )
        try:
            plural = "node" if self.zookeepers == 1 else "nodes"
            progress(f"starting ZooKeeper ({self.zookeepers} {plural})")
            self.ensemble.start()
            for record, node in zip(self.state.zookeeper, self.ensemble.nodes, strict=True):
                record.pid = None if node.process is None else node.process.pid
            self._save()
            config = {"zookeeper.connect": self.ensemble.connect_string, **self.broker_config}
            if self.zookeeper_links:
                self.links = ZooKeeperLinks(self.ensemble.connect_string, self.host)
            for broker_id in range(1, self.brokers + 1):
                progress(f"starting broker {broker_id}")
                if self.links is not None:
                    config["zookeeper.connect"] = self.links.connect_for(broker_id)
                handle = start_broker(
                    broker_id,
                    work_dir=self.work_dir,
                    config=config,
                    host=self.host,
                    command=self.command,
                    timeout=BROKER_START_TIMEOUT_S,
                )
                self.handles[broker_id] = handle
                self.state.brokers.append(
                    cs.BrokerRecord(
                        broker_id, handle.port, handle.data_dir, handle.config_file, handle.pid
                    )
                )
                self._forget_child(handle)
                self._save()
            progress("waiting until every broker is registered and every partition has a leader")
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        if self.detached and self.ensemble is not None:
            for node in self.ensemble.nodes:
                node.process = None  # left running; `cluster down` stops it by its pid
        return self

    @classmethod
    def attach(cls, work_dir: Path) -> LocalCluster:
        """The cluster that another process started in ``work_dir`` (from its state file);
        cs.StateError when there is none.  Brokers restarted from here are left running."""
        state = cs.load_state(work_dir)
        cluster = cls(
            work_dir=work_dir,
            brokers=len(state.brokers),
            zookeepers=len(state.zookeeper),
            broker_config=dict(state.broker_config),
            host=state.host,
            command=state.command,
            detached=True,
            state=state,
        )
        for record in state.brokers:
            cluster.handles[record.broker_id] = BrokerProcess(
                broker_id=record.broker_id,
                host=state.host,
                port=record.port,
                data_dir=record.data_dir,
                work_dir=work_dir,
                config_file=record.config_file,
                command=state.command,
            )
        return cluster

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop every broker (SIGTERM, SIGKILL after ``timeout_s``), then ZooKeeper, and
        remove the state file.  The data directories stay."""
        self.close_zk_client()
        # All brokers shut down at once: the wait is the slowest one's, not their sum.
        for broker_id in sorted(self.handles):
            if self.state is not None and self.alive(broker_id):
                record = self.state.broker(broker_id)
                cs.send_signal(record.pid, record.marker(), signal.SIGTERM)
        for broker_id in sorted(self.handles):
            self._terminate_broker(broker_id, timeout_s)
        if self.links is not None:
            self.links.close()
            self.links = None
        if self.ensemble is not None and any(n.process is not None for n in self.ensemble.nodes):
            self.ensemble.stop()
        if self.state is not None:
            for z in self.state.zookeeper:
                cs.terminate(z.pid, z.marker(), timeout_s)
                z.pid = None
        cs.remove_state(self.work_dir)

    def __enter__(self) -> LocalCluster:
        return self.start() if self.state is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ brokers

    @property
    def broker_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.handles))

    @property
    def bootstrap(self) -> str:
        """Every broker's ``HOST:PORT``, comma-separated: a client's ``bootstrap.servers``."""
        return ",".join(self.handles[i].bootstrap for i in self.broker_ids)

    @property
    def connect_string(self) -> str:
        """ZooKeeper's address (``zookeeper.connect``)."""
        return self._state().connect_string

    def broker(self, broker_id: int) -> BrokerProcess:
        """The broker's handle; ClusterError when the cluster has no such broker."""
        try:
            return self.handles[broker_id]
        except KeyError:
            known = ", ".join(str(i) for i in self.broker_ids)
            raise ClusterError(f"no broker {broker_id} (the brokers are {known})") from None

    def alive(self, broker_id: int) -> bool:
        """Whether the broker's process runs."""
        handle = self.broker(broker_id)
        if handle.process is not None:
            return handle.alive()
        record = self._state().broker(broker_id)
        return cs.pid_running(record.pid, record.marker())

    def running(self) -> tuple[int, ...]:
        """The brokers whose processes run."""
        return tuple(i for i in self.broker_ids if self.alive(i))

    def pid(self, broker_id: int) -> int | None:
        return self._state().broker(broker_id).pid if self.alive(broker_id) else None

    def kill(self, broker_id: int) -> None:
        """SIGKILL the broker (a crash) and wait until its process is gone."""
        handle = self.broker(broker_id)
        record = self._state().broker(broker_id)
        if handle.process is not None:
            handle.kill()
        elif not cs.signal_and_wait(record.pid, record.marker(), signal.SIGKILL, 10.0):
            raise ClusterError(f"broker {broker_id} (pid {record.pid}) survived SIGKILL")
        record.pid = None
        self._save()

    def stop_broker(self, broker_id: int, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the broker (a clean shutdown), SIGKILL after ``timeout_s``."""
        self.broker(broker_id)
        self._terminate_broker(broker_id, timeout_s)
        self._save()

    def restart(self, broker_id: int, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Start the broker again on its port and data directory (stopping it cleanly first
        if it runs), and wait until it has registered in ZooKeeper with a new session."""
        handle = self.broker(broker_id)
        if self.alive(broker_id):
            self.stop_broker(broker_id)
        stale_owner = self._registration_owner(broker_id)
        handle.start(BROKER_START_TIMEOUT_S)
        self._state().broker(broker_id).pid = handle.pid
        self._forget_child(handle)
        self._save()

        def registered() -> bool:
            owner = self._registration_owner(broker_id)
            return owner is not None and owner != stale_owner

        wait_until(
            registered,
            timeout_s,
            lambda: f"broker {broker_id} has not registered in /brokers/ids with a new session",
        )

    # ------------------------------------------------------- ZooKeeper links

    def cut_from_zookeeper(self, broker_id: int) -> None:
        """Partition the broker from ZooKeeper; it keeps running and serving (its session
        expires after zookeeper.session.timeout.ms).  Needs ``zookeeper_links``."""
        self._zookeeper_links(broker_id).cut(broker_id)

    def heal_zookeeper_link(self, broker_id: int) -> None:
        """Let the broker reach ZooKeeper again."""
        self._zookeeper_links(broker_id).heal(broker_id)

    def cut_off(self) -> frozenset[int]:
        """The brokers partitioned from ZooKeeper now."""
        return frozenset() if self.links is None else self.links.cut_off

    def _zookeeper_links(self, broker_id: int) -> ZooKeeperLinks:
        self.broker(broker_id)
        if self.links is None:
            raise ClusterError("the cluster was started without zookeeper_links")
        return self.links

    def _terminate_broker(self, broker_id: int, timeout_s: float) -> None:
        handle = self.handles[broker_id]
        record = self.state.broker(broker_id) if self.state is not None else None
        if handle.process is not None:
            with contextlib.suppress(TimeoutError):  # the launcher has killed it then
                handle.stop(timeout_s)
        elif record is not None:
            cs.terminate(record.pid, record.marker(), timeout_s)
        if record is not None:
            record.pid = None

    def _forget_child(self, handle: BrokerProcess) -> None:
        """In a detached cluster, let the broker outlive this process (the launcher kills
        the processes it still holds when the harness exits)."""
        if self.detached:
            handle.process = None

    # --------------------------------------------------------------- ZooKeeper

    def zk(self) -> KazooClient:
        """A kazoo client of the cluster's ZooKeeper (read only, by this harness's rule)."""
        return self._zookeeper().client()

    def _zookeeper(self) -> ZooKeeperView:
        if self._zk is None:
            self._zk = ZooKeeperView(self.connect_string, start_timeout_s=15.0)
        return self._zk

    def close_zk_client(self) -> None:
        if self._zk is not None:
            self._zk.close()
            self._zk = None

    def registered(self) -> frozenset[int]:
        """The broker ids in ``/brokers/ids``."""
        return self._zookeeper().registered()

    def _registration_owner(self, broker_id: int) -> int | None:
        """The ZooKeeper session that owns ``/brokers/ids/<id>`` (None: not registered)."""
        return self._zookeeper().registration_owner(broker_id)

    def controller(self) -> tuple[int, int] | None:
        """(broker id in ``/controller``, value of ``/controller_epoch``), or None."""
        try:
            data, _ = self.zk().get("/controller")
            epoch, _ = self.zk().get("/controller_epoch")
        except NoNodeError:
            return None
        except KazooException as exc:
            raise ClusterError(f"reading /controller: {exc}") from exc
        return int(json.loads(data)["brokerid"]), int(epoch.decode())

    # ---------------------------------------------------------------- metadata

    def metadata(self, broker_id: int | None = None, timeout_s: float = 5.0) -> ClusterView:
        """Metadata from ``broker_id`` (default: the first running broker that answers)."""
        candidates = [broker_id] if broker_id is not None else list(self.running())
        errors = []
        for i in candidates:
            handle = self.broker(i)
            try:
                return fetch_metadata(handle.host, handle.port, timeout_s)
            except MetadataError as exc:
                errors.append(str(exc))
        raise ClusterError("no broker answered Metadata: " + ("; ".join(errors) or "none runs"))

    def health_problems(self) -> list[str]:
        """What keeps the cluster from being healthy now (empty: healthy)."""
        running = frozenset(self.running())
        views: dict[str, ClusterView | str] = {}
        for i in sorted(running):
            try:
                views[f"broker {i}"] = self.metadata(i)
            except ClusterError as exc:
                views[f"broker {i}"] = str(exc)
        registered = self.registered() if running else frozenset()
        return health_problems(running, registered, views, leaders=True)

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Wait until :meth:`health_problems` is empty; ClusterError naming them if not."""
        last: list[str] = []

        def healthy() -> bool:
            last[:] = self.health_problems()
            return not last

        wait_until(healthy, timeout_s, lambda: "the cluster is not healthy: " + "; ".join(last))

    def wait_for_metadata(
        self,
        condition: Callable[[ClusterView], bool],
        timeout_s: float,
        what: str,
        broker_id: int | None = None,
    ) -> ClusterView:
        """Wait until the Metadata of ``broker_id`` (default: the first running broker that
        answers) satisfies ``condition``."""
        last: list[str] = []

        def check() -> ClusterView | None:
            try:
                view = self.metadata(broker_id)
            except ClusterError as exc:
                last[:] = [str(exc)]
                return None
            last[:] = [str(view.partitions)]
            return view if condition(view) else None

        return wait_until(check, timeout_s, lambda: f"{what}; last seen: {' '.join(last)}")

    # ------------------------------------------------------------------ helpers

    def _state(self) -> cs.ClusterState:
        if self.state is None:
            raise ClusterError("the cluster has not been started")
        return self.state

    def _save(self) -> None:
        if self.state is not None:
            cs.save_state(self.state)


def _zk_record(node: ZooKeeperNode) -> cs.ZooKeeperRecord:
    return cs.ZooKeeperRecord(
        myid=node.myid,
        client_port=node.client_port,
        peer_port=node.peer_port,
        election_port=node.election_port,
        data_dir=node.data_dir,
    )


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
