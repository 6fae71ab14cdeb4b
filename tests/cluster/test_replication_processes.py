"""Replication end to end: three cluster-mode broker processes on a private ZooKeeper,
clients over TCP (tests/impl/wire_client).  Followers copy the leader byte for byte,
acks=all returns once the ISR has the batch, two of three replicas down refuse acks=all,
a returning replica cuts its divergent tail (KIP-101) and rejoins the ISR, and a former
leader answers NOT_LEADER_OR_FOLLOWER.  Waits are conditions with deadlines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from harness.launcher import BrokerProcess
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.conftest import BrokerFactory, wait_for
from tests.cluster.replication_support import create_topic, partition_state, start_three
from tests.cluster.replication_support import error_code as code
from tests.cluster.replication_support import produce as produce_to

TOPIC = "e2e"
CONFIG = {"replica.lag.time.max.ms": 3000, "unclean.leader.election.enable": "true"}


def state(zk: KazooClient) -> LeaderAndIsr | None:
    return partition_state(zk, TOPIC)


def produce(broker: BrokerProcess, values: list[bytes], acks: int = -1) -> Any:
    return produce_to(broker, TOPIC, values, acks=acks)


def segment(broker: BrokerProcess) -> bytes:
    path = Path(broker.data_dir) / f"{TOPIC}-0" / f"{0:020d}.log"
    return path.read_bytes() if path.exists() else b""


def test_replicas_match_survive_divergence_and_fence_the_old_leader(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    b = start_three(brokers, zk, CONFIG)
    create_topic(b[1], TOPIC, 1, {"min.insync.replicas": "2"})
    first = wait_for(lambda: state(zk), what="the partition state")
    assert set(first.isr) == {1, 2, 3}
    leader = first.leader
    followers = [i for i in (1, 2, 3) if i != leader]

    # acks=all: every answer comes after the whole ISR has the batch.
    wait_for(lambda: code(produce(b[leader], [b"warm-up"])) == ErrorCode.NONE, what="a leader")
    for i in range(10):
        answer = produce(b[leader], [b"r%d-%d" % (i, k) for k in range(3)])
        assert code(answer) == ErrorCode.NONE
    wait_for(
        lambda: all(segment(b[f]) == segment(b[leader]) for f in followers),
        what="followers' segments equal to the leader's",
    )
    committed = segment(b[leader])
    assert len(committed) > 0

    # Two of three replicas down: the ISR shrinks to the leader, acks=all is refused.
    for f in followers:
        b[f].kill()
    wait_for(lambda: (s := state(zk)) is not None and s.isr == (leader,), what="ISR = leader")
    wait_for(
        lambda: code(produce(b[leader], [b"refused"])) == ErrorCode.NOT_ENOUGH_REPLICAS,
        what="NOT_ENOUGH_REPLICAS",
    )
    # The leader alone takes acks=1 writes that no other replica will ever see ...
    for i in range(3):
        assert code(produce(b[leader], [b"divergent-%d" % i], acks=1)) == ErrorCode.NONE
    diverged = segment(b[leader])
    # ... and dies.  A follower comes back and is elected uncleanly (the topic allows it).
    b[leader].kill()
    new_leader = followers[0]
    b[new_leader].restart()
    wait_for(
        lambda: (s := state(zk)) is not None and s.leader == new_leader,
        what=f"broker {new_leader} elected",
    )
    wait_for(
        lambda: code(produce(b[new_leader], [b"after"], acks=1)) == ErrorCode.NONE,
        what="the new leader accepting writes",
    )
    # The old leader returns as a follower: it cuts its divergent tail and copies the new
    # leader's log, then the ISR grows back (the leader's conditional writes).
    b[leader].restart()
    b[followers[1]].restart()
    wait_for(
        lambda: all(segment(b[i]) == segment(b[new_leader]) for i in (1, 2, 3)),
        what="every replica equal to the new leader",
    )
    assert segment(b[leader]) != diverged
    assert segment(b[leader]).startswith(committed)
    wait_for(
        lambda: (s := state(zk)) is not None and set(s.isr) == {1, 2, 3},
        what="ISR back to three",
    )
    assert code(produce(b[leader], [b"stale"])) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert code(produce(b[new_leader], [b"all"])) == ErrorCode.NONE
