"""Property tests of the cluster model alone: random interleavings of client requests,
faults, retention and the brokers' and controller's own actions, with every named invariant
checked after every step.

A ``RuleBasedStateMachine`` drives ``spec.cluster.step``.  Preconditions keep each rule to
actions that make sense in the current state (a produce goes to a partition that exists,
a restart to a crashed broker...), although the action itself may still be refused: every
step must return ``Ok`` or ``Rejected`` (never raise), a rejection must leave the state
unchanged, and each internal action that ``internal_actions`` offers must succeed.  Junk
requests (unknown topics, invalid brokers, negative offsets, acks=5...) must be refused
with Kafka's error code for that defect.

Runs are derandomized and use no example database, so CI sees the same runs every time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, Phase, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from spec.actions import (
    ACKS_ALL,
    ACKS_LEADER,
    ACKS_NONE,
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
from spec.admin import assign_replicas
from spec.canonical import canonical_key
from spec.cluster import internal_actions, step
from spec.config import SpecConfig
from spec.consume import FetchReply, OffsetReply, retention_limit
from spec.errors import ErrorCode
from spec.explorer import acknowledge_due
from spec.invariants import INVARIANTS
from spec.outcome import Ok, Outcome, Rejected
from spec.produce import NO_OFFSET, ProduceReply, ProduceResponse
from spec.state import ClusterState, Replica, TopicPartition, initial_state
from spec.variants import Variant

LAG_MS = 1_000
TIMEOUT_MS = 3_000
TOPICS = ("t", "u")
UNKNOWN = TopicPartition("no-such-topic", 0)
NO_BROKER = 99


# --- a guard against a known spec bug ----------------------------------------------------


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


# --- the state machine --------------------------------------------------------------------


class ClusterMachine(RuleBasedStateMachine):
    """Random runs of the cluster model with every invariant checked after each step."""

    BROKERS: ClassVar[int] = 3
    REPLICATION_FACTOR: ClassVar[int] = 3
    CONFIG: ClassVar[SpecConfig] = SpecConfig(
        min_insync_replicas=2,
        replica_lag_time_max_ms=LAG_MS,
        request_timeout_ms=TIMEOUT_MS,
    )
    LOSE_UNFLUSHED: ClassVar[bool] = False
    # Answer every delayed produce as soon as it is due with success, as the explorer does
    # (spec.explorer.acknowledge_due): more acknowledged records, stronger invariants.
    EAGER_ACKS: ClassVar[bool] = False
    # Invariants this configuration cannot promise (see the lossy subclass).
    UNCHECKED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.s = initial_state(self.CONFIG, self.BROKERS)
        self.values = 0
        # Idempotent producers: (pid, tp) -> (next sequence, last batch (seq, values)).
        self.producers: dict[tuple[int, TopicPartition], tuple[int, tuple[int, tuple[bytes, ...]]]]
        self.producers = {}

    # -- applying actions ---------------------------------------------------------------

    def apply(self, action: Action) -> Outcome[ClusterState, Any]:
        """Step the model; check what every step must satisfy; move to the new state."""
        before = self.s
        out = step(before, action)
        assert isinstance(out, Ok | Rejected), out
        error = out.error
        if isinstance(out, Ok) and isinstance(out.reply, ProduceResponse):
            error = out.reply.error
        event(f"{type(action).__name__}: {error.name}")
        if isinstance(out, Rejected):
            assert out.state == before, f"{action.describe()} was refused but changed the state"
            return out
        after = out.state
        self.check_transition(action, before, after)
        note(action.describe())
        if self.EAGER_ACKS:
            acked = acknowledge_due(after)
            self.check_transition(action, after, acked)
            after = acked
        self.s = after
        return out

    def check_transition(self, action: Action, before: ClusterState, after: ClusterState) -> None:
        what = action.describe()
        assert after.now >= before.now, what
        assert after.controller_epoch >= before.controller_epoch, what
        assert after.next_request_id >= before.next_request_id, what
        deleted = {action.topic} if isinstance(action, DeleteTopic) else set()
        for tp, part in after.partitions.items():
            old = before.partitions.get(tp)
            if old is None:
                continue
            assert part.zk.leader_epoch >= old.zk.leader_epoch, what
            assert part.zk.version >= old.zk.version, what
            for b, rep in part.replica.items():
                prev = old.replica[b]
                # Retention only moves the log start offset forward.
                assert rep.log.start_offset >= prev.log.start_offset, what
                # A leader's high watermark only moves up while it leads in one epoch.
                if (
                    prev.presumes_leadership(b)
                    and rep.presumes_leadership(b)
                    and before.is_up(b)
                    and after.is_up(b)
                    and rep.known is not None
                    and prev.known is not None
                    and rep.known.leader_epoch == prev.known.leader_epoch
                ):
                    assert rep.high_watermark >= prev.high_watermark, what
        # History only grows (a deleted topic takes its history with it).
        lost = {a for a in before.acked - after.acked if a.tp.topic not in deleted}
        assert not lost, what
        for tp, seen in before.exposed.items():
            if tp.topic in deleted:
                continue
            assert after.exposed.get(tp, ())[: len(seen)] == seen, what

    # -- the brokers' and the controller's own actions ---------------------------------

    @precondition(lambda self: any(True for _ in internal_actions(self.s)))
    @rule(data=st.data(), n=st.integers(1, 25))
    def internal_burst(self, data: st.DataObject, n: int) -> None:
        """A run of internal actions: elections, LeaderAndIsr, fetches, ISR changes."""
        for _ in range(n):
            actions = list(internal_actions(self.s))
            if not actions:
                return
            i = data.draw(st.integers(0, len(actions) - 1), label="which")
            out = self.apply(actions[i])
            assert isinstance(out, Ok), f"enabled {actions[i].describe()} was refused: {out}"

    # -- admin ------------------------------------------------------------------------

    @precondition(
        lambda self: controller_live(self.s) and any(t not in self.s.topics for t in TOPICS)
    )
    @rule(
        partitions=st.integers(1, 2),
        start=st.integers(0, 7),
        shift=st.integers(0, 7),
    )
    def create_topic(self, partitions: int, start: int, shift: int) -> None:
        topic = next(t for t in TOPICS if t not in self.s.topics)
        brokers = tuple(sorted(self.s.brokers))
        assignment = assign_replicas(brokers, partitions, self.REPLICATION_FACTOR, start, shift)
        assert len(assignment) == partitions
        for replicas in assignment:
            assert len(set(replicas)) == self.REPLICATION_FACTOR
        out = self.apply(CreateTopic(topic, assignment))
        assert isinstance(out, Ok), out

    # Only when both topics exist, so that a run keeps one to work on.
    @precondition(lambda self: controller_live(self.s) and len(self.s.topics) == len(TOPICS))
    @rule(data=st.data())
    def delete_topic(self, data: st.DataObject) -> None:
        topic = data.draw(st.sampled_from(sorted(self.s.topics)), label="topic")
        out = self.apply(DeleteTopic(topic))
        assert isinstance(out, Ok), out
        assert topic not in out.state.topics
        assert all(tp.topic != topic for tp in out.state.partitions)
        assert all(p.tp.topic != topic for p in out.state.pending)
        self.producers = {k: v for k, v in self.producers.items() if k[1].topic != topic}

    # -- clients ----------------------------------------------------------------------

    def target(self, data: st.DataObject) -> tuple[TopicPartition, int]:
        """A partition and a broker: mostly one that presumes leadership, else any."""
        lead = leaders(self.s)
        if lead and data.draw(st.integers(0, 4), label="to-leader") > 0:
            tp, b, _ = data.draw(st.sampled_from(lead), label="leader")
            return tp, b
        tp = data.draw(st.sampled_from(sorted(self.s.partitions)), label="tp")
        b = data.draw(st.sampled_from(sorted(self.s.brokers)), label="broker")
        return tp, b

    def fresh_records(self, data: st.DataObject) -> tuple[ProducedRecord, ...]:
        n = data.draw(st.integers(1, 3), label="records")
        out = []
        for _ in range(n):
            key = data.draw(st.none() | st.binary(min_size=1, max_size=3), label="key")
            pad = data.draw(st.binary(max_size=4), label="value")
            self.values += 1
            out.append(ProducedRecord(str(self.values).encode() + pad, key))
        return tuple(out)

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(
        data=st.data(),
        acks=st.sampled_from([ACKS_NONE, ACKS_LEADER, ACKS_ALL]),
        timeout=st.sampled_from([100, TIMEOUT_MS]),
    )
    def produce(self, data: st.DataObject, acks: int, timeout: int) -> None:
        tp, b = self.target(data)
        records = self.fresh_records(data)
        rep = self.s.replica(tp, b)
        leo = rep.log.end_offset if rep is not None else -1
        out = self.apply(Produce(tp, b, records, acks=acks, timeout_ms=timeout))
        if isinstance(out, Rejected):
            return
        reply = out.reply
        assert isinstance(reply, ProduceReply)
        written = out.state.partitions[tp].replica[b].log
        assert written.end_offset == leo + len(records)
        stored = [(r.key, r.value) for r in written.read(leo, written.end_offset)]
        assert stored == [(r.key, r.value) for r in records]
        if acks == ACKS_NONE:
            assert reply.base_offset == NO_OFFSET
            assert reply.pending is None
        elif acks == ACKS_LEADER:
            assert reply.base_offset == leo
            assert reply.pending is None
        else:
            assert reply.base_offset == NO_OFFSET
            assert reply.pending is not None
            assert any(p.request_id == reply.pending for p in out.state.pending)

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(
        data=st.data(),
        pid=st.sampled_from([1, 2]),
        mode=st.sampled_from(["next", "next", "retry", "gap", "old"]),
        acks=st.sampled_from([ACKS_LEADER, ACKS_ALL]),
    )
    def idempotent_produce(self, data: st.DataObject, pid: int, mode: str, acks: int) -> None:
        tp, b = self.target(data)
        nxt, (last_seq, last_values) = self.producers.get((pid, tp), (0, (-1, ())))
        if mode == "retry" and last_values:
            seq, values = last_seq, last_values
        else:
            if mode == "gap":
                seq = nxt + data.draw(st.integers(1, 4), label="gap")
            elif mode == "old":
                seq = max(nxt - 1, 0)
            else:
                seq = nxt
            values = tuple(r.value for r in self.fresh_records(data))
        records = tuple(ProducedRecord(v) for v in values)
        rep = self.s.replica(tp, b)
        leo = rep.log.end_offset if rep is not None else -1
        action = Produce(
            tp, b, records, acks=acks, producer_id=pid, producer_epoch=0, base_sequence=seq
        )
        out = self.apply(action)
        if isinstance(out, Rejected):
            return
        log = out.state.partitions[tp].replica[b].log
        reply = out.reply
        assert isinstance(reply, ProduceReply)
        if log.end_offset == leo + len(records):
            self.producers[(pid, tp)] = (seq + len(records), (seq, values))
            return
        # Nothing appended: a duplicate (same producer, epoch and sequence range as a
        # batch the leader holds), answered with that batch's original offset.
        assert log.end_offset == leo
        if acks == ACKS_ALL:
            # Answered once the original is committed, like the original (DelayedProduce).
            assert reply.base_offset == NO_OFFSET
            req = next(p for p in out.state.pending if p.request_id == reply.pending)
            assert req.last_offset - req.base_offset == len(values) - 1
            base = req.base_offset
        else:
            base = reply.base_offset
        assert base >= 0
        for i, value in enumerate(values):
            if base + i < log.start_offset:
                continue  # retention deleted it; the producer state remembers it
            stored = log.record_at(base + i)
            assert stored is not None
            assert (stored.producer_id, stored.sequence) == (pid, seq + i)
            if mode == "retry":
                assert stored.value == value

    @precondition(lambda self: len(self.s.partitions) > 0)
    @rule(data=st.data())
    def consume(self, data: st.DataObject) -> None:
        """A consumer's Fetch, ListOffsets and OffsetForLeaderEpoch to one broker."""
        tp, b = self.target(data)
        self.fetch(data, tp, b)
        self.list_offsets(data, tp, b)
        self.offset_for_leader_epoch(data, tp, b)

    def fetch(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        rep = self.s.replica(tp, b)
        log = rep.log if rep is not None else None
        anchors = [-1, 0, 1, 5]
        if rep is not None and log is not None:
            anchors += [
                log.start_offset - 1,
                log.start_offset,
                rep.high_watermark,
                log.end_offset,
                log.end_offset + 1,
            ]
        offset = data.draw(st.sampled_from(anchors) | st.integers(-3, 30), label="offset")
        epoch = -1
        if rep is not None and rep.known is not None:
            known = rep.known.leader_epoch
            epoch = data.draw(st.sampled_from([-1, -1, known, known - 1, known + 1]), label="ep")
        max_records = data.draw(st.sampled_from([1 << 30, 1, 2]), label="max")
        out = self.apply(Fetch(tp, b, offset, current_leader_epoch=epoch, max_records=max_records))
        if rep is None or log is None:
            assert isinstance(out, Rejected)
            return
        if isinstance(out, Rejected):
            if out.error is ErrorCode.OFFSET_OUT_OF_RANGE:
                assert offset < log.start_offset or offset > log.end_offset
            return
        reply = out.reply
        assert isinstance(reply, FetchReply)
        assert rep.presumes_leadership(b)
        assert log.start_offset <= offset <= log.end_offset
        assert reply.high_watermark == rep.high_watermark
        assert reply.log_start_offset == log.start_offset
        assert reply.records == log.read(offset, rep.high_watermark)[:max_records]
        assert offset + len(reply.records) <= rep.high_watermark or not reply.records

    def list_offsets(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        ts = data.draw(
            st.sampled_from([EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, 0, self.s.now])
            | st.integers(0, self.s.now + 100),
            label="timestamp",
        )
        out = self.apply(ListOffsets(tp, b, ts))
        if isinstance(out, Rejected):
            return
        rep = out.state.partitions[tp].replica[b]
        reply = out.reply
        assert isinstance(reply, OffsetReply)
        if ts == EARLIEST_TIMESTAMP:
            assert reply.offset == rep.log.start_offset
        elif ts == LATEST_TIMESTAMP:
            assert reply.offset == rep.high_watermark
        else:
            committed = rep.log.read(rep.log.start_offset, rep.high_watermark)
            earlier = [r for r in committed if r.timestamp < ts]
            if reply.offset == -1:
                assert len(earlier) == len(committed)
            else:
                found = rep.log.record_at(reply.offset)
                assert found is not None
                assert reply.offset < rep.high_watermark
                assert found.timestamp >= ts
                assert reply.leader_epoch == found.leader_epoch
                assert all(
                    r.timestamp < ts for r in rep.log.read(rep.log.start_offset, reply.offset)
                )

    def offset_for_leader_epoch(self, data: st.DataObject, tp: TopicPartition, b: int) -> None:
        epoch = data.draw(st.integers(-1, 6), label="epoch")
        out = self.apply(OffsetForLeaderEpoch(tp, b, epoch))
        if isinstance(out, Rejected):
            return
        log = out.state.partitions[tp].replica[b].log
        answer, end = log.end_offset_for_epoch(epoch)
        assert out.reply == OffsetReply(end, answer)
        assert end <= log.end_offset

    @precondition(lambda self: len(self.s.pending) > 0)
    @rule(data=st.data())
    def complete_produce(self, data: st.DataObject) -> None:
        req = data.draw(st.sampled_from(self.s.pending), label="request")
        out = self.apply(CompleteProduce(req.request_id))
        if isinstance(out, Rejected):
            assert out.error is ErrorCode.REQUEST_TIMED_OUT  # not due yet
            return
        reply = out.reply
        assert isinstance(reply, ProduceResponse)
        assert all(p.request_id != req.request_id for p in out.state.pending)
        if reply.error is ErrorCode.NONE:
            assert reply.base_offset == req.base_offset
        else:
            assert reply.base_offset == NO_OFFSET

    # -- faults and time --------------------------------------------------------------

    @precondition(lambda self: any(self.s.is_live(b) for b in self.s.brokers))
    @rule(data=st.data(), expire=st.integers(0, 3))
    def fail(self, data: st.DataObject, expire: int) -> None:
        """A broker (half the time one that leads) crashes, sometimes losing power, or, a
        quarter of the time, its ZooKeeper session expires while it keeps running."""
        live = [b for b in self.s.brokers if self.s.is_live(b)]
        leading = sorted({b for _, b, _ in leaders(self.s) if b in live})
        if leading and data.draw(st.booleans(), label="target a leader"):
            live = leading  # as Jepsen's nemesis targets the leader
        b = data.draw(st.sampled_from(live), label="broker")
        if expire == 0:
            out = self.apply(ExpireSession(b))
            assert isinstance(out, Ok)
            assert out.state.is_up(b)
            assert not out.state.is_live(b)
            assert out.state.controller != b
            return
        lose = self.LOSE_UNFLUSHED and data.draw(st.booleans(), label="power loss")
        out = self.apply(CrashBroker(b, lose_unflushed=lose))
        assert isinstance(out, Ok)
        after = out.state
        assert not after.is_up(b)
        assert not after.is_live(b)
        assert after.controller != b
        assert all(p.broker != b for p in after.pending)
        for part in after.partitions.values():
            if b in part.replica:
                assert part.replica[b].known is None  # what it knew was in memory
                if lose:
                    log = part.replica[b].log
                    assert log.end_offset == log.recovery_point or log.records == ()

    @precondition(lambda self: any(not self.s.is_live(b) for b in self.s.brokers))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        """A crashed broker restarts, or a running one registers again in ZooKeeper."""
        b = data.draw(st.sampled_from([b for b in self.s.brokers if not self.s.is_live(b)]))
        action = Reregister(b) if self.s.is_up(b) else RestartBroker(b)
        out = self.apply(action)
        assert isinstance(out, Ok)
        assert out.state.is_live(b)
        assert out.state.is_up(b)

    @precondition(lambda self: any(self.s.is_up(b) for b in self.s.brokers))
    @rule(data=st.data())
    def flush(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from([b for b in self.s.brokers if self.s.is_up(b)]))
        out = self.apply(FlushLogs(b))
        assert isinstance(out, Ok)
        for part in out.state.partitions.values():
            if b in part.replica:
                log = part.replica[b].log
                assert log.recovery_point == log.end_offset

    @rule(ms=st.sampled_from([1, 50, LAG_MS + 1, TIMEOUT_MS, 10_000]))
    def tick(self, ms: int) -> None:
        now = self.s.now
        out = self.apply(Tick(ms))
        assert isinstance(out, Ok)
        assert out.state.now == now + ms

    def retainable(self) -> list[tuple[TopicPartition, int, int, int]]:
        return [
            (tp, b, rep.log.start_offset, limit)
            for tp, part in self.s.partitions.items()
            for b, rep in part.replica.items()
            if self.s.is_up(b) and (limit := retention_limit(self.s, rep)) > rep.log.start_offset
        ]

    @precondition(lambda self: len(self.retainable()) > 0)
    @rule(data=st.data())
    def retention(self, data: st.DataObject) -> None:
        tp, b, start, limit = data.draw(st.sampled_from(self.retainable()), label="replica")
        new_start = data.draw(st.integers(start + 1, limit), label="new start")
        hw = self.s.partitions[tp].replica[b].high_watermark
        assert new_start <= hw
        out = self.apply(DeleteRetainedPrefix(tp, b, new_start))
        assert isinstance(out, Ok)
        assert out.state.partitions[tp].replica[b].log.start_offset == new_start

    # -- junk ---------------------------------------------------------------------------

    @rule(data=st.data(), k=st.integers(0, 10**6))
    def junk(self, data: st.DataObject, k: int) -> None:
        action, error = data.draw(st.sampled_from(junk_cases(self.s, k)), label="junk")
        refused_unchanged(self.s, action, error)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def named_invariants_hold(self) -> None:
        broken = [
            name
            for name, inv in INVARIANTS.items()
            if name not in self.UNCHECKED and not inv(self.s)
        ]
        assert broken == [], broken

    @invariant()
    def enabled_internal_actions_succeed(self) -> None:
        for action in internal_actions(self.s):
            out = step(self.s, action)
            assert isinstance(out, Ok), action.describe()
            assert out.state != self.s, action.describe()

    @invariant()
    def canonical_key_ignores_what_only_compares(self) -> None:
        """The explorer deduplicates by canonical key: the controller epoch (written, never
        read) and the delayed produces' request ids (identities only) must not change it."""
        key = canonical_key(self.s)
        hash(key)
        shift = 1000
        renamed = attrs.evolve(
            self.s,
            controller_epoch=self.s.controller_epoch + 7,
            pending=tuple(attrs.evolve(p, request_id=p.request_id + shift) for p in self.s.pending),
            next_request_id=self.s.next_request_id + shift,
        )
        assert canonical_key(renamed) == key

    @invariant()
    def acknowledged_offsets_are_unique(self) -> None:
        """Two different records are never both acknowledged at one offset."""
        if self.LOSE_UNFLUSHED:
            return
        seen: dict[tuple[TopicPartition, int], object] = {}
        for ack in self.s.acked:
            key = (ack.tp, ack.offset)
            assert seen.setdefault(key, ack.record) == ack.record


class BootstrappedMachine(ClusterMachine):
    """Starts with a controller and topic "t" (two partitions) whose replicas have all
    taken up their roles, so that runs spend their steps on traffic and faults."""

    @initialize()
    def bootstrap(self) -> None:
        brokers = tuple(sorted(self.s.brokers))
        assignment = assign_replicas(brokers, 2, self.REPLICATION_FACTOR, 0, 0)
        self.apply(ElectController(0))
        self.apply(CreateTopic("t", assignment))
        for p, replicas in enumerate(assignment):
            for b in replicas:
                self.apply(ApplyLeaderAndIsr(TopicPartition("t", p), b))
        assert len(self.s.partitions) == 2


class SmallRetentionMachine(BootstrappedMachine):
    """Four brokers, replication factor 3, and retention small enough to act within a run:
    500 ms or 12 bytes; successful acks=all answers are given as soon as they are due."""

    BROKERS = 4
    EAGER_ACKS = True
    CONFIG = attrs.evolve(ClusterMachine.CONFIG, log_retention_ms=500, log_retention_bytes=12)


class PowerLossMachine(BootstrappedMachine):
    """Crashes may lose each log's unflushed suffix (``lose_unflushed``).

    Kafka does not fsync before acknowledging: it relies on replication, so when the
    replicas that hold an acknowledged record lose power before flushing it, the record is
    legitimately lost.  NoCommittedRecordLostGlobally and LeaderCompleteness are therefore
    not checked in these runs (nor acknowledged_offsets_are_unique, which a lost record
    makes false when its offset is handed out again).  Nor are the invariants that compare
    replicas below a high watermark: a follower that loses its unflushed suffix stays in
    the ISR until the controller sees its session end, and one power loss on the broker
    that is elected while the others are down loses a committed record (the gap KIP-966
    closes).  test_replication.py shows both: test_one_power_loss_can_lose_an_acknowledged_
    record (LeaderCompleteness, LogMatching, ConsistentRead) and test_a_follower_that_loses_
    power_stays_in_the_isr_until_the_controller_acts (WeakIsr, StrongIsr).  Still checked:
    LeaderInIsr, HighWatermarkBelowLeo, OffsetsContiguous and every per-step property.
    """

    LOSE_UNFLUSHED = True
    UNCHECKED = frozenset(
        {
            "NoCommittedRecordLostGlobally",
            "LeaderCompleteness",
            "WeakIsr",
            "StrongIsr",
            "LogMatching",
            "ConsistentRead",
        }
    )


def machine_settings(max_examples: int, steps: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


TestFromScratch = ClusterMachine.TestCase
TestFromScratch.settings = machine_settings(30, 50)

TestBootstrapped = BootstrappedMachine.TestCase
TestBootstrapped.settings = machine_settings(80, 60)

TestSmallRetention = SmallRetentionMachine.TestCase
TestSmallRetention.settings = machine_settings(60, 60)

TestPowerLoss = PowerLossMachine.TestCase
TestPowerLoss.settings = machine_settings(50, 60)


@pytest.mark.parametrize(
    ("variant", "invariant_name"),
    [
        (Variant.HW_ADVANCE_WITHOUT_ISR, "WeakIsr"),
        (Variant.ACK_BEFORE_ISR, "LeaderCompleteness"),
    ],
    ids=["hw-advance-without-isr", "ack-before-isr"],
)
def test_the_machine_catches_known_bad_variants(variant: Variant, invariant_name: str) -> None:
    """The random runs can fail: with a known-bad variant switched on, a named invariant
    breaks within a few runs.  (The explorer, not this, must catch every variant: the
    others need precise interleavings that random runs hit only now and then.)"""

    class Broken(SmallRetentionMachine):
        CONFIG = attrs.evolve(SmallRetentionMachine.CONFIG, variants=frozenset({variant}))

    quick = settings(
        machine_settings(60, 60),
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
    )
    with pytest.raises(AssertionError, match=invariant_name):
        run_state_machine_as_test(Broken, settings=quick)


# --- junk only -----------------------------------------------------------------------------


def world(*actions: Action, brokers: int = 3) -> ClusterState:
    s = initial_state(ClusterMachine.CONFIG, brokers)
    for action in actions:
        out = step(s, action)
        assert isinstance(out, Ok), action.describe()
        s = out.state
    return s


T0 = TopicPartition("t", 0)
_SETUP = (
    ElectController(0),
    CreateTopic("t", ((0, 1, 2), (1, 2, 0))),
    *(ApplyLeaderAndIsr(TopicPartition("t", p), b) for p in (0, 1) for b in (0, 1, 2)),
)
_TRAFFIC = (
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
