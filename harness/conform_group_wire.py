"""The group operations as Kafka requests, and the responses as observations.

Requests are built at the version the connection negotiated (``harness.client``); member
ids are the target's, from the slot's index (``harness.conform_group_ids``), and topics
the example's physical names.  A response becomes the answer the spec speaks about: error
codes, generations, member ids as logical ids, assignments and metadata as bytes; fields
an older version does not carry are left out (None), and an error answer keeps only its
error (Kafka fills the other fields of an error answer as it likes: the member id echoed,
generation -1).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

from kio.static.primitive import i64Timedelta

from harness.client import (
    FIND_COORDINATOR,
    HEARTBEAT,
    JOIN_GROUP,
    LEAVE_GROUP,
    OFFSET_COMMIT,
    OFFSET_FETCH,
    SYNC_GROUP,
    KafkaClient,
    error,
    ms,
)
from harness.conform_group_ids import from_logical, instance_id, member_id_of, to_logical
from harness.conform_group_ops import (
    ADMIN,
    DESCRIBE_GROUPS,
    PROTOCOL_TYPE,
    CommitAnswer,
    CoordinatorAnswer,
    DescribedMember,
    DescribeGroup,
    FindCoordinator,
    GroupAnswer,
    GroupDescription,
    GroupErrorAnswer,
    GroupOperation,
    Heartbeat,
    JoinAnswer,
    JoinGroup,
    LeaveGroup,
    NoResponse,
    OffsetCommit,
    OffsetFetch,
    OffsetsAnswer,
    SyncAnswer,
    SyncGroup,
)
from spec.consumer_protocol import Subscription, encode_subscription
from spec.errors import ErrorCode
from spec.state import TopicPartition


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


class GroupWire:
    """Requests built and answers read for a group executor (which provides the group
    id, the member ids per slot, the coordinator's node id and the topic names)."""

    group_id: str
    ids: dict[int, tuple[str, ...]]
    coordinator: int | None
    _topic: Callable[[str], str]
    _logical: Callable[[str], str]

    def _member(self, slot: int, member: int, static: bool) -> str:
        return member_id_of(self.ids, slot, member, static)

    def _build(self, c: KafkaClient, op: GroupOperation) -> Any:
        gid = self.group_id
        if isinstance(op, JoinGroup):
            return c.build(
                JOIN_GROUP,
                group_id=gid,
                session_timeout=ms(op.session_timeout_ms),
                rebalance_timeout=ms(op.session_timeout_ms),
                member_id=self._member(op.slot, op.member, op.static),
                group_instance_id=instance_id(op.slot) if op.static else None,
                protocol_type=PROTOCOL_TYPE,
                protocols=tuple(
                    c.nested(
                        JOIN_GROUP,
                        "JoinGroupRequestProtocol",
                        name=name,
                        metadata=encode_subscription(Subscription(topics)),
                    )
                    for name, topics in op.protocols
                ),
                reason=None,
            )
        if isinstance(op, SyncGroup):
            return c.build(
                SYNC_GROUP,
                group_id=gid,
                generation_id=op.generation,
                member_id=self._member(op.slot, op.member, op.static),
                group_instance_id=instance_id(op.slot) if op.static else None,
                protocol_type=PROTOCOL_TYPE,
                protocol_name=op.protocol_name,
                assignments=tuple(
                    c.nested(
                        SYNC_GROUP,
                        "SyncGroupRequestAssignment",
                        member_id=from_logical(m, self.ids),
                        assignment=a,
                    )
                    for m, a in op.assignments
                ),
            )
        if isinstance(op, Heartbeat):
            return c.build(
                HEARTBEAT,
                group_id=gid,
                generation_id=op.generation,
                member_id=self._member(op.slot, op.member, op.static),
                group_instance_id=instance_id(op.slot) if op.static else None,
            )
        if isinstance(op, LeaveGroup):
            member = self._member(op.slot, op.member, op.static)
            instance = instance_id(op.slot) if op.static else None
            if c.version(LEAVE_GROUP) < 3:
                return c.build(LEAVE_GROUP, group_id=gid, member_id=member)
            identity = c.nested(
                LEAVE_GROUP,
                "MemberIdentity",
                member_id=member,
                group_instance_id=instance,
                reason=None,
            )
            return c.build(LEAVE_GROUP, group_id=gid, members=(identity,))
        if isinstance(op, OffsetCommit):
            return self._commit(c, op)
        if isinstance(op, OffsetFetch):
            topics = None
            if op.partitions is not None:
                by_topic: dict[str, list[int]] = {}
                for tp in op.partitions:
                    by_topic.setdefault(self._topic(tp.topic), []).append(tp.partition)
                topics = tuple(
                    c.nested(
                        OFFSET_FETCH, "OffsetFetchRequestTopic", name=n, partition_indexes=tuple(ps)
                    )
                    for n, ps in by_topic.items()
                )
            return c.build(OFFSET_FETCH, group_id=gid, topics=topics, require_stable=False)
        if isinstance(op, DescribeGroup):
            return c.build(DESCRIBE_GROUPS, groups=(gid,), include_authorized_operations=False)
        assert isinstance(op, FindCoordinator)
        if c.version(FIND_COORDINATOR) >= 4:
            return c.build(FIND_COORDINATOR, key_type=0, coordinator_keys=(gid,))
        return c.build(FIND_COORDINATOR, key=gid, key_type=0)

    def _commit(self, c: KafkaClient, op: OffsetCommit) -> Any:
        by_topic: dict[str, list[Any]] = {}
        for tp, offset, meta in op.offsets:
            by_topic.setdefault(self._topic(tp.topic), []).append(
                c.nested(
                    OFFSET_COMMIT,
                    "OffsetCommitRequestPartition",
                    partition_index=tp.partition,
                    committed_offset=offset,
                    committed_leader_epoch=-1,
                    committed_metadata=meta,
                )
            )
        static = op.static and op.slot != ADMIN
        return c.build(
            OFFSET_COMMIT,
            group_id=self.group_id,
            generation_id_or_member_epoch=op.generation,
            member_id="" if op.slot == ADMIN else self._member(op.slot, op.member, op.static),
            group_instance_id=instance_id(op.slot) if static else None,
            retention_time=i64Timedelta.parse(datetime.timedelta(milliseconds=-1)),
            topics=tuple(
                c.nested(OFFSET_COMMIT, "OffsetCommitRequestTopic", name=n, partitions=tuple(ps))
                for n, ps in by_topic.items()
            ),
        )

    def _answer(self, r: Any, op: GroupOperation) -> GroupAnswer:
        if isinstance(r, NoResponse):
            return r
        if isinstance(op, JoinGroup):
            return self._join(r)
        if isinstance(op, SyncGroup):
            code = error(r.error_code)
            if code:
                return SyncAnswer(code)
            return SyncAnswer(
                code,
                bytes(r.assignment),
                _text(getattr(r, "protocol_type", None)),
                _text(getattr(r, "protocol_name", None)),
            )
        if isinstance(op, Heartbeat):
            return GroupErrorAnswer("Heartbeat", error(r.error_code))
        if isinstance(op, LeaveGroup):
            code = error(r.error_code)
            members = [error(m.error_code) for m in getattr(r, "members", ())]
            return GroupErrorAnswer("LeaveGroup", code or next((e for e in members if e), code))
        if isinstance(op, OffsetCommit):
            return CommitAnswer(
                tuple(
                    sorted(
                        (
                            TopicPartition(self._logical(str(t.name)), int(p.partition_index)),
                            error(p.error_code),
                        )
                        for t in r.topics
                        for p in t.partitions
                    )
                )
            )
        if isinstance(op, OffsetFetch):
            return self._offsets(r)
        if isinstance(op, DescribeGroup):
            return self._description(r)
        entry = r.coordinators[0] if hasattr(r, "coordinators") else r
        code = error(entry.error_code)
        return CoordinatorAnswer(code, not code and int(entry.node_id) == self.coordinator)

    def _join(self, r: Any) -> JoinAnswer:
        code = error(r.error_code)
        if code == ErrorCode.MEMBER_ID_REQUIRED:
            return JoinAnswer(code, to_logical(str(r.member_id), self.ids))
        if code:
            return JoinAnswer(code)
        protocol_type = getattr(r, "protocol_type", PROTOCOL_TYPE)  # before v7: not sent
        return JoinAnswer(
            code,
            to_logical(str(r.member_id), self.ids),
            int(r.generation_id),
            _text(protocol_type),
            _text(r.protocol_name),
            to_logical(str(r.leader), self.ids),
            bool(getattr(r, "skip_assignment", False)),
            tuple(
                sorted(
                    (
                        to_logical(str(m.member_id), self.ids),
                        _text(getattr(m, "group_instance_id", None)),
                        bytes(m.metadata),
                    )
                    for m in r.members
                )
            ),
        )

    def _offsets(self, r: Any) -> OffsetsAnswer:
        parts = [(t, p) for t in r.topics for p in t.partitions]
        code = error(getattr(r, "error_code", 0)) or next(
            (error(p.error_code) for _, p in parts if p.error_code), ErrorCode.NONE
        )
        if code:
            return OffsetsAnswer(code)
        return OffsetsAnswer(
            code,
            tuple(
                sorted(
                    (
                        TopicPartition(self._logical(str(t.name)), int(p.partition_index)),
                        int(p.committed_offset),
                        str(p.metadata or ""),
                    )
                    for t, p in parts
                )
            ),
        )

    def _description(self, r: Any) -> GroupDescription:
        g = r.groups[0]
        code = error(g.error_code)
        if code:
            return GroupDescription(code)
        members = tuple(
            sorted(
                (
                    DescribedMember(
                        to_logical(str(m.member_id), self.ids),
                        _text(getattr(m, "group_instance_id", None)),
                        str(m.client_id),
                        bytes(m.member_metadata),
                        bytes(m.member_assignment),
                    )
                    for m in g.members
                ),
                key=lambda m: m.member_id,
            )
        )
        return GroupDescription(
            code, str(g.group_state), str(g.protocol_type), str(g.protocol_data), members
        )
