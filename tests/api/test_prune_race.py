"""A container another process is creating or starting is not prunable (issue 13, data
loss): ``run --rm`` racing ``system prune -af`` printed ``overlay upperdir does not
exist`` and left orphan directories. The creator holds the container from before its
record exists until it is done with it; a prune passes over what it cannot claim."""

from __future__ import annotations

import os
from pathlib import Path

from explorer.api import Strata
from explorer.api.containers import RunOptions
from tests.capabilities import require_userns


def test_a_container_being_created_is_not_pruned(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    root = tmp_path / "store"
    creator = Strata(root)
    image = creator.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    rec = creator.store.containers.create(image.id, "bb:1", {"Cmd": ["true"]}, "vfs", "box")
    pruner = Strata(root)
    try:
        assert pruner.container_prune() == ([], 0)
        assert pruner.store.containers.get("box").id == rec.id
        assert (root / "containers" / rec.id / "diff").is_dir()
        creator.close()  # the creating process ends: the container is an ordinary stopped one
        removed, _ = pruner.container_prune()
        assert removed == [rec.id]
        assert os.listdir(root / "containers") == [] and os.listdir(root / "tmp") == []
    finally:
        pruner.close()
        creator.close()


def test_run_rm_racing_a_prune_runs_and_leaves_nothing(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """``run --rm`` is a create and a start in one process; a prune from another process
    in between (here: right after the create) takes nothing, and the run completes."""
    require_userns()
    root = tmp_path / "store"
    app = Strata(root, storage_driver="vfs")
    app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    info = app.create("bb:1", RunOptions(cmd=["sh", "-c", "echo ran > /out"], auto_remove=True), hold=True)
    other = Strata(root)
    try:
        assert other.container_prune() == ([], 0)
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            assert app.start_attached(info.id, None, null, null) == 0
        finally:
            os.close(null)
        assert app.containers() == []
        assert os.listdir(root / "containers") == [] and os.listdir(root / "tmp") == []
        assert other.check() == []
    finally:
        other.close()
        app.close()


def test_a_created_container_is_prunable_while_its_creator_stays_open(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """``create`` alone holds nothing once it returns: Docker prunes created containers,
    and the window (one long-lived process) must be able to prune what it created."""
    root = tmp_path / "store"
    app = Strata(root, storage_driver="vfs")
    app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    info = app.create("bb:1", RunOptions(cmd=["true"]))
    other = Strata(root)
    try:
        assert other.container_prune()[0] == [info.id]
        assert app.container_prune() == ([], 0)
    finally:
        other.close()
        app.close()


def test_a_stopped_container_of_a_finished_start_is_pruned(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    """Holding ends with the work: a container that ran and exited (not --rm) is an
    ordinary stopped container for a prune, even while its starter stays open (the GUI)."""
    require_userns()
    root = tmp_path / "store"
    app = Strata(root, storage_driver="vfs")
    app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    info = app.create("bb:1", RunOptions(cmd=["true"]))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    other = Strata(root)
    try:
        assert other.container_prune()[0] == [info.id]
    finally:
        other.close()
        app.close()
