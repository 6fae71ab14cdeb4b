"""Property tests of the cluster model alone: random interleavings of client requests,
faults, retention and the brokers' and controller's own actions, with every named invariant
checked after every step.

A ``RuleBasedStateMachine`` drives ``spec.cluster.step``.  Preconditions keep each rule to
actions that make sense in the current state (a produce goes to a partition that exists,
a restart to a crashed broker...), although the action itself may still be refused: every
step must return ``Ok`` or ``Rejected`` (never raise), a rejection must leave the state
unchanged, and each internal action that ``internal_actions`` offers must succeed.  Junk
requests (unknown topics, invalid brokers, negative offsets, acks=5...) must be refused
with Kafka's error code for that defect.

The machine's client rules are in cluster_client_rules.py, its helpers and the junk
requests in cluster_helpers.py; test_junk_requests.py sends junk alone, from fixed states.

Runs are derandomized and use no example database, so CI sees the same runs every time.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import pytest
from hypothesis import HealthCheck, Phase, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from spec.actions import (
    Action,
    ApplyLeaderAndIsr,
    CrashBroker,
    CreateTopic,
    DeleteRetainedPrefix,
    DeleteTopic,
    ElectController,
    ExpireSession,
    FlushLogs,
    Reregister,
    RestartBroker,
    Tick,
)
from spec.admin import assign_replicas
from spec.canonical import canonical_key
from spec.cluster import internal_actions, step
from spec.config import SpecConfig
from spec.consume import retention_limit
from spec.explorer import acknowledge_due
from spec.invariants import INVARIANTS
from spec.outcome import Ok, Outcome, Rejected
from spec.produce import ProduceResponse
from spec.state import ClusterState, TopicPartition, initial_state
from spec.variants import Variant
from tests.spec.cluster_client_rules import ClientRules
from tests.spec.cluster_helpers import (
    LAG_MS,
    MACHINE_CONFIG,
    TIMEOUT_MS,
    TOPICS,
    controller_live,
    junk_cases,
    leaders,
    refused_unchanged,
)

# --- the state machine --------------------------------------------------------------------


class ClusterMachine(ClientRules, RuleBasedStateMachine):
    """Random runs of the cluster model with every invariant checked after each step."""

    BROKERS: ClassVar[int] = 3
    REPLICATION_FACTOR: ClassVar[int] = 3
    CONFIG: ClassVar[SpecConfig] = MACHINE_CONFIG
    LOSE_UNFLUSHED: ClassVar[bool] = False
    # Answer every delayed produce as soon as it is due with success, as the explorer does
    # (spec.explorer.acknowledge_due): more acknowledged records, stronger invariants.
    EAGER_ACKS: ClassVar[bool] = False
    # Invariants this configuration cannot promise (see the lossy subclass).
    UNCHECKED: ClassVar[frozenset[str]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.s = initial_state(self.CONFIG, self.BROKERS)
        self.values = 0
        # Idempotent producers: (pid, tp) -> (next sequence, last batch (seq, values)).
        self.producers: dict[tuple[int, TopicPartition], tuple[int, tuple[int, tuple[bytes, ...]]]]
        self.producers = {}

    # -- applying actions ---------------------------------------------------------------

    def apply(self, action: Action) -> Outcome[ClusterState, Any]:
        """Step the model; check what every step must satisfy; move to the new state."""
        before = self.s
        out = step(before, action)
        assert isinstance(out, Ok | Rejected), out
        error = out.error
        if isinstance(out, Ok) and isinstance(out.reply, ProduceResponse):
            error = out.reply.error
        event(f"{type(action).__name__}: {error.name}")
        if isinstance(out, Rejected):
            assert out.state == before, f"{action.describe()} was refused but changed the state"
            return out
        after = out.state
        self.check_transition(action, before, after)
        note(action.describe())
        if self.EAGER_ACKS:
            acked = acknowledge_due(after)
            self.check_transition(action, after, acked)
            after = acked
        self.s = after
        return out

    def check_transition(self, action: Action, before: ClusterState, after: ClusterState) -> None:
        what = action.describe()
        assert after.now >= before.now, what
        assert after.controller_epoch >= before.controller_epoch, what
        assert after.next_request_id >= before.next_request_id, what
        deleted = {action.topic} if isinstance(action, DeleteTopic) else set()
        for tp, part in after.partitions.items():
            old = before.partitions.get(tp)
            if old is None:
                continue
            assert part.zk.leader_epoch >= old.zk.leader_epoch, what
            assert part.zk.version >= old.zk.version, what
            for b, rep in part.replica.items():
                prev = old.replica[b]
                # Retention only moves the log start offset forward.
                assert rep.log.start_offset >= prev.log.start_offset, what
                # A leader's high watermark only moves up while it leads in one epoch.
                if (
                    prev.presumes_leadership(b)
                    and rep.presumes_leadership(b)
                    and before.is_up(b)
                    and after.is_up(b)
                    and rep.known is not None
                    and prev.known is not None
                    and rep.known.leader_epoch == prev.known.leader_epoch
                ):
                    assert rep.high_watermark >= prev.high_watermark, what
        # History only grows (a deleted topic takes its history with it).
        lost = {a for a in before.acked - after.acked if a.tp.topic not in deleted}
        assert not lost, what
        for tp, seen in before.exposed.items():
            if tp.topic in deleted:
                continue
            assert after.exposed.get(tp, ())[: len(seen)] == seen, what

    # -- the brokers' and the controller's own actions ---------------------------------

    @precondition(lambda self: any(True for _ in internal_actions(self.s)))
    @rule(data=st.data(), n=st.integers(1, 25))
    def internal_burst(self, data: st.DataObject, n: int) -> None:
        """A run of internal actions: elections, LeaderAndIsr, fetches, ISR changes."""
        for _ in range(n):
            actions = list(internal_actions(self.s))
            if not actions:
                return
            i = data.draw(st.integers(0, len(actions) - 1), label="which")
            out = self.apply(actions[i])
            assert isinstance(out, Ok), f"enabled {actions[i].describe()} was refused: {out}"

    # -- admin ------------------------------------------------------------------------

    @precondition(
        lambda self: controller_live(self.s) and any(t not in self.s.topics for t in TOPICS)
    )
    @rule(
        partitions=st.integers(1, 2),
        start=st.integers(0, 7),
        shift=st.integers(0, 7),
    )
    def create_topic(self, partitions: int, start: int, shift: int) -> None:
        topic = next(t for t in TOPICS if t not in self.s.topics)
        brokers = tuple(sorted(self.s.brokers))
        assignment = assign_replicas(brokers, partitions, self.REPLICATION_FACTOR, start, shift)
        assert len(assignment) == partitions
        for replicas in assignment:
            assert len(set(replicas)) == self.REPLICATION_FACTOR
        out = self.apply(CreateTopic(topic, assignment))
        assert isinstance(out, Ok), out

    # Only when both topics exist, so that a run keeps one to work on.
    @precondition(lambda self: controller_live(self.s) and len(self.s.topics) == len(TOPICS))
    @rule(data=st.data())
    def delete_topic(self, data: st.DataObject) -> None:
        topic = data.draw(st.sampled_from(sorted(self.s.topics)), label="topic")
        out = self.apply(DeleteTopic(topic))
        assert isinstance(out, Ok), out
        assert topic not in out.state.topics
        assert all(tp.topic != topic for tp in out.state.partitions)
        assert all(p.tp.topic != topic for p in out.state.pending)
        self.producers = {k: v for k, v in self.producers.items() if k[1].topic != topic}

    # -- faults and time --------------------------------------------------------------

    @precondition(lambda self: any(self.s.is_live(b) for b in self.s.brokers))
    @rule(data=st.data(), expire=st.integers(0, 3))
    def fail(self, data: st.DataObject, expire: int) -> None:
        """A broker (half the time one that leads) crashes, sometimes losing power, or, a
        quarter of the time, its ZooKeeper session expires while it keeps running."""
        live = [b for b in self.s.brokers if self.s.is_live(b)]
        leading = sorted({b for _, b, _ in leaders(self.s) if b in live})
        if leading:
            target_leader: bool = data.draw(st.booleans(), label="target a leader")
            if target_leader:
                live = leading  # as Jepsen's nemesis targets the leader
        b = data.draw(st.sampled_from(live), label="broker")
        if expire == 0:
            out = self.apply(ExpireSession(b))
            assert isinstance(out, Ok)
            assert out.state.is_up(b)
            assert not out.state.is_live(b)
            assert out.state.controller != b
            return
        lose = self.LOSE_UNFLUSHED and data.draw(st.booleans(), label="power loss")
        out = self.apply(CrashBroker(b, lose_unflushed=lose))
        assert isinstance(out, Ok)
        after = out.state
        assert not after.is_up(b)
        assert not after.is_live(b)
        assert after.controller != b
        assert all(p.broker != b for p in after.pending)
        for part in after.partitions.values():
            if b in part.replica:
                assert part.replica[b].known is None  # what it knew was in memory
                if lose:
                    log = part.replica[b].log
                    assert log.end_offset == log.recovery_point or log.records == ()

    @precondition(lambda self: any(not self.s.is_live(b) for b in self.s.brokers))
    @rule(data=st.data())
    def recover(self, data: st.DataObject) -> None:
        """A crashed broker restarts, or a running one registers again in ZooKeeper."""
        b = data.draw(st.sampled_from([b for b in self.s.brokers if not self.s.is_live(b)]))
        action = Reregister(b) if self.s.is_up(b) else RestartBroker(b)
        out = self.apply(action)
        assert isinstance(out, Ok)
        assert out.state.is_live(b)
        assert out.state.is_up(b)

    @precondition(lambda self: any(self.s.is_up(b) for b in self.s.brokers))
    @rule(data=st.data())
    def flush(self, data: st.DataObject) -> None:
        b = data.draw(st.sampled_from([b for b in self.s.brokers if self.s.is_up(b)]))
        out = self.apply(FlushLogs(b))
        assert isinstance(out, Ok)
        for part in out.state.partitions.values():
            if b in part.replica:
                log = part.replica[b].log
                assert log.recovery_point == log.end_offset

    @rule(ms=st.sampled_from([1, 50, LAG_MS + 1, TIMEOUT_MS, 10_000]))
    def tick(self, ms: int) -> None:
        now = self.s.now
        out = self.apply(Tick(ms))
        assert isinstance(out, Ok)
        assert out.state.now == now + ms

    def retainable(self) -> list[tuple[TopicPartition, int, int, int]]:
        return [
            (tp, b, rep.log.start_offset, limit)
            for tp, part in self.s.partitions.items()
            for b, rep in part.replica.items()
            if self.s.is_up(b) and (limit := retention_limit(self.s, rep)) > rep.log.start_offset
        ]

    @precondition(lambda self: len(self.retainable()) > 0)
    @rule(data=st.data())
    def retention(self, data: st.DataObject) -> None:
        tp, b, start, limit = data.draw(st.sampled_from(self.retainable()), label="replica")
        new_start = data.draw(st.integers(start + 1, limit), label="new start")
        hw = self.s.partitions[tp].replica[b].high_watermark
        assert new_start <= hw
        out = self.apply(DeleteRetainedPrefix(tp, b, new_start))
        assert isinstance(out, Ok)
        assert out.state.partitions[tp].replica[b].log.start_offset == new_start

    # -- junk ---------------------------------------------------------------------------

    @rule(data=st.data(), k=st.integers(0, 10**6))
    def junk(self, data: st.DataObject, k: int) -> None:
        action, error = data.draw(st.sampled_from(junk_cases(self.s, k)), label="junk")
        refused_unchanged(self.s, action, error)

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def named_invariants_hold(self) -> None:
        broken = [
            name
            for name, inv in INVARIANTS.items()
            if name not in self.UNCHECKED and not inv(self.s)
        ]
        assert broken == [], broken

    @invariant()
    def enabled_internal_actions_succeed(self) -> None:
        for action in internal_actions(self.s):
            out = step(self.s, action)
            assert isinstance(out, Ok), action.describe()
            assert out.state != self.s, action.describe()

    @invariant()
    def canonical_key_ignores_what_only_compares(self) -> None:
        """The explorer deduplicates by canonical key: the controller epoch (written, never
        read) and the delayed produces' request ids (identities only) must not change it."""
        key = canonical_key(self.s)
        hash(key)
        shift = 1000
        renamed = attrs.evolve(
            self.s,
            controller_epoch=self.s.controller_epoch + 7,
            pending=tuple(attrs.evolve(p, request_id=p.request_id + shift) for p in self.s.pending),
            next_request_id=self.s.next_request_id + shift,
        )
        assert canonical_key(renamed) == key

    @invariant()
    def acknowledged_offsets_are_unique(self) -> None:
        """Two different records are never both acknowledged at one offset."""
        if self.LOSE_UNFLUSHED:
            return
        seen: dict[tuple[TopicPartition, int], object] = {}
        for ack in self.s.acked:
            key = (ack.tp, ack.offset)
            assert seen.setdefault(key, ack.record) == ack.record


class BootstrappedMachine(ClusterMachine):
    """Starts with a controller and topic "t" (two partitions) whose replicas have all
    taken up their roles, so that runs spend their steps on traffic and faults."""

    @initialize()
    def bootstrap(self) -> None:
        brokers = tuple(sorted(self.s.brokers))
        assignment = assign_replicas(brokers, 2, self.REPLICATION_FACTOR, 0, 0)
        self.apply(ElectController(0))
        self.apply(CreateTopic("t", assignment))
        for p, replicas in enumerate(assignment):
            for b in replicas:
                self.apply(ApplyLeaderAndIsr(TopicPartition("t", p), b))
        assert len(self.s.partitions) == 2


class SmallRetentionMachine(BootstrappedMachine):
    """Four brokers, replication factor 3, and retention small enough to act within a run:
    500 ms or 12 bytes; successful acks=all answers are given as soon as they are due."""

    BROKERS = 4
    EAGER_ACKS = True
    CONFIG = attrs.evolve(ClusterMachine.CONFIG, log_retention_ms=500, log_retention_bytes=12)


class PowerLossMachine(BootstrappedMachine):
    """Crashes may lose each log's unflushed suffix (``lose_unflushed``).

    Kafka does not fsync before acknowledging: it relies on replication, so when the
    replicas that hold an acknowledged record lose power before flushing it, the record is
    legitimately lost.  NoCommittedRecordLostGlobally and LeaderCompleteness are therefore
    not checked in these runs (nor acknowledged_offsets_are_unique, which a lost record
    makes false when its offset is handed out again).  Nor are the invariants that compare
    replicas below a high watermark: a follower that loses its unflushed suffix stays in
    the ISR until the controller sees its session end, and one power loss on the broker
    that is elected while the others are down loses a committed record (the gap KIP-966
    closes).  test_replication.py shows both: test_one_power_loss_can_lose_an_acknowledged_
    record (LeaderCompleteness, LogMatching, ConsistentRead) and test_a_follower_that_loses_
    power_stays_in_the_isr_until_the_controller_acts (WeakIsr, StrongIsr).  Still checked:
    LeaderInIsr, HighWatermarkBelowLeo, OffsetsContiguous and every per-step property.
    """

    # The two scenarios named above are now in test_power_loss.py.  (A comment, not in the
    # docstring: Hypothesis derives the derandomized seed from the class's source, comments
    # excluded, so editing the docstring would change which runs CI sees.)
    LOSE_UNFLUSHED = True
    UNCHECKED = frozenset(
        {
            "NoCommittedRecordLostGlobally",
            "LeaderCompleteness",
            "WeakIsr",
            "StrongIsr",
            "LogMatching",
            "ConsistentRead",
        }
    )


def machine_settings(max_examples: int, steps: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=steps,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


TestFromScratch = ClusterMachine.TestCase
TestFromScratch.settings = machine_settings(100, 50)

TestBootstrapped = BootstrappedMachine.TestCase
TestBootstrapped.settings = machine_settings(80, 60)

TestSmallRetention = SmallRetentionMachine.TestCase
TestSmallRetention.settings = machine_settings(60, 60)

TestPowerLoss = PowerLossMachine.TestCase
TestPowerLoss.settings = machine_settings(50, 60)


@pytest.mark.parametrize(
    ("variant", "invariant_name"),
    [
        (Variant.HW_ADVANCE_WITHOUT_ISR, "WeakIsr"),
        (Variant.ACK_BEFORE_ISR, "LeaderCompleteness"),
    ],
    ids=["hw-advance-without-isr", "ack-before-isr"],
)
def test_the_machine_catches_known_bad_variants(variant: Variant, invariant_name: str) -> None:
    """The random runs can fail: with a known-bad variant switched on, a named invariant
    breaks within a few runs.  (The explorer, not this, must catch every variant: the
    others need precise interleavings that random runs hit only now and then.)"""

    class Broken(SmallRetentionMachine):
        CONFIG = attrs.evolve(SmallRetentionMachine.CONFIG, variants=frozenset({variant}))

    quick = settings(
        machine_settings(60, 60),
        phases=[Phase.explicit, Phase.generate],
        report_multiple_bugs=False,
    )
    with pytest.raises(AssertionError, match=invariant_name):
        run_state_machine_as_test(Broken, settings=quick)
