"""CrossHair drivers: the contracts of spec functions, on inputs built to be relevant.

CrossHair checks the PEP 316 contracts (``pre:``/``post:`` docstring lines) of the spec's
pure helpers directly (``spec.log``, ``spec.partitioner``, ...).  It cannot do that for a
function of a whole ``ClusterState``: a symbolic cluster is a tree of attrs classes and
``FrozenMap``s that it explores far too thinly (even with ``.ci/crosshair_plugin.py``, a
planted leader-outside-the-ISR bug in ``partition_update`` went unfound for 30 s).  And
some contracts speak of inputs CrossHair seldom builds on its own (two logs that agree).

So each driver here takes a few small symbolic values (which brokers are registered; a
partition's replicas, ISR and leader; log end offsets), builds the input from them, calls
the spec function, and returns the lines of that function's own docstring contract that
the call breaks.  CrossHair checks each driver's one postcondition, ``__return__ == ()``;
a counterexample names the small inputs and the broken contract lines.

* ``elect_leader``: ``replication.partition_update`` on a partition of three brokers;
* ``advance_hw``: ``replication.advance_high_watermark``, plus the driver's own check that
  a high watermark that moves stays within every ISR member's log end offset;
* ``follower_behind``: ``replication.truncation_offset`` for a follower whose log is the
  leader's cut at its LEO.

``.ci/crosshair-targets`` lists this module; ``tests/spec/test_crosshair.py`` runs the
same drivers with known-bad variants of the model (``spec.variants``) or a wrong function
and expects CrossHair to find the broken contract.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import re
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, TypeVar, cast

from crosshair.condition_parser import NoEnforce

from spec.config import SpecConfig
from spec.fmap import FrozenMap
from spec.log import EpochEntry, Log, Record
from spec.replication import advance_high_watermark, partition_update, truncation_offset
from spec.state import (
    Broker,
    ClusterState,
    FollowerProgress,
    Partition,
    Replica,
    TopicPartition,
    ZkPartitionState,
)
from spec.variants import Variant


class _PrehashedTopicPartition(TopicPartition):
    """A ``TopicPartition`` whose hash is computed once, at import.  Its attrs ``__hash__``
    calls the builtin ``hash()``, which CrossHair sometimes models by a symbolic int that
    Python's dict refuses ("__hash__ method should return an integer"): every path that
    put the partition in a map would be lost."""

    __slots__ = ()

    def __hash__(self) -> int:
        return _TP_HASH


_TP_HASH = hash(TopicPartition("t", 0))
TP: TopicPartition = _PrehashedTopicPartition("t", 0)
NO_VARIANTS: frozenset[Variant] = frozenset()

# A PEP 316 condition written on one line (``pre: EXPR`` / ``post: EXPR``), as the spec
# writes them.
_CONDITION = re.compile(r"^\s*(pre|post):\s*(\S.*?)\s*$")

Condition = tuple[str, CodeType]
_R = TypeVar("_R")


@functools.cache
def contract(fn: Callable[..., Any]) -> tuple[tuple[Condition, ...], tuple[Condition, ...]]:
    """The ``pre:`` and ``post:`` lines of ``fn``'s docstring, compiled."""
    pre: list[Condition] = []
    post: list[Condition] = []
    for line in (inspect.getdoc(fn) or "").splitlines():
        m = _CONDITION.match(line)
        if m:
            kind, source = m.groups()
            (pre if kind == "pre" else post).append((source, compile(source, fn.__name__, "eval")))
    return tuple(pre), tuple(post)


def _holds(fn: Callable[..., Any], code: CodeType, bindings: Mapping[str, object]) -> bool:
    return bool(eval(code, {**fn.__globals__, **bindings}))


def unenforced(fn: Callable[..., _R]) -> Callable[..., _R]:
    """``fn`` with its contract not enforced when called under CrossHair.  CrossHair checks
    the contract of a function called during an analysis, and drops a path on which its
    postcondition fails (as "to be surfaced in the callee"): exactly the paths a driver is
    after."""
    return cast("Callable[..., _R]", NoEnforce(fn))  # type: ignore[no-untyped-call]


def broken_contract(fn: Callable[..., Any], **args: object) -> tuple[str, ...]:
    """Call ``fn(**args)`` and return the lines of its contract the call breaks: its
    unmet preconditions (then ``fn`` is not called), else its false postconditions."""
    pre, post = contract(fn)
    unmet = tuple(f"pre: {src}" for src, code in pre if not _holds(fn, code, args))
    if unmet:
        return unmet
    result = unenforced(fn)(**args)
    bindings = {**args, "__return__": result}
    return tuple(f"post: {src}" for src, code in post if not _holds(fn, code, bindings))


def cluster(
    registered: tuple[bool, ...],
    part: Partition,
    *,
    unclean: bool = False,
    variants: frozenset[Variant] = NO_VARIANTS,
) -> ClusterState:
    """Brokers ``0..len(registered)-1`` (registered or not) with one partition, ``TP``."""
    return ClusterState(
        config=SpecConfig(unclean_leader_election_enable=unclean, variants=variants),
        brokers=FrozenMap((b, Broker(registered=r)) for b, r in enumerate(registered)),
        controller=0,
        controller_epoch=1,
        topics=FrozenMap({TP.topic: (part.replicas,)}),
        partitions=FrozenMap({TP: part}),
    )


# The six assignment orders of brokers 0, 1, 2 (the election takes the first live ISR
# member in assignment order).
ORDERS = tuple(itertools.permutations(range(3)))


def check_election(
    registered: tuple[bool, bool, bool],
    assigned: tuple[bool, bool, bool],
    in_isr: tuple[bool, bool, bool],
    order: int,
    leader: int,
    *,
    unclean: bool,
    variants: frozenset[Variant],
) -> tuple[str, ...]:
    """``partition_update``'s broken contract lines for one partition of brokers 0, 1, 2:
    the ``assigned`` brokers in ``ORDERS[order]`` are its replicas, those also ``in_isr``
    its ISR, and ``leader`` (-1: none) its leader, in leader epoch 0."""
    replicas = tuple(b for b in ORDERS[order] if assigned[b])
    isr = frozenset(b for b in replicas if in_isr[b])
    zk = ZkPartitionState(leader, 0, isr, controller_epoch=1)
    part = Partition(replicas, zk, FrozenMap((r, Replica()) for r in replicas))
    s = cluster(registered, part, unclean=unclean, variants=variants)
    return broken_contract(partition_update, s=s, tp=TP)


def elect_leader(
    registered: tuple[bool, bool, bool],
    assigned: tuple[bool, bool, bool],
    in_isr: tuple[bool, bool, bool],
    order: int,
    leader: int,
    *,
    unclean: bool,
) -> tuple[str, ...]:
    """The controller's leader election and ISR update (``partition_update``) for a
    partition of a three-broker cluster, with unclean election on or off.

    pre: 0 <= order < 6
    pre: any(a and i for a, i in zip(assigned, in_isr))
    pre: leader == -1 or 0 <= leader < 3 and assigned[leader] and in_isr[leader]
    post: __return__ == ()
    """
    return check_election(
        registered, assigned, in_isr, order, leader, unclean=unclean, variants=NO_VARIANTS
    )


def _log(end_offset: int) -> Log:
    """A log of ``end_offset`` records, all written in leader epoch 0."""
    records = tuple(Record(b"", leader_epoch=0) for _ in range(end_offset))
    return Log(records=records, epochs=(EpochEntry(0, 0),) if records else ())


def check_high_watermark(
    leader_leo: int,
    high_watermark: int,
    follower_leos: tuple[int, int],
    in_isr: tuple[bool, bool],
    *,
    variants: frozenset[Variant],
) -> tuple[str, ...]:
    """``advance_high_watermark``'s broken contract lines, for leader 0 of a partition on
    brokers 0, 1, 2 whose followers last fetched at ``follower_leos``; and, the driver's
    own check: a high watermark that moves stays at or below every ISR member's LEO."""
    followers = (1, 2)
    isr = frozenset({0} | {f for f, member in zip(followers, in_isr, strict=True) if member})
    zk = ZkPartitionState(0, 1, isr, controller_epoch=1)
    lead = Replica(
        log=_log(leader_leo),
        high_watermark=high_watermark,
        known=zk,
        followers=FrozenMap(
            (f, FollowerProgress(leo)) for f, leo in zip(followers, follower_leos, strict=True)
        ),
    )
    replicas = FrozenMap({0: lead, 1: Replica(), 2: Replica()})
    s = cluster((True, True, True), Partition((0, 1, 2), zk, replicas), variants=variants)
    broken = broken_contract(advance_high_watermark, s=s, tp=TP, leader=0)
    after = unenforced(advance_high_watermark)(s, TP, 0).replica(TP, 0)
    assert after is not None
    if after.high_watermark > high_watermark and any(
        after.high_watermark > leo
        for f, leo in zip(followers, follower_leos, strict=True)
        if f in isr
    ):
        broken += ("driver: the high watermark moved past an ISR member's log end offset",)
    return broken


def advance_hw(
    leader_leo: int,
    high_watermark: int,
    follower_leos: tuple[int, int],
    in_isr: tuple[bool, bool],
) -> tuple[str, ...]:
    """The leader's high watermark after a follower's progress (``advance_high_watermark``),
    with logs of up to four records.

    pre: 0 <= high_watermark <= leader_leo <= 4
    pre: all(-1 <= leo <= leader_leo for leo in follower_leos)
    post: __return__ == ()
    """
    return check_high_watermark(
        leader_leo, high_watermark, follower_leos, in_isr, variants=NO_VARIANTS
    )


def check_truncation(
    truncation: Callable[[Log, int, Log], int], leader: Log, follower_leo: int, follower_hw: int
) -> tuple[str, ...]:
    """``truncation``'s broken contract lines (``replication.truncation_offset``'s) for a
    follower that is merely behind: its log is ``leader``'s cut at ``follower_leo``."""
    follower = leader.truncate_to(follower_leo)
    return broken_contract(truncation, follower=follower, follower_hw=follower_hw, leader=leader)


def follower_behind(leader: Log, follower_leo: int, follower_hw: int) -> tuple[str, ...]:
    """Truncation by leader epoch (``truncation_offset``) for a follower that has all of
    the leader's log up to its LEO: it must keep all of it.  (CrossHair, given the two
    logs separately, seldom makes them agree.)

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
    return check_truncation(truncation_offset, leader, follower_leo, follower_hw)
