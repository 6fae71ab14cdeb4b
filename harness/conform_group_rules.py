"""The consumer group rules of the conformance state machine (a mixin of
``harness.conform_machine.ConformanceMachine``).

Each example has one group (``<namespace>g``) and up to three members (slots 0-2), each a
consumer with its own connection; the rules run only when the target declares ``groups``
and offers the group APIs and DescribeGroups.  A member's rules are enabled while it
waits for no answer (its JoinGroup or SyncGroup may be parked).  Each member keeps what
its client would know: its member id, generation, protocol, whether it leads and the
members the leader was told, whether it must rejoin.

Rules:

``join_group``       JoinGroup: a new member (empty id: MEMBER_ID_REQUIRED, KIP-394, or a
                     static member's id), the member id it was given, an older one, or a
                     static member's restart; protocols ``range``/``roundrobin`` with
                     subscriptions to the example's topics; sometimes an invalid session
                     timeout
``sync_group``       SyncGroup at the member's generation (sometimes another); the leader
                     sends an assignment per member it was told about, computed as the
                     range assignor would and encoded with ``spec.consumer_protocol``
                     (sometimes leaving one member out)
``heartbeat``        Heartbeat at the member's generation or another
``leave_group``      LeaveGroup of the member
``consumer_poll``    what a consumer's poll loop does next: join, rejoin, sync, then
                     heartbeat or commit offsets at its generation
``commit_offsets``   OffsetCommit by a member (its generation, an older one, -1) or by a
                     simple consumer (generation -1, or a made-up one), some partitions of
                     topics that do not exist
``inspect_group``    OffsetFetch of some partitions or of all the group committed,
                     DescribeGroups, or FindCoordinator (the same coordinator as at the
                     example's start)
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from harness.conform_check import ExampleRun
from harness.conform_group_ids import NEW, parse_logical_id
from harness.conform_group_ops import (
    ADMIN,
    INVALID_SESSION_TIMEOUT_MS,
    SESSION_TIMEOUT_MS,
    DescribeGroup,
    FindCoordinator,
    GroupAnswer,
    GroupErrorAnswer,
    GroupOperation,
    GroupStep,
    Heartbeat,
    JoinAnswer,
    JoinGroup,
    LeaveGroup,
    OffsetCommit,
    OffsetFetch,
    SyncAnswer,
    SyncGroup,
)
from harness.conform_target import TargetDeclaration, groups_fit
from spec.consumer_protocol import (
    Assignment,
    ConsumerProtocolError,
    decode_subscription,
    encode_assignment,
)
from spec.errors import ErrorCode
from spec.state import TopicPartition

MAX_MEMBERS = 3
PROTOCOLS = (("range",), ("range", "roundrobin"), ("roundrobin",))
"""What members offer: ``range`` always first, so that no protocol vote ties."""
METADATA = st.sampled_from(["", "", "m", "checkpoint-7"])
GONE = (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_INSTANCE_ID)
REJOIN = (ErrorCode.REBALANCE_IN_PROGRESS, ErrorCode.ILLEGAL_GENERATION)


@attrs.define
class MemberView:
    """A member as its client knows itself."""

    static: bool | None = None
    member: int | None = None
    """Index of its member id among those it was told (None: it has none)."""
    generation: int = -1
    protocol: str | None = None
    leader: bool = False
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    synced: bool = False
    rejoin: bool = False
    sent: GroupOperation | None = None


def range_assignment(
    members: tuple[tuple[str, str | None, bytes], ...], partitions: dict[str, int], drop: int
) -> tuple[tuple[str, bytes], ...]:
    """Each subscribed topic's partitions dealt to its subscribers in member order, each
    member's assignment carrying its (logical) id as user data; member number ``drop``
    (if any) is left out."""
    topics: dict[str, tuple[str, ...]] = {}
    for mid, _, metadata in members:
        try:
            topics[mid] = decode_subscription(metadata).topics
        except ConsumerProtocolError:
            topics[mid] = ()
    owned: dict[str, list[TopicPartition]] = {mid: [] for mid in topics}
    for topic in sorted({t for ts in topics.values() for t in ts}):
        owners = sorted(m for m, ts in topics.items() if topic in ts)
        for p in range(partitions.get(topic, 0)):
            owned[owners[p % len(owners)]].append(TopicPartition(topic, p))
    return tuple(
        (mid, encode_assignment(Assignment(tuple(tps), mid.encode())))
        for i, (mid, tps) in enumerate(sorted(owned.items()))
        if i != drop
    )


class GroupRules(RuleBasedStateMachine):
    """The group rules (module doc); the machine provides ``example``, ``declaration``
    and ``topics``."""

    example: ExampleRun
    declaration: TargetDeclaration
    topics: dict[str, int]

    def __init__(self) -> None:
        super().__init__()
        self.views = [MemberView() for _ in range(MAX_MEMBERS)]
        self._groups: bool | None = None

    # --- helpers ------------------------------------------------------------------------

    def groups_on(self) -> bool:
        if self._groups is None:
            self._groups = (
                self.declaration.groups
                and groups_fit(self.declaration)
                and self.example.executor.groups.offered()
            )
        return self._groups

    def _free(self) -> list[int]:
        gx = self.example.executor.groups
        return [s for s in range(MAX_MEMBERS) if not gx.busy(s)]

    def _members(self) -> list[int]:
        return [s for s in self._free() if self.views[s].member is not None]

    def _joined(self) -> list[int]:
        return [s for s in self._members() if self.views[s].generation >= 0]

    def _perform_group(self, rule_name: str, op: GroupOperation) -> None:
        if hasattr(op, "slot") and op.slot >= 0:
            self.views[op.slot].sent = op
        step = self.example.perform(rule_name, op)
        if isinstance(step, GroupStep):
            for answer in step.answers:
                if answer.slot >= 0:
                    self._learn(self.views[answer.slot], answer.answer)

    def _learn(self, v: MemberView, answer: GroupAnswer) -> None:
        """What the member's client takes from an answer to its last request."""
        sent = v.sent
        current = sent is not None and getattr(sent, "member", NEW) == v.member
        error = getattr(answer, "error", None)
        if isinstance(answer, JoinAnswer) and answer.error in (
            ErrorCode.NONE,
            ErrorCode.MEMBER_ID_REQUIRED,
        ):
            parsed = parse_logical_id(answer.member_id)
            v.member = None if parsed is None else parsed[1]
            v.rejoin = answer.error is ErrorCode.MEMBER_ID_REQUIRED
            v.generation = answer.generation
            v.protocol = answer.protocol_name
            v.leader = bool(answer.leader) and answer.leader == answer.member_id
            v.members = answer.members
            v.synced = False
        elif error in GONE and (current or sent is None or getattr(sent, "member", NEW) == NEW):
            v.member, v.generation, v.synced = None, -1, False
        elif error in REJOIN and current:
            v.rejoin = True
        elif isinstance(answer, SyncAnswer) and answer.error is ErrorCode.NONE:
            v.synced = True
        if isinstance(answer, GroupErrorAnswer) and answer.api == "LeaveGroup" and current:
            v.member, v.generation, v.synced = None, -1, False

    def _static(self, data: st.DataObject, slot: int) -> bool:
        v = self.views[slot]
        if v.static is None:
            allowed = self.example.executor.groups.versions()["JoinGroup"] >= 5
            v.static = allowed and data.draw(st.booleans(), label="static")
        return v.static

    def _generation(self, data: st.DataObject, v: MemberView) -> int:
        return data.draw(
            st.sampled_from([v.generation] * 4 + [v.generation - 1, v.generation + 1]),
            label="generation",
        )

    def _join(self, data: st.DataObject, slot: int, member: int) -> JoinGroup:
        names = data.draw(st.sampled_from(PROTOCOLS), label="protocols")
        subscribed: tuple[str, ...] = ()
        if self.topics:
            subscribed = tuple(
                data.draw(
                    st.lists(st.sampled_from(sorted(self.topics)), max_size=2, unique=True),
                    label="topics",
                )
            )
        return JoinGroup(
            slot, member, self._static(data, slot), tuple((n, subscribed) for n in names)
        )

    def _sync(self, data: st.DataObject, slot: int, generation: int) -> SyncGroup:
        v = self.views[slot]
        assignments: tuple[tuple[str, bytes], ...] = ()
        if v.leader:
            drop = data.draw(st.sampled_from([-1, -1, -1, 0, 1]), label="left out")
            assignments = range_assignment(v.members, self.topics, drop)
        assert v.member is not None
        return SyncGroup(slot, v.member, generation, bool(v.static), v.protocol, assignments)

    # --- members ------------------------------------------------------------------------

    @precondition(lambda self: self.groups_on() and bool(self._free()))
    @rule(data=st.data())
    def join_group(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self._free()), label="member")
        v = self.views[slot]
        static = self._static(data, slot)
        choices = [NEW]
        if v.member is not None:
            known = self.example.executor.groups.ids.get(slot, ())
            choices = [v.member] * 4 + [i for i in range(len(known)) if i != v.member]
            choices += [NEW] if static else []
        member = data.draw(st.sampled_from(choices), label="member id")
        op = self._join(data, slot, member)
        timeout = data.draw(
            st.sampled_from([SESSION_TIMEOUT_MS] * 7 + [INVALID_SESSION_TIMEOUT_MS]),
            label="session timeout",
        )
        self._perform_group("join_group", attrs.evolve(op, session_timeout_ms=timeout))

    @precondition(lambda self: self.groups_on() and bool(self._joined()))
    @rule(data=st.data())
    def sync_group(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self._joined()), label="member")
        generation = self._generation(data, self.views[slot])
        self._perform_group("sync_group", self._sync(data, slot, generation))

    @precondition(lambda self: self.groups_on() and bool(self._members()))
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self._members()), label="member")
        v = self.views[slot]
        assert v.member is not None
        op = Heartbeat(slot, v.member, self._generation(data, v), bool(v.static))
        self._perform_group("heartbeat", op)

    @precondition(lambda self: self.groups_on() and bool(self._members()))
    @rule(data=st.data())
    def leave_group(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self._members()), label="member")
        v = self.views[slot]
        assert v.member is not None
        self._perform_group("leave_group", LeaveGroup(slot, v.member, bool(v.static)))

    @precondition(lambda self: self.groups_on() and bool(self._free()))
    @rule(data=st.data())
    def consumer_poll(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self._free()), label="member")
        v = self.views[slot]
        if v.member is None:
            op: GroupOperation = self._join(data, slot, NEW)
        elif v.rejoin or v.generation < 0:
            op = self._join(data, slot, v.member)
        elif not v.synced:
            op = self._sync(data, slot, v.generation)
        elif bool(self.topics) and data.draw(st.booleans(), label="commit"):
            op = self._commit(data, slot, v.member, v.generation, bool(v.static))
        else:
            op = Heartbeat(slot, v.member, v.generation, bool(v.static))
        self._perform_group("consumer_poll", op)

    # --- offsets and the coordinator ----------------------------------------------------

    def _partitions(self, data: st.DataObject) -> list[TopicPartition]:
        existing = [
            TopicPartition(t, p) for t, n in sorted(self.topics.items()) for p in range(n + 1)
        ]
        return data.draw(
            st.lists(st.sampled_from(existing), min_size=1, max_size=3, unique=True),
            label="partitions",
        )

    @precondition(lambda self: self.groups_on() and bool(self.topics))
    @rule(data=st.data())
    def commit_offsets(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from([ADMIN, *self._members()]), label="committer")
        if slot == ADMIN:
            member, generation, static = (
                NEW,
                data.draw(st.sampled_from([-1, -1, -1, 1]), label="generation"),
                False,
            )
        else:
            v = self.views[slot]
            assert v.member is not None
            member, static = v.member, bool(v.static)
            generation = data.draw(
                st.sampled_from([v.generation, v.generation - 1, v.generation - 1, -1]),
                label="generation",
            )
        self._perform_group("commit_offsets", self._commit(data, slot, member, generation, static))

    def _commit(
        self, data: st.DataObject, slot: int, member: int, generation: int, static: bool
    ) -> OffsetCommit:
        offsets = tuple(
            (
                tp,
                data.draw(st.integers(0, 20), label="offset"),
                data.draw(METADATA, label="metadata"),
            )
            for tp in self._partitions(data)
        )
        return OffsetCommit(slot, member, generation, offsets, static)

    @precondition(lambda self: self.groups_on())
    @rule(data=st.data())
    def inspect_group(self, data: st.DataObject) -> None:
        which = data.draw(st.sampled_from(["offsets", "offsets", "describe", "coordinator"]))
        op: GroupOperation = DescribeGroup()
        if which == "coordinator":
            op = FindCoordinator()
        elif which == "offsets":
            partitions = None
            if bool(self.topics) and data.draw(st.booleans(), label="some"):
                partitions = tuple(self._partitions(data))
            op = OffsetFetch(partitions)
        self._perform_group("inspect_group", op)
