"""SIGKILL at many points of store-changing commands: afterwards the store checks clean,
nothing half-done remains, and redoing the work reuses what had completed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.archives import make_docker_archive
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT, run_strata
from tests.store.conftest import DRIVERS, alternate


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


def test_commit_killed_at_many_points(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """A container of each storage driver (a commit reads overlay's diff, or compares a
    vfs root with its image); the kills alternate between them."""
    require_userns()
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    whole: dict[str, float] = {}
    for driver in DRIVERS:
        run_strata(
            *("--storage-driver", driver, "run", "--name", f"big-{driver}", "bb:1", "sh", "-c"),
            "mkdir /data && for i in $(seq 300); do head -c 20000 /dev/urandom > /data/f$i; done",
            root=root,
            check=True,
        )
        # The kill points spread over what one whole commit takes here and now (a fixed
        # schedule missed the commit on a fast machine and everything on a slow one).
        began = time.monotonic()
        run_strata("commit", f"big-{driver}", f"snap:timing-{driver}", root=root, check=True)
        whole[driver] = time.monotonic() - began
    landed = {driver: 0 for driver in DRIVERS}
    for i in range(20):
        driver = alternate(i)
        proc = strata_proc(root, "commit", f"big-{driver}", f"snap:{i}")
        landed[driver] += kill_after(proc, whole[driver] * 1.2 * (i // 2) / 10)
        assert_clean(root)
    assert min(landed.values()) >= 3, f"the kills should land while the commits run (whole ones took {whole})"
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
