"""``kafkaref explore`` run for real, as a subprocess: exit status, report and errors."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

from harness.explore_progress import PlainProgress
from spec.invariants import INVARIANTS
from spec.variants import Variant

SMALL = ["--brokers", "2", "--records", "1", "--crashes", "1"]


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
        timeout=120,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_help_lists_the_explore_command() -> None:
    out = kafkaref("--help")
    assert out.returncode == 0
    assert "explore" in out.stdout


def test_correct_model_exits_0_with_the_figures() -> None:
    out = kafkaref("explore", *SMALL)
    assert out.returncode == 0, out.stdout + out.stderr
    for label in ("States explored", "Transitions", "Depth", "Seconds", "States per second"):
        assert re.search(rf"^{label} +[\d,.]+$", out.stdout, re.MULTILINE), label
    assert "2 brokers" in out.stdout
    assert "No invariant violated" in out.stdout
    assert "not exhaustive" not in out.stdout
    assert "Traceback" not in out.stderr


def test_known_bad_variant_exits_1_with_a_shortest_trace() -> None:
    out = kafkaref("explore", "--variant", "ack-before-isr", "--brokers", "3", *SMALL[2:])
    assert out.returncode == 1, out.stdout + out.stderr
    found = re.search(r"^Invariant (\w+) violated$", out.stdout, re.MULTILINE)
    assert found is not None and found.group(1) in INVARIANTS
    steps = re.findall(r"^ +\d+\. (.+)$", out.stdout, re.MULTILINE)
    assert any("crashes" in s for s in steps)
    assert "-> acks=all answered: offset 0 of t-0" in out.stdout
    assert "Final state:" in out.stdout
    assert re.search(r"broker 0 +down", out.stdout)
    assert "Variants: ack-before-isr" in out.stdout


def test_unknown_variant_exits_2_listing_the_valid_names() -> None:
    out = kafkaref("explore", "--variant", "no-such-variant")
    assert out.returncode == 2
    assert "no-such-variant" in out.stderr
    for v in Variant:
        assert v.value in out.stderr
    assert "Traceback" not in out.stderr


def test_non_positive_bounds_exit_2() -> None:
    for args in (["--brokers", "0"], ["--partitions", "0"], ["--crashes", "-1"]):
        out = kafkaref("explore", *args)
        assert out.returncode == 2, args
        assert "Traceback" not in out.stderr


def test_replication_factor_above_brokers_exits_2() -> None:
    out = kafkaref("explore", "--brokers", "2", "--replication-factor", "3")
    assert out.returncode == 2
    assert "replication factor 3" in out.stderr
    assert "Traceback" not in out.stderr


def test_max_states_says_the_search_is_not_exhaustive() -> None:
    out = kafkaref("explore", *SMALL, "--max-states", "20")
    assert out.returncode == 0
    assert "NOT exhaustive" in out.stdout
    assert re.search(r"^States explored +20$", out.stdout, re.MULTILINE)


def test_plain_progress_prints_every_ten_seconds() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream)
    for seconds in (1.0, 5.0, 10.5, 15.0, 20.0, 21.0):
        progress(100, 3, seconds)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "100 states explored, depth 3" in lines[0]
