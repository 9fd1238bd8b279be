"""Rootless with a subordinate id range: a container gives files to ids such as
100999 (uid 1000 inside) that its own user cannot list, read or delete from the
host. Strata works inside the store's user namespace (runtime/storens.py), where the
disk shows them as 1000: diff, ls, commit, rm and --rm must work, and commit must
record the ids the container saw.

The scenario needs the unprivileged user strata-test (with a subuid range, as
``tests/runtime/unpriv.py`` and ``packaging/dev.sh`` set it up): run as root,
the test runs itself again as that user.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from tests.capabilities import missing, real_root, require_subids, require_userns

IMAGE = "test/busybox:1"
SCENARIO = "mkdir /x && chown 1000:1000 /x && echo > /x/f && chmod 700 /x"


def _as_test_user(request: pytest.FixtureRequest) -> None:
    if shutil.which("runuser") is None or shutil.which("newuidmap") is None:
        missing("running as strata-test needs runuser and newuidmap (uidmap)")
    from tests.runtime.unpriv import run_pytest_as_test_user

    done = run_pytest_as_test_user([request.node.nodeid, "-q", "-rs"], capture=True)
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"as strata-test:\n{output}", pytrace=False)
    if "1 passed" not in output:
        missing(f"as strata-test the test did not run:\n{output}")


def _run(app: Strata, command: str, auto_remove: bool = False) -> str:
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", command], auto_remove=auto_remove))
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        assert app.start_attached(info.id, None, null, null) == 0
    finally:
        os.close(null)
    return info.id


@pytest.mark.parametrize("driver", ["overlay", "vfs"])
def test_store_works_through_subordinate_ids(
    request: pytest.FixtureRequest, driver: str, tmp_path: Path, busybox_rootfs_tar: Path
) -> None:
    if real_root():
        _as_test_user(request)
        return
    require_userns()
    require_subids()
    app = Strata(tmp_path / "store", storage_driver=driver)
    app.import_rootfs(str(busybox_rootfs_tar), IMAGE)
    cid = _run(app, SCENARIO)
    on_disk = app.container_diff_dir(cid) / "x"
    st = os.stat(on_disk)  # the disk holds the container's owner (host id 100999), 0700
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o700)

    assert sorted((c.kind, c.path) for c in app.diff(cid)) == [("A", "/x"), ("A", "/x/f")]
    listed = {e.path: e for e in app.ls(cid, "/", recursive=True)}
    assert (listed["/x"].uid, listed["/x"].gid, stat.S_IMODE(listed["/x"].mode)) == (1000, 1000, 0o700)
    assert (listed["/x/f"].uid, listed["/x/f"].gid) == (0, 0)

    image = app.commit(cid, "test/committed:1")
    top = app.store.images.layers(image)[-1]
    entries = {e.path: e for e in app.store.layers.entries(top.id)}
    assert (entries["/x"].uid, entries["/x"].gid, stat.S_IMODE(entries["/x"].mode)) == (1000, 1000, 0o700)
    assert (entries["/x/f"].uid, entries["/x/f"].gid) == (0, 0)
    with app.image_view("test/committed:1").open("/x/f") as f:
        assert f.read() == b"\n"  # the layer itself is the store's to read

    app.rm(cid)
    _run(app, SCENARIO.replace("/x", "/y"), auto_remove=True)
    assert app.containers() == []
    assert os.listdir(app.store.root / "containers") == []
    assert [n for n in os.listdir(app.store.root / "tmp") if not n.startswith(".")] == []
    app.close()
