"""Idempotent producer scenarios through the cluster: a retried batch gets its original
offset (after failover, retention and leader epoch changes), duplicate acks=all batches
wait for the ISR, and NOT_ENOUGH_REPLICAS comes before the sequence check.  The
leader's own sequence checks are in test_idempotence.py.

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
    DeleteRetainedPrefix,
    ElectController,
    Produce,
    ProducedRecord,
    RestartBroker,
    Tick,
)
from spec.cluster import step
from spec.errors import ErrorCode
from spec.outcome import Rejected
from spec.produce import NO_OFFSET, ProduceReply, ProduceResponse
from tests.spec.scenario_helpers import TP, World

# --- idempotent producer -----------------------------------------------------------------

PID = 42


def idempotent(
    w: World, broker: int, seq: int, *values: str, acks: int = ACKS_ALL
) -> ProduceReply | ErrorCode:
    records = tuple(ProducedRecord(v.encode()) for v in values)
    action = Produce(
        TP, broker, records, acks=acks, producer_id=PID, producer_epoch=0, base_sequence=seq
    )
    out = step(w.s, action)
    if isinstance(out, Rejected):
        assert out.state == w.s
        return out.error
    w.s = out.state
    assert isinstance(out.reply, ProduceReply)
    return out.reply


def answered(w: World, reply: ProduceReply | ErrorCode) -> ProduceResponse:
    """Complete the delayed acks=all produce ``reply`` (it must be due now)."""
    assert isinstance(reply, ProduceReply)
    assert reply.pending is not None
    assert reply.base_offset == NO_OFFSET
    response = w.ok(CompleteProduce(reply.pending))
    assert isinstance(response, ProduceResponse)
    return response


def test_a_retried_batch_gets_its_original_offset_even_after_failover() -> None:
    w = World()
    w.produce(0, "plain", acks=ACKS_LEADER)
    first = idempotent(w, 0, 0, "a", "b")
    w.settle()
    assert answered(w, first) == ProduceResponse(0, ErrorCode.NONE, 1)
    # The answer was lost; the producer retries: same offset, nothing appended.
    log = w.rep(0).log
    assert answered(w, idempotent(w, 0, 0, "a", "b")) == ProduceResponse(1, ErrorCode.NONE, 1)
    assert idempotent(w, 0, 0, "a", "b", acks=ACKS_LEADER) == ProduceReply(1, 0)
    assert idempotent(w, 0, 0, "a", "b", acks=ACKS_NONE) == ProduceReply(NO_OFFSET, 0)
    assert w.rep(0).log == log
    # Failover: the new leader's producer state comes from its log.
    w.ok(CrashBroker(0))
    w.ok(ElectController(1))
    w.ok(ControllerUpdatePartition(TP))
    w.settle()
    assert w.zk.leader == 1
    assert idempotent(w, 1, 0, "a", "b", acks=ACKS_LEADER) == ProduceReply(1, 0)
    assert answered(w, idempotent(w, 1, 0, "a", "b")).base_offset == 1
    assert w.values(1) == ["plain", "a", "b"]
    # A gap is refused; the next sequence is appended.
    assert idempotent(w, 1, 3, "c") == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert idempotent(w, 1, 1, "b") == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    nxt = idempotent(w, 1, 2, "c", acks=ACKS_LEADER)
    assert nxt == ProduceReply(3, 0)
    # The old leader no longer takes the retry.
    w.ok(RestartBroker(0))
    assert idempotent(w, 0, 2, "c") == ErrorCode.NOT_LEADER_OR_FOLLOWER
    w.check_invariants()


def test_a_retry_after_retention_and_a_leader_epoch_change_is_still_a_duplicate() -> None:
    """Producer state outlives the records retention deletes (KIP-360), on the leader
    through a LeaderAndIsr, and on a follower that becomes leader."""
    w = World(log_retention_ms=1_000)
    first = idempotent(w, 0, 0, "a", acks=ACKS_LEADER)
    assert first == ProduceReply(0, 0)
    w.settle()
    w.ok(Tick(2_000))
    w.ok(DeleteRetainedPrefix(TP, 0, 1))
    assert idempotent(w, 0, 0, "a", acks=ACKS_LEADER) == ProduceReply(0, 1)  # still known
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(ApplyLeaderAndIsr(TP, 0))  # leader 0 again, epoch 1
    assert idempotent(w, 0, 0, "a", acks=ACKS_LEADER) == ProduceReply(0, 1)
    w.settle()  # follower 1 follows the log start offset, keeping the producer state
    assert w.rep(1).log.start_offset == 1
    w.ok(CrashBroker(0))
    w.ok(ElectController(1))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(ApplyLeaderAndIsr(TP, 1))
    assert idempotent(w, 1, 0, "a", acks=ACKS_LEADER) == ProduceReply(0, 1)
    assert w.rep(1).log.end_offset == 1
    assert idempotent(w, 1, 1, "b", acks=ACKS_LEADER) == ProduceReply(1, 1)


def test_a_duplicate_acks_all_batch_waits_for_the_isr() -> None:
    """Kafka's DelayedProduce waits for the duplicate's offsets like the original's
    (ReplicaManager: requiredOffset = the duplicate's last offset + 1)."""
    w = World()
    first = idempotent(w, 0, 0, "a")
    assert isinstance(first, ProduceReply)
    assert first.pending is not None
    retry = idempotent(w, 0, 0, "a")
    assert isinstance(retry, ProduceReply)
    assert retry.pending is not None
    assert retry.base_offset == NO_OFFSET
    assert w.values(0) == ["a"]  # not appended twice
    w.refuse(CompleteProduce(retry.pending), ErrorCode.REQUEST_TIMED_OUT)  # not due yet
    w.settle()
    assert answered(w, retry) == ProduceResponse(retry.pending, ErrorCode.NONE, 0)
    assert answered(w, first) == ProduceResponse(first.pending, ErrorCode.NONE, 0)


def test_not_enough_replicas_comes_before_the_sequence_check() -> None:
    w = World()
    idempotent(w, 0, 0, "a", acks=ACKS_LEADER)
    w.ok(CrashBroker(1))
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    w.ok(ApplyLeaderAndIsr(TP, 0))
    assert idempotent(w, 0, 0, "a") == ErrorCode.NOT_ENOUGH_REPLICAS  # a duplicate
    assert idempotent(w, 0, 5, "x") == ErrorCode.NOT_ENOUGH_REPLICAS  # a gap
    assert idempotent(w, 0, 0, "a", acks=ACKS_LEADER) == ProduceReply(0, 0)
