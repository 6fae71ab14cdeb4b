"""The conformance state machine for a cluster the harness manages: Kafka operations on a
replicated partition while brokers are killed, restarted, paused and resumed.

Each example creates one topic with one partition, replicated on every broker (replication
factor 3 on three brokers, min.insync.replicas from the declaration: 2), with the preferred
leader rotating between examples, and waits until it has settled.  Then:

``produce``         1-3 records, acks 0/1/all, to the leader the model knows (mostly) or
                    another serving broker; after an acks 0/1 write on a healthy cluster
                    the harness sometimes waits (ListOffsets, a condition with a deadline)
                    until the high watermark reaches the leader's log end offset, as a
                    consumer waiting for committed data would: it keeps the candidates few
``produce_to_leader``  the same, always to the leader (produces weigh double)
``fetch``           a consumer Fetch at an offset from 0 to the log end offset + 1
``fetch_from_leader``  the same, always from the leader
``list_offsets``    earliest or latest
``kill_broker``     SIGKILL the leader or a follower
``start_broker``    start a killed broker again on its data
``pause_broker``    SIGSTOP the leader or a follower (never the controller: a paused
                    controller that resumes as a zombie is not in the spec)
``resume_broker``   SIGCONT a paused broker, sometimes followed at once by an acks=all
                    produce to it (a client that was waiting on it)
``cut_from_zookeeper``  partition the leader or a follower from ZooKeeper (the harness's
                    proxy on its ZooKeeper connection drops everything): it keeps serving
                    clients and replica fetches; its session expires, it may be a zombie
                    (the controller too: cut off it writes nothing, and once healed its
                    session is gone and its writes are fenced by /controller_epoch)
``heal_zookeeper_link``  end such a partition, sometimes followed at once by an acks=all
                    produce to the broker
``wait_for_leaders``  wait, through Metadata, for a live leader, mostly also for the ISR
                    to be every serving replica (the cluster has settled)
``lose_leader_with_tail``  a fault pattern (see its docstring): the leader's unreplicated
                    tail, its death, a new leader, acks=all writes, the old leader back
                    and leading again, a read; the random rules alone hardly ever make it
``zombie_leader``   a fault pattern (see its docstring): the leader and a follower cut off
                    from ZooKeeper, a new leader and a write to it, acks=all writes to
                    the zombie, the heal

Draws never depend on what the target answered (Hypothesis replays choice sequences and
requires them to draw alike): each draw has a fixed shape, mapped afterwards onto the
brokers the answers made leader or follower.

At most two brokers are out (killed, paused or cut off from ZooKeeper) at once; only a
broker that is not out is killed, paused or cut off; at most ``MAX_PRODUCES`` produce
requests per example keep the model's state space small.  When the oracle gives up (too
many model states) the example is inconclusive: it goes on with only the properties of
``harness.conform_cluster_history`` checked, and is counted as such, never as a
divergence.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule

from harness.cluster import ClusterError, wait_until
from harness.conform_check import ExampleRun
from harness.conform_cluster_exec import ClusterExecutor
from harness.conform_cluster_ops import (
    AwaitLeaders,
    ClusterOperation,
    ClusterRecords,
    CreateReplicated,
    CutFromZooKeeper,
    FetchFrom,
    HealZooKeeperLink,
    KillBroker,
    ListOffsetsFrom,
    PauseBroker,
    ProduceTo,
    ResumeBroker,
    StartBroker,
)
from harness.conform_cluster_oracle import ClusterOracle
from harness.conform_ops import Observation, ProduceAnswer
from harness.conform_target import TargetDeclaration
from spec.actions import ACKS_ALL, ACKS_LEADER, ACKS_NONE, EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from spec.errors import ErrorCode
from spec.state import TopicPartition

TOPIC = "t0"
TP = TopicPartition(TOPIC, 0)
MAX_PRODUCES = 8
MAX_OUT = 2
"""Brokers killed, paused or cut off from ZooKeeper at once."""
HW_WAIT_S = 3.0
"""How long a produce waits for the high watermark to reach the log end offset."""
INCONCLUSIVE = "(inconclusive examples)"

VALUES = st.binary(min_size=1, max_size=8)
KEYS = st.one_of(st.none(), st.binary(max_size=4))
RECORDS: st.SearchStrategy[ClusterRecords] = st.lists(
    st.tuples(KEYS, VALUES), min_size=1, max_size=3
).map(tuple)
ACKS = st.sampled_from([ACKS_ALL, ACKS_ALL, ACKS_LEADER, ACKS_LEADER, ACKS_NONE])
MOSTLY = st.sampled_from([True, True, True, False])
WHICH = st.sampled_from(["leader", "follower", "follower"])


class ClusterMachine(RuleBasedStateMachine):
    """One example on the managed cluster (see the module docstring)."""

    def __init__(self, example: ExampleRun, declaration: TargetDeclaration) -> None:
        super().__init__()
        assert isinstance(example.oracle, ClusterOracle)
        assert isinstance(example.executor, ClusterExecutor)
        self.example = example
        self.declaration = declaration
        self.oracle: ClusterOracle = example.oracle
        self.executor: ClusterExecutor = example.executor
        self.n = len(self.oracle.target_ids)
        self.created = False
        self.down: set[int] = set()
        self.paused: set[int] = set()
        self.cut: set[int] = set()
        self.produces = 0

    # --- helpers --------------------------------------------------------------------------

    def _perform(self, rule_name: str, op: ClusterOperation) -> Observation:
        was = self.oracle.inconclusive
        observed = self.example.perform(rule_name, op)
        if was is None and self.oracle.inconclusive is not None:
            self.example.tally.rules[INCONCLUSIVE] += 1
        return observed

    def _out(self) -> set[int]:
        """The brokers killed, paused or cut off from ZooKeeper."""
        return self.down | self.paused | self.cut

    def _serving(self) -> list[int]:
        """The brokers that answer clients (a cut-off one does, from what it last knew)."""
        return [b for b in range(self.n) if b not in self.down | self.paused]

    def _leader(self) -> int | None:
        """The leader the model names most often, when it is serving."""
        serving = self._serving()
        return next((b for b in self.oracle.leaders(TP) if b in serving), None)

    # Draws have fixed shapes (see the module docstring).

    def _broker(self, data: st.DataObject, to_leader: bool) -> int:
        pick = data.draw(st.integers(0, self.n - 1), label="broker")
        leader = self._leader()
        if to_leader and leader is not None:
            return leader
        serving = self._serving()
        return serving[pick % len(serving)]

    def _target(self, data: st.DataObject, which: str) -> int:
        """A broker to hit with a fault, one that is not out: the leader, or a follower."""
        pick = data.draw(st.integers(0, self.n - 1), label="target")
        serving = [b for b in range(self.n) if b not in self._out()]
        leader = self._leader()
        if which == "leader" and leader in serving:
            return leader
        followers = [b for b in serving if b != leader] or serving
        return followers[pick % len(followers)]

    def _await_high_watermark(self, broker: int) -> None:
        """Wait (unchecked ListOffsets, a deadline) until ``broker``'s high watermark is
        the log end offset every candidate gives its replica, then read it, checked."""
        ends = {
            s.partitions[TP].replica[broker].log_end_offset
            for s in self.oracle.candidates
            if TP in s.partitions
        }
        if len(ends) == 1:
            (end,) = ends
            client = self.executor.client_for(broker)
            tp = TopicPartition(self.executor.topic(TOPIC), 0)

            def reached() -> bool:
                got: Any = client.list_offsets({tp: LATEST_TIMESTAMP}).get(tp)
                return got is not None and got.error == ErrorCode.NONE and got.offset >= end

            # Not reached in time: the checked read below says where it is.
            with contextlib.suppress(ClusterError, OSError):
                wait_until(reached, HW_WAIT_S, lambda: "the high watermark is behind")
        self._perform("list_offsets", ListOffsetsFrom(broker, TP, LATEST_TIMESTAMP))

    # --- rules ----------------------------------------------------------------------------

    @initialize(first=st.integers(0, 2))
    def create_topic(self, first: int) -> None:
        brokers = list(range(self.n))
        first %= self.n
        replicas = tuple(brokers[first:] + brokers[:first])
        self._perform("create_topic", CreateReplicated(TOPIC, replicas))
        self._perform("await_leaders", AwaitLeaders((TOPIC,), full_isr=True))
        self.created = True

    def _produce(
        self, data: st.DataObject, records: ClusterRecords, acks: int, to_leader: bool, wait: bool
    ) -> None:
        broker = self._broker(data, to_leader)
        self.produces += 1
        answer = self._perform("produce", ProduceTo(broker, TP, records, acks))
        healthy = not self._out()
        if wait and healthy and acks != ACKS_ALL and broker == self._leader():
            ok = not isinstance(answer, ProduceAnswer) or all(
                p.error == ErrorCode.NONE for p in answer.partitions
            )
            if ok:
                self._await_high_watermark(broker)

    @precondition(lambda self: self.created and self.produces < MAX_PRODUCES)
    @rule(data=st.data(), records=RECORDS, acks=ACKS, to_leader=MOSTLY, wait=MOSTLY)
    def produce(
        self, data: st.DataObject, records: ClusterRecords, acks: int, to_leader: bool, wait: bool
    ) -> None:
        self._produce(data, records, acks, to_leader, wait)

    @precondition(lambda self: self.created and self.produces < MAX_PRODUCES)
    @rule(data=st.data(), records=RECORDS, acks=ACKS, wait=MOSTLY)
    def produce_to_leader(
        self, data: st.DataObject, records: ClusterRecords, acks: int, wait: bool
    ) -> None:
        """The same rule as ``produce``, always to the leader: produces weigh double."""
        self._produce(data, records, acks, True, wait)

    def _fetch(self, data: st.DataObject, to_leader: bool) -> None:
        broker = self._broker(data, to_leader)
        where = data.draw(st.integers(0, 999), label="offset (per mille)")
        offset = where * (self.oracle.log_end_offset(TP) + 2) // 1000
        self._perform("fetch", FetchFrom(broker, TP, offset))

    @precondition(lambda self: self.created)
    @rule(data=st.data(), to_leader=MOSTLY)
    def fetch(self, data: st.DataObject, to_leader: bool) -> None:
        self._fetch(data, to_leader)

    @precondition(lambda self: self.created)
    @rule(data=st.data())
    def fetch_from_leader(self, data: st.DataObject) -> None:
        """The same rule as ``fetch``, always from the leader: fetches weigh double."""
        self._fetch(data, True)

    @precondition(lambda self: self.created)
    @rule(data=st.data(), to_leader=MOSTLY, latest=st.booleans())
    def list_offsets(self, data: st.DataObject, to_leader: bool, latest: bool) -> None:
        broker = self._broker(data, to_leader)
        timestamp = LATEST_TIMESTAMP if latest else EARLIEST_TIMESTAMP
        self._perform("list_offsets", ListOffsetsFrom(broker, TP, timestamp))

    @precondition(lambda self: self.created and len(self._out()) < MAX_OUT)
    @rule(data=st.data(), which=WHICH)
    def kill_broker(self, data: st.DataObject, which: str) -> None:
        target = self._target(data, which)
        self._perform("kill_broker", KillBroker(target))
        self.down.add(target)

    @precondition(lambda self: bool(self.down))
    @rule(data=st.data())
    def start_broker(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(sorted(self.down)), label="broker")
        self._perform("start_broker", StartBroker(target))
        self.down.discard(target)

    @precondition(lambda self: self.created and len(self._out()) < MAX_OUT)
    @rule(data=st.data(), which=WHICH)
    def pause_broker(self, data: st.DataObject, which: str) -> None:
        target = self._target(data, which)
        self.paused.add(target)  # counted as out either way: the rules stay the same
        if self.oracle.target_ids[target] != self.executor.control.controller():
            self._perform("pause_broker", PauseBroker(target))
        # (the controller is never paused: see the module docstring)

    @precondition(lambda self: bool(self.paused))
    @rule(data=st.data(), then_produce=st.booleans(), records=RECORDS)
    def resume_broker(
        self, data: st.DataObject, then_produce: bool, records: ClusterRecords
    ) -> None:
        target = data.draw(st.sampled_from(sorted(self.paused)), label="broker")
        self._perform("resume_broker", ResumeBroker(target))
        self.paused.discard(target)
        if then_produce and self.produces < MAX_PRODUCES:
            self.produces += 1
            self._perform("produce", ProduceTo(target, TP, records, ACKS_ALL))

    @precondition(lambda self: self.created and len(self._out()) < MAX_OUT)
    @rule(data=st.data(), which=WHICH)
    def cut_from_zookeeper(self, data: st.DataObject, which: str) -> None:
        target = self._target(data, which)
        self._perform("cut_from_zookeeper", CutFromZooKeeper(target))
        self.cut.add(target)

    @precondition(lambda self: bool(self.cut))
    @rule(data=st.data(), then_produce=st.booleans(), records=RECORDS)
    def heal_zookeeper_link(
        self, data: st.DataObject, then_produce: bool, records: ClusterRecords
    ) -> None:
        target = data.draw(st.sampled_from(sorted(self.cut)), label="broker")
        self._perform("heal_zookeeper_link", HealZooKeeperLink(target))
        self.cut.discard(target)
        if then_produce and self.produces < MAX_PRODUCES:
            self.produces += 1
            self._perform("produce", ProduceTo(target, TP, records, ACKS_ALL))

    @precondition(lambda self: self.created)
    @rule(full_isr=MOSTLY)
    def wait_for_leaders(self, full_isr: bool) -> None:
        self._perform("await_leaders", AwaitLeaders((TOPIC,), full_isr=full_isr))

    @precondition(lambda self: self.created and not self._out() and self.produces < MAX_PRODUCES)
    @rule(first=RECORDS, tail=RECORDS, records=RECORDS, more=RECORDS)
    def lose_leader_with_tail(
        self,
        first: ClusterRecords,
        tail: ClusterRecords,
        records: ClusterRecords,
        more: ClusterRecords,
    ) -> None:
        """A fault pattern, each step an operation checked like any other: the leader's
        followers stop (one killed, one paused: never the controller), the leader appends
        two batches at acks=1 (the paused follower may still get the first, with the fetch
        it had in flight, never the second), the leader is killed, the paused follower
        resumes and is elected, the killed one comes back; two or more acks=all writes
        (until the new leader's log is as long as the old one's); the old leader comes
        back (it must truncate its tail, KIP-101) and the cluster settles; the new leader
        and the third broker are killed and the old one leads again; a consumer reads from
        it."""
        self.produces += 4
        leader = self._leader_among(list(range(self.n)))
        replicas = [b for b in range(self.n) if b != leader]
        controller = self.executor.control.controller()
        # At most one of them is the controller: pause the other one.
        paused = next(b for b in replicas if self.oracle.target_ids[b] != controller)
        killed = [b for b in replicas if b != paused]
        for b in killed:
            self._perform("lose_leader_with_tail", KillBroker(b))
        self._perform("lose_leader_with_tail", PauseBroker(paused))
        old_end = 0
        for batch in (first, tail):
            sent = ProduceTo(leader, TP, batch, ACKS_LEADER)
            old_end = _end_offset(self._perform("lose_leader_with_tail", sent), batch, old_end)
        self._perform("lose_leader_with_tail", KillBroker(leader))
        self._perform("lose_leader_with_tail", ResumeBroker(paused))
        self._perform("lose_leader_with_tail", AwaitLeaders((TOPIC,), full_isr=True))
        for b in killed:
            self._perform("lose_leader_with_tail", StartBroker(b))
        self._perform("lose_leader_with_tail", AwaitLeaders((TOPIC,), full_isr=True))
        new = self._leader_among([paused, *killed])
        # The new leader writes until its log is as long as the old leader's: a longer
        # old log would be out of range at the new leader and, kept whole, never rejoin
        # the ISR, so a skipped truncation would hide (the paused follower may or may not
        # have got ``first`` with the fetch it had in flight).
        new_end = 0
        for i, batch in enumerate((records, more, more, more, more)):
            if i >= 2 and new_end >= old_end:
                break
            sent = ProduceTo(new, TP, batch, ACKS_ALL)
            new_end = _end_offset(self._perform("lose_leader_with_tail", sent), batch, new_end)
        self._perform("lose_leader_with_tail", StartBroker(leader))
        self._perform("lose_leader_with_tail", AwaitLeaders((TOPIC,), full_isr=True))
        # Both others go, so the old leader must lead (it is in the ISR: elected cleanly);
        # with one of them left the election could pick it instead, whose log is right.
        for b in (new, *(b for b in range(self.n) if b not in (leader, new))):
            self._perform("lose_leader_with_tail", KillBroker(b))
            self.down.add(b)
        self._perform("lose_leader_with_tail", AwaitLeaders((TOPIC,), full_isr=True))
        self._perform("lose_leader_with_tail", FetchFrom(leader, TP, 0))

    @precondition(
        lambda self: (
            self.created and not self._out() and self.n > MAX_OUT and self.produces < MAX_PRODUCES
        )
    )
    @rule(pick=st.integers(0, 1), fresh=RECORDS, records=RECORDS, again=RECORDS)
    def zombie_leader(
        self, pick: int, fresh: ClusterRecords, records: ClusterRecords, again: ClusterRecords
    ) -> None:
        """A fault pattern, each step an operation checked like any other: the leader and
        one follower are cut off from ZooKeeper (the follower keeps fetching from the
        leader, which goes on believing it leads); once their sessions have expired the
        controller makes the other follower leader, which takes an acks=1 write (so the
        model knows it leads: it fetches from the old leader no more); an acks=all write
        to the old leader, a zombie now, which cannot write the ISR without the follower
        that left it and so must let it time out (acknowledged, it would be lost: the new
        leader never has it), and a retry of it; both reach ZooKeeper again, the cluster
        settles (the old leader truncates what it took) and a consumer reads from the
        leader."""
        self.produces += 3
        leader = self._leader_among(list(range(self.n)))
        followers = [b for b in range(self.n) if b != leader]
        follower = followers[pick % len(followers)]
        for b in (leader, follower):
            self._perform("zombie_leader", CutFromZooKeeper(b))
        self._perform("zombie_leader", AwaitLeaders((TOPIC,)))
        others = [b for b in followers if b != follower]
        new = self._leader_among(others)
        self._perform("zombie_leader", ProduceTo(new, TP, fresh, ACKS_LEADER))
        for batch in (records, again):
            self._perform("zombie_leader", ProduceTo(leader, TP, batch, ACKS_ALL))
        for b in (leader, follower):
            self._perform("zombie_leader", HealZooKeeperLink(b))
        self._perform("zombie_leader", AwaitLeaders((TOPIC,), full_isr=True))
        reader = self._leader_among(list(range(self.n)))
        self._perform("zombie_leader", FetchFrom(reader, TP, 0))

    def _leader_among(self, brokers: list[int]) -> int:
        """The model's leader if it is one of ``brokers``, else the first of them."""
        return next((b for b in self.oracle.leaders(TP) if b in brokers), brokers[0])

    def teardown(self) -> None:
        """Heal the cluster and delete the example's topic (not checked)."""
        self.example.cleanup()


def _end_offset(observed: object, batch: ClusterRecords, before: int) -> int:
    """The log end offset a produce answered NONE shows (its base offset plus the batch's
    records); ``before`` when it failed."""
    if isinstance(observed, ProduceAnswer):
        (answer,) = observed.partitions
        if answer.error == ErrorCode.NONE:
            return answer.base_offset + len(batch)
    return before
