"""Shared helpers for the group coordinator tests: drive the model as a client would."""

from __future__ import annotations

from collections.abc import Iterable

from spec.config import SpecConfig
from spec.consumer_protocol import Assignment, Subscription, encode_assignment, encode_subscription
from spec.errors import ErrorCode
from spec.group import Reply, step, take_responses
from spec.group_actions import Heartbeat, JoinGroup, SyncGroup, Tick
from spec.group_state import (
    Abandoned,
    Coordinator,
    GroupPhase,
    JoinResponse,
    Pending,
    Protocol,
    SyncResponse,
    coordinator,
)
from spec.outcome import Ok, Outcome, Rejected
from spec.state import TopicPartition

G = "g"
SESSION = 10_000
REBALANCE = 30_000


def sub(*topics: str) -> bytes:
    return encode_subscription(Subscription(tuple(topics)))


def asg(*tps: tuple[str, int]) -> bytes:
    return encode_assignment(Assignment(tuple(TopicPartition(t, p) for t, p in tps)))


def ok(out: Outcome[Coordinator, Reply]) -> tuple[Coordinator, Reply]:
    assert isinstance(out, Ok), out
    return out.state, out.reply


def refused(out: Outcome[Coordinator, Reply], error: ErrorCode) -> Coordinator:
    assert isinstance(out, Rejected), out
    assert out.error is error, out.error
    return out.state


def join(
    c: Coordinator,
    client: str,
    member_id: str = "",
    *,
    instance: str | None = None,
    topics: Iterable[str] = ("t",),
    version: int = 9,
    session: int = SESSION,
    rebalance: int = REBALANCE,
    protocols: tuple[Protocol, ...] | None = None,
) -> Outcome[Coordinator, Reply]:
    protos = protocols if protocols is not None else (Protocol("range", sub(*topics)),)
    return step(
        c,
        JoinGroup(G, member_id, instance, client, session, rebalance, "consumer", protos, version),
    )


def new_member(
    c: Coordinator, client: str, *, instance: str | None = None
) -> tuple[Coordinator, str, Reply]:
    """A new member joins; a dynamic one does the KIP-394 round trip first."""
    c, reply = ok(join(c, client, instance=instance))
    if isinstance(reply, JoinResponse) and reply.error is ErrorCode.MEMBER_ID_REQUIRED:
        mid = reply.member_id
        c, reply = ok(join(c, client, mid))
        return c, mid, reply
    assert isinstance(reply, Pending)
    return c, _parked_member(c, reply.ticket), reply


def _parked_member(c: Coordinator, ticket: int) -> str:
    g = c.groups[G]
    return next(mid for mid, m in g.members.items() if m.join_ticket == ticket)


def drain(c: Coordinator) -> tuple[Coordinator, dict[int, JoinResponse | SyncResponse | Abandoned]]:
    c, done = take_responses(c)
    return c, {d.ticket: d.response for d in done}


def tick(c: Coordinator, ms: int) -> Coordinator:
    return ok(step(c, Tick(ms)))[0]


def form_group(
    n: int, *, static: bool = False, config: SpecConfig | None = None
) -> tuple[Coordinator, list[str]]:
    """``n`` members join, the leader assigns partition i of "t" to the i-th member: Stable."""
    c = coordinator(config)
    ids = []
    for i in range(n):
        inst = f"i{i}" if static else None
        c, mid, _ = new_member(c, f"c{i}", instance=inst)
        ids.append(mid)
    c = tick(c, 0)  # group.initial.rebalance.delay.ms = 0: the join phase ends at once
    c, due = drain(c)
    g = c.groups[G]
    assert g.phase is GroupPhase.COMPLETING_REBALANCE and len(due) == n
    for mid in ids:
        if mid != g.leader_id:
            c, r = ok(step(c, SyncGroup(G, g.generation_id, mid)))
            assert isinstance(r, Pending)
    plan = {mid: asg(("t", i)) for i, mid in enumerate(sorted(ids))}
    c, _ = ok(step(c, SyncGroup(G, g.generation_id, g.leader_id or "", assignments=plan)))
    c, _ = drain(c)
    assert c.groups[G].phase is GroupPhase.STABLE
    return c, ids


def keep_alive(c: Coordinator, members: Iterable[str], ms: int) -> Coordinator:
    """``ms`` pass while ``members`` heartbeat every 5 s (whatever the answer)."""
    for _ in range(ms // 5000):
        for mid in members:
            if mid in c.groups[G].members:
                c = hb(c, mid).state
        c = tick(c, 5000)
    return c


def hb(
    c: Coordinator, mid: str, gen: int | None = None, inst: str | None = None
) -> Outcome[Coordinator, Reply]:
    g = c.groups[G]
    return step(c, Heartbeat(G, g.generation_id if gen is None else gen, mid, inst))
