"""Durable whole-file replacement: the one way the broker rewrites a small state file
(checkpoints, the topic registry, the producer id block)."""

from __future__ import annotations

import os
from pathlib import Path


def replace_atomically(path: str | Path, data: bytes) -> None:
    """Make ``path`` hold ``data``, all or nothing across a crash: write a temporary file,
    fsync it, rename it over ``path``, and fsync the directory so the rename survives."""
    path = os.fspath(path)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
