"""Produce: the leader appends a batch at its log end offset, and answers by acks.

acks=0 answers nothing, acks=1 answers once the leader has appended, acks=all (``-1``)
answers once the high watermark has passed the batch, i.e. every ISR member has it
(Kafka's DelayedProduce).  acks=all is refused with NOT_ENOUGH_REPLICAS when the ISR is
smaller than min.insync.replicas, and answered NOT_ENOUGH_REPLICAS_AFTER_APPEND when it
shrank below it while the batch waited; REQUEST_TIMED_OUT when the timeout passes first.
"""

from __future__ import annotations

import attrs

from spec import idempotence
from spec.actions import ACKS_ALL, ACKS_LEADER, ACKS_NONE, CompleteProduce, Produce
from spec.errors import ErrorCode
from spec.log import Record
from spec.outcome import Ok, Outcome, Rejected
from spec.replication import advance_high_watermark
from spec.state import AckedRecord, ClusterState, PendingProduce, Replica
from spec.variants import Variant

NO_OFFSET = -1


@attrs.frozen(slots=True)
class ProduceReply:
    """What the producer sees: the batch's base offset (``-1`` for acks=0, or while an
    acks=all request is still ``pending``, the request id to complete) and the log start
    offset."""

    base_offset: int
    log_start_offset: int
    pending: int | None = None


@attrs.frozen(slots=True)
class ProduceResponse:
    """The answer to a delayed acks=all produce."""

    request_id: int
    error: ErrorCode
    base_offset: int


def produce(s: ClusterState, a: Produce) -> Outcome[ClusterState, ProduceReply]:
    """The leader's handling of one batch for one partition."""
    part = s.partitions.get(a.tp)
    if part is None:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if not s.is_up(a.broker):
        return Rejected(s, ErrorCode.NETWORK_EXCEPTION)
    if a.acks not in (ACKS_NONE, ACKS_LEADER, ACKS_ALL):
        return Rejected(s, ErrorCode.INVALID_REQUIRED_ACKS)
    if not a.records:
        return Rejected(s, ErrorCode.INVALID_RECORD)
    if a.size_bytes > s.config.message_max_bytes:
        return Rejected(s, ErrorCode.MESSAGE_TOO_LARGE)
    rep = part.replica.get(a.broker)
    if rep is None or not rep.presumes_leadership(a.broker):
        return Rejected(s, ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert rep.known is not None
    if a.acks == ACKS_ALL and len(rep.known.isr) < s.config.min_insync_replicas:
        return Rejected(s, ErrorCode.NOT_ENOUGH_REPLICAS)
    if a.producer_id >= 0:
        verdict = idempotence.check_sequence(
            rep.log,
            a.producer_id,
            a.producer_epoch,
            a.base_sequence,
            len(a.records),
            snapshot=rep.producers,
        )
        if isinstance(verdict, ErrorCode):
            return Rejected(s, verdict)
        if isinstance(verdict, idempotence.Duplicate):
            # A retried batch is not appended again: it is answered with the original
            # offsets, once the original is committed when acks=all.
            return _answer(s, a, rep, verdict.base_offset, verdict.last_offset)
    base = rep.log.end_offset
    log = rep.log
    for i, r in enumerate(a.records):
        if a.producer_id >= 0:
            log = log.append(
                idempotence.BatchRecord(
                    value=r.value,
                    key=r.key,
                    timestamp=s.now,
                    leader_epoch=rep.known.leader_epoch,
                    producer_id=a.producer_id,
                    producer_epoch=a.producer_epoch,
                    sequence=idempotence.increment_sequence(a.base_sequence, i),
                    base_sequence=a.base_sequence,
                )
            )
        else:
            log = log.append(
                Record(
                    value=r.value, key=r.key, timestamp=s.now, leader_epoch=rep.known.leader_epoch
                )
            )
    s = s.with_replica(a.tp, a.broker, attrs.evolve(rep, log=log))
    s = advance_high_watermark(s, a.tp, a.broker)
    return _answer(s, a, s.partitions[a.tp].replica[a.broker], base, log.end_offset - 1)


def _answer(
    s: ClusterState, a: Produce, rep: Replica, base: int, last: int
) -> Outcome[ClusterState, ProduceReply]:
    """The reply to a batch stored at [base, last]: nothing for acks=0, the base offset for
    acks=1, and for acks=all a delayed produce waiting for the high watermark."""
    start = rep.log.start_offset
    if a.acks == ACKS_NONE:
        return Ok(s, ProduceReply(NO_OFFSET, start))
    if a.acks == ACKS_LEADER:
        return Ok(s, ProduceReply(base, start))
    assert rep.known is not None
    req = PendingProduce(
        request_id=s.next_request_id,
        tp=a.tp,
        broker=a.broker,
        leader_epoch=rep.known.leader_epoch,
        base_offset=base,
        last_offset=last,
        deadline_ms=s.now + a.timeout_ms,
    )
    s = attrs.evolve(s, pending=(*s.pending, req), next_request_id=s.next_request_id + 1)
    return Ok(s, ProduceReply(NO_OFFSET, start, pending=req.request_id))


def complete_produce(s: ClusterState, a: CompleteProduce) -> Outcome[ClusterState, ProduceResponse]:
    """Answer a delayed acks=all produce when the high watermark has passed it (or it timed
    out, or the broker stopped leading).  Not yet due: rejected, nothing changes."""
    req = next((p for p in s.pending if p.request_id == a.request_id), None)
    if req is None:
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    rep = s.replica(req.tp, req.broker)
    rest = tuple(p for p in s.pending if p.request_id != a.request_id)
    done = attrs.evolve(s, pending=rest)
    if rep is None or not rep.presumes_leadership(req.broker):
        return Ok(
            done, ProduceResponse(req.request_id, ErrorCode.NOT_LEADER_OR_FOLLOWER, NO_OFFSET)
        )
    assert rep.known is not None
    replicated = rep.high_watermark > req.last_offset
    if s.config.has(Variant.ACK_BEFORE_ISR):
        replicated = rep.log.end_offset > req.last_offset
    if replicated:
        if len(rep.known.isr) < s.config.min_insync_replicas:
            err = ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
            return Ok(done, ProduceResponse(req.request_id, err, NO_OFFSET))
        acked = frozenset(
            AckedRecord(req.tp, off, rec)
            for off in range(req.base_offset, req.last_offset + 1)
            if (rec := rep.log.record_at(off)) is not None
        )
        done = attrs.evolve(done, acked=done.acked | acked)
        return Ok(done, ProduceResponse(req.request_id, ErrorCode.NONE, req.base_offset))
    if s.now >= req.deadline_ms:
        return Ok(done, ProduceResponse(req.request_id, ErrorCode.REQUEST_TIMED_OUT, NO_OFFSET))
    return Rejected(s, ErrorCode.REQUEST_TIMED_OUT)


def is_due(s: ClusterState, req: PendingProduce) -> bool:
    """Whether the delayed produce ``req`` can be answered now."""
    return isinstance(complete_produce(s, CompleteProduce(req.request_id)), Ok)
