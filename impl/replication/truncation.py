"""Where a follower truncates its log, given the leader's OffsetForLeaderEpoch answer
(KIP-101, with KIP-279's rounds: when the leader answers with an epoch the follower does
not have, the follower cuts to its own end of the epoch below and asks again).

This is spec.replication.truncation_offset, one round at a time, on a PartitionLog."""

from __future__ import annotations

import attrs

from impl.storage.epoch_cache import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
from impl.storage.partition_log import PartitionLog


@attrs.frozen(slots=True)
class Truncation:
    """Cut the log at ``offset``; ``complete`` False: ask the leader again afterwards."""

    offset: int
    complete: bool


def truncation_for(
    log: PartitionLog, high_watermark: int, leader_epoch: int, leader_end_offset: int
) -> Truncation:
    """The follower's cut after the leader answered ``(leader_epoch, leader_end_offset)``
    for the follower's latest epoch.  With no epoch information the follower falls back to
    its high watermark; the cut is never past its log end offset."""
    leo = log.end_offset
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET:
        return Truncation(min(high_watermark, leo), True)
    if leader_epoch == UNDEFINED_EPOCH:
        return Truncation(min(leader_end_offset, leo), True)
    f_epoch, f_end = log.end_offset_for_epoch(leader_epoch)
    if f_end == UNDEFINED_EPOCH_OFFSET:
        return Truncation(min(leader_end_offset, leo), True)
    if f_epoch != leader_epoch and f_end < leo:
        # The follower lacks the leader's epoch: cut to its own end of the epoch below and
        # ask again with what is then its latest epoch.
        return Truncation(f_end, False)
    return Truncation(min(leader_end_offset, f_end, leo), True)
