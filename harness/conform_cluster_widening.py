"""Where kafkaref brokers do more than the spec's steps, the cluster oracle's widenings
(``harness.conform_cluster_oracle``): the model states a broker may also be in, each a
documented difference between what a broker does and what the spec's transitions say.

- :func:`checkpointed`: a killed broker comes back with any high watermark up to the one
  it had (it reads them from a periodic checkpoint);
- :func:`learnt_before_registering`: a broker whose session expired may apply partition
  states before it has registered again (it learns them from its own watches).
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from spec import actions
from spec.cluster import step
from spec.outcome import Ok
from spec.state import Broker, ClusterState


def checkpointed(s: ClusterState, broker: int) -> list[ClusterState]:
    """``s`` with each of the crashed ``broker``'s replicas at every high watermark it may
    come back with: a broker reads its high watermarks at start-up from the checkpoint it
    writes every replica.high.watermark.checkpoint.interval.ms (as Kafka does), so after
    SIGKILL a replica's may be anything from its log start offset to the one it had.  (The
    spec's ``CrashBroker`` keeps it whole; the harness widens it here.)"""
    out = [s]
    for tp, part in s.partitions.items():
        rep = part.replica.get(broker)
        if rep is None:
            continue
        lows = range(rep.log.start_offset, rep.high_watermark + 1)
        out = [
            t.with_replica(tp, broker, attrs.evolve(rep, high_watermark=h))
            for t in out
            for h in lows
        ]
    return out


def learnt_before_registering(s: ClusterState, broker: int) -> Iterator[ClusterState]:
    """``s`` after the running, unregistered ``broker`` (its session expired; resumed or
    healed) applied a partition state it has not registered for yet.  A kafkaref broker
    learns partition states from its own ZooKeeper watches, which its new session sets
    again while it registers, not from the controller's LeaderAndIsr (which Kafka sends
    to registered brokers only): it may follow the new leader, and be taken back into
    the ISR, while the controller still sees it gone and takes it out again (a new
    leader epoch).  (The spec's ``ApplyLeaderAndIsr`` needs a registered broker; the
    harness widens it here.)"""
    registered = step(s, actions.Reregister(broker))
    if not isinstance(registered, Ok):
        return
    unregistered = Broker(up=True, registered=False)
    for tp in registered.state.partitions:
        out = step(registered.state, actions.ApplyLeaderAndIsr(tp, broker))
        if isinstance(out, Ok):
            yield attrs.evolve(out.state, brokers=out.state.brokers.set(broker, unregistered))
