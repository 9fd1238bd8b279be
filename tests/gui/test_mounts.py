"""A container's file browser shows its mounts, as Docker Desktop does (issue 14).

Each mount point is a row marked as a mount (icon, tooltip, the Layer column naming the
volume, the bind's host folder or tmpfs), made up where the container's own files have no
such folder; below it are the volume's (or the host folder's) files, and a tmpfs is empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, MOUNTED, FileSource
from explorer.gui.models.file_tree_model import Col, Role
from explorer.gui.views.file_browser import FileBrowser
from tests.gui.storekit import two_images_sharing_steps


@pytest.fixture
def mounted(qtbot: Any, window: MainWindow, strata: Strata, tmp_path: Path) -> tuple[FileBrowser, Path, Path]:
    two_images_sharing_steps(strata)
    volume = strata.volume_create("data")
    (volume.mountpoint / "inside.txt").write_text("in the volume\n")
    (volume.mountpoint / "sub").mkdir()
    host = tmp_path / "host"
    host.mkdir()
    (host / "h.txt").write_text("on the host\n")
    options = RunOptions(
        volumes=["data:/srv/data", f"{host}:/etc/host:ro"], mounts=["type=tmpfs,destination=/run/scratch"]
    )
    info = strata.create("app:1", options, name="web")
    browser = window.open_browser(FileSource(CONTAINER, "web", ident=info.id))
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    return browser, volume.mountpoint, host


def _row(browser: FileBrowser, path: str) -> Any:
    return browser.model.data(browser.model.index_for_path(path), Role.ROW)


def _cell(browser: FileBrowser, path: str, col: int, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
    index = browser.model.index_for_path(path)
    return browser.model.data(browser.model.index(index.row(), col, index.parent()), role)


def _open(qtbot: Any, browser: FileBrowser, path: str) -> None:
    browser.reveal(path)
    qtbot.waitUntil(lambda: browser.current_path() == path, timeout=5000)
    browser.tree.expand(browser.index_for_path(path))
    qtbot.waitUntil(lambda: browser.model.node_for_path(path).children is not None, timeout=5000)


def test_a_named_volume_shows_at_its_mount_point(qtbot: Any, mounted: tuple[FileBrowser, Path, Path]) -> None:
    browser, data, _ = mounted
    # /srv is not in the image: it is made for the mount, as the runtime makes it at start
    srv = _row(browser, "/srv")
    assert srv is not None and srv.type == "dir" and srv.layer == MOUNTED and srv.mount is None
    _open(qtbot, browser, "/srv/data")
    point = _row(browser, "/srv/data")
    assert point.is_mount_point and point.mount.kind == "volume" and point.mount.source == "data"
    tooltip = _cell(browser, "/srv/data", Col.NAME, Qt.ItemDataRole.ToolTipRole)
    assert tooltip == "/srv/data\nvolume data mounted here"
    assert _cell(browser, "/srv/data", Col.LAYER) == "volume data"
    icon = _cell(browser, "/srv/data", Col.NAME, Qt.ItemDataRole.DecorationRole)
    assert icon.cacheKey() == browser.model.icons["mount:volume"].cacheKey()

    # browsing into it shows the volume's files, and they open
    children = sorted(r.data.path for r in browser.model.node_for_path("/srv/data").children or [])
    assert children == ["/srv/data/inside.txt", "/srv/data/sub"]
    assert _cell(browser, "/srv/data/inside.txt", Col.LAYER) == "volume data"
    browser.reveal("/srv/data/inside.txt")
    qtbot.waitUntil(lambda: browser.current_path() == "/srv/data/inside.txt", timeout=5000)
    viewer = browser.viewer
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=5000)
    assert viewer.text.toPlainText() == "in the volume\n"

    # a file written into the volume shows in the container's browser too
    (data / "later.txt").write_text("later\n")
    browser.volume_changed("data", ["/later.txt"])
    qtbot.waitUntil(lambda: browser.model.index_for_path("/srv/data/later.txt").isValid(), timeout=5000)


def test_bind_and_tmpfs_mounts_are_marked(qtbot: Any, mounted: tuple[FileBrowser, Path, Path]) -> None:
    browser, _, host = mounted
    _open(qtbot, browser, "/etc/host")
    point = _row(browser, "/etc/host")
    assert point.is_mount_point and point.mount.kind == "bind"
    assert _cell(browser, "/etc/host", Col.NAME, Qt.ItemDataRole.ToolTipRole) == (
        f"/etc/host\nbind mount of {host} (a folder of this computer); read-only"
    )
    assert [r.data.path for r in browser.model.node_for_path("/etc/host").children or []] == ["/etc/host/h.txt"]
    # the image's own /etc is still there beside it
    assert _row(browser, "/etc/passwd").mount is None
    # read-only: not offered for editing, and it says why
    browser.reveal("/etc/host/h.txt")
    qtbot.waitUntil(lambda: browser.current_path() == "/etc/host/h.txt", timeout=5000)
    viewer = browser.viewer
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=5000)
    assert viewer.text.toPlainText() == "on the host\n" and viewer.edit_button.isHidden()
    assert "read-only" in viewer.text.toolTip()

    _open(qtbot, browser, "/run/scratch")
    tmpfs = _row(browser, "/run/scratch")
    assert tmpfs.is_mount_point and tmpfs.mount.kind == "tmpfs"
    assert _cell(browser, "/run/scratch", Col.LAYER) == "tmpfs"
    assert "tmpfs mounted here" in _cell(browser, "/run/scratch", Col.NAME, Qt.ItemDataRole.ToolTipRole)
    assert browser.model.node_for_path("/run/scratch").children == []


def test_what_holds_a_mount_is_not_deleted(
    qtbot: Any, mounted: tuple[FileBrowser, Path, Path], monkeypatch: Any, tmp_path: Path
) -> None:
    browser, data, _ = mounted
    asked: list[bool] = []
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.question", lambda *a, **k: asked.append(True))
    browser.reveal("/srv")
    qtbot.waitUntil(lambda: browser.current_path() == "/srv", timeout=5000)
    browser.delete_selected()
    assert asked == [] and "holds the mount point /srv/data" in browser.error.text()
    assert (data / "inside.txt").exists()

    # Extract copies the volume's files out under the mount point's name
    _open(qtbot, browser, "/srv/data")
    browser.reveal("/srv/data")
    qtbot.waitUntil(lambda: browser.current_path() == "/srv/data", timeout=5000)
    out = tmp_path / "out"
    out.mkdir()
    browser.extract_selected(str(out))
    qtbot.waitUntil(lambda: (out / "data" / "inside.txt").exists(), timeout=5000)
    assert (out / "data" / "inside.txt").read_text() == "in the volume\n"
