"""Topic administration scenarios: the state every scenario starts from (a new topic's
replicas all in role), CreateTopic's validation rules, and DeleteTopic removing a
topic's partitions, delayed produces and history.

Scenarios set a cluster up through the model's own actions (``World`` from
tests/spec/scenario_helpers.py), drive it into one situation, check what clients and
replicas see, and most end by checking all named invariants.
"""

from __future__ import annotations

import attrs

from spec.actions import (
    ACKS_LEADER,
    CompleteProduce,
    CrashBroker,
    CreateTopic,
    DeleteTopic,
    Fetch,
    Produce,
    ProducedRecord,
)
from spec.errors import ErrorCode
from spec.state import FollowerProgress, TopicPartition
from tests.spec.scenario_helpers import TP, World

# --- DeleteTopic -----------------------------------------------------------------------


def test_delete_topic_removes_partitions_pending_produces_and_history() -> None:
    w = World()
    w.produce(0, "a")
    w.settle()
    w.ok(CompleteProduce(w.s.pending[0].request_id))
    assert len(w.s.acked) == 1
    w.produce(0, "b")
    assert len(w.s.pending) == 1
    w.ok(DeleteTopic(TP.topic))
    assert TP.topic not in w.s.topics
    assert TP not in w.s.partitions
    assert not w.s.pending
    assert w.s.acked == frozenset()
    assert TP not in w.s.exposed
    w.refuse(DeleteTopic(TP.topic), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    w.refuse(Fetch(TP, 0, 0), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    w.refuse(
        Produce(TP, 0, (ProducedRecord(b"x"),), acks=ACKS_LEADER),
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    )
    # The name can be used again: a new topic, offsets from 0.
    w.ok(CreateTopic(TP.topic, ((2, 0, 1),)))
    w.settle()
    assert w.zk.leader == 2
    assert w.produce(2, "new", acks=ACKS_LEADER).base_offset == 0
    w.check_invariants()


def test_create_topic_rules() -> None:
    w = World()
    w.refuse(CreateTopic(TP.topic, ((0, 1, 2),)), ErrorCode.TOPIC_ALREADY_EXISTS)
    w.refuse(CreateTopic("bad name", ((0,),)), ErrorCode.INVALID_TOPIC_EXCEPTION)
    w.refuse(CreateTopic("..", ((0,),)), ErrorCode.INVALID_TOPIC_EXCEPTION)
    w.refuse(CreateTopic("u", ()), ErrorCode.INVALID_PARTITIONS)
    w.refuse(CreateTopic("u", ((),)), ErrorCode.INVALID_REPLICATION_FACTOR)
    w.refuse(CreateTopic("u", ((0, 0),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    w.refuse(CreateTopic("u", ((0, 1), (2,))), ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    w.refuse(CreateTopic("u", ((0, 7),)), ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    w.ok(CrashBroker(2))
    w.ok(CreateTopic("u", ((2, 1),)))
    # A dead assigned broker is left out of the ISR; the first live one leads.
    zk = w.s.partitions[TopicPartition("u", 0)].zk
    assert (zk.leader, zk.isr) == (1, frozenset({1}))


def test_every_scenario_world_starts_with_all_replicas_in_role() -> None:
    w = World()
    zk = w.zk
    assert (zk.leader, zk.leader_epoch, zk.isr) == (0, 0, {0, 1, 2})
    for b in (0, 1, 2):
        assert w.rep(b).known == zk
        assert w.rep(b).truncated
    assert w.rep(0).followers == {1: FollowerProgress(0, 0), 2: FollowerProgress(0, 0)}
    assert attrs.evolve(w.s) == w.s
