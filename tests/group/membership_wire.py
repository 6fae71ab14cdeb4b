"""The group membership APIs over the raw wire for the membership tests, at explicit
versions: request builders for JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups
and DescribeGroups, and a member that sends a JoinGroup and collects its answer later
(the broker parks it)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from spec.errors import ErrorCode
from tests.group import offsets_wire as ow
from tests.impl import kio_requests as kr
from tests.impl.conftest import BrokerProcess
from tests.impl.wire_client import WireClient

JOIN_GROUP, HEARTBEAT, LEAVE_GROUP, SYNC_GROUP = 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS = 15, 16
CLIENT_ID = "kafkaref-test"  # what WireClient sends as client.id
DEADLINE_S = 30.0
SESSION_MS = 6000
PROPERTIES = {
    "offsets.topic.num.partitions": "1",
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "200",
    "group.max.size": "3",
}


def ready(broker: BrokerProcess, group: str) -> None:
    """Wait until the broker coordinates ``group`` (its offsets partition is loaded)."""
    with broker.client() as client:
        ow.wait_coordinator(client, group)


def join_request(
    group: str,
    member_id: str = "",
    *,
    version: int = 9,
    instance: str | None = None,
    session_ms: int = SESSION_MS,
    rebalance_ms: int = 10_000,
    protocols: tuple[tuple[str, bytes], ...] = (("range", b"meta"),),
    protocol_type: str = "consumer",
) -> Any:
    entries = tuple(
        kr.nested(JOIN_GROUP, version, "JoinGroupRequestProtocol", name=n, metadata=m)
        for n, m in protocols
    )
    return kr.request(
        JOIN_GROUP,
        version,
        group_id=group,
        session_timeout=kr.ms(session_ms),
        rebalance_timeout=kr.ms(rebalance_ms),
        member_id=member_id,
        group_instance_id=instance,
        protocol_type=protocol_type,
        protocols=entries,
        reason=None,
    )


def sync_request(
    group: str,
    generation: int,
    member_id: str,
    assignments: Mapping[str, bytes] | None = None,
    *,
    version: int = 5,
    instance: str | None = None,
    protocol_name: str | None = "range",
) -> Any:
    entries = tuple(
        kr.nested(SYNC_GROUP, version, "SyncGroupRequestAssignment", member_id=m, assignment=a)
        for m, a in (assignments or {}).items()
    )
    return kr.request(
        SYNC_GROUP,
        version,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance,
        protocol_type="consumer",
        protocol_name=protocol_name,
        assignments=entries,
    )


def heartbeat_request(
    group: str, generation: int, member_id: str, *, version: int = 4, instance: str | None = None
) -> Any:
    return kr.request(
        HEARTBEAT,
        version,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        group_instance_id=instance,
    )


def leave_request(group: str, *members: tuple[str, str | None], version: int = 5) -> Any:
    if version < 3:
        ((member_id, _),) = members
        return kr.request(LEAVE_GROUP, version, group_id=group, member_id=member_id)
    identities = tuple(
        kr.nested(LEAVE_GROUP, version, "MemberIdentity", member_id=m, group_instance_id=i)
        for m, i in members
    )
    return kr.request(LEAVE_GROUP, version, group_id=group, members=identities)


def describe(client: WireClient, group: str, version: int = 5) -> Any:
    request = kr.request(
        DESCRIBE_GROUPS, version, groups=(group,), include_authorized_operations=True
    )
    (described,) = client.request(request).groups
    return described


def list_groups(
    client: WireClient, version: int = 5, states: tuple[str, ...] = (), types: tuple[str, ...] = ()
) -> dict[str, tuple[str, str]]:
    """group id -> (protocol type, state or "" before v4)."""
    request = kr.request(LIST_GROUPS, version, states_filter=states, types_filter=types)
    response = client.request(request)
    assert response.error_code == 0
    return {g.group_id: (g.protocol_type, getattr(g, "group_state", "")) for g in response.groups}


class Member:
    """One group member on its own connection (a parked JoinGroup blocks it)."""

    def __init__(self, broker: BrokerProcess, group: str, version: int = 9) -> None:
        self.client = broker.client()
        self.group = group
        self.version = version
        self.member_id = ""
        self.generation = -1
        self.instance: str | None = None

    def close(self) -> None:
        self.client.close()

    def send_join(self, **kw: Any) -> None:
        kw.setdefault("instance", self.instance)
        self.client.send(join_request(self.group, self.member_id, version=self.version, **kw))

    def receive_join(self) -> Any:
        _, answer = self.client.receive(JOIN_GROUP, self.version)
        if answer.error_code == 0:
            self.member_id, self.generation = answer.member_id, answer.generation_id
        return answer

    def join(self, **kw: Any) -> Any:
        """JoinGroup answered at once (MEMBER_ID_REQUIRED, an error, or a join that
        completes the rebalance)."""
        self.send_join(**kw)
        answer = self.receive_join()
        if answer.error_code == ErrorCode.MEMBER_ID_REQUIRED:
            self.member_id = answer.member_id
        return answer

    def sync(self, assignments: Mapping[str, bytes] | None = None, **kw: Any) -> Any:
        kw.setdefault("instance", self.instance)
        return self.client.request(
            sync_request(self.group, self.generation, self.member_id, assignments, **kw)
        )

    def send_sync(self, assignments: Mapping[str, bytes] | None = None) -> None:
        self.client.send(
            sync_request(
                self.group, self.generation, self.member_id, assignments, instance=self.instance
            )
        )

    def receive_sync(self) -> Any:
        return self.client.receive(SYNC_GROUP, 5)[1]

    def heartbeat(self) -> ErrorCode:
        request = heartbeat_request(
            self.group, self.generation, self.member_id, instance=self.instance
        )
        return ErrorCode(self.client.request(request).error_code)

    def heartbeat_until(self, wanted: ErrorCode, deadline_s: float = DEADLINE_S) -> None:
        """Heartbeat (every 100 ms, as a client's heartbeat thread would) until the
        answer is ``wanted``; fail at the deadline."""
        end = time.monotonic() + deadline_s
        while True:
            got = self.heartbeat()
            if got is wanted:
                return
            assert got is ErrorCode.NONE, got
            if time.monotonic() > end:
                raise AssertionError(f"no {wanted.name} within {deadline_s}s")
            time.sleep(0.1)  # the heartbeat interval, not a synchronisation
