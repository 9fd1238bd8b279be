"""The Containers, Volumes and Analysis tabs, driven as a user would."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QInputDialog, QMessageBox

from explorer.api import Strata
from explorer.gui.dialogs import TextDialog
from explorer.gui.main_window import MainWindow
from explorer.gui.views.analysis_view import AnalysisView
from tests.gui.storekit import two_images_sharing_steps


def _refreshed(qtbot: Any, window: MainWindow) -> None:
    with qtbot.waitSignal(window.refreshed, timeout=10000):
        window.refresh()


def test_containers_tab(qtbot: Any, window: MainWindow, strata: Strata, monkeypatch: Any) -> None:
    two_images_sharing_steps(strata)
    strata.create("app:1", name="web")
    _refreshed(qtbot, window)
    view = window.containers_view
    window.show_section("containers")
    assert window.tabs.currentWidget() is view
    view.table.selectRow(0)
    actions = view.actions_
    assert actions["start"].isEnabled() and not actions["stop"].isEnabled()
    assert actions["logs"].isEnabled() and actions["commit"].isEnabled()
    assert view.model.data(view.model.index(0, 5)) == "Created"

    # diff: the container's own changes, in a dialog
    (strata.container_diff_dir("web") / "new.txt").write_text("x")
    shown: list[TextDialog] = []
    monkeypatch.setattr(TextDialog, "show", lambda self: shown.append(self))
    actions["diff"].trigger()
    qtbot.waitUntil(lambda: bool(shown), timeout=5000)
    assert "A /new.txt" in shown[0].view.toPlainText()

    # commit: a new image from the container's layer
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("web:snapshot", True))
    with qtbot.waitSignal(
        window.refreshed, timeout=10000, check_params_cb=lambda s: any(r.repository == "web" for r in s.images)
    ):
        actions["commit"].trigger()

    # remove, after the confirmation
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    view.table.selectRow(0)
    with qtbot.waitSignal(window.refreshed, timeout=10000, check_params_cb=lambda s: not s.containers):
        actions["rm"].trigger()
    assert view.model.rowCount() == 0


def test_volumes_tab(qtbot: Any, window: MainWindow, strata: Strata, monkeypatch: Any) -> None:
    view = window.volumes_view
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("cache", True))
    with qtbot.waitSignal(window.refreshed, timeout=10000, check_params_cb=lambda s: len(s.volumes) == 1):
        view.actions_["create"].trigger()
    assert view.model.records[0].name == "cache"
    (strata.volume("cache").mountpoint / "blob").write_bytes(b"x" * 5000)
    _refreshed(qtbot, window)
    assert view.model.data(view.model.index(0, 2)) == "4.9 KiB"
    view.table.selectRow(0)
    assert view.actions_["browse"].isEnabled()
    view.actions_["browse"].trigger()
    assert window.browsers()[-1].source.ref == "cache"
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.show_section("volumes")
    view.table.selectRow(0)
    with qtbot.waitSignal(window.refreshed, timeout=10000, check_params_cb=lambda s: not s.volumes):
        view.actions_["rm"].trigger()
    qtbot.waitUntil(lambda: "no longer exists" in window.browsers()[-1].error.text(), timeout=5000)


def test_analysis_counts_wasted_space_once(qtbot: Any, window: MainWindow, strata: Strata) -> None:
    two_images_sharing_steps(strata)
    _refreshed(qtbot, window)
    view = window.open_analysis("app:1")
    assert isinstance(view, AnalysisView)
    qtbot.waitUntil(lambda: view.result is not None, timeout=5000)
    assert view.layers.rowCount() == 3
    (offender,) = view.offenders.records
    assert offender.path == "/tmp/cache.bin" and offender.wasted_bytes == 4096
    assert view.efficiency.value() < 1000
    assert "efficiency" in view.efficiency.format()
    view.layers_table.sortByColumn(3, view.layers_table.horizontalHeader().sortIndicatorOrder())
    wasted = [r.wasted for r in view.layers.records]
    assert sorted(wasted) in (wasted, wasted[::-1])
