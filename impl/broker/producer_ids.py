"""Producer ids: the allocator (ids handed out in blocks, a block's ids given out only
once the block is claimed durably, so an id is never handed out twice, even across
restarts) and the InitProducerId handler for idempotent, non-transactional producers.

Where blocks come from: in cluster mode, as Kafka's ZkProducerIdManager, blocks of 1000
claimed from ZooKeeper's ``/latest_producer_id_block`` (impl.zk.producer_id_block), so no
two brokers share an id; in single-broker mode the block's end is recorded in
``producer-id-block`` in the data directory before any id of the block is given out.
A block is claimed when the first id of it is wanted (Kafka claims its first block at
start-up; here a broker that never answers InitProducerId claims none).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from impl.broker.kio_build import build, response_class
from impl.storage.files import replace_atomically
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

_log = logging.getLogger(__name__)

BLOCK_FILE = "producer-id-block"
BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock size


class ProducerIdBlocks(Protocol):
    """Where an allocator gets its blocks: each call claims a new block, never one that
    was (or overlaps one that was) returned before, by this or any other claimer."""

    async def next_block(self) -> range: ...


class DataDirBlocks:
    """Single-broker mode: blocks recorded in the data directory (the end of the last
    block claimed, exclusive, in ``producer-id-block``)."""

    def __init__(self, path: Path, block_end: int) -> None:
        self._path = path
        self._block_end = block_end

    @classmethod
    def open(cls, data_dir: str | Path) -> DataDirBlocks:
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / BLOCK_FILE
        end = 0
        if path.exists():
            text = path.read_text(encoding="ascii").strip()
            end = int(text) if text else 0
        return cls(path, end)

    async def next_block(self) -> range:
        start, end = self._block_end, self._block_end + BLOCK_SIZE
        replace_atomically(self._path, f"{end}\n".encode("ascii"))
        self._block_end = end
        return range(start, end)


class ProducerIdAllocator:
    """Hands out producer ids in increasing order within a block; a new block is claimed
    (one claim at a time) when the current one is used up."""

    def __init__(self, blocks: ProducerIdBlocks) -> None:
        self._blocks = blocks
        self._next = 0
        self._block_end = 0  # exclusive; nothing claimed yet
        self._claiming = asyncio.Lock()

    @classmethod
    def open(cls, data_dir: str | Path) -> ProducerIdAllocator:
        """Single-broker mode: the allocator of a data directory; ids continue after the
        last persisted block (ids of a block only partly used before a restart are
        skipped, never reused)."""
        return cls(DataDirBlocks.open(data_dir))

    async def next_id(self) -> int:
        """A producer id never returned before (by this broker or, in cluster mode, any
        other); raises what claiming a block raised (ZooKeeper unreachable, disk error)."""
        if self._next >= self._block_end:
            async with self._claiming:
                if self._next >= self._block_end:  # not claimed meanwhile by another request
                    block = await self._blocks.next_block()
                    self._next, self._block_end = block.start, block.stop
        producer_id = self._next
        self._next += 1
        return producer_id


async def handle_init_producer_id(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity:
    """InitProducerId for an idempotent producer: a new producer id with epoch 0.

    As Kafka's transaction coordinator does for a null transactional id, any producer id
    and epoch in the request (KIP-360, v3+) are ignored and a fresh id is returned.
    Transactions are not part of this broker: a transactional id is refused with
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED, an error no client retries.

    When no id can be had (cluster mode: no block could be claimed from ZooKeeper) the
    answer is UNKNOWN_SERVER_ERROR with producer id -1, as Kafka's ZooKeeper-mode
    coordinator answers (its KafkaException "Failed to acquire a new block of
    producerIds" through Errors.forException), an error Kafka does not mark retriable.
    Kafka's KRaft-mode allocator answers COORDINATOR_LOAD_IN_PROGRESS (retriable) instead.
    """
    cls = response_class(request)
    response: Entity
    if getattr(request, "transactional_id", None) is not None:
        response = build(
            cls,
            error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            producer_id=-1,
            producer_epoch=-1,
        )
    else:
        try:
            producer_id = await ctx.producer_ids.next_id()
        except Exception as e:
            _log.warning("InitProducerId: no producer id block: %s", e)
            response = build(
                cls, error_code=ErrorCode.UNKNOWN_SERVER_ERROR, producer_id=-1, producer_epoch=-1
            )
        else:
            response = build(
                cls, error_code=ErrorCode.NONE, producer_id=producer_id, producer_epoch=0
            )
    return response
