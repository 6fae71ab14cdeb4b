"""The idempotent producer as the partition leader checks it (KIP-98, KIP-360).

This module owns producer ids, producer epochs and sequence numbers: the per-partition
producer state the broker keeps (``ProducerStateManager``: for each producer id, its
epoch and the metadata of its last 5 batches), how that state follows from the log, and
the verdict on a new batch (``ProducerAppendInfo.checkSequence`` and
``ProducerStateEntry.findDuplicateBatch``).  It also owns producer id allocation for
InitProducerId.

Batches.  Kafka's log is made of record batches; duplicate detection matches a retried
batch's exact sequence range, so the state depends on where batches begin and end.  A
plain :class:`~spec.log.Record` carries its producer id, epoch and sequence but not its
batch; :class:`BatchRecord` adds the batch header's ``base_sequence`` so that the log keeps
the boundaries.  Consecutive plain records of one producer and epoch with consecutive
sequences are read as one batch.

Retention.  Since KIP-360 (KAFKA-7190) the broker does not forget a producer when the
records it wrote are deleted: producer state survives a log start offset increment and
only expires after ``producer.id.expiration.ms`` (not modelled: the spec has no clock
here).  :func:`take_snapshot` captures the state of a log prefix before it is deleted,
and :func:`producer_state` replays the rest of the log onto it, as Kafka's producer
snapshot files plus log recovery do.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.log import NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Log, Record

NUM_BATCHES_TO_RETAIN = 5
"""``ProducerStateEntry.NUM_BATCHES_TO_RETAIN``: batches per producer kept for duplicate
detection; why an idempotent producer allows at most 5 in-flight requests."""

MAX_SEQUENCE = (1 << 31) - 1
"""``Integer.MAX_VALUE``: the sequence after it is 0."""


def increment_sequence(sequence: int, increment: int) -> int:
    """``DefaultRecordBatch.incrementSequence``: ``sequence + increment``, wrapping to 0
    after ``Integer.MAX_VALUE``."""
    return (sequence + increment) % (MAX_SEQUENCE + 1)


def in_sequence(last_seq: int, next_seq: int) -> bool:
    """``ProducerAppendInfo.inSequence``: ``next_seq`` directly follows ``last_seq``."""
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == MAX_SEQUENCE)


@attrs.frozen(slots=True, cache_hash=True)
class BatchRecord(Record):
    """A record of an idempotent producer's batch, carrying the batch's ``base_sequence``
    (the first record's sequence, from the batch header) so the log keeps batch bounds."""

    base_sequence: int = NO_SEQUENCE


def batch_records(
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    values: Iterable[bytes],
    *,
    leader_epoch: int = 0,
    timestamp: int = 0,
) -> tuple[BatchRecord, ...]:
    """The records of one producer batch, sequences from ``base_sequence`` (wrapping)."""
    return tuple(
        BatchRecord(
            value=value,
            timestamp=timestamp,
            leader_epoch=leader_epoch,
            producer_id=producer_id,
            producer_epoch=producer_epoch,
            sequence=increment_sequence(base_sequence, i),
            base_sequence=base_sequence,
        )
        for i, value in enumerate(values)
    )


@attrs.frozen(slots=True)
class ProducerBatch:
    """A batch written by an idempotent producer: its header and where it is in the log."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int


@attrs.frozen(slots=True)
class BatchMetadata:
    """What the broker remembers of one batch (``BatchMetadata``)."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@attrs.frozen(slots=True)
class ProducerStateEntry:
    """One producer's state on a partition: its epoch and its last batches, oldest first."""

    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: tuple[BatchMetadata, ...] = ()

    @property
    def last_seq(self) -> int:
        """The last sequence appended in this epoch, or ``NO_SEQUENCE``."""
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    def add_batch(self, producer_epoch: int, batch: BatchMetadata) -> ProducerStateEntry:
        """``ProducerStateEntry.addBatch``: a new epoch forgets the old epoch's batches;
        only the last ``NUM_BATCHES_TO_RETAIN`` are kept."""
        kept = self.batches if producer_epoch == self.producer_epoch else ()
        return ProducerStateEntry(producer_epoch, (*kept, batch)[-NUM_BATCHES_TO_RETAIN:])

    def find_duplicate_batch(
        self, producer_epoch: int, first_seq: int, last_seq: int
    ) -> BatchMetadata | None:
        """``findDuplicateBatch``: the retained batch of this epoch with exactly this
        sequence range, if any."""
        if producer_epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None


ProducerStates = FrozenMap[int, ProducerStateEntry]
"""Producer id -> its state on one partition (``ProducerStateManager.producers``)."""

NO_PRODUCERS: ProducerStates = FrozenMap()


def append_batch(producers: ProducerStates, batch: ProducerBatch) -> ProducerStates:
    """The producer state after ``batch`` is appended (``ProducerStateManager.update``)."""
    entry = producers.get(batch.producer_id, ProducerStateEntry())
    meta = BatchMetadata(
        batch.base_sequence, batch.last_sequence, batch.base_offset, batch.last_offset
    )
    return producers.set(batch.producer_id, entry.add_batch(batch.producer_epoch, meta))


def log_batches(log: Log, from_offset: int = 0) -> tuple[ProducerBatch, ...]:
    """The idempotent producers' batches in ``log`` at or above ``from_offset``, in order.

    A batch is a run of records of one producer id and epoch with consecutive sequences
    and, for :class:`BatchRecord`, the same base sequence.  Records without a producer id
    belong to no producer batch.
    """
    out: list[ProducerBatch] = []
    cur: ProducerBatch | None = None
    cur_base: int | None = None
    for offset in range(max(from_offset, log.start_offset), log.end_offset):
        record = log.records[offset - log.start_offset]
        if record.producer_id == NO_PRODUCER_ID:
            cur, cur_base = None, None
            continue
        base = record.base_sequence if isinstance(record, BatchRecord) else None
        if (
            cur is not None
            and record.producer_id == cur.producer_id
            and record.producer_epoch == cur.producer_epoch
            and in_sequence(cur.last_sequence, record.sequence)
            and base == cur_base
        ):
            cur = attrs.evolve(cur, last_sequence=record.sequence, last_offset=offset)
            out[-1] = cur
            continue
        cur, cur_base = (
            ProducerBatch(
                record.producer_id,
                record.producer_epoch,
                record.sequence,
                record.sequence,
                offset,
                offset,
            ),
            base,
        )
        out.append(cur)
    return tuple(out)


@attrs.frozen(slots=True)
class ProducerSnapshot:
    """The producer state of the log below ``offset`` (Kafka's ``<offset>.snapshot``).

    It lets producer state outlive the records it came from: take one before deleting a
    log prefix, and :func:`producer_state` replays the log from ``offset`` onto it.
    """

    offset: int = 0
    producers: ProducerStates = NO_PRODUCERS

    def persisted(self) -> ProducerSnapshot:
        """What Kafka's snapshot file keeps: each producer's epoch and last batch only.

        A broker that restarts from a snapshot file can detect duplicates only of each
        producer's last batch below the snapshot offset; the in-memory state that this
        module models keeps all five.
        """
        return ProducerSnapshot(
            self.offset,
            FrozenMap(
                (pid, ProducerStateEntry(e.producer_epoch, e.batches[-1:]))
                for pid, e in self.producers.items()
            ),
        )


EMPTY_SNAPSHOT = ProducerSnapshot()


def producer_state(snapshot: ProducerSnapshot, log: Log) -> ProducerStates:
    """The producer state of ``log``: ``snapshot`` with the log's batches from the
    snapshot offset replayed onto it (as the broker rebuilds it on log recovery).

    A snapshot above the log end offset is from a suffix that truncation removed; Kafka
    deletes such snapshots, so the state is rebuilt from the log alone.  Records between
    the snapshot offset and the log start offset are gone and cannot be replayed.
    """
    if snapshot.offset > log.end_offset:
        snapshot = EMPTY_SNAPSHOT
    producers = snapshot.producers
    for batch in log_batches(log, snapshot.offset):
        producers = append_batch(producers, batch)
    return producers


def take_snapshot(snapshot: ProducerSnapshot, log: Log, offset: int) -> ProducerSnapshot:
    """A snapshot of ``log``'s producer state below ``offset``, to keep before
    ``log.delete_prefix(offset)``.  A batch that ``offset`` cuts is taken whole, so the
    snapshot may end past ``offset``; it never ends past the log end offset."""
    if snapshot.offset > log.end_offset:
        snapshot = EMPTY_SNAPSHOT
    offset = min(offset, log.end_offset)
    producers = snapshot.producers
    end = max(offset, snapshot.offset)
    for batch in log_batches(log, snapshot.offset):
        if batch.base_offset >= offset:
            break
        producers = append_batch(producers, batch)
        end = max(end, batch.last_offset + 1)
    return ProducerSnapshot(end, producers)


@attrs.frozen(slots=True)
class Append:
    """The batch is new and in sequence: the leader appends it at the log end offset."""


@attrs.frozen(slots=True)
class Duplicate:
    """A retry of one of the producer's last 5 batches: nothing is appended and the
    broker answers NONE with the offsets the batch got the first time."""

    base_offset: int
    last_offset: int


SequenceVerdict = Append | Duplicate | ErrorCode
"""Append, Duplicate, or the Kafka error the batch is rejected with (nothing appended)."""


def check_batch(
    producers: ProducerStates,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    record_count: int,
    *,
    kip_360: bool = True,
) -> SequenceVerdict:
    """The leader's verdict on a produce batch, given the partition's producer state.

    In Kafka's order:

    1. ``LogValidator``: a batch with a producer id and a negative base sequence, or no
       records, is INVALID_RECORD.  A batch without a producer id is not checked.
    2. ``findDuplicateBatch``: same epoch and exactly the sequence range of one of the
       last 5 batches: a duplicate.
    3. ``checkProducerEpoch``: an epoch older than the producer's is
       INVALID_PRODUCER_EPOCH.  (Brokers before 2.7 put ``ProducerFencedException`` on
       this same code 47; KIP-588 gave it ``InvalidProducerEpochException``, which the
       client can recover from, and a new code PRODUCER_FENCED (90) that only the
       transaction coordinator returns.  A produce request never gets 90.)
    4. ``checkSequence``: a newer epoch must start at sequence 0, else
       OUT_OF_ORDER_SEQUENCE_NUMBER.  In the current epoch the first sequence must follow
       the last one (``Integer.MAX_VALUE`` is followed by 0), else
       OUT_OF_ORDER_SEQUENCE_NUMBER: a gap, or a retry older than the 5 kept batches, or a
       range that overlaps a kept batch without matching it.
    5. A producer id the partition has no state for is accepted at any sequence: since
       KIP-360 the broker cannot tell a new producer from one whose state expired.
       ``kip_360=False`` models older brokers (0.11 to 2.4), which answered
       UNKNOWN_PRODUCER_ID unless the first sequence was 0.

    Transactional producers (KIP-890's rule that a producer with no state must start at
    0) are out of scope.
    """
    if producer_id == NO_PRODUCER_ID:
        return Append()
    if base_sequence < 0 or base_sequence > MAX_SEQUENCE or record_count < 1:
        return ErrorCode.INVALID_RECORD
    entry = producers.get(producer_id)
    if entry is None:
        if not kip_360 and base_sequence != 0:
            return ErrorCode.UNKNOWN_PRODUCER_ID
        return Append()
    last_sequence = increment_sequence(base_sequence, record_count - 1)
    duplicate = entry.find_duplicate_batch(producer_epoch, base_sequence, last_sequence)
    if duplicate is not None:
        return Duplicate(duplicate.first_offset, duplicate.last_offset)
    if producer_epoch < entry.producer_epoch:
        return ErrorCode.INVALID_PRODUCER_EPOCH
    if producer_epoch != entry.producer_epoch:
        if base_sequence != 0:
            return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
        return Append()
    if not in_sequence(entry.last_seq, base_sequence):
        return ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    return Append()


def check_sequence(
    log: Log,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
    record_count: int,
    *,
    snapshot: ProducerSnapshot = EMPTY_SNAPSHOT,
    kip_360: bool = True,
) -> SequenceVerdict:
    """The leader's verdict on a produce batch against its log (and the snapshot kept
    when a prefix of the log was deleted); see :func:`check_batch`."""
    return check_batch(
        producer_state(snapshot, log),
        producer_id,
        producer_epoch,
        base_sequence,
        record_count,
        kip_360=kip_360,
    )


@attrs.frozen(slots=True)
class ProducerIdState:
    """The cluster's producer id allocator (the ``/latest_producer_id_block`` znode,
    modelled as one counter rather than blocks of 1000 ids per broker)."""

    next_producer_id: int = 0


def init_producer_id(state: ProducerIdState) -> tuple[ProducerIdState, int, int]:
    """InitProducerId without a transactional id: a fresh producer id, epoch 0.

    An idempotent producer bumps its epoch itself afterwards (KIP-360), so the broker
    sees epochs above 0 without another InitProducerId.
    """
    pid = state.next_producer_id
    return ProducerIdState(pid + 1), pid, 0
