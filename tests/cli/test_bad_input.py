"""Inputs that must give one clear line and a non-zero exit, leaving the store as it was."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.capabilities import require_userns
from tests.fixtures import run_strata

IMAGE = "test/busybox:1"


def _tree(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root))
        for p in root.rglob("*")
        if "tmp" not in p.parts and not p.name.startswith("metadata.db")
    )


@pytest.fixture
def store(strata_root: Path, busybox_rootfs_tar: Path) -> Path:
    require_userns()
    run_strata("import", busybox_rootfs_tar, IMAGE, check=True)
    return strata_root


def _one_line_error(done: object) -> str:
    stderr = done.stderr  # type: ignore[attr-defined]
    assert done.returncode != 0 and stderr.count("\n") == 1, stderr  # type: ignore[attr-defined]
    assert "internal error" not in stderr and "Traceback" not in stderr
    return str(stderr)


def test_a_volume_name_too_long_for_the_file_system(store: Path) -> None:
    before = _tree(store)
    name = "v" * 5000
    line = _one_line_error(run_strata("volume", "create", name))
    assert line.startswith("Error: invalid volume name vvvvvvvvvvvvvvvvvvvv… (5000 characters): use at most 255")
    line = _one_line_error(run_strata("run", "--rm", "-v", f"{name}:/data", IMAGE, "true"))
    assert "use at most 255 characters" in line
    assert _tree(store) == before
    assert run_strata("volume", "ls", "-q", check=True).stdout == ""
    assert os.listdir(store / "containers") == []


@pytest.mark.parametrize("tag", ["x:tâg", "ünïcode:1", "x:" + "t" * 129, "x:1\n"])
def test_tags_docker_refuses_are_refused(store: Path, tag: str) -> None:
    before = run_strata("images", "--format", "json", check=True).stdout  # no age that ticks on
    line = _one_line_error(run_strata("tag", IMAGE, tag))
    assert "invalid reference format" in line
    assert run_strata("images", "--format", "json", check=True).stdout == before
