"""``exec -d`` (issue 14): returns as soon as the process runs, leaves it running in
the container, and the API leaks no descriptor doing so."""

from __future__ import annotations

import os
import time
from pathlib import Path

from explorer.api import Strata
from explorer.api.containers import RunOptions
from tests.capabilities import require_userns
from tests.fixtures import run_strata


def test_exec_detached_returns_at_once_and_the_process_runs_on(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    require_userns()
    root = tmp_path / "store"
    run_strata("import", busybox_rootfs_tar, "bb:1", root=root, check=True)
    run_strata("run", "-d", "--name", "box", "bb:1", "sleep", "60", root=root, check=True)
    try:
        proc = run_strata("exec", "-d", "box", "sh", "-c", "sleep 3; echo later > /tmp/mark", root=root)
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr
        # returned before the process got to its work (a waiting exec finds the mark there)
        assert run_strata("exec", "box", "test", "-e", "/tmp/mark", root=root).returncode == 1
        deadline = time.monotonic() + 30
        while run_strata("exec", "box", "cat", "/tmp/mark", root=root).stdout != "later\n":
            assert time.monotonic() < deadline, "the detached process did not finish its work"
            time.sleep(0.3)
    finally:
        run_strata("rm", "-f", "box", root=root)


def test_exec_detached_leaks_no_descriptor(tmp_path: Path, busybox_rootfs_tar: Path) -> None:
    require_userns()
    app = Strata(tmp_path / "store", storage_driver="vfs")
    try:
        app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
        info = app.create("bb:1", RunOptions(cmd=["sleep", "60"]))
        app.start(info.id)
        before = sorted(os.listdir("/proc/self/fd"))
        for _ in range(3):
            assert app.exec(info.id, ["true"], detach=True) == 0
        assert app.exec(info.id, ["sh", "-c", "exit 3"]) == 3
        assert sorted(os.listdir("/proc/self/fd")) == before
        app.rm(info.id, force=True)
    finally:
        app.close()
