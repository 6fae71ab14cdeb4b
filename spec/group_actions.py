"""The actions of the group coordinator model, one class per request or event, in Kafka's words.

Client requests: ``JoinGroup``, ``SyncGroup``, ``Heartbeat``, ``LeaveGroup`` (here) and
``OffsetCommit``, ``OffsetFetch`` (``spec.offsets``).  Environment events: ``Tick`` (time
passes), the coordinator's own lifecycle (``CoordinatorShutdown``, ``CoordinatorStartup``,
``CoordinatorElected``, ``CoordinatorLoaded``, ``CoordinatorResigned``) and, in
``spec.offsets``, ``ExpireOffsets`` and ``DeleteTopicOffsets``.  Fields carry the request's
fields; ``version`` is the request's API version where the coordinator's answer depends
on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_state import UNKNOWN_MEMBER_ID, Protocol

DEFAULT_SESSION_TIMEOUT_MS = 45_000
"""The Java consumer's ``session.timeout.ms`` default (Kafka 3.0+)."""
DEFAULT_REBALANCE_TIMEOUT_MS = 300_000
"""The Java consumer's ``max.poll.interval.ms`` default, sent as the rebalance timeout."""


def _assignments(
    value: Mapping[str, bytes] | Iterable[tuple[str, bytes]],
) -> FrozenMap[str, bytes]:
    return FrozenMap(value)


@attrs.frozen(slots=True)
class JoinGroup:
    """A JoinGroup request.  An empty ``member_id`` asks the coordinator to name the member.

    From v4 a dynamic member (no ``group_instance_id``) with an empty member id is told
    MEMBER_ID_REQUIRED and its id (KIP-394); from v9 a static member rejoining a Stable
    group can be told to skip the assignment (KIP-814).
    """

    group_id: str
    member_id: str = UNKNOWN_MEMBER_ID
    group_instance_id: str | None = None
    client_id: str = "consumer"
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    rebalance_timeout_ms: int = DEFAULT_REBALANCE_TIMEOUT_MS
    protocol_type: str = "consumer"
    protocols: tuple[Protocol, ...] = (Protocol("range"),)
    version: int = 9

    @property
    def require_known_member_id(self) -> bool:
        """KafkaApis: ``version >= 4 && groupInstanceId.isEmpty``."""
        return self.version >= 4 and self.group_instance_id is None

    @property
    def supports_skip_assignment(self) -> bool:
        """KafkaApis: ``version >= 9``."""
        return self.version >= 9

    def describe(self) -> str:
        who = self.member_id or "a new member"
        return f"{who} sends JoinGroup to group {self.group_id!r}"


@attrs.frozen(slots=True)
class SyncGroup:
    """A SyncGroup request; the leader's carries the assignment per member id."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignments: FrozenMap[str, bytes] = attrs.field(factory=FrozenMap, converter=_assignments)

    def describe(self) -> str:
        return f"{self.member_id} sends SyncGroup (generation {self.generation_id})"


@attrs.frozen(slots=True)
class Heartbeat:
    """A Heartbeat request."""

    group_id: str
    generation_id: int
    member_id: str
    group_instance_id: str | None = None

    def describe(self) -> str:
        return f"{self.member_id} heartbeats (generation {self.generation_id})"


@attrs.frozen(slots=True)
class MemberIdentity:
    """One member a LeaveGroup names.  From v3 several may be named, and an admin may name
    a static member by ``group_instance_id`` alone (empty ``member_id``)."""

    member_id: str = UNKNOWN_MEMBER_ID
    group_instance_id: str | None = None


@attrs.frozen(slots=True)
class LeaveGroup:
    """A LeaveGroup request (v0-2 name one member; the top-level error of such a response
    is that member's error)."""

    group_id: str
    members: tuple[MemberIdentity, ...]

    def describe(self) -> str:
        who = ", ".join(m.member_id or f"instance {m.group_instance_id}" for m in self.members)
        return f"{who} leave group {self.group_id!r}"


@attrs.frozen(slots=True)
class Tick:
    """Time passes by ``ms`` milliseconds; due heartbeat, join and sync deadlines fire."""

    ms: int

    def describe(self) -> str:
        return f"{self.ms} ms pass at the group coordinator"


@attrs.frozen(slots=True)
class CoordinatorShutdown:
    """The broker shuts its group coordinator down: parked requests are never answered,
    groups survive only as their records in ``__consumer_offsets``."""

    def describe(self) -> str:
        return "the group coordinator shuts down"


@attrs.frozen(slots=True)
class CoordinatorStartup:
    """The broker starts its group coordinator (it leads no offsets partition yet)."""

    def describe(self) -> str:
        return "the group coordinator starts"


@attrs.frozen(slots=True)
class CoordinatorElected:
    """The broker becomes leader of the groups' ``__consumer_offsets`` partition and
    starts loading it (``onElection``)."""

    def describe(self) -> str:
        return "the broker is elected group coordinator and starts loading"


@attrs.frozen(slots=True)
class CoordinatorLoaded:
    """Loading finished: groups are restored from their records, members' sessions restart."""

    def describe(self) -> str:
        return "the group coordinator finishes loading"


@attrs.frozen(slots=True)
class CoordinatorResigned:
    """The broker loses leadership of the partition (``onResignation``): parked
    JoinGroups and SyncGroups are answered NOT_COORDINATOR, groups are unloaded."""

    def describe(self) -> str:
        return "the group coordinator resigns"


@attrs.frozen(slots=True)
class MemberLeaveResult:
    """The per-member part of a LeaveGroup response."""

    member_id: str
    group_instance_id: str | None
    error: ErrorCode


@attrs.frozen(slots=True)
class LeaveResponse:
    """A LeaveGroup response with no top-level error."""

    members: tuple[MemberLeaveResult, ...]
