"""A store on a tiny, full filesystem: the failing command says so in one line and the
store is exactly as before."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bench.archives import make_docker_archive
from tests.capabilities import require_root
from tests.fixtures import run_strata


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    require_root()
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if "metadata.db" not in p.name)


def test_load_on_a_full_disk_fails_cleanly(small_fs: Path, tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    root = small_fs / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    before = listing(root)
    archive = make_docker_archive(tmp_path / "big.tar", 2, 50, 100_000)  # ~10 MB, more than is left
    proc = run_strata("load", "-i", archive, root=root)
    assert proc.returncode != 0
    assert "no space left" in proc.stderr.lower()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert listing(root) == before
    check = run_strata("system", "check", root=root)
    assert check.returncode == 0, check.stdout
    assert run_strata("images", "--format", "json", root=root, check=True).stdout.count('"bb"') == 1


def test_read_only_store_is_a_clear_error(small_fs: Path, busybox_rootfs_tar: Path) -> None:
    root = small_fs / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        proc = run_strata("tag", "bb:1", "bb:2", root=root)
        assert proc.returncode != 0
        assert "read-only" in proc.stderr.lower() and "Traceback" not in proc.stderr
        assert "bb" in run_strata("images", root=root).stdout
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
