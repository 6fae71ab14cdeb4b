"""Start, stop, kill and restart a kafkaref broker as an operating-system process.

This module owns the life cycle of one broker process on this machine: the command line
(``python -m impl.broker --id N --listen HOST:PORT --data-dir DIR [--config FILE]``, or any
other command prefix that takes the same options, such as ``kafkaref broker``), a free
port, a fresh data directory (or a given one, to restart on the same data), a Java
``.properties`` file for the broker's Kafka settings, and readiness: the broker has
printed ``kafkaref broker N listening on HOST:PORT`` AND accepts a TCP connection there,
both within a deadline.  When the broker dies or misses the deadline the error carries
the tail of its standard error.

The harness never imports the broker: everything here goes through the command line, so
the same launcher drives any broker that keeps that contract.  A cluster (issue 4) is a
set of :class:`BrokerProcess` sharing a work directory, each with ``extra_args`` (such
as a ZooKeeper address) and its own id, port and data directory.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import attrs

__all__ = [
    "DEFAULT_COMMAND",
    "READY_LINE",
    "BrokerProcess",
    "BrokerStartError",
    "free_port",
    "start_broker",
    "write_properties",
]

DEFAULT_COMMAND: tuple[str, ...] = (sys.executable, "-m", "impl.broker")
"""How a broker is started: the command before ``--id ... --listen ... --data-dir ...``."""

READY_LINE = re.compile(r"^kafkaref broker (-?\d+) listening on (\S+):(\d+)\s*$", re.MULTILINE)
"""What the broker prints on standard output once it accepts connections."""

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
_POLL_S = 0.02
_TAIL_LINES = 40
_PORT_ATTEMPTS = 3
_ADDRESS_IN_USE = "address already in use"  # EADDRINUSE, in the broker's stderr (any case)

_running: weakref.WeakSet[BrokerProcess] = weakref.WeakSet()


class BrokerStartError(RuntimeError):
    """The broker exited, or was not ready before the deadline; the message has its stderr."""

    def __init__(self, message: str, stderr: str = "") -> None:
        super().__init__(f"{message}; its stderr ends with:\n{stderr}" if stderr else message)
        self.stderr = stderr


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def write_properties(path: Path, properties: Mapping[str, object]) -> Path:
    """Write ``properties`` as a Java ``.properties`` file (``key=value`` lines) to ``path``."""
    lines = []
    for key, value in properties.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in key or "\n" in text or "=" in key:
            raise ValueError(f"cannot write property {key!r}={text!r} on one line")
        lines.append(f"{key}={text}\n")
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _can_connect(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int, offset: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@attrs.define(eq=False)
class BrokerProcess:
    """One broker: its identity, address, files, and the OS process while it runs.

    ``port`` is fixed when the handle is made, so a restarted broker comes back at the
    same address with the same data directory, as a restarted Kafka broker does.
    """

    broker_id: int
    host: str
    port: int
    data_dir: Path
    work_dir: Path
    config_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    command: tuple[str, ...] = DEFAULT_COMMAND
    env: Mapping[str, str] | None = None
    owns_work_dir: bool = False
    process: subprocess.Popen[bytes] | None = None
    stderr_offset: int = 0

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT``, what a client's ``bootstrap.servers`` takes."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The process id of the running broker."""
        if self.process is None:
            raise RuntimeError(f"broker {self.broker_id} is not running")
        return self.process.pid

    @property
    def stdout_path(self) -> Path:
        return self.work_dir / f"broker-{self.broker_id}.stdout"

    @property
    def stderr_path(self) -> Path:
        return self.work_dir / f"broker-{self.broker_id}.stderr"

    def argv(self) -> list[str]:
        """The broker's full command line."""
        args = [
            *self.command,
            "--id",
            str(self.broker_id),
            "--listen",
            self.bootstrap,
            "--data-dir",
            str(self.data_dir),
        ]
        if self.config_file is not None:
            args += ["--config", str(self.config_file)]
        return [*args, *self.extra_args]

    def alive(self) -> bool:
        """True while the broker process runs."""
        return self.process is not None and self.process.poll() is None

    def stderr_tail(self, lines: int = _TAIL_LINES, *, all_runs: bool = False) -> str:
        """The last ``lines`` lines the broker wrote to standard error (in its latest run)."""
        return _tail(self.stderr_path, lines, 0 if all_runs else self.stderr_offset)

    def start(self, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        """Start the broker and wait until it is ready; raise BrokerStartError if it is not."""
        if self.alive():
            raise RuntimeError(f"broker {self.broker_id} is already running (pid {self.pid})")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # stderr accumulates over restarts (what a crashed run said stays readable);
        # stdout is this run's only, so an old ready line is never taken for a new one.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("ab") as err:
            self.stderr_offset = err.tell()
            self.process = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=None if self.env is None else dict(self.env),
                start_new_session=True,  # a Ctrl-C of the harness is not the broker's
            )
        _running.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._reap(signal.SIGKILL)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            if not announced:
                announced = self._announced()
            if announced and _can_connect(self.host, self.port):
                return
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"broker {self.broker_id} exited with status {code} before it was ready "
                    f"({' '.join(self.argv())})",
                    self.stderr_tail(),
                )
            if time.monotonic() >= deadline:
                what = "did not accept a connection" if announced else "did not announce itself"
                raise BrokerStartError(
                    f"broker {self.broker_id} {what} on {self.bootstrap} within {timeout}s "
                    f"({' '.join(self.argv())})",
                    self.stderr_tail(),
                )
            time.sleep(_POLL_S)

    def _announced(self) -> bool:
        try:
            text = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return False
        for found in READY_LINE.finditer(text):
            broker_id, port = int(found.group(1)), int(found.group(3))
            if broker_id != self.broker_id or port != self.port:
                raise BrokerStartError(
                    f"broker {self.broker_id} announced {found.group(0)!r}, "
                    f"expected broker {self.broker_id} on port {self.port}"
                )
            return True
        return False

    def _reap(self, sig: signal.Signals, timeout: float = STOP_TIMEOUT_S) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(sig)
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        finally:
            _running.discard(self)
        self.process = None
        return code

    def kill(self) -> None:
        """SIGKILL the broker (a crash: nothing is flushed or closed) and reap it."""
        self._reap(signal.SIGKILL)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM the broker (a clean shutdown) and wait for it; its exit status.

        If it has not exited within ``timeout`` it is killed and TimeoutError is raised.
        None when it was not running.
        """
        try:
            return self._reap(signal.SIGTERM, timeout)
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(
                f"broker {self.broker_id} did not stop within {timeout}s of SIGTERM (killed); "
                f"its stderr ends with:\n{self.stderr_tail()}"
            ) from exc

    def restart(self, timeout: float = START_TIMEOUT_S) -> BrokerProcess:
        """Start the broker again on the same port and data directory.

        A running broker is stopped cleanly first; :meth:`kill` before this for a crash.
        """
        if self.alive():
            self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Kill the broker if it runs, and delete the work directory if this handle made it."""
        if self.process is not None:
            self.kill()
        if self.owns_work_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> BrokerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_broker(
    broker_id: int = 0,
    *,
    data_dir: Path | None = None,
    work_dir: Path | None = None,
    config: Mapping[str, object] | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra_args: Sequence[str] = (),
    command: Sequence[str] = DEFAULT_COMMAND,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> BrokerProcess:
    """Start a broker and return its handle once it is ready.

    ``work_dir`` holds its output files and ``broker-N.properties`` (from ``config``, Kafka
    property names); without one a temporary directory is made and deleted by ``close()``.
    ``data_dir`` defaults to ``work_dir/data-N``; pass an existing one to start on old data.
    ``port`` defaults to a free one.
    """
    owns = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="kafkaref-broker-")) if work_dir is None else work_dir
    work.mkdir(parents=True, exist_ok=True)
    config_file = None
    if config is not None:
        config_file = write_properties(work / f"broker-{broker_id}.properties", config)
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        broker = BrokerProcess(
            broker_id=broker_id,
            host=host,
            port=free_port(host) if port is None else port,
            data_dir=work / f"data-{broker_id}" if data_dir is None else data_dir,
            work_dir=work,
            config_file=config_file,
            extra_args=tuple(extra_args),
            command=tuple(command),
            env=env,
            owns_work_dir=owns,
        )
        try:
            return broker.start(timeout)
        except BrokerStartError as exc:
            # Another process may take the free port before the broker binds it.
            if port is None and attempt < _PORT_ATTEMPTS and _ADDRESS_IN_USE in exc.stderr.lower():
                continue
            broker.close()
            raise
        except BaseException:
            broker.close()
            raise
    raise AssertionError("unreachable")  # pragma: no cover


@atexit.register
def _kill_leftovers() -> None:
    """Never leave a broker running after the harness's own process exits."""
    for broker in list(_running):
        with contextlib.suppress(Exception):
            broker.kill()
