"""What the consumer-group tests share besides the wire (``group_wire``): group members
run as subprocesses (``tests/interop/group_member.py``) so that a SIGKILL is a real
crash (no LeaveGroup, no last commit), and a producer that rides out a failover.
Every wait is on a condition with a deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import attrs
import confluent_kafka

from tests.interop.group_wire import DEADLINE_S, SESSION_TIMEOUT_MS, wait_for

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT_INTERVAL_MS = 500

# ---------------------------------------------------------------- producing


class ValuesProducer:
    """One idempotent acks=all confluent-kafka producer for a whole test, riding out
    leader failovers (one for the whole test: fewer connections and producer ids)."""

    def __init__(self, bootstrap: str, timeout: float = DEADLINE_S) -> None:
        self.timeout = timeout
        self.producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.timeout.ms": int(timeout * 1000),
                "topic.metadata.refresh.interval.ms": 1000,
                "log_level": 3,
            }
        )

    def send(self, topic: str, values: Mapping[int, Sequence[bytes]]) -> dict[int, list[int]]:
        """Produce ``{partition: values}``; ``{partition: acknowledged offsets}`` in the
        order the values were given.  Fails on any error or unacknowledged record."""
        acked: dict[bytes, int] = {}
        errors: list[str] = []

        def report(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                acked[msg.value() or b""] = msg.offset() or 0

        for partition, vs in values.items():
            for v in vs:
                self.producer.produce(topic, v, partition=partition, on_delivery=report)
                self.producer.poll(0)
        left = self.producer.flush(self.timeout + 5)
        assert left == 0, f"{left} records neither acknowledged nor failed"
        assert not errors, errors[:5]
        return {p: [acked[v] for v in vs] for p, vs in values.items()}


# ---------------------------------------------------------------- member processes


@attrs.define(eq=False)
class Member:
    """A group member in its own process (``python -m tests.interop.group_member``).

    Its events (JSON lines on its stdout) are collected by a thread: ``assignment``
    (the full current assignment, after each change), ``record`` (a record processed),
    ``batch``, ``committed``, ``commit_failed``, ``holding``, ``closed``."""

    name: str
    process: subprocess.Popen[bytes]
    stderr_path: Path
    events: list[dict[str, Any]] = attrs.Factory(list)
    lock: threading.Lock = attrs.Factory(threading.Lock)
    reader: threading.Thread | None = None

    @classmethod
    def start(
        cls,
        work_dir: Path,
        name: str,
        *,
        client: str,
        bootstrap: str,
        group: str,
        topic: str,
        commit: str = "after",
        batch: int = 1,
        full_batches: bool = False,
        hold_at: int | None = None,
        session_timeout_ms: int = SESSION_TIMEOUT_MS,
    ) -> Member:
        argv = [
            sys.executable,
            "-m",
            "tests.interop.group_member",
            f"--client={client}",
            f"--bootstrap={bootstrap}",
            f"--group={group}",
            f"--topic={topic}",
            f"--name={name}",
            f"--commit={commit}",
            f"--batch={batch}",
            f"--session-timeout-ms={session_timeout_ms}",
            f"--heartbeat-interval-ms={HEARTBEAT_INTERVAL_MS}",
        ]
        if hold_at is not None:
            argv.append(f"--hold-at={hold_at}")
        if full_batches:
            argv.append("--full-batches")
        work_dir.mkdir(parents=True, exist_ok=True)
        stderr_path = work_dir / f"member-{name}.stderr"
        with stderr_path.open("wb") as err:
            process = subprocess.Popen(
                argv,
                cwd=REPO,
                stdin=subprocess.PIPE,  # never written: a member "holding" blocks on it
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        member = cls(name, process, stderr_path)
        member.reader = threading.Thread(target=member._read, name=f"member-{name}", daemon=True)
        member.reader.start()
        return member

    def _read(self) -> None:
        stdout: IO[bytes] | None = self.process.stdout
        assert stdout is not None
        for line in stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                self.events.append(event)

    def snapshot(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if kind is None or e["event"] == kind]

    def assignment(self) -> frozenset[int] | None:
        """The member's latest reported assignment (None before the first)."""
        got = self.snapshot("assignment")
        return frozenset(got[-1]["partitions"]) if got else None

    def records(self) -> list[tuple[int, int, str]]:
        """(partition, offset, value) of every record processed, in order."""
        return [(e["partition"], e["offset"], e["value"]) for e in self.snapshot("record")]

    def committed(self) -> dict[int, int]:
        """The highest offset this member had acknowledged as committed, per partition."""
        out: dict[int, int] = {}
        for e in self.snapshot("committed"):
            for p, o in e["offsets"].items():
                out[int(p)] = max(out.get(int(p), -1), o)
        return out

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(
        self, probe: Callable[[Member], T | None], what: str, timeout: float = DEADLINE_S
    ) -> T:
        """Wait until ``probe(self)`` is truthy; fail at the deadline (or if the member
        died) with its stderr."""

        def check() -> T | None:
            value = probe(self)
            if not value and not self.alive():
                raise AssertionError(
                    f"member {self.name} exited ({self.process.returncode}) while waiting "
                    f"for {what}; stderr:\n{self.stderr()}"
                )
            return value

        return wait_for(
            check, lambda: f"{what} (member {self.name}; stderr:\n{self.stderr()})", timeout
        )

    def kill(self) -> None:
        """SIGKILL: the member vanishes without LeaveGroup or a last commit."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self._join()

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM: the member closes its consumer (LeaveGroup) and exits."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        self._join()
        return code

    def _join(self) -> None:
        if self.reader is not None:
            self.reader.join(10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def members_cleanup() -> Iterator[list[Member]]:
    """A list to put started members in; every one still running is killed at the end,
    and the stderr of each is printed (pytest shows it for a failed test)."""
    started: list[Member] = []
    try:
        yield started
    finally:
        for m in started:
            with contextlib.suppress(Exception):
                m.kill()
            print(f"--- member {m.name} stderr ---\n{m.stderr()}")
