"""The seeded defects and the check that must catch them: the registry (named, each
hooked where it says, off unless asked for), the wiring (``kafkaref.mutant`` /
``--mutant`` on the broker, ``kafkaref conform --local --mutant``, a clear error for an
unknown name), a fast subset of the sweep (``kafkaref conform --local --mutant NAME``
exits 1, found by the rule that should find it), and the correct broker conforming in
repeated runs.  The whole registry runs in ``python -m harness.mutant_sweep``.

Runs are bounded by examples from a fixed seed, not by time, so a busy machine makes
them slower, never different.  They leave the group rules out (tests/harness/
test_conform_groups*.py has them): whether a group change the broker answered before it
was killed survives the restart is a race the group oracle does not follow yet, and the
outcome of these runs must not depend on timing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from harness.broker_cli import broker_argv
from harness.conform_retention import LOCAL_CHECK_INTERVAL_MS
from harness.launcher import DEFAULT_COMMAND, BrokerStartError, start_broker
from harness.mutant_sweep import BEGIN, END, SweepRow, table, write_docs
from impl import mutants
from tests.harness.test_cli_explore import kafkaref

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]
NO_GROUPS = {
    "name": "kafkaref (local), no groups",
    "groups": False,
    "may_kill_brokers": True,
    "config": {"log.retention.check.interval.ms": str(LOCAL_CHECK_INTERVAL_MS)},
}
CONSTANTS = {
    value: name
    for name, value in vars(mutants).items()
    if name.isupper() and isinstance(value, str) and value in mutants.REGISTRY
}


def test_registry_names_at_least_ten_broker_defects_each_with_its_hook() -> None:
    outside_groups = [m for m in mutants.REGISTRY.values() if m.needs != "groups"]
    assert len(outside_groups) >= 10
    assert sum(m.needs in ("single broker", "restart") for m in outside_groups) >= 8
    for name, m in mutants.REGISTRY.items():
        assert m.summary and m.caught_by and m.needs
        assert name in CONSTANTS, f"{name} has no module constant"
        path = ROOT / m.hooked_in.split()[0]
        hook = re.compile(rf"mutants\.active\(\s*mutants\.{CONSTANTS[name]}\s*\)")
        assert hook.search(path.read_text(encoding="utf-8")), f"{name}: no hook in {path}"


def test_nothing_is_active_unless_switched_on() -> None:
    assert not any(mutants.active(name) for name in mutants.REGISTRY)
    try:
        mutants.activate(mutants.FETCH_OFF_BY_ONE)
        assert [n for n in mutants.REGISTRY if mutants.active(n)] == [mutants.FETCH_OFF_BY_ONE]
        with pytest.raises(mutants.UnknownMutantError, match="no-such-defect"):
            mutants.activate("no-such-defect")
    finally:
        mutants.activate(None)
    assert not any(mutants.active(name) for name in mutants.REGISTRY)


def test_the_broker_prints_its_registry() -> None:
    command = [*DEFAULT_COMMAND, "--list-mutants"]
    out = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == json.loads(json.dumps(mutants.registry_json()))


def test_an_unknown_mutant_stops_the_broker_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="unknown mutant 'no-such-defect'"):
        start_broker(work_dir=tmp_path, config={mutants.PROPERTY: "no-such-defect"})
    out = kafkaref("conform", "--local", "--mutant", "no-such-defect", "--examples", "1")
    assert out.returncode == 2 and "unknown mutant 'no-such-defect'" in out.stderr


def test_mutant_options() -> None:
    argv = broker_argv(1, "127.0.0.1:0", Path("d"), None, mutants.CRC_NOT_CHECKED)
    assert argv[-2:] == ["--mutant", mutants.CRC_NOT_CHECKED]
    assert "--mutant" not in broker_argv(1, "127.0.0.1:0", Path("d"), None)
    out = kafkaref("conform", "--bootstrap", "127.0.0.1:9", "--mutant", "fetch-off-by-one")
    assert out.returncode == 2 and "--mutant needs --local" in out.stderr


CAUGHT = [
    (mutants.CRC_NOT_CHECKED, {"produce_corrupt"}),
    (mutants.DUPLICATE_ON_IDEMPOTENT_RETRY, {"retry_batch"}),
    (mutants.FETCH_OFF_BY_ONE, {"fetch"}),
    # Found by whatever operation after the restart touches a lost batch.
    (mutants.LOSE_TAIL_ON_RESTART, set()),
    # The log starts again at 0 once everything expired: the wait, or any operation after it.
    (mutants.REUSE_OFFSETS_AFTER_RETENTION,
     {"await_retention", "fetch", "list_offsets", "produce_retained"}),
]  # fmt: skip


@pytest.mark.parametrize(("mutant", "rules"), CAUGHT, ids=[m for m, _ in CAUGHT])
def test_conform_local_catches_the_defect(mutant: str, rules: set[str], tmp_path: Path) -> None:
    report, target = tmp_path / "report.json", tmp_path / "target.json"
    target.write_text(json.dumps(NO_GROUPS), encoding="utf-8")
    out = kafkaref(
        "conform", "--local", "--mutant", mutant, "--examples", "40", "--seed", "1",
        "--target", str(target),
        "--shrink-budget", "1", "--report", str(report),
        "--replay-file", str(tmp_path / "replay.json"),
    )  # fmt: skip
    assert out.returncode == 1, out.stdout + out.stderr
    # How to reproduce the search (the summary wraps lines).
    assert f"--local --mutant {mutant}" in " ".join(out.stdout.split())
    divergence = json.loads(report.read_text())["divergences"][0]
    assert divergence["rule"] in rules or not rules
    if mutant == mutants.LOSE_TAIL_ON_RESTART:
        assert any(op["op"] == "restart_broker" for op in divergence["operations"])
    assert len(divergence["operations"]) <= divergence["found_length"]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_correct_broker_conforms_in_repeated_runs(seed: int, tmp_path: Path) -> None:
    report, target = tmp_path / "report.json", tmp_path / "target.json"
    target.write_text(json.dumps(NO_GROUPS), encoding="utf-8")
    out = kafkaref(
        "conform", "--local", "--examples", "15", "--seed", str(seed), "--target", str(target),
        "--report", str(report), "--replay-file", str(tmp_path / "replay.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    data = json.loads(report.read_text())
    assert data["features"]["may_kill_brokers"] == "checked"
    assert data["features"]["retention"] == "checked"
    assert {"produce_corrupt", "produce_too_large", "restart_broker"} & set(data["rules"])
    assert "await_retention" in data["rules"]


def test_the_sweep_writes_its_table_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "doc.md"
    doc.write_text(f"before\n{BEGIN}\nold table\n{END}\nafter\n", encoding="utf-8")
    rows = [
        SweepRow("(none: the correct broker)", "-", 0),
        SweepRow("fetch-off-by-one", "single broker", 1, "fetch", 1.25, 20, 3, "fetch: x|y"),
    ]
    others = [{"name": "hw-past-isr", "needs": "cluster", "caught_by": "a test"}]
    write_docs(doc, table(rows, others, 60))
    text = doc.read_text(encoding="utf-8")
    assert text.startswith("before\n") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text
    assert (
        "| `fetch-off-by-one` | single broker | 1 | fetch | 1.2 s | 20 | 3 | fetch: x/y |" in text
    )
    assert "| `hw-past-isr` | cluster | a test |" in text
    assert all(r.ok for r in rows)
