"""What ``kafkaref bench`` measures: a Kafka bootstrap address, an in-process mock cluster,
or a local kafkaref cluster or single broker started for the run.

A target opens (checking it can be reached), creates and deletes the bench's topics and
closes.  Any Kafka-protocol system is reached through confluent-kafka's AdminClient;
``mock`` starts librdkafka's mock cluster, which has no CreateTopics, so its topics are
made with the mock's own call.  ``--cluster N`` starts a local N-broker kafkaref cluster
(``harness.cluster``) and a single kafkaref broker (``harness.launcher``), each in a
temporary directory removed at ``close``.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import confluent_kafka
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from harness.cluster import ClusterError, LocalCluster
from harness.launcher import BrokerProcess, BrokerStartError, start_broker
from harness.mock_cluster import LibrdkafkaUnavailableError, MockCluster, MockClusterError
from harness.zookeeper import ZooKeeperError

MOCK = "mock"
"""The target name that starts librdkafka's mock cluster (one broker) for the run."""


class BootstrapUnreachableError(RuntimeError):
    """The target cannot be reached, or cannot be started (the message says which and why)."""


class TopicSetupError(RuntimeError):
    """The target did not create the bench's topic."""


class Target(Protocol):
    """A system under measurement, as the bench needs it."""

    name: str
    """What the user passed: HOST:PORT or ``mock``."""
    bootstrap: str
    """The ``bootstrap.servers`` the clients connect to."""
    description: str
    """One line for the report header."""

    def create_topic(self, topic: str, partitions: int) -> None: ...

    def delete_topic(self, topic: str) -> None: ...

    def close(self) -> None: ...


def open_target(name: str, *, replication_factor: int, timeout_s: float) -> Target:
    """Start (``mock``) or reach (HOST:PORT) a target; BootstrapUnreachableError if not."""
    if name == MOCK:
        return MockTarget()
    return KafkaTarget(name, replication_factor=replication_factor, timeout_s=timeout_s)


def client_config(bootstrap: str) -> dict[str, str | int | float | bool]:
    """Settings every bench client shares: the bootstrap, and librdkafka's log kept quiet.

    Errors still reach the bench (as exceptions, delivery errors and error records); the
    log would only repeat them, interleaved with the table.
    """
    return {"bootstrap.servers": bootstrap, "log_level": 0}


class KafkaTarget:
    """Any Kafka-protocol system at a bootstrap address; topics made with CreateTopics."""

    def __init__(self, bootstrap: str, *, replication_factor: int, timeout_s: float) -> None:
        self.name = bootstrap
        self.bootstrap = bootstrap
        self._replication_factor = replication_factor
        self._timeout_s = timeout_s
        self._admin = AdminClient(client_config(bootstrap))
        try:
            metadata = self._admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise BootstrapUnreachableError(
                f"cannot reach {bootstrap} within {timeout_s:g} s: {exc.args[0]}"
            ) from exc
        brokers = len(metadata.brokers)
        self.description = f"{bootstrap} ({brokers} broker{'s' if brokers != 1 else ''})"

    def create_topic(self, topic: str, partitions: int) -> None:
        futures = self._admin.create_topics(
            [NewTopic(topic, partitions, self._replication_factor)],
            operation_timeout=self._timeout_s,
            request_timeout=self._timeout_s,
        )
        try:
            futures[topic].result(timeout=self._timeout_s)
        except KafkaException as exc:
            raise TopicSetupError(f"{self.name} did not create {topic}: {exc.args[0]}") from exc

    def delete_topic(self, topic: str) -> None:
        futures = self._admin.delete_topics([topic], operation_timeout=self._timeout_s)
        futures[topic].result(timeout=self._timeout_s)

    def close(self) -> None:
        """Nothing to stop: the AdminClient is freed with this object."""


class MockTarget:
    """librdkafka's mock cluster with one broker, started in this process for the run."""

    def __init__(self) -> None:
        try:
            self._cluster = MockCluster(brokers=1)
        except (LibrdkafkaUnavailableError, MockClusterError) as exc:
            raise BootstrapUnreachableError(f"cannot start the mock cluster: {exc}") from exc
        self.name = MOCK
        self.bootstrap = self._cluster.bootstrap
        version = confluent_kafka.libversion()[0]
        self.description = f"librdkafka {version} mock cluster, 1 broker, at {self.bootstrap}"

    def create_topic(self, topic: str, partitions: int) -> None:
        try:
            self._cluster.create_topic(topic, partitions)
        except MockClusterError as exc:
            raise TopicSetupError(str(exc)) from exc

    def delete_topic(self, topic: str) -> None:
        """Nothing to do: the whole cluster goes at ``close``."""

    def close(self) -> None:
        self._cluster.close()


class LocalClusterTarget:
    """A local kafkaref cluster of ``brokers`` brokers (one ZooKeeper node, Kafka's default
    settings), started for the run; topics with replication factor ``brokers``."""

    def __init__(self, brokers: int, *, timeout_s: float) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="kafkaref-bench-cluster-"))
        self._cluster = LocalCluster(self._dir, brokers=brokers)
        try:
            self._cluster.start(timeout_s=max(timeout_s, 60.0))
            self._kafka = KafkaTarget(
                self._cluster.bootstrap, replication_factor=brokers, timeout_s=timeout_s
            )
        except (ClusterError, BrokerStartError, ZooKeeperError) as exc:
            self.close()
            raise BootstrapUnreachableError(f"cannot start a local cluster: {exc}") from exc
        except BaseException:
            self.close()
            raise
        self.name = f"cluster:{brokers}"
        self.bootstrap = self._cluster.bootstrap
        self.description = (
            f"local kafkaref cluster, {brokers} brokers, replication factor {brokers}, "
            f"at {self.bootstrap}"
        )

    def create_topic(self, topic: str, partitions: int) -> None:
        self._kafka.create_topic(topic, partitions)

    def delete_topic(self, topic: str) -> None:
        self._kafka.delete_topic(topic)

    def close(self) -> None:
        self._cluster.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class LocalBrokerTarget:
    """One kafkaref broker in single-broker mode (no ZooKeeper), started for the run;
    topics with replication factor 1."""

    def __init__(self, *, timeout_s: float) -> None:
        try:
            self._broker: BrokerProcess = start_broker(1)
        except BrokerStartError as exc:
            raise BootstrapUnreachableError(f"cannot start a local broker: {exc}") from exc
        try:
            self._kafka = KafkaTarget(
                self._broker.bootstrap, replication_factor=1, timeout_s=timeout_s
            )
        except BaseException:
            self._broker.close()
            raise
        self.name = "broker"
        self.bootstrap = self._broker.bootstrap
        self.description = (
            f"local kafkaref broker, single-broker mode, replication factor 1, at {self.bootstrap}"
        )

    def create_topic(self, topic: str, partitions: int) -> None:
        self._kafka.create_topic(topic, partitions)

    def delete_topic(self, topic: str) -> None:
        self._kafka.delete_topic(topic)

    def close(self) -> None:
        self._broker.close()
