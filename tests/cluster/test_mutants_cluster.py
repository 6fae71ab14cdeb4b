"""The seeded defects that need a cluster, each shown to change what clients see: the
same scenario runs on the in-process cluster of test_replication_manager (real servers,
logs and ZooKeeper sessions; the test plays the controller) with the correct brokers and
with the defect switched on in this process (``impl.mutants.activate``; every node here
shares it).  ``kafkaref conform --local --mutant NAME`` catches each on a cluster it
manages (docs/harness.md); the chaos checker (issue 7) is meant to catch them from
histories.

- ack-before-replicate, hw-past-isr, serve-above-high-watermark: both followers are
  stopped, the leader appends one more batch at acks=all.  Correct: the produce times
  out (the ISR still has the followers) and a consumer sees neither the record nor a
  higher high watermark.
- skip-truncation: a follower that wrote records the new leader never had comes back;
  correct: it truncates them (KIP-101) and ends with the leader's log byte for byte.
- stale-leader-accepts-produce: a new leader is elected without the old one learning it;
  correct: the old leader's ISR write fails on the znode version, so its acks=all produce
  is never acknowledged (the record is not on the real leader: it would be lost).  (The
  defect's other way in, an ISR write that cannot reach ZooKeeper, needs a leader cut off
  from ZooKeeper: the conform rule zombie_leader, tests/harness/test_conform_cluster.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest

from impl import mutants
from impl.wire import records
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.test_replication_manager import (
    PROPS,
    TOPIC,
    TP,
    Cluster,
    Scenario,
    batch,
    client,
    code,
    eventually,
    produce,
    run_cluster,
)
from tests.impl import kio_requests as kr

__all__ = ["run_cluster"]  # the fixture, shared with test_replication_manager

pytestmark = pytest.mark.timeout(180)

NO_SHRINK = {**PROPS, "replica.lag.time.max.ms": "60000"}
QUICK_SHRINK = {**PROPS, "replica.lag.time.max.ms": "1000"}


@pytest.fixture
def mutant(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The defect of the test's parameter, switched on in this process for its duration."""
    name: str | None = request.param
    mutants.activate(name)
    try:
        yield name
    finally:
        mutants.activate(None)


async def consume(cluster: Cluster, broker_id: int, offset: int) -> tuple[int, list[int]]:
    """A consumer's fetch at ``offset``: the high watermark and the offsets it got."""
    conn = await client(cluster.nodes[broker_id])
    try:
        response: Any = await conn.request(kr.fetch(TOPIC, 0, offset), 30.0)
    finally:
        conn.close()
    part = response.responses[0].partitions[0]
    assert ErrorCode(int(part.error_code)) == ErrorCode.NONE
    data = bytes(part.records or b"")
    got = [
        o for _, h in records.iter_batches(data) for o in range(h.base_offset, h.last_offset + 1)
    ]
    return int(part.high_watermark), got


# (mutant, the acks=all produce is acknowledged, the high watermark, offsets a consumer gets)
FOLLOWERS_DOWN = [
    (None, False, 1, []),
    (mutants.ACK_BEFORE_REPLICATE, True, 1, []),
    (mutants.HW_PAST_ISR, True, 2, [1]),
    (mutants.SERVE_ABOVE_HIGH_WATERMARK, False, 1, [1]),
]


@pytest.mark.parametrize(
    ("mutant", "acked", "high_watermark", "offsets"),
    FOLLOWERS_DOWN,
    indirect=["mutant"],
    ids=[str(m) for m, *_ in FOLLOWERS_DOWN],
)
def test_followers_down(
    run_cluster: Callable[[Scenario], None],
    mutant: str | None,
    acked: bool,
    high_watermark: int,
    offsets: list[int],
) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start((1, 2, 3), NO_SHRINK)
        cluster.create_topic((1, 2, 3), {"min.insync.replicas": "2"})
        await cluster.write_state(1, 0, (1, 2, 3))
        conn = await client(cluster.nodes[1])
        try:
            assert code(await produce(conn, batch([b"a"]))) == ErrorCode.NONE
            await eventually(lambda: cluster.nodes[2].leo() == cluster.nodes[3].leo() == 1, "")
            await cluster.stop(2)
            await cluster.stop(3)
            answer = code(await produce(conn, batch([b"b"]), timeout_ms=1000))
        finally:
            conn.close()
        assert (answer == ErrorCode.NONE) == acked
        if not acked:
            assert answer == ErrorCode.REQUEST_TIMED_OUT
        assert await consume(cluster, 1, 1) == (high_watermark, offsets)

    run_cluster(scenario)


@pytest.mark.parametrize("mutant", [None, mutants.SKIP_TRUNCATION], indirect=True)
def test_returning_follower_with_divergent_records(
    run_cluster: Callable[[Scenario], None], mutant: str | None
) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start((1, 2), PROPS)
        cluster.create_topic((1, 2), {"min.insync.replicas": "1"})
        await cluster.write_state(1, 0, (1, 2))
        conn = await client(cluster.nodes[1])
        try:
            for i in range(5):
                assert code(await produce(conn, batch([b"x%d" % i]))) == ErrorCode.NONE
            await cluster.stop(2)
            for i in range(3):  # only broker 1 has these: uncommitted, to be truncated
                assert code(await produce(conn, batch([b"lost%d" % i]), acks=1)) == 0
        finally:
            conn.close()
        await cluster.stop(1)
        await cluster.restart(2)
        await cluster.write_state(2, 1, (2,))
        conn = await client(cluster.nodes[2])
        try:
            for i in range(4):
                assert code(await produce(conn, batch([b"new%d" % i]))) == ErrorCode.NONE
        finally:
            conn.close()
        await cluster.restart(1)
        await cluster.deliver()
        old, leader = cluster.nodes[1], cluster.nodes[2]
        await eventually(lambda: old.leo() == leader.leo() == 9, "the follower at offset 9")
        if mutant is None:
            await eventually(lambda: old.log_bytes() == leader.log_bytes(), "identical logs")
        else:
            # It kept lost0..2 at offsets 5..7 and appended new3 after them.
            assert b"lost0" in old.log_bytes() and b"new0" not in old.log_bytes()
            assert b"new3" in old.log_bytes() and b"lost0" not in leader.log_bytes()

    run_cluster(scenario)


@pytest.mark.parametrize("mutant", [None, mutants.STALE_LEADER_ACCEPTS_PRODUCE], indirect=True)
def test_fenced_leader(run_cluster: Callable[[Scenario], None], mutant: str | None) -> None:
    async def scenario(cluster: Cluster) -> None:
        await cluster.start((1, 2, 3), QUICK_SHRINK)
        cluster.create_topic((1, 2, 3), {"min.insync.replicas": "1"})
        await cluster.write_state(1, 0, (1, 2, 3))
        conn = await client(cluster.nodes[1])
        try:
            assert code(await produce(conn, batch([b"a"]))) == ErrorCode.NONE
            # The controller elects 2 in epoch 1; 2 and 3 learn it, 1 does not.
            state = attrs.evolve(cluster.read_state(), leader=2, leader_epoch=1, isr=(2, 3))
            cluster.zk.set(layout.state_path(TOPIC, 0), layout.encode_leader_and_isr(state))
            new = cluster.read_state()
            assert isinstance(new, LeaderAndIsr) and new.zk_version == 1
            for b in (2, 3):
                await cluster.nodes[b].manager.apply_leader_and_isr(TP, cluster.assignment, new)
            # 1 still leads epoch 0 as far as it knows; its followers have left it.
            answer = code(await produce(conn, batch([b"b"]), timeout_ms=8000))
        finally:
            conn.close()
        assert cluster.nodes[2].leo() == 1  # the real leader never got "b"
        if mutant is None:
            assert answer == ErrorCode.REQUEST_TIMED_OUT
            assert cluster.nodes[1].ctx.partitions[TP].isr == {1, 2, 3}
        else:
            assert answer == ErrorCode.NONE  # acknowledged, and lost
            assert cluster.nodes[1].ctx.partitions[TP].isr == {1}

    run_cluster(scenario)
