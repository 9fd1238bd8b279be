"""Dragging out of the file browser writes the files in a worker (issue 14).

The drag's data is ready at once; the copy runs on a pool thread, shown with the other
operations (cancellable), and the URLs are handed over when the drop target asks, after
the copy is done, while the window's event loop keeps running. A drag that ends nowhere,
or a cancel, takes the half-written copy away.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QDrag

from explorer.api import Strata
from explorer.gui import drag_out
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import IMAGE, FileSource
from explorer.gui.views import file_browser
from explorer.gui.views.file_browser import FileBrowser
from tests.gui.conftest import wait_tasks
from tests.gui.storekit import two_images_sharing_steps


class Gate:
    """Holds every export at its start until released, and notes the thread it ran on."""

    def __init__(self, monkeypatch: Any) -> None:
        self.release = threading.Event()
        self.started = threading.Event()
        self.threads: list[threading.Thread] = []
        real = file_browser.extract

        def extract(*args: Any) -> Path:
            self.threads.append(threading.current_thread())
            self.started.set()
            assert self.release.wait(10), "the test never released the export"
            return real(*args)

        monkeypatch.setattr(file_browser, "extract", extract)


@pytest.fixture
def browser(qtbot: Any, window: MainWindow, strata: Strata) -> FileBrowser:
    two_images_sharing_steps(strata)
    opened = window.open_browser(FileSource(IMAGE, "app:1"))
    qtbot.waitUntil(lambda: opened.model.rowCount() > 0, timeout=5000)
    opened.reveal("/etc")
    qtbot.waitUntil(lambda: opened.current_path() == "/etc", timeout=5000)
    return opened


def _export_task(window: MainWindow) -> Any:
    tasks = [t for t in window.ctx.runner.visible_tasks() if t.title == "export /etc for a drag"]
    return tasks[0] if tasks else None


def test_a_folder_is_written_in_a_worker_while_the_window_runs(
    qtbot: Any, window: MainWindow, browser: FileBrowser, monkeypatch: Any
) -> None:
    gate = Gate(monkeypatch)
    mime = browser.flat.mimeData([browser.tree.currentIndex()])
    # the drag has its data while nothing is written yet
    assert isinstance(mime, drag_out.DragExport) and mime.hasUrls() and not mime.done
    assert gate.started.wait(5)
    assert gate.threads[0] is not threading.main_thread()
    # shown with the other operations, with a cancel
    qtbot.waitUntil(lambda: _export_task(window) is not None, timeout=5000)
    assert _export_task(window).cancellable
    assert window.tasks.isVisible() and "export /etc for a drag" in window.tasks.label.text()

    # the drop asks for the URLs before the copy is done: the event loop keeps running
    # (this timer fires while urls() waits, and it is what lets the copy finish)
    ticks: list[bool] = []
    QTimer.singleShot(50, lambda: (ticks.append(True), gate.release.set()))
    (url,) = mime.urls()
    assert ticks == [True]
    # a desktop drop asks for the same list as text
    assert bytes(mime.data(drag_out.URI_LIST).data()) == bytes(url.toEncoded().data()) + b"\r\n"
    out = Path(url.toLocalFile())
    assert out.name == "etc" and (out / "hostname").read_text() == "base\n"
    assert (out / "motd").read_text() == "one\n"
    browser.cleanup()
    assert not out.exists()


def test_cancel_takes_the_copy_away(qtbot: Any, window: MainWindow, browser: FileBrowser, monkeypatch: Any) -> None:
    gate = Gate(monkeypatch)
    mime = browser.flat.mimeData([browser.tree.currentIndex()])
    assert isinstance(mime, drag_out.DragExport)
    assert gate.started.wait(5)
    holder = Path(browser._drag_dirs[-1].name)
    assert holder.is_dir()
    qtbot.waitUntil(lambda: _export_task(window) is not None, timeout=5000)
    _export_task(window).cancel()  # the status bar's "Cancel export /etc for a drag"
    gate.release.set()
    assert mime.urls() == []
    assert mime.failure is not None and mime.failure.cancelled
    wait_tasks(qtbot, window.ctx)
    assert not holder.exists() and browser.error.isHidden()


def test_a_drag_ending_nowhere_stops_the_copy(
    qtbot: Any, window: MainWindow, browser: FileBrowser, monkeypatch: Any
) -> None:
    gate = Gate(monkeypatch)
    seen: list[Any] = []

    def exec_(drag: QDrag, *args: Any) -> Qt.DropAction:
        seen.append(drag.mimeData())
        return Qt.DropAction.IgnoreAction  # dropped back where it came from, or Escape

    monkeypatch.setattr(QDrag, "exec", exec_)
    browser.tree.startDrag(Qt.DropAction.CopyAction)
    (mime,) = seen
    assert isinstance(mime, drag_out.DragExport)
    holder = Path(browser._drag_dirs[-1].name)
    gate.release.set()
    wait_tasks(qtbot, window.ctx)
    assert not holder.exists() and browser._drag_dirs == []
