"""``kafkaref conform`` run for real: exit status 0 for a conformant target (with the
JSON report and JUnit XML it writes), 1 for a divergent one (with its replay file, which
--replay performs again, and which a truthful declaration turns conformant), 2 when it
cannot run."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from harness.launcher import free_port, start_broker
from tests.harness.test_cli_explore import kafkaref

pytestmark = pytest.mark.timeout(180)


def test_conform_is_listed_with_its_options() -> None:
    out = kafkaref("conform", "--help")
    assert out.returncode == 0, out.stderr
    for option in ("--bootstrap", "--local", "--budget", "--examples", "--report", "--junit"):
        assert option in out.stdout


def test_nothing_listening_is_exit_2() -> None:
    out = kafkaref("conform", "--bootstrap", f"127.0.0.1:{free_port()}", "--examples", "1")
    assert out.returncode == 2
    assert "could not run" in out.stderr


def test_bad_arguments_are_exit_2(tmp_path: Path) -> None:
    assert kafkaref("conform").returncode == 2  # neither --bootstrap nor --local
    bad = tmp_path / "target.json"
    bad.write_text('{"name": "x", "transactions": true}')
    out = kafkaref("conform", "--local", "--target", str(bad))
    assert out.returncode == 2 and "transactions" in out.stderr


def test_local_reference_broker_is_exit_0_with_report_and_junit(tmp_path: Path) -> None:
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    out = kafkaref(
        "conform", "--local", "--examples", "8", "--seed", "10",
        "--report", str(report), "--junit", str(junit),
        "--replay-file", str(tmp_path / "replay.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (tmp_path / "replay.json").exists()
    assert "CONFORMANT" in out.stdout and "rules exercised" in out.stdout
    data = json.loads(report.read_text())
    assert data["conformant"] is True and data["divergences"] == []
    assert data["rules"]["produce_idempotent"]["count"] > 0
    assert data["features"]["groups"] == "checked"
    suite = ElementTree.parse(junit).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests", "0")) > 10


def test_divergent_target_is_exit_1_and_replays(tmp_path: Path) -> None:
    replay_file, report = tmp_path / "replay.json", tmp_path / "report.json"
    honest = tmp_path / "target.json"
    honest.write_text(json.dumps({"name": "small", "config": {"message.max.bytes": "150"}}))
    # Without groups: they would diverge too (commits too large for __consumer_offsets).
    dishonest = tmp_path / "dishonest.json"
    dishonest.write_text(json.dumps({"name": "claims Kafka's defaults", "groups": False}))
    with start_broker(config={"message.max.bytes": 150}) as broker:
        out = kafkaref(
            "conform", "--bootstrap", broker.bootstrap, "--examples", "10", "--seed", "3",
            "--target", str(dishonest),
            "--replay-file", str(replay_file), "--report", str(report),
        )  # fmt: skip
        assert out.returncode == 1, out.stdout + out.stderr
        assert "1 DIVERGENCE" in out.stdout
        assert "spec allows" in out.stdout
        # MESSAGE_TOO_LARGE, or at acks=0 the connection closed instead.
        assert "MESSAGE_TOO_LARGE" in out.stdout or "connection closed" in out.stdout
        divergence = json.loads(report.read_text())["divergences"][0]
        assert len(divergence["operations"]) == 2
        assert divergence["found_length"] > 2
        again = kafkaref("conform", "--bootstrap", broker.bootstrap, "--replay", str(replay_file))
        assert again.returncode == 1, again.stdout + again.stderr
        assert "divergence at operation 2 of 2" in again.stdout
        declared = kafkaref(
            "conform", "--bootstrap", broker.bootstrap, "--replay", str(report),
            "--target", str(honest),
        )  # fmt: skip
        assert declared.returncode == 0, declared.stdout + declared.stderr
