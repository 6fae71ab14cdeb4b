"""CreateTopics and DeleteTopics, and the topic creation and deletion they share with
Metadata's auto-creation: validation as Kafka does it (names, partitions, replication
factor against the live brokers, replica assignments, configs), then the registry entry,
the partition logs and this broker's leadership of every partition (single-broker mode:
this broker is the controller and every partition's leader, leader epoch 0).

In cluster mode the receiving broker assigns replicas over the live brokers (Kafka's
algorithm, spec.admin.assign_replicas, random start), writes /config/topics/<t> and
/brokers/topics/<t>, and waits (up to the request's timeout) until the controller has
made every partition's state; DeleteTopics writes /admin/delete_topics/<t> and waits
until the topic is gone."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from impl.broker.config import ConfigError, validate_topic_configs
from impl.broker.kio_build import build, nested, response_class
from impl.broker.partition import PartitionState
from impl.zk import layout
from spec.admin import assign_replicas, valid_topic_name
from spec.errors import ErrorCode
from spec.state import TopicPartition

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.broker.topics import TopicInfo
    from impl.wire.framing import RequestHeader

_log = logging.getLogger(__name__)

# Not a Kafka limit: a guard so one request cannot make this broker create millions of
# partition directories.  Larger requests get INVALID_PARTITIONS.
MAX_PARTITIONS_PER_TOPIC = 10_000
TOPIC_CONFIG_SOURCE = 1  # DescribeConfigsResponse.ConfigSource.TOPIC_CONFIG
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5


@attrs.frozen(slots=True)
class TopicError:
    """The outcome of one topic operation: an error code and message (NONE on success)."""

    code: ErrorCode
    message: str | None = None


OK = TopicError(ErrorCode.NONE)


def live_brokers(ctx: BrokerContext) -> tuple[int, ...]:
    """The registered brokers (single-broker mode: this one)."""
    if ctx.zk is None:
        return (ctx.broker_id,)
    return ctx.cluster.live_broker_ids()


def _collides(ctx: BrokerContext, name: str) -> str | None:
    """An existing topic whose name differs from ``name`` only in '.' versus '_' (Kafka
    forbids these: their metric names would collide)."""
    if "." not in name and "_" not in name:
        return None
    key = name.replace(".", "_")
    for info in ctx.topics:
        if info.name != name and info.name.replace(".", "_") == key:
            return info.name
    return None


def validate_new_topic(
    ctx: BrokerContext,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str | None],
    *,
    assignment: tuple[tuple[int, ...], ...] | None = None,
) -> tuple[TopicError, tuple[tuple[int, ...], ...]]:
    """Kafka's checks on a new topic, and the replica assignment it would get."""
    if not valid_topic_name(name):
        return TopicError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic name {name!r} is illegal"), ()
    if name in ctx.topics:
        return TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists."), ()
    other = _collides(ctx, name)
    if other is not None:
        return TopicError(
            ErrorCode.INVALID_TOPIC_EXCEPTION,
            f"Topic '{name}' collides with existing topic: {other}",
        ), ()
    brokers = live_brokers(ctx)
    if assignment is None:
        if partitions <= 0 or partitions > MAX_PARTITIONS_PER_TOPIC:
            return TopicError(
                ErrorCode.INVALID_PARTITIONS,
                f"Number of partitions was set to an invalid non-positive value: {partitions}"
                if partitions <= 0
                else f"Number of partitions {partitions} exceeds {MAX_PARTITIONS_PER_TOPIC}",
            ), ()
        if replication_factor <= 0:
            return TopicError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0, or -1 to use the default value.",
            ), ()
        if replication_factor > len(brokers):
            return TopicError(
                ErrorCode.INVALID_REPLICATION_FACTOR,
                f"Unable to replicate the partition {replication_factor} time(s): The target "
                f"replication factor of {replication_factor} cannot be reached because only "
                f"{len(brokers)} broker(s) are registered.",
            ), ()
        if ctx.zk is None:
            assignment = tuple(tuple(brokers[:replication_factor]) for _ in range(partitions))
        else:  # Kafka: a random start index and a random first shift
            start, shift = random.randrange(len(brokers)), random.randrange(len(brokers))
            assignment = assign_replicas(brokers, partitions, replication_factor, start, shift)
    else:
        if not assignment or len(assignment) > MAX_PARTITIONS_PER_TOPIC:
            return TopicError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "bad assignment size"), ()
        sizes = {len(replicas) for replicas in assignment}
        for replicas in assignment:
            if not replicas or len(set(replicas)) != len(replicas) or len(sizes) != 1:
                return TopicError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Invalid replica assignment {list(replicas)}",
                ), ()
            missing = set(replicas) - set(brokers)
            if missing:
                return TopicError(
                    ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Replica assignment {list(replicas)} names unregistered brokers "
                    f"{sorted(missing)}",
                ), ()
    try:
        validate_topic_configs(configs)
    except ConfigError as e:
        return TopicError(ErrorCode.INVALID_CONFIG, str(e)), ()
    return OK, assignment


def create_topic(
    ctx: BrokerContext,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str | None],
    *,
    validate_only: bool,
    assignment: tuple[tuple[int, ...], ...] | None = None,
) -> TopicError:
    """Validate and (unless ``validate_only``) create a topic with its partition logs,
    led by this broker."""
    error, replicas = validate_new_topic(
        ctx, name, partitions, replication_factor, configs, assignment=assignment
    )
    if error.code is not ErrorCode.NONE or validate_only:
        return error
    overrides = {k: v for k, v in configs.items() if v is not None}
    info = ctx.topics.create(name, replicas, overrides)
    open_partitions(ctx, info)
    return OK


async def create_topic_in_zookeeper(
    ctx: BrokerContext,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str | None],
    *,
    validate_only: bool,
    assignment: tuple[tuple[int, ...], ...] | None = None,
    timeout_ms: int = 0,
) -> TopicError:
    """Cluster mode: validate, write the topic's znodes, and wait up to ``timeout_ms`` for
    the controller to make its partition states (REQUEST_TIMED_OUT if it has not)."""
    zk = ctx.zk
    assert zk is not None
    error, replicas = validate_new_topic(
        ctx, name, partitions, replication_factor, configs, assignment=assignment
    )
    if error.code is not ErrorCode.NONE or validate_only:
        return error
    if await zk.exists(layout.topic_path(name)) is not None:
        return TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    overrides = {k: v for k, v in configs.items() if v is not None}
    await zk.ensure_path(layout.CONFIG_TOPICS)
    await zk.set(layout.topic_config_path(name), layout.encode_topic_config(overrides))
    await zk.create(layout.topic_config_path(name), layout.encode_topic_config(overrides))
    topic_id = uuid.uuid4()
    data = layout.encode_topic(layout.TopicAssignment(topic_id, dict(enumerate(replicas))))
    if not await zk.create(layout.topic_path(name), data, makepath=True):
        return TopicError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    _log.info("created topic %s with assignment %s", name, replicas)
    if timeout_ms <= 0:
        return OK

    def ready() -> bool:
        return all(
            ctx.cluster.state(TopicPartition(name, p)) is not None for p in range(len(replicas))
        )

    if not await ctx.cluster.wait_until(ready, timeout_ms / 1000):
        return TopicError(
            ErrorCode.REQUEST_TIMED_OUT, f"Topic {name} was created; its leaders not yet."
        )
    return OK


async def delete_topic_in_zookeeper(
    ctx: BrokerContext, info: TopicInfo, timeout_ms: int
) -> TopicError:
    """Cluster mode: ask the controller to delete a topic and wait until it is gone."""
    zk = ctx.zk
    assert zk is not None
    await zk.create(layout.delete_topic_path(info.name), makepath=True)
    if timeout_ms <= 0:
        return OK
    gone = await ctx.cluster.wait_until(
        lambda: ctx.cluster.topic(info.name) is None, timeout_ms / 1000
    )
    if not gone:
        return TopicError(ErrorCode.REQUEST_TIMED_OUT, f"Deletion of {info.name} is pending.")
    return OK


def request_timeout_ms(request: Entity) -> int:
    """A CreateTopics / DeleteTopics request's timeout in milliseconds (kio: a timedelta)."""
    timeout = getattr(request, "timeout", None)
    if timeout is None:
        return 0
    return int(timeout.total_seconds() * 1000)


def open_partitions(ctx: BrokerContext, info: TopicInfo) -> None:
    """Open (creating if needed) the logs of a topic's partitions and lead them."""
    for index in range(info.partitions):
        tp = TopicPartition(info.name, index)
        log = ctx.logs.get(tp)
        if log is None:
            log = ctx.logs.create(tp, int(time.time() * 1000), info.configs)
        ctx.partitions[tp] = PartitionState.lead_alone(tp, log, ctx.broker_id)
        if ctx.group_log is not None:
            ctx.group_log.leadership_changed(tp)


def delete_topic(ctx: BrokerContext, info: TopicInfo) -> None:
    """Remove a topic: registry entry, leadership, partition directories."""
    ctx.topics.delete(info.name)
    for index in range(info.partitions):
        tp = TopicPartition(info.name, index)
        ctx.partitions.pop(tp, None)
        if ctx.group_log is not None:
            ctx.group_log.leadership_changed(tp)
        if ctx.logs.get(tp) is not None:
            ctx.logs.delete(tp)
    if ctx.group_log is not None:
        ctx.group_log.topics_deleted([info.name])
    _log.info("deleted topic %s", info.name)


def _config_entries(ctx: BrokerContext, cls: type[Any], overrides: Mapping[str, str]) -> Any:
    entries = []
    for name, value in sorted(ctx.config.topic_config(overrides).items()):
        if name in overrides:
            source = TOPIC_CONFIG_SOURCE
        elif any(s in ctx.config.explicit for s in ctx.config.topic_synonyms(name)):
            source = STATIC_BROKER_CONFIG
        else:
            source = DEFAULT_CONFIG
        entries.append(
            build(
                cls,
                name=name,
                value=value,
                read_only=False,
                config_source=source,
                is_sensitive=False,
            )
        )
    return tuple(entries)


async def handle_create_topics(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    cls = response_class(request)
    result_cls = nested(cls, "CreatableTopicResult")
    config_cls = nested(cls, "CreatableTopicConfigs") if header.api_version >= 5 else None
    topics: tuple[Any, ...] = request.topics  # type: ignore[attr-defined]
    validate_only = bool(getattr(request, "validate_only", False))
    timeout_ms = request_timeout_ms(request)
    counts: dict[str, int] = {}
    for topic in topics:
        counts[topic.name] = counts.get(topic.name, 0) + 1
    results = []
    for topic in topics:
        name: str = topic.name
        partitions = int(topic.num_partitions)
        replication_factor = int(topic.replication_factor)
        assignment = None
        if counts[name] > 1:
            error = TopicError(
                ErrorCode.INVALID_REQUEST, "Create topics request from client is duplicated"
            )
        elif topic.assignments and (partitions != -1 or replication_factor != -1):
            error = TopicError(
                ErrorCode.INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. "
                "Both cannot be used at the same time.",
            )
        else:
            if topic.assignments:
                by_index = {int(a.partition_index): tuple(a.broker_ids) for a in topic.assignments}
                if sorted(by_index) != list(range(len(by_index))):
                    by_index = {}
                assignment = tuple(by_index[i] for i in range(len(by_index)))
            if partitions == -1:
                partitions = ctx.config.num_partitions
            if replication_factor == -1:
                replication_factor = ctx.config.default_replication_factor
            configs: dict[str, str | None] = {c.name: c.value for c in topic.configs}
            if ctx.zk is None:
                error = create_topic(
                    ctx,
                    name,
                    partitions,
                    replication_factor,
                    configs,
                    validate_only=validate_only,
                    assignment=assignment,
                )
            else:
                error = await create_topic_in_zookeeper(
                    ctx,
                    name,
                    partitions,
                    replication_factor,
                    configs,
                    validate_only=validate_only,
                    assignment=assignment,
                    timeout_ms=timeout_ms,
                )
        info = ctx.topics.get(name) if not validate_only else None
        configs_out = None
        success = error.code is ErrorCode.NONE
        if success and assignment is not None:
            partitions, replication_factor = len(assignment), len(assignment[0])
        if success and config_cls is not None:
            overrides = (
                info.configs
                if info is not None
                else {c.name: c.value for c in topic.configs if c.value is not None}
            )
            configs_out = _config_entries(ctx, config_cls, overrides)
        if success:
            _log.info("%s topic %s", "validated" if validate_only else "created", name)
        results.append(
            build(
                result_cls,
                name=name,
                topic_id=info.topic_id if info is not None and success else None,
                error_code=error.code,
                error_message=error.message,
                num_partitions=partitions if success else -1,
                replication_factor=replication_factor if success else -1,
                configs=configs_out if success else None,
            )
        )
    response: Entity = build(cls, topics=tuple(results))
    return response


async def handle_delete_topics(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity | None:
    cls = response_class(request)
    result_cls = nested(cls, "DeletableTopicResult")
    wanted: list[tuple[str | None, Any]] = []
    if header.api_version >= 6:
        wanted = [(t.name, t.topic_id) for t in request.topics]  # type: ignore[attr-defined]
    else:
        wanted = [(n, None) for n in request.topic_names]  # type: ignore[attr-defined]
    timeout_ms = request_timeout_ms(request)
    results = []
    for name, topic_id in wanted:
        message: str | None
        by_id = name is None
        info = ctx.topics.by_id(topic_id) if by_id and topic_id is not None else None
        if not by_id and name is not None:
            info = ctx.topics.get(name)
        if not ctx.config.delete_topic_enable:
            code, message = ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled."
        elif info is None:
            code = ErrorCode.UNKNOWN_TOPIC_ID if by_id else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            message = code.name
        elif ctx.zk is not None:
            outcome = await delete_topic_in_zookeeper(ctx, info, timeout_ms)
            code, message = outcome.code, outcome.message
        else:
            delete_topic(ctx, info)
            code, message = ErrorCode.NONE, None
        results.append(
            build(
                result_cls,
                name=info.name if info is not None else name,
                topic_id=info.topic_id if info is not None else topic_id,
                error_code=code,
                error_message=message,
            )
        )
    response: Entity = build(cls, responses=tuple(results))
    return response
