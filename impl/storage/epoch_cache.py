"""The leader-epoch cache (Kafka's ``LeaderEpochFileCache``): each leader epoch and the
first offset written in it, persisted in ``leader-epoch-checkpoint`` on every change.

It answers OffsetForLeaderEpoch (KIP-101, KIP-279) and follows the log through
truncation (from the end) and retention (from the start).
"""

from __future__ import annotations

import os

import attrs

from impl.storage import checkpoint

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


@attrs.frozen(slots=True)
class EpochEntry:
    """Leader ``epoch`` began at ``start_offset``."""

    epoch: int
    start_offset: int


class LeaderEpochCache:
    """Entries ordered by epoch and start offset, both increasing."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.entries: list[EpochEntry] = []

    @classmethod
    def load(cls, path: str) -> LeaderEpochCache:
        """The cache saved at ``path`` (empty when there is no file)."""
        cache = cls(path)
        raw = checkpoint.read_checkpoint(path, 2) or []
        cache.entries = [EpochEntry(e, o) for e, o in raw]
        return cache

    def flush(self) -> None:
        checkpoint.write_checkpoint(self.path, [(e.epoch, e.start_offset) for e in self.entries])

    @property
    def latest_epoch(self) -> int:
        return self.entries[-1].epoch if self.entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that ``epoch`` starts at ``start_offset`` (Kafka's ``assign``): nothing to
        do when it is the latest epoch already, starting no later; otherwise entries of
        this epoch or later, or starting at or after ``start_offset``, are replaced."""
        if epoch < 0 or start_offset < 0:
            return
        if self.entries:
            last = self.entries[-1]
            if epoch == last.epoch and start_offset >= last.start_offset:
                return
        while self.entries and (
            self.entries[-1].epoch >= epoch or self.entries[-1].start_offset >= start_offset
        ):
            self.entries.pop()
        self.entries.append(EpochEntry(epoch, start_offset))
        self.flush()

    def end_offset_for(self, requested: int, log_end_offset: int) -> tuple[int, int]:
        """OffsetForLeaderEpoch as the leader answers it: ``(epoch, end offset)``.

        The latest epoch ends at the log end offset; an earlier one at the start offset of
        the first larger epoch, returned with the largest epoch not above ``requested``
        (KIP-279).  A request below every cached epoch gets ``requested`` with the first
        epoch's start offset (Kafka does so: the data before it was deleted).  An undefined
        request, an empty cache, or one above the latest epoch: ``(-1, -1)``.
        """
        if requested == UNDEFINED_EPOCH or not self.entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested == self.latest_epoch:
            return requested, log_end_offset
        floor: EpochEntry | None = None
        for entry in self.entries:
            if entry.epoch > requested:
                if floor is None:
                    return requested, entry.start_offset
                return floor.epoch, entry.start_offset
            floor = entry
        return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop the entries starting at or after ``end_offset`` (the log was truncated)."""
        if end_offset < 0 or not self.entries or self.entries[-1].start_offset < end_offset:
            return
        self.entries = [e for e in self.entries if e.start_offset < end_offset]
        self.flush()

    def truncate_from_start(self, start_offset: int) -> None:
        """Drop the entries wholly below ``start_offset`` (retention); the entry covering it
        is moved up to start there."""
        covering = [e for e in self.entries if e.start_offset <= start_offset]
        if not covering or (len(covering) == 1 and covering[0].start_offset == start_offset):
            return
        rest = self.entries[len(covering) :]
        self.entries = [EpochEntry(covering[-1].epoch, start_offset), *rest]
        self.flush()

    def clear(self) -> None:
        self.entries = []
        self.flush()

    def delete(self) -> None:
        if os.path.exists(self.path):
            os.remove(self.path)
