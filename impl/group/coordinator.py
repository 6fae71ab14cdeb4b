"""The group coordinator's membership side on asyncio (``ctx.groups``): Kafka 3.x
``GroupCoordinator`` for JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups and
DescribeGroups, with the purgatories as one loop timer and parked requests as futures.

The rules are ``impl.group.requests`` and ``impl.group.rebalance`` (sans-IO); this
module checks first that this broker coordinates the group (``ctx.group_log.status``:
NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE), then runs
the rule, then does what the rule queued: answers parked requests, writes group records
through ``ctx.group_log.store_group`` (one after the other per group, each followed by
its continuation), and re-arms the timer for the next deadline.  A parked request whose
callback Kafka drops (``Abandoned``) is never answered, as in Kafka: its client times out.

Offsets (``impl.group.offsets_log``, ``ctx.group_log``) call back into this module:
``groups_loaded``/``partition_unloaded`` when a ``__consumer_offsets`` partition is loaded
or lost, ``validate_commit`` before an OffsetCommit is written, ``empty_since``,
``group_known``, ``group_ids`` and ``offsets_expired`` for the offsets' expiry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Protocol

import attrs

from impl.group.membership import (
    Abandoned,
    Group,
    GroupPhase,
    JoinResult,
    Parked,
    SyncResult,
)
from impl.group.rebalance import Answer, CoordinatorState, GroupConfig, StoreGroup
from impl.group.records import GroupRecord
from impl.group.requests import (
    JoinRequest,
    LeavingMember,
    MemberRef,
    SyncRequest,
    heartbeat,
    join_group,
    leave_group,
    sync_group,
    validate_commit,
)
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from impl.broker.config import BrokerConfig

_log = logging.getLogger(__name__)

REFIRE_DELAY_S = 0.005
"""A deadline that is already due when the timer is re-armed waits this long (see
``CoordinatorState.advance``)."""


class GroupLogView(Protocol):
    """What the coordinator needs of the offsets log (``impl.group.offsets_log.GroupLog``)."""

    def status(self, group_id: str) -> ErrorCode: ...

    async def store_group(self, group_id: str, record: GroupRecord | None) -> ErrorCode: ...

    def partition_for(self, group_id: str) -> int: ...

    def has_offsets(self, group_id: str) -> bool: ...

    def loading(self) -> bool: ...


class HasGroupLog(Protocol):
    """Where the offsets log is found (the broker's context; it is made after this)."""

    @property
    def group_log(self) -> GroupLogView | None: ...


def now_ms() -> int:
    return int(time.time() * 1000)


def group_config(config: BrokerConfig) -> GroupConfig:
    """The ``group.*`` broker properties."""
    return GroupConfig(
        min_session_timeout_ms=config.get_int("group.min.session.timeout.ms"),
        max_session_timeout_ms=config.get_int("group.max.session.timeout.ms"),
        initial_rebalance_delay_ms=config.get_int("group.initial.rebalance.delay.ms"),
        max_size=config.get_int("group.max.size"),
    )


@attrs.frozen(slots=True)
class MemberSummary:
    """A member as DescribeGroups shows it (metadata and assignment only when Stable)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@attrs.frozen(slots=True)
class GroupSummary:
    """``GroupSummary``: a group as DescribeGroups shows it."""

    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberSummary, ...] = ()


def summary(g: Group) -> GroupSummary:
    """``GroupMetadata.summary``."""
    stable = g.phase is GroupPhase.STABLE
    protocol = (g.protocol_name or "") if stable else ""
    members = []
    for mid in g.member_ids():
        m = g.members[mid]
        members.append(
            MemberSummary(
                mid,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                (m.metadata_for(protocol) or b"") if stable else b"",
                m.assignment if stable else b"",
            )
        )
    return GroupSummary(g.phase.value, g.protocol_type or "", protocol, tuple(members))


DEAD_GROUP = GroupSummary(GroupPhase.DEAD.value, "", "")
NO_GROUP = GroupSummary("", "", "")


class GroupCoordinator:
    """One broker's group coordinator (membership side)."""

    def __init__(self, config: GroupConfig, owner: HasGroupLog) -> None:
        self.state = CoordinatorState(config)
        self._owner = owner
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: int | None = None
        self._store_tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    @classmethod
    def for_broker(cls, config: BrokerConfig, owner: HasGroupLog) -> GroupCoordinator:
        """The coordinator of a broker with this configuration, whose offsets log is
        ``owner.group_log``."""
        return cls(group_config(config), owner)

    @property
    def group_log(self) -> GroupLogView | None:
        return self._owner.group_log

    def close(self) -> None:
        """Stop the timer and pending writes; parked requests are never answered."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._store_tasks.values():
            task.cancel()
        self._store_tasks.clear()

    # --- plumbing ---------------------------------------------------------------------

    def status(self, group_id: str, *, empty_id_ok: bool = False) -> ErrorCode:
        """``validateGroupStatus``: INVALID_GROUP_ID for an empty id (allowed by the
        offset APIs and DescribeGroups), then whether this broker serves the group."""
        if not group_id and not empty_id_ok:
            return ErrorCode.INVALID_GROUP_ID
        if self._closed or self.group_log is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        return self.group_log.status(group_id)

    def _flush(self) -> None:
        """Deliver what the last step queued: answers, record writes, the next timer."""
        for ticket, answer in self.state.take_outbox():
            fut = self._waiting.pop(ticket, None)
            if fut is not None and not fut.done() and not isinstance(answer, Abandoned):
                fut.set_result(answer)
        for store in self.state.take_stores():
            self._start_store(store)
        self._reschedule()

    async def _await(self, reply: Answer | Parked) -> Answer:
        """The answer to a request: now, or once its ticket is answered."""
        if not isinstance(reply, Parked):
            self._flush()
            return reply
        fut: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[reply.ticket] = fut
        self._flush()
        try:
            return await fut
        finally:
            self._waiting.pop(reply.ticket, None)

    def _start_store(self, store: StoreGroup) -> None:
        if self._closed:
            return
        gid = store.group_id
        previous = self._store_tasks.get(gid)
        task = asyncio.get_running_loop().create_task(self._store(store, previous))
        self._store_tasks[gid] = task

        def done(t: asyncio.Task[None]) -> None:
            if self._store_tasks.get(gid) is t:
                del self._store_tasks[gid]

        task.add_done_callback(done)

    async def _store(self, store: StoreGroup, previous: asyncio.Task[None] | None) -> None:
        """Write one group record after the group's previous one, then continue."""
        if previous is not None:
            await asyncio.wait([previous])
        log = self.group_log
        try:
            if log is None:
                error = ErrorCode.COORDINATOR_NOT_AVAILABLE
            else:
                error = await log.store_group(store.group_id, store.record)
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.exception("writing the record of group %s failed", store.group_id)
            error = ErrorCode.UNKNOWN_SERVER_ERROR
        if error is not ErrorCode.NONE:
            _log.warning("group %s: record not written: %s", store.group_id, error.name)
        if store.on_stored is not None and not self._closed:
            store.on_stored(error, now_ms())
            self._flush()

    def _reschedule(self) -> None:
        if self._closed:
            return
        deadline = self.state.next_deadline()
        if deadline == self._timer_deadline and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is None:
            return
        delay = (deadline - now_ms()) / 1000
        self._timer = asyncio.get_running_loop().call_later(
            delay if delay > 0 else REFIRE_DELAY_S, self._on_timer
        )

    def _on_timer(self) -> None:
        deadline = self._timer_deadline or 0
        self._timer = None
        self._timer_deadline = None
        self.state.advance(max(now_ms(), deadline))
        self._flush()

    # --- the requests -----------------------------------------------------------------

    async def join_group(self, request: JoinRequest) -> JoinResult:
        """``handleJoinGroup``; parks until the join phase completes."""
        err = self.status(request.group_id)
        if err is not ErrorCode.NONE:
            return JoinResult(err, request.member_id)
        answer = await self._await(join_group(self.state, request, now_ms()))
        assert isinstance(answer, JoinResult)
        return answer

    async def sync_group(self, request: SyncRequest) -> SyncResult:
        """``handleSyncGroup``; followers park until the leader's assignment is written."""
        err = self.status(request.group_id)
        if err is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)  # older clients cannot take it
        if err is not ErrorCode.NONE:
            return SyncResult(err)
        answer = await self._await(sync_group(self.state, request, now_ms()))
        assert isinstance(answer, SyncResult)
        return answer

    def heartbeat(self, request: MemberRef) -> ErrorCode:
        """``handleHeartbeat`` (while loading Kafka answers blindly NONE)."""
        err = self.status(request.group_id)
        if err is ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return ErrorCode.NONE
        if err is not ErrorCode.NONE:
            return err
        err = heartbeat(self.state, request, now_ms())
        self._flush()
        return err

    def leave_group(
        self, group_id: str, members: list[LeavingMember]
    ) -> tuple[ErrorCode, list[ErrorCode]]:
        """``handleLeaveGroup``: the top-level error and one error per member."""
        err = self.status(group_id)
        if err is not ErrorCode.NONE:
            return err, []
        errors = leave_group(self.state, group_id, members, now_ms())
        self._flush()
        return ErrorCode.NONE, errors

    def list_groups(self, states: frozenset[str]) -> tuple[ErrorCode, list[tuple[str, str, str]]]:
        """``handleListGroups``: (group id, protocol type, state) of the groups held here,
        those in ``states`` (case-insensitive) when it is not empty; while a partition
        of ``__consumer_offsets`` is still loading, with COORDINATOR_LOAD_IN_PROGRESS (the
        list may miss its groups: a client asks again)."""
        log = self.group_log
        if self._closed or log is None:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE, []
        wanted = {s.lower() for s in states}
        out = [
            (gid, g.protocol_type or "", g.phase.value)
            for gid, g in sorted(self.state.groups.items())
            if not wanted or g.phase.value.lower() in wanted
        ]
        return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if log.loading() else ErrorCode.NONE, out

    def describe_group(self, group_id: str) -> tuple[ErrorCode, GroupSummary]:
        """``handleDescribeGroup``: Dead for a group this coordinator does not hold (one
        with committed offsets only is held, Empty: see ``groups_loaded``)."""
        err = self.status(group_id, empty_id_ok=True)
        if err is not ErrorCode.NONE:
            return err, NO_GROUP
        g = self.state.groups.get(group_id)
        return ErrorCode.NONE, DEAD_GROUP if g is None else summary(g)

    # --- the offsets log's side of the interface --------------------------------------

    def groups_loaded(
        self, partition: int, groups: dict[str, GroupRecord], offsets_only: frozenset[str]
    ) -> None:
        """A ``__consumer_offsets`` partition was loaded: its groups are served from now,
        those with only committed offsets (simple consumers) as Empty groups with no
        protocol type, as Kafka's loader makes them."""
        _log.info("loaded %d groups of partition %d", len(groups) + len(offsets_only), partition)
        now = now_ms()
        self.state.load(groups, now)
        for gid in offsets_only:
            self.state.groups.setdefault(gid, Group(gid, state_timestamp_ms=now))
        self._flush()

    def partition_unloaded(self, partition: int) -> None:
        """This broker lost the partition: its groups go; parked requests get NOT_COORDINATOR."""
        log = self.group_log
        gids = [
            gid for gid in self.state.groups if log is None or log.partition_for(gid) == partition
        ]
        self.state.unload(gids, ErrorCode.NOT_COORDINATOR)
        self._flush()

    def validate_commit(
        self, group_id: str, member_id: str, generation_id: int, group_instance_id: str | None
    ) -> ErrorCode:
        """The group checks of an OffsetCommit (``validateOffsetCommit``), NONE when the
        offsets may be written."""
        err = self.status(group_id, empty_id_ok=True)
        if err is not ErrorCode.NONE:
            return err
        ref = MemberRef(group_id, member_id, generation_id, group_instance_id)
        err = validate_commit(self.state, ref, now_ms())
        self._flush()
        return err

    def empty_since(self, group_id: str) -> int | None:
        """When the group became Empty (ms): its offsets expire
        ``offsets.retention.minutes`` after that.  None while it has members, and for a
        group not known here (see ``group_known``)."""
        g = self.state.groups.get(group_id)
        if g is None or g.phase is not GroupPhase.EMPTY or g.protocol_type is None:
            return None
        return g.state_timestamp_ms

    def group_known(self, group_id: str) -> bool:
        """Whether the group uses group management here (it has a protocol type).  A
        group that only commits offsets (a simple consumer's, protocol type none) is not:
        each of its offsets expires on its own commit time, as Kafka's do."""
        g = self.state.groups.get(group_id)
        return g is not None and g.protocol_type is not None

    def group_ids(self) -> list[str]:
        """The groups held here (the offsets cleanup looks at each of them)."""
        return sorted(self.state.groups)

    def offsets_expired(self, group_id: str) -> None:
        """The group has no offsets left: an Empty group dies (``cleanupGroupMetadata``):
        it leaves the cache and, if it ever had a generation, its metadata record gets a
        tombstone (a group that only stored offsets never had a record)."""
        g = self.state.groups.get(group_id)
        if g is None or g.phase is not GroupPhase.EMPTY:
            return
        g.phase = GroupPhase.DEAD
        del self.state.groups[group_id]
        if g.generation_id > 0:
            self.state.stores.append(StoreGroup(group_id, None))
        self._flush()
