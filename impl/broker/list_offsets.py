"""ListOffsets (v1-v7): per partition, the offset for a timestamp: -2 the log start offset
(earliest), -1 the high watermark (latest; also the last stable offset, as there are no
transactions), -3 the batch with the largest timestamp (KIP-734, v7), otherwise the first
offset whose timestamp is at or after the given one, below the high watermark.  Nothing
found: offset and timestamp -1.  The v0 layout (a list of old offsets) is not served.
Only the leader answers: a partition led elsewhere in the cluster is
NOT_LEADER_OR_FOLLOWER."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from impl import mutants
from impl.broker.kio_build import build, nested, response_class
from impl.broker.partition import PartitionState, not_led_error
from impl.storage.partition_log import PartitionLog
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
NO_TIMESTAMP = -1

# (error, timestamp, offset, leader epoch)
_Answer = tuple[ErrorCode, int, int, int]


async def handle_list_offsets(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    replica_id = int(req.replica_id)
    cls = response_class(request)
    topic_cls = nested(cls, "ListOffsetsTopicResponse")
    part_cls = nested(cls, "ListOffsetsPartitionResponse")
    topics = []
    for topic in req.topics:
        name = str(topic.name)
        answers = []
        for part in topic.partitions:
            index = int(part.partition_index)
            tp = TopicPartition(name, index)
            code, timestamp, offset, epoch = _answer(
                ctx.partitions.get(tp),
                int(getattr(part, "current_leader_epoch", -1)),
                int(part.timestamp),
                replica_id,
            )
            if code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                code = not_led_error(ctx, tp)
            answers.append(
                build(
                    part_cls,
                    partition_index=index,
                    error_code=code,
                    timestamp=timestamp,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        topics.append(build(topic_cls, name=name, partitions=tuple(answers)))
    built: Entity = build(cls, topics=tuple(topics))
    return built


def _answer(
    partition: PartitionState | None, current_leader_epoch: int, timestamp: int, replica_id: int
) -> _Answer:
    if partition is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, NO_TIMESTAMP, -1, -1
    code = partition.check_leader_epoch(current_leader_epoch)
    if code != ErrorCode.NONE:
        return code, NO_TIMESTAMP, -1, -1
    # A follower (replica_id >= 0) may see up to the log end; consumers up to the high
    # watermark.
    fetchable = partition.log_end_offset if replica_id >= 0 else partition.high_watermark
    log = partition.log
    if timestamp == EARLIEST_TIMESTAMP:
        start = log.start_offset
        if mutants.active(mutants.WRONG_LOG_START_OFFSET) and start >= fetchable:
            return ErrorCode.NONE, NO_TIMESTAMP, -1, -1
        return ErrorCode.NONE, NO_TIMESTAMP, start, _epoch_for_offset(log, start)
    if timestamp == LATEST_TIMESTAMP:
        off_by_one = mutants.active(mutants.LIST_OFFSETS_LATEST_OFF_BY_ONE)
        return ErrorCode.NONE, NO_TIMESTAMP, fetchable - off_by_one, partition.leader_epoch
    if timestamp == MAX_TIMESTAMP:
        largest = max((seg.max_timestamp for seg in log.segments), default=NO_TIMESTAMP)
        found = log.offset_for_timestamp(largest) if largest >= 0 else None
    elif timestamp < 0:
        return ErrorCode.INVALID_REQUEST, NO_TIMESTAMP, -1, -1
    else:
        found = log.offset_for_timestamp(timestamp)
    if found is None or found.offset >= fetchable:
        return ErrorCode.NONE, NO_TIMESTAMP, -1, -1
    return ErrorCode.NONE, found.timestamp, found.offset, found.leader_epoch


def _epoch_for_offset(log: PartitionLog, offset: int) -> int:
    """The leader epoch the batch at ``offset`` was written in (-1 for an empty log)."""
    if offset >= log.end_offset:
        return -1
    epoch = -1
    for entry in log.epoch_cache.entries:
        if entry.start_offset > offset:
            break
        epoch = entry.epoch
    return epoch
