"""Setting up live refresh (issue 14): off the GUI thread, and still live when inotify runs out.

The watches are set up by a worker at start and after every store change, so the GUI
thread never walks a container's diff or a volume. A root inotify has no room for (the
per-user watch budget spent: ENOSPC) is polled instead, the status bar says so, and a
change there still reaches the open view.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watchdog.observers import inotify_c
from watchdog.observers.api import BaseObserver

from explorer.api import Strata
from explorer.gui import watch
from explorer.gui.context import AppContext
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, VOLUME, FileSource
from explorer.gui.views.file_browser import FileBrowser
from explorer.gui.watch import StoreWatcher
from tests.gui.storekit import two_images_sharing_steps

POLL = 0.2


def _window(qtbot: Any, ctx: AppContext, strata: Strata) -> MainWindow:
    watcher = StoreWatcher(strata.root, ctx, debounce_ms=50, poll_seconds=POLL)
    win = MainWindow(ctx, watcher)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.refreshed, timeout=10000):
        win.refresh()
    with qtbot.waitSignal(watcher.synced, timeout=10000):
        watcher.start()
    return win


@pytest.fixture
def stopping(ctx: AppContext) -> Iterator[list[MainWindow]]:
    windows: list[MainWindow] = []
    yield windows
    for win in windows:
        if win.watcher is not None:
            win.watcher.stop()
    ctx.runner.cancel_all()
    ctx.runner.wait(5000)


def _browse(qtbot: Any, win: MainWindow, source: FileSource) -> FileBrowser:
    browser = win.open_browser(source)
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    return browser


def _limit() -> str:
    return Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()


def test_watch_limit_on_a_diff_falls_back_to_polling(
    qtbot: Any, ctx: AppContext, strata: Strata, monkeypatch: Any, stopping: list[MainWindow]
) -> None:
    two_images_sharing_steps(strata)
    info = strata.create("app:1", name="c1")
    diff = strata.container_diff_dir("c1")
    containers = str(strata.root / "containers") + os.sep
    real_add_watch = inotify_c.inotify_add_watch

    def add_watch(fd: int, path: bytes, mask: int) -> int:
        """The kernel's answer once the user's watches are spent, for anything below containers/."""
        if os.fsdecode(path).startswith(containers):
            ctypes.set_errno(errno.ENOSPC)
            return -1
        return int(real_add_watch(fd, path, mask))

    monkeypatch.setattr(inotify_c, "inotify_add_watch", add_watch)
    win = _window(qtbot, ctx, strata)
    stopping.append(win)
    watcher = win.watcher
    assert watcher is not None
    assert watcher.report.polled == {str(diff)}
    assert str(strata.root) in watcher.report.watched  # the rest is still watched by inotify
    text = (
        f"live refresh: inotify watch limit reached (fs.inotify.max_user_watches={_limit()}); "
        f"polling changed roots every {POLL:g}s"
    )
    assert win.watch_label.text() == text and win.watch_label.isVisibleTo(win)
    assert str(diff) in win.watch_label.toolTip()

    browser = _browse(qtbot, win, FileSource(CONTAINER, "c1", ident=info.id))
    (diff / "polled.txt").write_text("seen by the poll\n")
    qtbot.waitUntil(lambda: browser.model.index_for_path("/polled.txt").isValid(), timeout=5000)


def test_sub_folders_that_did_not_fit_are_polled(
    qtbot: Any, ctx: AppContext, strata: Strata, monkeypatch: Any, stopping: list[MainWindow]
) -> None:
    """watchdog leaves a sub-folder it could not watch unwatched silently; the probe after
    each recursive watch finds the budget spent, and the whole root is polled instead."""
    volume = strata.volume_create("data")
    (volume.mountpoint / "deep" / "er").mkdir(parents=True)
    data = str(volume.mountpoint)
    probed: list[str] = []

    def full(path: str) -> bool:
        probed.append(path)
        return path == data

    monkeypatch.setattr(watch, "inotify_full", full)
    win = _window(qtbot, ctx, strata)
    stopping.append(win)
    assert win.watcher is not None
    assert win.watcher.report.polled == {data} and data not in win.watcher.report.watched
    assert data in probed and win.watch_label.text().startswith("live refresh: inotify watch limit reached")

    browser = _browse(qtbot, win, FileSource(VOLUME, "data", ident="data"))
    browser.reveal("/deep/er")
    qtbot.waitUntil(lambda: browser.current_path() == "/deep/er", timeout=5000)
    (volume.mountpoint / "deep" / "new.txt").write_text("x")  # a sub-folder, listed in the view
    qtbot.waitUntil(lambda: browser.model.index_for_path("/deep/new.txt").isValid(), timeout=5000)


def test_set_up_runs_off_the_gui_thread(
    qtbot: Any, ctx: AppContext, strata: Strata, monkeypatch: Any, stopping: list[MainWindow]
) -> None:
    two_images_sharing_steps(strata)
    walks: list[tuple[str, threading.Thread]] = []
    real_targets = StoreWatcher.targets
    real_schedule = BaseObserver.schedule

    def targets(self: StoreWatcher, context: Path | None = None) -> dict[str, bool]:
        walks.append(("targets", threading.current_thread()))
        return real_targets(self, context)

    def schedule(self: BaseObserver, handler: Any, path: Any, **kw: Any) -> Any:
        walks.append((str(path), threading.current_thread()))  # a recursive schedule walks the tree
        return real_schedule(self, handler, path, **kw)

    monkeypatch.setattr(StoreWatcher, "targets", targets)
    monkeypatch.setattr(BaseObserver, "schedule", schedule)
    win = _window(qtbot, ctx, strata)
    stopping.append(win)
    watcher = win.watcher
    assert watcher is not None
    assert walks and ("targets", threading.current_thread()) != walks[0]

    # a store change: a new container; its diff is watched by a later pass, off the GUI thread too
    info = strata.create("app:1", name="later")
    diff = strata.container_diff_dir("later")
    qtbot.waitUntil(lambda: str(diff) in watcher.report.watched, timeout=5000)
    main = threading.main_thread()
    assert [w for w in walks if w[1] is main] == []
    assert str(diff) in {path for path, _ in walks}

    browser = _browse(qtbot, win, FileSource(CONTAINER, "later", ident=info.id))
    (diff / "after-the-change.txt").write_text("live\n")
    qtbot.waitUntil(lambda: browser.model.index_for_path("/after-the-change.txt").isValid(), timeout=5000)
