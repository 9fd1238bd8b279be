"""A vfs container's changes are read through scratch copies, one per use (issue 14).

The window refreshes a container's browser, shows its diff and keeps a browser open at
once: each of those reads its own copy, none deletes another's, and every copy goes
when its user is done — closed, collected, or, for a process that was killed, at the
next store open.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.api.scratch import PREFIX
from tests.api.conftest import IMAGE
from tests.capabilities import require_userns
from tests.fixtures import REPO_ROOT

CHANGES = "echo one > /a; mkdir /d; echo two > /d/b; rm /bin/vi"
DIFF = [("A", "/a"), ("C", "/bin"), ("D", "/bin/vi"), ("A", "/d"), ("A", "/d/b")]


@pytest.fixture
def vfs(tmp_path: Path, busybox_rootfs_tar: Path) -> Iterator[Strata]:
    require_userns()
    strata = Strata(tmp_path / "store", storage_driver="vfs")
    strata.import_rootfs(str(busybox_rootfs_tar), IMAGE)
    yield strata
    strata.close()


def changed_container(app: Strata) -> str:
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", CHANGES]))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    return info.id


def scratch_dirs(app: Strata) -> list[str]:
    return sorted(p.name for p in app.store.tmp.iterdir() if p.name.startswith(PREFIX))


def test_concurrent_views_and_diffs_of_one_container_keep_their_own_copies(vfs: Strata) -> None:
    cid = changed_container(vfs)
    held = vfs.container_view(cid)  # a browser left open while the others come and go
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def browse() -> None:
        start.wait()
        for _ in range(4):
            with vfs.container_view(cid) as view:
                assert sorted(e.path for e in view.list_dir("/d")) == ["/d/b"]
                with view.open("/d/b") as f:
                    assert f.read() == b"two\n"

    def diff() -> None:
        start.wait()
        for _ in range(4):
            assert [(c.kind, c.path) for c in vfs.diff(cid)] == DIFF

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in (browse, browse, diff)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    with held.open("/a") as f:
        assert f.read() == b"one\n"
    assert len(scratch_dirs(vfs)) == 1  # the held view's, and only it
    held.close()
    assert list(vfs.store.tmp.iterdir()) == []


def test_an_unclosed_view_leaves_nothing_once_collected(vfs: Strata) -> None:
    cid = changed_container(vfs)
    view = vfs.container_view(cid)
    content = view.layers[-1].content_path("/a")
    assert content.read_bytes() == b"one\n" and len(scratch_dirs(vfs)) == 1
    assert [e.path for e in vfs.ls(cid, "/d")] == ["/d/b"]  # ls closes its own copy
    del view
    gc.collect()
    assert list(vfs.store.tmp.iterdir()) == []


def test_scratch_of_a_killed_process_goes_at_the_next_store_open(vfs: Strata) -> None:
    cid = changed_container(vfs)
    child = (
        "import os, sys\n"
        "from explorer.api import Strata\n"
        "view = Strata(sys.argv[1], storage_driver='vfs').container_view(sys.argv[2])\n"
        "print(view.layers[-1].content_path('/a'), flush=True)\n"
        "os._exit(0)\n"  # no finalizer runs: as if killed
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", child, str(vfs.root), cid], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    left = Path(done.stdout.strip())
    assert left.read_bytes() == b"one\n"
    assert [p.name for p in vfs.store.tmp.iterdir()] == [left.parent.parent.name]
    vfs.close()
    tmp = vfs.store.tmp  # opening the store again collects it
    assert not left.exists() and list(tmp.iterdir()) == []
