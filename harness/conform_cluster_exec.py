"""Performing cluster operations on a local cluster the harness manages, and reading the
answers: one connection per broker, faults on the brokers' processes.

:class:`ClusterControl` holds the processes of a ``harness.cluster.LocalCluster`` (ZooKeeper
and N brokers): SIGKILL, a start on the same data directory and port (ready when the broker
answers Metadata naming itself: the wire, not ZooKeeper), SIGSTOP and SIGCONT, a cut of a
broker's link to ZooKeeper and its heal (``harness.zookeeper_links``), and healing
everything between examples.  :class:`ClusterExecutor` performs one example's operations:
data requests go to the broker the operation names (over that broker's own connection),
faults to the control, and the wait for leaders polls every running, unpaused broker's
Metadata until they agree (a condition with a deadline).  Broker ids in operations and
observations are the model's (the target's ids in sorted order, from 0).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Mapping

from harness import client_admin
from harness.client import API_VERSIONS, BrokerClosedError, ClientError, KafkaClient
from harness.client import ResponseTimeoutError as ClientTimeoutError
from harness.client_admin import NewTopic
from harness.cluster import BROKER_START_TIMEOUT_S, ClusterError, LocalCluster, wait_until
from harness.conform_cluster_ops import (
    CLUSTER_OPERATIONS,
    AwaitLeaders,
    ClusterOperation,
    CreateReplicated,
    CutFromZooKeeper,
    FaultDone,
    FetchFrom,
    HealZooKeeperLink,
    KillBroker,
    Leaders,
    ListOffsetsFrom,
    NotSettled,
    PauseBroker,
    ProduceTo,
    ResumeBroker,
    StartBroker,
)
from harness.conform_exec import Executor, fetch_answer
from harness.conform_ops import (
    Closed,
    ErrorAnswer,
    Failed,
    NoAnswer,
    Observation,
    OffsetAnswer,
    Operation,
    PartitionAnswer,
    ProduceAnswer,
)
from harness.conform_oracle import Oracle
from impl.wire import records as wire_records
from spec.state import TopicPartition

PRODUCE_TIMEOUT_MS = 10_000
"""The timeout of an acks=all produce: longer than a paused or killed follower's session
(so its answer usually says what the ISR became), shorter than the client's."""
CLIENT_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
"""How long the wait for leaders (or a full ISR) lasts before it reports NotSettled."""
HEAL_TIMEOUT_S = 120.0


class ClusterControl:
    """The processes of a local cluster, by target broker id."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.paused: set[int] = set()
        self._cut_since: dict[int, float] = {}
        self._longest_cut_s = 0.0
        """The longest cut healed since the cluster was last healthy (see ``heal``)."""

    @property
    def broker_ids(self) -> tuple[int, ...]:
        return self.cluster.broker_ids

    def running(self, broker_id: int) -> bool:
        return self.cluster.alive(broker_id)

    @property
    def cut_off(self) -> frozenset[int]:
        """The brokers cut off from ZooKeeper now."""
        return self.cluster.cut_off()

    def serving(self) -> list[int]:
        """The brokers that run, are not paused and reach ZooKeeper (their Metadata is
        current; a cut-off broker still answers clients, from what it last knew)."""
        out = self.paused | self.cut_off
        return [b for b in self.broker_ids if b not in out and self.running(b)]

    def kill(self, broker_id: int) -> str:
        if not self.running(broker_id):
            return "already down"
        self.cluster.kill(broker_id)
        self.paused.discard(broker_id)
        return "killed"

    def start(self, broker_id: int) -> str:
        """Start the broker on its data and port (``LocalCluster.restart``: it waits for
        the broker's new registration); return when it answers Metadata that names it
        among the cluster's brokers."""
        if self.running(broker_id):
            return "already running"
        self.cluster.restart(broker_id, BROKER_START_TIMEOUT_S)
        handle = self.cluster.broker(broker_id)

        def registered() -> bool:
            try:
                with KafkaClient(handle.host, handle.port, timeout_s=5.0) as c:
                    c.connect()
                    c.negotiate()
                    seen = client_admin.metadata(c, [])
            except (ClientError, OSError):
                return False
            return any(b.node_id == broker_id for b in seen.brokers)

        wait_until(
            registered,
            BROKER_START_TIMEOUT_S,
            lambda: f"broker {broker_id} does not name itself in its Metadata",
        )
        return "started"

    def _signal(self, broker_id: int, sig: signal.Signals) -> None:
        pid = self.cluster.pid(broker_id)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def pause(self, broker_id: int) -> str:
        self._signal(broker_id, signal.SIGSTOP)
        self.paused.add(broker_id)
        return "paused"

    def resume(self, broker_id: int) -> str:
        self._signal(broker_id, signal.SIGCONT)
        self.paused.discard(broker_id)
        return "resumed"

    def cut(self, broker_id: int) -> str:
        self.cluster.cut_from_zookeeper(broker_id)
        self._cut_since.setdefault(broker_id, time.monotonic())
        return "cut off from ZooKeeper"

    def heal_link(self, broker_id: int) -> str:
        self.cluster.heal_zookeeper_link(broker_id)
        since = self._cut_since.pop(broker_id, None)
        if since is not None:
            self._longest_cut_s = max(self._longest_cut_s, time.monotonic() - since)
        return "reaches ZooKeeper again"

    def restart(self, broker_id: int) -> None:
        """Kill the broker and start it again (``harness.conform_faults.BrokerControl``)."""
        self.kill(broker_id)
        self.start(broker_id)

    def heal(self) -> None:
        """Heal every cut, resume every paused broker, start every killed one, wait until
        healthy.  A broker cut off for long may take about as long again to come back:
        its ZooKeeper client (kazoo's default retry policy) doubles its wait after each
        failed connection attempt, so the wait is longer by the longest cut."""
        for b in sorted(self.cut_off):
            self.heal_link(b)
        for b in sorted(self.paused):
            self.resume(b)
        for b in self.broker_ids:
            if not self.running(b):
                self.start(b)
        self.cluster.wait_healthy(HEAL_TIMEOUT_S + self._longest_cut_s)
        self._longest_cut_s = 0.0

    def controller(self) -> int | None:
        """The controller a serving broker names in its Metadata (None if none answers)."""
        for b in self.serving():
            handle = self.cluster.broker(b)
            try:
                with KafkaClient(handle.host, handle.port, timeout_s=5.0) as c:
                    c.connect()
                    c.negotiate()
                    return client_admin.metadata(c, []).controller_id
            except (ClientError, OSError):
                continue
        return None


class ClusterExecutor(Executor):
    """Runs one example's operations on the cluster of ``control`` (an ``Executor`` for
    ``harness.conform_check.ExampleRun``; none of the single-broker machinery is used)."""

    def __init__(self, control: ClusterControl, namespace: str, min_insync: int) -> None:
        self.control = control
        self.namespace = namespace
        self.min_insync = min_insync
        self.target_ids = tuple(sorted(control.broker_ids))
        self.producer_ids: dict[int, int] = {}
        self.clients: dict[int, KafkaClient] = {}
        self.created: list[str] = []
        self._clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000
        first = control.cluster.broker(self.target_ids[0])
        self.client = KafkaClient(first.host, first.port)
        """Unused (ExampleRun's cleanup is ClusterExampleRun's); see :meth:`_serving`."""

    # --- what ExampleRun expects of an executor -------------------------------------------

    def attach(self, oracle: Oracle) -> None:
        """Nothing to attach: the cluster oracle needs no help from the executor."""

    def _serving(self) -> KafkaClient:
        """A connection to a serving broker (the first)."""
        return self.client_for(self.target_ids.index(self.control.serving()[0]))

    def close_groups(self) -> None:
        """No consumer groups on a cluster run; close every broker connection."""
        for c in self.clients.values():
            c.close()

    # --- connections ----------------------------------------------------------------------

    def client_for(self, broker: int) -> KafkaClient:
        """The connection to ``broker`` (a model id), opened and negotiated if need be."""
        target = self.target_ids[broker]
        client = self.clients.get(target)
        if client is None:
            handle = self.control.cluster.broker(target)
            client = KafkaClient(
                handle.host, handle.port, client_id="kafkaref-conform", timeout_s=CLIENT_TIMEOUT_S
            )
            self.clients[target] = client
        if not client.connected:
            client.connect()
            client.negotiate()
        return client

    def _drop(self, broker: int) -> None:
        client = self.clients.pop(self.target_ids[broker], None)
        if client is not None:
            client.close()

    def _tp(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(self.topic(tp.topic), tp.partition)

    # --- operations -----------------------------------------------------------------------

    def run(self, op: Operation, explicit: tuple[tuple[int, ...], ...] = ()) -> Observation:
        """Perform ``op``; what the target answered (or what the harness did)."""
        del explicit
        if not isinstance(op, CLUSTER_OPERATIONS):
            return Failed(f"{op.describe()}: not an operation on a managed cluster")
        broker = getattr(op, "broker", None)
        try:
            return self._perform_op(op)
        except BrokerClosedError:
            return Closed()
        except ClientTimeoutError as e:
            if broker is not None:
                self._drop(broker)
            return Failed(str(e))
        except (ClientError, OSError, ClusterError) as e:
            if broker is not None:
                self._drop(broker)
            return Failed(f"{type(e).__name__}: {e}")

    def _perform_op(self, op: ClusterOperation) -> Observation:
        target = self.target_ids
        if isinstance(op, KillBroker):
            self._drop(op.broker)
            return FaultDone(self.control.kill(target[op.broker]))
        if isinstance(op, StartBroker):
            self._drop(op.broker)
            return FaultDone(self.control.start(target[op.broker]))
        if isinstance(op, PauseBroker):
            return FaultDone(self.control.pause(target[op.broker]))
        if isinstance(op, ResumeBroker):
            return FaultDone(self.control.resume(target[op.broker]))
        if isinstance(op, CutFromZooKeeper):
            return FaultDone(self.control.cut(target[op.broker]))
        if isinstance(op, HealZooKeeperLink):
            return FaultDone(self.control.heal_link(target[op.broker]))
        if isinstance(op, AwaitLeaders):
            return self._await_leaders(op)
        if isinstance(op, CreateReplicated):
            return self._create_topic(op)
        if isinstance(op, ProduceTo):
            return self._produce_to(op)
        if isinstance(op, FetchFrom):
            return self._fetch_from(op)
        assert isinstance(op, ListOffsetsFrom)
        tp = self._tp(op.tp)
        got = self.client_for(op.broker).list_offsets({tp: op.timestamp}).get(tp)
        if got is None:
            return Failed(f"the ListOffsets response has no answer for {op.tp}")
        return OffsetAnswer(got.error) if got.error else OffsetAnswer(got.error, got.offset)

    def _create_topic(self, op: CreateReplicated) -> Observation:
        name = self.topic(op.topic)
        new = NewTopic(
            name,
            assignment=(tuple(self.target_ids[b] for b in op.replicas),),
            configs={"min.insync.replicas": str(self.min_insync)},
        )
        answer = client_admin.create_topics(self._serving(), [new]).get(name)
        if answer is None:
            return Failed(f"the CreateTopics response has no answer for {op.topic}")
        self.created.append(name)
        return ErrorAnswer(answer[0])

    def _produce_to(self, op: ProduceTo) -> Observation:
        client = self.client_for(op.broker)
        tp = self._tp(op.tp)
        batch = wire_records.build_batch(op.records, timestamp=self._clock_ms())
        answers = client.produce({tp: batch}, acks=op.acks, timeout_ms=PRODUCE_TIMEOUT_MS)
        if answers is None:
            # Answered only if the connection is still open (else BrokerClosedError).
            client.request(
                client.build(
                    API_VERSIONS, client_software_name="kafkaref", client_software_version="0"
                )
            )
            return NoAnswer()
        got = answers.get(tp)
        if got is None:
            return Failed(f"the Produce response has no answer for {op.tp}")
        if got.error:
            return ProduceAnswer((PartitionAnswer(op.tp, got.error),))
        return ProduceAnswer(
            (PartitionAnswer(op.tp, got.error, got.base_offset, got.log_start_offset),)
        )

    def _fetch_from(self, op: FetchFrom) -> Observation:
        tp = self._tp(op.tp)
        result = self.client_for(op.broker).fetch({tp: op.offset})
        return fetch_answer(result, tp, op.tp, op.offset)

    def _await_leaders(self, op: AwaitLeaders) -> Observation:
        """Poll every serving broker's Metadata until they agree on serving leaders (and
        full ISRs, ``AwaitLeaders``): Leaders, or NotSettled at the deadline."""
        names = {self.topic(t): t for t in op.topics}
        last: list[str] = ["nothing yet"]

        def agreed() -> Leaders | None:
            serving = self.control.serving()
            cut = self.control.cut_off
            views: set[tuple[tuple[str, int, int, int], ...]] = set()
            for b in serving:
                try:
                    view = self._leaders_seen(
                        self.target_ids.index(b), names, op.full_isr, serving, cut
                    )
                except (ClientError, OSError) as e:
                    self._drop(self.target_ids.index(b))
                    last[:] = [f"broker {self.target_ids.index(b)}: {e}"]
                    return None
                if isinstance(view, str):
                    last[:] = [f"broker {self.target_ids.index(b)}: {view}"]
                    return None
                views.add(view)
            if len(views) != 1:
                last[:] = [f"the brokers disagree: {sorted(views)}"]
                return None
            (view,) = views
            if any(self.target_ids[leader] not in serving for _, _, leader, _ in view):
                last[:] = [f"a leader is down or paused: {view}"]
                return None
            return Leaders(view, op.full_isr)

        try:
            return wait_until(agreed, SETTLE_TIMEOUT_S, lambda: last[0])
        except ClusterError:
            return NotSettled(last[0])

    def _leaders_seen(
        self,
        broker: int,
        names: Mapping[str, str],
        full_isr: bool,
        serving: list[int],
        cut: frozenset[int],
    ) -> tuple[tuple[str, int, int, int], ...] | str:
        """What ``broker``'s Metadata says of the topics: (logical topic, partition, model
        leader, epoch) each, or why it is not what the wait waits for (with ``full_isr``:
        an ISR without every serving replica, or with one neither serving nor cut off)."""
        seen = client_admin.metadata(self.client_for(broker), list(names))
        out = []
        for name, logical in sorted(names.items()):
            t = seen.topics.get(name)
            if t is None or t.error:
                return f"{logical}: {t.error if t is not None else 'missing'}"
            for index, p in sorted(t.partitions.items()):
                if p.error or p.leader not in self.target_ids:
                    return f"{logical}-{index}: no leader ({p.error})"
                live = {r for r in p.replicas if r in serving}
                if full_isr and not live <= set(p.isr) <= live | cut:
                    return (
                        f"{logical}-{index}: ISR {sorted(p.isr)}, serving replicas {sorted(live)}"
                    )
                out.append((logical, index, self.target_ids.index(p.leader), p.leader_epoch))
        return tuple(out)

    def cleanup(self) -> None:
        """Heal the cluster (resume, start, wait until healthy), delete the example's topics
        and close the connections (best effort: not checked)."""
        self.control.heal()
        if self.created:
            with contextlib.suppress(ClientError, OSError, IndexError):
                client_admin.delete_topics(self._serving(), self.created)
        self.close_groups()
        self.clients.clear()
