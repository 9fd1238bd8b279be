"""A store on a tiny, full filesystem during a build, a pull and a copy-up (issue 8):
the command fails with one clear line, what it had written is gone, ``system check``
is clean and the store is exactly as before. ``test_disk_full`` covers load and a
read-only store for tagging; the tmpfs comes from its ``small_fs`` fixture (root only).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from explorer.runtime.initlayer import BASE_TARGETS, ROOTFS_DIR
from tests.capabilities import require_userns
from tests.fixtures import run_strata
from tests.fixtures.services import Registry
from tests.store.conftest import DRIVERS
from tests.store.test_disk_full import listing as full_listing
from tests.store.test_disk_full import small_fs  # noqa: F401 - a fixture

BIG = 9_000_000  # more than the 6 MB tmpfs holds, incompressible


def assert_failed_cleanly(
    proc: subprocess.CompletedProcess[str],
    root: Path,
    before: list[str],
    why: str = "no space left",
    containers: bool = True,
) -> None:
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, proc.stderr
    assert listing(root, containers) == before
    check = run_strata("system", "check", root=root)
    assert check.returncode == 0, check.stdout + check.stderr
    assert why in errors[0].lower(), proc.stdout + proc.stderr


def listing(root: Path, containers: bool = True) -> list[str]:
    """Everything in the store but the database, lock files, the storage driver the
    first container probed for, and a container's runtime directory (entering a stopped
    container writes its hostname and hosts files there), overlay's work directory (the
    kernel makes work/work at the first mount) or the runtime's mount targets in a vfs
    root (made at the first entry, as overlay keeps them in its init layer): state, not
    content. With ``containers`` false, nothing of the containers at all."""
    return [
        p
        for p in full_listing(root)
        if not p.endswith(".lock")
        and "/run/" not in p
        and p != "driver"
        and not (p.startswith("containers/") and "/work/" in p)
        and not _vfs_mount_target(p)
        and (containers or not p.startswith("containers/"))
    ]


def _vfs_mount_target(path: str) -> bool:
    parts = path.split("/", 3)  # containers/<id>/rootfs/<inside>
    inside = "/" + parts[3] if len(parts) == 4 and parts[0] == "containers" and parts[2] == ROOTFS_DIR else ""
    return any(inside == target for target, _is_dir in BASE_TARGETS)


def with_base(small_fs: Path, busybox_rootfs_tar: Path) -> Path:  # noqa: F811
    root = small_fs / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    return root


@pytest.mark.parametrize(
    ("step", "driver"),
    [
        ("COPY big.bin /big/", "overlay"),  # no container: the driver plays no part
        *((f"RUN head -c {BIG} /dev/urandom > /big.bin", driver) for driver in DRIVERS),
    ],
)
def test_build_on_a_full_disk_fails_cleanly(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    driver: str,
) -> None:
    """A RUN's container fills the disk with its diff (overlay) or already with the
    copy of its image (vfs): either way nothing of it stays."""
    monkeypatch.setenv("STRATA_STORAGE_DRIVER", driver)
    if step.startswith("RUN"):
        require_userns()
    root = with_base(small_fs, busybox_rootfs_tar)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "big.bin").write_bytes(os.urandom(BIG))
    (context / "Dockerfile").write_text(f"FROM bb:1\n{step}\n")
    before = listing(root)
    images = run_strata("images", "-q", root=root, check=True).stdout
    proc = run_strata("build", "--progress", "plain", "-t", "big:1", context, root=root)
    assert_failed_cleanly(proc, root, before)
    assert run_strata("images", "-q", root=root, check=True).stdout == images


def test_pull_onto_a_full_disk_fails_cleanly(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
    registry: Registry,
) -> None:
    source = tmp_path / "source"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "small.txt").write_text("small\n")
    (context / "big.bin").write_bytes(os.urandom(BIG))
    (context / "Dockerfile").write_text("FROM bb:1\nCOPY small.txt /s/\nCOPY big.bin /b/\n")
    name = f"{registry.address}/full/app:1"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=source, check=True)
    run_strata("build", "-q", "-t", name, context, root=source, check=True)
    run_strata("push", name, root=source, check=True)

    root = with_base(small_fs, busybox_rootfs_tar)
    before = listing(root)
    proc = run_strata("pull", name, root=root)
    assert_failed_cleanly(proc, root, before)
    assert "full/app" not in run_strata("images", root=root, check=True).stdout


def test_copy_over_a_file_of_a_stopped_container_on_a_full_disk_fails_cleanly(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
    driver: str,
) -> None:
    root = with_base(small_fs, busybox_rootfs_tar)
    run_strata("create", "--name", "box", "bb:1", "true", root=root, check=True)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(BIG))
    before = listing(root, containers=False)
    proc = run_strata("cp", big, "box:/etc/passwd", root=root)
    assert_failed_cleanly(proc, root, before, containers=False)
    # The kernel's copy-up of /etc may stay (the same directory, shown as changed the way
    # docker diff shows it); no file of the failed copy does.
    assert set(run_strata("diff", "box", root=root, check=True).stdout.split("\n")) <= {"C /etc", ""}
    assert [p for p in (root / "containers").rglob("diff/**/*") if not p.is_dir()] == []
    shown = run_strata("cp", "box:/etc/passwd", "-", root=root)
    assert "root:x:0:0" in shown.stdout, "a failed copy-up must leave the lower file as it was"


def test_copy_of_a_directory_into_a_stopped_container_on_a_full_disk_fails_cleanly(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
    driver: str,
) -> None:
    root = with_base(small_fs, busybox_rootfs_tar)
    run_strata("create", "--name", "box", "bb:1", "true", root=root, check=True)
    src = tmp_path / "payload"
    src.mkdir()
    (src / "small.txt").write_text("small\n")
    (src / "big.bin").write_bytes(os.urandom(BIG))
    before = listing(root)
    proc = run_strata("cp", src, "box:/payload", root=root)
    assert_failed_cleanly(proc, root, before)
    assert run_strata("diff", "box", root=root, check=True).stdout.strip() == ""


def test_build_in_a_read_only_store_is_a_clear_error(
    small_fs: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    busybox_rootfs_tar: Path,
) -> None:
    root = with_base(small_fs, busybox_rootfs_tar)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "a.txt").write_text("a\n")
    (context / "Dockerfile").write_text("FROM bb:1\nCOPY a.txt /a/\n")
    before = listing(root)
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        proc = run_strata("build", "-t", "ro:1", context, root=root)
        assert proc.returncode != 0
        assert "read-only" in proc.stderr.lower(), proc.stderr
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
        assert len([line for line in proc.stderr.splitlines() if line.startswith("Error")]) == 1, proc.stderr
        check = run_strata("system", "check", root=root)
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert listing(root) == before
