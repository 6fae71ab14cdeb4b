"""Named invariants of the cluster model, each a small predicate over a state.

Names follow the published Kafka TLA+ specifications where one exists (kafka-specification:
LeaderInIsr... WeakIsr, StrongIsr; kafka-tlaplus: LogMatching, LeaderCompleteness,
NoCommittedRecordLostGlobally, ConsistentRead); the rest are kafkaref's own.  Each
docstring says what a violation would mean to a Kafka user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from spec.state import NO_LEADER, ClusterState, Partition, Replica, TopicPartition

Invariant = Callable[[ClusterState], bool]


def _leaders(s: ClusterState) -> Iterator[tuple[TopicPartition, Partition, int, Replica]]:
    """Every (partition, broker) whose running replica presumes leadership."""
    for tp, part in s.partitions.items():
        for b, rep in part.replica.items():
            if s.is_up(b) and rep.presumes_leadership(b):
                yield tp, part, b, rep


def _same_below(leader: Replica, follower: Replica, upto: int) -> bool:
    """``follower`` holds every offset below ``upto`` and, where both logs still have
    them, the same records as ``leader``."""
    lo = max(leader.log.start_offset, follower.log.start_offset)
    return follower.log.end_offset >= upto and leader.log.read(lo, upto) == follower.log.read(
        lo, upto
    )


def leader_in_isr(s: ClusterState) -> bool:
    """LeaderInIsr: the leader ZooKeeper names is in the ISR ZooKeeper names.  Otherwise a
    broker that may miss committed records would be serving the partition."""
    return all(p.zk.leader == NO_LEADER or p.zk.leader in p.zk.isr for p in s.partitions.values())


def weak_isr(s: ClusterState) -> bool:
    """WeakIsr: every replica in a presumed leader's own view of the ISR holds exactly the
    leader's records below the leader's high watermark."""
    for _tp, part, _b, rep in _leaders(s):
        assert rep.known is not None
        for f in rep.known.isr:
            if not _same_below(rep, part.replica[f], rep.high_watermark):
                return False
    return True


def strong_isr(s: ClusterState) -> bool:
    """StrongIsr: every replica in the ISR that ZooKeeper holds (the one elections use)
    holds exactly a presumed leader's records below its high watermark, so whatever a
    consumer could read survives any clean election."""
    for _tp, part, _b, rep in _leaders(s):
        for f in part.zk.isr:
            if not _same_below(rep, part.replica[f], rep.high_watermark):
                return False
    return True


def log_matching(s: ClusterState) -> bool:
    """LogMatching: two replicas never hold different records at an offset that is below
    both their high watermarks: committed data is the same everywhere."""
    for part in s.partitions.values():
        reps = list(part.replica.values())
        for i, a in enumerate(reps):
            for b in reps[i + 1 :]:
                upto = min(a.high_watermark, b.high_watermark)
                lo = max(a.log.start_offset, b.log.start_offset)
                if a.log.read(lo, upto) != b.log.read(lo, upto):
                    return False
    return True


def leader_completeness(s: ClusterState) -> bool:
    """LeaderCompleteness: the true leader (the one ZooKeeper names, once it has taken up
    leadership in that epoch) holds every record acknowledged to an acks=all producer, at
    the offset it was acknowledged with."""
    for ack in s.acked:
        part = s.partitions.get(ack.tp)
        if part is None or part.zk.leader == NO_LEADER:
            continue
        rep = part.replica[part.zk.leader]
        if rep.known is None or rep.known.leader_epoch != part.zk.leader_epoch:
            continue
        if ack.offset >= rep.log.start_offset and rep.log.record_at(ack.offset) != ack.record:
            return False
    return True


def no_committed_record_lost_globally(s: ClusterState) -> bool:
    """NoCommittedRecordLostGlobally: every record acknowledged to an acks=all producer is
    still on some broker at its offset (or retention has deleted it): an acknowledged
    write is never lost while the cluster keeps one in-sync copy."""
    for ack in s.acked:
        part = s.partitions.get(ack.tp)
        if part is None:
            continue
        if not any(
            r.log.record_at(ack.offset) == ack.record or ack.offset < r.log.start_offset
            for r in part.replica.values()
        ):
            return False
    return True


def consistent_read(s: ClusterState) -> bool:
    """ConsistentRead: what a leader serves to consumers (below its high watermark) agrees
    with everything any leader has served before: a record once read is never replaced."""
    for tp, _part, _b, rep in _leaders(s):
        seen = s.exposed.get(tp, ())
        upto = min(rep.high_watermark, len(seen))
        lo = rep.log.start_offset
        if rep.log.read(lo, upto) != seen[lo:upto]:
            return False
    return True


def high_watermark_below_leo(s: ClusterState) -> bool:
    """HighWatermarkBelowLeo: no replica's high watermark passes its log end offset, nor
    falls below its log start offset."""
    return all(
        r.log.start_offset <= r.high_watermark <= r.log.end_offset
        for part in s.partitions.values()
        for r in part.replica.values()
    )


def offsets_contiguous(s: ClusterState) -> bool:
    """OffsetsContiguous: each log's leader-epoch cache grows in epoch and start offset within
    the log, and its records' leader epochs never decrease: offsets are handed out in order,
    once, and truncation and retention leave no holes."""
    for part in s.partitions.values():
        for r in part.replica.values():
            log = r.log
            starts = [e.start_offset for e in log.epochs]
            epochs = [e.epoch for e in log.epochs]
            if starts != sorted(starts) or epochs != sorted(set(epochs)):
                return False
            if any(not log.start_offset <= x <= log.end_offset for x in starts):
                return False
            rec_epochs = [rec.leader_epoch for rec in log.records]
            if rec_epochs != sorted(rec_epochs):
                return False
    return True


INVARIANTS: dict[str, Invariant] = {
    "LeaderInIsr": leader_in_isr,
    "WeakIsr": weak_isr,
    "StrongIsr": strong_isr,
    "LogMatching": log_matching,
    "LeaderCompleteness": leader_completeness,
    "NoCommittedRecordLostGlobally": no_committed_record_lost_globally,
    "ConsistentRead": consistent_read,
    "HighWatermarkBelowLeo": high_watermark_below_leo,
    "OffsetsContiguous": offsets_contiguous,
}


def violated(s: ClusterState) -> str | None:
    """The name of the first invariant ``s`` breaks, or None."""
    for name, inv in INVARIANTS.items():
        if not inv(s):
            return name
    return None
