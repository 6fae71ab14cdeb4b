"""Faults and time: broker crash (with or without losing unflushed data), restart, ZooKeeper
session expiry of a running broker, re-registration, log flush, and clock ticks.

A crashed broker loses everything in memory: which partitions it leads or follows, its
followers' progress, its delayed produces (their clients see the connection drop).  Its
logs survive, except, after a power loss, the suffix above each recovery point.  The
controller's ephemeral /controller znode goes with its session.
"""

from __future__ import annotations

import attrs

from spec.actions import CrashBroker, ExpireSession, FlushLogs, Reregister, RestartBroker, Tick
from spec.errors import ErrorCode
from spec.outcome import Ok, Outcome, Rejected
from spec.state import NO_LEADER, Broker, ClusterState, Replica

Step = Outcome[ClusterState, None]


def _without_controller(s: ClusterState, broker: int) -> ClusterState:
    return attrs.evolve(s, controller=NO_LEADER) if s.controller == broker else s


def crash_broker(s: ClusterState, a: CrashBroker) -> Step:
    """The broker's process dies; its session ends with it."""
    if not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    partitions = s.partitions
    for tp, part in s.partitions.items():
        rep = part.replica.get(a.broker)
        if rep is None:
            continue
        # Recovery on restart drops leader-epoch cache entries at or past the log end.
        log = rep.log.truncate_to(rep.log.end_offset)
        if a.lose_unflushed:
            log = log.truncate_to(log.recovery_point)
        hw = min(rep.high_watermark, log.end_offset)
        crashed = Replica(log=log, high_watermark=hw, producers=rep.producers)
        partitions = partitions.set(
            tp, attrs.evolve(part, replica=part.replica.set(a.broker, crashed))
        )
    s = attrs.evolve(
        s,
        brokers=s.brokers.set(a.broker, Broker(up=False, registered=False)),
        partitions=partitions,
        pending=tuple(p for p in s.pending if p.broker != a.broker),
    )
    return Ok(_without_controller(s, a.broker), None)


def restart_broker(s: ClusterState, a: RestartBroker) -> Step:
    """A crashed broker starts, recovers its logs and registers in ZooKeeper."""
    if a.broker not in s.brokers or s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    return Ok(attrs.evolve(s, brokers=s.brokers.set(a.broker, Broker())), None)


def expire_session(s: ClusterState, a: ExpireSession) -> Step:
    """A running broker's ZooKeeper session expires: the controller sees it gone, but the
    process goes on acting on what it last knew."""
    if not s.is_live(a.broker) or not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    s = attrs.evolve(s, brokers=s.brokers.set(a.broker, Broker(up=True, registered=False)))
    return Ok(_without_controller(s, a.broker), None)


def reregister(s: ClusterState, a: Reregister) -> Step:
    """A running broker with an expired session registers again."""
    if not s.is_up(a.broker) or s.is_live(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    return Ok(attrs.evolve(s, brokers=s.brokers.set(a.broker, Broker())), None)


def flush_logs(s: ClusterState, a: FlushLogs) -> Step:
    """Every log on the broker is flushed to its log end offset."""
    if not s.is_up(a.broker):
        return Rejected(s, ErrorCode.BROKER_NOT_AVAILABLE)
    partitions = s.partitions
    for tp, part in s.partitions.items():
        rep = part.replica.get(a.broker)
        if rep is not None and rep.log.recovery_point < rep.log.end_offset:
            rep = attrs.evolve(rep, log=rep.log.flush())
            partitions = partitions.set(
                tp, attrs.evolve(part, replica=part.replica.set(a.broker, rep))
            )
    return Ok(attrs.evolve(s, partitions=partitions), None)


def tick(s: ClusterState, a: Tick) -> Step:
    """The clock moves forward; it never moves back."""
    if a.ms < 0:
        return Rejected(s, ErrorCode.INVALID_REQUEST)
    return Ok(attrs.evolve(s, now=s.now + a.ms), None)
