"""Where the space goes, as a two-level tree: the four kinds of things ``system df``
reports, and under each the images, containers, volumes or cache entries themselves.

Refreshes merge by key (an image's id, a container's id, a volume's name, a cache key),
so a live refresh keeps the expansion and the selection. Sorting orders the children of
each kind; the kinds keep their order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt

from .. import fmt
from ..cleanup import CACHE, CATEGORIES, CONTAINERS, IMAGES, VOLUMES, CategoryUsage, summarize

Index = QModelIndex | QPersistentModelIndex

NAME, SIZE, SHARED, UNIQUE, RECLAIMABLE, DETAIL = range(6)
HEADERS = ("Name", "Size", "Shared", "Unique", "Reclaimable", "Details")
_TOP = 0  # internal id of a top-level (kind) row; children carry their kind's row + 1


class Role(IntEnum):
    KIND = Qt.ItemDataRole.UserRole + 1  # the kind a row belongs to
    RECORD = Qt.ItemDataRole.UserRole + 2  # CategoryUsage on a kind row, the API record on a child
    SORT = Qt.ItemDataRole.UserRole + 3


@dataclass(frozen=True)
class Item:
    """A child row: its key, its record and the figures the columns show."""

    key: str
    record: Any
    name: str
    size: int
    shared: int | None
    unique: int | None
    reclaimable: int
    detail: str
    tooltip: str = ""


def _images(du: Any) -> list[Item]:
    out = []
    for i in du.images:
        name = ", ".join(i.tags) if i.tags else f"<none> {fmt.short_id(i.id)}"
        users = f"{i.containers} container{'s' if i.containers != 1 else ''}" if i.containers else "unused"
        out.append(
            Item(
                i.id,
                i,
                name,
                i.size,
                i.shared_size,
                i.unique_size,
                0 if i.containers else i.unique_size,
                f"{users} · created {fmt.ago(i.created)}",
                f"{name}\n{i.id}\nsize {fmt.size(i.size)}: {fmt.size(i.shared_size)} shared with other "
                f"images, {fmt.size(i.unique_size)} its own (what removing it alone frees)",
            )
        )
    return out


def _containers(du: Any) -> list[Item]:
    return [
        Item(
            c.id,
            c,
            c.name,
            c.size,
            None,
            None,
            0 if c.running else c.size,
            f"{c.status} · {c.image}",
            f"{c.name} ({c.id[:12]})\n{c.command}\nits own layer: {fmt.size(c.size)}",
        )
        for c in du.containers
    ]


def _volumes(du: Any) -> list[Item]:
    return [
        Item(
            v.name,
            v,
            v.name,
            v.size,
            None,
            None,
            0 if v.links else v.size,
            f"{v.links} container{'s' if v.links != 1 else ''}" if v.links else "unused",
        )
        for v in du.volumes
    ]


def _cache(du: Any) -> list[Item]:
    return [
        Item(
            e.key,
            e,
            fmt.instruction(e.instruction, 100) or e.key[:12],
            e.size,
            None,
            None,
            0 if e.shared else e.size,
            ("layer shared with an image · " if e.shared else "") + f"last used {fmt.ago(e.last_used)}",
            f"{fmt.instruction(e.instruction)}\ncache key {e.key}",
        )
        for e in du.build_cache
    ]


_CHILDREN: dict[str, Callable[[Any], list[Item]]] = {
    IMAGES: _images,
    CONTAINERS: _containers,
    VOLUMES: _volumes,
    CACHE: _cache,
}


def _sort_value(item: Item, column: int) -> Any:
    return {
        NAME: item.name.lower(),
        SIZE: item.size,
        SHARED: item.shared or 0,
        UNIQUE: item.unique or 0,
        RECLAIMABLE: item.reclaimable,
        DETAIL: item.detail,
    }[column]


class DiskUsageModel(QAbstractItemModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.kinds: list[str] = list(CATEGORIES)
        self.summary: dict[str, CategoryUsage] = {k: CategoryUsage(k, 0, 0, 0, 0) for k in self.kinds}
        self.rows_of: dict[str, list[Item]] = {k: [] for k in self.kinds}
        self._sort: tuple[int, Qt.SortOrder] | None = None

    # --- updates ---------------------------------------------------------------------------

    def set_usage(self, du: Any) -> None:
        """Show a fresh ``DiskUsage``: kind rows update in place, children merge by key."""
        self.summary = summarize(du)
        last = len(HEADERS) - 1
        self.dataChanged.emit(self.index(0, 0), self.index(len(self.kinds) - 1, last))
        for row, kind in enumerate(self.kinds):
            self._merge(row, kind, _CHILDREN[kind](du))

    def _merge(self, kind_row: int, kind: str, fresh: list[Item]) -> None:
        parent = self.index(kind_row, 0)
        items = self.rows_of[kind]
        wanted = {item.key: item for item in fresh}
        for row in range(len(items) - 1, -1, -1):
            if items[row].key not in wanted:
                self.beginRemoveRows(parent, row, row)
                del items[row]
                self.endRemoveRows()
        have = set()
        last = len(HEADERS) - 1
        for row, old in enumerate(items):
            have.add(old.key)
            new = wanted[old.key]
            if new != old:
                items[row] = new
                self.dataChanged.emit(self.index(row, 0, parent), self.index(row, last, parent))
        added = [item for item in fresh if item.key not in have]
        if added:
            start = len(items)
            self.beginInsertRows(parent, start, start + len(added) - 1)
            items.extend(added)
            self.endInsertRows()
            if self._sort is not None:
                self.sort(*self._sort)

    def kind_index(self, kind: str) -> QModelIndex:
        return self.index(self.kinds.index(kind), 0)

    def item(self, index: Index) -> Item | None:
        if not index.isValid() or index.internalId() == _TOP:
            return None
        items = self.rows_of[self.kinds[index.internalId() - 1]]
        return items[index.row()] if index.row() < len(items) else None

    # --- Qt --------------------------------------------------------------------------------

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        if column < 0 or column >= len(HEADERS) or row < 0:
            return QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, _TOP) if row < len(self.kinds) else QModelIndex()
        if parent.internalId() != _TOP or parent.column() != 0:
            return QModelIndex()
        kind_row = parent.row()
        if row >= len(self.rows_of[self.kinds[kind_row]]):
            return QModelIndex()
        return self.createIndex(row, column, kind_row + 1)

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid() or index.internalId() == _TOP:
            return QModelIndex()
        return self.createIndex(index.internalId() - 1, 0, _TOP)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if not parent.isValid():
            return len(self.kinds)
        if parent.internalId() == _TOP and parent.column() == 0:
            return len(self.rows_of[self.kinds[parent.row()]])
        return 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(HEADERS)

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
        if not index.isValid():
            return None
        column = index.column()
        if index.internalId() == _TOP:
            if index.row() >= len(self.kinds):
                return None
            return self._kind_data(self.kinds[index.row()], column, role)
        item = self.item(index)
        if item is None:
            return None
        kind = self.kinds[index.internalId() - 1]
        if role == Qt.ItemDataRole.DisplayRole:
            return {
                NAME: item.name,
                SIZE: fmt.size(item.size),
                SHARED: fmt.size(item.shared) if item.shared is not None else "",
                UNIQUE: fmt.size(item.unique) if item.unique is not None else "",
                RECLAIMABLE: fmt.size(item.reclaimable) if item.reclaimable else "",
                DETAIL: item.detail,
            }[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.tooltip or item.name
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SIZE, SHARED, UNIQUE, RECLAIMABLE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Role.KIND:
            return kind
        if role == Role.RECORD:
            return item.record
        if role == Role.SORT:
            return _sort_value(item, column)
        return None

    def _kind_data(self, kind: str, column: int, role: int) -> Any:
        u = self.summary[kind]
        if role == Qt.ItemDataRole.DisplayRole:
            if column == NAME:
                return u.title
            if column == SIZE:
                return fmt.size(u.size)
            if column == SHARED:
                return fmt.size(u.shared) if kind == IMAGES else ""
            if column == UNIQUE:
                return fmt.size(u.unique) if kind == IMAGES else ""
            if column == RECLAIMABLE:
                pct = round(100 * u.reclaimable / u.size) if u.size else 0
                return f"{fmt.size(u.reclaimable)} ({pct}%)"
            return f"{u.total} total" + (f", {u.active} active" if kind != CACHE else "")
        if role == Qt.ItemDataRole.ToolTipRole:
            if kind == IMAGES:
                return (
                    f"{u.total} images over {fmt.size(u.size)} of layers, each layer counted once; "
                    f"{fmt.size(u.shared)} of it in layers two or more images share"
                )
            return f"{u.title}: {fmt.size(u.size)}, {fmt.size(u.reclaimable)} reclaimable"
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (SIZE, SHARED, UNIQUE, RECLAIMABLE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and column == NAME:
            from PySide6.QtGui import QFont

            font = QFont()
            font.setBold(True)
            return font
        if role == Role.KIND:
            return kind
        if role == Role.RECORD:
            return u
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(HEADERS):
            return
        self._sort = (column, order)
        self.layoutAboutToBeChanged.emit()
        old = [i for i in self.persistentIndexList() if i.isValid() and i.internalId() != _TOP]
        keys = [(i.internalId(), self.rows_of[self.kinds[i.internalId() - 1]][i.row()].key, i.column()) for i in old]
        for kind in self.kinds:
            self.rows_of[kind].sort(
                key=lambda item: _sort_value(item, column), reverse=order == Qt.SortOrder.DescendingOrder
            )
        where = {
            (k + 1, item.key): row for k, kind in enumerate(self.kinds) for row, item in enumerate(self.rows_of[kind])
        }
        new = [self.createIndex(where[(ident, key)], col, ident) for ident, key, col in keys]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()
