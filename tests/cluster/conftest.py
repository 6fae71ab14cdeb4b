"""Fixtures for the cluster tests: a private ZooKeeper (harness/zookeeper.py), a kazoo
client on it for assertions, and a factory of cluster-mode broker processes started with
harness/launcher.start_broker (config with zookeeper.connect).  Waiting is always on a
condition with a deadline (``wait_for``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import pytest
from kazoo.client import KazooClient

from harness.launcher import BrokerProcess, start_broker
from harness.zookeeper import ZooKeeperEnsemble, ZooKeeperError

T = TypeVar("T")

SESSION_TIMEOUT_MS = 6000
DEADLINE_S = 30.0


def wait_for(
    condition: Callable[[], T | None], deadline_s: float = DEADLINE_S, what: str = "condition"
) -> T:
    """Poll ``condition`` until it returns something truthy; fail at the deadline."""
    end = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(0.05)


def wait_value(
    fetch: Callable[[], T],
    accept: Callable[[T], bool],
    deadline_s: float = DEADLINE_S,
    what: str = "a value",
) -> T:
    """Fetch until ``accept`` takes the value; fail at the deadline with the last one."""
    end = time.monotonic() + deadline_s
    while True:
        value = fetch()
        if accept(value):
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}: {value!r}")
        time.sleep(0.05)


@pytest.fixture
def zookeeper(tmp_path: Path) -> Iterator[ZooKeeperEnsemble]:
    """A private single-node ZooKeeper."""
    ensemble = ZooKeeperEnsemble(tmp_path / "zk", 1)
    try:
        ensemble.start()
    except ZooKeeperError as e:
        ensemble.stop()
        pytest.fail(f"cannot start ZooKeeper (the setup installs Debian's zookeeper): {e}")
    try:
        yield ensemble
    finally:
        ensemble.stop()


@pytest.fixture
def zk(zookeeper: ZooKeeperEnsemble) -> Iterator[KazooClient]:
    """A kazoo client of the test's own on the private ZooKeeper."""
    client = KazooClient(hosts=zookeeper.connect_string, timeout=10.0)
    client.start(timeout=20)
    try:
        yield client
    finally:
        client.stop()
        client.close()


BrokerFactory = Callable[..., BrokerProcess]


@pytest.fixture
def brokers(tmp_path: Path, zookeeper: ZooKeeperEnsemble) -> Iterator[BrokerFactory]:
    """``brokers(broker_id, **config)`` starts a cluster-mode broker; all are killed at
    the end."""
    started: list[BrokerProcess] = []

    def start(broker_id: int, config: Mapping[str, object] | None = None) -> BrokerProcess:
        properties: dict[str, object] = {
            "zookeeper.connect": zookeeper.connect_string,
            "zookeeper.session.timeout.ms": SESSION_TIMEOUT_MS,
        }
        properties.update(config or {})
        broker = start_broker(broker_id, work_dir=tmp_path / "brokers", config=properties)
        started.append(broker)
        return broker

    try:
        yield start
    finally:
        for broker in started:
            broker.close()
