"""Produce (v3+, record batches v2): per partition, check the one batch as Kafka does
(its layout here, its size and CRC by the log; no record is decoded), append it with this
leader's epoch, and answer with its base offset.  acks=-1 waits for the high watermark
(the ISR has the batch; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
min.insync.replicas meanwhile, NOT_LEADER_OR_FOLLOWER if this broker stopped leading,
REQUEST_TIMED_OUT at the request's timeout); a partition led elsewhere is
NOT_LEADER_OR_FOLLOWER; acks=0 gets no answer (its connection is closed instead when a
partition failed, as Kafka does).  Clients cannot append to ``__consumer_offsets``
(INVALID_TOPIC_EXCEPTION, as Kafka).  Long-polling fetches are woken once after the
request's appends.

The request comes from ``impl.wire.produce_request`` (the server reads Produce bodies with
it): each batch is a view of the request frame, appended to the log without a copy."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from impl import mutants
from impl.broker.partition import (
    VALID_ACKS,
    PartitionError,
    PartitionState,
    not_led_error,
    validate_batch,
)
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from impl.wire.produce_request import ProduceRequest, from_entity
from impl.wire.produce_response import encode_produce_response
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

MIN_INSYNC = "min.insync.replicas"

# One partition's answer: (index, error, base offset, log start offset, error message).
_Answer = tuple[int, ErrorCode, int, int, str | None]


def _topic_int(ctx: BrokerContext, topic: str, name: str, default: int) -> int:
    info = ctx.topics.get(topic)
    if info is None or name not in info.configs:
        return default
    return int(info.configs[name])


async def handle_produce(
    ctx: BrokerContext, header: RequestHeader, request: ProduceRequest | Entity
) -> bytes | None:
    """The response frame, written directly (``produce_response``), or None (acks=0).
    The request is normally a ``ProduceRequest``; a kio entity is converted first."""
    req = request if isinstance(request, ProduceRequest) else from_entity(request)
    acks = req.acks
    results: list[tuple[str, list[_Answer]]] = []
    # acks=-1: (partition, offset the high watermark must reach, min.insync.replicas,
    # topic and partition index)
    waits: list[tuple[PartitionState, int, int, int, int]] = []
    appended = False
    now_ms = time.time_ns() // 1_000_000
    for name, partitions in req.topics:
        answers: list[_Answer] = []
        for index, data in partitions:
            tp = TopicPartition(name, index)
            partition = ctx.partitions.get(tp)
            try:
                # As Kafka: a partition not led here is answered before acks is checked.
                if partition is None:
                    raise PartitionError(not_led_error(ctx, tp))
                if acks not in VALID_ACKS:
                    raise PartitionError(ErrorCode.INVALID_REQUIRED_ACKS, f"acks={acks}")
                if name == GROUP_METADATA_TOPIC_NAME:  # only the coordinator writes it
                    raise PartitionError(
                        ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {name}"
                    )
                if data is None:
                    raise PartitionError(ErrorCode.INVALID_RECORD, "no record batch")
                batch_header = validate_batch(data)
                min_insync = (
                    _topic_int(ctx, name, MIN_INSYNC, ctx.config.min_insync_replicas)
                    if acks == -1
                    else 1
                )
                info = partition.append_as_leader(data, acks, min_insync, now_ms, batch_header)
            except PartitionError as e:
                start = partition.log_start_offset if partition is not None else -1
                answers.append((index, e.code, -1, start, str(e)))
                continue
            appended = True
            if acks == -1 and not mutants.active(mutants.ACK_BEFORE_REPLICATE):
                committed = info.last_offset + 1
                waits.append((partition, committed, min_insync, len(results), len(answers)))
            answers.append((index, ErrorCode.NONE, info.base_offset, info.log_start_offset, None))
        results.append((name, answers))
    if appended:
        async with ctx.data_arrived:
            ctx.data_arrived.notify_all()
    if acks == 0:
        if any(code != ErrorCode.NONE for _, answers in results for _, code, *_ in answers):
            # As Kafka: a producer that wants no answer learns of an error by the closed
            # connection.  (Imported here: the server module imports the handlers.)
            from impl.broker.server import CloseConnectionError  # noqa: PLC0415

            raise CloseConnectionError("acks=0 produce request with a failed partition")
        return None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(req.timeout_ms / 1000, 0.0)
    for partition, committed, min_insync, t, p in waits:
        timeout_s = max(deadline - loop.time(), 0.0)
        code = await partition.wait_for_high_watermark(committed, timeout_s, min_insync)
        if code != ErrorCode.NONE:
            results[t][1][p] = (results[t][1][p][0], code, -1, -1, None)
    return encode_produce_response(header, results)
