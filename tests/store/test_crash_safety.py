"""SIGKILL at many points of store-changing commands: afterwards the store checks clean,
nothing half-done remains, and redoing the work reuses what had completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bench.archives import make_docker_archive
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.store.conftest import DRIVERS


def strata_proc(root: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "explorer", "--root", str(root), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )


def kill_after(proc: subprocess.Popen[bytes], delay: float) -> bool:
    """True when the kill landed before the command finished."""
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True


def assert_clean(root: Path) -> None:
    check = run_strata("system", "check", root=root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert [p.name for p in (root / "tmp").iterdir()] == []
    for area in ("layers", "containers", "volumes"):
        for entry in (root / area).iterdir():
            assert not (entry / "owner").exists(), f"{area}/{entry.name} left half-done"


def test_load_killed_at_many_points(tmp_path: Path) -> None:
    archive = make_docker_archive(tmp_path / "img.tar", 8, 600, 4096)
    root = tmp_path / "store"
    run_strata("images", root=root, check=True)
    landed = 0
    for i in range(30):
        proc = strata_proc(root, "load", "-i", str(archive))
        landed += kill_after(proc, 0.05 + i * 0.03)
        assert_clean(root)
    assert landed >= 5, "the kills should land while the load runs"
    layers_before = {p.name for p in (root / "layers").iterdir()}
    run_strata("load", "-i", archive, root=root, check=True)
    assert layers_before <= {p.name for p in (root / "layers").iterdir()}, "completed layers are reused"
    assert_clean(root)
    assert len(run_strata("ls", "bench/many:1", "-R", "--json", root=root, check=True).stdout.splitlines()) > 2400


# Every point a commit passes that leaves something behind, in the order it reaches them:
# its listing read (vfs: a scratch copy), its files staged, the layer in place but
# unrecorded, recorded but still marked, and recorded with no image using it yet
# (explorer/holds.py). From the fourth on the layer is the store's, so a later commit of
# the same container finds it instead of writing it again.
COMMIT_POINTS = ("commit.read", "commit.staged", "layer.renamed", "layer.committed", "commit.layer-recorded")


def test_commit_killed_at_every_named_point(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """A container of each storage driver (a commit reads overlay's diff, or compares a
    vfs root with its image), each commit SIGKILLed at each named point in turn: after
    every kill the store checks clean, and a last commit of each still holds every file."""
    from tests.store.test_crash_build_pull import held  # that module imports this one's helpers

    require_userns()
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    for driver in DRIVERS:
        run_strata(
            *("--storage-driver", driver, "run", "--name", f"big-{driver}", "bb:1", "sh", "-c"),
            "mkdir /data && for i in $(seq 300); do head -c 20000 /dev/urandom > /data/f$i; done",
            root=root,
            check=True,
        )
    for point in COMMIT_POINTS:
        for driver in DRIVERS:
            held(root, point, "commit", f"big-{driver}", f"snap:{point}-{driver}")
            assert_clean(root)
    for driver in DRIVERS:
        run_strata("commit", f"big-{driver}", f"snap:final-{driver}", root=root, check=True)
        assert_clean(root)
        rows = run_strata("ls", f"snap:final-{driver}", "/data", "--json", root=root, check=True).stdout.splitlines()
        assert len(rows) == 300


@pytest.mark.parametrize("delay", [0.0, 0.02])
def test_kill_during_open_leaves_nothing(tmp_path: Path, delay: float) -> None:
    root = tmp_path / "store"
    proc = strata_proc(root, "images")
    kill_after(proc, delay)
    assert_clean(root)
