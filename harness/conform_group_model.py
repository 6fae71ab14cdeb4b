"""The spec's group coordinator stepped the way the harness meets it: candidates.

A **candidate** is a state the target may be in: the spec's ``Coordinator`` (``spec.group``,
``spec.offsets``) holding the example's group, plus where each of the harness's
connections stands: a request sent but not yet handled (``queued``: the harness does not
wait for a parked JoinGroup's answer, so it cannot know when the coordinator took it), a
request parked in purgatory (``parked``, by the spec's ticket), an answer due but not yet
read (``ready``), a request the coordinator will never answer (``lost``: Kafka drops its
callback), the member ids each slot was told (``harness.conform_group_ids``), and which
of the group's ``__consumer_offsets`` writes are certainly in the log (``writes``, see
``harness.conform_group_log``; each step that writes adds to it).

Three internal steps lead from a candidate to others, in any order (:func:`successors`):
the coordinator handles a queued request, a deadline that is due fires (the spec's
``Tick(0)``), or the periodic offsets cleanup ends an Empty group that has no offsets
(the spec's ``expire_offsets``; Kafka runs it every offsets.retention.check.interval.ms,
so a long run, or a target that has run for a while, may do it between any two steps).
Time stands still in the model: the members' session and rebalance timeouts are longer
than an example, so the only deadline that falls due is a zero one
(``group.initial.rebalance.delay.ms`` = 0: Kafka's timer thread fires it just after the
JoinGroup that armed it).  :func:`close` is every candidate these steps reach.

Where Kafka chooses from a HashMap (a new leader when the leader leaves or does not
rejoin), the spec picks the smallest member id; here each other member the same rule
admits is a candidate too (:func:`leader_choices`).  Protocol votes never tie: every
member lists ``range`` before ``roundrobin``.  What KafkaApis answers before the
coordinator sees a request (OffsetCommit partitions of unknown topics, a SyncGroup v5
without its protocol) is decided here too.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from harness.conform_group_ids import to_logical
from harness.conform_group_log import (
    GroupWrites,
    after_write_answers,
    commit_stored,
    image,
    written,
)
from harness.conform_group_ops import (
    CommitAnswer,
    DescribedMember,
    GroupAnswer,
    GroupDescription,
    GroupErrorAnswer,
    JoinAnswer,
    OffsetsAnswer,
    SyncAnswer,
)
from spec import group as sg
from spec import offsets as so
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_actions import LeaveResponse
from spec.group_rebalance import leader_members
from spec.group_state import (
    Abandoned,
    Coordinator,
    Group,
    GroupPhase,
    JoinResponse,
    SyncResponse,
)
from spec.group_timers import advance
from spec.outcome import Rejected
from spec.state import TopicPartition

MODEL_GROUP = "g"
"""The example's group in the model (on the target: the example's namespace + ``g``)."""
MAX_CANDIDATES = 512


class GroupOracleError(RuntimeError):
    """The model cannot follow the target (too many candidate states)."""


# --- the requests as the model takes them --------------------------------------------------


@attrs.frozen(slots=True)
class ApisAnswer:
    """A request KafkaApis answers before the coordinator sees it."""

    answer: GroupAnswer


@attrs.frozen(slots=True)
class CommitRequest:
    """An OffsetCommit: ``unknown`` partitions are UNKNOWN_TOPIC_OR_PARTITION (KafkaApis);
    the coordinator gets the rest, if any."""

    action: so.OffsetCommit | None
    unknown: tuple[TopicPartition, ...]


@attrs.frozen(slots=True)
class DescribeRequest:
    pass


@attrs.frozen(slots=True)
class RawDescription:
    """A DescribeGroups answer with the model's member ids."""

    state: str
    protocol_type: str
    protocol: str
    members: tuple[DescribedMember, ...]


ModelRequest = (
    sg.JoinGroup
    | sg.SyncGroup
    | sg.Heartbeat
    | sg.LeaveGroup
    | so.OffsetFetch
    | CommitRequest
    | DescribeRequest
    | ApisAnswer
)
Raw = GroupAnswer | JoinResponse | RawDescription
"""An answer due to a slot: id-free answers as observed, the others with model ids."""


@attrs.frozen(slots=True, cache_hash=True)
class Candidate:
    coord: Coordinator
    queued: FrozenMap[int, ModelRequest] = FrozenMap()
    parked: FrozenMap[int, int] = FrozenMap()
    ready: FrozenMap[int, Raw] = FrozenMap()
    lost: frozenset[int] = frozenset()
    ids: FrozenMap[int, tuple[str, ...]] = FrozenMap()
    writes: GroupWrites = attrs.field(factory=GroupWrites)
    """The group's records in ``__consumer_offsets``: certainly there, or maybe
    (``harness.conform_group_log``)."""


def join_answer(r: JoinResponse, ids: Mapping[int, Iterable[str]]) -> JoinAnswer:
    """A model JoinGroup answer as observed.  An error answer keeps its error only (Kafka
    echoes the request's member id, the spec's rejections carry none); MEMBER_ID_REQUIRED
    keeps the member id it hands out."""
    if r.error is ErrorCode.MEMBER_ID_REQUIRED:
        return JoinAnswer(r.error, to_logical(r.member_id, ids))
    if r.error is not ErrorCode.NONE:
        return JoinAnswer(r.error)
    return JoinAnswer(
        r.error,
        to_logical(r.member_id, ids),
        r.generation_id,
        r.protocol_type,
        r.protocol_name,
        to_logical(r.leader_id, ids),
        r.skip_assignment,
        tuple(
            sorted(
                (to_logical(m.member_id, ids), m.group_instance_id, m.metadata) for m in r.members
            )
        ),
    )


def description(d: RawDescription, ids: Mapping[int, Iterable[str]]) -> GroupDescription:
    members = tuple(
        sorted(
            (attrs.evolve(m, member_id=to_logical(m.member_id, ids)) for m in d.members),
            key=lambda m: m.member_id,
        )
    )
    return GroupDescription(ErrorCode.NONE, d.state, d.protocol_type, d.protocol, members)


def observed(raw: Raw, ids: Mapping[int, Iterable[str]]) -> GroupAnswer:
    if isinstance(raw, JoinResponse):
        return join_answer(raw, ids)
    if isinstance(raw, RawDescription):
        return description(raw, ids)
    return raw


def describe_group(c: Coordinator, group_id: str) -> RawDescription:
    """DescribeGroups as Kafka answers it (``GroupMetadata.summary``)."""
    g = c.groups.get(group_id)
    if g is None:
        return RawDescription(GroupPhase.DEAD.value, "", "", ())
    stable = g.phase is GroupPhase.STABLE
    protocol = (g.protocol_name or "") if stable else ""
    members = tuple(
        DescribedMember(
            mid,
            g.members[mid].group_instance_id,
            g.members[mid].client_id,
            (g.members[mid].metadata_for(protocol) or b"") if stable else b"",
            g.members[mid].assignment if stable else b"",
        )
        for mid in g.member_ids()
    )
    return RawDescription(g.phase.value, g.protocol_type or "", protocol, members)


# --- steps ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8192)
def _ticked(c: Coordinator) -> Coordinator:
    return advance(c, c.now_ms)


def _reply_answer(request: ModelRequest, out: Any) -> Raw | int | None:
    """What the slot gets for ``request``: an answer, a ticket (parked) or None (lost)."""
    if isinstance(out, Rejected):
        error = out.error
        if isinstance(request, sg.JoinGroup):
            return JoinAnswer(error)
        if isinstance(request, sg.SyncGroup):
            return SyncAnswer(error)
        if isinstance(request, sg.Heartbeat):
            return GroupErrorAnswer("Heartbeat", error)
        if isinstance(request, sg.LeaveGroup):
            return GroupErrorAnswer("LeaveGroup", error)
        return OffsetsAnswer(error)
    reply = out.reply
    if isinstance(reply, sg.Pending):
        return reply.ticket
    if isinstance(reply, JoinResponse):
        return reply
    if isinstance(reply, SyncResponse):
        return _sync(reply)
    if isinstance(request, sg.Heartbeat):
        return GroupErrorAnswer("Heartbeat", ErrorCode.NONE)
    if isinstance(reply, LeaveResponse):
        member = next((m.error for m in reply.members if m.error), ErrorCode.NONE)
        return GroupErrorAnswer("LeaveGroup", member)
    assert isinstance(reply, so.OffsetFetchResponse)
    return OffsetsAnswer(
        ErrorCode.NONE,
        tuple(sorted((tp, f.offset, f.metadata) for tp, f in reply.partitions.items())),
    )


def _sync(r: SyncResponse) -> SyncAnswer:
    if r.error is not ErrorCode.NONE:
        return SyncAnswer(r.error)
    return SyncAnswer(r.error, r.assignment, r.protocol_type, r.protocol_name)


def _commit(coord: Coordinator, r: CommitRequest) -> tuple[Coordinator, CommitAnswer]:
    errors = dict.fromkeys(r.unknown, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if r.action is not None:
        out = sg.step(coord, r.action)
        coord = out.state
        if isinstance(out, Rejected):
            errors.update(dict.fromkeys((p.topic_partition for p in r.action.offsets), out.error))
        else:
            assert isinstance(out.reply, so.OffsetCommitResponse)
            errors.update(out.reply.errors)
    return coord, CommitAnswer(tuple(sorted(errors.items())))


def _deliver(c: Candidate, produced: list[int]) -> Candidate:
    """Move the coordinator's outbox to the slots whose requests it answers."""
    coord, done = sg.take_responses(c.coord)
    parked, ready, lost = dict(c.parked), dict(c.ready), set(c.lost)
    for completed in done:
        slot = next((s for s, t in parked.items() if t == completed.ticket), None)
        if slot is None:
            continue
        del parked[slot]
        response = completed.response
        if isinstance(response, Abandoned):
            lost.add(slot)
        else:
            ready[slot] = _sync(response) if isinstance(response, SyncResponse) else response
            produced.append(slot)
    return attrs.evolve(
        c, coord=coord, parked=FrozenMap(parked), ready=FrozenMap(ready), lost=frozenset(lost)
    )


def _with_leader(c: Candidate, g: Group, leader: str, produced: list[int]) -> Candidate:
    g = attrs.evolve(g, leader_id=leader)
    ready = dict(c.ready)
    for slot in produced:
        r = ready.get(slot)
        if (
            isinstance(r, JoinResponse)
            and r.error is ErrorCode.NONE
            and r.generation_id == g.generation_id
        ):
            members = leader_members(g) if r.member_id == leader else ()
            ready[slot] = attrs.evolve(r, leader_id=leader, members=members)
    coord = attrs.evolve(c.coord, groups=c.coord.groups.set(g.group_id, g))
    return attrs.evolve(c, coord=coord, ready=FrozenMap(ready))


def leader_choices(before: Group | None, c: Candidate, produced: list[int]) -> list[Candidate]:
    """``c`` and, where Kafka chose the new leader from a HashMap, each other choice."""
    after = c.coord.groups.get(MODEL_GROUP)
    if before is None or after is None or before.leader_id is None or after.leader_id is None:
        return [c]
    if after.leader_id == before.leader_id:
        return [c]
    old, new = before.members.get(before.leader_id), after.members.get(after.leader_id)
    if (
        old is not None
        and new is not None
        and old.group_instance_id is not None
        and old.group_instance_id == new.group_instance_id
    ):
        return [c]  # a static leader rejoined under a new member id
    if (
        after.generation_id != before.generation_id
        and after.phase is GroupPhase.COMPLETING_REBALANCE
    ):
        eligible = {
            r.member_id
            for s in produced
            if isinstance(r := c.ready.get(s), JoinResponse)
            and r.error is ErrorCode.NONE
            and r.generation_id == after.generation_id
        }
    else:
        eligible = set(after.members)
    others = sorted(eligible - {after.leader_id})
    return [c, *(_with_leader(c, after, x, produced) for x in others)]


def _handle(c: Candidate, slot: int, request: ModelRequest) -> list[Candidate]:
    """The coordinator handles ``slot``'s queued request."""
    before = c.coord.groups.get(MODEL_GROUP)
    c = attrs.evolve(c, queued=c.queued.delete(slot))
    coord = c.coord
    answer: Raw | int | None
    if isinstance(request, ApisAnswer):
        answer = request.answer
    elif isinstance(request, DescribeRequest):
        answer = describe_group(coord, MODEL_GROUP)
    elif isinstance(request, CommitRequest):
        coord, answer = _commit(coord, request)
    else:
        out = sg.step(coord, request)
        coord = out.state
        answer = _reply_answer(request, out)
    c = attrs.evolve(c, coord=coord)
    produced: list[int] = []
    if isinstance(answer, int):
        c = attrs.evolve(c, parked=c.parked.set(slot, answer))
    elif answer is not None:
        c = attrs.evolve(c, ready=c.ready.set(slot, answer))
        produced.append(slot)
    c = _deliver(c, produced)
    if isinstance(request, CommitRequest):
        if commit_stored(answer):
            c = attrs.evolve(c, writes=c.writes.wrote(_image(c), {slot}))
    else:
        c = _record_write(c, before, produced)
    return leader_choices(before, c, produced)


def _image(c: Candidate) -> Group | None:
    return image(c.coord.groups.get(MODEL_GROUP))


def _record_write(c: Candidate, before: Group | None, produced: list[int]) -> Candidate:
    """``c`` with the group metadata write the step from ``before`` made, if any."""
    if not written(before, c.coord.groups.get(MODEL_GROUP)):
        return c
    acks = after_write_answers({s: c.ready[s] for s in produced})
    return attrs.evolve(c, writes=c.writes.wrote(_image(c), acks))


def _tick(c: Candidate) -> list[Candidate]:
    """A due deadline fires (the spec's ``Tick(0)``)."""
    before = c.coord.groups.get(MODEL_GROUP)
    produced: list[int] = []
    c = _deliver(attrs.evolve(c, coord=_ticked(c.coord)), produced)
    return leader_choices(before, _record_write(c, before, produced), produced)


def _due(c: Candidate) -> bool:
    return _ticked(c.coord) != c.coord


def settled(c: Candidate) -> bool:
    """Nothing left for the coordinator to do by itself."""
    return not c.queued and not _due(c)


def _cleanup(c: Candidate) -> Candidate | None:
    """The offsets cleanup runs (every offsets.retention.check.interval.ms, at a time
    the harness cannot see): an Empty group without offsets dies (the spec's
    ``expire_offsets``); None when it changes nothing."""
    coord = so.expire_offsets(c.coord)
    if coord == c.coord:
        return None
    before = c.coord.groups.get(MODEL_GROUP)
    return _record_write(attrs.evolve(c, coord=coord), before, [])


def successors(c: Candidate, cleanup: bool = True) -> Iterator[Candidate]:
    """The candidates one internal step leads to; the offsets cleanup among them only
    when it may run during the example (``cleanup``)."""
    for slot, request in c.queued.items():
        yield from _handle(c, slot, request)
    if _due(c):
        yield from _tick(c)
    if cleanup and (cleaned := _cleanup(c)) is not None:
        yield cleaned


def close(candidates: Iterable[Candidate], cleanup: bool = True) -> tuple[Candidate, ...]:
    """Every candidate the internal steps reach from ``candidates``."""
    seen = dict.fromkeys(candidates)
    todo = list(seen)
    while todo:
        for n in successors(todo.pop(), cleanup):
            if n not in seen:
                seen[n] = None
                todo.append(n)
                if len(seen) > MAX_CANDIDATES:
                    raise GroupOracleError(
                        f"more than {MAX_CANDIDATES} group states agree with the target"
                    )
    return tuple(seen)
