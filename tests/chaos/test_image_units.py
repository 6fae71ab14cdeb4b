"""The image recipe without Docker: the mirror found in apt's sources, the base tag, the
requirements and source files the project image is built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos import image, image_base


def test_mirror_from_deb822_sources_skips_security_and_updates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKAREF_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n"
        "URIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\n"
        "Components: main\n"
        "\n"
        "# a comment\n"
        "Types: deb deb-src\n"
        "URIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\n"
        "Components: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
    assert image_base.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKAREF_DEBIAN_MIRROR", raising=False)
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n"
    )
    assert image_base.debian_mirror(tmp_path) == "http://one.example/debian"


def test_no_mirror_is_a_missing_prerequisite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAFKAREF_DEBIAN_MIRROR", raising=False)
    with pytest.raises(image_base.PrerequisiteMissingError, match="KAFKAREF_DEBIAN_MIRROR"):
        image_base.debian_mirror(tmp_path)
    monkeypatch.setenv("KAFKAREF_DEBIAN_MIRROR", "http://set.example/debian")
    assert image_base.debian_mirror(tmp_path) == "http://set.example/debian"


def test_base_tag_is_a_hash_of_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    tag = image_base.base_tag()
    assert tag.startswith("kafkaref-base:") and len(tag.split(":")[1]) == 12
    assert image_base.base_tag() == tag
    monkeypatch.setattr(image_base, "BASE_PACKAGES", (*image_base.BASE_PACKAGES, "curl"))
    assert image_base.base_tag() != tag


def test_image_requirements_are_the_projects_plus_the_client() -> None:
    root = image.project_root()
    names = {image._requirement_name(r) for r in image.requirements(root)}
    assert {"attrs", "kio", "crc32c", "kazoo", "confluent-kafka"} <= names
    assert "pytest" not in names and "docker" not in names
    assert any(p.startswith("kio==") for p in image.pins())
    assert not any(p.startswith("kafkaref==") for p in image.pins())


def test_source_files_are_the_packages_and_their_hash_follows_content(tmp_path: Path) -> None:
    root = tmp_path / "checkout"
    (root / "spec").mkdir(parents=True)
    (root / "spec" / "__init__.py").write_text('"""x"""\n')
    (root / "spec" / "__pycache__").mkdir()
    (root / "spec" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (root / "tests").mkdir()
    (root / "tests" / "__init__.py").write_text("")
    (root / "README.md").write_text("readme\n")
    (root / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\nreadme = "README.md"\n'
        '[tool.setuptools.packages.find]\ninclude = ["spec*"]\n'
    )
    files = image.source_files(root)
    assert [str(f) for f in files] == ["pyproject.toml", "README.md", "spec/__init__.py"]
    before = image.source_hash(root, files)
    (root / "spec" / "__init__.py").write_text('"""y"""\n')
    assert image.source_hash(root, files) != before
