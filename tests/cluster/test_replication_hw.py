"""High watermarks of replicas across restarts and under retention, with the in-process
brokers of test_replication_manager (real servers, logs, ZooKeeper sessions; the test plays
the controller): the replication-offset-checkpoint is written periodically and on a clean
stop and read on start (never above the log end offset); a follower's log start offset
follows the leader's; retention never deletes at or beyond a follower's high watermark.
Every wait is a condition with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

from impl.storage.hw_checkpoint import read_high_watermarks, write_high_watermarks
from impl.zk import layout
from impl.zk.layout import LeaderAndIsr
from spec.errors import ErrorCode
from tests.cluster.test_replication_manager import (
    PROPS,
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

CHECKPOINT_PROPS = {**PROPS, "replica.high.watermark.checkpoint.interval.ms": "100"}


def hw(cluster: Cluster, broker_id: int) -> int | None:
    return cluster.nodes[broker_id].manager.high_watermark(TP)


def log_start(cluster: Cluster, broker_id: int) -> int | None:
    log = cluster.nodes[broker_id].ctx.logs.get(TP)
    return None if log is None else log.start_offset


def checkpointed(cluster: Cluster, broker_id: int) -> int | None:
    return read_high_watermarks(str(cluster.nodes[broker_id].data_dir)).get(TP)


def test_high_watermark_checkpoint_survives_restarts(
    run_cluster: Callable[[Scenario], None],
) -> None:
    run_cluster(_high_watermark_checkpoint_survives_restarts)


async def _high_watermark_checkpoint_survives_restarts(cluster: Cluster) -> None:
    await cluster.start((1, 2, 3), CHECKPOINT_PROPS)
    cluster.create_topic((1, 2, 3), {"min.insync.replicas": "2"})
    await cluster.write_state(1, 0, (1, 2, 3))
    conn = await client(cluster.nodes[1])
    try:
        for i in range(10):
            assert code(await produce(conn, batch([b"v%d" % i]))) == ErrorCode.NONE
    finally:
        conn.close()
    # Every replica knows offset 10 is committed, and the periodic checkpoint says so.
    await eventually(lambda: all(hw(cluster, b) == 10 for b in (1, 2, 3)), "HW 10 everywhere")
    await eventually(
        lambda: all(checkpointed(cluster, b) == 10 for b in (1, 2, 3)), "HW 10 checkpointed"
    )

    # A checkpoint above the log end offset (a log cut after it was written) is capped.
    await cluster.stop(3)
    write_high_watermarks(str(cluster.nodes[3].data_dir), {TP: 1000})
    await cluster.restart(3)
    assert hw(cluster, 3) == 10

    # The whole cluster stops cleanly and comes back: before any follower fetched, the
    # new leader's high watermark is the checkpointed one, so consumers read at once.
    for b in (1, 2, 3):
        await cluster.stop(b)
    for b in (1, 2, 3):
        await cluster.restart(b)
    assert all(checkpointed(cluster, b) == 10 for b in (1, 2, 3))
    # The controller's write, delivered to the leader only: no follower fetches yet.
    cluster.zk.set(
        layout.state_path(TP.topic, 0),
        layout.encode_leader_and_isr(LeaderAndIsr(1, 1, (1, 2, 3), 1, 0)),
    )
    leader = cluster.nodes[1]
    await leader.manager.apply_leader_and_isr(TP, cluster.assignment, cluster.read_state())
    assert leader.ctx.partitions[TP].high_watermark == 10
    conn = await client(leader)
    try:
        response = await conn.request(kr.fetch(TP.topic, 0, 0), 10.0)
    finally:
        conn.close()
    answer = response.responses[0].partitions[0]
    assert int(answer.error_code) == 0
    assert int(answer.high_watermark) == 10
    assert len(answer.records or b"") > 0


def test_follower_log_start_follows_the_leader_and_retention_respects_the_hw(
    run_cluster: Callable[[Scenario], None],
) -> None:
    run_cluster(_follower_log_start_and_retention)


async def _follower_log_start_and_retention(cluster: Cluster) -> None:
    # A long lag time: a stopped follower stays in the ISR, so the HW stays where it is.
    props = {**PROPS, "replica.lag.time.max.ms": "600000"}
    await cluster.start((1, 2, 3), props)
    # Small segments, and every record (timestamp 1000) long past retention.ms.
    cluster.create_topic(
        (1, 2, 3), {"min.insync.replicas": "1", "segment.bytes": "300", "retention.ms": "1000"}
    )
    await cluster.write_state(1, 0, (1, 2, 3))
    conn = await client(cluster.nodes[1])
    try:
        for i in range(30):
            assert code(await produce(conn, batch([b"first-%02d" % i]))) == ErrorCode.NONE
        await eventually(lambda: all(hw(cluster, b) == 30 for b in (1, 2, 3)), "HW 30")
        leader_log = cluster.nodes[1].ctx.logs.get(TP)
        assert leader_log is not None
        assert len(leader_log.segments) > 3

        # Retention on the leader only: its log start moves up (segments below its HW);
        # the followers follow it from their fetch responses.
        now = time.time_ns() // 1_000_000
        assert leader_log.apply_retention(now, hw(cluster, 1)) > 0
        start = leader_log.start_offset
        assert 0 < start <= 30
        await eventually(
            lambda: all(log_start(cluster, b) == start for b in (2, 3)),
            f"the followers' log start offsets at the leader's {start}",
        )

        # Broker 3 stops but stays in the ISR: the HW stays at 30 while broker 2 copies
        # 30 more records it cannot know to be committed.
        await cluster.stop(3)
        for i in range(30):
            answer = await produce(conn, batch([b"second-%02d" % i]), acks=1)
            assert code(answer) == ErrorCode.NONE
    finally:
        conn.close()
    follower = cluster.nodes[2]
    await eventually(lambda: follower.leo() == 60, "broker 2 has all 60 records")
    assert hw(cluster, 2) == 30
    follower_log = follower.ctx.logs.get(TP)
    assert follower_log is not None
    now = time.time_ns() // 1_000_000
    follower_log.apply_retention(now, hw(cluster, 2))
    # Every record is past retention.ms, yet nothing at or above the HW went.
    assert follower_log.start_offset <= 30
    assert follower_log.segments[0].base_offset <= 30
    assert follower_log.read(30, 1 << 20)
    assert follower_log.end_offset == 60
