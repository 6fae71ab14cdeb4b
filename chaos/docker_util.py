"""The Docker engine as chaos uses it: a connection, labels, ownership, and the sweep.

Everything chaos creates in Docker (containers, networks) carries two labels:

* ``kafkaref.chaos`` = the run id (one cluster's resources share it);
* ``kafkaref.chaos.owner`` = ``HOST/PID/START`` of the process that made it, where START
  is the process's start time in clock ticks since boot (``/proc/PID/stat`` field 22),
  so that a recycled pid is never mistaken for the owner.

A run removes what it made when it ends.  When the harness itself crashes (SIGKILL, an
OOM kill, a power cut of the terminal) nothing runs at its end, so :func:`sweep` removes
the labelled resources whose owner process is gone; every new cluster sweeps first, and
``kafkaref chaos clean`` sweeps on demand (``--all`` also removes live runs' resources).

The ``docker`` SDK is optional (the ``chaos`` extra): it is imported only here, when a
connection is asked for, and its absence is reported as :class:`DockerUnavailableError`.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

__all__ = [
    "LABEL_OWNER",
    "LABEL_ROLE",
    "LABEL_RUN",
    "DockerUnavailableError",
    "Swept",
    "connect",
    "labelled",
    "new_run_id",
    "owner_alive",
    "owner_token",
    "quiet",
    "sweep",
    "tar_of_files",
]

LABEL_RUN = "kafkaref.chaos"
LABEL_OWNER = "kafkaref.chaos.owner"
LABEL_ROLE = "kafkaref.chaos.role"

Progress = Callable[[str], None]


class DockerUnavailableError(RuntimeError):
    """No usable Docker engine: the SDK is not installed or the daemon does not answer."""


def connect(timeout_s: float = 60.0) -> Any:
    """A ``docker.DockerClient`` for the engine in the environment (DOCKER_HOST or the
    local socket), with the API version negotiated; DockerUnavailableError if there is none."""
    try:
        import docker  # noqa: PLC0415 - optional dependency, imported on demand
        from docker.errors import DockerException  # noqa: PLC0415
    except ImportError as exc:
        raise DockerUnavailableError(
            "the Python package `docker` is not installed: pip install -e '.[chaos]'"
        ) from exc
    try:
        client = docker.from_env(version="auto", timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        raise DockerUnavailableError(f"no Docker engine answers ({exc})") from exc
    return client


def new_run_id() -> str:
    """A fresh run id: the time (for sorting by eye) and random hex (for uniqueness)."""
    return time.strftime("%Y%m%d%H%M%S") + "-" + os.urandom(3).hex()


def _start_ticks(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None  # field 22 of the whole line


def owner_token(pid: int | None = None) -> str:
    """``HOST/PID/START`` of this process (or of ``pid``): the owner label's value."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}/{pid}/{_start_ticks(pid) or '?'}"


def owner_alive(token: str) -> bool:
    """Whether the process named by an owner label still runs.  A token from another host
    (or one that cannot be parsed) counts as alive: this machine cannot tell."""
    try:
        host, pid_text, ticks = token.split("/")
        pid = int(pid_text)
    except ValueError:
        return True
    if host != socket.gethostname():
        return True
    current = _start_ticks(pid)
    return current is not None and ticks in ("?", current)


def labelled(run_id: str, role: str) -> dict[str, str]:
    """The labels of a resource of run ``run_id`` made by this process."""
    return {LABEL_RUN: run_id, LABEL_OWNER: owner_token(), LABEL_ROLE: role}


@attrs.define
class Swept:
    """What :func:`sweep` removed (names), and what it left because the owner runs."""

    containers: list[str] = attrs.Factory(list)
    networks: list[str] = attrs.Factory(list)
    kept_runs: set[str] = attrs.Factory(set)

    @property
    def empty(self) -> bool:
        return not self.containers and not self.networks


def quiet(_: str) -> None:
    """Progress that says nothing."""


def tar_of_files(files: Mapping[str, str]) -> bytes:
    """A tar archive of text files (by absolute path), with their directories: what
    ``container.put_archive("/", ...)`` takes to put configuration into a container."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        dirs = {str(p) for path in files for p in PurePosixPath(path).parents if str(p) != "/"}
        for d in sorted(dirs):
            info = tarfile.TarInfo(d.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sweep(
    client: Any,
    *,
    run_id: str | None = None,
    everything: bool = False,
    progress: Progress = quiet,
) -> Swept:
    """Remove chaos containers and networks: those of ``run_id`` when given (whoever owns
    them), else those whose owner process is gone, or all of them with ``everything``.
    Containers go first (a network in use cannot be removed)."""
    from docker.errors import APIError, NotFound  # noqa: PLC0415 - see connect()

    selector = f"{LABEL_RUN}={run_id}" if run_id is not None else LABEL_RUN
    swept = Swept()

    def chosen(labels: dict[str, str]) -> bool:
        if run_id is not None or everything:
            return True
        if owner_alive(labels.get(LABEL_OWNER, "")):
            swept.kept_runs.add(labels.get(LABEL_RUN, "?"))
            return False
        return True

    for container in client.containers.list(all=True, filters={"label": selector}):
        if chosen(container.labels):
            progress(f"removing container {container.name}")
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
            swept.containers.append(container.name)
    for network in client.networks.list(filters={"label": selector}):
        if chosen(network.attrs.get("Labels") or {}):
            progress(f"removing network {network.name}")
            for attempt in _attempts(10.0):
                try:
                    network.remove()
                    break
                except NotFound:
                    break
                except APIError:
                    # A container of a run swept by another process at the same time may
                    # still hold an endpoint: retry until the deadline, then give up.
                    if attempt:
                        raise
            swept.networks.append(network.name)
    return swept


def _attempts(timeout_s: float, interval_s: float = 0.2) -> Iterator[bool]:
    """Yield False until the deadline, then True once (the last attempt); a retry loop's
    polling interval between attempts."""
    deadline = time.monotonic() + timeout_s
    while True:
        last = time.monotonic() >= deadline
        yield last
        if last:
            return
        time.sleep(interval_s)  # polling interval of a retry with a deadline
