"""The Volumes tab: create, remove, prune, browse."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QVBoxLayout, QWidget

from ..context import AppContext
from ..icons import icon
from ..models.tables import volumes_model
from ..operations import Operations
from .tables import RecordTable


class VolumesView(QWidget):
    browseVolume = Signal(str)
    volumeSelected = Signal(object)

    def __init__(self, ctx: AppContext, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ops = ops
        self.sizes: dict[str, int] = {}
        self.model = volumes_model(self.sizes, self)
        self.table = RecordTable(self.model, self, stretch=5)
        self.table.setObjectName("volumes-table")
        self.table.doubleClicked.connect(lambda _: self._browse())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.table.selectionModel().currentRowChanged.connect(
            lambda cur, _: self.volumeSelected.emit(self.model.record(cur))
        )
        bar = QToolBar(self)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.actions_: dict[str, QAction] = {
            "create": bar.addAction(icon("new"), "Create…", ops.volume_create),
            "rm": bar.addAction(
                icon("delete"), "Remove", lambda: ops.volume_rm([r.name for r in self.table.selected_records()])
            ),
            "prune": bar.addAction(icon("prune"), "Prune…", ops.volume_prune),
            "browse": bar.addAction(icon("folder"), "Browse files", self._browse),
        }
        for action in self.actions_.values():
            self.table.addAction(action)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addWidget(self.table)
        self._update_actions()

    def set_volumes(self, records: list[Any], sizes: dict[str, int] | None = None) -> None:
        if sizes is not None:
            self.sizes.clear()
            self.sizes.update(sizes)
        self.model.set_records(records)
        if sizes is not None and self.model.rowCount():
            self.model.dataChanged.emit(self.model.index(0, 2), self.model.index(self.model.rowCount() - 1, 2))
        self._update_actions()

    def _update_actions(self) -> None:
        selected = self.table.selected_records()
        for key in ("create", "rm", "prune"):
            self.actions_[key].setEnabled(key != "rm" or bool(selected))
        self.actions_["browse"].setEnabled(len(selected) == 1)

    def _browse(self) -> None:
        rec = self.table.current_record()
        if rec is not None:
            self.browseVolume.emit(rec.name)
