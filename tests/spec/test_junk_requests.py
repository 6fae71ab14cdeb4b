"""Junk requests alone, from fixed start states (empty, running, failed over, without a
controller): invalid requests, each with one defect (unknown topics, invalid brokers,
negative offsets, acks=5...), must be refused with Kafka's error code for that defect and
change nothing.  The junk generator (``junk_cases``) is in cluster_helpers.py, shared with
the property machine's junk rule (test_cluster_properties.py).
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from spec.actions import (
    ACKS_LEADER,
    Action,
    ApplyLeaderAndIsr,
    ControllerUpdatePartition,
    CrashBroker,
    CreateTopic,
    ElectController,
    ExpireSession,
    FollowerFetch,
    Produce,
    ProducedRecord,
)
from spec.errors import ErrorCode
from spec.invariants import INVARIANTS
from spec.state import ClusterState, TopicPartition
from tests.spec.cluster_helpers import junk_cases, refused_unchanged, world

T0 = TopicPartition("t", 0)
_SETUP: tuple[Action, ...] = (
    ElectController(0),
    CreateTopic("t", ((0, 1, 2), (1, 2, 0))),
    *(ApplyLeaderAndIsr(TopicPartition("t", p), b) for p in (0, 1) for b in (0, 1, 2)),
)
_TRAFFIC: tuple[Action, ...] = (
    Produce(T0, 0, (ProducedRecord(b"a"), ProducedRecord(b"b")), acks=ACKS_LEADER),
    FollowerFetch(T0, 1),
    FollowerFetch(T0, 1),
    FollowerFetch(T0, 2),
    FollowerFetch(T0, 2),
)
START_STATES: dict[str, Callable[[], ClusterState]] = {
    "empty": world,
    "no-controller": lambda: world(*_SETUP, *_TRAFFIC, CrashBroker(0)),
    "running": lambda: world(*_SETUP, *_TRAFFIC),
    "failed-over": lambda: world(
        *_SETUP,
        *_TRAFFIC,
        CrashBroker(1),
        ExpireSession(2),
        ControllerUpdatePartition(T0),
        ControllerUpdatePartition(TopicPartition("t", 1)),
        ApplyLeaderAndIsr(T0, 0),
    ),
}


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(
    start=st.sampled_from(sorted(START_STATES)),
    picks=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), max_size=40),
)
def test_junk_is_refused_with_kafkas_error_and_changes_nothing(
    start: str, picks: list[tuple[int, int]]
) -> None:
    s = START_STATES[start]()
    assert all(inv(s) for inv in INVARIANTS.values())
    for k, i in picks:
        cases = junk_cases(s, k)
        action, error = cases[i % len(cases)]
        refused_unchanged(s, action, error)


def test_junk_cases_cover_every_kind_of_defect() -> None:
    """The junk generator does produce each error it promises, from some start state."""
    errors = {
        error
        for make in START_STATES.values()
        for k in range(12)
        for _, error in junk_cases(make(), k)
    }
    assert errors >= {
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.NOT_CONTROLLER,
        ErrorCode.INVALID_TOPIC_EXCEPTION,
        ErrorCode.INVALID_PARTITIONS,
        ErrorCode.INVALID_REPLICATION_FACTOR,
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        ErrorCode.TOPIC_ALREADY_EXISTS,
        ErrorCode.BROKER_NOT_AVAILABLE,
        ErrorCode.INVALID_REQUEST,
        ErrorCode.NETWORK_EXCEPTION,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.INVALID_REQUIRED_ACKS,
        ErrorCode.INVALID_RECORD,
        ErrorCode.MESSAGE_TOO_LARGE,
        ErrorCode.OFFSET_OUT_OF_RANGE,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.FENCED_LEADER_EPOCH,
    }
