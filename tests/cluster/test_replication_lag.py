"""The leader's ISR and high watermark against slow followers, with three cluster-mode broker
processes on a private ZooKeeper and clients over TCP (tests/impl/wire_client).  A follower
is made slow by pausing its process (SIGSTOP): its ZooKeeper session outlives the pause
(zookeeper.session.timeout.ms 20000), so only the leader's lag check can take it out of
the ISR (replica.lag.time.max.ms).  Waits are conditions with deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.storage.hw_checkpoint import read_high_watermarks
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from spec.state import TopicPartition
from tests.cluster.conftest import BrokerFactory, wait_for
from tests.cluster.replication_support import create_topic, partition_state, start_three
from tests.cluster.replication_support import error_code as code
from tests.cluster.replication_support import produce as produce_to
from tests.impl import kio_requests as kr
from tests.impl.wire_client import WireClient

pytestmark = pytest.mark.timeout(240)

TOPIC = "lagging"
LAG_MS = 3000
SESSION_MS = 20000
PRODUCE_TIMEOUT_S = 40.0  # above the produce request's own timeout (30 s)


def state(zk: KazooClient) -> LeaderAndIsr | None:
    return partition_state(zk, TOPIC)


def isr(zk: KazooClient) -> frozenset[int]:
    s = state(zk)
    return frozenset() if s is None else frozenset(s.isr)


def produce(broker: BrokerProcess, values: list[bytes], acks: int = -1) -> Any:
    return produce_to(broker, TOPIC, values, acks=acks, timeout_s=PRODUCE_TIMEOUT_S)


def fetch(broker: BrokerProcess, offset: int, max_wait_ms: int = 0) -> Any:
    """A consumer's fetch (replica_id -1) of the partition from ``offset``."""
    with WireClient(broker.host, broker.port) as client:
        response = client.request(kr.fetch(TOPIC, 0, offset, max_wait_ms=max_wait_ms))
    return response.responses[0].partitions[0]


def offsets(data: bytes | None) -> list[int]:
    """Every record offset in the fetched batches (from the batch headers)."""
    out: list[int] = []
    for _, header in records.iter_batches(data or b""):
        out.extend(range(header.base_offset, header.base_offset + header.last_offset_delta + 1))
    return out


@contextlib.contextmanager
def paused(*brokers: BrokerProcess) -> Iterator[None]:
    """The brokers' processes stopped (SIGSTOP) inside, continued (SIGCONT) after."""
    for b in brokers:
        os.kill(b.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for b in brokers:
            os.kill(b.pid, signal.SIGCONT)


def start_cluster(
    brokers: BrokerFactory, zk: KazooClient, lag_ms: int, **extra: object
) -> tuple[dict[int, BrokerProcess], int, list[int]]:
    """Three brokers and the topic (RF 3, min.insync.replicas 2) with its whole replica set
    in the ISR and a leader accepting acks=all; the brokers, the leader, the followers."""
    config: dict[str, object] = {
        "replica.lag.time.max.ms": lag_ms,
        "zookeeper.session.timeout.ms": SESSION_MS,
    }
    config.update(extra)
    b = start_three(brokers, zk, config)
    create_topic(b[1], TOPIC, 1, {"min.insync.replicas": "2"})
    first = wait_for(lambda: state(zk), what="the partition state")
    assert set(first.isr) == {1, 2, 3}
    leader = first.leader
    wait_for(lambda: code(produce(b[leader], [b"warm-up"])) == ErrorCode.NONE, what="a leader")
    return b, leader, [i for i in (1, 2, 3) if i != leader]


def registered(zk: KazooClient, broker_id: int) -> bool:
    return str(broker_id) in zk.get_children(layout.BROKER_IDS)


def test_a_paused_follower_leaves_the_isr_by_lag_and_rejoins(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b, leader, followers = start_cluster(brokers, zk, LAG_MS)
    slow, other = followers
    with paused(b[slow]):
        # Appended while the ISR has three: answered once the leader has dropped the paused
        # follower (after replica.lag.time.max.ms) and the other has the batch.
        answer = produce(b[leader], [b"while-paused"])
        assert code(answer) == ErrorCode.NONE
        assert isr(zk) == {leader, other}
        assert registered(zk, slow), "the paused broker's ZooKeeper session is alive"
        for i in range(5):
            assert code(produce(b[leader], [b"two-of-three-%d" % i])) == ErrorCode.NONE
        assert isr(zk) == {leader, other}
    # Continued: it catches up and the leader adds it back (its conditional write).
    wait_for(lambda: isr(zk) == {1, 2, 3}, what="the ISR back to three")
    back = state(zk)
    assert back is not None and back.leader == leader
    assert code(produce(b[leader], [b"all-three"])) == ErrorCode.NONE


def test_a_waiting_acks_all_produce_fails_when_the_isr_shrinks_below_min_insync(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b, leader, followers = start_cluster(brokers, zk, LAG_MS)
    with paused(*(b[f] for f in followers)):
        # Appended (the ISR still had three), then the ISR shrank to the leader alone
        # before any follower had the batch.
        answer = produce(b[leader], [b"stranded"])
        assert code(answer) == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        assert isr(zk) == {leader}
        assert all(registered(zk, f) for f in followers)
        # Now refused before the append.
        assert code(produce(b[leader], [b"refused"])) == ErrorCode.NOT_ENOUGH_REPLICAS
        assert code(produce(b[leader], [b"acks-1"], acks=1)) == ErrorCode.NONE
    wait_for(lambda: isr(zk) == {1, 2, 3}, what="the ISR back to three")
    assert code(produce(b[leader], [b"accepted"])) == ErrorCode.NONE


def test_consumers_never_read_above_the_high_watermark(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    # A lag time longer than the test: the paused followers stay in the ISR, so the high
    # watermark cannot pass what they have.
    b, leader, followers = start_cluster(brokers, zk, 600000)
    committed = int(fetch(b[leader], 0).high_watermark)
    assert committed >= 1  # the warm-up record
    with paused(*(b[f] for f in followers)):
        for i in range(3):
            answer = produce(b[leader], [b"pending-%d" % i], acks=1)
            assert code(answer) == ErrorCode.NONE
            assert int(answer.base_offset) == committed + i
        # On the leader's log, above the high watermark: not for consumers.
        got = fetch(b[leader], 0)
        assert int(got.high_watermark) == committed
        assert offsets(got.records) == list(range(committed))
        waited = fetch(b[leader], committed, max_wait_ms=300)
        assert int(waited.high_watermark) == committed
        assert offsets(waited.records) == []
    # The followers fetch them: the high watermark passes them and they become visible.
    done = wait_for(
        lambda: (f := fetch(b[leader], committed)) and int(f.high_watermark) == committed + 3 and f,
        what="the high watermark past the pending records",
    )
    assert offsets(done.records) == [committed, committed + 1, committed + 2]


def test_brokers_checkpoint_their_high_watermarks(brokers: BrokerFactory, zk: KazooClient) -> None:
    interval = {"replica.high.watermark.checkpoint.interval.ms": 200}
    b, leader, followers = start_cluster(brokers, zk, LAG_MS, **interval)
    for i in range(4):
        assert code(produce(b[leader], [b"r%d" % i])) == ErrorCode.NONE
    hw = int(fetch(b[leader], 0).high_watermark)
    tp = TopicPartition(TOPIC, 0)

    def checkpointed(broker_id: int) -> int | None:
        return read_high_watermarks(str(b[broker_id].data_dir)).get(tp)

    # Written periodically by the leader and by the followers (their own high watermarks).
    wait_for(lambda: all(checkpointed(i) == hw for i in b), what=f"HW {hw} checkpointed")
    # A clean stop writes it as well; a restarted follower starts from it (and rejoins).
    b[followers[0]].stop()
    assert checkpointed(followers[0]) == hw
    b[followers[0]].restart()
    assert code(produce(b[leader], [b"after"])) == ErrorCode.NONE
    wait_for(lambda: checkpointed(followers[0]) == hw + 1, what="the restarted one's HW")
