"""Metadata: the brokers, the controller, the cluster id and, for the topics asked about
(or all topics), each partition's leader, leader epoch, replicas, ISR and offline replicas.

Request semantics by version, as Kafka: v0 an empty list means all topics; v1+ null means
all topics and an empty list none.  Topics named but unknown are created when
auto.create.topics.enable is set and the request allows it (v4+; always allowed before),
with num.partitions and default.replication.factor; the answer for a topic just created
is LEADER_NOT_AVAILABLE, as Kafka's, and clients ask again; ``__consumer_offsets`` is
made with its own settings (impl.group.internal_topic).  Internal topics are reported
with is_internal.  v10+ carries topic ids; v12 clients may name a topic by id alone
(unknown ids: UNKNOWN_TOPIC_ID).

In cluster mode the answer comes from the metadata cache (ctx.cluster): every live
broker, the controller from /controller, and each partition's leader, leader epoch and ISR
from its state znode; a partition without a live leader is LEADER_NOT_AVAILABLE with
leader -1, and replicas on unregistered brokers are listed as offline (v0, as Kafka:
REPLICA_NOT_AVAILABLE with only the available replicas listed).
"""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from impl.broker import admin
from impl.broker.kio_build import build, nested, response_class
from impl.group.internal_topic import ensure_offsets_topic, is_internal
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from spec.admin import valid_topic_name
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.broker.topics import TopicInfo
    from impl.wire.framing import RequestHeader

_log = logging.getLogger(__name__)
ZERO_UUID = uuid.UUID(int=0)


def broker_entries(ctx: BrokerContext, cls: type[Any]) -> tuple[Any, ...]:
    """The live brokers as the ``brokers`` list of a response (single-broker mode: this
    broker)."""
    if ctx.zk is None:
        host, port = ctx.config.advertised_endpoint
        return (build(cls, node_id=ctx.broker_id, broker_id=ctx.broker_id, host=host, port=port),)
    return tuple(
        build(
            cls, node_id=b.broker_id, broker_id=b.broker_id, host=b.host, port=b.port, rack=b.rack
        )
        for b in sorted(ctx.cluster.brokers.values(), key=lambda b: b.broker_id)
    )


def controller_id(ctx: BrokerContext) -> int:
    """The controller's broker id (-1 while there is none); this broker when alone."""
    return ctx.broker_id if ctx.zk is None else ctx.cluster.controller_id


def _cluster_partition_entries(
    ctx: BrokerContext, info: TopicInfo, cls: type[Any], version: int
) -> tuple[Any, ...]:
    live = ctx.cluster.brokers
    entries = []
    for index, assigned in enumerate(info.replicas):
        replicas = assigned
        isr: tuple[int, ...]
        state = ctx.cluster.state(TopicPartition(info.name, index))
        offline = tuple(r for r in replicas if r not in live)
        code = ErrorCode.NONE
        if state is None:
            leader, epoch, isr = -1, -1, ()
        else:
            leader, epoch, isr = state.leader, state.leader_epoch, state.isr
        if leader not in live:
            code, leader = ErrorCode.LEADER_NOT_AVAILABLE, -1
        if version == 0 and offline:
            replicas = tuple(r for r in replicas if r in live)
            isr = tuple(r for r in isr if r in live)
            if code is ErrorCode.NONE:
                code = ErrorCode.REPLICA_NOT_AVAILABLE
        entries.append(
            build(
                cls,
                error_code=code,
                partition_index=index,
                leader_id=leader,
                leader_epoch=epoch,
                replica_nodes=replicas,
                isr_nodes=isr,
                offline_replicas=offline,
            )
        )
    return tuple(entries)


def _partition_entries(
    ctx: BrokerContext, info: TopicInfo, cls: type[Any], version: int
) -> tuple[Any, ...]:
    if ctx.zk is not None:
        return _cluster_partition_entries(ctx, info, cls, version)
    entries = []
    for index, replicas in enumerate(info.replicas):
        state = ctx.partitions.get(TopicPartition(info.name, index))
        isr: tuple[int, ...]
        if state is None:
            # Not led here (it cannot happen in single-broker mode once the topic exists).
            code, leader, epoch, isr = ErrorCode.LEADER_NOT_AVAILABLE, -1, -1, ()
        else:
            code, leader, epoch = ErrorCode.NONE, state.leader_id, state.leader_epoch
            isr = tuple(sorted(state.isr))
        entries.append(
            build(
                cls,
                error_code=code,
                partition_index=index,
                leader_id=leader,
                leader_epoch=epoch,
                replica_nodes=replicas,
                isr_nodes=isr,
                offline_replicas=(),
            )
        )
    return tuple(entries)


async def handle_metadata(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    version = header.api_version
    cls = response_class(request)
    topic_cls = nested(cls, "MetadataResponseTopic")
    partition_cls = nested(cls, "MetadataResponsePartition")
    broker_cls = nested(cls, "MetadataResponseBroker")
    requested: tuple[Any, ...] | None = request.topics  # type: ignore[attr-defined]
    allow_auto = version < 4 or bool(getattr(request, "allow_auto_topic_creation", True))

    def topic_entry(
        code: ErrorCode, name: str | None, topic_id: uuid.UUID, info: TopicInfo | None
    ) -> Any:
        partitions = () if info is None else _partition_entries(ctx, info, partition_cls, version)
        return build(
            topic_cls,
            error_code=code,
            name=name,
            topic_id=topic_id,
            is_internal=name is not None and is_internal(name),
            partitions=partitions,
        )

    entries = []
    if requested is None or (version == 0 and not requested):
        for info in sorted(ctx.topics, key=lambda i: i.name):
            entries.append(topic_entry(ErrorCode.NONE, info.name, info.topic_id, info))
    else:
        seen: set[object] = set()
        for wanted in requested:
            name: str | None = wanted.name
            topic_id = getattr(wanted, "topic_id", None)
            if name is None:
                key: object = topic_id
                if key in seen:
                    continue
                seen.add(key)
                found: TopicInfo | None = None
                if topic_id is not None:
                    found = ctx.topics.by_id(topic_id)
                if found is None:
                    entries.append(
                        topic_entry(ErrorCode.UNKNOWN_TOPIC_ID, None, topic_id or ZERO_UUID, None)
                    )
                else:
                    entries.append(topic_entry(ErrorCode.NONE, found.name, found.topic_id, found))
                continue
            if name in seen:
                continue
            seen.add(name)
            named = ctx.topics.get(name)
            if named is not None:
                entries.append(topic_entry(ErrorCode.NONE, name, named.topic_id, named))
            elif not valid_topic_name(name):
                code = ErrorCode.INVALID_TOPIC_EXCEPTION
                entries.append(topic_entry(code, name, ZERO_UUID, None))
            elif allow_auto and ctx.config.auto_create_topics_enable:
                if name == GROUP_METADATA_TOPIC_NAME:  # made as FindCoordinator makes it
                    await ensure_offsets_topic(ctx)
                    code = ErrorCode.LEADER_NOT_AVAILABLE
                elif is_internal(name):  # no transactions here: never made
                    code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                else:
                    code = (
                        _auto_create(ctx, name)
                        if ctx.zk is None
                        else await _auto_create_zk(ctx, name)
                    )
                entries.append(topic_entry(code, name, ZERO_UUID, None))
            else:
                entries.append(
                    topic_entry(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name, ZERO_UUID, None)
                )
    response: Entity = build(
        cls,
        brokers=broker_entries(ctx, broker_cls),
        cluster_id=ctx.topics.cluster_id,
        controller_id=controller_id(ctx),
        topics=tuple(entries),
    )
    return response


def _auto_create(ctx: BrokerContext, name: str) -> ErrorCode:
    """Create ``name`` with the broker defaults; the code the Metadata answer carries."""
    error = admin.create_topic(
        ctx,
        name,
        ctx.config.num_partitions,
        ctx.config.default_replication_factor,
        {},
        validate_only=False,
    )
    if error.code is not ErrorCode.NONE:
        _log.info("auto-creating topic %s failed: %s", name, error.message)
        return error.code
    _log.info("auto-created topic %s", name)
    return ErrorCode.LEADER_NOT_AVAILABLE


async def _auto_create_zk(ctx: BrokerContext, name: str) -> ErrorCode:
    """Cluster mode: write the topic to ZooKeeper without waiting for its leaders."""
    error = await admin.create_topic_in_zookeeper(
        ctx,
        name,
        ctx.config.num_partitions,
        ctx.config.default_replication_factor,
        {},
        validate_only=False,
    )
    if error.code is not ErrorCode.NONE and error.code is not ErrorCode.TOPIC_ALREADY_EXISTS:
        _log.info("auto-creating topic %s failed: %s", name, error.message)
        return error.code
    return ErrorCode.LEADER_NOT_AVAILABLE
