"""Live refresh: changes made outside the window show up in it by themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata
from explorer.gui.context import AppContext
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, VOLUME, FileSource
from explorer.gui.models.file_tree_model import Role
from explorer.gui.watch import StoreWatcher
from tests.gui.storekit import BASE, add_image, two_images_sharing_steps


@pytest.fixture
def live_window(qtbot: Any, ctx: AppContext, strata: Strata) -> Any:
    two_images_sharing_steps(strata)
    watcher = StoreWatcher(strata.root, ctx, debounce_ms=100)
    win = MainWindow(ctx, watcher)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.refreshed, timeout=10000):
        win.refresh()
    with qtbot.waitSignal(watcher.synced, timeout=10000):
        assert watcher.start()
    yield win
    watcher.stop()
    ctx.runner.cancel_all()
    ctx.runner.wait(5000)


def test_watcher_names_what_changed(qtbot: Any, ctx: AppContext, strata: Strata) -> None:
    two_images_sharing_steps(strata)
    info = strata.create("app:1", name="c1")
    volume = strata.volume_create("vol")
    watcher = StoreWatcher(strata.root, ctx, debounce_ms=50)
    with qtbot.waitSignal(watcher.synced, timeout=10000):
        assert watcher.start()
    try:
        diff = strata.container_diff_dir("c1")
        with qtbot.waitSignal(watcher.containerFilesChanged, timeout=3000) as seen:
            (diff / "hello.txt").write_text("hi")
        assert seen.args == [info.id, ["/hello.txt"]]
        with qtbot.waitSignal(watcher.volumeFilesChanged, timeout=3000) as seen:
            (volume.mountpoint / "sub").mkdir()
        assert seen.args == ["vol", ["/sub"]]
        with qtbot.waitSignal(watcher.storeChanged, timeout=3000):
            strata.tag("app:1", "app:again")
    finally:
        watcher.stop()


def test_write_into_a_container_shows_live(qtbot: Any, live_window: MainWindow, strata: Strata) -> None:
    info = strata.create("app:1", name="c1")
    qtbot.waitUntil(lambda: live_window.containers_view.model.rowCount() == 1, timeout=5000)
    watcher = live_window.watcher
    assert watcher is not None
    diff = strata.container_diff_dir("c1")
    qtbot.waitUntil(lambda: str(diff) in watcher.report.watched, timeout=5000)  # set up by a worker
    browser = live_window.open_browser(FileSource(CONTAINER, "c1", ident=info.id))
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    browser.reveal("/etc/hostname")
    qtbot.waitUntil(lambda: browser.current_path() == "/etc/hostname", timeout=5000)
    expanded_before = browser.tree.isExpanded(browser.index_for_path("/etc"))
    (diff / "etc").mkdir()
    (diff / "etc" / "written-outside.conf").write_text("by another program\n")
    # How soon is a benchmark's question (tests/gui/test_bench.py); here: it does arrive.
    qtbot.waitUntil(lambda: browser.model.index_for_path("/etc/written-outside.conf").isValid(), timeout=5000)
    new = browser.model.index_for_path("/etc/written-outside.conf")
    assert browser.model.data(new, Role.JUST_CHANGED)
    assert browser.model.data(new, Role.ROW).status == "added"
    # the refresh kept the user's place
    assert browser.tree.isExpanded(browser.index_for_path("/etc")) == expanded_before
    assert browser.current_path() == "/etc/hostname"


def test_write_into_a_volume_shows(qtbot: Any, live_window: MainWindow, strata: Strata) -> None:
    volume = strata.volume_create("data")
    qtbot.waitUntil(lambda: live_window.volumes_view.model.rowCount() == 1, timeout=5000)
    watcher = live_window.watcher
    assert watcher is not None
    qtbot.waitUntil(lambda: str(volume.mountpoint) in watcher.report.watched, timeout=5000)
    browser = live_window.open_browser(FileSource(VOLUME, "data", ident="data"))
    qtbot.waitUntil(lambda: browser.snapshot is not None, timeout=5000)
    Path(volume.mountpoint / "log.txt").write_text("line\n")
    qtbot.waitUntil(lambda: browser.model.index_for_path("/log.txt").isValid(), timeout=3000)


def test_a_build_from_a_terminal_appears(qtbot: Any, live_window: MainWindow, strata: Strata) -> None:
    other = Strata(strata.root)  # another process, as far as the window can tell
    try:
        before = live_window.layer_view.model.rowCount(live_window.layer_view.model.index(0, 0))
        add_image(other, "outside:1", [BASE[0], ("/bin/sh -c echo x > /x", {"/x": b"x"})])
        qtbot.waitUntil(
            lambda: any(r.repository == "outside" for r in live_window.images_view.model.records), timeout=3000
        )
        base = live_window.layer_view.model.index(0, 0)
        assert live_window.layer_view.model.rowCount(base) == before + 1
    finally:
        other.close()
