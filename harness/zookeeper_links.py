"""Each broker's own network path to ZooKeeper, which the harness can cut and heal.

A local cluster started with ``zookeeper_links=True`` (``harness.cluster.LocalCluster``)
gives every broker a ``zookeeper.connect`` of its own: one ``harness.tcp_proxy.TcpProxy``
per ZooKeeper node, owned by this harness process.  Cutting a broker's link partitions
that broker from ZooKeeper and from nothing else: it keeps serving clients and the other
brokers' replica fetches (those do not go through the proxies), while its session
expires after zookeeper.session.timeout.ms and the controller moves its leaderships away
(it may go on believing it leads: a zombie).  Healing lets its ZooKeeper client connect
again (and find its session expired, if it was cut for that long).

The proxies live in this process: a cluster with links cannot be detached.
"""

from __future__ import annotations

from harness.tcp_proxy import TcpProxy

__all__ = ["ZooKeeperLinks"]


def _addresses(connect: str) -> list[tuple[str, int]]:
    """The (host, port) of each server of a ``zookeeper.connect`` string (no chroot)."""
    out = []
    for server in connect.split("/", 1)[0].split(","):
        host, _, port = server.strip().rpartition(":")
        out.append((host, int(port)))
    return out


class ZooKeeperLinks:
    """The proxies between each broker and the ZooKeeper servers of ``connect``."""

    def __init__(self, connect: str, host: str = "127.0.0.1") -> None:
        self.servers = _addresses(connect)
        self.host = host
        self._proxies: dict[int, list[TcpProxy]] = {}

    def connect_for(self, broker_id: int) -> str:
        """The ``zookeeper.connect`` that broker ``broker_id`` must use (its proxies are
        started on first use and keep their ports for the cluster's life)."""
        proxies = self._proxies.get(broker_id)
        if proxies is None:
            proxies = [TcpProxy(server, self.host).start() for server in self.servers]
            self._proxies[broker_id] = proxies
        return ",".join(p.address for p in proxies)

    def cut(self, broker_id: int) -> None:
        """Partition the broker from ZooKeeper (see ``TcpProxy.cut``)."""
        for proxy in self._links(broker_id):
            proxy.cut()

    def heal(self, broker_id: int) -> None:
        """End the broker's partition from ZooKeeper (see ``TcpProxy.heal``)."""
        for proxy in self._links(broker_id):
            proxy.heal()

    def heal_all(self) -> None:
        for broker_id in sorted(self._proxies):
            self.heal(broker_id)

    def is_cut(self, broker_id: int) -> bool:
        return any(p.is_cut for p in self._proxies.get(broker_id, ()))

    @property
    def cut_off(self) -> frozenset[int]:
        """The brokers whose links are cut now."""
        return frozenset(b for b in self._proxies if self.is_cut(b))

    def close(self) -> None:
        for proxies in self._proxies.values():
            for proxy in proxies:
                proxy.close()
        self._proxies.clear()

    def _links(self, broker_id: int) -> list[TcpProxy]:
        proxies = self._proxies.get(broker_id)
        if proxies is None:
            raise KeyError(f"broker {broker_id} has no ZooKeeper link of the harness")
        return proxies
