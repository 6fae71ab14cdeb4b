"""Consumer group operations of the conformance harness, and what they observe.

Members are *slots* (0, 1, 2): a slot is one consumer with its own connection to the
group coordinator, client id ``m<slot>`` and, when static, group.instance.id ``i<slot>``.
Requests that are not a member's (FindCoordinator, DescribeGroups, OffsetFetch, a simple
consumer's OffsetCommit) go on a connection of their own, slot ``ADMIN``.

Member ids are random in Kafka and ``<prefix>-<n>`` in the spec, so neither appears in an
operation or an observation: an operation names a member id by its slot and its index
among the ids that slot was told, an observation as ``<prefix>.<index>`` (``m1.0``); see
``harness.conform_group_ids``.

A group operation's observation (:class:`GroupStep`) is every answer the harness read
while performing it: the operation's own (unless its request is parked in the
coordinator's purgatory), the answers of other members' parked requests that it released,
and the DescribeGroups answers it polled to learn that the coordinator had handled a
parked request (see ``docs/harness.md``, "Consumer groups").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from harness.client import Error, error_name
from harness.conform_group_ids import NEW, client_id, id_prefix, instance_id, logical_id
from spec.state import TopicPartition

DESCRIBE_GROUPS = 15
"""The API key of DescribeGroups, which the group rules need besides the group APIs."""
ADMIN = -1
"""The slot of requests that are no member's."""
SESSION_TIMEOUT_MS = 300_000
"""Members' session and rebalance timeouts: longer than any example, so that no
session, join or sync deadline falls due while the harness does not wait for it."""
INVALID_SESSION_TIMEOUT_MS = 1_000
"""Below Kafka's group.min.session.timeout.ms (6 s): INVALID_SESSION_TIMEOUT."""
PROTOCOL_TYPE = "consumer"

Subscription = tuple[str, tuple[str, ...]]
"""A protocol a member offers: its name and the (logical) topics it subscribes to."""


def _who(slot: int, member: int, static: bool) -> str:
    if slot == ADMIN:
        return "a simple consumer"
    who = "new member" if member == NEW else logical_id(id_prefix(slot, static), member)
    return f"{client_id(slot)} ({who})"


# --- operations ----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class JoinGroup:
    """A member's JoinGroup with its protocols (name and subscribed topics)."""

    slot: int
    member: int = NEW
    static: bool = False
    protocols: tuple[Subscription, ...] = (("range", ()),)
    session_timeout_ms: int = SESSION_TIMEOUT_MS

    def describe(self) -> str:
        offered = ", ".join(f"{n}{list(t)}" for n, t in self.protocols)
        timeout = (
            ""
            if self.session_timeout_ms == SESSION_TIMEOUT_MS
            else f" session {self.session_timeout_ms} ms"
        )
        static = f" static {instance_id(self.slot)}" if self.static else ""
        return f"JoinGroup {_who(self.slot, self.member, self.static)}{static} [{offered}]{timeout}"


@attrs.frozen(slots=True)
class SyncGroup:
    """A member's SyncGroup; a leader's carries an assignment per (logical) member id."""

    slot: int
    member: int
    generation: int
    static: bool = False
    protocol_name: str | None = None
    assignments: tuple[tuple[str, bytes], ...] = ()

    def describe(self) -> str:
        given = ", ".join(f"{m}: {len(a)}B" for m, a in self.assignments)
        what = f" assigning {{{given}}}" if self.assignments else ""
        return (
            f"SyncGroup {_who(self.slot, self.member, self.static)} generation "
            f"{self.generation} protocol {self.protocol_name}{what}"
        )


@attrs.frozen(slots=True)
class Heartbeat:
    slot: int
    member: int
    generation: int
    static: bool = False

    def describe(self) -> str:
        return f"Heartbeat {_who(self.slot, self.member, self.static)} generation {self.generation}"


@attrs.frozen(slots=True)
class LeaveGroup:
    slot: int
    member: int
    static: bool = False

    def describe(self) -> str:
        return f"LeaveGroup {_who(self.slot, self.member, self.static)}"


@attrs.frozen(slots=True)
class OffsetCommit:
    """OffsetCommit of (partition, offset, metadata) by a member, or by a simple consumer
    (slot ``ADMIN``, no member id, generation -1 unless it claims one)."""

    slot: int
    member: int
    generation: int
    offsets: tuple[tuple[TopicPartition, int, str], ...]
    static: bool = False

    def describe(self) -> str:
        shown = ", ".join(f"{tp}@{o}{' ' + repr(m) if m else ''}" for tp, o, m in self.offsets)
        return (
            f"OffsetCommit {_who(self.slot, self.member, self.static)} generation "
            f"{self.generation} [{shown}]"
        )


@attrs.frozen(slots=True)
class OffsetFetch:
    """OffsetFetch of some partitions, or (None) of every partition the group committed."""

    partitions: tuple[TopicPartition, ...] | None = None

    def describe(self) -> str:
        which = "all" if self.partitions is None else ", ".join(map(str, self.partitions))
        return f"OffsetFetch [{which}]"


@attrs.frozen(slots=True)
class DescribeGroup:
    def describe(self) -> str:
        return "DescribeGroups"


@attrs.frozen(slots=True)
class FindCoordinator:
    def describe(self) -> str:
        return "FindCoordinator"


GroupOperation = (
    JoinGroup
    | SyncGroup
    | Heartbeat
    | LeaveGroup
    | OffsetCommit
    | OffsetFetch
    | DescribeGroup
    | FindCoordinator
)
GROUP_OPERATIONS = (
    JoinGroup,
    SyncGroup,
    Heartbeat,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    DescribeGroup,
    FindCoordinator,
)


def slot_of(op: GroupOperation) -> int:
    """The connection the operation's request goes on."""
    if isinstance(op, JoinGroup | SyncGroup | Heartbeat | LeaveGroup | OffsetCommit):
        return op.slot
    return ADMIN


# --- answers -------------------------------------------------------------------------------


@attrs.frozen(slots=True)
class JoinAnswer:
    """A JoinGroup answer; ``members`` (the leader's only) as (member, instance id,
    metadata), sorted."""

    error: Error
    member_id: str = ""
    generation: int = -1
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: tuple[tuple[str, str | None, bytes], ...] = ()

    def describe(self) -> str:
        if self.error and self.generation < 0:
            who = f" {self.member_id}" if self.member_id else ""
            return f"JoinGroup {error_name(self.error)}{who}"
        members = ", ".join(m for m, _, _ in self.members)
        return (
            f"JoinGroup {error_name(self.error)} {self.member_id} generation {self.generation} "
            f"{self.protocol_type}/{self.protocol_name} leader {self.leader or '-'}"
            + (" skip assignment" if self.skip_assignment else "")
            + (f" members [{members}]" if self.members else "")
        )


@attrs.frozen(slots=True)
class SyncAnswer:
    error: Error
    assignment: bytes = b""
    protocol_type: str | None = None
    protocol_name: str | None = None

    def describe(self) -> str:
        if self.error:
            return f"SyncGroup {error_name(self.error)}"
        shown = self.assignment.hex() or "''"
        return f"SyncGroup NONE {self.protocol_type}/{self.protocol_name} assignment {shown}"


@attrs.frozen(slots=True)
class GroupErrorAnswer:
    """A Heartbeat or LeaveGroup answer: its error (a LeaveGroup's member's, if the
    request's is NONE)."""

    api: str
    error: Error

    def describe(self) -> str:
        return f"{self.api} {error_name(self.error)}"


@attrs.frozen(slots=True)
class CommitAnswer:
    partitions: tuple[tuple[TopicPartition, Error], ...]

    @property
    def error(self) -> Error:
        """The first partition's error (for the tally)."""
        return self.partitions[0][1] if self.partitions else 0

    def describe(self) -> str:
        return "OffsetCommit " + ", ".join(f"{tp} {error_name(e)}" for tp, e in self.partitions)


@attrs.frozen(slots=True)
class OffsetsAnswer:
    """An OffsetFetch answer: its error and (partition, offset, metadata), sorted."""

    error: Error
    partitions: tuple[tuple[TopicPartition, int, str], ...] = ()

    def describe(self) -> str:
        if self.error:
            return f"OffsetFetch {error_name(self.error)}"
        shown = ", ".join(f"{tp}@{o}{' ' + repr(m) if m else ''}" for tp, o, m in self.partitions)
        return f"OffsetFetch [{shown}]"


@attrs.frozen(slots=True)
class CoordinatorAnswer:
    """FindCoordinator: its error and whether it names the coordinator the harness found."""

    error: Error
    same_coordinator: bool = False

    def describe(self) -> str:
        if self.error:
            return f"FindCoordinator {error_name(self.error)}"
        return "FindCoordinator " + (
            "the coordinator" if self.same_coordinator else "ANOTHER broker"
        )


@attrs.frozen(slots=True)
class DescribedMember:
    member_id: str
    instance_id: str | None
    client_id: str
    metadata: bytes
    assignment: bytes


@attrs.frozen(slots=True)
class GroupDescription:
    """DescribeGroups of the example's group (Kafka: metadata and assignments only when
    Stable); members sorted."""

    error: Error
    state: str = ""
    protocol_type: str = ""
    protocol: str = ""
    members: tuple[DescribedMember, ...] = ()

    def describe(self) -> str:
        if self.error:
            return f"DescribeGroups {error_name(self.error)}"
        members = ", ".join(
            m.member_id + (f"={m.assignment.hex()}" if m.assignment else "") for m in self.members
        )
        protocol = f" {self.protocol_type}/{self.protocol}" if self.protocol_type else ""
        return f"DescribeGroups {self.state}{protocol} [{members}]"


@attrs.frozen(slots=True)
class NoResponse:
    """The member's request got no answer (in time), or its connection failed."""

    reason: str
    error: str = "NO_RESPONSE"

    def describe(self) -> str:
        return f"no answer: {self.reason}"


GroupAnswer = (
    JoinAnswer
    | SyncAnswer
    | GroupErrorAnswer
    | CommitAnswer
    | OffsetsAnswer
    | CoordinatorAnswer
    | GroupDescription
    | NoResponse
)


@attrs.frozen(slots=True)
class SlotAnswer:
    """An answer the harness read on a member's connection (or the admin one)."""

    slot: int
    answer: GroupAnswer

    def describe(self) -> str:
        who = "admin" if self.slot == ADMIN else client_id(self.slot)
        return f"{who}: {self.answer.describe()}"


@attrs.frozen(slots=True)
class GroupStep:
    """What one group operation observed: the answers read (in order), and the group as
    the DescribeGroups polls between them showed it."""

    slot: int
    answers: tuple[SlotAnswer, ...] = ()
    described: tuple[GroupDescription, ...] = ()
    skipped: bool = False
    """Not sent: the member still waits for the answer to its previous request (only in
    a replayed or shrunk trace; the rules never do that)."""

    def own(self) -> GroupAnswer | None:
        """The answer to the operation's own request, if it was read."""
        return next((a.answer for a in self.answers if a.slot == self.slot), None)

    @property
    def error(self) -> Error | str:
        """The own answer's error, or ``PARKED`` (for the tally)."""
        own = self.own()
        if self.skipped:
            return "SKIPPED"
        if own is None:
            return "PARKED"
        return own.error

    def describe(self) -> str:
        if self.skipped:
            return "not sent: the member waits for an answer"
        parts = [a.describe() for a in self.answers]
        if self.own() is None:
            parts.insert(0, "parked")
        if self.described:
            parts.append("then " + self.described[-1].describe())
        return "; ".join(parts)


# --- JSON ----------------------------------------------------------------------------------

GROUP_KINDS: Mapping[str, type[Any]] = {
    "join_group": JoinGroup,
    "sync_group": SyncGroup,
    "heartbeat": Heartbeat,
    "leave_group": LeaveGroup,
    "offset_commit": OffsetCommit,
    "offset_fetch": OffsetFetch,
    "describe_group": DescribeGroup,
    "find_coordinator": FindCoordinator,
}


def _tp(v: Any) -> TopicPartition:
    return TopicPartition(str(v[0]), int(v[1]))


def group_op_from_json(kind: str, data: Mapping[str, Any]) -> GroupOperation:
    """The group operation ``op_to_json`` wrote (``bytes`` as ``{"hex": ...}``)."""
    if kind == "join_group":
        return JoinGroup(
            int(data["slot"]),
            int(data["member"]),
            bool(data["static"]),
            tuple((str(n), tuple(str(t) for t in ts)) for n, ts in data["protocols"]),
            int(data["session_timeout_ms"]),
        )
    if kind == "sync_group":
        return SyncGroup(
            int(data["slot"]),
            int(data["member"]),
            int(data["generation"]),
            bool(data["static"]),
            None if data["protocol_name"] is None else str(data["protocol_name"]),
            tuple((str(m), bytes.fromhex(a["hex"])) for m, a in data["assignments"]),
        )
    if kind == "heartbeat":
        return Heartbeat(
            int(data["slot"]), int(data["member"]), int(data["generation"]), bool(data["static"])
        )
    if kind == "leave_group":
        return LeaveGroup(int(data["slot"]), int(data["member"]), bool(data["static"]))
    if kind == "offset_commit":
        return OffsetCommit(
            int(data["slot"]),
            int(data["member"]),
            int(data["generation"]),
            tuple((_tp(tp), int(o), str(m)) for tp, o, m in data["offsets"]),
            bool(data["static"]),
        )
    if kind == "offset_fetch":
        parts = data["partitions"]
        return OffsetFetch(None if parts is None else tuple(_tp(p) for p in parts))
    if kind == "describe_group":
        return DescribeGroup()
    if kind == "find_coordinator":
        return FindCoordinator()
    raise ValueError(f"unknown operation {kind!r}")
