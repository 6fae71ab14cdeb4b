"""Replication of a partition: the controller's leader election and ISR updates, LeaderAndIsr
delivery, follower fetch with truncation by leader epoch, ISR shrink and expand, and the
high watermark.

Rules, by their sources: clean election takes the first live ISR member in assignment
order (Kafka's ``OfflinePartitionLeaderElectionStrategy``); controller-driven changes bump
the leader epoch and the znode version, leader-driven ISR changes are conditional writes
on the znode version; a follower truncates by leader epoch before fetching in a new epoch
(KIP-101, with KIP-279's epoch-aware answer); fetches are fenced by the current leader
epoch (KIP-320); the ISR grows only with a follower that has reached the high watermark
and the start of the leader's epoch; the high watermark is the minimum log end offset over
the ISR.
"""

from __future__ import annotations

import attrs

from spec.actions import (
    ApplyLeaderAndIsr,
    ControllerUpdatePartition,
    ElectController,
    ExpandIsr,
    FollowerFetch,
    ShrinkIsr,
)
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.idempotence import take_snapshot
from spec.log import UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, Log
from spec.outcome import Ok, Outcome, Rejected
from spec.state import (
    NO_LEADER,
    ClusterState,
    FollowerProgress,
    Partition,
    Replica,
    TopicPartition,
    ZkPartitionState,
)
from spec.variants import Variant

Step = Outcome[ClusterState, None]


def elect_controller(s: ClusterState, a: ElectController) -> Step:
    """The first registered broker to create /controller becomes controller, with the next
    controller epoch."""
    if s.controller != NO_LEADER and s.is_live(s.controller):
        return Rejected(s, ErrorCode.NOT_CONTROLLER)
    if not s.is_live(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    return Ok(attrs.evolve(s, controller=a.broker, controller_epoch=s.controller_epoch + 1), None)


def partition_update(s: ClusterState, tp: TopicPartition) -> ZkPartitionState | None:
    """The partition state the controller would write for ``tp`` now, or None if nothing
    needs to change.

    Unregistered brokers leave the ISR (the last member stays, so that it can be elected
    cleanly when it returns); a leader that is gone is replaced by the first live ISR
    member in assignment order; with no such member the partition goes offline, unless
    unclean leader election lets any live assigned replica lead.

    The new leader is live and in the new ISR (LeaderInIsr); the ISR only shrinks, except
    that an unclean election (only when unclean.leader.election.enable is on) makes the
    new leader its only member; every change bumps the leader epoch.

    pre: tp in s.partitions
    pre: s.partitions[tp].zk.isr and s.partitions[tp].zk.isr <= set(s.partitions[tp].replicas)
    pre: s.partitions[tp].zk.leader in s.partitions[tp].zk.isr | {NO_LEADER}
    post: __return__ is None or __return__.leader in __return__.isr | {NO_LEADER}
    post: __return__ is None or __return__.leader == NO_LEADER or s.is_live(__return__.leader)
    post: __return__ is None or __return__.isr <= s.partitions[tp].zk.isr or s.config.unclean_leader_election_enable
    post: __return__ is None or __return__.leader_epoch == s.partitions[tp].zk.leader_epoch + 1
    """  # noqa: E501 (a contract is one line)
    part = s.partitions[tp]
    zk = part.zk
    live_isr = frozenset(r for r in zk.isr if s.is_live(r))
    isr = live_isr if live_isr else zk.isr
    if zk.leader != NO_LEADER and s.is_live(zk.leader):
        leader = zk.leader
    else:
        leader = next((r for r in part.replicas if r in live_isr), NO_LEADER)
        unclean = s.config.unclean_leader_election_enable or s.config.has(
            Variant.UNCLEAN_LEADER_ELECTION
        )
        if leader == NO_LEADER and unclean:
            leader = next((r for r in part.replicas if s.is_live(r)), NO_LEADER)
            if leader != NO_LEADER:
                isr = frozenset({leader})
    if leader == zk.leader and isr == zk.isr:
        return None
    return ZkPartitionState(
        leader=leader,
        leader_epoch=zk.leader_epoch + 1,
        isr=isr,
        controller_epoch=s.controller_epoch,
        version=zk.version + 1,
    )


def controller_update_partition(s: ClusterState, a: ControllerUpdatePartition) -> Step:
    """The controller writes the new leader and ISR of ``a.tp`` (fenced by its epoch)."""
    if s.controller == NO_LEADER or not s.is_live(s.controller):
        return Rejected(s, ErrorCode.NOT_CONTROLLER)
    if a.tp not in s.partitions:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    new = partition_update(s, a.tp)
    if new is None:
        return Rejected(s, ErrorCode.ELECTION_NOT_NEEDED)
    return Ok(s.with_partition(a.tp, attrs.evolve(s.partitions[a.tp], zk=new)), None)


def apply_leader_and_isr(s: ClusterState, a: ApplyLeaderAndIsr) -> Step:
    """A live broker learns the current partition state from the controller and becomes
    leader (recording the new epoch's start offset, forgetting its followers' progress) or
    follower (to truncate by leader epoch before it fetches).  Delayed produces of a broker
    that stops leading fail with NOT_LEADER_OR_FOLLOWER."""
    if s.controller == NO_LEADER or not s.is_live(s.controller):
        return Rejected(s, ErrorCode.NOT_CONTROLLER)
    part = s.partitions.get(a.tp)
    if part is None or a.broker not in part.replica:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if not s.is_live(a.broker) or not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    rep = part.replica[a.broker]
    zk = part.zk
    if rep.known is not None and rep.known.leader_epoch >= zk.leader_epoch:
        return Rejected(s, ErrorCode.STALE_CONTROLLER_EPOCH)
    if zk.leader == a.broker:
        rep = Replica(
            log=rep.log.assign_epoch(zk.leader_epoch),
            high_watermark=rep.high_watermark,
            known=zk,
            truncated=True,
            followers=FrozenMap(
                (r, FollowerProgress(last_caught_up_ms=s.now))
                for r in part.replicas
                if r != a.broker
            ),
            producers=rep.producers,
        )
        return Ok(s.with_replica(a.tp, a.broker, rep), None)
    if s.config.has(Variant.TRUNCATE_TO_HIGH_WATERMARK):
        log = rep.log.truncate_to(rep.high_watermark)
        hw = min(rep.high_watermark, log.end_offset)
        rep = Replica(log=log, high_watermark=hw, known=zk, producers=rep.producers)
    else:
        rep = Replica(
            log=rep.log,
            high_watermark=rep.high_watermark,
            known=zk,
            truncated=False,
            producers=rep.producers,
        )
    # Its delayed produces stay pending only to be answered NOT_LEADER_OR_FOLLOWER.
    return Ok(s.with_replica(a.tp, a.broker, rep), None)


def truncation_offset(follower: Log, follower_hw: int, leader: Log) -> int:
    """Where a follower truncates after asking the leader OffsetForLeaderEpoch for its
    latest epoch (KIP-101; KIP-279: both sides then compare the epoch the leader answered).
    With no epoch information on either side it falls back to its high watermark.

    A follower only ever cuts its log (the offset is at most its LEO), and a follower with
    leader epochs that is merely behind (its log is the leader's log cut at the follower's
    LEO) keeps all of it; without epochs it falls back to its high watermark.

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
    log = follower
    while True:
        epoch, end = leader.end_offset_for_epoch(log.latest_epoch)
        if end == UNDEFINED_EPOCH_OFFSET:
            return min(follower_hw, log.end_offset)
        if epoch == UNDEFINED_EPOCH:
            return min(end, log.end_offset)
        f_epoch, f_end = log.end_offset_for_epoch(epoch)
        if f_end == UNDEFINED_EPOCH_OFFSET:
            return min(end, log.end_offset)
        if f_epoch != epoch:
            # The follower lacks the leader's epoch: cut to its own end of the earlier
            # epoch and ask again (each round drops at least its latest cache entry).
            cut = log.truncate_to(f_end)
            if cut == log:
                return min(end, f_end)
            log = cut
            continue
        return min(end, f_end)


def leader_for_fetch(s: ClusterState, tp: TopicPartition, follower: int) -> int | ErrorCode:
    """The leader ``follower`` may fetch from now, or why it may not (KIP-320 fencing)."""
    part = s.partitions[tp]
    rep = part.replica[follower]
    if rep.known is None or rep.known.leader in (NO_LEADER, follower):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    leader = rep.known.leader
    lrep = part.replica.get(leader)
    if lrep is None or not s.is_up(leader) or not lrep.presumes_leadership(leader):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert lrep.known is not None
    if lrep.known.leader_epoch > rep.known.leader_epoch:
        return ErrorCode.FENCED_LEADER_EPOCH
    if lrep.known.leader_epoch < rep.known.leader_epoch:
        return ErrorCode.UNKNOWN_LEADER_EPOCH
    return leader


def follower_fetch(s: ClusterState, a: FollowerFetch) -> Step:
    """One round of a follower's fetcher: truncation by leader epoch if it is due, else a
    Fetch at its log end offset that tells the leader its progress and brings back the next
    records (all it has, as a fetch up to its size limit would) and the leader's high
    watermark."""
    part = s.partitions.get(a.tp)
    if part is None or a.broker not in part.replica:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    leader = leader_for_fetch(s, a.tp, a.broker)
    if isinstance(leader, ErrorCode):
        return Rejected(s, leader)
    rep = part.replica[a.broker]
    lrep = part.replica[leader]
    if not rep.truncated:
        cut = truncation_offset(rep.log, rep.high_watermark, lrep.log)
        log = rep.log.truncate_to(cut)
        rep = attrs.evolve(
            rep, log=log, high_watermark=min(rep.high_watermark, log.end_offset), truncated=True
        )
        return Ok(s.with_replica(a.tp, a.broker, rep), None)
    log = rep.log
    if log.end_offset < lrep.log.start_offset:
        log = log.reset_to(lrep.log.start_offset)
    elif log.end_offset > lrep.log.end_offset:
        log = log.truncate_to(lrep.log.end_offset)
    fetch_offset = log.end_offset
    # Leader side: record the follower's progress, maybe advance the high watermark.
    prev = lrep.followers.get(a.broker, FollowerProgress())
    caught_up = s.now if fetch_offset >= lrep.log.end_offset else prev.last_caught_up_ms
    lrep = attrs.evolve(
        lrep, followers=lrep.followers.set(a.broker, FollowerProgress(fetch_offset, caught_up))
    )
    s = s.with_replica(a.tp, leader, lrep)
    s = advance_high_watermark(s, a.tp, leader)
    lrep = s.partitions[a.tp].replica[leader]
    # Follower side: append what came back, take the leader's log start and high watermark.
    for record in lrep.log.read(fetch_offset, lrep.log.end_offset):
        log = log.append(record)
    producers = rep.producers
    if lrep.log.start_offset > log.start_offset:
        producers = take_snapshot(producers, log, lrep.log.start_offset)
        log = log.delete_prefix(lrep.log.start_offset)
    hw = min(lrep.high_watermark, log.end_offset)
    rep = attrs.evolve(rep, log=log, high_watermark=max(hw, log.start_offset), producers=producers)
    return Ok(s.with_replica(a.tp, a.broker, rep), None)


def advance_high_watermark(s: ClusterState, tp: TopicPartition, leader: int) -> ClusterState:
    """Move the leader's high watermark up to the smallest log end offset in its ISR, and
    record what that exposes to consumers.

    The high watermark never moves back and never passes the leader's log end offset
    (HighWatermarkBelowLeo).

    pre: tp in s.partitions and leader in s.partitions[tp].replica
    pre: (r := s.replica(tp, leader)) is not None and r.high_watermark <= r.log.end_offset
    post: (r := __return__.replica(tp, leader)) is not None and r.high_watermark <= r.log.end_offset
    post: __return__.replica(tp, leader).high_watermark >= s.replica(tp, leader).high_watermark
    """
    rep = s.partitions[tp].replica[leader]
    if rep.known is None:
        return s
    if s.config.has(Variant.HW_ADVANCE_WITHOUT_ISR):
        hw = rep.log.end_offset
    else:
        leos = [rep.log.end_offset]
        for f in rep.known.isr:
            if f != leader:
                leos.append(rep.followers.get(f, FollowerProgress()).log_end_offset)
        hw = min(leos)
    if hw <= rep.high_watermark:
        return s
    s = s.with_replica(tp, leader, attrs.evolve(rep, high_watermark=hw))
    seen = s.exposed.get(tp, ())
    if len(seen) < hw:
        more = tuple(r for r in rep.log.read(len(seen), hw))
        if len(seen) + len(more) == hw:
            s = attrs.evolve(s, exposed=s.exposed.set(tp, seen + more))
    return s


def _isr_writer(s: ClusterState, tp: TopicPartition, leader: int) -> Replica | ErrorCode:
    """The leader's replica if it may write the ISR now: it presumes leadership, its
    ZooKeeper session is alive, and its cached znode version is current."""
    part = s.partitions.get(tp)
    if part is None or leader not in part.replica:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    rep = part.replica[leader]
    if not (s.is_up(leader) and s.is_live(leader)) or not rep.presumes_leadership(leader):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert rep.known is not None
    if rep.known.version != part.zk.version:
        return ErrorCode.INVALID_UPDATE_VERSION
    return rep


def _write_isr(
    s: ClusterState, tp: TopicPartition, leader: int, isr: frozenset[int]
) -> ClusterState:
    part = s.partitions[tp]
    zk = attrs.evolve(part.zk, isr=isr, version=part.zk.version + 1)
    rep = attrs.evolve(part.replica[leader], known=zk)
    part = attrs.evolve(part, zk=zk, replica=part.replica.set(leader, rep))
    return advance_high_watermark(s.with_partition(tp, part), tp, leader)


def is_out_of_sync(s: ClusterState, rep: Replica, follower: int) -> bool:
    """Kafka's rule: behind the leader's log end offset and not caught up for longer than
    replica.lag.time.max.ms."""
    prog = rep.followers.get(follower, FollowerProgress())
    behind = prog.log_end_offset < rep.log.end_offset
    return behind and s.now - prog.last_caught_up_ms > s.config.replica_lag_time_max_ms


def shrink_isr(s: ClusterState, a: ShrinkIsr) -> Step:
    """The leader removes an out-of-sync follower from the ISR (conditional write)."""
    rep = _isr_writer(s, a.tp, a.leader)
    if isinstance(rep, ErrorCode):
        return Rejected(s, rep)
    assert rep.known is not None
    if a.follower == a.leader or a.follower not in rep.known.isr:
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    if not is_out_of_sync(s, rep, a.follower):
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    return Ok(_write_isr(s, a.tp, a.leader, rep.known.isr - {a.follower}), None)


def is_caught_up(s: ClusterState, rep: Replica, follower: int) -> bool:
    """A follower may join the ISR once its log end offset has reached the leader's high
    watermark and the start offset of the leader's current epoch (KAFKA-7128)."""
    leo = rep.followers.get(follower, FollowerProgress()).log_end_offset
    if s.config.has(Variant.EXPAND_ISR_BEFORE_CAUGHT_UP):
        return leo >= 0
    assert rep.known is not None
    epoch_start = next(
        (e.start_offset for e in rep.log.epochs if e.epoch == rep.known.leader_epoch),
        rep.log.end_offset,
    )
    return leo >= rep.high_watermark and leo >= epoch_start


def expand_isr(s: ClusterState, a: ExpandIsr) -> Step:
    """The leader adds a caught-up follower to the ISR (conditional write)."""
    rep = _isr_writer(s, a.tp, a.leader)
    if isinstance(rep, ErrorCode):
        return Rejected(s, rep)
    assert rep.known is not None
    part = s.partitions[a.tp]
    if a.follower in rep.known.isr or a.follower not in part.replicas:
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    if not is_caught_up(s, rep, a.follower):
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    return Ok(_write_isr(s, a.tp, a.leader, rep.known.isr | {a.follower}), None)


def new_partition(s: ClusterState, replicas: tuple[int, ...]) -> Partition:
    """A new partition: ISR = the live assigned replicas, leader = the first of them."""
    isr = frozenset(r for r in replicas if s.is_live(r))
    leader = next((r for r in replicas if r in isr), NO_LEADER)
    zk = ZkPartitionState(leader, 0, isr if isr else frozenset(replicas), s.controller_epoch)
    return Partition(replicas=replicas, zk=zk, replica=FrozenMap((r, Replica()) for r in replicas))
