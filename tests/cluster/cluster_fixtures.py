"""Fixtures and helpers of the launcher's tests (``kafkaref cluster``, failover): a local
three-broker cluster (``harness.cluster.LocalCluster``) with short timeouts, topics made
through confluent-kafka's AdminClient, the ``kafkaref`` command line, and reading a
partition back to its high watermark.  Every wait is a condition with a deadline."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from harness.cluster import LocalCluster
from harness.cluster_metadata import ClusterView
from harness.zookeeper import ZOOKEEPER_JAR

SESSION_TIMEOUT_MS = 6000
"""zookeeper.session.timeout.ms: a killed broker's registration ends after this."""
REPLICA_LAG_MS = 5000
"""replica.lag.time.max.ms: a follower that has not caught up for this long leaves the ISR."""

CLUSTER_CONFIG: Mapping[str, object] = {
    "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
    "replica.lag.time.max.ms": REPLICA_LAG_MS,
}
DEADLINE_S = 60.0


def require_zookeeper() -> None:
    if not ZOOKEEPER_JAR.exists():
        pytest.skip("ZooKeeper is not installed (`apt-get install zookeeper`)")


@contextlib.contextmanager
def running_cluster(tmp_path: Path, brokers: int = 3) -> Iterator[LocalCluster]:
    """Brokers and one ZooKeeper node, healthy; stopped at the end, when the tail of each
    broker's stderr is printed (pytest shows it when the test failed).  A test module's
    ``cluster`` fixture wraps this."""
    require_zookeeper()
    local = LocalCluster(tmp_path / "cluster", brokers=brokers, broker_config=CLUSTER_CONFIG)
    local.start()
    try:
        yield local
    finally:
        for broker_id, handle in local.handles.items():
            print(f"--- broker {broker_id} stderr ---\n{handle.stderr_tail(60, all_runs=True)}")
        local.stop()


def create_topic(
    cluster: LocalCluster,
    name: str,
    partitions: int,
    replication_factor: int,
    config: Mapping[str, str] | None = None,
) -> ClusterView:
    """Create the topic with CreateTopics and wait until every partition has a leader and
    its whole replica set in the ISR, as every running broker's Metadata shows."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = NewTopic(name, partitions, replication_factor, config=dict(config or {}))
    futures = admin.create_topics([topic], operation_timeout=30, request_timeout=30)
    futures[name].result(timeout=DEADLINE_S)
    return wait_in_sync(cluster, name, partitions)


def in_sync(view: ClusterView, topic: str, partitions: int, running: frozenset[int]) -> bool:
    """Every partition of ``topic`` has a running leader and its full replica set in sync."""
    ps = view.topic(topic)
    return len(ps) == partitions and all(
        p.leader in running and sorted(p.isr) == sorted(p.replicas) for p in ps
    )


def wait_in_sync(cluster: LocalCluster, topic: str, partitions: int) -> ClusterView:
    running = frozenset(cluster.running())
    return cluster.wait_for_metadata(
        lambda v: in_sync(v, topic, partitions, running),
        DEADLINE_S,
        f"every partition of {topic} led by a running broker with its whole replica set in sync",
    )


def read_partition(bootstrap: str, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """Every record of the partition from its log start to its high watermark, as
    (offset, value); fails if the offsets come with a gap or out of order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-check",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
    )
    try:
        tp = KafkaTopicPartition(topic, partition)
        low, high = consumer.get_watermark_offsets(tp, timeout=30, cached=False)
        records: list[tuple[int, bytes]] = []
        if high <= low:
            return records
        consumer.assign([KafkaTopicPartition(topic, partition, OFFSET_BEGINNING)])
        expected = low
        deadline = time.monotonic() + DEADLINE_S
        while expected < high:
            assert time.monotonic() < deadline, f"read {topic}-{partition} to {expected} of {high}"
            for msg in consumer.consume(min(1000, high - expected), timeout=0.5):
                err = msg.error()
                if err is not None:
                    raise KafkaException(err)
                assert msg.offset() == expected, (msg.offset(), expected)
                records.append((msg.offset() or 0, msg.value() or b""))
                expected += 1
        return records
    finally:
        consumer.close()


def kafkaref(*args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    """Run the installed ``kafkaref`` console script (or, without one, its entry point)."""
    script = Path(sys.executable).with_name("kafkaref")
    cmd = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from harness.cli import main; main()"]
    )
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        stdin=subprocess.DEVNULL,
        check=False,
    )
