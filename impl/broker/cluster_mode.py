"""Cluster-mode boot and shutdown (a broker whose configuration has zookeeper.connect):
the ZooKeeper session, Kafka's top-level znodes and /cluster/id, the partition logs, the
replica manager, the metadata watches, this broker's registration (after the logs are
loaded and the listener is up), then the controller candidate.  The reverse on exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import attrs

from impl.broker.cluster_metadata import ClusterMetadata
from impl.broker.config import BrokerConfig
from impl.broker.context import BrokerContext
from impl.broker.producer_ids import ProducerIdAllocator
from impl.broker.topics import TopicRegistry, check_cluster_id
from impl.controller.controller import KafkaController
from impl.group.offsets_log import GroupLog
from impl.replication.manager import ReplicaManager
from impl.storage.config import LogConfig
from impl.storage.log_manager import LogManager
from impl.zk import layout
from impl.zk.metadata_sync import MetadataSync
from impl.zk.producer_id_block import ZkProducerIdBlocks
from impl.zk.registration import (
    BrokerRegistration,
    create_top_level_paths,
    get_or_create_cluster_id,
)
from impl.zk.session import CLOSE_TIMEOUT_S, ZkSession
from spec.state import TopicPartition

_log = logging.getLogger(__name__)


def zookeeper_connect(config: BrokerConfig) -> str | None:
    """zookeeper.connect, or None in single-broker mode."""
    return config.zookeeper_connect


@attrs.define
class ClusterMode:
    """The running cluster-mode parts of one broker."""

    ctx: BrokerContext
    zk: ZkSession
    replicas: ReplicaManager
    sync: MetadataSync | None = None
    registration: BrokerRegistration | None = None
    controller: KafkaController | None = None

    async def join(self) -> None:
        """Watch the metadata, register (waiting for a stale registration of this id to
        expire), take the partition states, stand for controller."""
        ctx, zk = self.ctx, self.zk
        self.sync = MetadataSync(ctx, zk)
        await self.sync.start()
        await self.sync.synced()
        host, port = ctx.config.advertised_endpoint
        self.registration = BrokerRegistration(zk, layout.BrokerInfo(ctx.broker_id, host, port))
        await self.registration.register()  # may wait for a stale one to expire
        await self.sync.deliver()
        unclean = ctx.config.unclean_leader_election_enable
        self.controller = KafkaController(zk, ctx.broker_id, unclean)
        await self.controller.start()

    async def close(self) -> None:
        """Leave the cluster: resign as controller, stop the watches, deregister, stop the
        replicas (writing the high-watermark checkpoint) and end the session.  Each step
        that needs ZooKeeper waits at most CLOSE_TIMEOUT_S, so a broker whose ZooKeeper is
        gone still stops when told to (its registration then expires with its session)."""
        if self.controller is not None:
            await _bounded(self.controller.close(), "resigning as controller")
        if self.sync is not None:
            await _bounded(self.sync.close(), "stopping the metadata watches")
        if self.registration is not None:
            await _bounded(self.registration.deregister(), "deregistering")
        await self.replicas.close()
        with contextlib.suppress(Exception):
            await self.zk.close()


async def _bounded(step: Coroutine[Any, Any, None], what: str) -> None:
    try:
        await asyncio.wait_for(step, CLOSE_TIMEOUT_S)
    except TimeoutError:
        _log.warning("%s: no answer from ZooKeeper within %.0fs; going on", what, CLOSE_TIMEOUT_S)
    except Exception as e:
        _log.warning("%s failed: %s; going on", what, e)


async def open_cluster_context(config: BrokerConfig, connect: str) -> ClusterMode:
    """Connect to ZooKeeper and load the logs; nothing is led or followed yet."""
    zk = ZkSession(
        connect, config.zookeeper_session_timeout_ms, config.zookeeper_connection_timeout_ms
    )
    await zk.start()
    try:
        await create_top_level_paths(zk)
        cluster_id = await get_or_create_cluster_id(zk)
        data_dir = Path(config.data_dir)
        check_cluster_id(data_dir, config.broker_id, cluster_id)
        configs = await _topic_configs(zk)
        topics = TopicRegistry(data_dir, cluster_id, {}, persist=False)

        def config_for(tp: TopicPartition) -> LogConfig:
            info = topics.get(tp.topic)
            return config.log_config(info.configs if info is not None else configs.get(tp.topic))

        now = int(time.time() * 1000)
        logs = await asyncio.to_thread(
            LogManager, str(data_dir), config.log_config(), now, config_for
        )
        ctx = BrokerContext(
            broker_id=config.broker_id,
            host=config.host,
            port=config.port,
            config=config,
            logs=logs,
            partitions={},
            topics=topics,
            producer_ids=ProducerIdAllocator(ZkProducerIdBlocks(zk, config.broker_id)),
            data_arrived=asyncio.Condition(),
            cluster=ClusterMetadata(topics),
            zk=zk,
        )
        replicas = ReplicaManager(ctx)
        ctx.replicas = replicas
        ctx.group_log = GroupLog(ctx)
        replicas.start()
        return ClusterMode(ctx, zk, replicas)
    except BaseException:
        await zk.close()
        raise


async def _topic_configs(zk: ZkSession) -> dict[str, dict[str, str]]:
    """Every topic's config overrides, for the logs loaded before the watches run."""
    out: dict[str, dict[str, str]] = {}
    for name in await zk.get_children(layout.CONFIG_TOPICS) or []:
        found = await zk.get(layout.topic_config_path(name))
        if found is not None:
            out[name] = layout.decode_topic_config(found[0])
    return out
