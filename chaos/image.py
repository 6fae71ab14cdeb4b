"""The project image: the base image plus kafkaref installed from a wheelhouse.

``kafkaref chaos build`` (and CI, and the chaos tests) call :func:`ensure_images`:

1. the base image (``chaos.image_base``): made once per machine with debootstrap;
2. the dependency wheelhouse: ``pip wheel`` of the project's dependencies (and
   confluent-kafka, for a client workload inside a container), pinned to the versions
   installed in the interpreter running this, for that interpreter's Python; kept in the
   cache directory under a hash of the requirements and the pins, so it is built once;
3. the project wheel: ``pip wheel`` of a copy of the checkout's sources (no network);
4. ``docker build`` of a small Dockerfile on the base: one layer makes the virtualenv
   ``/opt/kafkaref`` from the dependency wheels (Docker's build cache keeps it while the
   wheels are the same), one installs the project wheel.

The project image is tagged ``kafkaref:<version>-<hash>`` (and ``kafkaref:latest``), the
hash covering the base tag, the wheelhouse and every source file: when nothing changed
the tag exists and nothing is built at all; after a source change only the project layer
is rebuilt, in seconds.  Where a registry is reachable, ``chaos/Dockerfile`` builds the
same layout from ``python:3.11-slim`` instead (see docs/chaos.md).
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import importlib.metadata
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chaos.image_base import BuildError, cache_dir, ensure_base, image_python

__all__ = ["PROJECT_REPOSITORY", "VENV", "ensure_images", "project_root"]

PROJECT_REPOSITORY = "kafkaref"
VENV = "/opt/kafkaref"
"""The virtualenv in the image; its ``bin`` is first on PATH."""
CLIENT_REQUIREMENTS = ("confluent-kafka",)
"""Test-extra requirements that the image also carries (a client workload in a container)."""
RECIPE_VERSION = 1
KEEP_IMAGES = 5
"""How many project images (the newest) a build leaves; older unused ones are removed."""

DOCKERFILE = """\
FROM {base}
ENV PATH={venv}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /var/lib/kafkaref
LABEL kafkaref.image=project
COPY deps /tmp/wheels/deps
RUN python3 -m venv {venv} \\
 && {venv}/bin/pip install --no-index --no-cache-dir --disable-pip-version-check \\
    --find-links /tmp/wheels/deps /tmp/wheels/deps/*.whl \\
 && rm -rf /tmp/wheels
COPY project /tmp/wheels/project
RUN {venv}/bin/pip install --no-index --no-deps --no-cache-dir --disable-pip-version-check \\
    /tmp/wheels/project/*.whl \\
 && rm -rf /tmp/wheels
"""
"""The project layer's Dockerfile.  Whatever never changes comes first, and the project
wheel last, so that a source change rebuilds only the last two steps (each step costs a
layer commit, seconds on a slow storage driver)."""

Progress = Callable[[str], None]


def project_root() -> Path:
    """The checkout this module belongs to; BuildError when kafkaref is not installed from
    a source checkout (there is nothing to build the project wheel from)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / "pyproject.toml").is_file():
        raise BuildError(f"kafkaref chaos build needs a source checkout; {root} has none")
    return root


def _pyproject(root: Path) -> dict[str, Any]:
    with (root / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


# ------------------------------------------------------------------ wheelhouse


def _requirement_name(requirement: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return "" if found is None else re.sub(r"[-_.]+", "-", found.group(1)).lower()


def requirements(root: Path) -> list[str]:
    """The image's requirements: the project's dependencies plus CLIENT_REQUIREMENTS
    (with the version range the test extra gives them)."""
    project = _pyproject(root)["project"]
    wanted = list(project.get("dependencies", []))
    extras = project.get("optional-dependencies", {})
    for name in CLIENT_REQUIREMENTS:
        found = [r for r in extras.get("test", []) if _requirement_name(r) == name]
        wanted.append(found[0] if found else name)
    return wanted


def pins() -> list[str]:
    """``name==version`` of every distribution installed with this interpreter except
    kafkaref itself: the wheelhouse holds what the host runs and was tested with."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = _requirement_name(dist.metadata["Name"] or "")
        if name and name != PROJECT_REPOSITORY:
            found[name] = f"{name}=={dist.version}"
    return sorted(found.values())


def build_requirements(root: Path) -> list[str]:
    """What building the project wheel needs: pyproject's build-system requirements, and
    ``wheel`` (which setuptools before 70.1 needs for bdist_wheel)."""
    system = _pyproject(root).get("build-system", {})
    return [*system.get("requires", ["setuptools"]), "wheel"]


def ensure_wheelhouse(root: Path, progress: Progress, kind: str = "deps") -> Path:
    """A directory of wheels made with ``pip wheel`` unless the cache already has it for
    the same requirements, pins and Python: ``deps`` (the image's dependencies) or
    ``build`` (the project's build requirements, so the wheel is built offline)."""
    wanted = requirements(root) if kind == "deps" else build_requirements(root)
    pinned = pins() if kind == "deps" else []
    python = f"cp{sys.version_info[0]}{sys.version_info[1]}-{platform.machine()}"
    key = _digest("\n".join(wanted), "\n".join(pinned), python)[:16]
    home = cache_dir() / "wheels"
    target = home / f"{kind}-{key}"
    if (target / ".complete").is_file():
        progress(f"wheelhouse {target.name}: present, reused")
        return target
    progress(f"wheelhouse {target.name}: pip wheel {' '.join(wanted)}")
    home.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=home))
    try:
        constraints = work / "constraints.txt"
        constraints.write_text("\n".join(pinned) + "\n", encoding="utf-8")
        wheels = work / "wheels"
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--prefer-binary"]
        argv += ["--wheel-dir", str(wheels), "--constraint", str(constraints), *wanted]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"pip wheel failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        (wheels / ".complete").write_text("\n".join(wanted) + "\n", encoding="utf-8")
        if target.exists():  # made meanwhile by a build that did not hold the lock
            shutil.rmtree(target)
        wheels.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    remove_stale_wheelhouses(target, kind)
    progress(f"wheelhouse {target.name}: {len(list(target.glob('*.whl')))} wheels")
    return target


# ------------------------------------------------------------------ project sources


def source_files(root: Path) -> list[Path]:
    """The files the project wheel is built from (relative to ``root``), sorted."""
    config = _pyproject(root)
    patterns = config.get("tool", {}).get("setuptools", {}).get("packages", {})
    include = patterns.get("find", {}).get("include", ["*"])
    files = [Path("pyproject.toml")]
    readme = config["project"].get("readme")
    if isinstance(readme, str):
        files.append(Path(readme))
    for top in sorted(root.iterdir()):
        if not (top / "__init__.py").is_file():
            continue
        if not any(fnmatch.fnmatch(top.name, p) for p in include):
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(root))
    return files


def source_hash(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(str(rel).encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def _project_wheel(root: Path, files: list[Path], out: Path, tools: Path) -> None:
    """``pip wheel`` of a copy of the sources (so the checkout gets no build/ directory),
    offline: the isolated build environment comes from the ``tools`` wheelhouse."""
    with tempfile.TemporaryDirectory(prefix="kafkaref-src-") as tmp:
        src = Path(tmp)
        for rel in files:
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, src / rel)
        argv = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        argv += ["--no-index", "--find-links", str(tools), "--wheel-dir", str(out), str(src)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BuildError(f"building the project wheel failed:\n{done.stderr[-3000:]}")


# ------------------------------------------------------------------ docker build


def _docker_build(client: Any, context: Path, tag: str, progress: Progress) -> None:
    """``docker build`` of ``context`` (legacy builder: it uses the local base image and
    never pulls), streaming the steps as progress; BuildError with the output's tail."""
    from docker.errors import APIError  # noqa: PLC0415 - optional dependency

    lines: list[str] = []
    try:
        for chunk in client.api.build(
            path=str(context), tag=tag, rm=True, forcerm=True, pull=False, decode=True
        ):
            if "error" in chunk:
                tail = "".join(lines[-30:])
                raise BuildError(f"docker build of {tag} failed: {chunk['error']}\n{tail}")
            text = str(chunk.get("stream", ""))
            lines.append(text)
            for line in text.splitlines():
                if line.startswith("Step ") or "Using cache" in line:
                    progress(f"docker build: {line.strip()}")
    except APIError as exc:
        raise BuildError(f"docker build of {tag} failed: {exc}") from exc


def _prune_old(client: Any, progress: Progress) -> None:
    """Remove project images beyond the KEEP_IMAGES newest that no container uses (best
    effort; they differ from each other by a few megabytes, the base layers are shared).
    A few are kept so that a session still using an older one (while the checkout
    changed under it) does not lose it."""
    from docker.errors import APIError  # noqa: PLC0415

    images = [
        image
        for image in client.images.list(name=PROJECT_REPOSITORY)
        if any(t.startswith(f"{PROJECT_REPOSITORY}:") for t in image.tags)
    ]
    images.sort(key=lambda image: str(image.attrs.get("Created", "")), reverse=True)
    for image in images[KEEP_IMAGES:]:
        for tag in image.tags:
            with contextlib.suppress(APIError):
                client.images.remove(tag, noprune=False)
                progress(f"removed old image {tag}")


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """One build at a time on this machine (CI's and a test's, say)."""
    with (cache_dir() / "build.lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _host_python() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def ensure_images(client: Any, progress: Progress) -> str:
    """The project image's tag, building what is missing (base, wheelhouse, project)."""
    from docker.errors import ImageNotFound  # noqa: PLC0415

    root = project_root()
    with _build_lock():
        base = ensure_base(client, progress)
        if image_python(client, base) not in (None, _host_python()):
            raise BuildError(
                f"{base} has Python {image_python(client, base)}, but the wheelhouse is built "
                f"with this interpreter's Python {_host_python()}: run kafkaref with a "
                f"{image_python(client, base)} virtualenv"
            )
        deps = ensure_wheelhouse(root, progress)
        tools = ensure_wheelhouse(root, progress, "build")
        files = source_files(root)
        version = str(_pyproject(root)["project"]["version"])
        dockerfile = DOCKERFILE.format(base=base, venv=VENV)
        key = _digest(str(RECIPE_VERSION), base, deps.name, dockerfile, source_hash(root, files))
        tag = f"{PROJECT_REPOSITORY}:{version}-{key[:12]}"
        try:
            client.images.get(tag)
        except ImageNotFound:
            pass
        else:
            progress(f"project image {tag}: present, reused")
            client.images.get(tag).tag(PROJECT_REPOSITORY, "latest")
            return tag
        progress(f"project image {tag}: building ({len(files)} source files)")
        with tempfile.TemporaryDirectory(prefix="kafkaref-image-") as tmp:
            context = Path(tmp)
            shutil.copytree(deps, context / "deps", ignore=shutil.ignore_patterns(".complete"))
            _project_wheel(root, files, context / "project", tools)
            (context / "Dockerfile").write_text(dockerfile, encoding="utf-8")
            _docker_build(client, context, tag, progress)
        client.images.get(tag).tag(PROJECT_REPOSITORY, "latest")
        _prune_old(client, progress)
        progress(f"project image {tag}: built")
        return tag


def remove_stale_wheelhouses(keep: Path, kind: str) -> None:
    """Delete cached wheelhouses of ``kind`` other than ``keep`` (made for older pins)."""
    for path in (cache_dir() / "wheels").glob(f"{kind}-*"):
        if path != keep:
            shutil.rmtree(path, ignore_errors=True)
