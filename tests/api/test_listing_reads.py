"""Listing containers only reads (issue 14): an exit the monitor recorded shows in the
listing without being written down, an ended ``--rm`` container is not listed though
only the next reconcile removes it, and nothing waits for a monitor that has not
written its exit code yet."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from explorer import runtime
from explorer.api import Strata
from explorer.api.containers import RunOptions
from tests.capabilities import require_userns


def _state_row(app: Strata, cid: str) -> tuple[Any, ...] | None:
    return app.store.meta.one("SELECT state, exit_code FROM containers WHERE id=?", (cid,))


def _until_ended(app: Strata, cid: str) -> None:
    run_dir = str(app.store.containers.run_dir(cid))
    deadline = time.monotonic() + 30
    while runtime.read_exit_code(run_dir) is None:
        assert time.monotonic() < deadline, "the container did not end"
        time.sleep(0.05)


@pytest.fixture
def app(tmp_path: Path, busybox_rootfs_tar: Path) -> Any:
    require_userns()
    strata = Strata(tmp_path / "store", storage_driver="vfs")
    strata.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    yield strata
    strata.close()


def test_an_ended_container_shows_exited_and_the_listing_writes_nothing(app: Strata) -> None:
    info = app.create("bb:1", RunOptions(cmd=["sh", "-c", "exit 3"]), name="three")
    app.start(info.id)
    _until_ended(app, info.id)
    assert _state_row(app, info.id) == ("running", None)
    (listed,) = app.containers(all=True)
    assert (listed.state, listed.exit_code, listed.status.split()[:2]) == ("exited", 3, ["Exited", "(3)"])
    assert app.container("three").state == "exited"
    assert app.inspect_container("three")["State"]["ExitCode"] == 3
    assert _state_row(app, info.id) == ("running", None), "a read wrote the store"
    assert app.containers(all=False) == []
    assert app.reconcile() == ["three"]
    assert _state_row(app, info.id) == ("exited", 3)


def test_an_ended_rm_container_is_not_listed_and_goes_at_reconcile(app: Strata) -> None:
    info = app.create("bb:1", RunOptions(cmd=["true"], auto_remove=True), name="gone")
    app.start(info.id)
    _until_ended(app, info.id)
    assert app.containers(all=True) == []
    assert app.store.containers.path(info.id).is_dir(), "a listing removed a container"
    assert app.container_prune()[0] == []  # reconciled first: removed as --rm, not pruned
    assert not app.store.containers.path(info.id).exists()
    assert app.store.containers.all() == []


def test_a_listing_never_waits_for_a_monitor(app: Strata, monkeypatch: pytest.MonkeyPatch) -> None:
    info = app.create("bb:1", RunOptions(cmd=["true"]), name="stale")
    app.store.containers.set_state(info.id, state="running", pid=2**22 + 1)  # a process that is not there

    def no_waiting(*_args: Any, **_kw: Any) -> None:
        raise AssertionError("a listing waited for an exit code")

    monkeypatch.setattr(runtime, "wait_exit", no_waiting)
    (listed,) = app.containers(all=True)
    assert (listed.state, listed.exit_code) == ("exited", 137)
    assert _state_row(app, info.id) == ("running", None)
