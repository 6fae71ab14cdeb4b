"""Jepsen's *db*: a kafkaref cluster in Docker containers, and the faults done to it.

:class:`ContainerCluster` runs ZooKeeper (1 or 3 nodes) and N brokers from the project
image (``chaos.image``), each in its own container with its own hostname and a fixed
address on a private network of the run (``chaos.docker_util_net``):

* ZooKeeper node n is ``zookeeper-n`` at ``<subnet>.1n`` (10 + n), running Debian's
  ZooKeeper jar on a ``zoo.cfg`` made by ``harness.zookeeper`` (client port 2181);
* broker n is ``broker-n`` at ``<subnet>.(100 + n)``, running
  ``python -m impl.broker --id n --listen <address>:9092`` with a properties file holding
  ``zookeeper.connect`` and the caller's settings; its data directory lives inside its
  container, so it survives a kill and a restart.

The brokers listen on, and advertise, their container's address, which this host
reaches over the network's bridge: a client on the host bootstraps from
:attr:`ContainerCluster.bootstrap`.  Healthy means every running broker registered in
``/brokers/ids`` (read with kazoo from the host) and each one's Metadata listing exactly
the running brokers and a controller among them.

Faults, by node name: :meth:`kill` (SIGKILL), :meth:`stop_node` (SIGTERM), :meth:`start_node`
of a stopped node (waits until it serves again, a broker until it registered with a new
session), :meth:`restart`, :meth:`pause` / :meth:`unpause` (SIGSTOP for every process of
the container, through the cgroup freezer), and :meth:`partition` / :meth:`heal`
(iptables grudges; a node restarted while partitioned gets its rules back).

Every container and the network are labelled with the run id and this process as owner
(``chaos.docker_util``) and removed by :meth:`close`; what a crashed harness left behind
is swept when the next cluster starts, or by ``kafkaref chaos clean``.
"""

from __future__ import annotations

import atexit
import contextlib
import socket
import tempfile
import weakref
from collections.abc import Collection, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
from kazoo.client import KazooClient

from chaos import docker_util as du
from chaos import docker_util_net as net
from chaos.image import VENV
from harness.cluster import ClusterError, wait_until
from harness.cluster_health import ZooKeeperView, health_problems
from harness.cluster_metadata import ClusterView, MetadataError, fetch_metadata
from harness.launcher import READY_LINE, write_properties
from harness.zookeeper import SERVING_MODES, ZOOKEEPER_JAR, ZooKeeperNode, server_mode

__all__ = ["ClusterError", "ContainerCluster", "Node"]

ZK_CLIENT_PORT = 2181
ZK_PEER_PORT = 2888
ZK_ELECTION_PORT = 3888
BROKER_PORT = 9092
CONFIG_DIR = "/etc/kafkaref"
DATA_ROOT = "/var/lib/kafkaref"
START_TIMEOUT_S = 90.0
HEALTHY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30

_open: weakref.WeakSet[ContainerCluster] = weakref.WeakSet()


@attrs.define(eq=False)
class Node:
    """One container of the cluster: ``zookeeper-n`` or ``broker-n``."""

    role: str
    node_id: int
    ip: str
    container: Any = None

    @property
    def name(self) -> str:
        return f"{self.role}-{self.node_id}"


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@attrs.define(eq=False)
class ContainerCluster:
    """ZooKeeper and brokers ``1..brokers`` in containers of ``image``; see the module."""

    image: str
    brokers: int = 3
    zookeepers: int = 1
    broker_config: Mapping[str, object] = attrs.Factory(dict)
    run_id: str = attrs.Factory(du.new_run_id)
    client: Any = None
    network: Any = None
    subnet: str | None = None
    nodes: dict[str, Node] = attrs.Factory(dict)
    grudge: dict[str, frozenset[str]] = attrs.Factory(dict)
    _zk: ZooKeeperView | None = None

    # ----------------------------------------------------------------- life cycle

    def start(
        self, timeout_s: float = HEALTHY_TIMEOUT_S, progress: du.Progress = du.quiet
    ) -> ContainerCluster:
        """Sweep what crashed runs left, then start ZooKeeper and every broker and wait
        until the cluster is healthy.  On any failure everything made is removed."""
        if not 1 <= self.brokers <= 99 or self.zookeepers not in (1, 3, 5):
            raise ValueError(f"{self.brokers} brokers (1-99), {self.zookeepers} ZooKeepers (1/3/5)")
        if self.client is None:
            self.client = du.connect()
        swept = du.sweep(self.client)
        if not swept.empty:
            progress(f"removed leftovers of crashed runs: {len(swept.containers)} containers")
        _open.add(self)
        try:
            self.create_network()
            progress(f"network {self.network.name} on {self.subnet}")
            self.start_zookeeper(progress)
            self.start_brokers(progress)
            progress("waiting until every broker is registered and answers Metadata")
            self.wait_healthy(timeout_s)
        except BaseException:
            self.close()
            raise
        return self

    def create_network(self) -> None:
        name = f"kafkaref-{self.run_id}"
        labels = du.labelled(self.run_id, "network")
        self.network, self.subnet = net.create_network(self.client, name, labels)

    def _create(self, node: Node, command: list[str], files: Mapping[str, str]) -> None:
        assert self.network is not None
        endpoint = self.client.api.create_endpoint_config(ipv4_address=node.ip)
        container = self.client.containers.create(
            self.image,
            command,
            name=f"kafkaref-{self.run_id}-{node.name}",
            hostname=node.name,
            labels=du.labelled(self.run_id, node.role),
            network=self.network.name,
            networking_config={self.network.name: endpoint},
            cap_add=["NET_ADMIN"],
            init=False,
            detach=True,
        )
        node.container = container
        self.nodes[node.name] = node
        container.put_archive("/", du.tar_of_files(files))

    def start_zookeeper(self, progress: du.Progress = du.quiet) -> None:
        """Create and start every ZooKeeper node; wait until each serves."""
        assert self.subnet is not None
        members = [
            ZooKeeperNode(
                myid=i,
                host=net.address(self.subnet, 10 + i),
                client_port=ZK_CLIENT_PORT,
                peer_port=ZK_PEER_PORT,
                election_port=ZK_ELECTION_PORT,
                data_dir=Path(DATA_ROOT) / "zookeeper",
            )
            for i in range(1, self.zookeepers + 1)
        ]
        for member in members:
            node = Node("zookeeper", member.myid, member.host)
            progress(f"starting {node.name} at {node.ip}")
            files = {f"{CONFIG_DIR}/zoo.cfg": member.config(members)}
            if len(members) > 1:
                files[f"{DATA_ROOT}/zookeeper/data/myid"] = f"{member.myid}\n"
            command = ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", str(ZOOKEEPER_JAR)]
            command += ["org.apache.zookeeper.server.quorum.QuorumPeerMain"]
            self._create(node, [*command, f"{CONFIG_DIR}/zoo.cfg"], files)
            node.container.start()
        for node in self.zookeeper_nodes():
            self._wait_zookeeper(node, START_TIMEOUT_S)

    def start_brokers(self, progress: du.Progress = du.quiet) -> None:
        """Create and start every broker; wait until each has announced itself."""
        assert self.subnet is not None
        config = {"zookeeper.connect": self.connect_string, **self.broker_config}
        for broker_id in range(1, self.brokers + 1):
            node = Node("broker", broker_id, net.address(self.subnet, 100 + broker_id))
            progress(f"starting {node.name} at {node.ip}")
            properties = f"{CONFIG_DIR}/broker.properties"
            command = [f"{VENV}/bin/python", "-m", "impl.broker", "--id", str(broker_id)]
            command += ["--listen", f"{node.ip}:{BROKER_PORT}"]
            command += ["--data-dir", f"{DATA_ROOT}/data", "--config", properties]
            self._create(node, command, {properties: _properties_text(config)})
            node.container.start()
        for node in self.broker_nodes():
            self._wait_broker_ready(node, 0, START_TIMEOUT_S)

    def close(self) -> None:
        """Remove every container and the network of this run (also those made by
        another process for the same run id)."""
        if self._zk is not None:
            self._zk.close()
            self._zk = None
        if self.client is not None:
            du.sweep(self.client, run_id=self.run_id)
        self.nodes.clear()
        self.network = None
        _open.discard(self)

    def __enter__(self) -> ContainerCluster:
        return self.start() if self.network is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ----------------------------------------------------------------- lookups

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            raise ClusterError(f"no node {name!r} (the nodes are {sorted(self.nodes)})") from None

    def broker(self, broker_id: int) -> Node:
        return self.node(f"broker-{broker_id}")

    def broker_nodes(self) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.role == "broker"), key=_id)

    def zookeeper_nodes(self) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.role == "zookeeper"), key=_id)

    @property
    def bootstrap(self) -> str:
        """``bootstrap.servers`` for a client on this host: every broker's address."""
        return ",".join(f"{n.ip}:{BROKER_PORT}" for n in self.broker_nodes())

    @property
    def connect_string(self) -> str:
        """``zookeeper.connect``: every ZooKeeper node's address."""
        assert self.subnet is not None
        return ",".join(
            f"{net.address(self.subnet, 10 + i)}:{ZK_CLIENT_PORT}"
            for i in range(1, self.zookeepers + 1)
        )

    def status(self, name: str) -> str:
        """Docker's state of the node's container: running, paused, exited, ..."""
        container = self.node(name).container
        container.reload()
        return str(container.status)

    def logs(self, name: str, lines: int = 60) -> str:
        """The last ``lines`` lines the node's processes wrote (all its runs)."""
        raw: bytes = self.node(name).container.logs(tail=lines)
        return raw.decode("utf-8", "replace")

    # ----------------------------------------------------------------- readiness

    def _ready_count(self, node: Node) -> int:
        """How many times the broker has printed its ready line (one per start)."""
        out = node.container.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        return sum(1 for m in READY_LINE.finditer(out) if int(m.group(1)) == node.node_id)

    def _check_alive(self, node: Node) -> None:
        if self.status(node.name) not in ("running", "paused"):
            raise ClusterError(f"{node.name} exited; its output ends with:\n{self.logs(node.name)}")

    def _wait_broker_ready(self, node: Node, starts_before: int, timeout_s: float) -> None:
        def ready() -> bool:
            self._check_alive(node)
            return self._ready_count(node) > starts_before and _can_connect(node.ip, BROKER_PORT)

        wait_until(
            ready, timeout_s, lambda: f"{node.name} not serving; output:\n{self.logs(node.name)}"
        )

    def _wait_zookeeper(self, node: Node, timeout_s: float) -> None:
        def serving() -> bool:
            self._check_alive(node)
            return server_mode(node.ip, ZK_CLIENT_PORT) in SERVING_MODES

        wait_until(
            serving, timeout_s, lambda: f"{node.name} not serving; output:\n{self.logs(node.name)}"
        )

    # ----------------------------------------------------------------- ZooKeeper view

    def zk(self) -> KazooClient:
        """A kazoo client of the cluster's ZooKeeper, from this host (read only)."""
        return self._zookeeper().client()

    def _zookeeper(self) -> ZooKeeperView:
        if self._zk is None:
            self._zk = ZooKeeperView(self.connect_string, start_timeout_s=30.0)
        return self._zk

    def registered(self) -> frozenset[int]:
        """The broker ids in ``/brokers/ids``."""
        return self._zookeeper().registered()

    def registration_owner(self, broker_id: int) -> int | None:
        """The session owning ``/brokers/ids/<id>`` (None: the broker is not registered)."""
        return self._zookeeper().registration_owner(broker_id)

    def running_brokers(self) -> frozenset[int]:
        """Brokers whose container runs (a paused one counts: it has not crashed)."""
        return frozenset(
            n.node_id for n in self.broker_nodes() if self.status(n.name) in ("running", "paused")
        )

    def health_problems(self) -> list[str]:
        """What keeps the cluster from being healthy now (empty: healthy)."""
        running = self.running_brokers()
        views: dict[str, ClusterView | str] = {}
        for broker_id in sorted(running):
            node = self.broker(broker_id)
            try:
                views[node.name] = fetch_metadata(node.ip, BROKER_PORT, 5.0)
            except MetadataError as exc:
                views[node.name] = str(exc)
        registered = self.registered() if running else frozenset()
        return health_problems(running, registered, views, leaders=False)

    def wait_healthy(self, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        last: list[str] = []

        def healthy() -> bool:
            last[:] = self.health_problems()
            return not last

        wait_until(healthy, timeout_s, lambda: "the cluster is not healthy: " + "; ".join(last))

    # ----------------------------------------------------------------- faults

    def kill(self, name: str) -> None:
        """SIGKILL every process of the node (a crash) and wait until it has stopped."""
        container = self.node(name).container
        if self.status(name) == "paused":
            container.unpause()  # a frozen process cannot take the signal
        with contextlib.suppress(Exception):  # already stopped
            container.kill(signal="SIGKILL")
        container.wait(timeout=STOP_TIMEOUT_S)

    def stop_node(self, name: str, timeout_s: int = STOP_TIMEOUT_S) -> None:
        """SIGTERM the node (a clean shutdown), SIGKILL after ``timeout_s``."""
        self.node(name).container.stop(timeout=timeout_s)

    def start_node(self, name: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Start a stopped node again (same address, same data), restore its partition
        rules, and wait until it serves: a ZooKeeper node until it is in a quorum, a
        broker until it has registered in ZooKeeper with a new session.  A node that is
        partitioned is only started: whether it can serve depends on what it reaches."""
        node = self.node(name)
        if self.status(name) in ("running", "paused"):
            raise ClusterError(f"{name} is already running")
        partitioned = self.partitioned(name)
        starts = self._ready_count(node) if node.role == "broker" else 0
        stale = None
        if node.role == "broker" and not partitioned:
            stale = self.registration_owner(node.node_id)
        node.container.start()
        self._apply(node)
        if partitioned:
            return
        if node.role == "zookeeper":
            self._wait_zookeeper(node, timeout_s)
            return
        self._wait_broker_ready(node, starts, timeout_s)

        def registered() -> bool:
            owner = self.registration_owner(node.node_id)
            return owner is not None and owner != stale

        wait_until(registered, timeout_s, lambda: f"{name} has not registered with a new session")

    def partitioned(self, name: str) -> bool:
        """Whether the node is cut off from some node, or some node from it."""
        return bool(self.grudge.get(name)) or any(name in g for g in self.grudge.values())

    def restart(self, name: str, timeout_s: float = HEALTHY_TIMEOUT_S) -> None:
        """Stop the node cleanly if it runs, then :meth:`start_node` it."""
        if self.status(name) in ("running", "paused"):
            if self.status(name) == "paused":
                self.unpause(name)
            self.stop_node(name)
        self.start_node(name, timeout_s)

    def pause(self, name: str) -> None:
        """Freeze every process of the node (SIGSTOP semantics, via the cgroup freezer)."""
        self.node(name).container.pause()

    def unpause(self, name: str) -> None:
        self.node(name).container.unpause()

    def partition(self, *components: Collection[str]) -> dict[str, frozenset[str]]:
        """Split the network: nodes in different components (the nodes named in none
        form one more) no longer hear from each other.  Replaces any earlier partition;
        returns the grudge applied."""
        return self.drop(net.complete_grudge(components, self.nodes))

    def isolate(self, name: str) -> dict[str, frozenset[str]]:
        """Cut one node off from every other node (this host still reaches it)."""
        return self.partition([name])

    def drop(self, grudge: Mapping[str, Collection[str]]) -> dict[str, frozenset[str]]:
        """Apply a grudge: each node drops traffic from the nodes listed for it (every
        other node's earlier grudge is lifted)."""
        for name, others in grudge.items():
            for other in [name, *others]:
                self.node(other)
        self.grudge = {n: frozenset(grudge.get(n, ())) for n in self.nodes}
        for node in self.nodes.values():
            self._apply(node)
        self.grudge = {n: g for n, g in self.grudge.items() if g}
        return dict(self.grudge)

    def heal(self) -> None:
        """Lift every partition."""
        self.drop({})

    def _apply(self, node: Node) -> None:
        """Make the node's INPUT rules match its grudge (in a paused node through a
        helper container sharing its network namespace; a stopped node has none: its
        rules come back when it starts)."""
        sources = sorted(self.nodes[o].ip for o in self.grudge.get(node.name, ()))
        script = net.iptables_script(sources)
        state = self.status(node.name)
        if state == "running":
            code, output = node.container.exec_run(["sh", "-c", script])
            if code != 0:
                raise ClusterError(f"iptables in {node.name} failed: {output.decode()}")
        elif state == "paused":
            self.client.containers.run(
                self.image,
                ["sh", "-c", script],
                network_mode=f"container:{node.container.id}",
                cap_add=["NET_ADMIN"],
                labels=du.labelled(self.run_id, "iptables"),
                remove=True,
            )


def _id(node: Node) -> int:
    return node.node_id


def _properties_text(config: Mapping[str, object]) -> str:
    """The broker's properties file, as ``harness.launcher.write_properties`` writes it."""
    with tempfile.TemporaryDirectory(prefix="kafkaref-chaos-") as tmp:
        path = write_properties(Path(tmp) / "broker.properties", config)
        return path.read_text(encoding="utf-8")


@atexit.register
def _remove_leftovers() -> None:
    """Never leave containers behind when the harness's process exits normally."""
    for cluster in list(_open):
        with contextlib.suppress(Exception):
            cluster.close()
