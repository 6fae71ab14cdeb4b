"""Produce scenarios: how acks=0, acks=1 and acks=all are answered, min.insync.replicas,
delayed acks=all produces that wait for the ISR (NOT_ENOUGH_REPLICAS_AFTER_APPEND,
REQUEST_TIMED_OUT), and produce requests to a follower.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_ALL,
    ACKS_LEADER,
    ACKS_NONE,
    ApplyLeaderAndIsr,
    CompleteProduce,
    ControllerUpdatePartition,
    CrashBroker,
    Produce,
    ProducedRecord,
    ShrinkIsr,
    Tick,
)
from spec.cluster import internal_actions
from spec.errors import ErrorCode
from spec.produce import NO_OFFSET, ProduceReply, ProduceResponse, is_due
from tests.spec.scenario_helpers import LAG_MS, TP, World

# --- acks ------------------------------------------------------------------------------


def test_acks_all_waits_until_every_isr_member_has_the_batch() -> None:
    w = World()
    reply = w.produce(0, "a", "b")
    assert reply.pending is not None
    assert reply.base_offset == NO_OFFSET
    req = reply.pending
    done = CompleteProduce(req)
    assert not is_due(w.s, w.s.pending[0])
    w.refuse(done, ErrorCode.REQUEST_TIMED_OUT)  # not due yet: nothing changes
    # Follower 1 fetches the batch and reports it: still waiting for follower 2.
    w.fetch_rounds(1, 2)
    assert w.rep(1).log.end_offset == 2
    assert w.hw(0) == 0
    assert done not in set(internal_actions(w.s))
    w.refuse(done, ErrorCode.REQUEST_TIMED_OUT)
    # Follower 2 fetches it; once it reports its new log end offset the batch is committed.
    w.fetch_rounds(2, 1)
    assert w.hw(0) == 0
    w.refuse(done, ErrorCode.REQUEST_TIMED_OUT)
    w.fetch_rounds(2, 1)
    assert w.hw(0) == 2
    assert done in set(internal_actions(w.s))
    response = w.ok(done)
    assert response == ProduceResponse(req, ErrorCode.NONE, 0)
    assert w.s.pending == ()
    assert {(a.offset, a.record.value) for a in w.s.acked} == {(0, b"a"), (1, b"b")}
    w.check_invariants()


def test_acks_all_is_refused_when_the_isr_is_below_min_insync_replicas() -> None:
    w = World()
    w.ok(CrashBroker(1))
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    assert w.zk.isr == {0}
    w.ok(ApplyLeaderAndIsr(TP, 0))
    records = (ProducedRecord(b"x"),)
    w.refuse(Produce(TP, 0, records, acks=ACKS_ALL), ErrorCode.NOT_ENOUGH_REPLICAS)
    assert w.rep(0).log.end_offset == 0  # nothing appended
    # acks=1 does not depend on min.insync.replicas.
    assert w.produce(0, "x", acks=ACKS_LEADER).base_offset == 0
    w.check_invariants()


def test_acks_all_answers_not_enough_replicas_after_append_when_the_isr_shrank() -> None:
    w = World()
    req = w.produce(0, "x").pending
    assert req is not None
    w.ok(Tick(LAG_MS + 1))
    w.ok(ShrinkIsr(TP, 0, 1))
    assert w.hw(0) == 0  # follower 2 still holds it back
    w.ok(ShrinkIsr(TP, 0, 2))
    assert w.zk.isr == {0}
    assert w.hw(0) == 1  # the ISR is the leader alone: the batch is "replicated"
    response = w.ok(CompleteProduce(req))
    assert response == ProduceResponse(req, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, NO_OFFSET)
    assert w.s.acked == frozenset()
    assert w.values(0) == ["x"]  # appended all the same
    w.check_invariants()


def test_acks_all_times_out() -> None:
    w = World()
    req = w.produce(0, "x", timeout_ms=500).pending
    assert req is not None
    w.ok(Tick(499))
    w.refuse(CompleteProduce(req), ErrorCode.REQUEST_TIMED_OUT)
    w.ok(Tick(1))
    response = w.ok(CompleteProduce(req))
    assert response == ProduceResponse(req, ErrorCode.REQUEST_TIMED_OUT, NO_OFFSET)
    assert w.s.pending == ()
    assert w.s.acked == frozenset()
    w.check_invariants()


def test_acks_1_answers_at_once_with_the_base_offset() -> None:
    w = World()
    first = w.produce(0, "a", "b", acks=ACKS_LEADER)
    assert first == ProduceReply(0, 0, None)
    assert w.produce(0, "c", acks=ACKS_LEADER).base_offset == 2
    assert w.s.pending == ()
    assert w.hw(0) == 0  # answered although no follower has it
    assert w.values(0) == ["a", "b", "c"]
    w.check_invariants()


def test_acks_0_answers_nothing() -> None:
    w = World()
    reply = w.produce(0, "a", acks=ACKS_NONE)
    assert reply.base_offset == NO_OFFSET
    assert reply.pending is None
    assert w.s.pending == ()
    assert w.values(0) == ["a"]  # but the record is written
    w.check_invariants()


def test_produce_to_a_follower_is_refused() -> None:
    w = World()
    w.refuse(
        Produce(TP, 1, (ProducedRecord(b"x"),), acks=ACKS_LEADER),
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
    )
