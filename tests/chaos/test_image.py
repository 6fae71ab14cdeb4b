"""``kafkaref chaos build`` on this machine's Docker: the images are built without a
registry, a second build reuses everything, the image runs the broker's and ZooKeeper's
software, and the command exits 2 with a clear message where it cannot run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chaos import docker_util as du
from chaos import image

CLI = [sys.executable, "-c", "from harness.cli import main; main()"]


def test_second_build_reuses_every_part(
    docker_client: Any, project_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built from a snapshot of the checkout, so that an edit made meanwhile (by a person
    # working in it) cannot change the sources between the two builds.
    root = image.project_root()
    snapshot = tmp_path / "checkout"
    for rel in image.source_files(root):
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, snapshot / rel)
    monkeypatch.setattr(image, "project_root", lambda: snapshot)
    first = image.ensure_images(docker_client, print)
    said: list[str] = []
    assert image.ensure_images(docker_client, said.append) == first
    reused = [m for m in said if m.endswith("present, reused")]
    assert [m.split()[0] for m in reused] == ["base", "wheelhouse", "wheelhouse", "project"]
    assert first in docker_client.images.get("kafkaref:latest").tags


def test_image_has_python_java_zookeeper_iptables_and_the_project(
    docker_client: Any, project_image: str
) -> None:
    script = (
        "set -e; python -c 'import sys, impl.broker, harness.cli, chaos, kio, crc32c, kazoo, "
        "confluent_kafka; print(sys.version_info[:2])'; "
        "java -version 2>&1 | head -n 1; test -f /usr/share/java/zookeeper.jar; "
        "iptables --version; command -v python"
    )
    output = docker_client.containers.run(
        project_image,
        ["sh", "-c", script],
        remove=True,
        network_mode="none",
        labels=du.labelled(du.new_run_id(), "probe"),
    ).decode()
    assert "(3, 11)" in output
    assert "openjdk" in output
    assert "iptables v" in output
    assert output.strip().endswith("/opt/kafkaref/bin/python")


def build(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``kafkaref chaos build`` in a child process with ``env``."""
    argv = [*CLI, "chaos", "build"]
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


def test_build_without_docker_exits_2() -> None:
    done = build({**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 2, done.stderr
    assert "no Docker engine answers" in done.stderr


def test_build_without_debootstrap_exits_2(docker_client: Any) -> None:
    done = build(
        {
            **os.environ,
            "KAFKAREF_DEBOOTSTRAP": "no-such-debootstrap",
            "KAFKAREF_DEBIAN_SUITE": "kafkaref-test-absent",  # a base image that is not there
        }
    )
    assert done.returncode == 2, done.stderr
    assert "no-such-debootstrap is not installed: apt-get install debootstrap" in done.stderr
