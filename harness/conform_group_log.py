"""What of the group's ``__consumer_offsets`` writes a broker restart may lose.

The spec writes a group's records atomically, the moment a transition makes them (the
metadata record at SyncGroup, at a static member's rejoin, when a join round leaves the
group Empty; the offsets at OffsetCommit).  Kafka appends them in that order to the
group's ``__consumer_offsets`` partition, but answers some transitions before their
record is written: LeaveGroup, the generation bump that leaves a group Empty, any
transition whose store is still on its way.  A broker killed then may come back with or
without such a record.

So, per candidate, the oracle keeps the group as the partition's records give it
(:func:`image`, the spec's ``persisted``): ``durable``, what records certainly in the log
give, and ``pending``, the image after each later write in write order, each with the
slots whose answer Kafka sends only once that write is complete (an OffsetCommit that
stored some partition; the SyncGroup answers of the generation the leader's SyncGroup
stored; a static member's JoinGroup answered after its rejoin was stored).  Reading one
of those answers makes its write, and every write before it in the partition, durable
(:meth:`GroupWrites.acknowledge`).  A restart reloads the group from the durable image
extended by any prefix of the pending writes (:meth:`GroupWrites.images`): everything
acknowledged survives, the rest may or may not.  What was loaded is then in the log, so
it is the new durable image.

A step of the model that makes several writes at once (several timers due at one
instant) is taken as one write: with time standing still no step of the harness's
examples does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from harness.conform_group_ops import CommitAnswer, SyncAnswer
from spec.errors import ErrorCode
from spec.group_load import persisted
from spec.group_state import Group, JoinResponse


@attrs.frozen(slots=True)
class Write:
    """One write not known to be in the log: the group's image once it is, and the slots
    whose answers Kafka sends only after it is complete."""

    image: Group | None
    acks: frozenset[int] = frozenset()


@attrs.frozen(slots=True, cache_hash=True)
class GroupWrites:
    """The group's image as the records certainly in the log give it, and the writes
    that may or may not have reached the log since, in order."""

    durable: Group | None = None
    pending: tuple[Write, ...] = ()

    def images(self) -> tuple[Group | None, ...]:
        """Every image a restart may load: the durable one with any prefix of the
        pending writes (the last of the prefix decides: each image is the whole group)."""
        return tuple(dict.fromkeys((self.durable, *(w.image for w in self.pending))))

    def wrote(self, image: Group | None, acks: Iterable[int]) -> GroupWrites:
        """A write was made, giving ``image``; ``acks`` are answered once it is done."""
        return attrs.evolve(self, pending=(*self.pending, Write(image, frozenset(acks))))

    def acknowledge(self, slots: Iterable[int]) -> GroupWrites:
        """The answers of ``slots`` were read: the writes they waited for, and every
        write before those, are in the log."""
        read = frozenset(slots)
        last = max((i for i, w in enumerate(self.pending) if w.acks & read), default=None)
        if last is None:
            return self
        return GroupWrites(self.pending[last].image, self.pending[last + 1 :])


def image(group: Group | None) -> Group | None:
    """The group as its records give it (None: nothing of it in the log)."""
    return None if group is None else persisted(group)


def written(before: Group | None, after: Group | None) -> bool:
    """Whether a step that took the group from ``before`` to ``after`` wrote a group
    metadata record (a new stored record, even one equal to the last) or changed what
    the records give."""
    if before is not None and after is not None and before.stored is not after.stored:
        return True
    return image(before) != image(after)


def after_write_answers(produced: Mapping[int, Any]) -> set[int]:
    """The slots among ``produced`` (slot -> answer due, as the model has it) whose
    answers Kafka sends from a group store's callback: JoinGroup and SyncGroup success.
    (The only steps that both store and answer one of these with NONE are the leader's
    SyncGroup and a static member's rejoin to a Stable group.)"""
    out = set()
    for slot, raw in produced.items():
        if isinstance(raw, JoinResponse | SyncAnswer) and raw.error == ErrorCode.NONE:
            out.add(slot)
    return out


def commit_stored(answer: Any) -> bool:
    """Whether an OffsetCommit answered so wrote its offsets (some partition NONE)."""
    return isinstance(answer, CommitAnswer) and any(
        e == ErrorCode.NONE for _, e in answer.partitions
    )
