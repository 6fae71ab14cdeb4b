"""The internal topic ``__consumer_offsets``, created as Kafka creates it: on the first
FindCoordinator for a group (``ensure_offsets_topic``), through the broker's own topic
creation (impl.broker.admin: in cluster mode its znodes, made into partitions by the
controller; in single-broker mode directly), with offsets.topic.num.partitions
partitions, cleanup.policy=compact, segment.bytes=offsets.topic.segment.bytes and
compression.type=producer.

Replication factor: offsets.topic.replication.factor in cluster mode, and while fewer
brokers are registered the topic is not created and FindCoordinator answers
COORDINATOR_NOT_AVAILABLE (Kafka's "number of alive brokers does not meet the required
replication factor for the offsets topic").  In single-broker mode it is 1: this broker
is the only one, so it holds the only replica whatever the setting says.

The request that creates the topic answers COORDINATOR_NOT_AVAILABLE, as Kafka's does;
the client asks again once the partitions have leaders."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from impl.broker import admin
from impl.group.partitioner import GROUP_METADATA_TOPIC_NAME
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from impl.broker.context import BrokerContext

_log = logging.getLogger(__name__)


def is_internal(topic: str) -> bool:
    """Whether ``topic`` is one of Kafka's internal topics (the transaction state topic
    is never made here, but is internal by name all the same)."""
    return topic in (GROUP_METADATA_TOPIC_NAME, "__transaction_state")


def offsets_topic_configs(ctx: BrokerContext) -> dict[str, str | None]:
    """The topic configs Kafka gives ``__consumer_offsets``."""
    return {
        "cleanup.policy": "compact",
        "segment.bytes": str(ctx.config.get_int("offsets.topic.segment.bytes")),
        "compression.type": "producer",
    }


def offsets_topic_replication_factor(ctx: BrokerContext) -> int:
    """offsets.topic.replication.factor in cluster mode; 1 for a single broker."""
    if ctx.zk is None:
        return 1
    return ctx.config.get_int("offsets.topic.replication.factor")


async def ensure_offsets_topic(ctx: BrokerContext) -> ErrorCode:
    """NONE when ``__consumer_offsets`` exists; otherwise create it (unless too few
    brokers are registered) and answer COORDINATOR_NOT_AVAILABLE."""
    if GROUP_METADATA_TOPIC_NAME in ctx.topics:
        return ErrorCode.NONE
    partitions = ctx.config.get_int("offsets.topic.num.partitions")
    rf = offsets_topic_replication_factor(ctx)
    configs = offsets_topic_configs(ctx)
    if ctx.zk is None:
        error = admin.create_topic(
            ctx, GROUP_METADATA_TOPIC_NAME, partitions, rf, configs, validate_only=False
        )
    else:
        # Two brokers (or two requests) creating it at once: one znode write wins, the
        # other finds TOPIC_ALREADY_EXISTS.
        error = await admin.create_topic_in_zookeeper(
            ctx, GROUP_METADATA_TOPIC_NAME, partitions, rf, configs, validate_only=False
        )
    if error.code is ErrorCode.NONE:
        _log.info(
            "created %s with %d partitions, replication factor %d",
            GROUP_METADATA_TOPIC_NAME,
            partitions,
            rf,
        )
    elif error.code is not ErrorCode.TOPIC_ALREADY_EXISTS:
        _log.info("cannot create %s yet: %s", GROUP_METADATA_TOPIC_NAME, error.message)
    return ErrorCode.COORDINATOR_NOT_AVAILABLE
