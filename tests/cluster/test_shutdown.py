"""A cluster-mode broker told to stop (SIGTERM) stops, even when its ZooKeeper is gone:
each shutdown step that needs ZooKeeper waits a bounded time, and the broker's registration
is left to expire with its session."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble
from tests.cluster.conftest import BrokerFactory

pytestmark = pytest.mark.timeout(120)


def test_sigterm_stops_a_broker_whose_zookeeper_is_gone(
    zookeeper: ZooKeeperEnsemble, brokers: BrokerFactory
) -> None:
    broker = brokers(1)
    zookeeper.kill(1)
    # stop() raises if the broker is still running a minute after SIGTERM (before the
    # bounded steps, it waited for ZooKeeper forever).
    assert broker.stop(timeout=60) == 0, broker.stderr_tail()
    assert not broker.alive()
    assert "going on" in broker.stderr_tail(200)


def test_sigterm_with_zookeeper_up_deregisters_at_once(
    zookeeper: ZooKeeperEnsemble, brokers: BrokerFactory
) -> None:
    broker = brokers(1)
    client = KazooClient(hosts=zookeeper.connect_string, timeout=10.0)
    client.start(timeout=20)
    try:
        assert client.get_children("/brokers/ids") == ["1"]
        assert broker.stop(timeout=60) == 0
        # A clean stop deletes the registration itself instead of waiting for expiry.
        assert client.get_children("/brokers/ids") == []
    finally:
        client.stop()
        client.close()
