"""A broker's registration /brokers/ids/<id> when a registration of its id is already
there: a broker restarted right after a crash waits (saying so on stderr) for its old
session to expire and then registers with a new one; one whose id stays registered by
another live session gives up after 3 x zookeeper.session.timeout.ms and exits (Kafka
exits at once with NodeExists)."""

from __future__ import annotations

import json

import pytest
from kazoo.client import KazooClient

from harness.launcher import BrokerStartError
from impl.zk import layout
from tests.cluster.conftest import BrokerFactory

pytestmark = pytest.mark.timeout(180)


def session_of(zk: KazooClient, broker_id: int) -> int | None:
    stat = zk.exists(layout.broker_path(broker_id))
    return None if stat is None else int(stat.ephemeralOwner)


def test_restart_after_a_crash_waits_for_the_old_registration_to_expire(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    # A session timeout long enough that the restart surely finds the old registration.
    broker = brokers(1, {"zookeeper.session.timeout.ms": 15000})
    old = session_of(zk, 1)
    assert old is not None
    broker.kill()
    assert session_of(zk, 1) == old  # a crash leaves the registration until expiry
    broker.restart(timeout=90)
    new = session_of(zk, 1)
    assert new is not None and new != old
    stderr = broker.stderr_tail(200)
    assert "/brokers/ids/1 is held by ZooKeeper session" in stderr
    assert "waiting up to 45s for it to expire" in stderr
    assert "the old registration expired after" in stderr
    registration = json.loads(zk.get(layout.broker_path(1))[0])
    assert registration["endpoints"] == [f"PLAINTEXT://{broker.host}:{broker.port}"]


def test_a_registration_held_by_a_live_session_makes_the_broker_exit(
    brokers: BrokerFactory, zk: KazooClient
) -> None:
    zk.ensure_path(layout.BROKER_IDS)
    zk.create(layout.broker_path(7), b"{}", ephemeral=True)  # the test's session holds it
    with pytest.raises(BrokerStartError) as failed:
        brokers(7, {"zookeeper.session.timeout.ms": 2000})
    assert "/brokers/ids/7 is still registered by another ZooKeeper session" in str(failed.value)
    assert session_of(zk, 7) == zk.client_id[0]
