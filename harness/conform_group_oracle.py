"""The spec's group coordinator as the oracle of the harness's group rules.

The oracle keeps every candidate state the target may be in (``harness.conform_group_model``:
the spec's ``Coordinator`` holding the example's group, and where each of the harness's
connections stands).  A request sent makes the candidates every state the coordinator's
internal steps reach with it queued; each answer read, and each DescribeGroups answer,
keeps those that agree with it; a divergence is an answer no candidate has.  The oracle
also tells the executor what it must read (an answer every settled candidate has due) and
whether a DescribeGroups could show that the coordinator has handled a parked request.
A broker restart reloads the group from the records that may have reached the log: every
write an answer read acknowledged, and any prefix of the others (``harness.conform_group_log``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from harness.conform_group_ids import (
    client_id,
    from_logical,
    instance_id,
    learn,
    learnt_id,
    member_id_of,
)
from harness.conform_group_log import GroupWrites
from harness.conform_group_model import (
    MODEL_GROUP,
    ApisAnswer,
    Candidate,
    CommitRequest,
    DescribeRequest,
    ModelRequest,
    close,
    describe_group,
    description,
    observed,
    settled,
)
from harness.conform_group_ops import (
    ADMIN,
    PROTOCOL_TYPE,
    CoordinatorAnswer,
    DescribeGroup,
    FindCoordinator,
    GroupAnswer,
    GroupDescription,
    GroupOperation,
    Heartbeat,
    JoinGroup,
    LeaveGroup,
    NoResponse,
    OffsetCommit,
    OffsetFetch,
    SlotAnswer,
    SyncAnswer,
    SyncGroup,
    slot_of,
)
from spec import group as sg
from spec import offsets as so
from spec.config import SpecConfig
from spec.consumer_protocol import Subscription, encode_subscription
from spec.errors import ErrorCode
from spec.fmap import FrozenMap
from spec.group_actions import MemberIdentity
from spec.group_state import Protocol
from spec.outcome import Ok
from spec.state import TopicPartition


@attrs.frozen(slots=True)
class GroupVerdict:
    """Whether every answer read while performing a group operation is one the spec
    allows; when not, what it allows instead."""

    ok: bool
    allowed: tuple[Any, ...] = ()


class GroupOracle:
    """The candidates of one example's group, and the spec's verdict on what was read."""

    def __init__(self, config: SpecConfig, *, cleanup: bool = True) -> None:
        """``cleanup``: whether the target's periodic offsets cleanup may run during the
        example (``harness.conform_target.offsets_cleanup_may_run``)."""
        self.cleanup = cleanup
        config = attrs.evolve(config, group_initial_rebalance_delay_ms=0)
        self.candidates: tuple[Candidate, ...] = (Candidate(sg.coordinator(config)),)
        self.versions: dict[str, int] = {"JoinGroup": 9, "SyncGroup": 5}
        self.verdict = GroupVerdict(True)

    # --- sending ------------------------------------------------------------------------

    def send(self, op: GroupOperation, exists: Callable[[TopicPartition], bool]) -> None:
        """``op``'s request is on its way: it may be handled at any point from now on."""
        slot = slot_of(op)
        queued = []
        for c in self.candidates:
            request = self._request(op, c.ids, exists)
            queued.append(attrs.evolve(c, queued=c.queued.set(slot, request)))
        self.candidates = close(queued, self.cleanup)

    def _request(
        self,
        op: GroupOperation,
        ids: Mapping[int, tuple[str, ...]],
        exists: Callable[[TopicPartition], bool],
    ) -> ModelRequest:
        gid = MODEL_GROUP
        if isinstance(op, JoinGroup):
            return sg.JoinGroup(
                gid,
                member_id_of(ids, op.slot, op.member, op.static),
                instance_id(op.slot) if op.static else None,
                client_id(op.slot),
                op.session_timeout_ms,
                op.session_timeout_ms,
                PROTOCOL_TYPE,
                tuple(Protocol(n, encode_subscription(Subscription(ts))) for n, ts in op.protocols),
                self.versions["JoinGroup"],
            )
        if isinstance(op, SyncGroup):
            if self.versions["SyncGroup"] >= 5 and op.protocol_name is None:
                return ApisAnswer(SyncAnswer(ErrorCode.INCONSISTENT_GROUP_PROTOCOL))
            new_fields = self.versions["SyncGroup"] >= 5
            return sg.SyncGroup(
                gid,
                op.generation,
                member_id_of(ids, op.slot, op.member, op.static),
                instance_id(op.slot) if op.static else None,
                PROTOCOL_TYPE if new_fields else None,
                op.protocol_name if new_fields else None,
                {from_logical(m, ids): a for m, a in op.assignments},
            )
        if isinstance(op, Heartbeat):
            return sg.Heartbeat(
                gid,
                op.generation,
                member_id_of(ids, op.slot, op.member, op.static),
                instance_id(op.slot) if op.static else None,
            )
        if isinstance(op, LeaveGroup):
            member = member_id_of(ids, op.slot, op.member, op.static)
            return sg.LeaveGroup(
                gid, (MemberIdentity(member, instance_id(op.slot) if op.static else None),)
            )
        if isinstance(op, OffsetCommit):
            known = tuple(
                so.CommitOffset(tp, offset, meta) for tp, offset, meta in op.offsets if exists(tp)
            )
            unknown = tuple(tp for tp, _, _ in op.offsets if not exists(tp))
            action = None
            if known:
                member = (
                    "" if op.slot == ADMIN else member_id_of(ids, op.slot, op.member, op.static)
                )
                action = so.OffsetCommit(
                    gid,
                    known,
                    op.generation,
                    member,
                    instance_id(op.slot) if op.static and op.slot != ADMIN else None,
                )
            return CommitRequest(action, unknown)
        if isinstance(op, OffsetFetch):
            return so.OffsetFetch(gid, op.partitions)
        if isinstance(op, DescribeGroup):
            return DescribeRequest()
        assert isinstance(op, FindCoordinator)
        return ApisAnswer(CoordinatorAnswer(ErrorCode.NONE, True))

    # --- what the harness must read, and when it must look ---------------------------------

    def must_read(self, busy: Iterable[int]) -> list[int]:
        """Busy slots every settled candidate has an answer for."""
        done = [c for c in self.candidates if settled(c)]
        return [s for s in sorted(busy) if done and all(s in c.ready for c in done)]

    def settled_descriptions(self) -> set[GroupDescription]:
        return {
            description(describe_group(c.coord, MODEL_GROUP), c.ids)
            for c in self.candidates
            if settled(c)
        }

    def needs_barrier(self) -> bool:
        """Whether a DescribeGroups answer could tell handled and unhandled requests apart."""
        done = self.settled_descriptions()
        return any(
            description(describe_group(c.coord, MODEL_GROUP), c.ids) not in done
            for c in self.candidates
        )

    # --- observing ----------------------------------------------------------------------

    def observe(self, answers: list[tuple[int, Any]]) -> bool:
        """Keep the candidates that had exactly these answers due (``answers`` as read:
        id-free answers as observed, JoinGroup answers with the target's ids translated
        already, see ``GroupExecutor``)."""
        kept = []
        possible: dict[int, dict[GroupAnswer, None]] = {s: {} for s, _ in answers}
        for c in self.candidates:
            ids = dict(c.ids)
            raws = [c.ready.get(s) for s, _ in answers]
            for (s, _), raw in zip(answers, raws, strict=True):
                learn(ids, s, learnt_id(raw))
            got = [None if raw is None else self._normal(observed(raw, ids)) for raw in raws]
            for (s, _), g in zip(answers, got, strict=True):
                if g is not None:
                    possible[s][g] = None
            if all(g == a for g, (_, a) in zip(got, answers, strict=True)):
                ready = c.ready
                for s, _ in answers:
                    ready = ready.delete(s)
                writes = c.writes.acknowledge(s for s, _ in answers)
                kept.append(attrs.evolve(c, ready=ready, ids=FrozenMap(ids), writes=writes))
        waits = NoResponse("not yet: the spec has the request wait in purgatory")
        allowed = tuple(
            SlotAnswer(s, g) for s, gs in possible.items() for g in (gs or {waits: None})
        )
        return self._keep(kept, allowed)

    def _normal(self, answer: GroupAnswer) -> GroupAnswer:
        """Without the fields the negotiated versions do not carry (SyncGroup before v5)."""
        if isinstance(answer, SyncAnswer) and self.versions["SyncGroup"] < 5:
            return attrs.evolve(answer, protocol_type=None, protocol_name=None)
        return answer

    def observe_description(self, seen: GroupDescription) -> bool:
        """Keep the candidates whose group DescribeGroups shows as ``seen``."""
        kept = []
        allowed: dict[GroupDescription, None] = {}
        for c in self.candidates:
            d = description(describe_group(c.coord, MODEL_GROUP), c.ids)
            allowed[d] = None
            if d == seen:
                kept.append(c)
        return self._keep(kept, tuple(allowed))

    def _keep(self, kept: list[Candidate], allowed: tuple[Any, ...]) -> bool:
        if not kept:
            self.verdict = GroupVerdict(False, allowed)
            return False
        self.candidates = close(kept, self.cleanup)
        return True

    def refuse(self, allowed: tuple[Any, ...] = ()) -> None:
        self.verdict = GroupVerdict(False, allowed)

    # --- a broker restart ---------------------------------------------------------------

    def restart(self) -> None:
        """The coordinator's broker was killed and restarted: parked and queued requests
        are gone with their connections, the groups come back from ``__consumer_offsets``
        (``CoordinatorShutdown``, ``Startup``, ``Elected``, ``Loaded``) as the records
        that reached the log give them: every write an answer read acknowledged, and
        any prefix of the later ones (``harness.conform_group_log``)."""
        out = []
        for c in self.candidates:
            down = sg.step(c.coord, sg.CoordinatorShutdown())
            assert isinstance(down, Ok), down
            for stored in c.writes.images():
                groups = down.state.groups.delete(MODEL_GROUP)
                if stored is not None:
                    groups = groups.set(MODEL_GROUP, stored)
                coord = attrs.evolve(down.state, groups=groups)
                for event in (
                    sg.CoordinatorStartup(),
                    sg.CoordinatorElected(),
                    sg.CoordinatorLoaded(),
                ):
                    step = sg.step(coord, event)
                    assert isinstance(step, Ok), step
                    coord = step.state
                writes = GroupWrites(stored)
                out.append(Candidate(attrs.evolve(coord, outbox=()), ids=c.ids, writes=writes))
        self.candidates = close(out, self.cleanup)
