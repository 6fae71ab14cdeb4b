"""Fixtures for the broker tests: a broker subprocess on a free port with its data
directory in tmp_path, ready once it answers ApiVersions (polled with a deadline)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from kio.schema.api_versions.v3.request import ApiVersionsRequest

from tests.impl.wire_client import WireClient

READY_DEADLINE_S = 30.0
STOP_DEADLINE_S = 20.0
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class BrokerProcess:
    """A broker subprocess and where to reach it."""

    def __init__(
        self, tmp: Path, broker_id: int = 1, properties: Mapping[str, str] | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.broker_id = broker_id
        self.data_dir = tmp / "data"
        self.stderr_path = tmp / "broker.stderr"
        self.stdout_path = tmp / "broker.stdout"
        args = [
            sys.executable,
            "-m",
            "impl.broker",
            "--id",
            str(broker_id),
            "--listen",
            f"{self.host}:{self.port}",
            "--data-dir",
            str(self.data_dir),
        ]
        if properties:
            config = tmp / "server.properties"
            config.write_text("".join(f"{k}={v}\n" for k, v in properties.items()))
            args += ["--config", str(config)]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(args, cwd=REPO, stdout=out, stderr=err)
        self._wait_ready()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def client(self) -> WireClient:
        return WireClient(self.host, self.port)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                with WireClient(self.host, self.port, timeout_s=2.0) as client:
                    client.request(
                        ApiVersionsRequest(client_software_name="t", client_software_version="1")
                    )
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"broker not ready in time:\n{self.stderr()}") from None
                time.sleep(0.05)  # poll interval of the readiness check, not a synchronisation

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=STOP_DEADLINE_S)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_DEADLINE_S)


StartBroker = Callable[..., BrokerProcess]


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[StartBroker]:
    """A factory: ``start_broker(properties={...})`` starts a broker in tmp_path."""
    started: list[BrokerProcess] = []

    def start(properties: Mapping[str, str] | None = None, broker_id: int = 1) -> BrokerProcess:
        broker = BrokerProcess(tmp_path, broker_id, properties)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.kill()


@pytest.fixture
def broker(start_broker: StartBroker) -> BrokerProcess:
    """A broker with Kafka's default configuration."""
    return start_broker()
