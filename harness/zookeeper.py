"""A private ZooKeeper for a local cluster: one node, or an ensemble of three.

Runs Debian's ``zookeeper`` package (``/usr/share/java/zookeeper.jar``, started as
``QuorumPeerMain`` on a generated ``zoo.cfg``) as child processes, each with its own data
directory and free ports, the admin server off, and the ``srvr`` four-letter word on so
that readiness is a question ZooKeeper itself answers ("Mode: standalone", "leader" or
"follower").  Nothing here knows about brokers.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import attrs

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
JAVA = "java"
TICK_MS = 500
READY_TIMEOUT_S = 60.0
SERVING_MODES = ("standalone", "leader", "follower")


class ZooKeeperError(RuntimeError):
    """ZooKeeper could not be started or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def four_letter_word(host: str, port: int, word: str, timeout_s: float = 1.0) -> str:
    """ZooKeeper's answer to a four-letter word, or "" when it does not answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.sendall(word.encode())
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode("utf-8", "replace")
    except OSError:
        return ""


def server_mode(host: str, port: int) -> str | None:
    """The node's mode from ``srvr`` (standalone, leader, follower), or None."""
    for line in four_letter_word(host, port, "srvr").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


@attrs.define
class ZooKeeperNode:
    """One ZooKeeper server process."""

    myid: int
    host: str
    client_port: int
    peer_port: int
    election_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def config(self, ensemble: list[ZooKeeperNode]) -> str:
        lines = [
            f"tickTime={TICK_MS}",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.data_dir / 'data'}",
            f"clientPort={self.client_port}",
            f"clientPortAddress={self.host}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=srvr,ruok,mntr",
            "maxClientCnxns=0",
            # Sessions as short as Kafka's tests use (zookeeper.session.timeout.ms 18000
            # by default) must be allowed: minSessionTimeout defaults to 2 ticks.
            f"minSessionTimeout={2 * TICK_MS}",
            "maxSessionTimeout=60000",
        ]
        if len(ensemble) > 1:
            lines += [f"server.{n.myid}={n.host}:{n.peer_port}:{n.election_port}" for n in ensemble]
        return "\n".join(lines) + "\n"

    def start(self, ensemble: list[ZooKeeperNode]) -> None:
        if self.running:
            return
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        if len(ensemble) > 1:
            (self.data_dir / "data" / "myid").write_text(f"{self.myid}\n")
        cfg = self.data_dir / "zoo.cfg"
        cfg.write_text(self.config(ensemble))
        log = open(self.data_dir / "zookeeper.out", "ab")  # noqa: SIM115 - child's stdout
        try:
            self.process = subprocess.Popen(
                [
                    JAVA,
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-cp",
                    str(ZOOKEEPER_JAR),
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                    str(cfg),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as e:
            raise ZooKeeperError(f"cannot run {JAVA}: {e}") from e
        finally:
            log.close()

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL the server and reap it."""
        if self.process is not None:
            self.signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def mode(self) -> str | None:
        return server_mode(self.host, self.client_port) if self.running else None

    def output_tail(self, lines: int = 20) -> str:
        path = self.data_dir / "zookeeper.out"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@attrs.define
class ZooKeeperEnsemble:
    """A private ZooKeeper of ``size`` nodes (1 or 3) under ``base_dir``."""

    base_dir: Path
    size: int = 1
    host: str = "127.0.0.1"
    nodes: list[ZooKeeperNode] = attrs.Factory(list)

    def __attrs_post_init__(self) -> None:
        if self.size not in (1, 3):
            raise ValueError(f"a ZooKeeper ensemble of {self.size} nodes: use 1 or 3")
        if not self.nodes:
            self.nodes = [
                ZooKeeperNode(
                    myid=i + 1,
                    host=self.host,
                    client_port=free_port(self.host),
                    peer_port=free_port(self.host),
                    election_port=free_port(self.host),
                    data_dir=self.base_dir / f"zookeeper-{i + 1}",
                )
                for i in range(self.size)
            ]

    @property
    def connect_string(self) -> str:
        """The ``zookeeper.connect`` string for clients."""
        return ",".join(n.address for n in self.nodes)

    def start(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Start every node and wait until each serves (a quorum has formed)."""
        if shutil.which(JAVA) is None or not ZOOKEEPER_JAR.exists():
            raise ZooKeeperError(
                "ZooKeeper is not installed: `apt-get install zookeeper` (Debian's package)"
            )
        for node in self.nodes:
            node.start(self.nodes)
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until every running node answers ``srvr`` with a serving mode."""
        deadline = time.monotonic() + timeout_s
        while True:
            waiting = [n for n in self.nodes if n.running and n.mode() not in SERVING_MODES]
            dead = [n for n in self.nodes if n.process is not None and not n.running]
            if dead:
                n = dead[0]
                raise ZooKeeperError(f"ZooKeeper node {n.myid} exited:\n{n.output_tail()}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                n = waiting[0]
                raise ZooKeeperError(
                    f"ZooKeeper node {n.myid} ({n.address}) not serving after "
                    f"{timeout_s:.0f} s:\n{n.output_tail()}"
                )
            time.sleep(0.05)  # polling interval of a condition wait with a deadline

    def kill(self, myid: int) -> None:
        self.node(myid).kill()

    def restart(self, myid: int, timeout_s: float = READY_TIMEOUT_S) -> None:
        node = self.node(myid)
        node.kill()
        node.start(self.nodes)
        self.wait_ready(timeout_s)

    def node(self, myid: int) -> ZooKeeperNode:
        for n in self.nodes:
            if n.myid == myid:
                return n
        raise KeyError(f"no ZooKeeper node {myid}")

    def leader(self) -> ZooKeeperNode | None:
        for n in self.nodes:
            if n.mode() in ("leader", "standalone"):
                return n
        return None

    def stop(self) -> None:
        """Stop every node (SIGTERM, then SIGKILL after a grace period)."""
        for n in self.nodes:
            n.signal(signal.SIGTERM)
        for n in self.nodes:
            if n.process is not None:
                try:
                    n.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    n.kill()
                n.process = None

    def __enter__(self) -> ZooKeeperEnsemble:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pids(ensemble: ZooKeeperEnsemble) -> list[int]:
    """The process ids of the running nodes (for a nemesis or a status line)."""
    return [n.process.pid for n in ensemble.nodes if n.process is not None and n.running]
