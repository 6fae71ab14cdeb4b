"""The cluster state the spec's transitions act on, in Kafka's own terms.

A cluster is brokers (process up, ZooKeeper session alive), the controller and its epoch,
topics with their replica assignment, and per partition: the ZooKeeper partition state
(``/brokers/topics/<t>/partitions/<p>/state``) and each replica's log, high watermark and
the partition state it last learned (from LeaderAndIsr, or from its own ISR write).
History ("ghost") variables record what clients were told, so that invariants can speak
of acknowledged and consumed records.
"""

from __future__ import annotations

import attrs

from spec.config import SpecConfig
from spec.fmap import FrozenMap
from spec.idempotence import EMPTY_SNAPSHOT, ProducerSnapshot
from spec.log import Log, Record

NO_LEADER = -1
UNKNOWN_OFFSET = -1


@attrs.frozen(slots=True, order=True)
class TopicPartition:
    """A partition of a topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@attrs.frozen(slots=True, cache_hash=True)
class ZkPartitionState:
    """The znode ``/brokers/topics/<t>/partitions/<p>/state``: leader, leader epoch, ISR and
    the epoch of the controller that wrote it, with the znode version that conditional
    writes compare against."""

    leader: int
    leader_epoch: int
    isr: frozenset[int]
    controller_epoch: int
    version: int = 0


@attrs.frozen(slots=True)
class FollowerProgress:
    """What the leader knows of a follower: the fetch offset of its latest fetch (its log
    end offset, ``-1`` until it fetches) and when it last caught up to the leader's LEO."""

    log_end_offset: int = UNKNOWN_OFFSET
    last_caught_up_ms: int = 0


@attrs.frozen(slots=True, cache_hash=True)
class Replica:
    """One broker's replica of a partition.

    ``known`` is the partition state this broker last learned; it presumes leadership when
    ``known.leader`` is itself.  A follower must truncate by leader epoch (``truncated``)
    before it fetches in a new epoch.  ``followers`` is the leader's view of its followers.
    """

    log: Log = Log()
    high_watermark: int = 0
    known: ZkPartitionState | None = None
    truncated: bool = True
    followers: FrozenMap[int, FollowerProgress] = FrozenMap()
    producers: ProducerSnapshot = EMPTY_SNAPSHOT

    @property
    def log_end_offset(self) -> int:
        return self.log.end_offset

    def presumes_leadership(self, broker: int) -> bool:
        """Whether this replica, on ``broker``, believes itself the partition leader."""
        return self.known is not None and self.known.leader == broker


@attrs.frozen(slots=True, cache_hash=True)
class Partition:
    """A partition: its assigned replicas (in assignment order), the ZooKeeper partition
    state, and each assigned broker's replica."""

    replicas: tuple[int, ...]
    zk: ZkPartitionState
    replica: FrozenMap[int, Replica]


@attrs.frozen(slots=True)
class Broker:
    """A broker: whether its process runs, and whether its ZooKeeper session is alive (its
    ephemeral ``/brokers/ids/<id>`` exists).  A paused broker is up but unregistered."""

    up: bool = True
    registered: bool = True

    @property
    def live(self) -> bool:
        """Live in the controller's eyes: registered in ZooKeeper."""
        return self.registered


@attrs.frozen(slots=True)
class PendingProduce:
    """An acks=all produce the leader has appended and holds until the ISR has it."""

    request_id: int
    tp: TopicPartition
    broker: int
    leader_epoch: int
    base_offset: int
    last_offset: int
    deadline_ms: int


@attrs.frozen(slots=True)
class AckedRecord:
    """History: a record acknowledged to an acks=all producer at ``offset``."""

    tp: TopicPartition
    offset: int
    record: Record


@attrs.frozen(slots=True, cache_hash=True)
class ClusterState:
    """The whole model: brokers, controller, topics, partitions, in-flight produces, and the
    history variables ``acked`` (acks=all acknowledgements) and ``exposed`` (per partition,
    the records that some leader's high watermark has exposed to consumers)."""

    config: SpecConfig
    now: int = 0
    brokers: FrozenMap[int, Broker] = FrozenMap()
    controller: int = NO_LEADER
    controller_epoch: int = 0
    topics: FrozenMap[str, tuple[tuple[int, ...], ...]] = FrozenMap()
    partitions: FrozenMap[TopicPartition, Partition] = FrozenMap()
    pending: tuple[PendingProduce, ...] = ()
    next_request_id: int = 0
    acked: frozenset[AckedRecord] = frozenset()
    exposed: FrozenMap[TopicPartition, tuple[Record, ...]] = FrozenMap()

    def is_live(self, broker: int) -> bool:
        """Registered in ZooKeeper (the controller's notion of a live broker)."""
        b = self.brokers.get(broker)
        return b is not None and b.registered

    def is_up(self, broker: int) -> bool:
        """The broker's process runs (it may still be unregistered: paused or expired)."""
        b = self.brokers.get(broker)
        return b is not None and b.up

    def replica(self, tp: TopicPartition, broker: int) -> Replica | None:
        part = self.partitions.get(tp)
        return None if part is None else part.replica.get(broker)

    def with_partition(self, tp: TopicPartition, part: Partition) -> ClusterState:
        return attrs.evolve(self, partitions=self.partitions.set(tp, part))

    def with_replica(self, tp: TopicPartition, broker: int, rep: Replica) -> ClusterState:
        part = self.partitions[tp]
        return self.with_partition(tp, attrs.evolve(part, replica=part.replica.set(broker, rep)))


def initial_state(config: SpecConfig, brokers: int) -> ClusterState:
    """``brokers`` live brokers (ids 0..n-1), no controller yet, no topics."""
    return ClusterState(
        config=config,
        brokers=FrozenMap((b, Broker()) for b in range(brokers)),
    )
