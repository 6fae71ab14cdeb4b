"""Deliberately wrong versions of spec functions, for ``tests/spec/test_crosshair.py``.

Each mutant carries, verbatim, lines of the contract of the spec function it imitates
(``tests/spec/test_crosshair.py`` checks that they are the spec's own lines), and breaks
them the way a plausible bug would.  Each has a correct twin with the same contract that
defers to the spec, as a control: CrossHair must find a counterexample for every mutant
and none for any twin.  Parameters named ``self`` stand for the ``Log`` or ``Sticky``
whose method the contract belongs to, so that its lines read the same here.

Where CrossHair needs help to build relevant inputs, a mutant goes through a driver of
``tests.spec.crosshair_drivers`` (whose correct run is the twin): cluster transitions
with a known-bad variant of the model switched on (``spec.variants``, the spec's own
deliberately wrong functions), and truncation to the high watermark for a follower that
is merely behind.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from spec import partitioner
from spec.log import UNDEFINED_EPOCH_OFFSET, Log, Record
from spec.partitioner import Sticky
from spec.replication import truncation_offset
from spec.variants import Variant
from tests.spec.crosshair_drivers import check_election, check_high_watermark, check_truncation

# -- Log.append: offsets are contiguous -----------------------------------------------


def append_with_gap(self: Log, record: Record) -> Log:
    """Mutant of ``Log.append``: a filler record goes in first, so the record lands at
    LEO + 1 and a consumer sees an offset that was never produced.

    post: __return__.end_offset == self.end_offset + 1
    post: __return__.record_at(self.end_offset) == record
    """
    return attrs.evolve(self, records=(*self.records, Record(b""), record))


def append_twin(self: Log, record: Record) -> Log:
    """Control: ``Log.append`` itself.

    post: __return__.end_offset == self.end_offset + 1
    post: __return__.record_at(self.end_offset) == record
    """
    return self.append(record)


# -- Log.truncate_to: no leader-epoch cache entry survives at or past the LEO ------------


def truncate_to_keeping_empty_epoch(self: Log, offset: int) -> Log:
    """Mutant of ``Log.truncate_to``, as the spec had it before KAFKA-7415's rule: asked
    to truncate at or past the LEO it changes nothing, so an epoch that a former leader
    assigned but wrote nothing in stays in the cache at the LEO, and truncation by leader
    epoch asks about it again and again (it looped forever).

    pre: 0 <= self.start_offset
    pre: 0 <= self.recovery_point <= self.end_offset
    post: all(e.start_offset < __return__.end_offset for e in __return__.epochs)
    """
    if offset >= self.end_offset:
        return self
    return self.truncate_to(offset)


def truncate_to_twin(self: Log, offset: int) -> Log:
    """Control: ``Log.truncate_to`` itself.

    pre: 0 <= self.start_offset
    pre: 0 <= self.recovery_point <= self.end_offset
    post: all(e.start_offset < __return__.end_offset for e in __return__.epochs)
    """
    return self.truncate_to(offset)


# -- Log.delete_prefix: offsets are never reused --------------------------------------


def delete_prefix_past_leo(self: Log, new_start: int) -> Log:
    """Mutant of ``Log.delete_prefix``: retention is not capped at the LEO, so the log
    start offset (and with it the next offset appended) can jump past offsets never used,
    or a later truncation can hand out an offset twice.

    pre: 0 <= self.start_offset
    pre: all(a.epoch < b.epoch for a, b in zip(self.epochs, self.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(self.epochs, self.epochs[1:]))
    pre: self.epochs == () or self.epochs[0].epoch >= 0
    pre: self.epochs == () or self.epochs[0].start_offset >= self.start_offset
    pre: self.epochs == () or self.epochs[-1].start_offset <= self.end_offset
    post: __return__.end_offset == self.end_offset
    """
    if new_start <= self.start_offset:
        return self
    drop = new_start - self.start_offset
    return attrs.evolve(self, start_offset=new_start, records=self.records[drop:], epochs=())


def delete_prefix_twin(self: Log, new_start: int) -> Log:
    """Control: ``Log.delete_prefix`` itself.

    pre: 0 <= self.start_offset
    pre: all(a.epoch < b.epoch for a, b in zip(self.epochs, self.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(self.epochs, self.epochs[1:]))
    pre: self.epochs == () or self.epochs[0].epoch >= 0
    pre: self.epochs == () or self.epochs[0].start_offset >= self.start_offset
    pre: self.epochs == () or self.epochs[-1].start_offset <= self.end_offset
    post: __return__.end_offset == self.end_offset
    """
    return self.delete_prefix(new_start)


# -- replication.truncation_offset: a follower only ever cuts its log -----------------


def truncation_offset_unclipped(follower: Log, follower_hw: int, leader: Log) -> int:
    """Mutant of ``replication.truncation_offset``: the follower takes the leader's end
    offset for its latest epoch as is, without clipping it to its own LEO, and so
    "truncates" to an offset beyond its log (in Kafka: a fetch from an offset it never had).

    pre: follower.start_offset <= follower_hw <= follower.end_offset
    pre: 0 <= follower.start_offset
    pre: 0 <= follower.recovery_point <= follower.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: follower.epochs == () or follower.epochs[0].epoch >= 0
    pre: follower.epochs == () or follower.epochs[0].start_offset >= follower.start_offset
    pre: follower.epochs == () or follower.epochs[-1].start_offset <= follower.end_offset
    pre: 0 <= leader.start_offset
    pre: 0 <= leader.recovery_point <= leader.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: leader.epochs == () or leader.epochs[0].epoch >= 0
    pre: leader.epochs == () or leader.epochs[0].start_offset >= leader.start_offset
    pre: leader.epochs == () or leader.epochs[-1].start_offset <= leader.end_offset
    post: __return__ <= follower.end_offset
    """
    _epoch, end = leader.end_offset_for_epoch(follower.latest_epoch)
    if end == UNDEFINED_EPOCH_OFFSET:
        return min(follower_hw, follower.end_offset)
    return end


def truncation_offset_twin(follower: Log, follower_hw: int, leader: Log) -> int:
    """Control: ``replication.truncation_offset`` itself.

    pre: follower.start_offset <= follower_hw <= follower.end_offset
    pre: 0 <= follower.start_offset
    pre: 0 <= follower.recovery_point <= follower.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: follower.epochs == () or follower.epochs[0].epoch >= 0
    pre: follower.epochs == () or follower.epochs[0].start_offset >= follower.start_offset
    pre: follower.epochs == () or follower.epochs[-1].start_offset <= follower.end_offset
    pre: 0 <= leader.start_offset
    pre: 0 <= leader.recovery_point <= leader.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: leader.epochs == () or leader.epochs[0].epoch >= 0
    pre: leader.epochs == () or leader.epochs[0].start_offset >= leader.start_offset
    pre: leader.epochs == () or leader.epochs[-1].start_offset <= leader.end_offset
    post: __return__ <= follower.end_offset
    post: __return__ == follower.end_offset or not follower.epochs or follower != leader.truncate_to(follower.end_offset)
    """  # noqa: E501 (a contract is one line)
    return truncation_offset(follower, follower_hw, leader)


def truncation_offset_to_high_watermark(follower: Log, follower_hw: int, leader: Log) -> int:
    """Mutant of ``replication.truncation_offset``: Kafka before KIP-101 (the
    ``truncate-to-high-watermark`` variant): the follower cuts its log at its high
    watermark, and so drops records it shares with the leader whenever its high
    watermark lags its LEO, as it does after every fetch.

    pre: follower.start_offset <= follower_hw <= follower.end_offset
    pre: 0 <= follower.start_offset
    pre: 0 <= follower.recovery_point <= follower.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(follower.epochs, follower.epochs[1:]))
    pre: follower.epochs == () or follower.epochs[0].epoch >= 0
    pre: follower.epochs == () or follower.epochs[0].start_offset >= follower.start_offset
    pre: follower.epochs == () or follower.epochs[-1].start_offset <= follower.end_offset
    pre: 0 <= leader.start_offset
    pre: 0 <= leader.recovery_point <= leader.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: leader.epochs == () or leader.epochs[0].epoch >= 0
    pre: leader.epochs == () or leader.epochs[0].start_offset >= leader.start_offset
    pre: leader.epochs == () or leader.epochs[-1].start_offset <= leader.end_offset
    post: __return__ == follower.end_offset or not follower.epochs or follower != leader.truncate_to(follower.end_offset)
    """  # noqa: E501 (a contract is one line)
    return min(follower_hw, follower.end_offset)


def follower_behind_truncating_to_high_watermark(
    leader: Log, follower_leo: int, follower_hw: int
) -> tuple[str, ...]:
    """``crosshair_drivers.follower_behind`` with ``truncation_offset_to_high_watermark``.

    pre: 0 <= leader.start_offset
    pre: 0 <= leader.recovery_point <= leader.end_offset
    pre: all(a.epoch < b.epoch for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: all(a.start_offset <= b.start_offset for a, b in zip(leader.epochs, leader.epochs[1:]))
    pre: leader.epochs == () or leader.epochs[0].epoch >= 0
    pre: leader.epochs == () or leader.epochs[0].start_offset >= leader.start_offset
    pre: leader.epochs == () or leader.epochs[-1].start_offset <= leader.end_offset
    pre: leader.start_offset <= follower_hw <= follower_leo <= leader.end_offset
    post: __return__ == ()
    """
    return check_truncation(truncation_offset_to_high_watermark, leader, follower_leo, follower_hw)


# -- replication.partition_update: a clean election stays within the ISR --------------


def elect_leader_unclean_variant(
    registered: tuple[bool, bool, bool],
    assigned: tuple[bool, bool, bool],
    in_isr: tuple[bool, bool, bool],
    order: int,
    leader: int,
) -> tuple[str, ...]:
    """``crosshair_drivers.elect_leader`` with ``unclean-leader-election`` on and
    unclean.leader.election.enable off: a replica outside the ISR can be elected.

    pre: 0 <= order < 6
    pre: any(a and i for a, i in zip(assigned, in_isr))
    pre: leader == -1 or 0 <= leader < 3 and assigned[leader] and in_isr[leader]
    post: __return__ == ()
    """
    variants = frozenset({Variant.UNCLEAN_LEADER_ELECTION})
    return check_election(
        registered, assigned, in_isr, order, leader, unclean=False, variants=variants
    )


# -- replication.advance_high_watermark: the ISR has everything below it ----------------


def advance_hw_without_isr_variant(
    leader_leo: int,
    high_watermark: int,
    follower_leos: tuple[int, int],
    in_isr: tuple[bool, bool],
) -> tuple[str, ...]:
    """``crosshair_drivers.advance_hw`` with ``hw-advance-without-isr`` on: the high
    watermark goes to the leader's LEO whatever its ISR followers have.

    pre: 0 <= high_watermark <= leader_leo <= 4
    pre: all(-1 <= leo <= leader_leo for leo in follower_leos)
    post: __return__ == ()
    """
    variants = frozenset({Variant.HW_ADVANCE_WITHOUT_ISR})
    return check_high_watermark(
        leader_leo, high_watermark, follower_leos, in_isr, variants=variants
    )


# -- partitioner: Java's int semantics, the sticky partition moves on ------------------

# For the contract lines below, which name the partitioner's Java int bounds.
_INT32_MIN = partitioner._INT32_MIN
_INT32_MAX = partitioner._INT32_MAX


def to_positive_abs(n: int) -> int:
    """Mutant of ``partitioner.to_positive``: ``abs`` instead of clearing the sign bit
    (the Java client's partitioner once used ``Math.abs``, which is negative for
    ``Integer.MIN_VALUE``): keys hash to different partitions than Kafka's client puts them.

    pre: _INT32_MIN <= n <= _INT32_MAX
    post: __return__ == (n if n >= 0 else n + (1 << 31))
    """
    return abs(n)


def to_positive_twin(n: int) -> int:
    """Control: ``partitioner.to_positive`` itself.

    pre: _INT32_MIN <= n <= _INT32_MAX
    post: __return__ == (n if n >= 0 else n + (1 << 31))
    """
    return partitioner.to_positive(n)


def sticky_choices_keeping_old(
    self: Sticky,
    topic: str,
    num_partitions: int,
    prev_partition: int = -1,
    available: Sequence[int] = (),
) -> tuple[int, ...]:
    """Mutant of ``Sticky.choices``: with several partitions available, the old sticky
    partition stays a choice, so a producer can stick to the partition it just filled
    (KIP-480 picks another one).

    pre: num_partitions >= 1
    pre: len(set(available)) == len(available)
    pre: all(0 <= p < num_partitions for p in available)
    post: len(available) < 2 or self.current(topic) not in __return__
    """
    old = self.partitions.get(topic)
    if old is not None and old != prev_partition:
        return ()
    return tuple(available) if available else tuple(range(num_partitions))


def sticky_choices_twin(
    self: Sticky,
    topic: str,
    num_partitions: int,
    prev_partition: int = -1,
    available: Sequence[int] = (),
) -> tuple[int, ...]:
    """Control: ``Sticky.choices`` itself.

    pre: num_partitions >= 1
    pre: len(set(available)) == len(available)
    pre: all(0 <= p < num_partitions for p in available)
    post: len(available) < 2 or self.current(topic) not in __return__
    """
    return self.choices(topic, num_partitions, prev_partition, available)
