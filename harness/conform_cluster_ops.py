"""The operations of a conformance run on a cluster the harness manages, and their answers.

On a cluster a client talks to one broker at a time, chosen from what it knows, and the
environment kills, restarts, pauses and resumes brokers and cuts a broker off from
ZooKeeper (and heals the cut): every operation here names its
broker by the model's id (the target's brokers in sorted order, numbered from 0), so a
trace says exactly which broker was asked or hit.  Data answers are the single-broker
observations of ``harness.conform_ops`` (produce, fetch, list offsets); the faults and the
wait for the cluster to settle have their own.

Like ``harness.conform_group_ops`` this module does not import ``harness.conform_ops``
(which imports it, for JSON); both round-trip through JSON for replay files.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from spec.actions import EARLIEST_TIMESTAMP
from spec.state import TopicPartition

ClusterRecords = tuple[tuple[bytes | None, bytes], ...]
"""(key, value) of each record of a batch."""


def _show(b: bytes | None) -> str:
    if b is None:
        return "null"
    if not b:
        return "''"
    return b.hex() if len(b) <= 8 else f"{b[:6].hex()}..({len(b)}B)"


def records_text(records: ClusterRecords) -> str:
    """The records as a trace shows them: ``key=value`` in hex, or the value alone."""
    return ", ".join(_show(v) if k is None else f"{_show(k)}={_show(v)}" for k, v in records)


# --- operations ----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class CreateReplicated:
    """CreateTopics of a one-partition topic with the explicit replica assignment
    ``replicas`` (model broker ids; the first is the preferred leader), with
    ``min.insync.replicas`` as the target's declaration says."""

    topic: str
    replicas: tuple[int, ...]

    def describe(self) -> str:
        return f"CreateTopics {self.topic} replicas={list(self.replicas)}"


@attrs.frozen(slots=True)
class ProduceTo:
    """One Produce request with one plain batch for ``tp``, sent to ``broker``."""

    broker: int
    tp: TopicPartition
    records: ClusterRecords
    acks: int

    def describe(self) -> str:
        return (
            f"Produce acks={self.acks} to broker {self.broker}: {self.tp} "
            f"[{records_text(self.records)}]"
        )


@attrs.frozen(slots=True)
class FetchFrom:
    """A consumer's Fetch of ``tp`` at ``offset`` from ``broker``."""

    broker: int
    tp: TopicPartition
    offset: int

    def describe(self) -> str:
        return f"Fetch {self.tp} at offset {self.offset} from broker {self.broker}"


@attrs.frozen(slots=True)
class ListOffsetsFrom:
    """ListOffsets of ``tp`` (-2 earliest, -1 latest) asked of ``broker``."""

    broker: int
    tp: TopicPartition
    timestamp: int

    def describe(self) -> str:
        which = "earliest" if self.timestamp == EARLIEST_TIMESTAMP else "latest"
        return f"ListOffsets {self.tp} {which} from broker {self.broker}"


@attrs.frozen(slots=True)
class KillBroker:
    """SIGKILL ``broker``'s process (its data stays: a process crash loses nothing the
    kernel has)."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} is killed (SIGKILL)"


@attrs.frozen(slots=True)
class StartBroker:
    """Start the killed ``broker`` again on its data directory and port."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} starts again on its data"


@attrs.frozen(slots=True)
class PauseBroker:
    """SIGSTOP ``broker``: it keeps its state but does nothing (its ZooKeeper session
    expires after zookeeper.session.timeout.ms)."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} is paused (SIGSTOP)"


@attrs.frozen(slots=True)
class ResumeBroker:
    """SIGCONT the paused ``broker``."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} resumes (SIGCONT)"


@attrs.frozen(slots=True)
class CutFromZooKeeper:
    """Partition ``broker`` from ZooKeeper (every packet between them dropped), and from
    nothing else: it keeps serving clients and replica fetches, its session expires after
    zookeeper.session.timeout.ms, and it may go on leading as it last knew (a zombie)."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} is cut off from ZooKeeper (network partition)"


@attrs.frozen(slots=True)
class HealZooKeeperLink:
    """End ``broker``'s partition from ZooKeeper: its client connects again (and, if its
    session expired meanwhile, opens a new one and registers again)."""

    broker: int

    def describe(self) -> str:
        return f"broker {self.broker} reaches ZooKeeper again"


@attrs.frozen(slots=True)
class AwaitLeaders:
    """Wait, through Metadata only, until every running broker that is not paused nor cut
    off from ZooKeeper (*serving*) names the same leader and leader epoch for each
    partition of ``topics``, a serving broker; with ``full_isr`` also until the ISR holds
    every serving replica and no other but cut-off ones (which may still be followers in
    sync: the cluster has settled; with every broker up, the whole replica set)."""

    topics: tuple[str, ...]
    full_isr: bool = False

    def describe(self) -> str:
        what = "a live leader and the ISR back to full" if self.full_isr else "a live leader"
        return f"wait for {what} ({', '.join(self.topics)})"


ClusterOperation = (
    CreateReplicated
    | ProduceTo
    | FetchFrom
    | ListOffsetsFrom
    | KillBroker
    | StartBroker
    | PauseBroker
    | ResumeBroker
    | CutFromZooKeeper
    | HealZooKeeperLink
    | AwaitLeaders
)
CLUSTER_OPERATIONS = (
    CreateReplicated,
    ProduceTo,
    FetchFrom,
    ListOffsetsFrom,
    KillBroker,
    StartBroker,
    PauseBroker,
    ResumeBroker,
    CutFromZooKeeper,
    HealZooKeeperLink,
    AwaitLeaders,
)
FAULTS = (KillBroker, StartBroker, PauseBroker, ResumeBroker, CutFromZooKeeper, HealZooKeeperLink)


# --- observations --------------------------------------------------------------------------


@attrs.frozen(slots=True)
class FaultDone:
    """The harness did what the fault operation says (the process is gone, runs again and
    accepts connections, is stopped, runs again; the link to ZooKeeper is cut, healed)."""

    what: str

    def describe(self) -> str:
        return self.what


@attrs.frozen(slots=True)
class Leaders:
    """What every running, unpaused broker's Metadata agreed on: per partition its
    leader (model id) and leader epoch; ``full_isr`` when every replica was in its ISR."""

    partitions: tuple[tuple[str, int, int, int], ...]
    """(topic, partition, leader, leader epoch)"""
    full_isr: bool = False

    def describe(self) -> str:
        shown = ", ".join(f"{t}-{p}: leader {b} epoch {e}" for t, p, b, e in self.partitions)
        return shown + (", ISR full" if self.full_isr else "")


@attrs.frozen(slots=True)
class NotSettled:
    """The brokers did not agree on live leaders (or a full ISR) before the deadline; the
    spec puts no bound on when internal steps happen, so this is allowed (and reported)."""

    seen: str

    def describe(self) -> str:
        return f"not settled in time (last seen: {self.seen})"


@attrs.frozen(slots=True)
class PropertyBroken:
    """An answer breaks a property of what clients were told (``name``, after the spec's
    invariant; ``harness.conform_cluster_history``): ``detail`` says how."""

    name: str
    detail: str

    def describe(self) -> str:
        # Reports list it among what the spec allows: it reads as the condition that fails.
        return f"nothing that breaks {self.name} ({self.detail})"


ClusterObservation = FaultDone | Leaders | NotSettled | PropertyBroken


# --- JSON ----------------------------------------------------------------------------------

CLUSTER_KINDS: Mapping[str, type[Any]] = {
    "cluster_create_topic": CreateReplicated,
    "cluster_produce": ProduceTo,
    "cluster_fetch": FetchFrom,
    "cluster_list_offsets": ListOffsetsFrom,
    "kill_broker": KillBroker,
    "start_broker": StartBroker,
    "pause_broker": PauseBroker,
    "resume_broker": ResumeBroker,
    "cut_from_zookeeper": CutFromZooKeeper,
    "heal_zookeeper_link": HealZooKeeperLink,
    "await_leaders": AwaitLeaders,
}


def _bytes(v: Any) -> bytes | None:
    return None if v is None else bytes.fromhex(v["hex"])


def _tp(v: Any) -> TopicPartition:
    return TopicPartition(str(v[0]), int(v[1]))


def cluster_op_from_json(kind: str, data: Mapping[str, Any]) -> ClusterOperation:
    """The cluster operation ``harness.conform_ops.op_to_json`` wrote as ``kind``."""
    if kind == "cluster_create_topic":
        return CreateReplicated(str(data["topic"]), tuple(int(b) for b in data["replicas"]))
    if kind == "cluster_produce":
        records = tuple((_bytes(k), _bytes(v) or b"") for k, v in data["records"])
        return ProduceTo(int(data["broker"]), _tp(data["tp"]), records, int(data["acks"]))
    if kind == "cluster_fetch":
        return FetchFrom(int(data["broker"]), _tp(data["tp"]), int(data["offset"]))
    if kind == "cluster_list_offsets":
        return ListOffsetsFrom(int(data["broker"]), _tp(data["tp"]), int(data["timestamp"]))
    if kind == "await_leaders":
        return AwaitLeaders(tuple(str(t) for t in data["topics"]), bool(data["full_isr"]))
    fault = CLUSTER_KINDS[kind]
    op: ClusterOperation = fault(int(data["broker"]))
    return op
