"""Whether a cluster the harness runs is healthy, as its ZooKeeper and its brokers say.

This module owns the read-only ZooKeeper view both launchers use (the local processes of
``harness.cluster`` and the containers of ``chaos.db``): the broker ids registered in
``/brokers/ids``, the session owning a registration (a restarted broker is back once a new
session owns it), and the rule that says what keeps a cluster from being healthy, given
which brokers run and what each one's Metadata shows.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from harness.cluster_metadata import ClusterView


class ClusterError(RuntimeError):
    """The cluster did not reach the state asked for within the deadline (the message
    says what was missing), or an operation does not apply (e.g. restart of a broker
    that is not in the cluster)."""


class ZooKeeperView:
    """A kazoo client of a cluster's ZooKeeper, started on first use; it only reads."""

    def __init__(self, connect_string: str, start_timeout_s: float) -> None:
        self.connect_string = connect_string
        self._start_timeout_s = start_timeout_s
        self._client: KazooClient | None = None

    def client(self) -> KazooClient:
        if self._client is None:
            logging.getLogger("kazoo").setLevel(logging.CRITICAL)
            client = KazooClient(hosts=self.connect_string, timeout=10.0)
            try:
                client.start(timeout=self._start_timeout_s)
            except KazooTimeoutError as exc:
                client.close()
                raise ClusterError(f"cannot reach ZooKeeper at {self.connect_string}") from exc
            self._client = client
        return self._client

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop()
                self._client.close()
            self._client = None

    def registered(self) -> frozenset[int]:
        """The broker ids in ``/brokers/ids``."""
        try:
            return frozenset(int(c) for c in self.client().get_children("/brokers/ids"))
        except NoNodeError:
            return frozenset()

    def registration_owner(self, broker_id: int) -> int | None:
        """The session owning ``/brokers/ids/<id>`` (None: the broker is not registered)."""
        stat = self.client().exists(f"/brokers/ids/{broker_id}")
        return None if stat is None else int(stat.ephemeralOwner)


def health_problems(
    running: frozenset[int],
    registered: frozenset[int],
    views: Mapping[str, ClusterView | str],
    *,
    leaders: bool,
) -> list[str]:
    """What keeps a cluster from being healthy (empty: healthy): every running broker is
    registered and no other; each broker's Metadata (``views``: by the broker's name, or
    why it did not answer) lists exactly the running brokers and a running controller;
    with ``leaders``, every partition it shows has a running leader."""
    if not running:
        return ["no broker is running"]
    problems = []
    if registered != running:
        problems.append(f"/brokers/ids holds {sorted(registered)}, running: {sorted(running)}")
    for name, view in views.items():
        if isinstance(view, str):
            problems.append(f"{name}: {view}")
            continue
        if view.broker_ids != running:
            problems.append(f"{name} lists brokers {sorted(view.broker_ids)}")
        if view.controller_id not in running:
            problems.append(f"{name} names controller {view.controller_id}")
        if leaders:
            problems.extend(
                f"{name}: {p.topic}-{p.partition} has leader {p.leader}"
                for p in view.partitions
                if p.leader not in running
            )
    return problems
