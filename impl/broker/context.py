"""The broker's shared state, handed to every request handler: identity, configuration,
the partition logs, the partitions this broker leads, the topic registry, the producer id
allocator, and the condition long-polling fetches wait on."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import attrs

from impl.broker.config import BrokerConfig
from impl.broker.topics import TopicRegistry
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.partition import PartitionState
    from impl.broker.producer_ids import ProducerIdAllocator
    from impl.storage.log_manager import LogManager

__all__ = ["BrokerContext", "TopicPartition"]


@attrs.define
class BrokerContext:
    """Everything a handler may read or change; one per broker process."""

    broker_id: int
    host: str
    port: int
    config: BrokerConfig
    logs: LogManager
    partitions: dict[TopicPartition, PartitionState]  # the partitions led here
    topics: TopicRegistry
    producer_ids: ProducerIdAllocator
    data_arrived: asyncio.Condition  # notified after every append
