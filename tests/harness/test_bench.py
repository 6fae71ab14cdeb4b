"""``kafkaref bench`` against librdkafka's mock cluster: it runs, counts every record, and
fails clearly on a bootstrap it cannot reach.  No timing is asserted."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.bench_run import Scenario, run_scenario
from harness.mock_cluster import MockCluster

RECORDS = 3000
METRIC_ROWS = (
    "produce records/s",
    "produce MB/s",
    "produce p50 ms",
    "produce p99 ms",
    "consume records/s",
    "consume MB/s",
    "consume first record ms",
)


def kafkaref(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``kafkaref`` console script (or, without one, its entry point)."""
    script = Path(sys.executable).with_name("kafkaref")
    cmd = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from harness.cli import main; main()"]
    )
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def mock() -> Iterator[MockCluster]:
    with MockCluster() as cluster:
        yield cluster


@pytest.mark.parametrize("scenario", [Scenario("1", 1), Scenario("all", 3)])
def test_a_run_produces_and_reads_back_every_record(mock: MockCluster, scenario: Scenario) -> None:
    mock.create_topic("bench", scenario.partitions)
    result = run_scenario(
        mock.bootstrap, "bench", scenario, records=RECORDS, record_size=100, timeout_s=60
    )
    assert result.scenario == scenario
    assert result.produce.records == RECORDS
    assert result.produce.bytes == RECORDS * 100
    assert 0 <= result.produce.p50_ms <= result.produce.p99_ms
    assert result.consume.produced == RECORDS
    assert result.consume.records == RECORDS  # a few hundred KiB: the mock keeps them all
    assert result.consume.bytes == RECORDS * 100
    assert result.produce.seconds > 0 and result.consume.seconds > 0


def test_mock_against_mock_prints_both_and_the_ratio() -> None:
    out = kafkaref(
        "bench",
        "--bootstrap",
        "mock",
        "--compare",
        "mock",
        "--records",
        str(RECORDS),
        "--partitions",
        "3",
        "--markdown",
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"{RECORDS:,} records of 100 bytes per run" in out.stdout
    assert re.search(r"^ours: librdkafka .* mock cluster", out.stdout, re.MULTILINE)
    assert re.search(r"^peer: librdkafka .* mock cluster", out.stdout, re.MULTILINE)
    assert re.search(r"\| Run +\| Metric +\| +ours \| +peer \| ours/peer \|", out.stdout)
    number = r"[\d,]+(?:\.\d+)?"
    rows = re.findall(
        rf"^\| (.*?) +\| (.*?) +\| +{number} \| +{number} \| +{number}x \|$",
        out.stdout,
        re.MULTILINE,
    )
    assert [metric for _, metric in rows] == list(METRIC_ROWS) * 4
    runs = [run for run, _ in rows if run]
    assert runs == [
        "acks=1, 1 partition",
        "acks=all, 1 partition",
        "acks=1, 3 partitions",
        "acks=all, 3 partitions",
    ]
    assert "its log held" not in out.stdout  # every record was read back
    assert "Traceback" not in out.stderr


def test_an_unreachable_bootstrap_exits_3_with_a_message() -> None:
    with socket.socket() as s:  # a port nothing listens on once this socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = kafkaref("bench", "--bootstrap", f"127.0.0.1:{port}", "--timeout", "2")
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"cannot reach 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_unreachable_peer_exits_3_before_any_run() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = kafkaref(
        "bench", "--bootstrap", "mock", "--compare", f"127.0.0.1:{port}", "--timeout", "2"
    )
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"cannot reach 127.0.0.1:{port}" in out.stderr
    assert "partition ..." not in out.stderr  # no run started


def test_a_malformed_target_is_a_usage_error() -> None:
    out = kafkaref("bench", "--bootstrap", "localhost")
    assert out.returncode == 2
    assert "HOST:PORT" in out.stderr


def test_cluster_excludes_bootstrap_and_one_of_them_is_needed() -> None:
    both = kafkaref("bench", "--cluster", "3", "--bootstrap", "mock")
    assert both.returncode == 2
    assert "leave out --bootstrap" in both.stderr
    neither = kafkaref("bench")
    assert neither.returncode == 2
    assert "--cluster N" in neither.stderr
    one = kafkaref("bench", "--cluster", "1")
    assert one.returncode == 2
