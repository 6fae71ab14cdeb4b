"""The state of one partition this broker leads: its log, leader epoch, replicas, ISR and
high watermark, and the leader's side of the data path (validated appends, reads up to the
high watermark, the KIP-320 leader-epoch check).

Single-broker mode is the degenerate case of replication: the ISR is this broker alone, so
the high watermark follows the log end offset after every append.  The fields are kept so
that replication (issue 4) only changes how the high watermark advances.
"""

from __future__ import annotations

import asyncio

import attrs

from impl.storage.errors import StorageError
from impl.storage.partition_log import AppendInfo, PartitionLog
from impl.wire import records
from spec.errors import ErrorCode
from spec.state import TopicPartition

VALID_ACKS = frozenset({0, 1, -1})
NO_EPOCH = -1  # a request's current_leader_epoch when the client does not know it


class PartitionError(Exception):
    """A per-partition failure with the Kafka error code the client gets."""

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.name)
        self.code = code


def validate_batch(data: bytes) -> records.BatchHeader:
    """The header of the one v2 batch a produce request carries for a partition, checked
    as Kafka's ProduceRequest and LogValidator check it (no record is decoded); the size
    limit and the CRC are checked by the log as it appends.  Raises PartitionError with
    CORRUPT_MESSAGE (malformed) or INVALID_RECORD."""
    if not data:
        raise PartitionError(ErrorCode.INVALID_RECORD, "no record batch")
    try:
        header = records.parse_header(data)
    except records.CorruptBatchError as e:
        raise PartitionError(ErrorCode.CORRUPT_MESSAGE, str(e)) from None
    if header.size != len(data):
        raise PartitionError(
            ErrorCode.INVALID_RECORD, "produce v3+ carries exactly one batch per partition"
        )
    if header.base_offset != 0:
        raise PartitionError(ErrorCode.INVALID_RECORD, "a produced batch has base offset 0")
    if header.records_count != header.last_offset_delta + 1:
        raise PartitionError(ErrorCode.INVALID_RECORD, "record count != last offset delta + 1")
    if header.is_control:
        raise PartitionError(ErrorCode.INVALID_RECORD, "clients may not append control batches")
    return header


@attrs.define(eq=False)
class PartitionState:
    """A partition led by this broker."""

    tp: TopicPartition
    log: PartitionLog
    leader_id: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: frozenset[int]
    high_watermark: int
    _hw_waiters: list[tuple[int, asyncio.Future[None]]] = attrs.field(factory=list, init=False)

    @classmethod
    def lead_alone(
        cls, tp: TopicPartition, log: PartitionLog, broker_id: int, leader_epoch: int = 0
    ) -> PartitionState:
        """This broker as the only replica and leader (single-broker mode): everything in
        the recovered log was acknowledged by the whole ISR, so it is all committed.
        As Kafka's makeLeader, the new epoch starts at the log end offset in the
        leader-epoch cache (a no-op when it is the latest epoch already)."""
        log.epoch_cache.assign(leader_epoch, log.end_offset)
        return cls(
            tp=tp,
            log=log,
            leader_id=broker_id,
            leader_epoch=leader_epoch,
            replicas=(broker_id,),
            isr=frozenset({broker_id}),
            high_watermark=log.end_offset,
        )

    @property
    def log_start_offset(self) -> int:
        return self.log.start_offset

    @property
    def log_end_offset(self) -> int:
        return self.log.end_offset

    @property
    def last_stable_offset(self) -> int:
        """No transactions here: the last stable offset is the high watermark."""
        return self.high_watermark

    def check_leader_epoch(self, current_leader_epoch: int) -> ErrorCode:
        """KIP-320: a client's view of the leader epoch that is older than ours is fenced,
        a newer one means this broker has not caught up yet; -1 skips the check."""
        if current_leader_epoch in (NO_EPOCH, self.leader_epoch):
            return ErrorCode.NONE
        if current_leader_epoch < self.leader_epoch:
            return ErrorCode.FENCED_LEADER_EPOCH
        return ErrorCode.UNKNOWN_LEADER_EPOCH

    def append_as_leader(
        self, batch: bytearray, acks: int, min_insync_replicas: int, now_ms: int
    ) -> AppendInfo:
        """Append a validated batch with this leader's epoch; offsets are assigned by the
        log (or the original ones returned for a duplicate idempotent batch).  Raises
        PartitionError (NOT_ENOUGH_REPLICAS, or the log's idempotence verdict)."""
        if acks == -1 and len(self.isr) < min_insync_replicas:
            raise PartitionError(
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"ISR {sorted(self.isr)} is smaller than min.insync.replicas {min_insync_replicas}",
            )
        try:
            info = self.log.append(batch, self.leader_epoch, now_ms)
        except StorageError as e:
            raise PartitionError(e.code, str(e)) from None
        self.maybe_advance_high_watermark()
        return info

    def maybe_advance_high_watermark(self) -> None:
        """Advance the high watermark to the smallest log end offset in the ISR; with this
        broker alone in the ISR that is its own log end offset."""
        end = self.log.end_offset
        if end <= self.high_watermark:
            return
        self.high_watermark = end
        if self._hw_waiters:
            waiting = []
            for offset, future in self._hw_waiters:
                if offset <= end:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((offset, future))
            self._hw_waiters = waiting

    async def wait_for_high_watermark(self, offset: int, timeout_s: float) -> bool:
        """Whether the high watermark reaches ``offset`` within ``timeout_s`` (acks=-1)."""
        if self.high_watermark >= offset:
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hw_waiters.append((offset, future))
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self._hw_waiters = [w for w in self._hw_waiters if w[1] is not future]
        return self.high_watermark >= offset

    def check_fetch_offset(self, offset: int) -> None:
        """Raise OFFSET_OUT_OF_RANGE unless log start <= offset <= log end."""
        if not self.log.start_offset <= offset <= self.log.end_offset:
            raise PartitionError(
                ErrorCode.OFFSET_OUT_OF_RANGE,
                f"offset {offset} outside [{self.log.start_offset}, {self.log.end_offset}]",
            )

    def read(self, offset: int, max_bytes: int, min_one: bool, max_offset: int) -> bytes:
        """Stored batches from ``offset`` below ``max_offset`` (the high watermark for a
        consumer), at most ``max_bytes`` unless ``min_one``, in which case at least the
        first batch whatever its size.  Call check_fetch_offset first."""
        if offset >= max_offset or (max_bytes <= 0 and not min_one):
            return b""
        try:
            data = self.log.read(offset, max_bytes, max_offset)
        except StorageError as e:
            raise PartitionError(e.code, str(e)) from None
        if len(data) > max_bytes and not min_one:
            return b""
        return data
