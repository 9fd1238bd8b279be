"""At 1280x800 the window's tabs fit with five documents open (issue 14).

Every tab is on screen without scrolling, each document keeps a visible close button and
its full name in the tooltip, and the store's pinned views fall back to their icons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTabBar

from explorer.api import Strata
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import IMAGE, FileSource
from tests.gui.storekit import two_images_sharing_steps

NAMES = ("Dockerfile", "web.dockerfile", "Dockerfile.production-builder")


def _five_documents(qtbot: Any, window: MainWindow, strata: Strata, tmp_path: Path) -> list[Path]:
    two_images_sharing_steps(strata)
    project = tmp_path / "shop-backend"
    project.mkdir()
    paths = []
    for name in NAMES:
        path = project / name
        path.write_text("FROM scratch\n")
        window.open_editor(path, project)
        paths.append(path)
    window.open_browser(FileSource(IMAGE, "app:1"))
    window.open_browser(FileSource(IMAGE, "app:2"))
    qtbot.waitUntil(lambda: window.tabs.count() == 10 and window.tabs.compact, timeout=5000)
    qtbot.wait(20)  # the tab bar lays itself out from the event loop
    return paths


def test_five_documents_fit_at_1280x800(qtbot: Any, window: MainWindow, strata: Strata, tmp_path: Path) -> None:
    window.resize(1280, 800)
    paths = _five_documents(qtbot, window, strata, tmp_path)
    assert (window.width(), window.height()) == (1280, 800)
    assert window.minimumSizeHint().width() <= 1280
    tabs, bar = window.tabs, window.tabs.tabBar()
    assert tabs.geometry().right() < window.width()
    assert bar.width() <= tabs.room() and bar.minimumSizeHint().width() <= bar.width()
    for i in range(bar.count()):
        rect = bar.tabRect(i)
        assert rect.left() >= 0 and rect.right() < bar.width(), f"tab {i} ({tabs.title_of(i)}) is scrolled off"
        assert rect.width() >= bar.minimumTabSizeHint(i).width()
        close = bar.tabButton(i, QTabBar.ButtonPosition.RightSide)
        if tabs.is_pinned(tabs.widget(i)):
            assert close is None and tabs.tabText(i) == "" and tabs.tabToolTip(i) == tabs.title_of(i)
        else:
            assert close is not None and close.isVisible()
            assert rect.contains(close.geometry()), f"the close button of {tabs.title_of(i)} is cut"
    editors = window.editors()
    assert [tabs.tabToolTip(tabs.indexOf(e)) for e in editors] == [str(p) for p in paths]
    assert [tabs.title_of(tabs.indexOf(e)) for e in editors] == ["shop-backend/Dockerfile", *NAMES[1:]]
    # nothing out of reach: the corner button lists every tab by its full title
    tabs.tab_menu.aboutToShow.emit()
    listed = [a.text() for a in tabs.tab_menu.actions()]
    assert listed == [tabs.title_of(i) for i in range(tabs.count())]
    assert listed[:5] == ["Images", "Layer tree", "Containers", "Volumes", "Disk usage"]
    shot = window.grab()
    assert (shot.width(), shot.height()) == (
        round(1280 * shot.devicePixelRatio()),
        round(800 * shot.devicePixelRatio()),
    )


def test_pinned_titles_come_back_with_room(qtbot: Any, window: MainWindow, strata: Strata, tmp_path: Path) -> None:
    window.resize(1280, 800)
    _five_documents(qtbot, window, strata, tmp_path)
    for editor in window.editors():
        window.close_tab(window.tabs.indexOf(editor))
    for browser in window.browsers():
        window.close_tab(window.tabs.indexOf(browser))
    qtbot.waitUntil(lambda: not window.tabs.compact, timeout=5000)
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [
        "Images",
        "Layer tree",
        "Containers",
        "Volumes",
        "Disk usage",
    ]
