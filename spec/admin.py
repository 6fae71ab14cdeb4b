"""Topic administration: CreateTopics and DeleteTopics, and Kafka's replica assignment.

Topic names follow Kafka's rule (1 to 249 of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``).
The assignment is explicit in the action because Kafka picks its starting broker and
replica shift at random: :func:`assign_replicas` computes Kafka's rack-unaware round-robin
assignment for a given start index and shift.
"""

from __future__ import annotations

import re

import attrs

from spec.actions import CreateTopic, DeleteTopic
from spec.errors import ErrorCode
from spec.outcome import Ok, Outcome, Rejected
from spec.replication import new_partition
from spec.state import NO_LEADER, ClusterState, TopicPartition

MAX_TOPIC_NAME_LENGTH = 249
_LEGAL = re.compile(r"[a-zA-Z0-9._-]+")


def valid_topic_name(name: str) -> bool:
    """Kafka's ``Topic.validate``.

    post: not __return__ or 0 < len(name) <= MAX_TOPIC_NAME_LENGTH and name not in (".", "..")
    post: not __return__ or all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    """
    return (
        0 < len(name) <= MAX_TOPIC_NAME_LENGTH
        and name not in (".", "..")
        and _LEGAL.fullmatch(name) is not None
    )


def assign_replicas(
    brokers: tuple[int, ...], partitions: int, replication_factor: int, start_index: int, shift: int
) -> tuple[tuple[int, ...], ...]:
    """Kafka's rack-unaware assignment: partition p's first replica is broker
    ``(p + start_index) % n``; the others follow at a shift that grows by one every ``n``
    partitions, so replicas spread evenly.

    Every partition gets ``replication_factor`` distinct brokers from ``brokers``, and
    leadership (the first replica) is spread evenly: each broker leads the floor or the
    ceiling of ``partitions / len(brokers)`` partitions.

    pre: len(set(brokers)) == len(brokers)
    pre: 0 < replication_factor <= len(brokers)
    pre: partitions > 0
    post: len(__return__) == partitions
    post: all(len(set(r)) == len(r) == replication_factor for r in __return__)
    post: all(b in brokers for r in __return__ for b in r)
    post: all(sum(r[0] == b for r in __return__) >= partitions // len(brokers) for b in brokers)
    post: all(sum(r[0] == b for r in __return__) <= -(-partitions // len(brokers)) for b in brokers)
    """
    n = len(brokers)
    if n == 0 or not 0 < replication_factor <= n or partitions <= 0:
        return ()
    out = []
    for p in range(partitions):
        if p > 0 and p % n == 0:
            shift += 1
        first = (p + start_index) % n
        replicas = [brokers[first]]
        for j in range(replication_factor - 1):
            step = 1 + (shift + j) % (n - 1)
            replicas.append(brokers[(first + step) % n])
        out.append(tuple(replicas))
    return tuple(out)


def create_topic(s: ClusterState, a: CreateTopic) -> Outcome[ClusterState, None]:
    """The controller creates the topic: every partition gets the live assigned replicas as
    ISR and the first of them as leader, at leader epoch 0."""
    if s.controller == NO_LEADER or not s.is_live(s.controller):
        return Rejected(s, ErrorCode.NOT_CONTROLLER)
    if not valid_topic_name(a.topic):
        return Rejected(s, ErrorCode.INVALID_TOPIC_EXCEPTION)
    if a.topic in s.topics:
        return Rejected(s, ErrorCode.TOPIC_ALREADY_EXISTS)
    if not a.assignment:
        return Rejected(s, ErrorCode.INVALID_PARTITIONS)
    rf = len(a.assignment[0])
    if rf == 0:
        return Rejected(s, ErrorCode.INVALID_REPLICATION_FACTOR)
    for replicas in a.assignment:
        if len(replicas) != rf or len(set(replicas)) != rf:
            return Rejected(s, ErrorCode.INVALID_REPLICA_ASSIGNMENT)
        if any(b not in s.brokers for b in replicas):
            return Rejected(s, ErrorCode.INVALID_REPLICA_ASSIGNMENT)
    s = attrs.evolve(s, topics=s.topics.set(a.topic, a.assignment))
    for p, replicas in enumerate(a.assignment):
        s = s.with_partition(TopicPartition(a.topic, p), new_partition(s, replicas))
    return Ok(s, None)


def delete_topic(s: ClusterState, a: DeleteTopic) -> Outcome[ClusterState, None]:
    """The topic, its partitions, their logs and in-flight produces go away."""
    if s.controller == NO_LEADER or not s.is_live(s.controller):
        return Rejected(s, ErrorCode.NOT_CONTROLLER)
    if a.topic not in s.topics:
        return Rejected(s, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    partitions = s.partitions
    exposed = s.exposed
    for p in range(len(s.topics[a.topic])):
        tp = TopicPartition(a.topic, p)
        partitions = partitions.delete(tp)
        exposed = exposed.delete(tp)
    return Ok(
        attrs.evolve(
            s,
            topics=s.topics.delete(a.topic),
            partitions=partitions,
            exposed=exposed,
            pending=tuple(p for p in s.pending if p.tp.topic != a.topic),
            acked=frozenset(r for r in s.acked if r.tp.topic != a.topic),
        ),
        None,
    )
