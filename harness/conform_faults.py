"""Broker faults in a conformance run: restarting a broker the harness manages.

A target that lets the harness kill brokers (``may_kill_brokers`` in its declaration) and
whose broker processes the harness holds (``kafkaref conform --local``) gets the rule
``restart_broker``: the broker is killed with SIGKILL and started again on the same data
directory and port.  A process crash loses nothing the kernel had been given (written but
unflushed data stays in the page cache), so the spec's ``CrashBroker`` without
``lose_unflushed`` followed by ``RestartBroker`` is the model of it: every acknowledged
record must still be there, at the same offsets, with the same producer state.  The group
coordinator's records are another matter: Kafka answers some group transitions before
their record is written, so a kill may come before the write; the group oracle's restart
keeps every acknowledged write and may lose the others (``harness.conform_group_log``).

This module has the operation, its observation, what the harness needs from whoever
holds the processes (:class:`BrokerControl`), the one for processes started by
``harness.launcher``, and the model's side (:func:`crash_and_restart`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import attrs

from harness.launcher import BrokerProcess
from spec import actions
from spec.cluster import step
from spec.outcome import Ok
from spec.state import ClusterState


@attrs.frozen(slots=True)
class RestartBroker:
    """Kill broker ``broker`` (the model's id: the target's brokers in sorted order,
    numbered from 0) with SIGKILL and start it again on the same data."""

    broker: int = 0

    def describe(self) -> str:
        return f"broker {self.broker} is killed (SIGKILL) and restarted on the same data"


@attrs.frozen(slots=True)
class Restarted:
    """The broker came back and accepts connections."""

    def describe(self) -> str:
        return "restarted"


class BrokerControl(Protocol):
    """Whoever holds the target's broker processes."""

    def restart(self, broker_id: int) -> None:
        """Kill broker ``broker_id`` (the target's id) and start it again; return once it
        accepts connections, raise when it does not come back."""


class ProcessControl:
    """Restarts brokers started by ``harness.launcher`` (their ids -> their handles)."""

    def __init__(self, brokers: Mapping[int, BrokerProcess]) -> None:
        self.brokers = dict(brokers)

    def restart(self, broker_id: int) -> None:
        broker = self.brokers[broker_id]
        broker.kill()
        broker.start()


class ModelError(RuntimeError):
    """The model refused the crash or the restart (the broker was down already)."""


def crash_and_restart(s: ClusterState, broker: int) -> ClusterState:
    """The model after ``broker``'s process is killed and started again (unsettled)."""
    crashed = step(s, actions.CrashBroker(broker))
    if not isinstance(crashed, Ok):
        raise ModelError(f"the model cannot crash broker {broker}: {crashed.error.name}")
    restarted = step(crashed.state, actions.RestartBroker(broker))
    if not isinstance(restarted, Ok):
        raise ModelError(f"the model cannot restart broker {broker}: {restarted.error.name}")
    return restarted.state


def corrupt(batch: bytes) -> bytes:
    """``batch`` with its last byte flipped: inside the part its CRC covers, so the CRC no
    longer matches while the header still parses (Kafka: CORRUPT_MESSAGE)."""
    return batch[:-1] + bytes([batch[-1] ^ 0xFF])
