"""Fixtures of the chaos tests: a Docker connection and the project image.

The tests that need Docker are skipped, with the reason, only where no Docker engine
answers (or the image cannot be built here for want of debootstrap or root); with
``KAFKAREF_REQUIRE_DOCKER=1`` (set by .ci/run, since CI has Docker) they fail instead,
so CI can never pass by skipping them.  The image is built once per session (and
reused: ``.ci/run`` has built it before the tests run).
"""

from __future__ import annotations

import os
import time
from typing import Any, NoReturn

import pytest

from chaos import docker_util as du
from chaos.image import ensure_images
from chaos.image_base import BuildError, PrerequisiteMissingError

REQUIRE_ENV = "KAFKAREF_REQUIRE_DOCKER"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail where Docker is required (CI)."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} (and {REQUIRE_ENV}=1: the chaos tests must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Any:
    """A Docker client; the test is skipped when no engine answers."""
    try:
        return du.connect()
    except du.DockerUnavailableError as exc:
        unavailable(f"Docker is not available: {exc}")


@pytest.fixture(scope="session")
def project_image(docker_client: Any) -> str:
    """The project image's tag, built (or found) once per session."""
    started = time.monotonic()
    try:
        tag = ensure_images(docker_client, lambda m: print(f"chaos build: {m}"))
    except PrerequisiteMissingError as exc:
        unavailable(f"the chaos image cannot be built here: {exc}")
    except BuildError as exc:
        pytest.fail(f"building the chaos image failed: {exc}")
    print(f"chaos build: {tag} in {time.monotonic() - started:.1f}s")
    return tag
