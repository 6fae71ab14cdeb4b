"""The broker launcher: start on a free port, readiness, kill -9, clean stop, restart on the
same address and data, and a clear error (with the broker's stderr) when a broker dies or
never becomes ready."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from harness.launcher import BrokerProcess, BrokerStartError, start_broker, write_properties

pytestmark = pytest.mark.timeout(120)


def connects(broker: BrokerProcess) -> bool:
    try:
        with socket.create_connection((broker.host, broker.port), timeout=2):
            return True
    except OSError:
        return False


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_start_kill_restart_stop(tmp_path: Path) -> None:
    with start_broker(7, work_dir=tmp_path) as broker:
        assert broker.alive()
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        assert connects(broker)
        assert broker.data_dir == tmp_path / "data-7"
        assert broker.data_dir.is_dir()
        first = broker.pid

        broker.kill()
        assert not broker.alive()
        assert not pid_running(first)
        assert not connects(broker)

        broker.restart()
        assert broker.pid != first
        assert connects(broker)

        assert broker.stop() == 0, broker.stderr_tail()
        assert not broker.alive()
        assert not connects(broker)

        broker.restart()  # after a clean stop too
        assert broker.alive()
    assert not broker.alive()


def test_restart_of_a_running_broker_stops_it_first(tmp_path: Path) -> None:
    with start_broker(1, work_dir=tmp_path) as broker:
        first = broker.pid
        broker.restart()
        assert not pid_running(first)
        assert broker.alive()


def test_a_given_data_dir_and_config_are_used(tmp_path: Path) -> None:
    data = tmp_path / "mydata"
    with start_broker(
        2, work_dir=tmp_path / "w", data_dir=data, config={"num.partitions": 3}
    ) as broker:
        assert broker.data_dir == data
        assert broker.config_file is not None
        assert broker.config_file.read_text() == "num.partitions=3\n"
        assert ["--config", str(broker.config_file)] == broker.argv()[-2:]
    assert data.is_dir()


def test_temporary_work_dir_is_removed_on_close() -> None:
    broker = start_broker(3)
    work = broker.work_dir
    assert work.is_dir()
    broker.close()
    assert not work.exists()


def test_a_broker_that_dies_reports_its_stderr(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('no such log dir, giving up\\n'); sys.exit(3)"
    with pytest.raises(BrokerStartError) as failed:
        start_broker(1, work_dir=tmp_path, command=(sys.executable, "-c", script))
    message = str(failed.value)
    assert "exited with status 3" in message
    assert "no such log dir, giving up" in message


def test_a_broker_that_never_announces_itself_times_out(tmp_path: Path) -> None:
    script = "import sys; import signal; signal.pause()"
    with pytest.raises(BrokerStartError) as failed:
        start_broker(1, work_dir=tmp_path, command=(sys.executable, "-c", script), timeout=1.0)
    assert "did not announce itself" in str(failed.value)


def test_a_bad_option_for_the_real_broker_is_reported(tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError) as failed:
        start_broker(1, work_dir=tmp_path, extra_args=("--no-such-option",))
    assert "--no-such-option" in str(failed.value)


def test_properties_file_format(tmp_path: Path) -> None:
    path = write_properties(
        tmp_path / "p.properties", {"log.segment.bytes": 1024, "auto.create.topics.enable": False}
    )
    assert path.read_text() == "log.segment.bytes=1024\nauto.create.topics.enable=false\n"
    with pytest.raises(ValueError):
        write_properties(tmp_path / "bad", {"a": "b\nc=d"})


def test_a_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(BrokerStartError) as failed:
            start_broker(1, work_dir=tmp_path, port=port)
    assert "address already in use" in failed.value.stderr.lower()  # start_broker retries on it
