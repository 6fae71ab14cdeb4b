"""Claiming producer id blocks from ZooKeeper (impl.zk.producer_id_block) against a real
ZooKeeper: Kafka's /latest_producer_id_block JSON, the first block from an absent or an
empty znode, concurrent claimers on separate sessions never getting overlapping blocks,
and the allocator on top of it; plus the InitProducerId answer when no block can be had
(UNKNOWN_SERVER_ERROR, as Kafka's ZooKeeper mode)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble
from impl.broker.context import BrokerContext
from impl.broker.producer_ids import ProducerIdAllocator, handle_init_producer_id
from impl.wire.framing import RequestHeader
from impl.zk import layout
from impl.zk.producer_id_block import ZkProducerIdBlocks, claim_producer_id_block
from impl.zk.session import ZkError, ZkSession
from spec.errors import ErrorCode
from tests.impl import kio_requests as kr
from tests.impl.data_helpers import INIT_PRODUCER_ID

PATH = layout.LATEST_PRODUCER_ID_BLOCK


def _znode(zk: KazooClient) -> dict[str, Any]:
    data, _ = zk.get(PATH)
    parsed: dict[str, Any] = json.loads(data)
    return parsed


async def _sessions(connect: str, count: int) -> list[ZkSession]:
    sessions = [ZkSession(connect, 6000) for _ in range(count)]
    await asyncio.gather(*(s.start() for s in sessions))
    return sessions


def test_first_block_creates_the_znode_in_kafkas_layout(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    async def run() -> tuple[layout.ProducerIdBlock, layout.ProducerIdBlock]:
        (session,) = await _sessions(zookeeper.connect_string, 1)
        try:
            first = await claim_producer_id_block(session, 7)
            second = await claim_producer_id_block(session, 8)
            return first, second
        finally:
            await session.close()

    first, second = asyncio.run(run())
    assert first == layout.ProducerIdBlock(7, 0, 999)
    assert second == layout.ProducerIdBlock(8, 1000, 1999)
    raw = zk.get(PATH)[0]
    assert json.loads(raw) == {
        "version": 1,
        "broker": 8,
        "block_start": "1000",
        "block_end": "1999",
    }
    assert list(json.loads(raw)) == ["version", "broker", "block_start", "block_end"]
    assert zk.exists(PATH).version == 1


def test_an_empty_znode_from_the_top_level_paths_gives_the_first_block(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    zk.create(PATH, b"")  # what create_top_level_paths (and Kafka) leave

    async def run() -> layout.ProducerIdBlock:
        (session,) = await _sessions(zookeeper.connect_string, 1)
        try:
            return await claim_producer_id_block(session, 2)
        finally:
            await session.close()

    assert asyncio.run(run()) == layout.ProducerIdBlock(2, 0, 999)
    assert _znode(zk)["block_end"] == "999"


def test_a_block_written_by_kafka_is_continued(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    zk.create(PATH, b'{"version":1,"broker":3,"block_start":"41000","block_end":"41999"}')

    async def run() -> layout.ProducerIdBlock:
        (session,) = await _sessions(zookeeper.connect_string, 1)
        try:
            return await claim_producer_id_block(session, 1)
        finally:
            await session.close()

    assert asyncio.run(run()) == layout.ProducerIdBlock(1, 42000, 42999)


def test_concurrent_claimers_never_share_a_block(
    zookeeper: ZooKeeperEnsemble, zk: KazooClient
) -> None:
    """Four sessions (four brokers) claim 40 blocks at once; each claim races the others
    on the znode version, the losers read again."""

    async def run() -> list[layout.ProducerIdBlock]:
        sessions = await _sessions(zookeeper.connect_string, 4)
        try:
            claims = [claim_producer_id_block(sessions[i % 4], i % 4 + 1) for i in range(40)]
            return list(await asyncio.gather(*claims))
        finally:
            await asyncio.gather(*(s.close() for s in sessions))

    blocks = asyncio.run(run())
    starts = sorted(b.first for b in blocks)
    assert starts == [1000 * i for i in range(40)]
    assert all(b.last == b.first + 999 for b in blocks)
    assert _znode(zk)["block_end"] == str(40 * 1000 - 1)


def test_allocators_of_three_brokers_hand_out_distinct_ids(zookeeper: ZooKeeperEnsemble) -> None:
    """Three allocators (brokers 1-3) asked concurrently for 2500 ids each (three blocks
    each): 7500 distinct ids, increasing per broker."""

    async def run() -> dict[int, list[int]]:
        sessions = await _sessions(zookeeper.connect_string, 3)
        try:
            allocators = {
                i + 1: ProducerIdAllocator(ZkProducerIdBlocks(s, i + 1))
                for i, s in enumerate(sessions)
            }

            async def many(allocator: ProducerIdAllocator) -> list[int]:
                return list(await asyncio.gather(*(allocator.next_id() for _ in range(2500))))

            got = await asyncio.gather(*(many(a) for a in allocators.values()))
            return dict(zip(allocators, got, strict=True))
        finally:
            await asyncio.gather(*(s.close() for s in sessions))

    ids = asyncio.run(run())
    every = [i for per_broker in ids.values() for i in per_broker]
    assert len(set(every)) == len(every) == 7500
    assert all(per_broker == sorted(per_broker) for per_broker in ids.values())


class _Unreachable:
    """A block source whose ZooKeeper never answers in time."""

    async def next_block(self) -> range:
        raise ZkError("could not claim a producer id block within 30.0s")


def test_init_producer_id_without_a_block_is_unknown_server_error() -> None:
    ctx = cast(BrokerContext, _Ctx(ProducerIdAllocator(_Unreachable())))
    request = kr.request(
        INIT_PRODUCER_ID,
        4,
        transactional_id=None,
        transaction_timeout=kr.ms(60000),
        producer_id=-1,
        producer_epoch=-1,
    )
    header = cast(RequestHeader, None)  # the handler does not read it
    response: Any = asyncio.run(handle_init_producer_id(ctx, header, request))
    assert response.error_code == ErrorCode.UNKNOWN_SERVER_ERROR
    assert (response.producer_id, response.producer_epoch) == (-1, -1)


class _Ctx:
    def __init__(self, producer_ids: ProducerIdAllocator) -> None:
        self.producer_ids = producer_ids
