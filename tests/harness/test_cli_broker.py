"""``kafkaref broker`` run for real: its help, its errors for bad options, and that it
becomes the broker process itself (same pid), which a SIGTERM stops cleanly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.launcher import start_broker
from tests.harness.test_cli_explore import kafkaref

pytestmark = pytest.mark.timeout(120)


def kafkaref_command() -> tuple[str, ...]:
    """How ``kafkaref`` itself is run (the console script, or its entry point)."""
    script = Path(sys.executable).with_name("kafkaref")
    if script.exists():
        return (str(script), "broker")
    return (sys.executable, "-c", "from harness.cli import main; main()", "broker")


def test_help_lists_the_broker_command() -> None:
    out = kafkaref("--help")
    assert out.returncode == 0
    assert "broker" in out.stdout


def test_broker_help_documents_every_option() -> None:
    out = kafkaref("broker", "--help")
    assert out.returncode == 0, out.stderr
    for option in ("--id", "--listen", "--data-dir", "--config"):
        assert option in out.stdout
    for words in ("HOST:PORT", "log.dirs", ".properties", "listening on"):
        assert words in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bogus"], "No such option: --bogus"),
        (["--listen", "127.0.0.1:9092", "--data-dir", "d"], "Missing option '--id'"),
        (["--id", "1", "--data-dir", "d"], "Missing option '--listen'"),
        (["--id", "1", "--listen", "127.0.0.1:1"], "Missing option '--data-dir'"),
        (["--id", "x", "--listen", "h:1", "--data-dir", "d"], "Invalid value for '--id'"),
        (["--id", "1", "--listen", "nohost", "--data-dir", "d"], "expected HOST:PORT"),
        (["--id", "1", "--listen", "h:99999", "--data-dir", "d"], "expected HOST:PORT"),
        (
            ["--id", "1", "--listen", "h:1", "--data-dir", "d", "--config", "/no/such/file"],
            "does not exist",
        ),
    ],
)
def test_bad_options_exit_2_with_a_clear_message(args: list[str], message: str) -> None:
    out = kafkaref("broker", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr


def test_kafkaref_broker_becomes_the_broker(tmp_path: Path) -> None:
    with start_broker(
        4, work_dir=tmp_path, command=kafkaref_command(), config={"num.partitions": 2}
    ) as broker:
        cmdline = Path(f"/proc/{broker.pid}/cmdline").read_bytes().split(b"\0")
        assert b"impl.broker" in cmdline, cmdline
        assert b"--config" in cmdline
        assert broker.stop() == 0, broker.stderr_tail()
