"""``kafkaref conform --local --brokers N``: the conformance check against a local
replicated cluster the harness starts, faults and stops.

The harness starts a private ZooKeeper and N kafkaref brokers (``harness.cluster.
LocalCluster``, configured by :data:`CLUSTER_BROKER_CONFIG`: short ZooKeeper sessions, a
short replica lag, min.insync.replicas 2), and runs the cluster state machine
(``harness.conform_cluster_machine``) against it: one replicated topic per example,
produce/fetch/list offsets to chosen brokers, kills, restarts, pauses, resumes, cuts of a
broker's network link to ZooKeeper (each broker reaches ZooKeeper through proxies of the
harness, ``harness.zookeeper_links``) and their heals, waits for the cluster to settle,
every answer held to the spec's set of reachable states
(``harness.conform_cluster_oracle``).  Between examples every cut is healed, every broker
resumed or started again, and the cluster waits until it is healthy.

A seeded defect that needs a cluster (``needs`` in the broker's registry, ``python -m
impl.broker --list-mutants``; the harness never imports it) makes ``--local --mutant NAME``
start such a cluster by itself (:func:`mutant_needs`).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import attrs

from harness import client_admin
from harness.client import ClientError
from harness.cluster import ClusterError, LocalCluster
from harness.conform_check import ExampleRun, Tally
from harness.conform_cluster_exec import ClusterControl, ClusterExecutor
from harness.conform_cluster_machine import ClusterMachine
from harness.conform_cluster_oracle import ClusterOracle
from harness.conform_session import Session, TargetUnavailableError, open_session
from harness.conform_target import LOCAL, TargetDeclaration
from harness.launcher import BrokerStartError
from harness.mutant_sweep import list_mutants
from harness.zookeeper import ZOOKEEPER_JAR, ZooKeeperError

DEFAULT_BROKERS = 3
MIN_INSYNC_REPLICAS = 2
MUTANT_PROPERTY = "kafkaref.mutant"
SESSION_TIMEOUT_MS = 6000
"""zookeeper.session.timeout.ms: a killed or paused broker leaves the cluster after this."""
REPLICA_LAG_MS = 4000
"""replica.lag.time.max.ms: shorter than the session, so that a leader paused until a new
one is elected finds its followers out of sync as soon as it resumes."""

CLUSTER_BROKER_CONFIG: Mapping[str, object] = {
    "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
    "replica.lag.time.max.ms": REPLICA_LAG_MS,
    "min.insync.replicas": MIN_INSYNC_REPLICAS,
    "group.initial.rebalance.delay.ms": 0,
}

CLUSTER_LOCAL = attrs.evolve(
    LOCAL,
    name="kafkaref (local cluster)",
    config={"min.insync.replicas": str(MIN_INSYNC_REPLICAS)},
)
"""The local cluster's declaration (the spec's min.insync.replicas is the brokers')."""

FEATURES_ON_A_CLUSTER: Mapping[str, str] = {
    "idempotence": "not yet checked on a managed cluster",
    "groups": "not yet checked on a managed cluster",
    "may_kill_brokers": "checked (kill_broker, start_broker)",
    "may_pause_brokers": "checked (pause_broker, resume_broker; never the controller)",
}


def mutant_needs(name: str) -> str | None:
    """What the broker's registry says seeded defect ``name`` needs (None: unknown name,
    or the registry could not be read; the broker then refuses the name itself)."""
    try:
        registry = list_mutants()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return next((str(m["needs"]) for m in registry if m["name"] == name), None)


class ClusterExampleRun(ExampleRun):
    """An example on the managed cluster: its cleanup heals the cluster first."""

    def cleanup(self) -> None:
        assert isinstance(self.executor, ClusterExecutor)
        self.executor.cleanup()


class ClusterSession(Session):
    """A session whose target is a local cluster the harness holds (``control``)."""

    machine_class = ClusterMachine
    feature_overrides = FEATURES_ON_A_CLUSTER

    def __init__(self, base: Session, control: ClusterControl) -> None:
        try:
            metadata = client_admin.metadata(base.client, [])
        except (ClientError, OSError) as e:
            raise TargetUnavailableError(f"no Metadata from the cluster: {e}") from e
        super().__init__(base.client, base.declaration, metadata)
        self.notes += base.notes
        self.cluster_control = control
        self.control = control

    def new_example(self, tally: Tally | None = None) -> ExampleRun:
        tally = self.tally if tally is None else tally
        tally.examples += 1
        self.namespaces += 1
        namespace = f"conform-{self.run_id}-{self.namespaces}-"
        controller = self.cluster_control.controller()
        executor = ClusterExecutor(self.cluster_control, namespace, self.config.min_insync_replicas)
        oracle = ClusterOracle(
            self.config, self.brokers, controller if controller is not None else self.brokers[0]
        )
        return ClusterExampleRun(executor, oracle, tally, self.on_step)


@contextlib.contextmanager
def local_cluster_session(
    declaration: TargetDeclaration | None = None,
    brokers: int = DEFAULT_BROKERS,
    mutant: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> Iterator[ClusterSession]:
    """Start ZooKeeper and ``brokers`` brokers (with the seeded defect ``mutant``), yield a
    session on them, stop everything at the end."""
    if not ZOOKEEPER_JAR.exists():
        raise TargetUnavailableError("ZooKeeper is not installed (`apt-get install zookeeper`)")
    if brokers < MIN_INSYNC_REPLICAS:
        raise TargetUnavailableError(
            f"a managed cluster needs at least {MIN_INSYNC_REPLICAS} brokers"
        )
    work = Path(tempfile.mkdtemp(prefix="kafkaref-conform-cluster-"))
    config = dict(CLUSTER_BROKER_CONFIG)
    if mutant:
        config[MUTANT_PROPERTY] = mutant
    cluster = LocalCluster(
        work / "cluster", brokers=brokers, broker_config=config, zookeeper_links=True
    )
    try:
        try:
            cluster.start(progress=progress or (lambda _: None))
        except (ClusterError, BrokerStartError, ZooKeeperError, OSError) as e:
            raise TargetUnavailableError(f"cannot start the local cluster: {e}") from e
        control = ClusterControl(cluster)
        first = cluster.broker(cluster.broker_ids[0])
        base = open_session(first.host, first.port, declaration or CLUSTER_LOCAL)
        session = ClusterSession(base, control)
        try:
            yield session
        finally:
            session.close()
            for b in sorted(control.cut_off):
                control.heal_link(b)
            for b in sorted(control.paused):
                control.resume(b)
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
