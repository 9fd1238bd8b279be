"""An edit in a container's file viewer is never saved behind the user's back (issue 14).

Selecting another file, closing the tab or closing the window with an edit pending asks
Save / Discard / Cancel, as editors do: Cancel keeps the selection and the edit, Discard
drops it, Save writes it first and only then moves on (or closes).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from explorer.api import Strata
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, FileSource
from explorer.gui.views.file_browser import FileBrowser
from tests.capabilities import require_userns
from tests.gui.conftest import wait_tasks
from tests.gui.storekit import two_images_sharing_steps

Button = QMessageBox.StandardButton


class Answers:
    """Stands in for the question box: records what was asked, answers as told."""

    def __init__(self, monkeypatch: Any) -> None:
        self.asked: list[str] = []
        self.answer = Button.Cancel
        monkeypatch.setattr(QMessageBox, "warning", self._warning)

    def _warning(self, parent: Any, title: str, text: str, *rest: Any) -> Button:
        self.asked.append(text)
        return self.answer


@pytest.fixture
def answers(monkeypatch: Any) -> Iterator[Answers]:
    given = Answers(monkeypatch)
    yield given
    given.answer = Button.Discard  # the window closes at the end of the test


@pytest.fixture
def container(qtbot: Any, window: MainWindow, strata: Strata) -> tuple[FileBrowser, Path]:
    two_images_sharing_steps(strata)
    info = strata.create("app:1", name="c1")
    browser = window.open_browser(FileSource(CONTAINER, "c1", ident=info.id))
    qtbot.waitUntil(lambda: browser.model.rowCount() > 0, timeout=5000)
    return browser, strata.container_diff_dir("c1")


def _shown(qtbot: Any, browser: FileBrowser, path: str) -> None:
    viewer = browser.viewer
    qtbot.waitUntil(
        lambda: viewer.row is not None and viewer.row.path == path and viewer.stack.currentWidget() is viewer.text,
        timeout=5000,
    )


def _edit(qtbot: Any, browser: FileBrowser, path: str, text: str) -> None:
    browser.reveal(path)
    qtbot.waitUntil(lambda: browser.current_path() == path, timeout=5000)
    _shown(qtbot, browser, path)
    viewer = browser.viewer
    viewer.edit_button.setChecked(True)
    viewer.text.selectAll()
    viewer.text.insertPlainText(text)
    assert viewer.is_dirty()


def _click(qtbot: Any, browser: FileBrowser, path: str) -> None:
    """A click on the row, as the user makes it."""
    index = browser.index_for_path(path)
    assert index.isValid()
    browser.tree.scrollTo(index)
    rect = browser.tree.visualRect(index)
    qtbot.mouseClick(browser.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_cancel_keeps_the_selection_and_the_edit(
    qtbot: Any, window: MainWindow, container: tuple[FileBrowser, Path], answers: Answers
) -> None:
    browser, diff = container
    _edit(qtbot, browser, "/etc/passwd", "edited\n")
    answers.answer = Button.Cancel
    _click(qtbot, browser, "/etc/group")
    assert len(answers.asked) == 1 and "/etc/passwd" in answers.asked[0]
    assert browser.current_path() == "/etc/passwd"
    assert [r.path for r in browser.selected_rows()] == ["/etc/passwd"]
    assert browser.viewer.row is not None and browser.viewer.row.path == "/etc/passwd"
    assert browser.viewer.text.toPlainText() == "edited\n" and browser.viewer.is_dirty()
    wait_tasks(qtbot, window.ctx)
    assert not (diff / "etc" / "passwd").exists()  # nothing was written

    # Discard: the other file opens, the container is as it was
    answers.answer = Button.Discard
    _click(qtbot, browser, "/etc/group")
    assert len(answers.asked) == 2
    qtbot.waitUntil(lambda: browser.current_path() == "/etc/group", timeout=5000)
    _shown(qtbot, browser, "/etc/group")
    assert browser.viewer.text.toPlainText() == "root:x:0:\n" and not browser.viewer.is_dirty()
    wait_tasks(qtbot, window.ctx)
    assert not (diff / "etc" / "passwd").exists()


def test_save_writes_then_moves_on(
    qtbot: Any, window: MainWindow, container: tuple[FileBrowser, Path], answers: Answers
) -> None:
    require_userns()  # the write enters the stopped container's root in a helper
    browser, diff = container
    _edit(qtbot, browser, "/etc/passwd", "saved first\n")
    answers.answer = Button.Save
    browser.tree.setCurrentIndex(browser.index_for_path("/etc/group"))  # the keyboard's way
    assert len(answers.asked) == 1
    # until the edit is written the edited file stays selected; then the chosen one opens
    qtbot.waitUntil(lambda: browser.current_path() == "/etc/group", timeout=10000)
    assert (diff / "etc" / "passwd").read_text() == "saved first\n"
    _shown(qtbot, browser, "/etc/group")
    assert not browser.viewer.is_dirty()


def test_closing_the_tab_asks(
    qtbot: Any, window: MainWindow, container: tuple[FileBrowser, Path], answers: Answers
) -> None:
    browser, diff = container
    _edit(qtbot, browser, "/etc/passwd", "edited\n")
    answers.answer = Button.Cancel
    assert not window.close_tab(window.tabs.indexOf(browser))
    assert window.tabs.indexOf(browser) >= 0 and browser.viewer.is_dirty()
    # closing the window asks too, and Cancel keeps it open
    window.close()
    assert window.isVisible() and len(answers.asked) == 2
    answers.answer = Button.Discard
    assert window.close_tab(window.tabs.indexOf(browser))
    wait_tasks(qtbot, window.ctx)
    assert not (diff / "etc" / "passwd").exists()


def test_closing_the_tab_with_save_closes_once_written(
    qtbot: Any, window: MainWindow, container: tuple[FileBrowser, Path], answers: Answers
) -> None:
    require_userns()
    browser, diff = container
    _edit(qtbot, browser, "/etc/passwd", "kept\n")
    answers.answer = Button.Save
    assert not window.close_tab(window.tabs.indexOf(browser))  # not before the write is done
    qtbot.waitUntil(lambda: browser not in window.browsers(), timeout=10000)
    assert (diff / "etc" / "passwd").read_text() == "kept\n"
    assert len(answers.asked) == 1
