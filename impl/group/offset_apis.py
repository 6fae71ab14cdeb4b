"""FindCoordinator (v0-v5), OffsetCommit (v2-v9) and OffsetFetch (v1-v9), as Kafka's
KafkaApis and group coordinator answer them for classic groups.

FindCoordinator: key type 0 (group) names the leader of the group's partition of
``__consumer_offsets`` (creating the topic on first use: impl.group.internal_topic);
COORDINATOR_NOT_AVAILABLE while that partition has no live leader.  Key type 1
(transaction) is answered TRANSACTIONAL_ID_AUTHORIZATION_FAILED: there is no transaction
coordinator here, and this is the error no client retries (InitProducerId answers a
transactional id the same way); any other key type is INVALID_REQUEST.  v4+ carries a
batch of keys, each answered on its own.  v6 (share groups) is not served.

OffsetCommit: partitions of unknown topics are UNKNOWN_TOPIC_OR_PARTITION; for the rest
the group's coordinator status, then the membership checks (``ctx.groups.
validate_commit``: generation -1 commits from consumers outside group management to an
Empty or unknown group, else member id, generation and group.instance.id fencing) give
one error for all of them; then metadata longer than offset.metadata.max.bytes (Java
string length: UTF-16 code units) is OFFSET_METADATA_TOO_LARGE for its partition, and
the others are written as one batch (impl.group.offsets_log).  v2-v4's retention time,
when not -1, sets the offsets' expire timestamp.  v9 (KIP-848 member epochs) is the same
request for a classic group; v10 (topic ids) is not served.

OffsetFetch: the committed offset, leader epoch and metadata of each partition asked
for, -1 (and empty metadata) for those without one; all committed partitions when the
topics are null (v2+).  A coordinator error is per partition in v1, the top-level error
in v2-v7, each group's error in v8+ (batched groups).  require_stable (v7+) needs
nothing: without transactions no offset is ever pending.  v9's member id and epoch are
for KIP-848 consumer groups; a classic group ignores them, as Kafka's does."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from impl.broker.kio_build import build, nested, response_class
from impl.group.internal_topic import ensure_offsets_topic
from impl.group.offsets_log import GroupLog, now_ms
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from impl.group.records import OffsetRecord
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

GROUP_KEY_TYPE = 0
TRANSACTION_KEY_TYPE = 1
NO_NODE = (-1, "", -1)
DEFAULT_RETENTION_TIME = -1


def _group_log(ctx: BrokerContext) -> GroupLog:
    log = ctx.group_log
    assert log is not None, "the broker context has no group log"
    return log


def java_length(s: str) -> int:
    """Java's ``String.length()``: UTF-16 code units."""
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


# --- FindCoordinator ----------------------------------------------------------------------


async def find_coordinator(
    ctx: BrokerContext, key_type: int, key: str
) -> tuple[ErrorCode, str | None, tuple[int, str, int]]:
    """(error, message, (node id, host, port)) for one coordinator key."""
    if key_type == TRANSACTION_KEY_TYPE:
        code = ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        return code, "This broker has no transaction coordinator.", NO_NODE
    if key_type != GROUP_KEY_TYPE:
        return ErrorCode.INVALID_REQUEST, f"Unknown coordinator type {key_type}", NO_NODE
    code = await ensure_offsets_topic(ctx)
    if code is not ErrorCode.NONE:
        return code, code.name, NO_NODE
    tp = TopicPartition(GROUP_METADATA_TOPIC_NAME, _group_log(ctx).partition_for(key))
    if ctx.zk is None:
        if tp in ctx.partitions:
            host, port = ctx.config.advertised_endpoint
            return ErrorCode.NONE, None, (ctx.broker_id, host, port)
    else:
        broker = ctx.cluster.broker(ctx.cluster.leader(tp))
        if broker is not None:
            return ErrorCode.NONE, None, (broker.broker_id, broker.host, broker.port)
    code = ErrorCode.COORDINATOR_NOT_AVAILABLE
    return code, code.name, NO_NODE


async def handle_find_coordinator(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    req: Any = request
    cls = response_class(request)
    key_type = int(getattr(req, "key_type", GROUP_KEY_TYPE))
    if header.api_version >= 4:
        coordinator_cls = nested(cls, "Coordinator")
        entries = []
        for key in req.coordinator_keys:
            code, message, (node, host, port) = await find_coordinator(ctx, key_type, key)
            entries.append(
                build(
                    coordinator_cls,
                    key=key,
                    node_id=node,
                    host=host,
                    port=port,
                    error_code=code,
                    error_message=message,
                )
            )
        response: Entity = build(cls, coordinators=tuple(entries))
        return response
    code, message, (node, host, port) = await find_coordinator(ctx, key_type, req.key)
    response = build(
        cls, error_code=code, error_message=message, node_id=node, host=host, port=port
    )
    return response


# --- OffsetCommit -------------------------------------------------------------------------


def validate_commit(
    ctx: BrokerContext,
    group_id: str,
    member_id: str,
    generation_id: int,
    group_instance_id: str | None,
) -> ErrorCode:
    """The coordinator's checks of a commit (status, then membership)."""
    code = _group_log(ctx).status(group_id)
    if code is not ErrorCode.NONE:
        return code
    return ctx.groups.validate_commit(group_id, member_id, generation_id, group_instance_id)


async def handle_offset_commit(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    req: Any = request
    cls = response_class(request)
    topic_cls = nested(cls, "OffsetCommitResponseTopic")
    partition_cls = nested(cls, "OffsetCommitResponsePartition")
    group_id: str = req.group_id
    now = now_ms()
    expire = -1
    retention = getattr(req, "retention_time", None)
    if retention is not None:
        retention_ms = int(retention.total_seconds() * 1000)
        if retention_ms != DEFAULT_RETENTION_TIME:
            expire = now + retention_ms
    max_metadata = ctx.config.get_int("offset.metadata.max.bytes")
    errors: dict[TopicPartition, ErrorCode] = {}
    offsets: dict[TopicPartition, OffsetRecord] = {}
    for topic in req.topics:
        for part in topic.partitions:
            tp = TopicPartition(str(topic.name), int(part.partition_index))
            if ctx.cluster.assignment(tp) is None:
                errors[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                continue
            offsets[tp] = OffsetRecord(
                offset=int(part.committed_offset),
                leader_epoch=int(getattr(part, "committed_leader_epoch", -1)),
                metadata=part.committed_metadata or "",
                commit_timestamp_ms=now,
                expire_timestamp_ms=expire,
            )
    if offsets:
        code = validate_commit(
            ctx,
            group_id,
            str(req.member_id),
            int(req.generation_id_or_member_epoch),
            getattr(req, "group_instance_id", None),
        )
        if code is ErrorCode.NONE:
            store = {}
            for tp, o in offsets.items():
                if java_length(o.metadata) > max_metadata:
                    errors[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
                else:
                    store[tp] = o
            if store:
                code = await _group_log(ctx).commit_offsets(group_id, store)
            offsets = store
        errors.update(dict.fromkeys(offsets, code))
    topics = []
    for topic in req.topics:
        name = str(topic.name)
        partitions = tuple(
            build(
                partition_cls,
                partition_index=part.partition_index,
                error_code=errors[TopicPartition(name, int(part.partition_index))],
            )
            for part in topic.partitions
        )
        topics.append(build(topic_cls, name=name, partitions=partitions))
    response: Entity = build(cls, topics=tuple(topics))
    return response


# --- OffsetFetch --------------------------------------------------------------------------


def fetch_offsets(
    ctx: BrokerContext, group_id: str, wanted: Iterable[TopicPartition] | None
) -> tuple[ErrorCode, dict[str, list[tuple[int, OffsetRecord | None]]]]:
    """The coordinator status and, per topic, (partition, committed offset or None)."""
    group_log = _group_log(ctx)
    code = group_log.status(group_id)
    out: dict[str, list[tuple[int, OffsetRecord | None]]] = {}
    if code is not ErrorCode.NONE:
        return code, out
    if wanted is None:
        for tp, record in sorted(group_log.committed(group_id).items()):
            out.setdefault(tp.topic, []).append((tp.partition, record))
        return code, out
    wanted = list(wanted)
    committed = group_log.committed(group_id, wanted)
    for tp in wanted:
        out.setdefault(tp.topic, []).append((tp.partition, committed.get(tp)))
    return code, out


def _wanted(topics: Any) -> list[TopicPartition] | None:
    if topics is None:
        return None
    return [TopicPartition(str(t.name), int(p)) for t in topics for p in t.partition_indexes]


def _topic_entries(
    topic_cls: type[Any],
    partition_cls: type[Any],
    found: dict[str, list[tuple[int, OffsetRecord | None]]],
    error: ErrorCode = ErrorCode.NONE,
) -> tuple[Any, ...]:
    entries = []
    for name, partitions in found.items():
        parts = tuple(
            build(
                partition_cls,
                partition_index=index,
                committed_offset=-1 if record is None else record.offset,
                committed_leader_epoch=-1 if record is None else record.leader_epoch,
                metadata="" if record is None else record.metadata,
                error_code=error,
            )
            for index, record in partitions
        )
        entries.append(build(topic_cls, name=name, partitions=parts))
    return tuple(entries)


async def handle_offset_fetch(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    req: Any = request
    cls = response_class(request)
    version = header.api_version
    if version >= 8:
        group_cls = nested(cls, "OffsetFetchResponseGroup")
        topic_cls = nested(cls, "OffsetFetchResponseTopics")
        partition_cls = nested(cls, "OffsetFetchResponsePartitions")
        groups = []
        for group in req.groups:
            code, found = fetch_offsets(ctx, group.group_id, _wanted(group.topics))
            topics = _topic_entries(topic_cls, partition_cls, found)
            groups.append(build(group_cls, group_id=group.group_id, topics=topics, error_code=code))
        response: Entity = build(cls, groups=tuple(groups))
        return response
    topic_cls = nested(cls, "OffsetFetchResponseTopic")
    partition_cls = nested(cls, "OffsetFetchResponsePartition")
    wanted = _wanted(req.topics)
    code, found = fetch_offsets(ctx, req.group_id, wanted)
    if code is not ErrorCode.NONE and version < 2:
        # v1 has no top-level error: every partition asked for carries it.
        for tp in wanted or ():
            found.setdefault(tp.topic, []).append((tp.partition, None))
        topics = _topic_entries(topic_cls, partition_cls, found, code)
        response = build(cls, topics=topics)
        return response
    response = build(cls, topics=_topic_entries(topic_cls, partition_cls, found), error_code=code)
    return response
