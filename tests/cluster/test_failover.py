"""Failover with real clients on a local three-broker cluster (issue 4, item 5).

An idempotent acks=all confluent-kafka producer writes without pause while the leader of
a partition is killed with SIGKILL and brought back, several times; afterwards every
acknowledged record is read back exactly once, at its acknowledged offset, in the order
it was produced.  Killing the controller moves the controller.  With two of three
replicas down, acks=all is refused with NOT_ENOUGH_REPLICAS, and nothing acknowledged is
lost once they return.  The failover time (leader killed to the first successful produce
of a record sent after the kill) is printed, not asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from confluent_kafka import KafkaError, Message, Producer

from harness.cluster import LocalCluster, wait_until
from tests.cluster.cluster_fixtures import (
    DEADLINE_S,
    SESSION_TIMEOUT_MS,
    create_topic,
    read_partition,
    running_cluster,
    wait_in_sync,
)

pytestmark = pytest.mark.timeout(420)

TOPIC_CONFIG = {"min.insync.replicas": "2"}
KILLS = 3


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 180_000,
        "request.timeout.ms": 10_000,
        "retry.backoff.ms": 100,
        "topic.metadata.refresh.interval.ms": 1000,
        "log_level": 3,
        **extra,
    }


@attrs.define
class Ack:
    value: bytes
    offset: int
    sent: float
    acked: float


@attrs.define
class Workload:
    """Records ``<partition>-<sequence>`` sent to every partition in turn by one thread,
    each acknowledgement (or error) recorded with the time it was sent and acknowledged."""

    producer: Producer
    topic: str
    partitions: int
    acks: dict[int, list[Ack]] = attrs.Factory(dict)
    errors: list[str] = attrs.Factory(list)
    sent: int = 0
    stop: threading.Event = attrs.Factory(threading.Event)
    thread: threading.Thread | None = None

    def on_delivery(self, partition: int, value: bytes, sent: float) -> Any:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                self.errors.append(f"{value!r}: {err}")
            else:
                ack = Ack(value, msg.offset() or 0, sent, time.monotonic())
                self.acks.setdefault(partition, []).append(ack)

        return report

    def send(self, partition: int, sequence: int) -> None:
        value = f"{partition}-{sequence}".encode()
        cb = self.on_delivery(partition, value, time.monotonic())
        self.producer.produce(self.topic, value, partition=partition, on_delivery=cb)
        self.sent += 1

    def run(self) -> None:
        sequence = 0
        while not self.stop.is_set():
            for p in range(self.partitions):
                self.send(p, sequence)
            sequence += 1
            # Paces the load (about 100 rounds a second) and serves delivery reports;
            # never more than a few thousand records waiting.
            self.producer.poll(0.01)
            while len(self.producer) > 5000 and not self.stop.is_set():
                self.producer.poll(0.1)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="workload", daemon=True)
        self.thread.start()

    def finish(self, timeout_s: float) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(timeout_s)
        remaining = self.producer.flush(timeout_s)
        assert remaining == 0, f"{remaining} records neither acknowledged nor failed"

    def acked_after(self, partition: int, since: float) -> Ack | None:
        """The first acknowledgement of a record on ``partition`` sent after ``since``."""
        for ack in list(self.acks.get(partition, [])):
            if ack.sent >= since:
                return ack
        return None

    def acked_count(self, partition: int) -> int:
        return len(self.acks.get(partition, []))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with running_cluster(tmp_path) as local:
        yield local


def check_exactly_once_in_order(cluster: LocalCluster, topic: str, work: Workload) -> int:
    """Every acknowledged record is in the log once, at its offset; the log holds each
    value at most once, in the order sent.  The number of records read."""
    total = 0
    for p in range(work.partitions):
        log = read_partition(cluster.bootstrap, topic, p)
        total += len(log)
        values = [v for _, v in log]
        assert len(set(values)) == len(values), f"partition {p}: duplicates in the log"
        sequences = [int(v.split(b"-")[1]) for v in values]
        assert all(v.startswith(f"{p}-".encode()) for v in values)
        assert sequences == sorted(sequences), f"partition {p}: records out of order"
        by_offset = dict(log)
        for ack in work.acks.get(p, []):
            assert by_offset.get(ack.offset) == ack.value, (
                f"partition {p}: acknowledged {ack.value!r} at offset {ack.offset}, "
                f"the log holds {by_offset.get(ack.offset)!r} there"
            )
    return total


def kill_and_restart_leader(
    cluster: LocalCluster, work: Workload, topic: str, partitions: int
) -> tuple[int, float]:
    """Kill the leader of partition 0 once the producer is acknowledged there; (its id,
    seconds from the kill to the acknowledgement of a record sent after it).  Then bring
    it back."""
    leader = wait_in_sync(cluster, topic, partitions).topic(topic)[0].leader
    flowing = time.monotonic()
    wait_until(
        lambda: work.acked_after(0, flowing),
        DEADLINE_S,
        lambda: f"the producer is not being acknowledged on {topic}-0",
    )
    killed_at = time.monotonic()
    cluster.kill(leader)
    ack = wait_until(
        lambda: work.acked_after(0, killed_at),
        DEADLINE_S,
        lambda: f"no produce succeeded on {topic}-0 after its leader {leader} was killed",
    )
    cluster.wait_for_metadata(
        lambda v: v.topic(topic)[0].leader not in (leader, -1),
        DEADLINE_S,
        f"Metadata showing a new leader of {topic}-0",
    )
    cluster.restart(leader)
    return leader, ack.acked - killed_at


def test_acknowledged_records_survive_repeated_leader_kills(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    topic, partitions = "failover", 2
    create_topic(cluster, topic, partitions, 3, TOPIC_CONFIG)
    fatal: list[str] = []

    def on_error(error: KafkaError) -> None:
        if error.fatal():
            fatal.append(str(error))

    producer = Producer(producer_config(cluster.bootstrap, error_cb=on_error))
    work = Workload(producer, topic, partitions)
    work.start()
    failovers: list[tuple[int, float]] = []
    try:
        for _ in range(KILLS):
            failovers.append(kill_and_restart_leader(cluster, work, topic, partitions))
        wait_in_sync(cluster, topic, partitions)
    finally:
        work.finish(DEADLINE_S)
    assert not fatal, fatal
    assert not work.errors, work.errors[:5]
    total = check_exactly_once_in_order(cluster, topic, work)
    acked = sum(work.acked_count(p) for p in range(partitions))
    assert acked == work.sent
    with capsys.disabled():
        print(
            f"\nfailover (leader SIGKILLed -> first acks=all produce of a record sent after "
            f"the kill; zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}): "
            + ", ".join(f"leader {b}: {s:.2f} s" for b, s in failovers)
            + f"; {acked} records acknowledged, {total} read back"
        )


def test_killing_the_controller_moves_it(cluster: LocalCluster) -> None:
    create_topic(cluster, "controlled", 1, 3)
    first = wait_until(cluster.controller, DEADLINE_S, lambda: "no /controller")
    old_id, old_epoch = first
    cluster.kill(old_id)

    def moved() -> tuple[int, int] | None:
        now = cluster.controller()
        return now if now is not None and now[0] != old_id else None

    new_id, new_epoch = wait_until(moved, DEADLINE_S, lambda: f"/controller still {old_id}")
    assert new_id in cluster.running()
    assert new_epoch > old_epoch
    view = cluster.wait_for_metadata(
        # Not just "not the old leader": while the new controller has not moved the
        # partition yet, Metadata shows it offline (leader -1).
        lambda v: (
            v.controller_id == new_id and v.topic("controlled")[0].leader in cluster.running()
        ),
        DEADLINE_S,
        f"Metadata naming controller {new_id} and a live leader",
    )
    assert view.topic("controlled")[0].leader in cluster.running()
    cluster.restart(old_id)
    cluster.wait_healthy(DEADLINE_S)
    assert cluster.controller() == (new_id, new_epoch)  # the old one does not take it back


def test_two_replicas_down_refuses_acks_all_and_loses_nothing(cluster: LocalCluster) -> None:
    topic = "min-isr"
    view = create_topic(cluster, topic, 1, 3, TOPIC_CONFIG)
    leader = view.topic(topic)[0].leader
    followers = [r for r in view.topic(topic)[0].replicas if r != leader]
    producer = Producer(producer_config(cluster.bootstrap))
    work = Workload(producer, topic, 1)
    for i in range(100):
        work.send(0, i)
    assert producer.flush(DEADLINE_S) == 0
    assert work.acked_count(0) == 100 and not work.errors

    for f in followers:
        cluster.kill(f)
    cluster.wait_for_metadata(
        lambda v: v.topic(topic)[0].isr == (leader,),
        DEADLINE_S,
        f"the leader {leader} showing the ISR of {topic}-0 shrunk to itself",
        broker_id=leader,
    )
    # A producer that does not retry sees the broker's own answer.
    probe_errors: list[KafkaError | None] = []
    probe = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "acks": "all",
            "retries": 0,
            "enable.idempotence": False,
            "message.timeout.ms": 30_000,
            "log_level": 3,
        }
    )
    probe.produce(
        topic,
        b"refused",
        partition=0,
        on_delivery=lambda err, _msg: probe_errors.append(err),
    )
    assert probe.flush(DEADLINE_S) == 0
    assert [e and e.code() for e in probe_errors] == [KafkaError.NOT_ENOUGH_REPLICAS], probe_errors

    # The idempotent producer keeps retrying these until the replicas are back.
    for i in range(100, 150):
        work.send(0, i)
    producer.poll(0.5)  # serves delivery reports: none may come while the ISR is 1
    assert work.acked_count(0) == 100  # nothing can be acknowledged with one replica in sync
    for f in followers:
        cluster.restart(f)
    wait_in_sync(cluster, topic, 1)
    assert producer.flush(DEADLINE_S) == 0
    assert not work.errors, work.errors[:5]
    assert work.acked_count(0) == 150
    assert check_exactly_once_in_order(cluster, topic, work) == 150
    assert b"refused" not in {v for _, v in read_partition(cluster.bootstrap, topic, 0)}
