"""Producer ids: the allocator (blocks of ids persisted in the data directory, so an id
is never handed out twice, even across restarts) and the InitProducerId handler for
idempotent, non-transactional producers.

Kafka hands each broker a block of 1000 ids at a time from ZooKeeper
(``/latest_producer_id_block``); in single-broker mode the block's end is recorded in
``producer-id-block`` in the data directory before any id of the block is given out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from impl.broker.kio_build import build, response_class
from impl.storage.files import replace_atomically
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

BLOCK_FILE = "producer-id-block"
BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock size


class ProducerIdAllocator:
    """Hands out producer ids in increasing order; the end of the current block is
    durable before any id in it is returned."""

    def __init__(self, path: Path, next_id: int, block_end: int) -> None:
        self._path = path
        self._next = next_id
        self._block_end = block_end  # exclusive; persisted

    @classmethod
    def open(cls, data_dir: str | Path) -> ProducerIdAllocator:
        """The allocator of a data directory; ids continue after the last persisted block
        (ids of a block only partly used before a restart are skipped, never reused)."""
        directory = Path(data_dir)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / BLOCK_FILE
        start = 0
        if path.exists():
            text = path.read_text(encoding="ascii").strip()
            start = int(text) if text else 0
        return cls(path, start, start)

    def next_id(self) -> int:
        """A producer id never returned before by this data directory."""
        if self._next >= self._block_end:
            self._block_end = self._next + BLOCK_SIZE
            replace_atomically(self._path, f"{self._block_end}\n".encode("ascii"))
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
        response = build(
            cls,
            error_code=ErrorCode.NONE,
            producer_id=ctx.producer_ids.next_id(),
            producer_epoch=0,
        )
    return response
