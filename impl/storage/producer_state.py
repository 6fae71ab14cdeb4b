"""Idempotent producers' state on one partition (Kafka's ``ProducerStateManager``).

For each producer id: its epoch and the metadata of its last 5 batches (first and last
sequence, first and last offset).  The verdict on a new batch follows Kafka 3.x
(``UnifiedLog.analyzeAndValidateProducerState``, ``ProducerStateEntry.findDuplicateBatch``,
``ProducerAppendInfo.checkProducerEpoch`` / ``checkSequence``), in this order:

1. A batch without a producer id is not checked (``Append``).  One with a producer id and
   a negative base sequence is INVALID_RECORD.
2. Same epoch and exactly the sequence range of one of the last 5 batches: ``Duplicate``
   with the offsets it got the first time (nothing is appended).
3. An epoch older than the producer's: INVALID_PRODUCER_EPOCH.
4. A newer epoch must start at sequence 0, else OUT_OF_ORDER_SEQUENCE_NUMBER.
5. The same epoch: the base sequence must follow the last one (``Integer.MAX_VALUE`` is
   followed by 0), else OUT_OF_ORDER_SEQUENCE_NUMBER (a gap, a retry older than the 5
   kept batches, or an overlapping range).
6. A producer id with no state here is accepted at any sequence: since KIP-360 (Kafka
   2.5) the broker cannot tell a new producer from one whose state expired, so
   UNKNOWN_PRODUCER_ID is no longer returned for produce.

The state is rebuilt from the batch headers when the log is opened (no snapshot files);
it is kept in memory when retention deletes segments, as Kafka keeps it until
``producer.id.expiration.ms`` (not implemented).
"""

from __future__ import annotations

from collections import deque

import attrs

from impl import mutants
from impl.wire.records import NO_PRODUCER_EPOCH, BatchHeader
from spec.errors import ErrorCode

NUM_BATCHES_TO_RETAIN = 5
MAX_SEQUENCE = (1 << 31) - 1


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """``next_seq`` directly follows ``last_seq`` (wrapping after ``Integer.MAX_VALUE``)."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == MAX_SEQUENCE)


@attrs.frozen(slots=True)
class BatchMetadata:
    """What is remembered of one batch of a producer."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@attrs.define(slots=True)
class ProducerStateEntry:
    """One producer's epoch and its last batches, oldest first."""

    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque[BatchMetadata] = attrs.field(factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


@attrs.frozen(slots=True)
class Append:
    """The batch is new and in sequence: append it."""


@attrs.frozen(slots=True)
class Duplicate:
    """A retry of a batch already in the log, with its original offsets."""

    base_offset: int
    last_offset: int


Verdict = Append | Duplicate | ErrorCode
APPEND = Append()


class ProducerStateManager:
    """Producer id -> ``ProducerStateEntry`` for one partition."""

    def __init__(self) -> None:
        self.producers: dict[int, ProducerStateEntry] = {}

    def check(self, header: BatchHeader) -> Verdict:
        """The verdict on appending the batch ``header`` describes (see the module doc)."""
        if header.producer_id < 0:
            return APPEND
        if header.base_sequence < 0 or header.records_count < 1:
            return ErrorCode.INVALID_RECORD
        entry = self.producers.get(header.producer_id)
        if entry is None:
            return APPEND
        epoch = header.producer_epoch
        dup = entry.find_duplicate(epoch, header.base_sequence, header.last_sequence)
        if dup is not None:
            if mutants.active(mutants.DUPLICATE_ON_IDEMPOTENT_RETRY):
                return APPEND
            return Duplicate(dup.first_offset, dup.last_offset)
        if epoch < entry.producer_epoch:
            if mutants.active(mutants.FENCED_PRODUCER_EPOCH_ACCEPTED):
                return APPEND
            return ErrorCode.INVALID_PRODUCER_EPOCH
        if epoch != entry.producer_epoch:
            return APPEND if header.base_sequence == 0 else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        if entry.producer_epoch == NO_PRODUCER_EPOCH or in_sequence(
            entry.last_seq, header.base_sequence
        ):
            return APPEND
        if mutants.active(mutants.OUT_OF_ORDER_SEQUENCE_ACCEPTED):
            return APPEND
        return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER

    def update(self, header: BatchHeader, base_offset: int | None = None) -> None:
        """Record the appended batch ``header`` (at ``base_offset`` when given, the
        offset it got in the log; else the header's); a new epoch forgets the old
        epoch's batches."""
        if header.producer_id < 0:
            return
        base = header.base_offset if base_offset is None else base_offset
        entry = self.producers.get(header.producer_id)
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerStateEntry(header.producer_epoch)
        elif entry.producer_epoch != header.producer_epoch:
            entry.producer_epoch = header.producer_epoch
            entry.batches.clear()
        entry.batches.append(
            BatchMetadata(
                header.base_sequence,
                header.last_sequence,
                base,
                base + header.last_offset_delta,
            )
        )

    def clear(self) -> None:
        self.producers.clear()
