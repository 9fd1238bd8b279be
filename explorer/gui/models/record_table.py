"""A table of plain records (images, containers, volumes, changes, layer stats).

Columns are declared, rows are records from the API. ``set_records`` merges by key: rows
that went away are removed, changed rows emit ``dataChanged``, new rows are inserted, so a
live refresh keeps the selection. Sorting happens in Python on the record list (one key
function per column): a proxy model would call back into Python for every comparison,
which is too slow for a base layer's 100,000 changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QIcon

R = TypeVar("R")
Index = QModelIndex | QPersistentModelIndex


class Role(IntEnum):
    RECORD = Qt.ItemDataRole.UserRole + 1
    KEY = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class Column(Generic[R]):
    header: str
    text: Callable[[R], str]
    sort: Callable[[R], Any] | None = None  # defaults to the text
    right: bool = False  # numbers align right
    tooltip: Callable[[R], str] | None = None
    foreground: Callable[[R], QBrush | None] | None = None
    icon: Callable[[R], QIcon | None] | None = None


class RecordTableModel(QAbstractTableModel, Generic[R]):
    def __init__(self, columns: Sequence[Column[R]], key: Callable[[R], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.columns = list(columns)
        self.key = key
        self.records: list[R] = []
        self._sort: tuple[int, Qt.SortOrder] | None = None

    # --- updates ---------------------------------------------------------------------------

    def set_records(self, records: Sequence[R]) -> None:
        fresh = {self.key(r): r for r in records}
        for row in range(len(self.records) - 1, -1, -1):
            if self.key(self.records[row]) not in fresh:
                self.beginRemoveRows(QModelIndex(), row, row)
                del self.records[row]
                self.endRemoveRows()
        have = set()
        last = len(self.columns) - 1
        for row, old in enumerate(self.records):
            k = self.key(old)
            have.add(k)
            new = fresh[k]
            if new != old:
                self.records[row] = new
                self.dataChanged.emit(self.index(row, 0), self.index(row, last))
        added = [r for r in records if self.key(r) not in have]
        if added:
            start = len(self.records)
            self.beginInsertRows(QModelIndex(), start, start + len(added) - 1)
            self.records.extend(added)
            self.endInsertRows()
            if self._sort is not None:
                self.sort(*self._sort)

    def replace(self, records: Sequence[R]) -> None:
        """Show a different set altogether (another layer's changes): a reset is honest here."""
        self.beginResetModel()
        self.records = list(records)
        if self._sort is not None:
            self._sort_records(*self._sort)
        self.endResetModel()

    def record(self, index: Index) -> R | None:
        if not index.isValid() or index.row() >= len(self.records):
            return None
        return self.records[index.row()]

    def row_of(self, key: Any) -> int:
        for row, r in enumerate(self.records):
            if self.key(r) == key:
                return row
        return -1

    # --- Qt --------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.records)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(self.columns)
        ):
            return self.columns[section].header
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.records):
            return None
        record = self.records[index.row()]
        column = self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return column.text(record)
        if role == Qt.ItemDataRole.ToolTipRole:
            return column.tooltip(record) if column.tooltip else column.text(record)
        if role == Qt.ItemDataRole.TextAlignmentRole and column.right:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column.foreground:
            return column.foreground(record)
        if role == Qt.ItemDataRole.DecorationRole and column.icon:
            return column.icon(record)
        if role == Role.RECORD:
            return record
        if role == Role.KEY:
            return self.key(record)
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(self.columns):
            return
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        keys = [(self.key(self.records[i.row()]), i.column()) if i.row() < len(self.records) else None for i in old]
        self._sort_records(column, order)
        where = {self.key(r): row for row, r in enumerate(self.records)}
        new = [self.index(where[k[0]], k[1]) if k is not None and k[0] in where else QModelIndex() for k in keys]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    def _sort_records(self, column: int, order: Qt.SortOrder) -> None:
        col = self.columns[column]
        getter = col.sort or col.text

        def key(r: R) -> Any:
            value = getter(r)
            return (value is None, value if value is not None else 0)

        self.records.sort(key=key, reverse=order == Qt.SortOrder.DescendingOrder)
