"""The private ZooKeeper the local cluster runs on: Debian's ZooKeeper, started on free
ports with its own data, one node or an ensemble of three, that a real client (kazoo)
uses; an ensemble keeps serving its data when its leader is killed."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from harness.zookeeper import ZooKeeperEnsemble, ZooKeeperError

pytestmark = pytest.mark.timeout(180)


def _client(zk: ZooKeeperEnsemble) -> KazooClient:
    client = KazooClient(hosts=zk.connect_string, timeout=10.0)
    client.start(timeout=30)
    return client


def test_single_node_serves_and_keeps_data_across_a_restart(tmp_path: Path) -> None:
    with ZooKeeperEnsemble(tmp_path) as zk:
        assert zk.nodes[0].mode() == "standalone"
        client = _client(zk)
        try:
            client.create("/brokers/ids/0", b"{}", ephemeral=True, makepath=True)
            client.create("/controller_epoch", b"1")
            assert client.get_children("/brokers/ids") == ["0"]
        finally:
            client.stop()
            client.close()
        zk.restart(1)
        client = _client(zk)
        try:
            # The persistent znode survived the restart; the ephemeral one died with the
            # session that made it.
            assert client.get("/controller_epoch")[0] == b"1"
            assert client.get_children("/brokers/ids") == []
        finally:
            client.stop()
            client.close()


def test_ensemble_of_three_elects_a_new_leader(tmp_path: Path) -> None:
    with ZooKeeperEnsemble(tmp_path, size=3) as zk:
        modes = sorted(n.mode() or "" for n in zk.nodes)
        assert modes == ["follower", "follower", "leader"]
        client = _client(zk)
        try:
            client.create("/kafkaref", b"before")
        finally:
            client.stop()
            client.close()
        leader = zk.leader()
        assert leader is not None
        zk.kill(leader.myid)
        zk.wait_ready()
        survivors = [n for n in zk.nodes if n.running]
        assert len(survivors) == 2
        # A condition with a deadline: the two survivors elect a leader among themselves.
        client = _client(zk)
        try:
            assert client.get("/kafkaref")[0] == b"before"
        finally:
            client.stop()
            client.close()
        assert sorted(n.mode() or "" for n in survivors) == ["follower", "leader"]


def test_an_ensemble_must_have_one_or_three_nodes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use 1 or 3"):
        ZooKeeperEnsemble(tmp_path, size=2)


def test_a_node_that_died_is_reported(tmp_path: Path) -> None:
    with ZooKeeperEnsemble(tmp_path) as zk:
        process = zk.nodes[0].process
        assert process is not None
        process.kill()
        process.wait()
        with pytest.raises(ZooKeeperError, match="node 1 exited"):
            zk.wait_ready(timeout_s=30)
