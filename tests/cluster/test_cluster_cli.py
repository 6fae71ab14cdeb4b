"""``kafkaref cluster`` from the command line, each command its own process as from
separate shells: up, status, kill, restart, down in a temporary data directory, and the
messages and exit statuses of bad input."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest

from harness.cluster import LocalCluster
from harness.cluster_state import BrokerRecord, StateError, load_state, pid_running
from tests.cluster.cluster_fixtures import (
    REPLICA_LAG_MS,
    SESSION_TIMEOUT_MS,
    create_topic,
    kafkaref,
    require_zookeeper,
)

pytestmark = pytest.mark.timeout(300)

SHORT = (
    "-c",
    f"zookeeper.session.timeout.ms={SESSION_TIMEOUT_MS}",
    "-c",
    f"replica.lag.time.max.ms={REPLICA_LAG_MS}",
)


def _brokers(data_dir: Path) -> dict[int, BrokerRecord]:
    return {b.broker_id: b for b in load_state(data_dir).brokers}


def _status_row(stdout: str, broker_id: int) -> str:
    found = re.search(rf"^\W*{broker_id}\W.*127\.0\.0\.1:\d+.*$", stdout, re.MULTILINE)
    assert found, stdout
    return found.group(0)


def test_up_status_kill_restart_down(tmp_path: Path) -> None:
    require_zookeeper()
    data_dir = tmp_path / "cluster"
    try:
        up = kafkaref("cluster", "up", "--brokers", "3", "--data-dir", str(data_dir), *SHORT)
        assert up.returncode == 0, up.stdout + up.stderr
        bootstrap = up.stdout.strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}", bootstrap), up.stdout
        assert "starting ZooKeeper" in up.stderr and "starting broker 3" in up.stderr
        state = json.loads((data_dir / "cluster.json").read_text())
        assert state["bootstrap"] == bootstrap
        brokers = _brokers(data_dir)
        # up has exited; the processes it started are still running
        assert all(pid_running(b.pid, b.marker()) for b in brokers.values())

        again = kafkaref("cluster", "up", "--data-dir", str(data_dir))
        assert again.returncode == 1
        assert "already running" in again.stderr

        cluster = LocalCluster.attach(data_dir)
        try:
            create_topic(cluster, "cli-topic", 2, 3)
        finally:
            cluster.close_zk_client()
        status = kafkaref("cluster", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        assert bootstrap in status.stdout
        assert re.search(r"controller:\s+broker [123] \(epoch \d+\)", status.stdout)
        topic_rows = re.findall(r"^\W*cli-topic\W+(\d)\W+([123])\W.*$", status.stdout, re.M)
        assert sorted(p for p, _ in topic_rows) == ["0", "1"], status.stdout
        for b in (1, 2, 3):
            assert "running" in _status_row(status.stdout, b)

        killed = kafkaref("cluster", "kill", "2", "--data-dir", str(data_dir))
        assert killed.returncode == 0, killed.stderr
        assert f"broker 2 (pid {brokers[2].pid}) killed with SIGKILL" in killed.stdout
        assert not pid_running(brokers[2].pid, brokers[2].marker())
        status = kafkaref("cluster", "status", "--data-dir", str(data_dir))
        assert status.returncode == 0
        assert "stopped" in _status_row(status.stdout, 2)

        twice = kafkaref("cluster", "kill", "2", "--data-dir", str(data_dir))
        assert twice.returncode == 1
        assert "broker 2 is not running" in twice.stderr
        unknown = kafkaref("cluster", "kill", "7", "--data-dir", str(data_dir))
        assert unknown.returncode == 2
        assert "no broker 7" in unknown.stderr

        restarted = kafkaref("cluster", "restart", "2", "--data-dir", str(data_dir))
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert "broker 2 running again" in restarted.stdout
        record = _brokers(data_dir)[2]
        assert record.port == brokers[2].port and pid_running(record.pid, record.marker())
        status = kafkaref("cluster", "status", "--data-dir", str(data_dir))
        assert re.search(r"running\W+yes", _status_row(status.stdout, 2)), status.stdout

        down = kafkaref("cluster", "down", "--data-dir", str(data_dir))
        assert down.returncode == 0, down.stderr
        assert "stopped" in down.stdout
        assert not any(pid_running(b.pid, b.marker()) for b in brokers.values())
        assert not pid_running(record.pid, record.marker())
        assert (data_dir / "data-1").is_dir()  # the data is kept
        after = kafkaref("cluster", "status", "--data-dir", str(data_dir))
        assert after.returncode == 1
        assert "no cluster in" in after.stderr
    finally:
        with contextlib.suppress(StateError):
            LocalCluster.attach(data_dir).stop()


def test_commands_without_a_cluster_say_so(tmp_path: Path) -> None:
    for command in (("status",), ("kill", "1"), ("restart", "1"), ("down",)):
        out = kafkaref("cluster", *command, "--data-dir", str(tmp_path))
        assert out.returncode == 1, command
        assert f"no cluster in {tmp_path}" in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("up", "--zookeepers", "2"), "1 or 3 nodes"),
        (("up", "--brokers", "0"), "--brokers"),
        (("up", "-c", "no-equals-sign"), "KEY=VALUE"),
        (("kill", "one"), "ID"),
    ],
)
def test_bad_arguments_exit_2(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    out = kafkaref("cluster", *args, "--data-dir", str(tmp_path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert not (tmp_path / "cluster.json").exists()


def test_bench_measures_a_cluster_against_a_single_broker() -> None:
    """``kafkaref bench --cluster 3`` (issue 4, item 6): both targets start and stop within
    the run, every record is read back, and the ratio line is printed (not asserted)."""
    require_zookeeper()
    out = kafkaref(
        "bench", "--cluster", "3", "--records", "2000", "--partitions", "2", "--markdown"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(
        r"^ours: local kafkaref cluster, 3 brokers, replication factor 3", out.stdout, re.M
    )
    assert re.search(r"^peer: local kafkaref broker, single-broker mode", out.stdout, re.M)
    runs = re.findall(r"^\| (acks=\S+, \d+ partitions?) ", out.stdout, re.M)
    assert runs == ["acks=all, 1 partition", "acks=all, 2 partitions"]
    ratios = re.findall(
        r"^acks=all, \d+ partitions?: 3-broker cluster \(replication factor 3\) produces "
        r"(\d+\.\d+)x the records/s of a single broker",
        out.stdout,
        re.M,
    )
    assert len(ratios) == 2, out.stdout
