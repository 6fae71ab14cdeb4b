"""The group coordinator's state: groups, their members, committed offsets, owed responses.

This is Kafka's classic group protocol as the ZooKeeper-era ``GroupCoordinator`` keeps it
(Kafka 3.x: ``GroupMetadata``, ``MemberMetadata``, the join/sync/heartbeat purgatories),
as immutable values.  The purgatories become data: a member's in-flight JoinGroup or
SyncGroup is a *ticket* on the member, each delayed operation is a deadline in ms, and
every response the coordinator has produced but the caller has not yet taken waits in
``Coordinator.outbox``.

Determinism: Kafka names members ``<client.id or group.instance.id>-<UUID>``; the spec
uses ``<prefix>-<n>`` from a counter in the state, so a harness must match member ids
structurally (same prefix, a consistent bijection between observed and modelled ids),
never literally.  Where Kafka picks from a HashMap (a new leader, a tie in the protocol
vote, the order of the leader's member list) the spec picks the smallest member id or
protocol name; the real choice may be any member the same rule admits.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from spec.config import SpecConfig
from spec.consumer_protocol import PROTOCOL_TYPE, subscribed_topics
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.state import TopicPartition

NO_GENERATION = -1
UNKNOWN_MEMBER_ID = ""
NO_LEADER = ""
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""``GroupCoordinator.NewMemberJoinTimeoutMs``: how long a new member's first JoinGroup
may wait in the join purgatory before the member is dropped (KAFKA-7610)."""


class GroupPhase(enum.Enum):
    """Kafka's ``GroupState``; the value is the name DescribeGroups reports.  A group that
    dies (Empty with no offsets left, or unloaded) is removed from ``Coordinator.groups``,
    so DEAD is what the spec reports for a group it does not hold, as Kafka does."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class CoordinatorStatus(enum.Enum):
    """Whether this broker's group coordinator serves the groups (``validateGroupStatus``)."""

    ACTIVE = "active"
    """Started, leader of the group's ``__consumer_offsets`` partition, loaded."""
    LOADING = "loading"
    """Elected, still reading ``__consumer_offsets``: COORDINATOR_LOAD_IN_PROGRESS."""
    NOT_COORDINATOR = "not-coordinator"
    """Started but not the leader of the partition: NOT_COORDINATOR."""
    INACTIVE = "inactive"
    """Not started or shut down: COORDINATOR_NOT_AVAILABLE."""

    @property
    def error(self) -> ErrorCode:
        """The error a group request gets in this status (NONE when active)."""
        return _STATUS_ERROR[self]


_STATUS_ERROR = {
    CoordinatorStatus.ACTIVE: ErrorCode.NONE,
    CoordinatorStatus.LOADING: ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    CoordinatorStatus.NOT_COORDINATOR: ErrorCode.NOT_COORDINATOR,
    CoordinatorStatus.INACTIVE: ErrorCode.COORDINATOR_NOT_AVAILABLE,
}


@attrs.frozen(slots=True)
class Protocol:
    """One protocol a member supports (e.g. ``range``) with its metadata bytes."""

    name: str
    metadata: bytes = b""


@attrs.frozen(slots=True)
class Member:
    """A group member (``MemberMetadata``).

    ``join_ticket``/``sync_ticket`` are its JoinGroup/SyncGroup parked in purgatory
    (Kafka's ``awaitingJoinCallback``/``awaitingSyncCallback``); a member with a join
    ticket has joined the current rebalance round.  ``is_new`` holds from the member's
    first JoinGroup until its first join completes.  ``heartbeat_deadline_ms`` is the
    pending DelayedHeartbeat; ``None`` when none is armed.
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[Protocol, ...]
    assignment: bytes = b""
    join_ticket: int | None = None
    sync_ticket: int | None = None
    is_new: bool = False
    last_heartbeat_ms: int = 0
    heartbeat_deadline_ms: int | None = None

    @property
    def awaiting_join(self) -> bool:
        """It has sent JoinGroup in this round and awaits the response."""
        return self.join_ticket is not None

    @property
    def awaiting_sync(self) -> bool:
        """It has sent SyncGroup and awaits the leader's assignment."""
        return self.sync_ticket is not None

    @property
    def is_static(self) -> bool:
        """Static membership (KIP-345): it has a ``group.instance.id``."""
        return self.group_instance_id is not None

    @property
    def heartbeat_satisfied(self) -> bool:
        """``MemberMetadata.hasSatisfiedHeartbeat`` when its deadline is reached: a member
        parked in the rebalance (awaiting join or sync) is kept, unless it is new.  Any
        heartbeat re-arms the deadline, so reaching it otherwise means none came."""
        return not self.is_new and (self.awaiting_join or self.awaiting_sync)

    def metadata_for(self, protocol: str) -> bytes | None:
        """The member's metadata for ``protocol``, if it supports it."""
        return next((p.metadata for p in self.protocols if p.name == protocol), None)

    def vote(self, candidates: frozenset[str]) -> str | None:
        """Its most preferred protocol among ``candidates`` (``MemberMetadata.vote``)."""
        return next((p.name for p in self.protocols if p.name in candidates), None)


@attrs.frozen(slots=True)
class JoinTimer:
    """The group's DelayedJoin.  ``initial`` marks Kafka's InitialDelayedJoin (KIP-134):
    it never completes early, and on expiry extends itself by up to
    ``group.initial.rebalance.delay.ms`` while new members keep arriving."""

    deadline_ms: int
    initial: bool = False
    delay_ms: int = 0
    remaining_ms: int = 0


@attrs.frozen(slots=True)
class CommittedOffset:
    """A committed offset (``OffsetAndMetadata``)."""

    offset: int
    metadata: str = ""
    leader_epoch: int | None = None
    commit_timestamp_ms: int = 0


@attrs.frozen(slots=True)
class StoredGroup:
    """The group's latest metadata record in ``__consumer_offsets``: what a coordinator
    that loads the partition restores (as Stable, or Empty when it has no members)."""

    generation_id: int
    protocol_type: str | None
    protocol_name: str | None
    leader_id: str | None
    state_timestamp_ms: int
    members: tuple[Member, ...]


@attrs.frozen(slots=True, cache_hash=True)
class Group:
    """A consumer group at its coordinator (``GroupMetadata``) and its committed offsets."""

    group_id: str
    phase: GroupPhase = GroupPhase.EMPTY
    state_timestamp_ms: int = 0
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: FrozenMap[str, Member] = FrozenMap()
    pending_members: FrozenMap[str, int] = FrozenMap()
    """KIP-394: member ids handed out with MEMBER_ID_REQUIRED -> expiry deadline (ms)."""
    pending_sync_members: frozenset[str] = frozenset()
    """Members that must still send SyncGroup for this generation (KAFKA-12890)."""
    join_timer: JoinTimer | None = None
    sync_deadline_ms: int | None = None
    new_member_added: bool = False
    subscribed_topics: frozenset[str] | None = None
    """Topics the consumer group subscribes to, as Kafka computes them at each new
    generation; ``None`` when unknown (not a consumer group, or unreadable metadata)."""
    offsets: FrozenMap[TopicPartition, CommittedOffset] = FrozenMap()
    stored: StoredGroup | None = None

    def static_member_id(self, group_instance_id: str | None) -> str | None:
        """The member id currently bound to ``group_instance_id``, if any."""
        if group_instance_id is None:
            return None
        return next(
            (
                m.member_id
                for m in self.members.values()
                if m.group_instance_id == group_instance_id
            ),
            None,
        )

    def member_ids(self) -> list[str]:
        """Member ids in the spec's canonical order."""
        return sorted(self.members)

    @property
    def all_members_joined(self) -> bool:
        """``hasAllMembersJoined``: every member awaits join and no KIP-394 id is pending."""
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    @property
    def rebalance_timeout_ms(self) -> int:
        """The largest rebalance timeout among the members (0 for no members)."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def candidate_protocols(self) -> frozenset[str]:
        """Protocols every member supports."""
        sets = [frozenset(p.name for p in m.protocols) for m in self.members.values()]
        return frozenset.intersection(*sets) if sets else frozenset()

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        """``GroupMetadata.supportsProtocols``: may a member with these protocols join?"""
        names = frozenset(names)
        if self.phase is GroupPhase.EMPTY:
            return bool(protocol_type) and bool(names)
        if self.protocol_type != protocol_type:
            return False
        return bool(names & self.candidate_protocols()) if self.members else bool(names)

    def select_protocol(self) -> str | None:
        """The protocol every member supports that gets the most votes (``selectProtocol``)."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            v = m.vote(candidates)
            if v is not None:
                votes[v] = votes.get(v, 0) + 1
        if not votes:
            return None
        return min(votes, key=lambda name: (-votes[name], name))

    def compute_subscribed_topics(self) -> frozenset[str] | None:
        """``computeSubscribedTopics``: the union of the members' subscriptions."""
        if self.protocol_type != PROTOCOL_TYPE:
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        out: set[str] = set()
        for m in self.members.values():
            topics = subscribed_topics(m.metadata_for(self.protocol_name) or b"")
            if topics is None:
                return None
            out |= topics
        return frozenset(out)


@attrs.frozen(slots=True)
class JoinMember:
    """One entry of the member list the leader's JoinGroup response carries."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@attrs.frozen(slots=True)
class JoinResponse:
    """A JoinGroup response body.  On error Kafka sends generation -1, no protocol, no
    leader (``""``), no members, and the member id the error concerns."""

    error: ErrorCode
    member_id: str
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = NO_LEADER
    skip_assignment: bool = False
    members: tuple[JoinMember, ...] = ()


@attrs.frozen(slots=True)
class SyncResponse:
    """A SyncGroup response body: the member's assignment bytes, or an error."""

    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@attrs.frozen(slots=True)
class Abandoned:
    """The coordinator dropped the request's callback: Kafka never answers it (a second
    JoinGroup/SyncGroup from the same member replaces the first; a removed member's
    parked SyncGroup is forgotten; a shut-down broker answers nothing).  The client
    sees its request time out."""


@attrs.frozen(slots=True)
class Pending:
    """The request is parked in purgatory; its response will appear in the outbox under
    ``ticket`` (see ``spec.group.take_responses``)."""

    ticket: int


@attrs.frozen(slots=True)
class Completed:
    """A parked request's response, now due to the client."""

    ticket: int
    response: JoinResponse | SyncResponse | Abandoned


ParkedReply = JoinResponse | SyncResponse | Pending
"""What a JoinGroup or SyncGroup action replies: a response now, or a ticket for later."""


@attrs.frozen(slots=True, cache_hash=True)
class Coordinator:
    """One broker's group coordinator: its groups, the time, what it owes clients."""

    config: SpecConfig = attrs.field(factory=SpecConfig)
    now_ms: int = 0
    status: CoordinatorStatus = CoordinatorStatus.ACTIVE
    groups: FrozenMap[str, Group] = FrozenMap()
    next_member_seq: int = 1
    next_ticket: int = 1
    outbox: tuple[Completed, ...] = ()


def coordinator(config: SpecConfig | None = None, *, now_ms: int = 0) -> Coordinator:
    """A freshly elected, loaded coordinator with no groups."""
    return Coordinator(config=config or SpecConfig(), now_ms=now_ms)
