"""The cluster model's single entry point: ``step(state, action)``, and the internal actions
that are enabled in a state.

``step`` dispatches each action to the module that owns its transition.  ``internal_actions``
lists what brokers and the controller may do next by themselves; the explorer and the
property tests interleave these with client actions and faults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from spec import admin, consume, faults, produce, replication
from spec.actions import (
    Action,
    ApplyLeaderAndIsr,
    CompleteProduce,
    ControllerUpdatePartition,
    CrashBroker,
    CreateTopic,
    DeleteRetainedPrefix,
    DeleteTopic,
    ElectController,
    ExpandIsr,
    ExpireSession,
    Fetch,
    FlushLogs,
    FollowerFetch,
    ListOffsets,
    OffsetForLeaderEpoch,
    Produce,
    Reregister,
    RestartBroker,
    ShrinkIsr,
    Tick,
)
from spec.outcome import Ok, Outcome
from spec.state import NO_LEADER, ClusterState, TopicPartition

_HANDLERS: dict[type[Any], Callable[[ClusterState, Any], Outcome[ClusterState, Any]]] = {
    CreateTopic: admin.create_topic,
    DeleteTopic: admin.delete_topic,
    Produce: produce.produce,
    CompleteProduce: produce.complete_produce,
    Fetch: consume.fetch,
    ListOffsets: consume.list_offsets,
    OffsetForLeaderEpoch: consume.offset_for_leader_epoch,
    DeleteRetainedPrefix: consume.delete_retained_prefix,
    CrashBroker: faults.crash_broker,
    RestartBroker: faults.restart_broker,
    ExpireSession: faults.expire_session,
    Reregister: faults.reregister,
    FlushLogs: faults.flush_logs,
    Tick: faults.tick,
    ElectController: replication.elect_controller,
    ControllerUpdatePartition: replication.controller_update_partition,
    ApplyLeaderAndIsr: replication.apply_leader_and_isr,
    FollowerFetch: replication.follower_fetch,
    ShrinkIsr: replication.shrink_isr,
    ExpandIsr: replication.expand_isr,
}


def step(state: ClusterState, action: Action) -> Outcome[ClusterState, Any]:
    """Apply ``action`` to ``state``: the next state and the reply, or a rejection."""
    return _HANDLERS[type(action)](state, action)


def internal_actions(s: ClusterState) -> Iterator[Action]:
    """Every internal action enabled in ``s`` (each yields ``Ok`` from :func:`step`)."""
    controller_live = s.controller != NO_LEADER and s.is_live(s.controller)
    if not controller_live:
        for b in s.brokers:
            if s.is_live(b):
                yield ElectController(b)
    for tp, part in s.partitions.items():
        if controller_live:
            if replication.partition_update(s, tp) is not None:
                yield ControllerUpdatePartition(tp)
            for b in part.replicas:
                rep = part.replica[b]
                stale = rep.known is None or rep.known.leader_epoch < part.zk.leader_epoch
                if stale and s.is_live(b) and s.is_up(b):
                    yield ApplyLeaderAndIsr(tp, b)
        for b in part.replicas:
            rep = part.replica[b]
            if not s.is_up(b) or rep.known is None:
                continue
            if rep.known.leader == b:
                yield from _isr_changes(s, tp, b)
            elif _fetch_makes_progress(s, tp, b):
                yield FollowerFetch(tp, b)
    for req in s.pending:
        if produce.is_due(s, req):
            yield CompleteProduce(req.request_id)


def _fetch_makes_progress(s: ClusterState, tp: TopicPartition, b: int) -> bool:
    """A follower fetch is enabled when it can change something (an idle fetch is a no-op
    that the explorer need not take)."""
    nxt = replication.follower_fetch(s, FollowerFetch(tp, b))
    return isinstance(nxt, Ok) and nxt.state != s


def _isr_changes(s: ClusterState, tp: TopicPartition, leader: int) -> Iterator[Action]:
    part = s.partitions[tp]
    for f in part.replicas:
        if f == leader:
            continue
        for action in (ShrinkIsr(tp, leader, f), ExpandIsr(tp, leader, f)):
            if isinstance(step(s, action), Ok):
                yield action
