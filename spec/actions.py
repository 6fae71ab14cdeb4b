"""The actions of the cluster model, one class per transition, each described in Kafka's words.

Client actions are what a producer, consumer or admin client asks of a broker; fault
actions are what the environment does to brokers; internal actions are what brokers and
the controller do by themselves (delivering LeaderAndIsr, follower fetches, ISR changes,
completing delayed produces).  ``describe()`` is the line a counterexample trace shows.
"""

from __future__ import annotations

import attrs

from spec.state import TopicPartition

ACKS_NONE = 0
ACKS_LEADER = 1
ACKS_ALL = -1
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1


# --- admin -----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class CreateTopic:
    """CreateTopics with an explicit replica assignment (one broker list per partition)."""

    topic: str
    assignment: tuple[tuple[int, ...], ...]

    def describe(self) -> str:
        return f"CreateTopics {self.topic} assignment={[list(a) for a in self.assignment]}"


@attrs.frozen(slots=True)
class DeleteTopic:
    """DeleteTopics."""

    topic: str

    def describe(self) -> str:
        return f"DeleteTopics {self.topic}"


# --- clients ---------------------------------------------------------------------------


@attrs.frozen(slots=True)
class ProducedRecord:
    """A record as a producer sends it."""

    value: bytes
    key: bytes | None = None


@attrs.frozen(slots=True)
class Produce:
    """A Produce request with one record batch for ``tp`` sent to ``broker``.

    ``producer_id``/``producer_epoch``/``base_sequence`` are ``-1`` for a non-idempotent
    producer.  ``size_bytes`` is the batch's size on the wire when the caller knows it
    (checked against message.max.bytes)."""

    tp: TopicPartition
    broker: int
    records: tuple[ProducedRecord, ...]
    acks: int = ACKS_ALL
    timeout_ms: int = 30_000
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    size_bytes: int = 0

    def describe(self) -> str:
        vals = ",".join(r.value.decode("utf-8", "replace") for r in self.records)
        idem = (
            f" pid={self.producer_id} epoch={self.producer_epoch} seq={self.base_sequence}"
            if self.producer_id >= 0
            else ""
        )
        return f"Produce {self.tp} to broker {self.broker} acks={self.acks} [{vals}]{idem}"


@attrs.frozen(slots=True)
class Fetch:
    """A consumer's Fetch of ``tp`` from ``broker`` at ``offset`` (KIP-320: with the
    consumer's ``current_leader_epoch``, or -1 for none)."""

    tp: TopicPartition
    broker: int
    offset: int
    current_leader_epoch: int = -1
    max_records: int = 1 << 30

    def describe(self) -> str:
        return f"Fetch {self.tp} from broker {self.broker} at offset {self.offset}"


@attrs.frozen(slots=True)
class ListOffsets:
    """ListOffsets for ``tp`` at ``timestamp`` (-2 earliest, -1 latest, or a time)."""

    tp: TopicPartition
    broker: int
    timestamp: int
    current_leader_epoch: int = -1

    def describe(self) -> str:
        what = {EARLIEST_TIMESTAMP: "earliest", LATEST_TIMESTAMP: "latest"}.get(
            self.timestamp, f"timestamp {self.timestamp}"
        )
        return f"ListOffsets {self.tp} from broker {self.broker} {what}"


@attrs.frozen(slots=True)
class OffsetForLeaderEpoch:
    """OffsetForLeaderEpoch for ``tp`` and ``leader_epoch`` asked of ``broker``."""

    tp: TopicPartition
    broker: int
    leader_epoch: int
    current_leader_epoch: int = -1

    def describe(self) -> str:
        return f"OffsetForLeaderEpoch {self.tp} epoch {self.leader_epoch} from broker {self.broker}"


# --- faults and time -------------------------------------------------------------------


@attrs.frozen(slots=True)
class CrashBroker:
    """The broker's process dies (SIGKILL).  With ``lose_unflushed`` the machine loses
    power too: each log loses its suffix above the recovery point."""

    broker: int
    lose_unflushed: bool = False

    def describe(self) -> str:
        how = " losing unflushed data" if self.lose_unflushed else ""
        return f"broker {self.broker} crashes{how}"


@attrs.frozen(slots=True)
class RestartBroker:
    """A crashed broker starts again and registers in ZooKeeper."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} restarts"


@attrs.frozen(slots=True)
class ExpireSession:
    """The broker's ZooKeeper session expires while its process keeps running (a long GC
    pause, SIGSTOP, or a network cut): its ephemeral nodes go away."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker}'s ZooKeeper session expires"


@attrs.frozen(slots=True)
class Reregister:
    """A running broker whose session expired registers again in ZooKeeper."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} registers again in ZooKeeper"


@attrs.frozen(slots=True)
class FlushLogs:
    """The broker flushes its logs: every recovery point moves to the log end offset."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} flushes its logs"


@attrs.frozen(slots=True)
class Tick:
    """Time passes by ``ms`` milliseconds."""

    ms: int

    def describe(self) -> str:
        return f"{self.ms} ms pass"


# --- internal: controller, replication -------------------------------------------------


@attrs.frozen(slots=True)
class ElectController:
    """``broker`` wins the race to create the ephemeral /controller znode and bumps
    /controller_epoch."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} becomes controller"


@attrs.frozen(slots=True)
class ControllerUpdatePartition:
    """The controller reacts to broker changes for ``tp``: removes unregistered brokers
    from the ISR and elects a leader (clean: first live ISR member in assignment order;
    unclean only if unclean.leader.election.enable)."""

    tp: TopicPartition

    def describe(self) -> str:
        return f"controller updates leader and ISR of {self.tp}"


@attrs.frozen(slots=True)
class ApplyLeaderAndIsr:
    """``broker`` receives the controller's LeaderAndIsr for ``tp`` and becomes leader or
    follower in the new leader epoch."""

    tp: TopicPartition
    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} applies LeaderAndIsr for {self.tp}"


@attrs.frozen(slots=True)
class FollowerFetch:
    """Follower ``broker`` fetches ``tp`` from its leader: first truncation by leader epoch
    (OffsetForLeaderEpoch) after an epoch change, then everything the leader has."""

    tp: TopicPartition
    broker: int

    def describe(self) -> str:
        return f"follower {self.broker} fetches {self.tp} from its leader"


@attrs.frozen(slots=True)
class ShrinkIsr:
    """The leader drops out-of-sync ``follower`` from the ISR by a conditional write."""

    tp: TopicPartition
    leader: int
    follower: int

    def describe(self) -> str:
        return f"leader {self.leader} removes {self.follower} from the ISR of {self.tp}"


@attrs.frozen(slots=True)
class ExpandIsr:
    """The leader adds caught-up ``follower`` to the ISR by a conditional write."""

    tp: TopicPartition
    leader: int
    follower: int

    def describe(self) -> str:
        return f"leader {self.leader} adds {self.follower} to the ISR of {self.tp}"


@attrs.frozen(slots=True)
class CompleteProduce:
    """The broker answers the delayed acks=all produce ``request_id``."""

    request_id: int

    def describe(self) -> str:
        return f"delayed produce {self.request_id} completes"


@attrs.frozen(slots=True)
class DeleteRetainedPrefix:
    """Retention on ``broker`` deletes the log prefix below ``new_start_offset``."""

    tp: TopicPartition
    broker: int
    new_start_offset: int

    def describe(self) -> str:
        return (
            f"retention on broker {self.broker} moves the log start offset of {self.tp} "
            f"to {self.new_start_offset}"
        )


ClientAction = CreateTopic | DeleteTopic | Produce | Fetch | ListOffsets | OffsetForLeaderEpoch
FaultAction = CrashBroker | RestartBroker | ExpireSession | Reregister | FlushLogs | Tick
InternalAction = (
    ElectController
    | ControllerUpdatePartition
    | ApplyLeaderAndIsr
    | FollowerFetch
    | ShrinkIsr
    | ExpandIsr
    | CompleteProduce
    | DeleteRetainedPrefix
)
Action = ClientAction | FaultAction | InternalAction
