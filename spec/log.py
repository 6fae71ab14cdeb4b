"""A partition replica's log: records at contiguous offsets, log start offset, leader-epoch cache.

Offsets are assigned contiguously from the log end offset (LEO) and never reused: retention
deletes a prefix by advancing the log start offset; truncation removes a suffix.  The
leader-epoch cache (Kafka's ``leader-epoch-checkpoint``) maps each leader epoch to the
first offset written in it; it drives truncation by leader epoch (KIP-101, KIP-279).
The recovery point is the offset below which the log is known flushed to disk.
"""

from __future__ import annotations

import attrs

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


@attrs.frozen(slots=True, cache_hash=True)
class Record:
    """One record as stored: key, value, timestamp, the batch's partition leader epoch,
    and the idempotent producer's id, epoch and sequence (``-1`` when not idempotent)."""

    value: bytes
    key: bytes | None = None
    timestamp: int = 0
    leader_epoch: int = 0
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    sequence: int = NO_SEQUENCE


@attrs.frozen(slots=True)
class EpochEntry:
    """A leader-epoch cache entry: leader ``epoch`` began at ``start_offset``."""

    epoch: int
    start_offset: int


@attrs.frozen(slots=True, cache_hash=True)
class Log:
    """The log of one replica.  ``records[i]`` is at offset ``start_offset + i``."""

    start_offset: int = 0
    records: tuple[Record, ...] = ()
    epochs: tuple[EpochEntry, ...] = ()
    recovery_point: int = 0

    @property
    def end_offset(self) -> int:
        """The log end offset (LEO): the offset the next appended record gets."""
        return self.start_offset + len(self.records)

    @property
    def latest_epoch(self) -> int:
        """The latest leader epoch in the cache, or ``UNDEFINED_EPOCH``."""
        return self.epochs[-1].epoch if self.epochs else UNDEFINED_EPOCH

    def record_at(self, offset: int) -> Record | None:
        """The record at ``offset``, or None when it is outside [start, end)."""
        if self.start_offset <= offset < self.end_offset:
            return self.records[offset - self.start_offset]
        return None

    def read(self, offset: int, upto: int) -> tuple[Record, ...]:
        """The records in [offset, upto), clipped to what the log holds.

        post: len(__return__) == max(0, min(upto, self.end_offset) - max(offset, self.start_offset))
        post: __return__[:1] in ((), (self.record_at(max(offset, self.start_offset)),))
        """
        lo = max(offset, self.start_offset) - self.start_offset
        hi = min(upto, self.end_offset) - self.start_offset
        return self.records[lo:hi] if hi > lo else ()

    def append(self, record: Record) -> Log:
        """Append ``record`` at the LEO; a new epoch in it starts a leader-epoch cache entry.

        Offsets are contiguous: the record gets the old LEO, the LEO grows by exactly one, and
        every record already in the log keeps its offset.

        post: __return__.end_offset == self.end_offset + 1
        post: __return__.record_at(self.end_offset) == record
        post: __return__.read(self.start_offset, self.end_offset) == self.records
        post: __return__.latest_epoch == max(self.latest_epoch, record.leader_epoch)
        """
        epochs = self.epochs
        if record.leader_epoch > self.latest_epoch:
            epochs = (*epochs, EpochEntry(record.leader_epoch, self.end_offset))
        return attrs.evolve(self, records=(*self.records, record), epochs=epochs)

    def assign_epoch(self, epoch: int) -> Log:
        """A new leader records that ``epoch`` starts at its LEO (KIP-101, KAFKA-7415).

        The records stay as they are; only the leader-epoch cache changes.

        pre: 0 <= self.start_offset
        pre: all(a.epoch < b.epoch for a, b in zip(self.epochs, self.epochs[1:]))
        pre: all(a.start_offset <= b.start_offset for a, b in zip(self.epochs, self.epochs[1:]))
        pre: self.epochs == () or self.epochs[0].epoch >= 0
        pre: self.epochs == () or self.epochs[0].start_offset >= self.start_offset
        pre: self.epochs == () or self.epochs[-1].start_offset <= self.end_offset
        post: __return__.records == self.records and __return__.start_offset == self.start_offset
        post: __return__.latest_epoch == max(self.latest_epoch, epoch)
        post: all(e.start_offset <= self.end_offset for e in __return__.epochs)
        post: all(a.epoch < b.epoch for a, b in zip(__return__.epochs, __return__.epochs[1:]))
        """
        if epoch <= self.latest_epoch:
            return self
        kept = tuple(e for e in self.epochs if e.start_offset < self.end_offset)
        return attrs.evolve(self, epochs=(*kept, EpochEntry(epoch, self.end_offset)))

    def truncate_to(self, offset: int) -> Log:
        """Remove every record at or above ``offset`` and the cache entries starting there.

        Asked to truncate at or past the LEO, it still drops cache entries that start at the
        LEO, as Kafka does (an epoch a leader assigned but wrote nothing in).

        Only a suffix goes: the LEO becomes ``offset`` (never below the log start offset, never
        above the old LEO), the records below it stay, the cache keeps a subset of its entries.

        pre: 0 <= self.start_offset
        pre: 0 <= self.recovery_point <= self.end_offset
        post: __return__.end_offset == max(self.start_offset, min(offset, self.end_offset))
        post: __return__.records == self.records[: __return__.end_offset - self.start_offset]
        post: set(__return__.epochs) <= set(self.epochs)
        post: all(e.start_offset < __return__.end_offset for e in __return__.epochs)
        post: __return__.recovery_point <= min(self.recovery_point, __return__.end_offset)
        """
        if offset >= self.end_offset:
            epochs = tuple(e for e in self.epochs if e.start_offset < self.end_offset)
            return self if len(epochs) == len(self.epochs) else attrs.evolve(self, epochs=epochs)
        if offset <= self.start_offset:
            return Log(
                start_offset=self.start_offset,
                recovery_point=min(self.recovery_point, self.start_offset),
            )
        keep = offset - self.start_offset
        epochs = tuple(e for e in self.epochs if e.start_offset < offset)
        return Log(
            start_offset=self.start_offset,
            records=self.records[:keep],
            epochs=epochs,
            recovery_point=min(self.recovery_point, offset),
        )

    def reset_to(self, offset: int) -> Log:
        """Drop everything and start an empty log at ``offset`` (a follower whose fetch
        offset fell below the leader's log start offset).

        post: __return__.start_offset == __return__.end_offset == offset
        """
        return Log(start_offset=offset, recovery_point=offset)

    def delete_prefix(self, new_start: int) -> Log:
        """Advance the log start offset to ``new_start`` (retention); offsets are not reused.

        The log start offset never moves back and never passes the LEO; the LEO stays; each
        record kept keeps its offset; the latest leader epoch is still known.

        pre: 0 <= self.start_offset
        pre: all(a.epoch < b.epoch for a, b in zip(self.epochs, self.epochs[1:]))
        pre: all(a.start_offset <= b.start_offset for a, b in zip(self.epochs, self.epochs[1:]))
        pre: self.epochs == () or self.epochs[0].epoch >= 0
        pre: self.epochs == () or self.epochs[0].start_offset >= self.start_offset
        pre: self.epochs == () or self.epochs[-1].start_offset <= self.end_offset
        post: __return__.start_offset == max(self.start_offset, min(new_start, self.end_offset))
        post: __return__.end_offset == self.end_offset
        post: __return__.records == self.records[__return__.start_offset - self.start_offset :]
        post: __return__.latest_epoch == self.latest_epoch
        post: all(e.start_offset >= __return__.start_offset for e in __return__.epochs)
        """
        if new_start <= self.start_offset:
            return self
        new_start = min(new_start, self.end_offset)
        drop = new_start - self.start_offset
        # The cache keeps the entry covering new_start, moved up to it.
        epochs: list[EpochEntry] = []
        for entry in self.epochs:
            if entry.start_offset <= new_start:
                epochs = [EpochEntry(entry.epoch, new_start)]
            else:
                epochs.append(entry)
        return attrs.evolve(
            self,
            start_offset=new_start,
            records=self.records[drop:],
            epochs=tuple(epochs),
            recovery_point=max(self.recovery_point, new_start),
        )

    def flush(self) -> Log:
        """Everything up to the LEO reaches disk: the recovery point moves to the LEO.

        post: __return__.recovery_point == __return__.end_offset == self.end_offset
        post: __return__.records == self.records
        """
        return attrs.evolve(self, recovery_point=self.end_offset)

    def end_offset_for_epoch(self, requested: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch as the leader answers it: ``(epoch, end_offset)``.

        The end offset of ``requested`` is the start offset of the first larger epoch in the
        cache, or the LEO when ``requested`` is the latest.  The returned epoch is the largest
        epoch not above ``requested`` (KIP-279).  When unknown:
        ``(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)``.

        The answer never lies beyond this log: the end offset is at most the LEO, and the
        epoch at most the one requested; an undefined epoch comes with an undefined offset.

        pre: 0 <= self.start_offset
        pre: all(a.epoch < b.epoch for a, b in zip(self.epochs, self.epochs[1:]))
        pre: all(a.start_offset <= b.start_offset for a, b in zip(self.epochs, self.epochs[1:]))
        pre: self.epochs == () or self.epochs[0].epoch >= 0
        pre: self.epochs == () or self.epochs[0].start_offset >= self.start_offset
        pre: self.epochs == () or self.epochs[-1].start_offset <= self.end_offset
        pre: requested >= UNDEFINED_EPOCH
        post: __return__[1] <= self.end_offset
        post: __return__[0] <= requested
        post: (__return__[0] == UNDEFINED_EPOCH) == (__return__[1] == UNDEFINED_EPOCH_OFFSET)
        """
        if requested == UNDEFINED_EPOCH or not self.epochs:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested == self.latest_epoch:
            return requested, self.end_offset
        higher = next((e for e in self.epochs if e.epoch > requested), None)
        if higher is None:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        floor = [e for e in self.epochs if e.epoch <= requested]
        if not floor:
            return requested, higher.start_offset
        return floor[-1].epoch, higher.start_offset
