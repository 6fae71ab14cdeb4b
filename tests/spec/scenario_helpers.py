"""The scenario driver shared by the replication scenario tests.

``World`` is a cluster driven through ``spec.cluster.step`` with one topic partition
``TP``: it is set up through the model's own actions (controller election, CreateTopic,
LeaderAndIsr on every replica) and settled, so that each scenario starts from the same
running partition (test_topic_admin.py checks that starting point).
"""

from __future__ import annotations

from typing import Any

from spec.actions import (
    ACKS_ALL,
    Action,
    ApplyLeaderAndIsr,
    CompleteProduce,
    CreateTopic,
    ElectController,
    ExpandIsr,
    FollowerFetch,
    Produce,
    ProducedRecord,
    ShrinkIsr,
)
from spec.cluster import internal_actions, step
from spec.config import SpecConfig
from spec.errors import ErrorCode
from spec.invariants import INVARIANTS
from spec.outcome import Ok, Rejected
from spec.produce import ProduceReply
from spec.state import Replica, TopicPartition, initial_state

TP = TopicPartition("t", 0)
LAG_MS = 1_000


class World:
    """A cluster driven through ``step``: ``ok`` applies an action that must succeed,
    ``refuse`` one that must be rejected with a given error and leave the state alone."""

    def __init__(
        self,
        brokers: int = 3,
        assignment: tuple[int, ...] | None = None,
        *,
        controller: int = 0,
        **config: Any,
    ) -> None:
        config.setdefault("min_insync_replicas", 2)
        config.setdefault("replica_lag_time_max_ms", LAG_MS)
        self.s = initial_state(SpecConfig(**config), brokers)
        replicas = assignment if assignment is not None else tuple(range(brokers))
        self.ok(ElectController(controller))
        self.ok(CreateTopic(TP.topic, (replicas,)))
        for b in replicas:
            self.ok(ApplyLeaderAndIsr(TP, b))
        self.settle()

    def ok(self, action: Action) -> Any:
        out = step(self.s, action)
        assert isinstance(out, Ok), (action.describe(), out)
        self.s = out.state
        return out.reply

    def refuse(self, action: Action, error: ErrorCode) -> None:
        out = step(self.s, action)
        assert isinstance(out, Rejected), (action.describe(), out)
        assert out.error is error, (action.describe(), out.error)
        assert out.state == self.s

    def settle(self, *, only: tuple[int, ...] | None = None) -> None:
        """Let brokers and controller act (LeaderAndIsr, follower fetches, ISR expansion)
        until nothing more happens; never answers delayed produces, never shrinks the ISR.
        ``only`` restricts follower fetches and LeaderAndIsr to those brokers."""
        for _ in range(200):
            for action in internal_actions(self.s):
                if isinstance(action, CompleteProduce | ShrinkIsr):
                    continue
                broker = getattr(action, "broker", None)
                if only is not None and broker is not None and broker not in only:
                    continue
                if (
                    isinstance(action, ExpandIsr)
                    and only is not None
                    and action.follower not in only
                ):
                    continue
                self.ok(action)
                break
            else:
                return
        raise AssertionError("the cluster did not settle")

    def fetch_rounds(self, broker: int, rounds: int = 1) -> None:
        for _ in range(rounds):
            self.ok(FollowerFetch(TP, broker))

    def produce(self, broker: int, *values: str, acks: int = ACKS_ALL, **kw: Any) -> ProduceReply:
        records = tuple(ProducedRecord(v.encode()) for v in values)
        reply = self.ok(Produce(TP, broker, records, acks=acks, **kw))
        assert isinstance(reply, ProduceReply)
        return reply

    def rep(self, broker: int) -> Replica:
        return self.s.partitions[TP].replica[broker]

    @property
    def zk(self) -> Any:
        return self.s.partitions[TP].zk

    def values(self, broker: int) -> list[str]:
        return [r.value.decode() for r in self.rep(broker).log.records]

    def hw(self, broker: int) -> int:
        return self.rep(broker).high_watermark

    def check_invariants(self, skip: tuple[str, ...] = ()) -> None:
        broken = [n for n, inv in INVARIANTS.items() if n not in skip and not inv(self.s)]
        assert broken == []
