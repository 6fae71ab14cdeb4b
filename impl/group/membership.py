"""A consumer group and its members as the group coordinator holds them (Kafka 3.x
``GroupMetadata`` and ``MemberMetadata``), sans-IO: no clock, no sockets, no tasks.

A member's JoinGroup or SyncGroup parked until the rebalance moves on is a *ticket*
(an int) on the member; whoever drives the state (``impl.group.coordinator``) maps
tickets to the waiting requests.  Every deadline (a member's session, a KIP-394 pending
member id, the join phase, the sync phase) is a time in ms kept here; nothing fires on
its own.  The rules that move a group between phases are in ``impl.group.rebalance``
and ``impl.group.requests``.

Where Kafka picks from a hash map (a new leader, a tie in the protocol vote) this picks
the smallest member id or protocol name, as the spec does.

Independent of the spec's group model (``spec.group_state``, ``spec.group_rebalance``) on
purpose: the same Kafka rules written a second time, on mutable values of its own, so
that tests/group/test_membership_vs_spec.py, which runs both on the same requests,
compares two implementations of the rules rather than one with itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

from impl.group.records import GroupRecord, MemberRecord
from spec.errors import ErrorCode

NO_GENERATION = -1
UNKNOWN_MEMBER_ID = ""
NO_LEADER = ""
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
"""``GroupCoordinator.NewMemberJoinTimeoutMs``: how long a new member's first JoinGroup
may stay parked before the member is dropped (KAFKA-7610)."""


class GroupPhase(enum.Enum):
    """Kafka's ``GroupState``; the value is the name DescribeGroups and ListGroups report."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@attrs.frozen(slots=True)
class Protocol:
    """One protocol a member supports (e.g. ``range``) with its metadata bytes."""

    name: str
    metadata: bytes = b""


@attrs.define(slots=True)
class Member:
    """A group member (``MemberMetadata``).  ``join_ticket``/``sync_ticket`` are its
    parked JoinGroup/SyncGroup (Kafka's ``awaitingJoinCallback``/``awaitingSyncCallback``);
    ``is_new`` holds from its first JoinGroup until that join completes;
    ``heartbeat_deadline_ms`` is its armed session expiry (None: none armed)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: tuple[Protocol, ...]
    assignment: bytes = b""
    join_ticket: int | None = None
    sync_ticket: int | None = None
    is_new: bool = False
    heartbeat_deadline_ms: int | None = None

    @property
    def awaiting_join(self) -> bool:
        return self.join_ticket is not None

    @property
    def awaiting_sync(self) -> bool:
        return self.sync_ticket is not None

    @property
    def is_static(self) -> bool:
        """Static membership (KIP-345): it has a ``group.instance.id``."""
        return self.group_instance_id is not None

    @property
    def heartbeat_satisfied(self) -> bool:
        """``hasSatisfiedHeartbeat`` at its session deadline: a member parked in the
        rebalance counts as alive, unless it is new (every heartbeat re-arms the deadline,
        so reaching it otherwise means none came)."""
        return not self.is_new and (self.awaiting_join or self.awaiting_sync)

    def metadata_for(self, protocol: str) -> bytes | None:
        """Its metadata for ``protocol``, if it supports it."""
        return next((p.metadata for p in self.protocols if p.name == protocol), None)

    def vote(self, candidates: frozenset[str]) -> str | None:
        """Its most preferred protocol among ``candidates`` (``MemberMetadata.vote``)."""
        return next((p.name for p in self.protocols if p.name in candidates), None)


@attrs.frozen(slots=True)
class JoinTimer:
    """The group's DelayedJoin.  ``initial`` is Kafka's InitialDelayedJoin (KIP-134): it
    never completes early and, at its deadline, extends itself while new members keep
    arriving, by up to ``group.initial.rebalance.delay.ms`` at a time."""

    deadline_ms: int
    initial: bool = False
    delay_ms: int = 0
    remaining_ms: int = 0


@attrs.define(slots=True)
class Group:
    """A group at its coordinator (``GroupMetadata``)."""

    group_id: str
    phase: GroupPhase = GroupPhase.EMPTY
    state_timestamp_ms: int = 0
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = attrs.field(factory=dict)
    pending_members: dict[str, int] = attrs.field(factory=dict)
    """KIP-394: member ids handed out with MEMBER_ID_REQUIRED -> expiry deadline (ms)."""
    pending_sync_members: set[str] = attrs.field(factory=set)
    """Members that must still send SyncGroup for this generation (KAFKA-12890)."""
    join_timer: JoinTimer | None = None
    sync_deadline_ms: int | None = None
    new_member_added: bool = False

    def transition(self, phase: GroupPhase, now_ms: int) -> None:
        """``transitionTo``: the new phase, stamped (offsets of an Empty group expire
        from this time, KIP-211)."""
        self.phase = phase
        self.state_timestamp_ms = now_ms

    def static_member_id(self, group_instance_id: str | None) -> str | None:
        """The member id currently bound to ``group_instance_id``, if any."""
        if group_instance_id is None:
            return None
        bound = (m for m in self.members.values() if m.group_instance_id == group_instance_id)
        return next((m.member_id for m in bound), None)

    def member_ids(self) -> list[str]:
        return sorted(self.members)

    @property
    def num_awaiting_join(self) -> int:
        return sum(1 for m in self.members.values() if m.awaiting_join)

    @property
    def all_members_joined(self) -> bool:
        """``hasAllMembersJoined``: every member awaits join and no KIP-394 id is pending."""
        return not self.pending_members and all(m.awaiting_join for m in self.members.values())

    @property
    def rebalance_timeout_ms(self) -> int:
        """The largest rebalance timeout among the members (0 with no members)."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def candidate_protocols(self) -> frozenset[str]:
        """Protocols every member supports."""
        sets = [frozenset(p.name for p in m.protocols) for m in self.members.values()]
        return frozenset.intersection(*sets) if sets else frozenset()

    def supports_protocols(self, protocol_type: str, names: Iterable[str]) -> bool:
        """``supportsProtocols``: may a member with these protocols join?"""
        wanted = frozenset(names)
        if self.phase is GroupPhase.EMPTY:
            return bool(protocol_type) and bool(wanted)
        if self.protocol_type != protocol_type:
            return False
        return bool(wanted & self.candidate_protocols()) if self.members else bool(wanted)

    def select_protocol(self) -> str | None:
        """The protocol every member supports with the most votes (``selectProtocol``)."""
        candidates = self.candidate_protocols()
        votes: dict[str, int] = {}
        for m in self.members.values():
            v = m.vote(candidates)
            if v is not None:
                votes[v] = votes.get(v, 0) + 1
        if not votes:
            return None
        return min(votes, key=lambda name: (-votes[name], name))

    def add(self, member: Member) -> None:
        """``GroupMetadata.add``: the first member sets the protocol type and, with no
        leader yet, leads; a KIP-394 pending id becomes a member."""
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.pending_members.pop(member.member_id, None)

    def remove(self, member_id: str) -> Member | None:
        """``GroupMetadata.remove``: the member goes (its parked tickets are the caller's
        to abandon); a leader that goes is replaced by another member."""
        member = self.members.pop(member_id, None)
        if self.leader_id == member_id:
            self.leader_id = min(self.members) if self.members else None
        self.pending_members.pop(member_id, None)
        self.pending_sync_members.discard(member_id)
        return member

    def replace_static_member(self, old_id: str, new_id: str) -> Member:
        """``replaceStaticMember``: the member bound to a group.instance.id takes a new id
        (Kafka leaves the old id in the pending-sync set)."""
        member = self.members.pop(old_id)
        member.member_id = new_id
        self.members[new_id] = member
        if self.leader_id == old_id:
            self.leader_id = new_id
        return member

    def to_record(self, assignment: dict[str, bytes] | None = None) -> GroupRecord:
        """``GroupMetadataManager.storeGroup``'s value: the group with each member's
        metadata for the chosen protocol and its assignment (``assignment`` overrides)."""
        members = []
        for mid in self.member_ids():
            m = self.members[mid]
            meta = m.metadata_for(self.protocol_name) if self.protocol_name is not None else None
            members.append(
                MemberRecord(
                    member_id=mid,
                    group_instance_id=m.group_instance_id,
                    client_id=m.client_id,
                    client_host=m.client_host,
                    rebalance_timeout_ms=m.rebalance_timeout_ms,
                    session_timeout_ms=m.session_timeout_ms,
                    subscription=meta or b"",
                    assignment=m.assignment if assignment is None else assignment.get(mid, b""),
                )
            )
        return GroupRecord(
            protocol_type=self.protocol_type or "",
            generation=self.generation_id,
            protocol=self.protocol_name,
            leader=self.leader_id,
            current_state_timestamp_ms=self.state_timestamp_ms,
            members=tuple(members),
        )

    @classmethod
    def from_record(cls, group_id: str, record: GroupRecord) -> Group:
        """``GroupMetadata.loadGroup``: Stable at the stored generation if it has members,
        else Empty; each member supports just the chosen protocol."""
        protocol_type = record.protocol_type or None
        g = cls(
            group_id=group_id,
            phase=GroupPhase.STABLE if record.members else GroupPhase.EMPTY,
            state_timestamp_ms=record.current_state_timestamp_ms,
            generation_id=record.generation,
            protocol_type=protocol_type,
            protocol_name=record.protocol,
            leader_id=record.leader if record.members else None,
        )
        for r in record.members:
            g.members[r.member_id] = Member(
                member_id=r.member_id,
                group_instance_id=r.group_instance_id,
                client_id=r.client_id,
                client_host=r.client_host,
                session_timeout_ms=r.session_timeout_ms,
                rebalance_timeout_ms=r.rebalance_timeout_ms,
                protocol_type=protocol_type or "",
                protocols=(Protocol(record.protocol or "", r.subscription),),
                assignment=r.assignment,
            )
        if g.leader_id is not None and g.leader_id not in g.members:
            g.leader_id = min(g.members) if g.members else None
        return g


def validate_current_member(g: Group, member_id: str, group_instance_id: str | None) -> ErrorCode:
    """``validateCurrentMember``: a static member's instance id must be bound to this
    member id (else FENCED_INSTANCE_ID, or UNKNOWN_MEMBER_ID when unbound); the member id
    must belong to the group (else UNKNOWN_MEMBER_ID)."""
    if group_instance_id is not None:
        bound = g.static_member_id(group_instance_id)
        if bound is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if bound != member_id:
            return ErrorCode.FENCED_INSTANCE_ID
    return ErrorCode.NONE if member_id in g.members else ErrorCode.UNKNOWN_MEMBER_ID


# --- what the coordinator answers ---------------------------------------------------------


@attrs.frozen(slots=True)
class JoinMember:
    """One entry of the member list the leader's JoinGroup response carries."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@attrs.frozen(slots=True)
class JoinResult:
    """A JoinGroup answer (``JoinGroupResult``).  On error: generation -1, no protocol,
    no leader, no members, and the member id the error concerns."""

    error: ErrorCode
    member_id: str
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str = NO_LEADER
    skip_assignment: bool = False
    members: tuple[JoinMember, ...] = ()


@attrs.frozen(slots=True)
class SyncResult:
    """A SyncGroup answer: the member's assignment, or an error."""

    error: ErrorCode
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None


@attrs.frozen(slots=True)
class Abandoned:
    """The coordinator dropped a parked request's callback: Kafka never answers it (a
    second JoinGroup/SyncGroup of the member replaced it, or the member was removed)."""


@attrs.frozen(slots=True)
class Parked:
    """The request waits; its answer will come out under ``ticket``."""

    ticket: int


def leader_members(g: Group) -> tuple[JoinMember, ...]:
    """``currentMemberMetadata``: every member with its metadata for the chosen protocol."""
    name = g.protocol_name or ""
    return tuple(
        JoinMember(mid, g.members[mid].group_instance_id, g.members[mid].metadata_for(name) or b"")
        for mid in g.member_ids()
    )


def member_join_result(g: Group, member_id: str) -> JoinResult:
    """The successful JoinGroup answer for ``member_id`` in the current generation; only
    the leader gets the member list."""
    return JoinResult(
        error=ErrorCode.NONE,
        member_id=member_id,
        generation_id=g.generation_id,
        protocol_type=g.protocol_type,
        protocol_name=g.protocol_name,
        leader_id=g.leader_id or NO_LEADER,
        members=leader_members(g) if g.leader_id == member_id else (),
    )
