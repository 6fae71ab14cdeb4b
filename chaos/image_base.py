"""The base image: a Debian root filesystem made by debootstrap, imported into Docker.

No image can be pulled on the build machines, so the base is made from scratch: a
``debootstrap --variant=minbase`` of Debian bookworm (its ``python3`` is 3.11, the
version the project requires and the wheelhouse is built for) from the mirror this
machine's apt already uses, with the packages in :data:`BASE_PACKAGES` and their
dependencies, trimmed of documentation and apt's caches, packed with ``tar`` and given to
``docker import``.

ZooKeeper comes from Debian's ``libzookeeper-java`` (``/usr/share/java/zookeeper.jar``,
the jar ``harness.zookeeper`` runs) with ``default-jre-headless``; Debian's ``zookeeper``
package itself only adds scripts, and it depends on the full ``default-jre``, which
would pull in GTK and X11.  ``iptables`` (with the containers' NET_ADMIN capability) is
what the nemesis partitions the network with; ``iproute2`` and ``procps`` are there to
look inside a node.

The image is tagged ``kafkaref-base:<recipe hash>``, the hash of everything that decides
its content (suite, variant, packages, trimming, this recipe's version), so the slow
build (about a minute) happens once per machine and recipe: :func:`ensure_base` finds the
tag and returns at once.  debootstrap needs root: as another user it is run with
``sudo -n`` when that works, else :class:`PrerequisiteMissingError` says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_PACKAGES",
    "BASE_REPOSITORY",
    "SUITE",
    "BuildError",
    "PrerequisiteMissingError",
    "base_tag",
    "cache_dir",
    "debian_mirror",
    "ensure_base",
]

SUITE = os.environ.get("KAFKAREF_DEBIAN_SUITE", "bookworm")
"""The Debian release of the image (bookworm: Python 3.11, like the project)."""
VARIANT = "minbase"
BASE_PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-venv",
    "default-jre-headless",
    "libzookeeper-java",
    "iptables",
    "iproute2",
    "procps",
    "hostname",
)
TRIMMED: tuple[str, ...] = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
"""Directories whose contents are deleted before the import (nothing at run time needs them)."""
RECIPE_VERSION = 1
"""Bumped whenever this module changes what it builds, so the hash (and tag) changes."""
BASE_REPOSITORY = "kafkaref-base"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL_PYTHON = "kafkaref.python"
SOURCES = Path("/etc/apt")
DEBOOTSTRAP = os.environ.get("KAFKAREF_DEBOOTSTRAP", "debootstrap")
"""The debootstrap command (a name on PATH, /usr/sbin and /sbin, or a path)."""

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """An image could not be built (the message says which step failed, and its output)."""


class PrerequisiteMissingError(BuildError):
    """A tool the build needs is missing (debootstrap, root): the message says what to do."""


def cache_dir() -> Path:
    """Where chaos keeps its build logs and wheelhouse: KAFKAREF_CACHE, else
    ``$XDG_CACHE_HOME/kafkaref``, else ``~/.cache/kafkaref`` (made if missing)."""
    explicit = os.environ.get("KAFKAREF_CACHE")
    if explicit:
        path = Path(explicit)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "kafkaref"
    path.mkdir(parents=True, exist_ok=True)
    return path


def recipe() -> dict[str, Any]:
    """Everything that decides the base image's content."""
    return {
        "version": RECIPE_VERSION,
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(BASE_PACKAGES),
        "trimmed": sorted(TRIMMED),
        "path": DEFAULT_PATH,
    }


def base_tag() -> str:
    """``kafkaref-base:<hash of the recipe>``."""
    digest = hashlib.sha256(json.dumps(recipe(), sort_keys=True).encode()).hexdigest()
    return f"{BASE_REPOSITORY}:{digest[:12]}"


# ------------------------------------------------------------------ the mirror


def _one_line_entries(text: str) -> Iterable[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of each ``deb`` line of a sources.list file."""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        line = re.sub(r"\[[^\]]*\]", " ", line)  # options such as [signed-by=...]
        words = line.split()
        if len(words) >= 4 and words[0] == "deb":
            yield words[1], [words[2]], words[3:]


def _deb822_entries(text: str) -> Iterable[tuple[str, list[str], list[str]]]:
    """(uri, suites, components) of each enabled ``deb`` stanza of a .sources file."""
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        for uri in fields.get("uris", "").split():
            yield uri, fields.get("suites", "").split(), fields.get("components", "").split()


def debian_mirror(apt_dir: Path = SOURCES) -> str:
    """The Debian archive this machine's apt uses (KAFKAREF_DEBIAN_MIRROR overrides): the
    first source with a plain release suite (not -updates or -security) and ``main``."""
    override = os.environ.get("KAFKAREF_DEBIAN_MIRROR")
    if override:
        return override
    files = [apt_dir / "sources.list"]
    parts = apt_dir / "sources.list.d"
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    for path in files:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uri, suites, components in entries:
            plain = [s for s in suites if "-" not in s and "/" not in s]
            if plain and "main" in components and uri.startswith(("http://", "https://")):
                return uri
    raise PrerequisiteMissingError(
        f"no Debian mirror found in {apt_dir}/sources.list(.d): set KAFKAREF_DEBIAN_MIRROR "
        "to one (for example http://deb.debian.org/debian)"
    )


# ------------------------------------------------------------------ building


def _privilege() -> list[str]:
    """The prefix that runs a command as root: none as root, ``sudo -n`` where that works."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is not None:
        probe = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return ["sudo", "-n"]
    raise PrerequisiteMissingError(
        "building the base image runs debootstrap, which needs root: run `kafkaref chaos "
        "build` as root or with passwordless sudo (once; later builds reuse the image)"
    )


def _run_logged(argv: list[str], log: Path, progress: Progress, what: str) -> None:
    """Run ``argv``, its output appended to ``log``; the first line of each phase (its
    first two words, such as ``I: Retrieving``) is reported.  BuildError on failure."""
    seen: set[str] = set()
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        with subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                phase = " ".join(line.split()[:2])
                if phase and phase not in seen:
                    seen.add(phase)
                    progress(f"{what}: {line.strip()}")
            code = process.wait()
    if code != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
        raise BuildError(f"{what} failed (exit {code}); the log {log} ends with:\n{tail}")


def _python_version(rootfs: Path) -> str:
    """The ``X.Y`` of the root filesystem's ``python3`` (from the symlink's target)."""
    target = os.readlink(rootfs / "usr/bin/python3")
    found = re.fullmatch(r"python(\d+\.\d+)", Path(target).name)
    if found is None:
        raise BuildError(f"cannot tell the image's Python version from usr/bin/python3 -> {target}")
    return found.group(1)


def _unmount_below(root: Path, sudo: list[str]) -> None:
    """Unmount whatever a failed debootstrap left mounted below ``root`` (proc, sys), so
    that deleting the tree never reaches into the host's /proc or /sys."""
    resolved = str(root.resolve())
    with contextlib.suppress(OSError):
        mounts = Path("/proc/mounts").read_text(encoding="utf-8").splitlines()
        points = [m.split()[1] for m in mounts if len(m.split()) > 1]
        for point in sorted(points, key=len, reverse=True):
            if point == resolved or point.startswith(resolved + "/"):
                subprocess.run([*sudo, "umount", "-l", point], capture_output=True, check=False)


def _remove_tree(work: Path, sudo: list[str]) -> None:
    _unmount_below(work, sudo)
    # The root filesystem belongs to root: remove it the way it was made.
    subprocess.run([*sudo, "rm", "-rf", "--one-file-system", str(work)], check=False)


def ensure_base(client: Any, progress: Progress) -> str:
    """The base image's tag, building it first if Docker does not have it."""
    from docker.errors import ImageNotFound  # noqa: PLC0415 - optional dependency

    tag = base_tag()
    try:
        client.images.get(tag)
    except ImageNotFound:
        pass
    else:
        progress(f"base image {tag}: present, reused")
        return tag
    debootstrap = shutil.which(DEBOOTSTRAP, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if debootstrap is None:
        raise PrerequisiteMissingError(
            f"{DEBOOTSTRAP} is not installed: apt-get install debootstrap (the base image "
            "is made from a Debian root filesystem because no registry can be reached)"
        )
    sudo = _privilege()
    mirror = debian_mirror()
    progress(f"base image {tag}: building with debootstrap ({SUITE} from {mirror})")
    work = Path(tempfile.mkdtemp(prefix="kafkaref-base-"))
    log = cache_dir() / "base-build.log"
    log.write_text("", encoding="utf-8")
    rootfs = work / "rootfs"
    try:
        _run_logged(
            [
                *sudo,
                debootstrap,
                f"--variant={VARIANT}",
                "--include=" + ",".join(BASE_PACKAGES),
                SUITE,
                str(rootfs),
                mirror,
            ],
            log,
            progress,
            "debootstrap",
        )
        python = _python_version(rootfs)
        progress(f"base image {tag}: trimming, packing and importing (python {python})")
        for name in TRIMMED:
            if (rootfs / name).is_dir():
                trim = [*sudo, "find", str(rootfs / name), "-mindepth", "1", "-delete"]
                subprocess.run(trim, check=True)
        tarball = work / "rootfs.tar"
        pack = ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(tarball), "."]
        _run_logged(
            [*sudo, *pack],
            log,
            progress,
            "tar",
        )
        repository, version = tag.split(":")
        client.api.import_image(
            src=str(tarball),
            repository=repository,
            tag=version,
            changes=[
                f"ENV PATH={DEFAULT_PATH}",
                "ENV LANG=C.UTF-8",
                f"LABEL {LABEL_PYTHON}={python} kafkaref.image=base",
                'CMD ["/bin/bash"]',
            ],
        )
        client.images.get(tag)  # ImageNotFound here means the import did not take
    except BuildError:
        raise
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BuildError(f"building {tag} failed: {exc}") from exc
    finally:
        _remove_tree(work, sudo)
    progress(f"base image {tag}: built")
    return tag


def image_python(client: Any, tag: str) -> str | None:
    """The ``X.Y`` Python version recorded on an image built here (None if unlabelled)."""
    labels = client.images.get(tag).labels or {}
    value = labels.get(LABEL_PYTHON)
    return None if value is None else str(value)
