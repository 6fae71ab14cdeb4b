"""What consumers see: Fetch below the high watermark, ListOffsets, OffsetForLeaderEpoch,
and retention moving the log start offset.

A consumer reads only from the leader and only below its high watermark; a fetch offset
below the log start offset or above the log end offset is OFFSET_OUT_OF_RANGE, and one
between the high watermark and the log end offset returns no records.  With a current
leader epoch (KIP-320) a stale epoch is FENCED_LEADER_EPOCH and a newer one
UNKNOWN_LEADER_EPOCH.  Retention deletes a prefix, never past the high watermark, and
offsets are never reused.
"""

from __future__ import annotations

import attrs

from spec.actions import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    DeleteRetainedPrefix,
    Fetch,
    ListOffsets,
    OffsetForLeaderEpoch,
)
from spec.errors import ErrorCode
from spec.idempotence import take_snapshot
from spec.log import Record
from spec.outcome import Ok, Outcome, Rejected
from spec.state import ClusterState, Replica, TopicPartition

UNKNOWN_OFFSET = -1


@attrs.frozen(slots=True)
class FetchReply:
    """Records from ``offset`` (first record at ``offset``), with the partition's high
    watermark and log start offset."""

    offset: int
    records: tuple[Record, ...]
    high_watermark: int
    log_start_offset: int


@attrs.frozen(slots=True)
class OffsetReply:
    """A ListOffsets answer (offset, or -1 when no record matches) or an OffsetForLeaderEpoch
    answer (``leader_epoch`` and end offset)."""

    offset: int
    leader_epoch: int = -1


def leader_replica(
    s: ClusterState, tp: TopicPartition, broker: int, current_leader_epoch: int
) -> Replica | ErrorCode:
    """The replica that serves a client request for ``tp`` at ``broker``, or the error."""
    part = s.partitions.get(tp)
    if part is None:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if not s.is_up(broker):
        return ErrorCode.NETWORK_EXCEPTION
    rep = part.replica.get(broker)
    if rep is None or not rep.presumes_leadership(broker):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert rep.known is not None
    if current_leader_epoch >= 0:
        if current_leader_epoch < rep.known.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        if current_leader_epoch > rep.known.leader_epoch:
            return ErrorCode.UNKNOWN_LEADER_EPOCH
    return rep


def fetch(s: ClusterState, a: Fetch) -> Outcome[ClusterState, FetchReply]:
    """A consumer's fetch: committed records only (below the high watermark)."""
    rep = leader_replica(s, a.tp, a.broker, a.current_leader_epoch)
    if isinstance(rep, ErrorCode):
        return Rejected(s, rep)
    log = rep.log
    if a.offset < log.start_offset or a.offset > log.end_offset:
        return Rejected(s, ErrorCode.OFFSET_OUT_OF_RANGE)
    records = log.read(a.offset, rep.high_watermark)[: max(a.max_records, 0)]
    return Ok(s, FetchReply(a.offset, records, rep.high_watermark, log.start_offset))


def list_offsets(s: ClusterState, a: ListOffsets) -> Outcome[ClusterState, OffsetReply]:
    """Earliest is the log start offset, latest the high watermark; a timestamp finds the
    first committed record at or after it."""
    rep = leader_replica(s, a.tp, a.broker, a.current_leader_epoch)
    if isinstance(rep, ErrorCode):
        return Rejected(s, rep)
    if a.timestamp == EARLIEST_TIMESTAMP:
        return Ok(s, OffsetReply(rep.log.start_offset))
    if a.timestamp == LATEST_TIMESTAMP:
        return Ok(s, OffsetReply(rep.high_watermark))
    if a.timestamp < 0:
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    base = rep.log.start_offset
    for i, r in enumerate(rep.log.read(base, rep.high_watermark)):
        if r.timestamp >= a.timestamp:
            return Ok(s, OffsetReply(base + i, r.leader_epoch))
    return Ok(s, OffsetReply(UNKNOWN_OFFSET))


def offset_for_leader_epoch(
    s: ClusterState, a: OffsetForLeaderEpoch
) -> Outcome[ClusterState, OffsetReply]:
    """The leader's end offset for ``a.leader_epoch`` (KIP-101, KIP-279)."""
    rep = leader_replica(s, a.tp, a.broker, a.current_leader_epoch)
    if isinstance(rep, ErrorCode):
        return Rejected(s, rep)
    epoch, end = rep.log.end_offset_for_epoch(a.leader_epoch)
    return Ok(s, OffsetReply(end, epoch))


def record_size(r: Record) -> int:
    """The bytes a record counts for retention.bytes in the model: key plus value."""
    return len(r.value) + (len(r.key) if r.key is not None else 0)


def retention_limit(s: ClusterState, rep: Replica) -> int:
    """The highest log start offset retention may move ``rep``'s log to now.

    By time: records older than log.retention.ms; by size: while the rest still holds at
    least log.retention.bytes.  Never past the high watermark.  A broker deletes whole
    segments, so it may stop below this limit; it may never go beyond it.
    """
    log = rep.log
    limit = log.start_offset
    if s.config.log_retention_ms >= 0:
        for r in log.records:
            if r.timestamp + s.config.log_retention_ms >= s.now:
                break
            limit += 1
    if s.config.log_retention_bytes >= 0:
        remaining = sum(record_size(r) for r in log.records)
        by_size = log.start_offset
        for r in log.records:
            if remaining - record_size(r) < s.config.log_retention_bytes:
                break
            remaining -= record_size(r)
            by_size += 1
        limit = max(limit, by_size)
    return min(limit, rep.high_watermark)


def delete_retained_prefix(s: ClusterState, a: DeleteRetainedPrefix) -> Outcome[ClusterState, None]:
    """Retention on one replica advances its log start offset within the allowed limit."""
    rep = s.replica(a.tp, a.broker)
    if rep is None:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    if not rep.log.start_offset < a.new_start_offset <= retention_limit(s, rep):
        return Rejected(s, ErrorCode.OFFSET_OUT_OF_RANGE)
    rep = attrs.evolve(
        rep,
        log=rep.log.delete_prefix(a.new_start_offset),
        producers=take_snapshot(rep.producers, rep.log, a.new_start_offset),
    )
    return Ok(s.with_replica(a.tp, a.broker, rep), None)
