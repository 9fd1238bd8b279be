"""A pull's (or push's) layers as table rows, fed one ``TransferEvent`` at a time.

A row appears the first time a layer is named and is updated in place after that, so
the table grows downwards in the order docker prints and never jumps. Lines about the
whole operation (``layer`` empty) are not rows: they go out through ``infoLine``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal

from .. import fmt

if TYPE_CHECKING:
    from ...api.registry import TransferEvent

Index = QModelIndex | QPersistentModelIndex

LAYER, STATUS, PROGRESS, BYTES, RATE = range(5)
HEADERS = ("Layer", "Status", "Progress", "Bytes", "Rate")

# docker's words for a layer's state
STATUS_TEXT = {
    "waiting": "Waiting",
    "exists": "Already exists",
    "downloading": "Downloading",
    "copying": "Copying",
    "complete": "Pull complete",
    "preparing": "Preparing",
    "uploading": "Pushing",
    "mounted": "Mounted",
    "pushed": "Pushed",
}
FINISHED = {"exists", "complete", "mounted", "pushed"}
MOVING = {"downloading", "copying", "uploading"}


class Role(IntEnum):
    FRACTION = Qt.ItemDataRole.UserRole + 1  # float 0..1, or -1 when the size is not known yet
    ROW = Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class LayerRow:
    layer: str
    status: str
    current: int = 0
    total: int = 0
    rate: float = 0.0
    message: str = ""

    @property
    def fraction(self) -> float:
        if self.status in FINISHED:
            return 1.0
        if not self.total:
            return -1.0
        return min(self.current / self.total, 1.0)


class TransferModel(QAbstractTableModel):
    infoLine = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.rows: list[LayerRow] = []
        self._where: dict[str, int] = {}

    def clear(self) -> None:
        self.beginResetModel()
        self.rows = []
        self._where = {}
        self.endResetModel()

    def apply(self, event: TransferEvent) -> None:
        """One ``TransferEvent``: a layer's row, or (no layer) a line for the whole transfer."""
        layer, message = event.layer, event.message
        if not layer:
            if message:
                self.infoLine.emit(message)
            return
        row = LayerRow(layer, event.status, event.current, event.total, event.rate, message)
        at = self._where.get(layer)
        if at is None:
            at = len(self.rows)
            self.beginInsertRows(QModelIndex(), at, at)
            self.rows.append(row)
            self._where[layer] = at
            self.endInsertRows()
            return
        old = self.rows[at]
        if row.total == 0 and old.total and row.status == old.status:
            row = replace(row, total=old.total)  # an event without the size keeps the known one
        self.rows[at] = row
        self.dataChanged.emit(self.index(at, 0), self.index(at, len(HEADERS) - 1))

    # --- totals -----------------------------------------------------------------------------

    def moved(self) -> int:
        return sum(r.current for r in self.rows)

    def expected(self) -> int:
        return sum(r.total for r in self.rows if r.status not in ("exists", "mounted"))

    def rate(self) -> float:
        return sum(r.rate for r in self.rows if r.status in MOVING)

    def finished(self) -> int:
        return sum(1 for r in self.rows if r.status in FINISHED)

    # --- Qt ---------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        r = self.rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column == LAYER:
                return r.layer
            if column == STATUS:
                return STATUS_TEXT.get(r.status, r.status)
            if column == PROGRESS:
                return "" if r.fraction < 0 or r.status in ("exists", "mounted") else f"{r.fraction * 100:.0f}%"
            if column == BYTES:
                if r.status in ("exists", "mounted"):
                    return ""
                return f"{fmt.size(r.current)} / {fmt.size(r.total)}" if r.total else fmt.size(r.current)
            if column == RATE:
                return f"{fmt.size(r.rate)}/s" if r.status in MOVING and r.rate > 0 else ""
        if role == Qt.ItemDataRole.ToolTipRole:
            return r.message or STATUS_TEXT.get(r.status, r.status)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (BYTES, RATE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Role.FRACTION:
            return r.fraction
        if role == Role.ROW:
            return r
        return None
