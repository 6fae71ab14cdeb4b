"""A kafkaref cluster in Docker containers (``chaos.db``), driven from this host.

One ZooKeeper node and three brokers, each in its own container on the run's private
network; a confluent-kafka client on the host produces and consumes through them; a
broker is killed and restarted, another cut off by iptables until its ZooKeeper session
expires, then healed; and nothing the run made is left behind, not even after the
harness that made it was killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from chaos import docker_util as du
from chaos.db import ContainerCluster
from harness.cluster import wait_until

SESSION_TIMEOUT_MS = 6000
DEADLINE_S = 90.0
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def cluster(docker_client: Any, project_image: str) -> Iterator[ContainerCluster]:
    started = time.monotonic()
    db = ContainerCluster(
        image=project_image,
        brokers=3,
        zookeepers=1,
        broker_config={"zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS},
        client=docker_client,
    )
    db.start(progress=print)
    print(f"cluster healthy after {time.monotonic() - started:.1f}s")
    try:
        yield db
    finally:
        for name in sorted(db.nodes):
            print(f"--- {name} ---\n{db.logs(name, 30)}")
        db.close()


def labelled(client: Any, run_id: str) -> tuple[list[Any], list[Any]]:
    selector = {"label": f"{du.LABEL_RUN}={run_id}"}
    return client.containers.list(all=True, filters=selector), client.networks.list(
        filters=selector
    )


def read_all(bootstrap: str, topic: str, partition: int, high: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-test-read"})
    try:
        consumer.assign([KafkaTopicPartition(topic, partition, OFFSET_BEGINNING)])
        values: list[bytes] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(values) < high:
            assert time.monotonic() < deadline, f"read {len(values)} of {high}"
            for msg in consumer.consume(high - len(values), timeout=0.5):
                if msg.error() is not None:
                    raise KafkaException(msg.error())
                assert msg.offset() == len(values)
                values.append(msg.value() or b"")
        return values
    finally:
        consumer.close()


def test_client_on_the_host_produces_and_consumes(cluster: ContainerCluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    topic = NewTopic("chaos-t", 2, 3, config={"min.insync.replicas": "2"})
    admin.create_topics([topic], operation_timeout=30)["chaos-t"].result(timeout=DEADLINE_S)
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    sent = {p: [f"{p}-{i}".encode() for i in range(50)] for p in (0, 1)}
    for p, values in sent.items():
        for value in values:
            producer.produce("chaos-t", value, partition=p, on_delivery=delivered)
    assert producer.flush(DEADLINE_S) == 0
    assert failures == []
    for p, values in sent.items():
        assert read_all(cluster.bootstrap, "chaos-t", p, len(values)) == values


def test_killed_broker_deregisters_and_comes_back(cluster: ContainerCluster) -> None:
    before = cluster.registration_owner(2)
    cluster.kill("broker-2")
    assert cluster.status("broker-2") == "exited"
    wait_until(lambda: 2 not in cluster.registered(), DEADLINE_S, lambda: "broker 2 registered")
    cluster.start_node("broker-2")
    assert cluster.status("broker-2") == "running"
    owner = cluster.registration_owner(2)
    assert owner is not None and owner != before
    cluster.wait_healthy(DEADLINE_S)


def test_paused_broker_is_frozen_and_resumes(cluster: ContainerCluster) -> None:
    cluster.pause("broker-1")
    assert cluster.status("broker-1") == "paused"
    cluster.unpause("broker-1")
    assert cluster.status("broker-1") == "running"
    cluster.wait_healthy(DEADLINE_S)


def test_isolated_broker_loses_its_session_and_rejoins_after_healing(
    cluster: ContainerCluster,
) -> None:
    grudge = cluster.isolate("broker-3")
    assert grudge["broker-3"] == {"zookeeper-1", "broker-1", "broker-2"}
    assert grudge["zookeeper-1"] == {"broker-3"}
    wait_until(
        lambda: 3 not in cluster.registered(),
        DEADLINE_S,
        lambda: "broker 3 is still registered although cut off from ZooKeeper",
    )
    assert cluster.status("broker-3") == "running"  # alive, only unreachable
    cluster.heal()
    assert cluster.grudge == {}
    wait_until(lambda: 3 in cluster.registered(), DEADLINE_S, lambda: "broker 3 not back")
    cluster.wait_healthy(DEADLINE_S)


CRASHING_HARNESS = """
import sys
from chaos import docker_util as du
from chaos.db import ContainerCluster
db = ContainerCluster(image=sys.argv[1], client=du.connect())
db.create_network()
db.start_zookeeper()
print(db.run_id, flush=True)
sys.stdin.read()  # until it is killed
"""


def test_sweep_removes_what_a_killed_harness_left(
    docker_client: Any, project_image: str, cluster: ContainerCluster
) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_HARNESS, project_image],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        run_id = child.stdout.readline().strip()
        assert run_id, "the child harness did not start its ZooKeeper"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    containers, networks = labelled(docker_client, run_id)
    assert len(containers) == 1 and len(networks) == 1  # nothing ran to remove them
    swept = du.sweep(docker_client)
    assert containers[0].name in swept.containers
    assert labelled(docker_client, run_id) == ([], [])
    assert cluster.run_id in swept.kept_runs  # a live run is left alone
    assert len(labelled(docker_client, cluster.run_id)[0]) == 4


def test_close_removes_every_container_and_the_network(
    docker_client: Any, cluster: ContainerCluster
) -> None:
    run_id = cluster.run_id
    assert len(labelled(docker_client, run_id)[0]) == 4
    cluster.close()
    assert labelled(docker_client, run_id) == ([], [])
