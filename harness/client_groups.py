"""The group APIs of the harness's client: FindCoordinator, JoinGroup, SyncGroup,
Heartbeat, LeaveGroup, OffsetCommit and OffsetFetch (Kafka's classic group protocol).

Functions on a :class:`harness.client.KafkaClient`, with the same rules: the version is
explicit (negotiated or pinned), one request at a time, nothing retried, every error code
returned.  The conformance harness's group rules call these.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from kio.static.primitive import i64Timedelta

from harness.client import (
    FIND_COORDINATOR,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    SYNC_GROUP,
    Error,
    KafkaClient,
    error,
    ms,
)
from spec.state import TopicPartition

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
NO_GENERATION = -1


@attrs.frozen(slots=True)
class CoordinatorResult:
    error: Error
    node_id: int
    host: str
    port: int


@attrs.frozen(slots=True)
class JoinGroupResult:
    error: Error
    generation_id: int
    protocol_name: str | None
    leader: str
    member_id: str
    members: tuple[tuple[str, bytes], ...]
    """(member id, protocol metadata) of every member: filled for the leader only."""


@attrs.frozen(slots=True)
class SyncGroupResult:
    error: Error
    assignment: bytes


@attrs.frozen(slots=True)
class CommittedOffset:
    error: Error
    offset: int
    leader_epoch: int
    metadata: str | None


def find_coordinator(
    client: KafkaClient, key: str, *, key_type: int = GROUP_KEY_TYPE
) -> CoordinatorResult:
    """FindCoordinator of a group (key type 0) or a transactional id (1)."""
    c: Any
    if client.version(FIND_COORDINATOR) >= 4:
        response = client.request(
            client.build(FIND_COORDINATOR, key_type=key_type, coordinator_keys=(key,))
        )
        c = response.coordinators[0]
    else:
        c = client.request(client.build(FIND_COORDINATOR, key=key, key_type=key_type))
    return CoordinatorResult(error(c.error_code), int(c.node_id), str(c.host), int(c.port))


def join_group(
    client: KafkaClient,
    group_id: str,
    member_id: str,
    protocols: Sequence[tuple[str, bytes]],
    *,
    protocol_type: str = "consumer",
    session_timeout_ms: int = 10_000,
    rebalance_timeout_ms: int = 30_000,
    group_instance_id: str | None = None,
) -> JoinGroupResult:
    """JoinGroup with ``protocols`` as (name, metadata); member id "" for a new member."""
    response = client.request(
        client.build(
            JOIN_GROUP,
            group_id=group_id,
            session_timeout=ms(session_timeout_ms),
            rebalance_timeout=ms(rebalance_timeout_ms),
            member_id=member_id,
            group_instance_id=group_instance_id,
            protocol_type=protocol_type,
            protocols=tuple(
                client.nested(JOIN_GROUP, "JoinGroupRequestProtocol", name=n, metadata=m)
                for n, m in protocols
            ),
            reason=None,
        )
    )
    return JoinGroupResult(
        error(response.error_code),
        int(response.generation_id),
        response.protocol_name,
        str(response.leader),
        str(response.member_id),
        tuple((str(m.member_id), bytes(m.metadata)) for m in response.members),
    )


def sync_group(
    client: KafkaClient,
    group_id: str,
    generation_id: int,
    member_id: str,
    assignments: Mapping[str, bytes],
    *,
    protocol_type: str | None = "consumer",
    protocol_name: str | None = None,
    group_instance_id: str | None = None,
) -> SyncGroupResult:
    """SyncGroup; the leader sends every member's assignment, the others none."""
    response = client.request(
        client.build(
            SYNC_GROUP,
            group_id=group_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            protocol_type=protocol_type,
            protocol_name=protocol_name,
            assignments=tuple(
                client.nested(SYNC_GROUP, "SyncGroupRequestAssignment", member_id=m, assignment=a)
                for m, a in assignments.items()
            ),
        )
    )
    return SyncGroupResult(error(response.error_code), bytes(response.assignment))


def heartbeat(
    client: KafkaClient,
    group_id: str,
    generation_id: int,
    member_id: str,
    *,
    group_instance_id: str | None = None,
) -> Error:
    """Heartbeat; its error code (REBALANCE_IN_PROGRESS tells the member to rejoin)."""
    response = client.request(
        client.build(
            HEARTBEAT,
            group_id=group_id,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
        )
    )
    return error(response.error_code)


def leave_group(
    client: KafkaClient, group_id: str, member_id: str, *, group_instance_id: str | None = None
) -> tuple[Error, tuple[Error, ...]]:
    """LeaveGroup of one member: the request's error and, from v3, the member's."""
    if client.version(LEAVE_GROUP) >= 3:
        member = client.nested(
            LEAVE_GROUP,
            "MemberIdentity",
            member_id=member_id,
            group_instance_id=group_instance_id,
            reason=None,
        )
        response = client.request(client.build(LEAVE_GROUP, group_id=group_id, members=(member,)))
        return error(response.error_code), tuple(error(m.error_code) for m in response.members)
    response = client.request(client.build(LEAVE_GROUP, group_id=group_id, member_id=member_id))
    return error(response.error_code), ()


def offset_commit(
    client: KafkaClient,
    group_id: str,
    offsets: Mapping[TopicPartition, tuple[int, str | None]],
    *,
    generation_id: int = NO_GENERATION,
    member_id: str = "",
    group_instance_id: str | None = None,
) -> dict[TopicPartition, Error]:
    """OffsetCommit of {partition: (offset, metadata)}; each partition's error.  The
    defaults (generation -1, no member id) are a simple consumer's commit."""
    by_topic: dict[str, list[Any]] = {}
    for tp, (offset, meta) in offsets.items():
        by_topic.setdefault(tp.topic, []).append(
            client.nested(
                OFFSET_COMMIT,
                "OffsetCommitRequestPartition",
                partition_index=tp.partition,
                committed_offset=offset,
                committed_leader_epoch=-1,
                committed_metadata=meta,
            )
        )
    topics = tuple(
        client.nested(OFFSET_COMMIT, "OffsetCommitRequestTopic", name=name, partitions=tuple(ps))
        for name, ps in by_topic.items()
    )
    response = client.request(
        client.build(
            OFFSET_COMMIT,
            group_id=group_id,
            generation_id_or_member_epoch=generation_id,
            member_id=member_id,
            group_instance_id=group_instance_id,
            retention_time=i64Timedelta.parse(datetime.timedelta(milliseconds=-1)),
            topics=topics,
        )
    )
    return {
        TopicPartition(str(t.name), int(p.partition_index)): error(p.error_code)
        for t in response.topics
        for p in t.partitions
    }


def offset_fetch(
    client: KafkaClient, group_id: str, partitions: Sequence[TopicPartition] | None
) -> tuple[Error, dict[TopicPartition, CommittedOffset]]:
    """OffsetFetch of ``partitions`` (None: all the group has): the request's error (v2+)
    and each partition's committed offset (-1 when none)."""
    topics = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        topics = tuple(
            client.nested(
                OFFSET_FETCH, "OffsetFetchRequestTopic", name=name, partition_indexes=tuple(ps)
            )
            for name, ps in by_topic.items()
        )
    response = client.request(
        client.build(OFFSET_FETCH, group_id=group_id, topics=topics, require_stable=False)
    )
    return error(getattr(response, "error_code", 0)), {
        TopicPartition(str(t.name), int(p.partition_index)): CommittedOffset(
            error(p.error_code),
            int(p.committed_offset),
            int(getattr(p, "committed_leader_epoch", -1)),
            p.metadata,
        )
        for t in response.topics
        for p in t.partitions
    }
