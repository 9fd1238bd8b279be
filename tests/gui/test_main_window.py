"""The main window: what it shows of a store, drops, settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget

from explorer.api import Strata
from explorer.builder.events import BuildEvent
from explorer.gui.context import AppContext
from explorer.gui.editor.dockerfile_editor import DockerfileEditor
from explorer.gui.main_window import MainWindow, default_tag
from explorer.gui.sidebar import CONTAINERS, IMAGES, LAYERS
from tests.gui.archives import write_docker_archive
from tests.gui.conftest import wait_tasks
from tests.gui.storekit import two_images_sharing_steps
from tests.gui.test_editor import ScriptedBuild


def _drop(target: QWidget, paths: list[Path]) -> bool:
    """What the desktop does on a drop: enter, then drop, with file URLs."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    try:  # PySide 6.12 takes a QPointF (and deprecates QPoint); earlier ones only a QPoint
        enter = QDragEnterEvent(QPointF(20, 20), *args)
    except TypeError:
        enter = QDragEnterEvent(QPoint(20, 20), *args)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(
        QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(target, drop)
    return drop.isAccepted()


def test_window_shows_the_store(qtbot: Any, strata: Strata, ctx: AppContext, window: MainWindow) -> None:
    assert window.windowTitle().startswith("Strata")
    two_images_sharing_steps(strata)
    strata.create("app:1", name="web")
    with qtbot.waitSignal(window.refreshed, timeout=10000):
        window.refresh()
    assert window.sidebar.sections[IMAGES].childCount() == 2
    assert window.sidebar.sections[IMAGES].text(1).startswith("2 · ")
    assert window.sidebar.sections[LAYERS].text(1) == "4"
    assert window.sidebar.sections[CONTAINERS].childCount() == 1
    assert window.images_view.model.rowCount() == 2
    assert window.layer_view.model.rowCount() == 1
    assert window.containers_view.model.rowCount() == 1
    assert "free" in window.disk_label.text() and str(strata.root) in window.root_label.text()
    # selecting an image fills the inspector
    window.images_view.table.selectRow(0)
    qtbot.waitUntil(lambda: window.inspector.tree.topLevelItemCount() >= 4, timeout=5000)
    titles = [window.inspector.tree.topLevelItem(i).text(0) for i in range(window.inspector.tree.topLevelItemCount())]
    assert titles == ["Image", "Config", "Layers", "History"]


def test_shortcuts_exist(window: MainWindow) -> None:
    shortcuts = {k: a.shortcut().toString() for k, a in window.actions_.items()}
    for key in ("open", "save", "build", "run", "refresh", "find"):
        assert shortcuts[key], key
    assert shortcuts["build"] == "Ctrl+B" and shortcuts["run"] == "Ctrl+R"


@pytest.fixture
def build_window(qtbot: Any, tmp_path: Path, settings: Any) -> Any:
    strata = ScriptedBuild(tmp_path / "store")
    strata.calls = []
    strata.gate = None
    strata.fail = None
    strata.script = [BuildEvent("running", 1, 1, line=1, vertex=1), BuildEvent("cached", 1, 1, line=1, vertex=1)]
    ctx = AppContext(strata, settings)
    win = MainWindow(ctx, None)
    qtbot.addWidget(win)
    win.show()
    yield strata, win
    ctx.runner.cancel_all()
    ctx.shutdown()


def test_dropping_a_dockerfile_folder_opens_and_builds_it(qtbot: Any, build_window: Any, tmp_path: Path) -> None:
    strata, win = build_window
    folder = tmp_path / "My App"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    assert _drop(win, [folder])
    qtbot.waitUntil(lambda: bool(strata.calls), timeout=10000)
    (editor,) = win.editors()
    assert editor.path == folder / "Dockerfile"
    assert editor.context_dir == folder
    assert strata.calls[0]["context"] == str(folder)
    assert strata.calls[0]["tags"] == ("my-app:latest",)
    assert win.tabs.currentWidget() is editor
    qtbot.waitUntil(lambda: editor.run is None, timeout=10000)
    assert editor.editor.steps[1].state == "cached"
    assert str(folder / "Dockerfile") in win.recent_files()


def test_a_drop_on_the_editor_reaches_the_window(qtbot: Any, build_window: Any, tmp_path: Path) -> None:
    strata, win = build_window
    editor = win.new_editor()
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    assert _drop(editor.editor.viewport(), [tmp_path / "Dockerfile"])
    qtbot.waitUntil(lambda: bool(strata.calls), timeout=10000)
    assert any(e.path == tmp_path / "Dockerfile" for e in win.editors())
    assert editor.text() != "FROM scratch\n" or editor.path is not None  # the drop did not paste a path


def test_dropping_a_tar_loads_it(qtbot: Any, strata: Strata, window: MainWindow, tmp_path: Path) -> None:
    archive = write_docker_archive(tmp_path / "dropped.tar", "dropped:1", {"/hello.txt": b"hi\n"})
    with qtbot.waitSignal(window.refreshed, timeout=10000, check_params_cb=lambda s: len(s.images) == 1):
        assert _drop(window, [archive])
    assert window.images_view.model.records[0].repository == "dropped"
    node = window.layer_view.current_node()
    assert node is not None and node.tags == ["dropped:1"]  # the new image is selected in the tree
    assert "loaded dropped.tar" in window.events.toPlainText()


def test_refused_drop_says_why(qtbot: Any, window: MainWindow, tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("x")
    _drop(window, [other])
    assert "drop a Dockerfile" in window.events.toPlainText()


def test_layout_and_recent_files_persist(qtbot: Any, ctx: AppContext, window: MainWindow, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    window.open_editor(tmp_path / "Dockerfile")
    window.inspector_dock.hide()
    window.resize(700, 500)
    window.close()
    second = MainWindow(ctx, None)
    qtbot.addWidget(second)
    assert second.recent_files()[0] == str(tmp_path / "Dockerfile")
    assert second.recent_menu.actions()[0].text() == str(tmp_path / "Dockerfile")
    assert second.inspector_dock.isHidden()
    assert second.size().width() == 700


def test_default_tag() -> None:
    assert default_tag(Path("/x/My App")) == "my-app:latest"
    assert default_tag(Path("/x/...")) == "image:latest"


def test_unsaved_editor_asks_before_closing(qtbot: Any, window: MainWindow, monkeypatch: Any) -> None:
    from PySide6.QtWidgets import QMessageBox

    editor = window.new_editor()
    editor.set_text("FROM scratch\nRUN true\n")
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Cancel)
    assert not window.close_tab(window.tabs.indexOf(editor))
    assert asked and "Save the changes" in asked[0]
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: QMessageBox.StandardButton.Discard)
    assert window.close_tab(window.tabs.indexOf(editor))
    assert isinstance(window.tabs.currentWidget(), QWidget)
    assert not any(isinstance(w, DockerfileEditor) for w in window._tab_widgets())
    wait_tasks(qtbot, window.ctx)
