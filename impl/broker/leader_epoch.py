"""OffsetForLeaderEpoch (v2-v4, KIP-101/279/320): for each partition, the largest leader
epoch at or below the requested one and the offset where it ended (the log end offset for
the current epoch), from the leader-epoch cache.  A client's current_leader_epoch older
than ours is FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH.  Followers ask it
before they fetch in a new epoch (impl.replication.fetcher); only the leader answers, a
partition led elsewhere in the cluster is NOT_LEADER_OR_FOLLOWER."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from impl.broker.kio_build import build, nested, response_class
from impl.broker.partition import not_led_error
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader


async def handle_offset_for_leader_epoch(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity:
    req: Any = request
    cls = response_class(request)
    topic_cls = nested(cls, "OffsetForLeaderTopicResult")
    part_cls = nested(cls, "EpochEndOffset")
    topics = []
    for topic in req.topics:
        name = str(topic.topic)
        answers = []
        for part in topic.partitions:
            code, epoch, end_offset = _answer(
                ctx,
                TopicPartition(name, int(part.partition)),
                int(getattr(part, "current_leader_epoch", -1)),
                int(part.leader_epoch),
            )
            answers.append(
                build(
                    part_cls,
                    error_code=code,
                    partition=int(part.partition),
                    leader_epoch=epoch,
                    end_offset=end_offset,
                )
            )
        topics.append(build(topic_cls, topic=name, partitions=tuple(answers)))
    built: Entity = build(cls, topics=tuple(topics))
    return built


def _answer(
    ctx: BrokerContext, tp: TopicPartition, current_leader_epoch: int, leader_epoch: int
) -> tuple[ErrorCode, int, int]:
    partition = ctx.partitions.get(tp)
    if partition is None:
        return not_led_error(ctx, tp), -1, -1
    code = partition.check_leader_epoch(current_leader_epoch)
    if code != ErrorCode.NONE:
        return code, -1, -1
    epoch, end_offset = partition.log.end_offset_for_epoch(leader_epoch)
    return ErrorCode.NONE, epoch, end_offset
