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
from spec.state import NO_LEADER, ClusterState

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


def internal_steps(s: ClusterState) -> Iterator[tuple[Action, Ok[ClusterState, Any]]]:
    """Every internal action enabled in ``s`` that changes it, with its outcome."""
    controller_live = s.controller != NO_LEADER and s.is_live(s.controller)
    candidates: list[Action] = []
    if not controller_live:
        candidates += [ElectController(b) for b in s.brokers if s.is_live(b)]
    for tp, part in s.partitions.items():
        epoch = part.zk.leader_epoch
        if controller_live:
            candidates.append(ControllerUpdatePartition(tp))
            # Cheap filters first: step() has the final word on each candidate.
            candidates += [
                ApplyLeaderAndIsr(tp, b)
                for b, rep in part.replica.items()
                if rep.known is None or rep.known.leader_epoch < epoch
            ]
        for b in part.replicas:
            rep = part.replica[b]
            if not s.is_up(b) or rep.known is None:
                continue
            if rep.known.leader == b:
                if s.is_live(b) and rep.known.version == part.zk.version:
                    for f in part.replicas:
                        if f != b:
                            candidates += [ShrinkIsr(tp, b, f), ExpandIsr(tp, b, f)]
            else:
                candidates.append(FollowerFetch(tp, b))
    candidates += [CompleteProduce(req.request_id) for req in s.pending]
    for action in candidates:
        out = step(s, action)
        if isinstance(out, Ok) and out.state != s:
            yield action, out


def internal_actions(s: ClusterState) -> Iterator[Action]:
    """Every internal action enabled in ``s`` (each yields a changed state from ``step``)."""
    for action, _ in internal_steps(s):
        yield action
