"""Retention in the single-broker conformance check: topics created with retention
settings, the wait for the broker's retention pass, and the model's side of both.

No Kafka request runs retention: a broker deletes expired log segments in a background
pass every ``log.retention.check.interval.ms``.  The harness makes it happen by creating a
topic with a short ``retention.ms`` (sometimes ``retention.bytes=0`` as well) and a
``segment.bytes`` that holds one batch of the harness's records for it but not two (every
batch one record of ``RETAINED_VALUE_BYTES``: :func:`retention_configs`; a batch larger
than ``segment.bytes`` would be refused, RECORD_LIST_TOO_LARGE, which the spec does not
model), and by :class:`AwaitRetention`: Fetch at the log end offset, again and again, until
everything produced to the partition has expired, a retention pass has run since, and
the log start offset has reached the last batch (what a broker that keeps the active
segment reaches; one that rolls it goes further); that Fetch's answer is checked.

The model.  Retention is the spec's internal step ``DeleteRetainedPrefix``
(``spec.consume.delete_retained_prefix``): the broker may move a log start offset
whenever it likes, to any offset up to ``spec.consume.retention_limit``, and "not yet" is
always allowed.  So before an operation on a partition the oracle widens its candidate
states to every log start offset retention may have reached by the time the answer
arrived (:func:`retained`); the answer then says which one the broker is at.  Retention
on one partition commutes with operations on the others (and its limit only grows with
time), so only the partitions an operation touches are widened, and only when it is
performed.  The spec's configuration is the broker's; a topic's ``retention.ms`` and
``retention.bytes`` replace it for that topic's retention, as in Kafka
(:func:`topic_config`).  ``segment.bytes`` is not the spec's business: the spec allows any
start offset below the limit, the broker stops at a segment boundary.  A record's
timestamp is the one its batch carried (CreateTime): the model's clock is set to the
batch's timestamp before a produce, and retention is judged at the time the answer
arrived (:class:`Timing`).  The harness's and the target's clocks are assumed to agree
(the target runs on this machine, or their clocks are synchronised).  Kafka answers a
Fetch from one log segment, so on these topics a fetch may return any non-empty prefix of
the records the spec returns (a record per segment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from impl.wire import records as wire_records
from spec import actions
from spec.cluster import step
from spec.config import SpecConfig
from spec.consume import retention_limit
from spec.outcome import Ok
from spec.state import ClusterState, TopicPartition

RETENTION_MS = 100
"""``retention.ms`` of the topics the retention rule creates."""
RETAINED_VALUE_BYTES = 100
"""The value of every record produced to those topics (one per batch, no key)."""
SEGMENT_BYTES = len(wire_records.build_batch([(None, bytes(RETAINED_VALUE_BYTES))], timestamp=0))
"""``segment.bytes`` of those topics: one such batch fills a segment, so every batch gets
a segment of its own (Kafka rolls when the active segment's size plus the batch's would
exceed ``segment.bytes``)."""
LOCAL_CHECK_INTERVAL_MS = 100
"""``log.retention.check.interval.ms`` of the broker ``--local`` starts."""
MAX_CHECK_INTERVAL_MS = 1_000
"""Retention is checked only on a target that runs its retention pass at least this often
(every wait is ``retention.ms`` plus two passes)."""
SLACK_MS = 5_000
"""How much longer than expected :class:`AwaitRetention` waits for the log start offset
before it checks the answer it has (not moving is allowed, only weaker)."""
POLL_S = 0.02
"""Between two Fetches of :class:`AwaitRetention`."""

TOPIC_SETTINGS: Mapping[str, str] = {
    "retention.ms": "log_retention_ms",
    "retention.bytes": "log_retention_bytes",
}
"""Topic-level settings that replace the spec's broker-level ones for that topic's log."""

Configs = tuple[tuple[str, str], ...]
"""Topic-level settings of a CreateTopics entry, (name, value) pairs."""


def retention_configs(by_size: bool) -> Configs:
    """The settings of a topic whose records expire ``RETENTION_MS`` after their
    timestamp, and with ``by_size`` also as soon as a later segment exists
    (``retention.bytes=0``)."""
    configs = [("retention.ms", str(RETENTION_MS)), ("segment.bytes", str(SEGMENT_BYTES))]
    if by_size:
        configs.append(("retention.bytes", "0"))
    return tuple(configs)


def wait_ms(check_interval_ms: int) -> int:
    """How long after a partition's last produce every record of it has expired and a
    retention pass has run since (two passes: one may be under way)."""
    return RETENTION_MS + 2 * check_interval_ms


def topic_config(base: SpecConfig, configs: Iterable[tuple[str, str]]) -> SpecConfig:
    """The spec's configuration for the log of a topic created with ``configs``."""
    values: dict[str, Any] = {TOPIC_SETTINGS[k]: int(v) for k, v in configs if k in TOPIC_SETTINGS}
    return attrs.evolve(base, **values) if values else base


@attrs.frozen(slots=True)
class Timing:
    """When an operation happened, by the harness's clock (ms): the timestamp its record
    batches carried (None: it sent none) and when its answer had arrived."""

    batch_ms: int | None = None
    answered_ms: int = 0


@attrs.frozen(slots=True)
class AwaitRetention:
    """Wait for retention on ``tp``: Fetch at ``offset`` (the log end offset) until
    ``wait_ms`` have passed since the example's last produce to ``tp`` and the answer's
    log start offset is at least ``goal`` (the base offset of the last batch), or it is an
    error, or ``SLACK_MS`` more have passed; the last Fetch's answer."""

    tp: TopicPartition
    offset: int
    goal: int
    wait_ms: int

    def describe(self) -> str:
        return (
            f"wait for retention on {self.tp} ({self.wait_ms} ms after its last produce, "
            f"until the log start offset is {self.goal} or more), then Fetch at offset "
            f"{self.offset}"
        )

    def settled(self, error: int, log_start_offset: int) -> bool:
        """Whether a Fetch answer ends the wait (once ``wait_ms`` have passed)."""
        return error != 0 or log_start_offset >= self.goal


def retained(
    s: ClusterState, tp: TopicPartition, config: SpecConfig, now_ms: int
) -> list[ClusterState]:
    """``s`` and every state the spec's retention on ``tp`` (each replica, under the
    topic's ``config``) may have reached by ``now_ms``; each keeps ``s``'s clock."""
    part = s.partitions.get(tp)
    if part is None:
        return [s]
    states = [s]
    for broker in sorted(part.replica):
        states = [r for x in states for r in _retained_on(x, tp, broker, config, now_ms)]
    return states


def _retained_on(
    s: ClusterState, tp: TopicPartition, broker: int, config: SpecConfig, now_ms: int
) -> list[ClusterState]:
    probe = attrs.evolve(s, config=config, now=max(s.now, now_ms))
    rep = probe.replica(tp, broker)
    if rep is None or not probe.is_up(broker):
        return [s]
    out = [s]
    for start in range(rep.log.start_offset + 1, retention_limit(probe, rep) + 1):
        done = step(probe, actions.DeleteRetainedPrefix(tp, broker, start))
        if isinstance(done, Ok):
            out.append(attrs.evolve(done.state, config=s.config, now=s.now))
    return out


def at_time(s: ClusterState, ms: int | None) -> ClusterState:
    """``s`` with its clock moved forward to ``ms`` (the spec's Tick; never back)."""
    if ms is None or ms <= s.now:
        return s
    ticked = step(s, actions.Tick(ms - s.now))
    assert isinstance(ticked, Ok)
    return ticked.state
