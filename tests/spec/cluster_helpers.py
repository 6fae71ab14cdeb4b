"""Shared helpers of the cluster property tests (test_cluster_properties.py and
test_junk_requests.py): the machine's configuration and constants, a builder of start
states, who leads what in a state, and the junk requests: invalid requests, each with
one defect, and the Kafka error code each must be refused with, leaving the state
unchanged.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_LEADER,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
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
    ProducedRecord,
    Reregister,
    RestartBroker,
    ShrinkIsr,
    Tick,
)
from spec.cluster import step
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.outcome import Ok, Rejected
from spec.state import ClusterState, Replica, TopicPartition, initial_state

LAG_MS = 1_000
TIMEOUT_MS = 3_000
TOPICS = ("t", "u")
UNKNOWN = TopicPartition("no-such-topic", 0)
NO_BROKER = 99

# ClusterMachine's configuration; the junk tests' start states (``world``) use it too.
MACHINE_CONFIG = SpecConfig(
    min_insync_replicas=2,
    replica_lag_time_max_ms=LAG_MS,
    request_timeout_ms=TIMEOUT_MS,
)


def world(*actions: Action, brokers: int = 3) -> ClusterState:
    s = initial_state(MACHINE_CONFIG, brokers)
    for action in actions:
        out = step(s, action)
        assert isinstance(out, Ok), action.describe()
        s = out.state
    return s


# --- helpers -----------------------------------------------------------------------------


def leaders(s: ClusterState) -> list[tuple[TopicPartition, int, Replica]]:
    """(partition, broker, replica) for every running replica that presumes leadership."""
    return [
        (tp, b, rep)
        for tp, part in s.partitions.items()
        for b, rep in part.replica.items()
        if s.is_up(b) and rep.presumes_leadership(b)
    ]


def non_leaders(s: ClusterState) -> list[tuple[TopicPartition, int]]:
    """(partition, broker) for running assigned replicas that do not presume leadership."""
    return [
        (tp, b)
        for tp, part in s.partitions.items()
        for b, rep in part.replica.items()
        if s.is_up(b) and not rep.presumes_leadership(b)
    ]


def controller_live(s: ClusterState) -> bool:
    return s.controller >= 0 and s.is_live(s.controller)


def admin_error(s: ClusterState, error: ErrorCode) -> ErrorCode:
    """Admin requests need a live controller before anything else is looked at."""
    return error if controller_live(s) else ErrorCode.NOT_CONTROLLER


ONE = (ProducedRecord(b"junk"),)
BAD_NAMES = ("", ".", "..", "has space", "x" * 250, "slash/y", "caf\u00e9")
BAD_ASSIGNMENTS: tuple[tuple[tuple[tuple[int, ...], ...], ErrorCode], ...] = (
    ((), ErrorCode.INVALID_PARTITIONS),
    (((),), ErrorCode.INVALID_REPLICATION_FACTOR),
    (((0, 0),), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (((0, NO_BROKER),), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (((0, 1), (2,)), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
    (((-1,),), ErrorCode.INVALID_REPLICA_ASSIGNMENT),
)


def junk_cases(s: ClusterState, k: int) -> list[tuple[Action, ErrorCode]]:
    """Invalid requests in state ``s``, each with exactly one defect, and the Kafka error it
    must be refused with.  ``k`` varies the junk values (offsets, acks, names...)."""
    cases: list[tuple[Action, ErrorCode]] = []
    unknown_topic = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    # Unknown topics and partitions, whatever else holds.
    existing = sorted(s.partitions)
    for tp in (UNKNOWN, *(TopicPartition(t.topic, 50 + k % 7) for t in existing[:1])):
        cases += [
            (Produce(tp, k % 4, ONE, acks=ACKS_LEADER), unknown_topic),
            (Fetch(tp, k % 4, k % 5), unknown_topic),
            (ListOffsets(tp, k % 4, LATEST_TIMESTAMP), unknown_topic),
            (OffsetForLeaderEpoch(tp, k % 4, 0), unknown_topic),
            (FollowerFetch(tp, k % 4), unknown_topic),
            (ShrinkIsr(tp, k % 4, (k + 1) % 4), unknown_topic),
            (ExpandIsr(tp, k % 4, (k + 1) % 4), unknown_topic),
            (DeleteRetainedPrefix(tp, k % 4, 1), unknown_topic),
            (ControllerUpdatePartition(tp), admin_error(s, unknown_topic)),
            (ApplyLeaderAndIsr(tp, k % 4), admin_error(s, unknown_topic)),
        ]
    cases.append((DeleteTopic("no-such-topic"), admin_error(s, unknown_topic)))
    # Topic creation.
    cases.append(
        (
            CreateTopic(BAD_NAMES[k % len(BAD_NAMES)], ((0,),)),
            admin_error(s, ErrorCode.INVALID_TOPIC_EXCEPTION),
        )
    )
    assignment, error = BAD_ASSIGNMENTS[k % len(BAD_ASSIGNMENTS)]
    cases.append((CreateTopic("fresh", assignment), admin_error(s, error)))
    for topic in s.topics:
        cases.append((CreateTopic(topic, ((0,),)), admin_error(s, ErrorCode.TOPIC_ALREADY_EXISTS)))
    # Brokers that do not exist, or are not in the state the action needs.
    unavailable = ErrorCode.BROKER_NOT_AVAILABLE
    bad = NO_BROKER + k % 3 if k % 2 else -1 - k % 3
    cases += [
        (CrashBroker(bad), unavailable),
        (CrashBroker(bad, lose_unflushed=True), unavailable),
        (RestartBroker(bad), unavailable),
        (ExpireSession(bad), unavailable),
        (Reregister(bad), unavailable),
        (FlushLogs(bad), unavailable),
    ]
    for b in s.brokers:
        if s.is_up(b):
            cases.append((RestartBroker(b), unavailable))
            if s.is_live(b):
                cases.append((Reregister(b), unavailable))
            else:
                cases.append((ExpireSession(b), unavailable))
        else:
            cases += [
                (CrashBroker(b), unavailable),
                (ExpireSession(b), unavailable),
                (Reregister(b), unavailable),
                (FlushLogs(b), unavailable),
            ]
    if controller_live(s):
        cases.append((ElectController(k % max(len(s.brokers), 1)), ErrorCode.NOT_CONTROLLER))
    else:
        cases.append((ElectController(bad), unavailable))
        cases += [(ElectController(b), unavailable) for b in s.brokers if not s.is_live(b)]
    # Time and delayed produces.
    cases.append((Tick(-1 - k % 1000), ErrorCode.INVALID_REQUEST))
    cases.append((CompleteProduce(s.next_request_id + k % 10), ErrorCode.INVALID_REQUEST))
    # Requests to brokers that are down, or that do not lead.
    for tp, part in s.partitions.items():
        for b in part.replicas:
            if not s.is_up(b):
                cases += [
                    (Produce(tp, b, ONE, acks=ACKS_LEADER), ErrorCode.NETWORK_EXCEPTION),
                    (Fetch(tp, b, 0), ErrorCode.NETWORK_EXCEPTION),
                    (ListOffsets(tp, b, EARLIEST_TIMESTAMP), ErrorCode.NETWORK_EXCEPTION),
                    (OffsetForLeaderEpoch(tp, b, 0), ErrorCode.NETWORK_EXCEPTION),
                    (FollowerFetch(tp, b), unavailable),
                    (DeleteRetainedPrefix(tp, b, part.replica[b].log.end_offset), unavailable),
                ]
        cases.append((Produce(tp, bad, ONE, acks=ACKS_LEADER), ErrorCode.NETWORK_EXCEPTION))
    not_leader = ErrorCode.NOT_LEADER_OR_FOLLOWER
    for tp, b in non_leaders(s):
        cases += [
            (Produce(tp, b, ONE, acks=ACKS_LEADER), not_leader),
            (Fetch(tp, b, 0), not_leader),
            (ListOffsets(tp, b, LATEST_TIMESTAMP), not_leader),
            (OffsetForLeaderEpoch(tp, b, 0), not_leader),
        ]
    # Malformed requests to a leader.
    for tp, b, rep in leaders(s):
        assert rep.known is not None
        epoch = rep.known.leader_epoch
        log = rep.log
        cases += [
            (Produce(tp, b, ONE, acks=(5, 2, -2, 127)[k % 4]), ErrorCode.INVALID_REQUIRED_ACKS),
            (Produce(tp, b, (), acks=ACKS_LEADER), ErrorCode.INVALID_RECORD),
            (
                Produce(tp, b, ONE, acks=ACKS_LEADER, size_bytes=s.config.message_max_bytes + 1),
                ErrorCode.MESSAGE_TOO_LARGE,
            ),
            (
                Produce(
                    tp, b, ONE, acks=ACKS_LEADER, producer_id=7, producer_epoch=0, base_sequence=-1
                ),
                ErrorCode.INVALID_RECORD,
            ),
            (Fetch(tp, b, -1 - k % 100), ErrorCode.OFFSET_OUT_OF_RANGE),
            (Fetch(tp, b, log.end_offset + 1 + k % 5), ErrorCode.OFFSET_OUT_OF_RANGE),
            (ListOffsets(tp, b, -3 - k % 50), ErrorCode.INVALID_REQUEST),
            (DeleteRetainedPrefix(tp, b, log.start_offset), ErrorCode.OFFSET_OUT_OF_RANGE),
            (
                DeleteRetainedPrefix(tp, b, rep.high_watermark + 1 + k % 3),
                ErrorCode.OFFSET_OUT_OF_RANGE,
            ),
            (
                Fetch(tp, b, 0, current_leader_epoch=epoch + 1 + k % 3),
                ErrorCode.UNKNOWN_LEADER_EPOCH,
            ),
            (
                ListOffsets(tp, b, LATEST_TIMESTAMP, current_leader_epoch=epoch + 1),
                ErrorCode.UNKNOWN_LEADER_EPOCH,
            ),
            (
                OffsetForLeaderEpoch(tp, b, 0, current_leader_epoch=epoch + 1),
                ErrorCode.UNKNOWN_LEADER_EPOCH,
            ),
        ]
        if log.start_offset > 0:
            cases.append((Fetch(tp, b, log.start_offset - 1), ErrorCode.OFFSET_OUT_OF_RANGE))
        if epoch > 0:
            stale = k % epoch
            cases += [
                (Fetch(tp, b, 0, current_leader_epoch=stale), ErrorCode.FENCED_LEADER_EPOCH),
                (
                    ListOffsets(tp, b, EARLIEST_TIMESTAMP, current_leader_epoch=stale),
                    ErrorCode.FENCED_LEADER_EPOCH,
                ),
                (
                    OffsetForLeaderEpoch(tp, b, 0, current_leader_epoch=stale),
                    ErrorCode.FENCED_LEADER_EPOCH,
                ),
            ]
        if b in rep.known.isr:
            cases.append((ShrinkIsr(tp, b, b), isr_write_error(s, tp, b)))
    return cases


def isr_write_error(s: ClusterState, tp: TopicPartition, leader: int) -> ErrorCode:
    """A leader removing itself from the ISR: refused for whichever reason comes first."""
    rep = s.partitions[tp].replica[leader]
    assert rep.known is not None
    if not s.is_live(leader):
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if rep.known.version != s.partitions[tp].zk.version:
        return ErrorCode.INVALID_UPDATE_VERSION
    return ErrorCode.INVALID_REQUEST


def refused_unchanged(s: ClusterState, action: Action, error: ErrorCode) -> None:
    out = step(s, action)
    assert isinstance(out, Rejected), (action.describe(), out)
    assert out.error is error, (action.describe(), out.error, error)
    assert out.state == s, action.describe()
