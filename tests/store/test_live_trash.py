"""``system check --repair`` and opening the store leave alone the trash a live ``rm``
is still deleting (issue 13, data loss): the trash carries its remover's mark in its
name from the rename on, and nothing under tmp/ goes while its owner runs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from explorer import fsutil
from explorer.api import Strata
from explorer.store.marks import owner_live
from explorer.store.store import Store
from tests.capabilities import require_userns


def _pause_in_trash(monkeypatch: pytest.MonkeyPatch, during: Callable[[Path], None]) -> list[Path]:
    """Run ``during(trash)`` while the remover is between its rename to trash and the
    deletion, as a second process would see the store then."""
    real = fsutil.rmtree
    seen: list[Path] = []

    def paused(path: str | os.PathLike[str]) -> None:
        p = Path(path)
        if p.parent.name == "tmp" and p.name.startswith("trash-") and not seen:
            seen.append(p)
            during(p)
        real(path)

    monkeypatch.setattr(fsutil, "rmtree", paused)
    return seen


def test_repair_spares_the_trash_of_a_live_container_removal(
    tmp_path: Path, busybox_rootfs_tar: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One driver: the container never runs; its directory is trash as a whole, whatever is in it."""
    require_userns()
    root = tmp_path / "store"
    app = Strata(root)
    image = app.import_rootfs(str(busybox_rootfs_tar), "bb:1")
    rec = app.store.containers.create(image.id, "bb:1", {"Cmd": ["true"]}, "vfs", "box")
    (app.store.containers.diff_dir(rec.id) / "data").write_text("still being deleted\n")
    reports: list[list[str]] = []

    def repair_meanwhile(trash: Path) -> None:
        other = Strata(root)
        try:
            problems = other.check(repair=True)
            reports.append([p.what for p in problems])
            assert trash.is_dir(), "check --repair deleted a live process's trash"
            Store(root).close()
            assert trash.is_dir(), "opening the store deleted a live process's trash"
            assert owner_live(trash), f"{trash.name}: the trash of a live remover carries no mark"
        finally:
            other.close()

    seen = _pause_in_trash(monkeypatch, repair_meanwhile)
    app.store.containers.remove(rec.id)
    assert len(seen) == 1 and reports == [[]]
    assert os.listdir(root / "tmp") == [] and os.listdir(root / "containers") == []
    app.close()


def test_trash_of_a_remover_that_died_is_removed(tmp_path: Path) -> None:
    """The mark is a pid and a start time: once that process is gone the trash is a
    crash's leftover, which opening the store removes."""
    from explorer.store.marks import owned_name

    root = tmp_path / "store"
    Store(root).close()
    mine = owned_name("trash-0123456789ab")
    pid, _, start = mine.rpartition("@")[2].partition("-")
    assert int(pid) == os.getpid()
    dead = root / "tmp" / f"trash-0123456789ab@{pid}-{int(start or 0) + 1}"  # same pid, another process
    (dead / "diff").mkdir(parents=True)
    live = root / "tmp" / mine
    (live / "diff").mkdir(parents=True)
    Store(root).close()
    assert not dead.exists()
    assert live.is_dir()
