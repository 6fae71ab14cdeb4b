"""The broker's shared state, handed to every request handler: identity, configuration,
the partition logs, the partitions this broker leads, the topic registry, the producer id
allocator, the condition long-polling fetches wait on, and for cluster mode the
ZooKeeper session, the replica manager and the metadata cache."""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING

import attrs

from impl.broker.cluster_metadata import ClusterMetadata
from impl.broker.config import BrokerConfig
from impl.broker.topics import TopicRegistry
from impl.group.coordinator import GroupCoordinator
from spec.state import TopicPartition

if TYPE_CHECKING:
    from impl.broker.partition import PartitionState
    from impl.broker.producer_ids import ProducerIdAllocator
    from impl.group.offsets_log import GroupLog
    from impl.replication.manager import ReplicaManager
    from impl.storage.log_manager import LogManager
    from impl.zk.session import ZkSession

__all__ = ["CLIENT_HOST", "BrokerContext", "TopicPartition"]

CLIENT_HOST: contextvars.ContextVar[str] = contextvars.ContextVar("client_host", default="")
"""The address of the client whose request is being handled, as Kafka prints an
``InetAddress`` ("/127.0.0.1"): set by each connection's worker task (its own context),
read by DescribeGroups for a member's ``client_host``."""


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
    cluster: ClusterMetadata  # the metadata cache (topics is cluster.topics)
    zk: ZkSession | None = None  # cluster mode only
    replicas: ReplicaManager | None = None  # cluster mode: REPLICATION's manager
    group_log: GroupLog | None = None  # the __consumer_offsets partitions led here
    groups: GroupCoordinator = attrs.field(  # the group coordinator: membership
        default=attrs.Factory(
            lambda ctx: GroupCoordinator.for_broker(ctx.config, ctx), takes_self=True
        )
    )

    @property
    def cluster_mode(self) -> bool:
        return self.zk is not None
