"""The producer's default partitioner: which partition a record goes to.

This module owns the client-side choice of a partition for a record sent without an
explicit partition, exactly as Kafka's Java client computes it:

* a record with a key goes to ``toPositive(murmur2(key)) % numPartitions``
  (``org.apache.kafka.common.utils.Utils.murmur2`` / ``toPositive``);
* a record without a key goes round robin (``RoundRobinPartitioner``, and the
  ``DefaultPartitioner`` before Kafka 2.4) or sticky (KIP-480, the ``DefaultPartitioner``
  of Kafka 2.4 to 3.2: one partition per topic until a batch is completed).

Kafka 3.3's built-in partitioner (KIP-794) keeps the murmur2 rule for keys but switches the
sticky partition after ``batch.size`` bytes, weighted by broker load; that adaptive
behaviour is not modelled here.

The spec has no randomness.  Where the Java client draws a random number (the new sticky
partition), the caller passes the choice in: :meth:`Sticky.choices` lists every partition
the client could pick, and :meth:`Sticky.partition` / :meth:`Sticky.on_new_batch` check
that the choice is one of them.  An explorer branches over all choices; a test draws one.

These are client computations, not broker transitions: no Kafka error code exists for a
violated precondition (no partitions, a choice the client could not make), so those raise
``ValueError`` — a bug in the caller, never an outcome a client observes.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from spec.fmap import FrozenMap

MURMUR2_SEED = 0x9747B28C
MURMUR2_M = 0x5BD1E995
MURMUR2_R = 24

_UINT32 = 0xFFFFFFFF
_INT32_MIN = -(1 << 31)
_INT32_MAX = (1 << 31) - 1


def _to_int32(n: int) -> int:
    """``n`` as a Java ``int``: the low 32 bits, two's complement.

    post: _INT32_MIN <= __return__ <= _INT32_MAX
    post: (__return__ - n) % (1 << 32) == 0
    """
    n &= _UINT32
    return n - (1 << 32) if n > _INT32_MAX else n


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2``: the 32-bit MurmurHash2 of ``data`` as a signed Java int.

    Seed ``0x9747b28c``, ``m = 0x5bd1e995``, ``r = 24``; the input is read in little-endian
    4-byte words, the 1-3 trailing bytes are folded in last.  Java's ``int`` arithmetic
    wraps modulo 2**32, so the computation is done on unsigned 32-bit values (where
    Java's ``>>>`` is a plain shift) and the result is reinterpreted as signed.

    post: _INT32_MIN <= __return__ <= _INT32_MAX
    """
    length = len(data)
    h = (MURMUR2_SEED ^ length) & _UINT32
    whole = length & ~3
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * MURMUR2_M) & _UINT32
        k ^= k >> MURMUR2_R
        k = (k * MURMUR2_M) & _UINT32
        h = (h * MURMUR2_M) & _UINT32
        h ^= k
    if length & 3:
        # Java's switch falls through: byte 2 << 16, byte 1 << 8, byte 0, then h *= m.
        h ^= int.from_bytes(data[whole:], "little")
        h = (h * MURMUR2_M) & _UINT32
    h ^= h >> 13
    h = (h * MURMUR2_M) & _UINT32
    h ^= h >> 15
    return _to_int32(h)


def to_positive(n: int) -> int:
    """Kafka's ``Utils.toPositive``: clear the sign bit (``n & 0x7fffffff``), not ``abs``.

    A negative Java ``int`` maps to itself plus 2**31 (``abs`` would overflow on -2**31).

    pre: _INT32_MIN <= n <= _INT32_MAX
    post: __return__ == (n if n >= 0 else n + (1 << 31))
    """
    return n & 0x7FFFFFFF


def _check_num_partitions(num_partitions: int) -> None:
    if num_partitions < 1:
        raise ValueError(f"a topic has at least one partition, got {num_partitions}")


def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition of a record with ``key``: ``toPositive(murmur2(key)) % numPartitions``.

    An empty key is a key (the Java client hashes ``new byte[0]``); only a null key
    takes the round-robin or sticky path.

    pre: num_partitions >= 1
    post: 0 <= __return__ < num_partitions
    """
    _check_num_partitions(num_partitions)
    return to_positive(murmur2(key)) % num_partitions


def _check_available(available: Sequence[int], num_partitions: int) -> None:
    if len(set(available)) != len(available):
        raise ValueError(f"available partitions repeat: {tuple(available)}")
    bad = [p for p in available if not 0 <= p < num_partitions]
    if bad:
        raise ValueError(f"available partitions {bad} are not in [0, {num_partitions})")


@attrs.frozen(slots=True)
class RoundRobin:
    """``RoundRobinPartitioner``: a counter per topic, starting at 0, one step per record.

    The record takes ``available[toPositive(counter) % len(available)]`` when some
    partitions of the topic are available (have a leader), else
    ``toPositive(counter) % numPartitions``.  The counter is a Java ``int``: it wraps.
    (The pre-2.4 ``DefaultPartitioner`` did the same from a random starting counter.)
    """

    counters: FrozenMap[str, int] = attrs.field(factory=FrozenMap)

    def next(
        self, topic: str, num_partitions: int, available: Sequence[int] = ()
    ) -> tuple[int, RoundRobin]:
        """The partition of the next keyless record to ``topic``, and the state after it.

        ``available`` lists the topic's available partitions in metadata order; empty
        means none is known available and every partition is eligible.

        pre: num_partitions >= 1
        pre: len(set(available)) == len(available)
        pre: all(0 <= p < num_partitions for p in available)
        pre: _INT32_MIN <= self.counters.get(topic, 0) <= _INT32_MAX
        post: 0 <= __return__[0] < num_partitions
        post: not available or __return__[0] in available
        post: __return__[1].counters[topic] == _to_int32(self.counters.get(topic, 0) + 1)
        """
        _check_num_partitions(num_partitions)
        _check_available(available, num_partitions)
        counter = self.counters.get(topic, 0)
        nxt = RoundRobin(self.counters.set(topic, _to_int32(counter + 1)))
        if available:
            return available[to_positive(counter) % len(available)], nxt
        return to_positive(counter) % num_partitions, nxt


@attrs.frozen(slots=True)
class Sticky:
    """KIP-480's ``StickyPartitionCache``: the sticky partition of each topic.

    A keyless record goes to its topic's sticky partition; the first one picks it.  When
    the producer has to open a new batch for a partition (``onNewBatch``), and that
    partition is the topic's sticky partition, a new sticky partition is picked.
    """

    partitions: FrozenMap[str, int] = attrs.field(factory=FrozenMap)

    def current(self, topic: str) -> int | None:
        """The sticky partition of ``topic``, or None before the first keyless record."""
        return self.partitions.get(topic)

    def choices(
        self,
        topic: str,
        num_partitions: int,
        prev_partition: int = -1,
        available: Sequence[int] = (),
    ) -> tuple[int, ...]:
        """Every partition the Java client could pick as the new sticky partition.

        Empty when no pick happens: the topic has a sticky partition and it is not
        ``prev_partition`` (the partition whose batch was completed; -1 for none).
        Otherwise, as ``StickyPartitionCache.nextPartition``: with no available
        partition, any partition (the old one included); with one, that one; with more,
        any available partition except the old sticky one.

        pre: num_partitions >= 1
        pre: len(set(available)) == len(available)
        pre: all(0 <= p < num_partitions for p in available)
        post: all(0 <= p < num_partitions for p in __return__)
        post: (__return__ == ()) == (self.current(topic) not in (None, prev_partition))
        post: not available or set(__return__) <= set(available)
        post: len(available) < 2 or self.current(topic) not in __return__
        """
        _check_num_partitions(num_partitions)
        _check_available(available, num_partitions)
        old = self.partitions.get(topic)
        if old is not None and old != prev_partition:
            return ()
        if not available:
            return tuple(range(num_partitions))
        if len(available) == 1:
            return (available[0],)
        return tuple(p for p in available if p != old)

    def _pick(
        self,
        topic: str,
        num_partitions: int,
        prev_partition: int,
        choice: int | None,
        available: Sequence[int],
    ) -> Sticky:
        allowed = self.choices(topic, num_partitions, prev_partition, available)
        if not allowed:
            return self
        if choice is None or choice not in allowed:
            raise ValueError(
                f"the client cannot pick {choice} as the sticky partition of {topic!r}; "
                f"it picks one of {allowed}"
            )
        return Sticky(self.partitions.set(topic, choice))

    def partition(
        self,
        topic: str,
        num_partitions: int,
        choice: int | None = None,
        available: Sequence[int] = (),
    ) -> tuple[int, Sticky]:
        """The partition of a keyless record to ``topic``, and the state after it.

        The topic's sticky partition if it has one (``choice`` is then ignored), else
        ``choice``, which must be one of :meth:`choices` for ``prev_partition=-1``.

        raises: ValueError
        pre: num_partitions >= 1
        pre: len(set(available)) == len(available)
        pre: all(0 <= p < num_partitions for p in available)
        pre: 0 <= self.partitions.get(topic, 0) < num_partitions
        post: 0 <= __return__[0] < num_partitions
        post: __return__[0] == __return__[1].current(topic)
        post: self.current(topic) in (None, __return__[0])
        """
        nxt = self._pick(topic, num_partitions, -1, choice, available)
        return nxt.partitions[topic], nxt

    def on_new_batch(
        self,
        topic: str,
        num_partitions: int,
        prev_partition: int,
        choice: int | None = None,
        available: Sequence[int] = (),
    ) -> Sticky:
        """The producer opened a new batch for ``prev_partition`` (``onNewBatch``).

        If that is the topic's sticky partition (or the topic has none), the new sticky
        partition is ``choice``, which must be one of :meth:`choices`; otherwise nothing
        changes and ``choice`` is ignored.
        """
        return self._pick(topic, num_partitions, prev_partition, choice, available)
