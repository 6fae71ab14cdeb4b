"""Random action sequences on the group coordinator model.

Clients join (static or dynamic, any JoinGroup version), rejoin, sync (the leader with a
correct assignor), heartbeat, commit and leave with current, stale and unknown member ids
and generations, while time passes and the coordinator fails over.  After every step: no
action raised, GroupWellFormed, GroupAssignmentExclusive, GenerationNeverDecreases, each
parked request answered at most once.  At the end, with every client silent, time runs
out every timer: each parked request has been answered and every group is Empty.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from spec.config import SpecConfig
from spec.consumer_protocol import Assignment, encode_assignment, subscribed_topics
from spec.group import (
    GroupAction,
    generation_never_decreases,
    group_assignment_exclusive,
    group_well_formed,
    in_flight,
    step,
    take_responses,
)
from spec.group_actions import (
    CoordinatorElected,
    CoordinatorLoaded,
    CoordinatorResigned,
    CoordinatorShutdown,
    CoordinatorStartup,
    Heartbeat,
    JoinGroup,
    LeaveGroup,
    MemberIdentity,
    SyncGroup,
    Tick,
)
from spec.group_state import (
    Coordinator,
    CoordinatorStatus,
    Group,
    GroupPhase,
    JoinResponse,
    Pending,
    Protocol,
    coordinator,
)
from spec.offsets import (
    CommitOffset,
    ExpireOffsets,
    OffsetCommit,
    OffsetFetch,
    OffsetFetchResponse,
)
from spec.outcome import Ok
from spec.state import TopicPartition
from tests.spec.group_helpers import sub

G = "g"
TOPICS = {"t": 3, "u": 2}
CLIENTS = ("c0", "c1", "c2")
INSTANCES = (None, None, "i0", "i1")

topic_sets = st.sets(st.sampled_from(sorted(TOPICS)), min_size=1).map(sorted)
protocol_names = st.sampled_from([("range",), ("roundrobin",), ("range", "roundrobin")])
gen_skew = st.sampled_from([0, 0, 0, -1, 1])


def assignor(g: Group, among: frozenset[str] | None = None) -> dict[str, bytes]:
    """A correct assignor: each partition of a topic goes to one member subscribed to it;
    with ``among``, only those members get anything and the rest are left out of the map."""
    subs = {
        mid: subscribed_topics(m.metadata_for(g.protocol_name or "") or b"") or frozenset()
        for mid, m in g.members.items()
        if among is None or mid in among
    }
    parts: dict[str, list[TopicPartition]] = {mid: [] for mid in subs}
    for topic, n in sorted(TOPICS.items()):
        who = sorted(mid for mid, ts in subs.items() if topic in ts)
        for p in range(n):
            if who:
                parts[who[p % len(who)]].append(TopicPartition(topic, p))
    return {mid: encode_assignment(Assignment(tuple(tps))) for mid, tps in parts.items()}


class GroupMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.c: Coordinator = coordinator()
        self.ids: set[str] = {"nobody"}
        self.parked: set[int] = set()
        self.delivered: set[int] = set()

    @initialize(delay=st.sampled_from([0, 0, 3000]))
    def configure(self, delay: int) -> None:
        self.c = coordinator(SpecConfig(group_initial_rebalance_delay_ms=delay))

    # --- plumbing ----------------------------------------------------------------------

    def apply(self, action: GroupAction) -> None:
        before = self.c
        out = step(before, action)  # never raises
        assert generation_never_decreases(before, out.state)
        self.c, done = take_responses(out.state)
        for d in done:
            assert d.ticket not in self.delivered, d
            self.delivered.add(d.ticket)
            if isinstance(d.response, JoinResponse) and d.response.member_id:
                self.ids.add(d.response.member_id)
        if isinstance(out, Ok):
            if isinstance(out.reply, Pending):
                self.parked.add(out.reply.ticket)
            if isinstance(out.reply, JoinResponse):
                self.ids.add(out.reply.member_id)
        g = self.c.groups.get(G)
        if g is not None:
            self.ids |= set(g.members) | set(g.pending_members)

    def group(self) -> Group | None:
        return self.c.groups.get(G)

    def instance_of(self, mid: str) -> str | None:
        g = self.group()
        m = None if g is None else g.members.get(mid)
        return None if m is None else m.group_instance_id

    def generation(self, skew: int) -> int:
        g = self.group()
        return (0 if g is None else g.generation_id) + skew

    # --- clients -----------------------------------------------------------------------

    @rule(
        client=st.sampled_from(CLIENTS),
        inst=st.sampled_from(INSTANCES),
        topics=topic_sets,
        names=protocol_names,
        version=st.sampled_from([3, 4, 8, 9]),
        session=st.sampled_from([6000, 10_000]),
        rebalance=st.sampled_from([0, 10_000, 30_000]),
        data=st.data(),
    )
    def join(
        self,
        *,
        client: str,
        inst: str | None,
        topics: list[str],
        names: tuple[str, ...],
        version: int,
        session: int,
        rebalance: int,
        data: st.DataObject,
    ) -> None:
        mid = data.draw(st.sampled_from(["", "", *sorted(self.ids)]), label="member_id")
        if mid and data.draw(st.booleans(), label="own instance id"):
            inst = self.instance_of(mid)
        protocols = tuple(Protocol(n, sub(*topics)) for n in names)
        self.apply(
            JoinGroup(G, mid, inst, client, session, rebalance, "consumer", protocols, version)
        )

    @rule(data=st.data(), skew=gen_skew, leader_assigns=st.booleans())
    def sync(self, data: st.DataObject, skew: int, leader_assigns: bool) -> None:
        mid = data.draw(st.sampled_from(sorted(self.ids)), label="member_id")
        g = self.group()
        plan: dict[str, bytes] = {}
        if g is not None and g.leader_id == mid and g.phase is GroupPhase.COMPLETING_REBALANCE:
            plan = assignor(g) if leader_assigns else {}
        self.apply(
            SyncGroup(G, self.generation(skew), mid, self.instance_of(mid), assignments=plan)
        )

    @rule(data=st.data(), skew=gen_skew)
    def heartbeat(self, data: st.DataObject, skew: int) -> None:
        mid = data.draw(st.sampled_from(sorted(self.ids)), label="member_id")
        self.apply(Heartbeat(G, self.generation(skew), mid, self.instance_of(mid)))

    @rule(data=st.data(), by_instance=st.booleans())
    def leave(self, data: st.DataObject, by_instance: bool) -> None:
        mid = data.draw(st.sampled_from(sorted(self.ids)), label="member_id")
        inst = self.instance_of(mid)
        ident = MemberIdentity("", inst) if by_instance and inst else MemberIdentity(mid, inst)
        self.apply(LeaveGroup(G, (ident,)))

    @rule(data=st.data(), skew=gen_skew, simple=st.booleans(), offset=st.integers(0, 99))
    def commit(self, data: st.DataObject, skew: int, simple: bool, offset: int) -> None:
        tp = TopicPartition("t", data.draw(st.integers(0, 2), label="partition"))
        if simple:
            action = OffsetCommit(G, (CommitOffset(tp, offset),))
        else:
            mid = data.draw(st.sampled_from(sorted(self.ids)), label="member_id")
            action = OffsetCommit(
                G, (CommitOffset(tp, offset),), self.generation(skew), mid, self.instance_of(mid)
            )
        out = step(self.c, action)
        self.apply(action)
        if isinstance(out, Ok):  # an accepted commit is what OffsetFetch returns next
            fetched = step(self.c, OffsetFetch(G, (tp,)))
            assert isinstance(fetched, Ok) and isinstance(fetched.reply, OffsetFetchResponse)
            assert fetched.reply.partitions[tp].offset == offset

    # --- clients that follow the protocol --------------------------------------------

    @precondition(lambda self: self.group() is not None and bool(self.group().pending_members))
    @rule(data=st.data(), topics=topic_sets)
    def claim_member_id(self, data: st.DataObject, topics: list[str]) -> None:
        """KIP-394: a member told MEMBER_ID_REQUIRED rejoins with its id."""
        g = self.group()
        assert g is not None
        mid = data.draw(st.sampled_from(sorted(g.pending_members)), label="pending id")
        protocols = (Protocol("range", sub(*topics)),)
        self.apply(
            JoinGroup(G, mid, None, mid.split("-")[0], 10_000, 30_000, "consumer", protocols)
        )

    @precondition(lambda self: self.group() is not None and bool(self.group().members))
    @rule(data=st.data())
    def rejoin_current(self, data: st.DataObject) -> None:
        """A current member rejoins with its id, instance id and protocols."""
        g = self.group()
        assert g is not None
        self.rejoin_member(data.draw(st.sampled_from(g.member_ids()), label="member"))

    @precondition(lambda self: self.group() is not None and bool(self.group().members))
    @rule(data=st.data(), partial=st.booleans())
    def sync_current(self, data: st.DataObject, partial: bool) -> None:
        """A current member syncs in the current generation; the leader brings assignments
        (maybe for only some members)."""
        g = self.group()
        assert g is not None
        m = g.members[data.draw(st.sampled_from(g.member_ids()), label="member")]
        among = None
        if partial:
            among = frozenset(data.draw(st.sets(st.sampled_from(g.member_ids())), label="among"))
        plan = assignor(g, among) if m.member_id == g.leader_id else {}
        self.apply(
            SyncGroup(G, g.generation_id, m.member_id, m.group_instance_id, assignments=plan)
        )

    @precondition(lambda self: self.group() is not None and bool(self.group().members))
    @rule()
    def converge(self) -> None:
        """Every current member follows the protocol until the group is Stable (or falls apart)."""
        for _ in range(6):
            g = self.group()
            if g is None or not g.members or self.c.status is not CoordinatorStatus.ACTIVE:
                return
            if g.phase is GroupPhase.PREPARING_REBALANCE:
                for m in list(g.members.values()):
                    if not m.awaiting_join and m.member_id in (self.group() or g).members:
                        self.rejoin_member(m.member_id)
                g = self.group()
                if g is not None and g.join_timer is not None:
                    self.apply(Tick(max(g.join_timer.deadline_ms - self.c.now_ms, 0)))
            elif g.phase is GroupPhase.COMPLETING_REBALANCE:
                for mid in sorted(g.members, key=lambda x: x == g.leader_id):
                    h = self.group()
                    if h is None or h.phase is not GroupPhase.COMPLETING_REBALANCE:
                        break
                    if mid in h.members:
                        m = h.members[mid]
                        plan = assignor(h) if mid == h.leader_id else {}
                        self.apply(
                            SyncGroup(
                                G, h.generation_id, mid, m.group_instance_id, assignments=plan
                            )
                        )
            else:
                return

    @precondition(
        lambda self: (
            self.group() is not None and self.group().phase is GroupPhase.COMPLETING_REBALANCE
        )
    )
    @rule()
    def followers_sync(self) -> None:
        """Every follower sends SyncGroup; the leader has not yet."""
        g = self.group()
        assert g is not None
        for mid in g.member_ids():
            h = self.group()
            if mid != g.leader_id and h is not None and mid in h.members:
                inst = h.members[mid].group_instance_id
                self.apply(SyncGroup(G, h.generation_id, mid, inst))

    def rejoin_member(self, mid: str) -> None:
        g = self.group()
        assert g is not None
        m = g.members[mid]
        self.apply(
            JoinGroup(
                G,
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.session_timeout_ms,
                m.rebalance_timeout_ms,
                m.protocol_type,
                m.protocols,
            )
        )

    @precondition(lambda self: self.group() is not None and bool(self.group().members))
    @rule()
    def everyone_heartbeats(self) -> None:
        g = self.group()
        assert g is not None
        for m in g.members.values():
            self.apply(Heartbeat(G, g.generation_id, m.member_id, m.group_instance_id))

    # --- environment -------------------------------------------------------------------

    @rule(ms=st.sampled_from([0, 0, 1, 1000, 3000, 5000, 10_000, 30_000, 300_000]))
    def tick(self, ms: int) -> None:
        self.apply(Tick(ms))

    @precondition(lambda self: self.c.status is CoordinatorStatus.ACTIVE)
    @rule()
    def expire_offsets(self) -> None:
        self.apply(ExpireOffsets())

    @rule(resign=st.booleans(), now=st.integers(0, 3))
    def lifecycle(self, resign: bool, now: int) -> None:
        """Now and then, the coordinator's next lifecycle event: fail over, or shut down
        and come back."""
        status = self.c.status
        if now and status is CoordinatorStatus.ACTIVE:
            return
        if status is CoordinatorStatus.ACTIVE:
            event: GroupAction = CoordinatorResigned() if resign else CoordinatorShutdown()
        elif status is CoordinatorStatus.LOADING:
            event = CoordinatorLoaded()
        elif status is CoordinatorStatus.NOT_COORDINATOR:
            event = CoordinatorElected()
        else:
            event = CoordinatorStartup()
        self.apply(event)

    # --- checks ------------------------------------------------------------------------

    @invariant()
    def well_formed(self) -> None:
        assert group_well_formed(self.c)

    @invariant()
    def assignment_exclusive(self) -> None:
        assert group_assignment_exclusive(self.c)

    def teardown(self) -> None:
        if self.c.status is CoordinatorStatus.ACTIVE:
            self.apply(Tick(10_000_000))  # every client falls silent
            assert not in_flight(self.c)
            assert all(g.phase is GroupPhase.EMPTY for g in self.c.groups.values())
        assert self.parked <= self.delivered


TestGroupMachine = GroupMachine.TestCase
TestGroupMachine.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
