"""Performing the harness's group operations on a target, without waiting for parked answers.

A JoinGroup or SyncGroup may be parked in the coordinator's purgatory until other members
act, so each member (slot) has its own connection to the group coordinator and its
request is sent without waiting; its answer is read when the spec says it is due, or when
it has arrived.  The executor (:class:`GroupExecutor`) holds those connections, the
target's member ids per slot (learnt from the JoinGroup answers each slot read) and turns
answers into observations with logical member ids; :func:`perform` is one operation,
checked as it goes against the spec (``harness.conform_group_oracle``):

1. send the request on the member's connection; the oracle takes every state the
   coordinator may now be in (the request handled or not yet, a zero deadline fired or
   not yet);
2. read the answers every settled candidate has due (blocking, within the client's
   timeout: a due answer that never comes is a divergence);
3. when the coordinator's handling of a parked request would show in DescribeGroups,
   poll DescribeGroups until it shows a settled state (a barrier: the next operation then
   meets a coordinator that has handled this one), within the same timeout;
4. read any other answer that has arrived: an answer the spec says cannot be due yet is a
   divergence too.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from typing import Any

from harness import client_groups
from harness.client import (
    GROUP_APIS,
    JOIN_GROUP,
    LEAVE_GROUP,
    SYNC_GROUP,
    ClientError,
    KafkaClient,
    UnsupportedApiError,
    error,
    error_name,
)
from harness.conform_group_ids import client_id, instance_id, learn
from harness.conform_group_ops import (
    DESCRIBE_GROUPS,
    GroupAnswer,
    GroupDescription,
    GroupOperation,
    GroupStep,
    JoinGroup,
    NoResponse,
    SlotAnswer,
    slot_of,
)
from harness.conform_group_oracle import GroupOracle, GroupVerdict
from harness.conform_group_wire import GroupWire
from impl.wire import codec
from spec.errors import ErrorCode
from spec.state import TopicPartition

DESCRIBE_GROUPS_VERSIONS = (0, 5)
PROBE = -2
"""The connection of the harness's own DescribeGroups and OffsetFetch probes."""
SETUP_TIMEOUT_S = 30.0
POLL_S = 0.01
"""Pause between two polls of a condition (the coordinator found, loaded, a barrier)."""
LOADING = (
    ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
)


class GroupConnection(KafkaClient):
    """A member's connection: requests sent now, answers read later; DescribeGroups too."""

    def version(self, api_key: int) -> int:
        if api_key != DESCRIBE_GROUPS:
            return super().version(api_key)
        if api_key in self.pinned:
            return self.pinned[api_key]
        low, high = DESCRIBE_GROUPS_VERSIONS
        theirs = self.broker_versions.get(api_key)
        if theirs is None or theirs[0] > high or theirs[1] < low:
            raise UnsupportedApiError(f"the broker offers DescribeGroups {theirs}")
        return min(high, theirs[1])

    def receive(self, request: Any, correlation_id: int) -> Any:
        """The response to ``request``, sent earlier as ``correlation_id``."""
        frame = self._next_frame()
        try:
            got, response = codec.decode_response(request.__api_key__, request.__version__, frame)
        except codec.DecodeError as e:
            self.close()
            raise ClientError(f"undecodable response: {e}") from e
        if got != correlation_id:
            self.close()
            raise ClientError(
                f"correlation id {got} answers no request (expected {correlation_id})"
            )
        return response

    def has_data(self) -> bool:
        """Whether an answer (or the connection's end) has arrived."""
        if self._frames:
            return True
        if self._sock is None:
            return False
        readable, _, _ = select.select([self._sock], [], [], 0)
        return bool(readable)


class GroupExecutor(GroupWire):
    """The example's group on the target: connections per slot and the member ids."""

    def __init__(
        self,
        client: KafkaClient,
        group_id: str,
        topic: Callable[[str], str],
        logical: Callable[[str], str],
    ) -> None:
        self.client = client
        self.group_id = group_id
        self._topic = topic
        self._logical = logical
        self.connections: dict[int, GroupConnection] = {}
        self.pending: dict[int, tuple[Any, int, GroupOperation]] = {}
        self.ids: dict[int, tuple[str, ...]] = {}
        self.coordinator: int | None = None
        self._address: tuple[str, int] | None = None

    # --- the coordinator and the connections ----------------------------------------------

    def offered(self) -> bool:
        """Whether the target offers the group APIs and DescribeGroups."""
        probe = GroupConnection(self.client.host, self.client.port, pinned=self.client.pinned)
        probe.broker_versions = self.client.broker_versions
        return all(self.client.offers(k) for k in GROUP_APIS) and probe.offers(DESCRIBE_GROUPS)

    def versions(self) -> dict[str, int]:
        return {
            "JoinGroup": self.client.version(JOIN_GROUP),
            "SyncGroup": self.client.version(SYNC_GROUP),
        }

    @property
    def ready(self) -> bool:
        return self._address is not None

    def setup(self) -> str | None:
        """Find the group's coordinator and wait until it serves the group (not checked:
        Kafka creates ``__consumer_offsets`` on the first FindCoordinator and loads it);
        what went wrong, or None."""
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        found = None
        while found is None or found.error != ErrorCode.NONE:
            if time.monotonic() > deadline:
                what = "no answer" if found is None else error_name(found.error)
                return f"no group coordinator within {SETUP_TIMEOUT_S:.0f} s ({what})"
            if found is not None:
                time.sleep(POLL_S)
            try:
                if not self.client.connected:
                    self.client.connect()
                found = client_groups.find_coordinator(self.client, self.group_id)
            except (ClientError, OSError):
                self.client.close()
        self.coordinator = found.node_id
        self._address = (found.host, found.port)
        while True:
            try:
                code, _ = client_groups.offset_fetch(self.connection(PROBE), self.group_id, [])
            except (ClientError, OSError):
                self.close_connection(PROBE)
                code = ErrorCode.COORDINATOR_NOT_AVAILABLE
            if code not in LOADING:
                return None
            if time.monotonic() > deadline:
                self._address = None
                return f"the group coordinator did not load the group ({error_name(code)})"
            time.sleep(POLL_S)

    def connection(self, slot: int) -> GroupConnection:
        conn = self.connections.get(slot)
        if conn is None or not conn.connected:
            assert self._address is not None
            name = client_id(slot) if slot >= 0 else "kafkaref-conform-group"
            conn = GroupConnection(
                *self._address,
                client_id=name,
                timeout_s=self.client.timeout_s,
                pinned=self.client.pinned,
            )
            conn.broker_versions = dict(self.client.broker_versions)
            conn.connect()
            self.connections[slot] = conn
        return conn

    def close_connection(self, slot: int) -> None:
        conn = self.connections.pop(slot, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Make every member the example knew leave (best effort, not checked: else they
        stay in the coordinator until their sessions expire), then close every connection
        (what members had parked is never read)."""
        if self.ready and self.ids and self.client.version(LEAVE_GROUP) >= 3:
            try:
                conn = self.connection(PROBE)
                members = tuple(
                    conn.nested(
                        LEAVE_GROUP,
                        "MemberIdentity",
                        member_id=member_id,
                        group_instance_id=instance_id(slot) if member_id.startswith("i") else None,
                        reason=None,
                    )
                    for slot, known in sorted(self.ids.items())
                    for member_id in known
                )
                conn.request(conn.build(LEAVE_GROUP, group_id=self.group_id, members=members))
            except (ClientError, OSError):
                pass
        for slot in list(self.connections):
            self.close_connection(slot)
        self.pending.clear()

    def broker_restarted(self) -> None:
        """The broker was restarted: the connections are gone, the coordinator must be
        found and waited for again before the next group operation."""
        self.close()
        self._address = None

    def busy(self, slot: int) -> bool:
        return slot in self.pending

    # --- requests -----------------------------------------------------------------------

    def send(self, op: GroupOperation) -> None:
        slot = slot_of(op)
        conn = self.connection(slot)
        request = self._build(conn, op)
        self.pending[slot] = (request, conn.send(request), op)

    # --- answers ------------------------------------------------------------------------

    def arrived(self) -> list[int]:
        """Slots whose answer (or end of connection) has arrived."""
        return [s for s in sorted(self.pending) if self.connections[s].has_data()]

    def read(self, slots: list[int]) -> list[tuple[int, GroupAnswer]]:
        """The answers of ``slots`` (waiting for each up to the client's timeout), their
        member ids translated after every id they hand out has been learnt."""
        raw: list[tuple[int, Any, GroupOperation]] = []
        for slot in slots:
            request, correlation_id, op = self.pending.pop(slot)
            try:
                raw.append((slot, self.connections[slot].receive(request, correlation_id), op))
            except (ClientError, OSError) as e:
                raw.append((slot, NoResponse(f"{type(e).__name__}: {e}"), op))
        for slot, response, op in raw:
            if isinstance(op, JoinGroup) and not isinstance(response, NoResponse):
                code = error(response.error_code)
                if code in (ErrorCode.NONE, ErrorCode.MEMBER_ID_REQUIRED) and response.member_id:
                    learn(self.ids, slot, str(response.member_id))
        return [(slot, self._answer(r, op)) for slot, r, op in raw]

    def describe(self) -> GroupDescription:
        """DescribeGroups of the example's group, on the probe connection."""
        conn = self.connection(PROBE)
        request = conn.build(
            DESCRIBE_GROUPS, groups=(self.group_id,), include_authorized_operations=False
        )
        return self._description(conn.request(request))


def perform(
    gx: GroupExecutor,
    oracle: GroupOracle,
    op: GroupOperation,
    exists: Callable[[TopicPartition], bool],
) -> GroupStep:
    """Perform ``op`` and check every answer read on the way (module doc); the oracle's
    ``verdict`` says whether the spec allows them all."""
    slot = slot_of(op)
    oracle.verdict = GroupVerdict(True)
    if gx.busy(slot):
        return GroupStep(slot, skipped=True)
    if not gx.ready:
        problem = gx.setup()
        if problem is not None:
            oracle.refuse()
            return GroupStep(slot, (SlotAnswer(slot, NoResponse(problem)),))
    oracle.versions = gx.versions()
    answers: list[SlotAnswer] = []
    described: list[GroupDescription] = []

    def step() -> GroupStep:
        return GroupStep(slot, tuple(answers), tuple(described))

    def read(slots: list[int]) -> bool:
        got = gx.read(slots)
        answers.extend(SlotAnswer(s, a) for s, a in got)
        return oracle.observe(got)

    try:
        gx.send(op)
    except (ClientError, OSError) as e:
        gx.pending.pop(slot, None)
        answers.append(SlotAnswer(slot, NoResponse(f"sending failed: {e}")))
        oracle.refuse()
        return step()
    oracle.send(op, exists)
    deadline = time.monotonic() + gx.client.timeout_s
    while True:
        must = oracle.must_read(gx.pending)
        if must:
            if not read(must):
                return step()
            continue
        if not oracle.needs_barrier():
            break
        wanted = oracle.settled_descriptions()
        seen = gx.describe()
        described.append(seen)
        if not oracle.observe_description(seen):
            return step()
        if seen in wanted:
            if oracle.must_read(gx.pending):
                continue
            break
        if time.monotonic() > deadline:
            oracle.refuse(tuple(sorted(wanted, key=repr)))
            return step()
        time.sleep(POLL_S)
    arrived = gx.arrived()
    if arrived:
        read(arrived)
    return step()
