"""``kafkaref chaos run`` end to end, both ways: the reference cluster under kills and
partitions must come out valid, and a seeded defect must be caught.

Each test runs the command as a user does (a subprocess), on the image the session
built (``--image``), with a fixed ``--seed`` so the fault schedule is the same every
time:

* reference: ~35 s of workload (acks=all, RF 3, min.insync.replicas 2, idempotent
  producers, two consumers) while the nemesis kills brokers and cuts them off; exit 0,
  a final read of every partition, nothing lost.
* defect ``ack-before-replicate``: the leader of a partition is cut off from every
  other node (the clients on this host still reach it) for ~14 s, longer than its
  ZooKeeper session; with the defect it goes on acknowledging acks=all writes alone, a
  new leader is elected without them, and when the partition heals the old leader
  truncates them away.  The checker must report lost writes (exit 1) every time: the
  isolation is always of the leader and always outlives the session.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos.generator import ScheduleOptions, plan_prefix

pytestmark = pytest.mark.timeout(400)

RUN_TIMEOUT_S = 300


def chaos_run(image: str, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """Run the command; (exit status, results.json, its terminal output)."""
    command = [sys.executable, "-c", "from harness.cli import main; main()", "chaos", "run"]
    command += ["--image", image, "--out", str(out), *args]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )
    output = done.stdout + done.stderr
    print(output)
    written = out / "results.json"
    assert written.exists(), f"exit {done.returncode}, no results.json:\n{output}"
    return done.returncode, json.loads(written.read_text()), output


def test_reference_cluster_under_kills_and_partitions_is_valid(
    project_image: str, tmp_path: Path
) -> None:
    seed, duration, interval = 5, 9.0, 5.0
    options = ScheduleOptions(kinds=("kill", "partition"), duration_s=duration, interval_s=interval)
    planned = plan_prefix(options, seed, 35.0)
    assert {p.kind for p in planned[:2]} == {"kill", "partition"}, planned  # both, always
    code, results, output = chaos_run(
        project_image,
        tmp_path,
        *("--time", "35", "--faults", "kill,partition", "--seed", str(seed)),
        *("--fault-duration", str(duration), "--fault-interval", str(interval)),
    )
    assert code == 0, output
    assert results["valid"] is True and results["anomaly-types"] in ([], ["unseen"])
    stats = results["stats"]
    assert stats["final-read-partitions"] == 3
    assert stats["sends-acknowledged"] > 500
    assert stats["by-f"]["fault"] >= 4  # two faults at least, each invoked and completed
    assert stats["by-f"]["heal"] >= stats["by-f"]["fault"]
    assert (tmp_path / "report.html").stat().st_size > 20_000
    assert (tmp_path / "history.jsonl").exists()


def test_ack_before_replicate_loses_writes_when_the_leader_is_cut_off(
    project_image: str, tmp_path: Path
) -> None:
    code, results, output = chaos_run(
        project_image,
        tmp_path,
        *("--time", "30", "--faults", "partition", "--target", "leader", "--seed", "1"),
        *("--fault-duration", "14", "--fault-interval", "60"),
        *("--mutant", "ack-before-replicate"),
    )
    assert code == 1, output
    assert results["valid"] is False
    assert "lost-write" in results["bad-anomaly-types"]
    assert results["anomalies"]["lost-write"]["count"] > 0
    assert results["run"]["mutant"] == "ack-before-replicate"
    assert "INVALID: lost-write" in (tmp_path / "report.html").read_text()
