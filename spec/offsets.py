"""Committed offsets: OffsetCommit with generation fencing, OffsetFetch, expiry, topic deletion.

Owns what Kafka's ``GroupCoordinator.handleCommitOffsets``/``handleFetchOffsets`` and
``GroupMetadataManager`` (storeOffsets, getOffsets, the offsets cleanup) do with a group's
committed offsets (Kafka 3.x, classic groups).  The offsets live in the group's state
(``Group.offsets``); the handlers here share the coordinator state with ``spec.group``.

Fencing (``validateOffsetCommit``): a commit with generation -1 (and, as clients send it,
an empty member id) to an Empty or unknown group is a *simple* commit from a consumer
that does not use group management: accepted, creating the group if needed.  A commit
with a generation >= 0 to an unknown group is ILLEGAL_GENERATION.  Otherwise the member
must be current (UNKNOWN_MEMBER_ID, or FENCED_INSTANCE_ID for a static member's stale id)
and the generation must be the group's (ILLEGAL_GENERATION).  A valid commit is
accepted in Stable and in PreparingRebalance (the member learns of the rebalance from its
next heartbeat, and its commit restarts its session timer); in CompletingRebalance it is
REBALANCE_IN_PROGRESS.  Writes to ``__consumer_offsets`` are atomic and always succeed
in the spec.  Topic existence and authorization (checked by KafkaApis before the
coordinator) are outside this model.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from spec.consumer_protocol import PROTOCOL_TYPE
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_rebalance import put, status_error, touch, validate_current_member
from spec.group_state import (
    NO_GENERATION,
    UNKNOWN_MEMBER_ID,
    CommittedOffset,
    Coordinator,
    CoordinatorStatus,
    Group,
    GroupPhase,
)
from spec.outcome import Ok, Outcome, Rejected
from spec.state import TopicPartition

OFFSET_METADATA_MAX_BYTES = 4096
"""``offset.metadata.max.bytes`` default: longer commit metadata is OFFSET_METADATA_TOO_LARGE."""
INVALID_OFFSET = -1
"""What OffsetFetch returns for a partition without a committed offset."""


@attrs.frozen(slots=True)
class CommitOffset:
    """One partition of an OffsetCommit request."""

    topic_partition: TopicPartition
    offset: int
    metadata: str = ""
    leader_epoch: int | None = None


@attrs.frozen(slots=True)
class OffsetCommit:
    """An OffsetCommit request.  Generation -1 with an empty member id is a simple commit."""

    group_id: str
    offsets: tuple[CommitOffset, ...]
    generation_id: int = NO_GENERATION
    member_id: str = UNKNOWN_MEMBER_ID
    group_instance_id: str | None = None

    def describe(self) -> str:
        who = self.member_id or "a simple consumer"
        return f"{who} commits {len(self.offsets)} offsets (generation {self.generation_id})"


@attrs.frozen(slots=True)
class OffsetCommitResponse:
    """Per-partition errors of an OffsetCommit that passed the group checks."""

    errors: FrozenMap[TopicPartition, ErrorCode]


@attrs.frozen(slots=True)
class OffsetFetch:
    """An OffsetFetch request; ``partitions=None`` asks for every committed partition."""

    group_id: str
    partitions: tuple[TopicPartition, ...] | None = None

    def describe(self) -> str:
        return f"OffsetFetch for group {self.group_id!r}"


@attrs.frozen(slots=True)
class FetchedOffset:
    """One partition of an OffsetFetch response: offset -1 when nothing is committed."""

    offset: int = INVALID_OFFSET
    metadata: str = ""
    leader_epoch: int | None = None
    error: ErrorCode = ErrorCode.NONE


@attrs.frozen(slots=True)
class OffsetFetchResponse:
    """An OffsetFetch response with no group-level error."""

    partitions: FrozenMap[TopicPartition, FetchedOffset]


@attrs.frozen(slots=True)
class ExpireOffsets:
    """The coordinator's periodic offsets cleanup (every ``offsets.retention.check.interval.ms``,
    10 minutes by default) runs now.  The spec never runs it on its own: when it runs is
    the broker's choice, so a harness treats it as an environment step."""

    def describe(self) -> str:
        return "the offsets cleanup runs"


@attrs.frozen(slots=True)
class DeleteTopicOffsets:
    """Topics were deleted: their committed offsets go (``handleDeletedPartitions``)."""

    topics: frozenset[str]

    def describe(self) -> str:
        return f"offsets of deleted topics {sorted(self.topics)} are removed"


def _validate(g: Group, a: OffsetCommit) -> ErrorCode:
    """``validateOffsetCommit`` for a non-transactional commit."""
    if a.generation_id < 0 and g.phase is GroupPhase.EMPTY:
        return ErrorCode.NONE
    if a.generation_id >= 0 or a.member_id != UNKNOWN_MEMBER_ID or a.group_instance_id is not None:
        err = validate_current_member(g, a.member_id, a.group_instance_id)
        if err is ErrorCode.NONE and a.generation_id != g.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        return err
    if g.phase is not GroupPhase.EMPTY:
        return ErrorCode.UNKNOWN_MEMBER_ID  # only members may commit to a non-empty group
    return ErrorCode.NONE


def _store(c: Coordinator, gid: str, a: OffsetCommit) -> Ok[Coordinator, OffsetCommitResponse]:
    """``storeOffsets``: partitions whose metadata is too long are refused one by one."""
    g = c.groups[gid]
    offsets = g.offsets
    errors: dict[TopicPartition, ErrorCode] = {}
    for p in a.offsets:
        if len(p.metadata) > OFFSET_METADATA_MAX_BYTES:
            errors[p.topic_partition] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            continue
        committed = CommittedOffset(p.offset, p.metadata, p.leader_epoch, c.now_ms)
        offsets = offsets.set(p.topic_partition, committed)
        errors[p.topic_partition] = ErrorCode.NONE
    c = put(c, attrs.evolve(g, offsets=offsets))
    return Ok(c, OffsetCommitResponse(FrozenMap(errors)))


def offset_commit(c: Coordinator, a: OffsetCommit) -> Outcome[Coordinator, OffsetCommitResponse]:
    """``handleCommitOffsets``: a refusal applies to every partition, so it is ``Rejected``."""
    err = status_error(c, a.group_id, empty_id_ok=True)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    gid = a.group_id
    if gid not in c.groups:
        if a.generation_id >= 0:
            return Rejected(c, ErrorCode.ILLEGAL_GENERATION)  # maybe from an older generation
        c = put(c, Group(gid, state_timestamp_ms=c.now_ms))
    g = c.groups[gid]
    err = _validate(g, a)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    if g.phase is GroupPhase.COMPLETING_REBALANCE:
        return Rejected(c, ErrorCode.REBALANCE_IN_PROGRESS)
    if g.phase in (GroupPhase.STABLE, GroupPhase.PREPARING_REBALANCE):
        c = touch(c, gid, a.member_id)
    return _store(c, gid, a)


def offset_fetch(c: Coordinator, a: OffsetFetch) -> Outcome[Coordinator, OffsetFetchResponse]:
    """``handleFetchOffsets``: committed offsets whatever the group's state; -1 for a
    partition without one (and for every partition of an unknown group)."""
    err = status_error(c, a.group_id, empty_id_ok=True)
    if err is not ErrorCode.NONE:
        return Rejected(c, err)
    g = c.groups.get(a.group_id)
    offsets: FrozenMap[TopicPartition, CommittedOffset] = FrozenMap() if g is None else g.offsets
    wanted = sorted(offsets) if a.partitions is None else a.partitions
    out = {}
    for tp in wanted:
        o = offsets.get(tp)
        out[tp] = (
            FetchedOffset() if o is None else FetchedOffset(o.offset, o.metadata, o.leader_epoch)
        )
    return Ok(c, OffsetFetchResponse(FrozenMap(out)))


def committed(c: Coordinator, group_id: str, tp: TopicPartition) -> CommittedOffset | None:
    """The offset ``group_id`` has committed for ``tp``, if any."""
    g = c.groups.get(group_id)
    return None if g is None else g.offsets.get(tp)


def _expired(g: Group, now_ms: int, retention_ms: int) -> set[TopicPartition]:
    """``removeExpiredOffsets`` (KIP-211, KIP-496)."""
    if g.protocol_type is not None and g.phase is GroupPhase.EMPTY:
        # no members: everything expires once the group has been Empty for the retention
        base = g.state_timestamp_ms
        return set(g.offsets) if now_ms - base >= retention_ms else set()
    if (
        g.protocol_type == PROTOCOL_TYPE
        and g.subscribed_topics is not None
        and g.phase is GroupPhase.STABLE
    ):
        # a stable consumer group: offsets of topics it no longer subscribes to
        subscribed = g.subscribed_topics
        return {
            tp
            for tp, o in g.offsets.items()
            if tp.topic not in subscribed and now_ms - o.commit_timestamp_ms >= retention_ms
        }
    if g.protocol_type is None:
        # a simple (manual-assignment) group: each offset a retention after its commit
        return {tp for tp, o in g.offsets.items() if now_ms - o.commit_timestamp_ms >= retention_ms}
    return set()


def _cleanup(c: Coordinator, drop: dict[str, set[TopicPartition]]) -> Coordinator:
    """``cleanupGroupMetadata``: remove offsets; an Empty group left without offsets dies."""
    groups = c.groups
    for gid, tps in drop.items():
        g = groups[gid]
        offsets = FrozenMap((tp, o) for tp, o in g.offsets.items() if tp not in tps)
        if g.phase is GroupPhase.EMPTY and not offsets:
            groups = groups.delete(gid)
        else:
            groups = groups.set(gid, attrs.evolve(g, offsets=offsets))
    return attrs.evolve(c, groups=groups)


def expire_offsets(c: Coordinator) -> Coordinator:
    """Run the offsets cleanup at ``now``: expired offsets go, and Empty groups left
    without offsets become Dead and are removed.  Offsets of an Empty group expire
    ``offsets.retention.minutes`` after the group became Empty."""
    if c.status is not CoordinatorStatus.ACTIVE:
        return c
    retention = c.config.offsets_retention_minutes * 60_000
    return _cleanup(c, {gid: _expired(g, c.now_ms, retention) for gid, g in c.groups.items()})


def delete_topic_offsets(c: Coordinator, topics: Iterable[str]) -> Coordinator:
    """Remove every group's offsets for partitions of ``topics``; Empty groups left
    without offsets are removed."""
    gone = frozenset(topics)
    drop = {gid: {tp for tp in g.offsets if tp.topic in gone} for gid, g in c.groups.items()}
    return _cleanup(c, drop)
