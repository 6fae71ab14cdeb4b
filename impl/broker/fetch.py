"""Fetch (v4-v12, topics by name): stored batches up to the high watermark, within the
response's max_bytes and each partition's partition_max_bytes (the first partition with
data gets at least one whole batch, as Kafka's KIP-74), with long polling: when fewer than
min_bytes are available the request waits up to max_wait_ms, woken by
``ctx.data_arrived`` after appends (no polling).

Fetch sessions (KIP-227) are not kept: every answer has session_id 0, which clients read
as "send full fetch requests".

Replica fetches (replica_id >= 0, from a follower of the partition) read up to the log end
offset and wait for appends, not for the high watermark.  On arrival each one tells the
leader the follower's log end offset (its fetch offset): the high watermark may advance
(waking acks=all produces and consumers), and a follower that caught up is proposed to
the replica manager for the ISR.  A partition this broker does not lead is
NOT_LEADER_OR_FOLLOWER when the cluster has it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from impl import mutants
from impl.broker.kio_build import build, nested, response_class
from impl.broker.partition import PartitionError, PartitionState, not_led_error
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

READ_COMMITTED = 1
INT32_MAX = 2**31 - 1


class _Wanted:
    """One requested partition."""

    __slots__ = ("current_leader_epoch", "index", "max_bytes", "offset", "tp")

    def __init__(self, tp: TopicPartition, part: Any) -> None:
        self.tp = tp
        self.index = int(part.partition)
        self.offset = int(part.fetch_offset)
        self.max_bytes = int(part.partition_max_bytes)
        self.current_leader_epoch = int(getattr(part, "current_leader_epoch", -1))


# One partition's answer: (partition index, error, high watermark, last stable offset,
# log start offset, records).
_Answer = tuple[int, ErrorCode, int, int, int, bytes]


async def handle_fetch(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    if int(getattr(req, "session_id", 0)) != 0:
        # No session was ever handed out, so an incremental fetch names an unknown one.
        return _response(request, [], ErrorCode.FETCH_SESSION_ID_NOT_FOUND)
    replica_id = int(req.replica_id)
    read_committed = int(getattr(req, "isolation_level", 0)) == READ_COMMITTED
    wanted = [
        (
            str(topic.topic),
            [
                _Wanted(TopicPartition(str(topic.topic), int(p.partition)), p)
                for p in topic.partitions
            ],
        )
        for topic in req.topics
    ]
    max_bytes = int(getattr(req, "max_bytes", INT32_MAX))
    min_bytes = int(req.min_bytes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.max_wait.total_seconds(), 0.0)
    if replica_id >= 0:
        await _record_replica_fetch(ctx, wanted, replica_id)
    while True:
        answers, size, failed = _read_all(ctx, wanted, max_bytes, replica_id)
        if size >= min_bytes or failed or loop.time() >= deadline:
            return _response(request, answers, ErrorCode.NONE, read_committed)
        await _wait_for_change(ctx, wanted, deadline, replica_id >= 0)
        if loop.time() >= deadline:
            answers, size, failed = _read_all(ctx, wanted, max_bytes, replica_id)
            return _response(request, answers, ErrorCode.NONE, read_committed)


async def _record_replica_fetch(
    ctx: BrokerContext, wanted: list[tuple[str, list[_Wanted]]], replica_id: int
) -> None:
    """A follower's fetch: record its log end offset for each partition led here whose
    leader epoch it has right (KIP-320), wake fetches and produces when the high watermark
    moved, and propose it for the ISR when it caught up."""
    now_ms = time.time_ns() // 1_000_000
    advanced = False
    replicas = getattr(ctx, "replicas", None)
    for _, parts in wanted:
        for w in parts:
            p = ctx.partitions.get(w.tp)
            if (
                p is None
                or replica_id not in p.replicas
                or replica_id == p.leader_id
                or p.check_leader_epoch(w.current_leader_epoch) != ErrorCode.NONE
                or not p.log.start_offset <= w.offset <= p.log.end_offset
            ):
                continue
            advanced |= p.update_follower(replica_id, w.offset, now_ms)
            if replicas is not None and p.may_join_isr(replica_id):
                replicas.maybe_expand_isr(p, replica_id)
    if advanced:
        async with ctx.data_arrived:
            ctx.data_arrived.notify_all()


def _positions(
    ctx: BrokerContext, wanted: list[tuple[str, list[_Wanted]]], replica: bool
) -> list[object]:
    """What a waiting fetch watches: for a consumer each partition's high watermark and
    log start, for a follower its log end offset and log start (as Kafka's DelayedFetch,
    a follower's fetch waits for appends: a high watermark that moved reaches the follower
    with the next data, not as an empty answer of its own)."""
    out: list[object] = []
    for _, parts in wanted:
        for w in parts:
            p = ctx.partitions.get(w.tp)
            if p is None:
                out.append(None)
            elif replica:
                out.append((id(p), p.log.start_offset, p.log.end_offset))
            else:
                out.append((id(p), p.high_watermark, p.log.start_offset))
    return out


async def _wait_for_change(
    ctx: BrokerContext, wanted: list[tuple[str, list[_Wanted]]], deadline: float, replica: bool
) -> None:
    """Wait until a watched partition changes or the deadline passes."""
    loop = asyncio.get_running_loop()
    before = _positions(ctx, wanted, replica)
    cond = ctx.data_arrived
    async with cond:
        while _positions(ctx, wanted, replica) == before:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                async with asyncio.timeout(remaining):
                    await cond.wait()
            except TimeoutError:
                return


def _read_all(
    ctx: BrokerContext, wanted: list[tuple[str, list[_Wanted]]], max_bytes: int, replica_id: int
) -> tuple[list[tuple[str, list[_Answer]]], int, bool]:
    """Every partition's answer, the bytes of records in them, and whether any failed."""
    limit = max_bytes
    min_one = True
    failed = False
    out: list[tuple[str, list[_Answer]]] = []
    for name, parts in wanted:
        answers: list[_Answer] = []
        for w in parts:
            partition = ctx.partitions.get(w.tp)
            if partition is None:
                failed = True
                answers.append((w.index, not_led_error(ctx, w.tp), -1, -1, -1, b""))
                continue
            try:
                data = _read_one(partition, w, min(w.max_bytes, limit), min_one, replica_id)
            except PartitionError as e:
                failed = True
                answers.append(
                    (
                        w.index,
                        e.code,
                        partition.high_watermark,
                        partition.last_stable_offset,
                        partition.log_start_offset,
                        b"",
                    )
                )
                continue
            if data:
                min_one = False
                limit = max(0, limit - len(data))
            answers.append(
                (
                    w.index,
                    ErrorCode.NONE,
                    partition.high_watermark,
                    partition.last_stable_offset,
                    partition.log_start_offset,
                    data,
                )
            )
        out.append((name, answers))
    size = sum(len(a[5]) for _, answers in out for a in answers)
    return out, size, failed


def _read_one(
    partition: PartitionState, w: _Wanted, max_bytes: int, min_one: bool, replica_id: int
) -> bytes:
    code = partition.check_leader_epoch(w.current_leader_epoch)
    if code != ErrorCode.NONE:
        raise PartitionError(code)
    if replica_id >= 0:
        if replica_id not in partition.replicas:
            raise PartitionError(ErrorCode.NOT_LEADER_OR_FOLLOWER)
        max_offset = partition.log_end_offset
    else:
        # Consumers read committed data only; without transactions the last stable
        # offset is the high watermark, so both isolation levels read up to it.
        max_offset = partition.high_watermark
        if mutants.active(mutants.SERVE_ABOVE_HIGH_WATERMARK):
            max_offset = partition.log_end_offset
    partition.check_fetch_offset(w.offset)
    offset = w.offset + 1 if mutants.active(mutants.FETCH_OFF_BY_ONE) else w.offset
    return partition.read(offset, max_bytes, min_one, max_offset)


def _response(
    request: Entity,
    results: list[tuple[str, list[_Answer]]],
    error: ErrorCode,
    read_committed: bool = False,
) -> Entity:
    cls = response_class(request)
    topic_cls = nested(cls, "FetchableTopicResponse")
    part_cls = nested(cls, "PartitionData")
    aborted = () if read_committed else None
    topics = tuple(
        build(
            topic_cls,
            topic=name,
            partitions=tuple(
                build(
                    part_cls,
                    partition_index=index,
                    error_code=code,
                    high_watermark=hw,
                    last_stable_offset=lso,
                    log_start_offset=start,
                    aborted_transactions=aborted,
                    preferred_read_replica=-1,
                    records=data,
                )
                for index, code, hw, lso, start, data in answers
            ),
        )
        for name, answers in results
    )
    built: Entity = build(cls, error_code=error, session_id=0, responses=topics)
    return built
