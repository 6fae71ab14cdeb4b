"""JoinGroup, SyncGroup, Heartbeat, LeaveGroup, ListGroups and DescribeGroups: the
requests read and the responses built for every version served, as Kafka 3.x's
``KafkaApis`` does around its ``GroupCoordinator`` (``ctx.groups``).

Per version: JoinGroup v0 has no rebalance timeout (the session timeout stands in);
from v4 a dynamic member with no member id is told MEMBER_ID_REQUIRED (KIP-394); from
v5 members may be static (group.instance.id); from v7 the protocol type and name are
nullable in the response (before: an empty name); v9 may tell a static leader to skip
the assignment.  SyncGroup v5 must carry the protocol type and name (else
INCONSISTENT_GROUP_PROTOCOL).  LeaveGroup v0-2 name one member and answer with its error
at the top level; v3+ name several.  ListGroups v4 filters by state, v5 by group type
(every group here is ``classic``).  DescribeGroups v3+ reports the authorized operations
when asked (no authorizer: all of a group's).

A member's ``client_host`` is the joining connection's address as Kafka prints it
("/127.0.0.1"), from ``impl.broker.context.CLIENT_HOST``.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from impl.broker.context import CLIENT_HOST
from impl.broker.kio_build import build, nested, response_class
from impl.group.membership import Protocol
from impl.group.requests import JoinRequest, LeavingMember, MemberRef, SyncRequest
from spec.errors import ErrorCode

if TYPE_CHECKING:
    from kio.static.protocol import Entity

    from impl.broker.context import BrokerContext
    from impl.wire.framing import RequestHeader

CLASSIC_GROUP_TYPE = "classic"
INT32_MIN = -(2**31)
# AclOperation codes of what can be done to a group (READ, DELETE, DESCRIBE), as the
# 32-bit field DescribeGroups reports when no authorizer restricts them.
GROUP_OPERATIONS = (1 << 3) | (1 << 6) | (1 << 8)
_MS = datetime.timedelta(milliseconds=1)


def _ms(value: datetime.timedelta) -> int:
    return value // _MS


async def handle_join_group(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    version = header.api_version
    cls = response_class(request)
    session_timeout_ms = _ms(req.session_timeout)
    rebalance_timeout_ms = session_timeout_ms if version == 0 else _ms(req.rebalance_timeout)
    instance_id: str | None = getattr(req, "group_instance_id", None)
    join = JoinRequest(
        group_id=req.group_id,
        member_id=req.member_id,
        group_instance_id=instance_id,
        client_id=header.client_id or "",
        client_host=CLIENT_HOST.get(),
        session_timeout_ms=session_timeout_ms,
        rebalance_timeout_ms=rebalance_timeout_ms,
        protocol_type=req.protocol_type,
        protocols=tuple(Protocol(p.name, p.metadata) for p in req.protocols),
        require_known_member_id=version >= 4 and instance_id is None,
        supports_skip_assignment=version >= 9,
    )
    result = await ctx.groups.join_group(join)
    member_cls = nested(cls, "JoinGroupResponseMember")
    members = tuple(
        build(
            member_cls,
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            metadata=m.metadata,
        )
        for m in result.members
    )
    protocol_name = result.protocol_name if version >= 7 else (result.protocol_name or "")
    response: Entity = build(
        cls,
        error_code=result.error,
        generation_id=result.generation_id,
        protocol_type=result.protocol_type,
        protocol_name=protocol_name,
        leader=result.leader_id,
        skip_assignment=result.skip_assignment,
        member_id=result.member_id,
        members=members,
    )
    return response


async def handle_sync_group(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    cls = response_class(request)
    protocol_type: str | None = getattr(req, "protocol_type", None)
    protocol_name: str | None = getattr(req, "protocol_name", None)
    if header.api_version >= 5 and (protocol_type is None or protocol_name is None):
        error: Entity = build(cls, error_code=ErrorCode.INCONSISTENT_GROUP_PROTOCOL, assignment=b"")
        return error
    sync = SyncRequest(
        group_id=req.group_id,
        generation_id=int(req.generation_id),
        member_id=req.member_id,
        group_instance_id=getattr(req, "group_instance_id", None),
        protocol_type=protocol_type,
        protocol_name=protocol_name,
        assignments={a.member_id: a.assignment for a in req.assignments},
    )
    result = await ctx.groups.sync_group(sync)
    response: Entity = build(
        cls,
        error_code=result.error,
        protocol_type=result.protocol_type,
        protocol_name=result.protocol_name,
        assignment=result.assignment,
    )
    return response


async def handle_heartbeat(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    ref = MemberRef(
        group_id=req.group_id,
        member_id=req.member_id,
        generation_id=int(req.generation_id),
        group_instance_id=getattr(req, "group_instance_id", None),
    )
    error = ctx.groups.heartbeat(ref)
    response: Entity = build(response_class(request), error_code=error)
    return response


async def handle_leave_group(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    cls = response_class(request)
    if header.api_version >= 3:
        leaving = [LeavingMember(m.member_id, m.group_instance_id) for m in req.members]
    else:
        leaving = [LeavingMember(req.member_id)]
    top, errors = ctx.groups.leave_group(req.group_id, leaving)
    if header.api_version < 3:
        # older versions carry only the top-level error: the member's, if the request's is none
        member_error = next((e for e in errors if e is not ErrorCode.NONE), ErrorCode.NONE)
        old: Entity = build(cls, error_code=top if top is not ErrorCode.NONE else member_error)
        return old
    member_cls = nested(cls, "MemberResponse")
    # A refused request (not the coordinator, an invalid group id) names no member, as
    # Kafka's leaveError(error, List.empty) answers it.
    answered = zip(leaving, errors, strict=True) if top is ErrorCode.NONE else ()
    members = tuple(
        build(
            member_cls,
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            error_code=e,
        )
        for m, e in answered
    )
    response: Entity = build(cls, error_code=top, members=members)
    return response


async def handle_list_groups(ctx: BrokerContext, header: RequestHeader, request: Entity) -> Entity:
    req: Any = request
    cls = response_class(request)
    states = frozenset(getattr(req, "states_filter", ()) or ())
    types = {t.lower() for t in getattr(req, "types_filter", ()) or ()}
    error, groups = ctx.groups.list_groups(states)
    if types and CLASSIC_GROUP_TYPE not in types:
        groups = []
    listed_cls = nested(cls, "ListedGroup")
    listed = tuple(
        build(
            listed_cls,
            group_id=gid,
            protocol_type=protocol_type,
            group_state=state,
            group_type=CLASSIC_GROUP_TYPE,
        )
        for gid, protocol_type, state in groups
    )
    response: Entity = build(cls, error_code=error, groups=listed)
    return response


async def handle_describe_groups(
    ctx: BrokerContext, header: RequestHeader, request: Entity
) -> Entity:
    req: Any = request
    cls = response_class(request)
    group_cls = nested(cls, "DescribedGroup")
    member_cls = nested(cls, "DescribedGroupMember")
    with_operations = header.api_version >= 3 and bool(
        getattr(req, "include_authorized_operations", False)
    )
    described = []
    for group_id in req.groups:
        error, summary = ctx.groups.describe_group(group_id)
        members = tuple(
            build(
                member_cls,
                member_id=m.member_id,
                group_instance_id=m.group_instance_id,
                client_id=m.client_id,
                client_host=m.client_host,
                member_metadata=m.metadata,
                member_assignment=m.assignment,
            )
            for m in summary.members
        )
        operations = GROUP_OPERATIONS if with_operations and error is ErrorCode.NONE else INT32_MIN
        described.append(
            build(
                group_cls,
                error_code=error,
                group_id=group_id,
                group_state=summary.state,
                protocol_type=summary.protocol_type,
                protocol_data=summary.protocol,
                members=members,
                authorized_operations=operations,
            )
        )
    response: Entity = build(cls, groups=tuple(described))
    return response
