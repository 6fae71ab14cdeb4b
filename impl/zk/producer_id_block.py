"""Blocks of producer ids claimed from ZooKeeper, as Kafka's ZkProducerIdManager claims
them: read ``/latest_producer_id_block`` (data and znode version), write the block that
follows it with this broker's id, conditional on that version; a broker that lost the
race reads again.  A znode that is absent is created with the first block (0..999), a
NodeExists meaning another broker was first; an empty one (created with the top-level
paths, as Kafka creates it) is claimed at version 0 the same way.

So no two brokers of a cluster, and no restart of one, ever get the same block: a block
is handed out only after the write that claims it succeeded.  A write whose answer was
lost with the connection is not trusted: the znode is read again and the next block
claimed (a block may be wasted, never given twice).
"""

from __future__ import annotations

import logging
import time

from impl.zk import layout
from impl.zk.layout import ProducerIdBlock
from impl.zk.session import RETRY_DEADLINE_S, ZkError, ZkSession, is_session_error

__all__ = ["ZkProducerIdBlocks", "claim_producer_id_block"]

_log = logging.getLogger(__name__)


async def claim_producer_id_block(
    zk: ZkSession, broker_id: int, deadline_s: float = RETRY_DEADLINE_S
) -> ProducerIdBlock:
    """Claim the block after the latest one for ``broker_id``; ZkError if ZooKeeper does
    not let it happen within ``deadline_s`` or the ids are exhausted."""
    deadline = time.monotonic() + deadline_s
    path = layout.LATEST_PRODUCER_ID_BLOCK
    while True:
        found = await zk.get(path)
        current = None if found is None else layout.decode_producer_id_block(found[0])
        if current is None:
            block: ProducerIdBlock | None = layout.producer_id_block(broker_id)
        else:
            block = current.following(broker_id)
        if block is None:
            raise ZkError(f"producer ids exhausted (latest block ends at {current})")
        data = layout.encode_producer_id_block(block)
        try:
            if found is None:
                claimed = await zk.create(path, data)
            else:
                claimed = await zk.set(path, data, found[1]) is not None
        except Exception as e:
            if not is_session_error(e):
                raise
            _log.info("claiming producer id block %s: %s; reading again", block, e)
            claimed = False
        if claimed:
            _log.info("claimed producer id block %s", block)
            return block
        if time.monotonic() > deadline:
            raise ZkError(f"could not claim a producer id block within {deadline_s}s")


class ZkProducerIdBlocks:
    """The cluster-mode source of producer id blocks of one broker (its ZooKeeper
    session), for impl.broker.producer_ids.ProducerIdAllocator."""

    def __init__(self, zk: ZkSession, broker_id: int) -> None:
        self._zk = zk
        self._broker_id = broker_id

    async def next_block(self) -> range:
        block = await claim_producer_id_block(self._zk, self._broker_id)
        return range(block.first, block.last + 1)
