"""Retention scenarios: deleting a log's prefix by time or by size, never past the high
watermark, never reusing offsets afterwards (even across a failover), and not on a
crashed broker.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_LEADER,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    ControllerUpdatePartition,
    CrashBroker,
    DeleteRetainedPrefix,
    ElectController,
    Fetch,
    ListOffsets,
    Tick,
)
from spec.consume import retention_limit
from spec.errors import ErrorCode
from tests.spec.scenario_helpers import TP, World

# --- retention -------------------------------------------------------------------------


def test_retention_never_passes_the_high_watermark() -> None:
    w = World(log_retention_ms=1_000)
    w.produce(0, "a", acks=ACKS_LEADER)
    w.settle()
    w.produce(0, "b", "c", acks=ACKS_LEADER)
    w.ok(Tick(10_000))
    assert w.hw(0) == 1
    assert retention_limit(w.s, w.rep(0)) == 1
    w.refuse(DeleteRetainedPrefix(TP, 0, 2), ErrorCode.OFFSET_OUT_OF_RANGE)
    w.ok(DeleteRetainedPrefix(TP, 0, 1))
    assert w.rep(0).log.start_offset == 1
    w.refuse(DeleteRetainedPrefix(TP, 0, 1), ErrorCode.OFFSET_OUT_OF_RANGE)  # not forward
    w.check_invariants()


def test_retention_by_time() -> None:
    w = World(log_retention_ms=1_000)
    w.produce(0, "old", acks=ACKS_LEADER)
    w.ok(Tick(500))
    w.produce(0, "newer", acks=ACKS_LEADER)
    w.settle()
    w.ok(Tick(500))  # now 1000: "old" is exactly 1000 ms old, not older
    assert retention_limit(w.s, w.rep(0)) == 0
    w.ok(Tick(1))
    assert retention_limit(w.s, w.rep(0)) == 1
    w.ok(Tick(500))
    assert retention_limit(w.s, w.rep(0)) == 2


def test_retention_by_size() -> None:
    w = World(log_retention_ms=-1, log_retention_bytes=10)
    for v in ("aaaa", "bbbb", "cccc", "dddd"):  # 4 bytes each
        w.produce(0, v, acks=ACKS_LEADER)
    w.settle()
    # 16 bytes; deleting while at least 10 remain: 2 records go (8 bytes left would be < 10).
    assert retention_limit(w.s, w.rep(0)) == 1
    w.produce(0, "eeee", acks=ACKS_LEADER)
    w.settle()
    assert retention_limit(w.s, w.rep(0)) == 2
    w.ok(Tick(10**9))
    assert retention_limit(w.s, w.rep(0)) == 2  # no time limit


def test_offsets_are_never_reused_after_retention() -> None:
    w = World(log_retention_ms=1_000)
    w.produce(0, "a", "b", "c", acks=ACKS_LEADER)
    w.settle()
    w.ok(Tick(2_000))
    w.ok(DeleteRetainedPrefix(TP, 0, 3))
    assert (w.rep(0).log.start_offset, w.rep(0).log.end_offset) == (3, 3)
    w.refuse(Fetch(TP, 0, 0), ErrorCode.OFFSET_OUT_OF_RANGE)
    assert w.ok(ListOffsets(TP, 0, EARLIEST_TIMESTAMP)).offset == 3
    assert w.ok(ListOffsets(TP, 0, LATEST_TIMESTAMP)).offset == 3
    assert w.produce(0, "d", acks=ACKS_LEADER).base_offset == 3
    w.settle()
    # The followers follow the leader's log start offset.
    assert [w.rep(b).log.start_offset for b in (0, 1, 2)] == [3, 3, 3]
    assert [r.value for r in w.ok(Fetch(TP, 0, 3)).records] == [b"d"]
    # Even after a failover the next offset is 4.
    w.ok(CrashBroker(0))
    w.ok(ElectController(1))
    w.ok(ControllerUpdatePartition(TP))
    w.settle()
    assert w.produce(1, "e", acks=ACKS_LEADER).base_offset == 4
    w.check_invariants()


def test_retention_on_a_crashed_broker_is_refused() -> None:
    w = World(log_retention_ms=1_000)
    w.produce(0, "a", acks=ACKS_LEADER)
    w.settle()
    w.ok(Tick(2_000))
    w.ok(CrashBroker(2))
    w.refuse(DeleteRetainedPrefix(TP, 2, 1), ErrorCode.BROKER_NOT_AVAILABLE)
