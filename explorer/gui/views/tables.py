"""A sortable table of records, the way every list in the window looks."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from ..models.record_table import RecordTableModel


class RecordTable(QTableView):
    def __init__(self, model: RecordTableModel[Any], parent: QWidget | None = None, stretch: int = -1) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.record_model = model
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 8)
        self.horizontalHeader().setHighlightSections(False)
        self.horizontalHeader().setStretchLastSection(stretch < 0)
        if stretch >= 0:
            self.horizontalHeader().setSectionResizeMode(stretch, QHeaderView.ResizeMode.Stretch)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)

    def selected_records(self) -> list[Any]:
        rows = sorted({i.row() for i in self.selectionModel().selectedRows()})
        if not rows and self.currentIndex().isValid():
            rows = [self.currentIndex().row()]
        out = []
        for r in rows:
            rec = self.record_model.record(self.record_model.index(r, 0))
            if rec is not None:
                out.append(rec)
        return out

    def current_record(self) -> Any:
        return self.record_model.record(self.currentIndex())
