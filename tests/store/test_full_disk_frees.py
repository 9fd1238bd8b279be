"""A full disk does not wedge the store (issue 13, data loss): with not one block free,
the commands that free space (``builder prune``, ``rmi``, ``system prune``) still work
and give the space back, reading commands still read, and a command that needs space
fails in one line that says what to prune. The tmpfs comes from ``test_disk_full``."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from tests.fixtures import run_strata
from tests.store.test_disk_full import small_fs  # noqa: F401 - a fixture


def fill(fs: Path) -> Path:
    """Take every free block of ``fs`` (what a RUN writing until ENOSPC leaves behind)."""
    filler = fs / "filler"
    with open(filler, "wb", buffering=0) as f:
        chunk = b"\0" * 65536
        try:
            while True:
                f.write(chunk)
        except OSError as e:
            assert e.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0")
        except OSError:
            pass
    st = os.statvfs(fs)
    assert st.f_bavail == 0
    return filler


def free_bytes(fs: Path) -> int:
    st = os.statvfs(fs)
    return st.f_bavail * st.f_frsize


def test_freeing_space_works_on_a_full_disk(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
) -> None:
    root = small_fs / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "big.bin").write_bytes(os.urandom(1_500_000))
    (context / "Dockerfile").write_text("FROM bb:1\nCOPY big.bin /\n")
    run_strata("build", "-q", "-t", "big:1", context, root=root, check=True)
    fill(small_fs)

    images = run_strata("images", root=root)
    assert images.returncode == 0 and "big" in images.stdout, images.stderr
    full = run_strata("build", "-q", "-t", "more:1", "--no-cache", context, root=root)
    assert full.returncode != 0 and "Traceback" not in full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and "no space left" in errors[0] and "strata builder prune" in errors[0], full.stderr

    rmi = run_strata("rmi", "big:1", root=root)
    assert rmi.returncode == 0, rmi.stderr
    prune = run_strata("builder", "prune", "-f", root=root)  # the layer now belongs to the cache only
    assert prune.returncode == 0, prune.stderr
    assert free_bytes(small_fs) >= 1_500_000, prune.stdout + rmi.stdout + str(sorted(os.listdir(root / "layers")))
    fill(small_fs)
    system = run_strata("system", "prune", "-af", root=root)
    assert system.returncode == 0, system.stderr
    assert run_strata("images", "-q", root=root, check=True).stdout == ""
    assert free_bytes(small_fs) > 1_000_000
    (small_fs / "filler").unlink()
    check = run_strata("system", "check", root=root)
    assert check.returncode == 0, check.stdout + check.stderr
    run_strata("import", busybox_rootfs_tar, "bb:2", root=root, check=True)
    assert not list(root.glob("metadata.db-journal")), "the in-place mode leaves no journal"
