"""Consumer scenarios: Fetch returns only records below the high watermark (and
OFFSET_OUT_OF_RANGE outside the log), ListOffsets (earliest, latest, by timestamp), and
KIP-320 fencing of consumer and follower requests by leader epoch.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

from spec.actions import (
    ACKS_LEADER,
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    ApplyLeaderAndIsr,
    ControllerUpdatePartition,
    CrashBroker,
    Fetch,
    FollowerFetch,
    ListOffsets,
    OffsetForLeaderEpoch,
    Tick,
)
from spec.consume import FetchReply, OffsetReply
from spec.errors import ErrorCode
from spec.state import TopicPartition
from tests.spec.scenario_helpers import TP, World

# --- consumer fetch, ListOffsets --------------------------------------------------------


def committed_one_of_three() -> World:
    """Leader 0 holds a, b, c; only a is committed (HW 1)."""
    w = World()
    w.produce(0, "a", acks=ACKS_LEADER)
    w.settle()
    w.produce(0, "b", "c", acks=ACKS_LEADER)
    assert (w.hw(0), w.rep(0).log.end_offset) == (1, 3)
    return w


def test_consumer_fetch_returns_only_records_below_the_high_watermark() -> None:
    w = committed_one_of_three()
    reply = w.ok(Fetch(TP, 0, 0))
    assert isinstance(reply, FetchReply)
    assert [r.value for r in reply.records] == [b"a"]
    assert (reply.offset, reply.high_watermark, reply.log_start_offset) == (0, 1, 0)
    # Between the high watermark and the log end offset: nothing yet, no error.
    for offset in (1, 2, 3):
        assert w.ok(Fetch(TP, 0, offset)).records == ()
    # Above the log end offset or below the log start offset: OFFSET_OUT_OF_RANGE.
    w.refuse(Fetch(TP, 0, 4), ErrorCode.OFFSET_OUT_OF_RANGE)
    w.refuse(Fetch(TP, 0, -1), ErrorCode.OFFSET_OUT_OF_RANGE)
    # Only the leader serves consumers.
    w.refuse(Fetch(TP, 1, 0), ErrorCode.NOT_LEADER_OR_FOLLOWER)
    w.refuse(Fetch(TopicPartition("nope", 0), 0, 0), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    w.settle()
    reply = w.ok(Fetch(TP, 0, 1, max_records=1))
    assert [r.value for r in reply.records] == [b"b"]
    assert [r.value for r in w.ok(Fetch(TP, 0, 0)).records] == [b"a", b"b", b"c"]


def test_list_offsets() -> None:
    w = committed_one_of_three()
    assert w.ok(ListOffsets(TP, 0, EARLIEST_TIMESTAMP)) == OffsetReply(0)
    assert w.ok(ListOffsets(TP, 0, LATEST_TIMESTAMP)) == OffsetReply(1)  # the HW, not LEO
    assert w.ok(ListOffsets(TP, 0, 0)) == OffsetReply(0, 0)
    assert w.ok(ListOffsets(TP, 0, 1)) == OffsetReply(-1)  # no committed record that late
    w.refuse(ListOffsets(TP, 0, -3), ErrorCode.INVALID_REQUEST)
    w.refuse(ListOffsets(TP, 2, LATEST_TIMESTAMP), ErrorCode.NOT_LEADER_OR_FOLLOWER)


def test_list_offsets_by_timestamp_finds_the_first_committed_record_at_or_after_it() -> None:
    w = World()
    w.produce(0, "t0", acks=ACKS_LEADER)
    w.ok(Tick(100))
    w.produce(0, "t100", acks=ACKS_LEADER)
    w.ok(Tick(100))
    w.produce(0, "t200", acks=ACKS_LEADER)
    w.settle()
    assert w.ok(ListOffsets(TP, 0, 50)) == OffsetReply(1, 0)
    assert w.ok(ListOffsets(TP, 0, 100)) == OffsetReply(1, 0)
    assert w.ok(ListOffsets(TP, 0, 101)) == OffsetReply(2, 0)
    assert w.ok(ListOffsets(TP, 0, 201)) == OffsetReply(-1)


# --- KIP-320 fencing -------------------------------------------------------------------


def epoch_one() -> World:
    """Broker 2 crashed; the controller wrote leader 0, ISR {0, 1}, leader epoch 1; no
    broker has applied it yet."""
    w = World()
    w.ok(CrashBroker(2))
    w.ok(ControllerUpdatePartition(TP))
    assert (w.zk.leader, w.zk.leader_epoch, w.zk.isr) == (0, 1, {0, 1})
    return w


def test_consumer_requests_are_fenced_by_leader_epoch() -> None:
    w = epoch_one()
    w.ok(ApplyLeaderAndIsr(TP, 0))
    for make in (
        lambda e: Fetch(TP, 0, 0, current_leader_epoch=e),
        lambda e: ListOffsets(TP, 0, LATEST_TIMESTAMP, current_leader_epoch=e),
        lambda e: OffsetForLeaderEpoch(TP, 0, 0, current_leader_epoch=e),
    ):
        w.refuse(make(0), ErrorCode.FENCED_LEADER_EPOCH)
        w.refuse(make(2), ErrorCode.UNKNOWN_LEADER_EPOCH)
        w.ok(make(1))
        w.ok(make(-1))  # no epoch given: not checked


def test_a_follower_ahead_of_its_leader_gets_unknown_leader_epoch() -> None:
    w = epoch_one()
    w.ok(ApplyLeaderAndIsr(TP, 1))  # the follower learns epoch 1 first
    w.refuse(FollowerFetch(TP, 1), ErrorCode.UNKNOWN_LEADER_EPOCH)
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.ok(FollowerFetch(TP, 1))
    w.check_invariants()


def test_a_follower_behind_its_leader_gets_fenced_leader_epoch() -> None:
    w = epoch_one()
    w.ok(ApplyLeaderAndIsr(TP, 0))
    w.refuse(FollowerFetch(TP, 1), ErrorCode.FENCED_LEADER_EPOCH)
    w.ok(ApplyLeaderAndIsr(TP, 1))
    w.ok(FollowerFetch(TP, 1))
    w.check_invariants()
