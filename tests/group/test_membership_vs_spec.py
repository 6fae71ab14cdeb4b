"""The broker's membership rules (impl.group, sans-IO) against the model (spec.group): the
same random JoinGroup / SyncGroup / Heartbeat / LeaveGroup / OffsetCommit sequences, with
current, stale and unknown member ids and generations, static and dynamic members, every
JoinGroup version class, while time passes.  After every step both give the same answer
(error codes and whole responses), answer the same parked requests the same way, and hold
the same groups (phase, generation, leader, protocol, members with their tickets, session
deadlines and assignments, pending member ids, pending syncs, join and sync deadlines).

Member ids are made the spec's way (``<prefix>-<n>``) so they can be compared literally;
group records are written at once, as the spec's writes are atomic."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import attrs
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from impl.group import membership as im
from impl.group.rebalance import CoordinatorState, GroupConfig
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
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.group import step
from spec.group_actions import (
    Heartbeat,
    JoinGroup,
    LeaveGroup,
    LeaveResponse,
    MemberIdentity,
    SyncGroup,
    Tick,
)
from spec.group_state import (
    Abandoned,
    JoinResponse,
    Pending,
    Protocol,
    SyncResponse,
    coordinator,
)
from spec.offsets import OffsetCommit
from spec.outcome import Ok

G = "g"
INSTANCES = (None, None, "i0", "i1")
PROTOCOLS = (
    (Protocol("range", b"r"),),
    (Protocol("roundrobin", b"o"),),
    (Protocol("range", b"r"), Protocol("roundrobin", b"o")),
)


def _answer(a: Any) -> Any:
    """A response of either side as comparable plain values."""
    if isinstance(a, JoinResponse | im.JoinResult):
        members = tuple((m.member_id, m.group_instance_id, m.metadata) for m in a.members)
        return (
            "join",
            a.error,
            a.member_id,
            a.generation_id,
            a.protocol_type,
            a.protocol_name,
            a.leader_id,
            a.skip_assignment,
            members,
        )
    if isinstance(a, SyncResponse | im.SyncResult):
        return ("sync", a.error, a.assignment, a.protocol_type, a.protocol_name)
    assert isinstance(a, Abandoned | im.Abandoned), a
    return ("abandoned",)


def _groups(groups: Mapping[str, Any]) -> dict[str, Any]:
    """Either side's groups (the spec's ``Coordinator.groups``, the impl's
    ``CoordinatorState.groups``: the same attribute names) as comparable plain values."""
    out = {}
    for gid, g in groups.items():
        members = {
            mid: (
                m.group_instance_id,
                m.client_id,
                m.session_timeout_ms,
                m.rebalance_timeout_ms,
                m.protocol_type,
                tuple((p.name, p.metadata) for p in m.protocols),
                m.assignment,
                m.join_ticket,
                m.sync_ticket,
                m.is_new,
                m.heartbeat_deadline_ms,
            )
            for mid, m in g.members.items()
        }
        t = g.join_timer
        out[gid] = (
            g.phase.value,
            g.state_timestamp_ms,
            g.generation_id,
            g.protocol_type,
            g.protocol_name,
            g.leader_id,
            members,
            dict(g.pending_members),
            set(g.pending_sync_members),
            None if t is None else attrs.astuple(t),
            g.sync_deadline_ms,
            g.new_member_added,
        )
    return out


class MembershipVsSpec(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.spec = coordinator()
        self.impl = CoordinatorState()
        self.ids: set[str] = {"nobody"}

    @initialize(delay=st.sampled_from([0, 0, 3000]))
    def configure(self, delay: int) -> None:
        self.spec = coordinator(SpecConfig(group_initial_rebalance_delay_ms=delay))
        counter = itertools.count(1)
        self.impl = CoordinatorState(
            GroupConfig(initial_rebalance_delay_ms=delay),
            lambda prefix: f"{prefix}-{next(counter)}",
        )

    # --- plumbing ----------------------------------------------------------------------

    def _spec_step(self, action: Any) -> tuple[Any, list[Any]]:
        """The spec's reply (an error code for a bare refusal) and its due answers."""
        out = step(self.spec, action)
        self.spec = attrs.evolve(out.state, outbox=())
        due = [(d.ticket, _answer(d.response)) for d in out.state.outbox]
        if not isinstance(out, Ok):
            return out.error, due
        reply = out.reply
        if isinstance(reply, Pending):
            return ("parked", reply.ticket), due
        if isinstance(reply, JoinResponse | SyncResponse):
            return _answer(reply), due
        return reply, due

    def _impl_done(self, reply: Any) -> tuple[Any, list[Any]]:
        """Write queued records at once (successfully), then the impl's reply and its due
        answers, a parked request answered within the same step taken as the reply (as
        the spec's ``settle`` does)."""
        while self.impl.stores:
            for store in self.impl.take_stores():
                if store.on_stored is not None:
                    store.on_stored(ErrorCode.NONE, self.impl.now_ms)
        due = self.impl.take_outbox()
        if isinstance(reply, im.Parked):
            mine = [a for t, a in due if t == reply.ticket and not isinstance(a, im.Abandoned)]
            if mine:
                due = [(t, a) for t, a in due if t != reply.ticket]
                return _answer(mine[0]), [(t, _answer(a)) for t, a in due]
            return ("parked", reply.ticket), [(t, _answer(a)) for t, a in due]
        if isinstance(reply, im.JoinResult | im.SyncResult):
            reply = _answer(reply)
        return reply, [(t, _answer(a)) for t, a in due]

    def _check(self, spec: tuple[Any, list[Any]], impl: tuple[Any, list[Any]]) -> None:
        assert impl == spec
        for _, a in spec[1]:
            if a[0] == "join" and a[2]:
                self.ids.add(a[2])
        if isinstance(spec[0], tuple) and spec[0][0] == "join" and spec[0][2]:
            self.ids.add(spec[0][2])
        assert _groups(self.impl.groups) == _groups(self.spec.groups)
        assert self.impl.now_ms == self.spec.now_ms

    def _member(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.ids | {""})))

    def _generation(self, data: st.DataObject) -> int:
        g = self.spec.groups.get(G)
        base = g.generation_id if g is not None else 0
        return base + data.draw(st.sampled_from([0, 0, 0, -1, 1]))

    # --- rules -------------------------------------------------------------------------

    @rule(data=st.data())
    def join(self, data: st.DataObject) -> None:
        client = data.draw(st.sampled_from(["c0", "c1"]))
        instance = data.draw(st.sampled_from(INSTANCES))
        version = data.draw(st.sampled_from([3, 4, 9, 5]))
        protocols = data.draw(st.sampled_from(PROTOCOLS))
        session = data.draw(st.sampled_from([6000, 10_000, 5000]))
        rebalance = data.draw(st.sampled_from([0, 3000, 20_000]))
        if version < 5:
            instance = None
        member_id = self._member(data)
        spec = self._spec_step(
            JoinGroup(
                G, member_id, instance, client, session, rebalance, "consumer", protocols, version
            )
        )
        request = JoinRequest(
            group_id=G,
            member_id=member_id,
            group_instance_id=instance,
            client_id=client,
            client_host="",
            session_timeout_ms=session,
            rebalance_timeout_ms=rebalance,
            protocol_type="consumer",
            protocols=tuple(im.Protocol(p.name, p.metadata) for p in protocols),
            require_known_member_id=version >= 4 and instance is None,
            supports_skip_assignment=version >= 9,
        )
        reply: Any = join_group(self.impl, request, self.impl.now_ms)
        if isinstance(reply, im.JoinResult) and isinstance(spec[0], ErrorCode):
            reply = reply.error  # the spec refuses with a bare error
        self._check(spec, self._impl_done(reply))

    @rule(data=st.data(), instance=st.sampled_from(INSTANCES), with_protocol=st.booleans())
    def sync(self, data: st.DataObject, instance: str | None, with_protocol: bool) -> None:
        member_id = self._member(data)
        generation = self._generation(data)
        g = self.spec.groups.get(G)
        members = sorted(g.members) if g is not None else []
        chosen = data.draw(st.lists(st.sampled_from(members), unique=True)) if members else []
        assignments = {mid: mid.encode() for mid in chosen}
        ptype = "consumer" if with_protocol else None
        pname = (g.protocol_name if g is not None else None) if with_protocol else None
        spec = self._spec_step(
            SyncGroup(G, generation, member_id, instance, ptype, pname, assignments)
        )
        request = SyncRequest(G, generation, member_id, instance, ptype, pname, assignments)
        reply: Any = sync_group(self.impl, request, self.impl.now_ms)
        if isinstance(reply, im.SyncResult) and isinstance(spec[0], ErrorCode):
            reply = reply.error
        self._check(spec, self._impl_done(reply))

    @rule(data=st.data(), instance=st.sampled_from(INSTANCES))
    def heartbeat(self, data: st.DataObject, instance: str | None) -> None:
        member_id = self._member(data)
        generation = self._generation(data)
        spec = self._spec_step(Heartbeat(G, generation, member_id, instance))
        err = heartbeat(self.impl, MemberRef(G, member_id, generation, instance), self.impl.now_ms)
        self._check(spec, self._impl_done(None if err is ErrorCode.NONE else err))

    @rule(data=st.data(), instance=st.sampled_from(INSTANCES))
    def leave(self, data: st.DataObject, instance: str | None) -> None:
        leaving = [(self._member(data), instance)]
        if data.draw(st.booleans()):
            leaving.append((self._member(data), None))
        out = self._spec_step(LeaveGroup(G, tuple(MemberIdentity(m, i) for m, i in leaving)))
        reply = out[0]
        if isinstance(reply, LeaveResponse):
            reply = [r.error for r in reply.members]
        errors = leave_group(
            self.impl, G, [LeavingMember(m, i) for m, i in leaving], self.impl.now_ms
        )
        self._check((reply, out[1]), self._impl_done(errors))

    @rule(data=st.data(), instance=st.sampled_from(INSTANCES), simple=st.booleans())
    def commit(self, data: st.DataObject, instance: str | None, simple: bool) -> None:
        member_id = "" if simple else self._member(data)
        generation = -1 if simple else self._generation(data)
        spec = self._spec_step(OffsetCommit(G, (), generation, member_id, instance))
        if spec[0] is not None and not isinstance(spec[0], ErrorCode):
            spec = (None, spec[1])  # accepted (the spec's per-partition answer is empty)
        ref = MemberRef(G, member_id, generation, instance)
        err = validate_commit(self.impl, ref, self.impl.now_ms)
        self._check(spec, self._impl_done(None if err is ErrorCode.NONE else err))

    @rule(ms=st.sampled_from([0, 1, 500, 3000, 6000, 10_000, 30_000]))
    def tick(self, ms: int) -> None:
        spec = self._spec_step(Tick(ms))
        self.impl.advance(self.impl.now_ms + ms)
        self._check(spec, self._impl_done(None))


MembershipVsSpec.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestMembershipVsSpec = MembershipVsSpec.TestCase
