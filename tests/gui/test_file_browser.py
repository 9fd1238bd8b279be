"""The file browser over images, containers and volumes: viewing, editing, dropping, dragging out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtWidgets import QInputDialog, QMessageBox

from explorer.api import Strata
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, IMAGE, VOLUME, FileSource
from explorer.gui.models.file_tree_model import Role
from explorer.gui.views.file_browser import FileBrowser
from tests.capabilities import require_userns
from tests.gui.conftest import wait_tasks
from tests.gui.storekit import two_images_sharing_steps


@pytest.fixture
def images(strata: Strata) -> Any:
    return two_images_sharing_steps(strata)


def _open(qtbot: Any, window: MainWindow, source: FileSource) -> FileBrowser:
    browser = window.open_browser(source)
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    return browser


def _select(qtbot: Any, browser: FileBrowser, path: str) -> None:
    browser.reveal(path)
    qtbot.waitUntil(lambda: browser.current_path() == path, timeout=5000)


def _row(browser: FileBrowser, path: str) -> Any:
    return browser.model.data(browser.model.index_for_path(path), Role.ROW)


def test_image_files_are_read_only_and_viewable(qtbot: Any, window: MainWindow, images: Any) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:1"))
    assert "read-only" in browser.banner.text()
    assert not browser.mkdir_action.isVisible() and not browser.delete_action.isVisible()
    _select(qtbot, browser, "/etc/hostname")
    viewer = browser.viewer
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=5000)
    assert viewer.text.toPlainText() == "base\n"
    assert viewer.text.isReadOnly() and viewer.edit_button.isHidden()
    _select(qtbot, browser, "/bin/sh")
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.hex, timeout=5000)
    assert viewer.hex.toPlainText().startswith("00000000  7f 45 4c 46")
    assert browser.layer_box.count() == 3 and browser.layer_box.currentIndex() == 2


def test_browse_an_image_as_of_an_earlier_layer(qtbot: Any, window: MainWindow, images: Any) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:1"))
    qtbot.waitUntil(lambda: browser.layer_box.count() == 3, timeout=5000)
    browser.layer_box.activated.emit(0)
    qtbot.waitUntil(lambda: browser.source.at_layer == 0 and browser.model.rowCount() == 3, timeout=5000)
    names = [browser.model.data(browser.model.index(r, 0)) for r in range(browser.model.rowCount())]
    assert names == ["bin", "etc", "usr"]


def test_find_by_name_reveals_the_file(qtbot: Any, window: MainWindow, images: Any) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:2"))
    browser.find_edit.setText("motd")
    browser.find_files()
    qtbot.waitUntil(lambda: browser.results.count() > 0, timeout=5000)
    item = browser.results.item(0)
    assert item.data(Qt.ItemDataRole.UserRole) == "/etc/motd"
    browser.results.itemActivated.emit(item)
    qtbot.waitUntil(lambda: browser.current_path() == "/etc/motd", timeout=5000)


def test_drag_out_exports_the_file(qtbot: Any, window: MainWindow, images: Any) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:1"))
    _select(qtbot, browser, "/etc/hostname")
    mime = browser.flat.mimeData([browser.tree.currentIndex()])
    (url,) = mime.urls()
    assert url.isLocalFile() and Path(url.toLocalFile()).read_text() == "base\n"
    browser.cleanup()
    assert not Path(url.toLocalFile()).exists()


def test_edit_delete_mkdir_and_drop_in_a_container(
    qtbot: Any, window: MainWindow, strata: Strata, images: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """Through the real CopyOps: each edit enters the stopped container's root in a helper."""
    require_userns()
    info = strata.create("app:1", name="c1")
    diff = strata.container_diff_dir("c1")
    browser = _open(qtbot, window, FileSource(CONTAINER, "c1", ident=info.id))
    assert "container" in browser.banner.text() and browser.mkdir_action.isVisible()

    # the runtime rewrites /etc/hostname at every start: not offered for editing
    _select(qtbot, browser, "/etc/hostname")
    viewer = browser.viewer
    qtbot.waitUntil(lambda: viewer.stack.currentWidget() is viewer.text, timeout=5000)
    assert viewer.edit_button.isHidden() and "runtime" in viewer.text.toolTip()

    # edit and save: the file is copied up into the container layer and shows as modified
    _select(qtbot, browser, "/etc/passwd")
    qtbot.waitUntil(
        lambda: (
            viewer.stack.currentWidget() is viewer.text and viewer.row is not None and viewer.row.path == "/etc/passwd"
        ),
        timeout=5000,
    )
    assert not viewer.edit_button.isHidden()
    viewer.edit_button.setChecked(True)
    viewer.text.selectAll()
    viewer.text.insertPlainText("edited\n")
    with qtbot.waitSignal(viewer.saved, timeout=5000):
        viewer.save()
    qtbot.waitUntil(lambda: _row(browser, "/etc/passwd").status == "modified", timeout=5000)
    assert (diff / "etc" / "passwd").read_text() == "edited\n"
    assert (
        browser.model.data(
            browser.model.index(
                browser.model.index_for_path("/etc/passwd").row(), 5, browser.model.index_for_path("/etc")
            )
        )
        == "container"
    )

    # delete: a whiteout in the container layer
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    _select(qtbot, browser, "/etc/motd")
    browser.delete_selected()
    qtbot.waitUntil(
        lambda: _row(browser, "/etc/motd") is not None and _row(browser, "/etc/motd").status == "deleted", timeout=5000
    )

    # new folder
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("conf.d", True))
    _select(qtbot, browser, "/etc/passwd")
    browser.new_folder()
    qtbot.waitUntil(lambda: _row(browser, "/etc/conf.d") is not None, timeout=5000)
    assert (diff / "etc" / "conf.d").is_dir()

    # a file dropped from the desktop onto /etc is copied in
    host = tmp_path / "dropped.txt"
    host.write_text("from the desktop\n")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(host))])
    etc = browser.model.index_for_path("/etc")
    assert browser.model.canDropMimeData(mime, Qt.DropAction.CopyAction, -1, -1, etc)
    assert browser.model.dropMimeData(mime, Qt.DropAction.CopyAction, -1, -1, etc)
    qtbot.waitUntil(lambda: _row(browser, "/etc/dropped.txt") is not None, timeout=5000)
    assert _row(browser, "/etc/dropped.txt").status == "added"
    assert (diff / "etc" / "dropped.txt").read_text() == "from the desktop\n"

    # changed only: what the container changed, and the folders on the way
    browser.set_changed_only(True)
    qtbot.waitUntil(lambda: browser.model.rowCount() == 1, timeout=5000)
    wait_tasks(qtbot, window.ctx)


def test_image_browser_refuses_drops(qtbot: Any, window: MainWindow, images: Any, tmp_path: Path) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:1"))
    host = tmp_path / "x.txt"
    host.write_text("x")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(host))])
    assert not browser.model.canDropMimeData(
        mime, Qt.DropAction.CopyAction, -1, -1, browser.model.index_for_path("/etc")
    )


def test_volume_browse_and_drop(qtbot: Any, window: MainWindow, strata: Strata, tmp_path: Path) -> None:
    require_userns()  # cp_in_volume unpacks in a helper rooted in the volume
    volume = strata.volume_create("data")
    (volume.mountpoint / "seed.txt").write_text("seed\n")
    browser = _open(qtbot, window, FileSource(VOLUME, "data", ident="data"))
    assert _row(browser, "/seed.txt").status == ""
    host = tmp_path / "in.txt"
    host.write_text("in\n")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(host))])
    from PySide6.QtCore import QModelIndex

    assert browser.model.dropMimeData(mime, Qt.DropAction.CopyAction, -1, -1, QModelIndex())
    qtbot.waitUntil(lambda: _row(browser, "/in.txt") is not None, timeout=5000)
    assert (volume.mountpoint / "in.txt").read_text() == "in\n"


def test_extract_to_the_host(qtbot: Any, window: MainWindow, images: Any, tmp_path: Path) -> None:
    browser = _open(qtbot, window, FileSource(IMAGE, "app:1"))
    _select(qtbot, browser, "/etc")
    out = tmp_path / "out"
    out.mkdir()
    browser.extract_selected(str(out))
    qtbot.waitUntil(lambda: (out / "etc" / "passwd").exists(), timeout=5000)
    assert (out / "etc" / "hostname").read_text() == "base\n"
    assert (out / "etc" / "motd").read_text() == "one\n"
