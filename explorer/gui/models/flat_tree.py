"""The file tree shown as a flat table of its visible rows.

``QTreeView`` lays out every row of every expanded folder whenever rows are inserted
anywhere, calling back into the model for each one; with a Python model that is about
5 µs a row, so an expanded 10,000-entry folder freezes the window for 50 to 200 ms on every
change. A table view only asks for the rows on screen. This model keeps the list of
visible tree nodes (depth first, expanded folders followed by their children) over the
lazy ``FileTreeModel`` and follows its signals, so expanding a huge folder or refreshing
a row costs Python work proportional to what changed, and Qt's work stays in C++.

Expansion state lives on the tree's nodes (``Node.expanded``); the source model still
does all loading (``canFetchMore``/``fetchMore``), sorting and merging.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from .file_tree_model import HEADERS, FileTreeModel, Node

Index = QModelIndex | QPersistentModelIndex

_NO_CHILDREN_FLAG = Qt.ItemFlag.ItemNeverHasChildren


class Role(IntEnum):
    DEPTH = Qt.ItemDataRole.UserRole + 20
    EXPANDED = Qt.ItemDataRole.UserRole + 21
    EXPANDABLE = Qt.ItemDataRole.UserRole + 22


_DEPTH, _EXPANDED, _EXPANDABLE = int(Role.DEPTH), int(Role.EXPANDED), int(Role.EXPANDABLE)
_flat_flags: dict[Qt.ItemFlag, Qt.ItemFlag] = {}


class FlatTreeModel(QAbstractTableModel):
    expandedChanged = Signal(object, bool)

    def __init__(self, source: FileTreeModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source = source
        self.rows: list[Node] = []
        self._positions: dict[int, int] | None = None
        self._pending_removal: tuple[int, int] | None = None
        self._held: list[tuple[Any, int]] = []
        source.modelAboutToBeReset.connect(self.beginResetModel)
        source.modelReset.connect(self._reset)
        source.rowsInserted.connect(self._inserted)
        source.rowsAboutToBeRemoved.connect(self._about_to_remove)
        source.rowsRemoved.connect(self._removed)
        source.dataChanged.connect(self._changed)
        source.layoutAboutToBeChanged.connect(self._layout_about)
        source.layoutChanged.connect(self._layout_done)
        self.rows = self._flatten(self.source.root.children or [])

    # --- positions ---------------------------------------------------------------------------

    def _position(self, node: Node) -> int:
        if self._positions is None:
            self._positions = {id(n): i for i, n in enumerate(self.rows)}
        return self._positions.get(id(node), -1)

    def _dirty(self) -> None:
        self._positions = None

    def _visible(self, node: Node) -> bool:
        """Whether ``node``'s children are shown (it and every ancestor expanded)."""
        while node.parent is not None:
            if not node.expanded:
                return False
            node = node.parent
        return True

    def _span(self, node: Node, start: int) -> int:
        """How many flat rows ``node`` (at ``start``) and its shown descendants take."""
        end = start + 1
        depth = node.depth
        while end < len(self.rows) and self.rows[end].depth > depth:
            end += 1
        return end - start

    @staticmethod
    def _flatten(nodes: Sequence[Node]) -> list[Node]:
        out: list[Node] = []
        stack = list(reversed(nodes))
        while stack:
            n = stack.pop()
            out.append(n)
            if n.expanded and n.children:
                stack.extend(reversed(n.children))
        return out

    # --- following the source ----------------------------------------------------------------

    def _reset(self) -> None:
        self.rows = self._flatten(self.source.root.children or [])
        self._dirty()
        self.endResetModel()

    def _source_node(self, index: Index) -> Node:
        node: Node = index.internalPointer() if index.isValid() else self.source.root
        return node

    def _inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        pnode = self._source_node(parent)
        if not self._visible(pnode) or pnode.children is None:
            return
        if pnode.parent is not None and self._position(pnode) < 0:
            return
        if first == 0:
            pos = 0 if pnode.parent is None else self._position(pnode) + 1
        else:
            prev = pnode.children[first - 1]
            at = self._position(prev)
            pos = at + self._span(prev, at)
        new = self._flatten(pnode.children[first : last + 1])
        if not new:
            return
        self.beginInsertRows(QModelIndex(), pos, pos + len(new) - 1)
        self.rows[pos:pos] = new
        self._dirty()
        self.endInsertRows()

    def _about_to_remove(self, parent: QModelIndex, first: int, last: int) -> None:
        self._pending_removal = None
        pnode = self._source_node(parent)
        if not self._visible(pnode) or pnode.children is None:
            return
        start = self._position(pnode.children[first])
        end_node = pnode.children[last]
        end_at = self._position(end_node)
        if start < 0 or end_at < 0:
            return
        self._pending_removal = (start, end_at + self._span(end_node, end_at) - 1)

    def _removed(self, parent: QModelIndex, first: int, last: int) -> None:
        pending, self._pending_removal = self._pending_removal, None
        if pending is None:
            return
        start, end = pending
        self.beginRemoveRows(QModelIndex(), start, end)
        del self.rows[start : end + 1]
        self._dirty()
        self.endRemoveRows()

    def _changed(self, top_left: QModelIndex, bottom_right: QModelIndex, roles: Any = ()) -> None:
        if not top_left.isValid():
            return
        pnode = self._source_node(top_left.parent())
        if not self._visible(pnode) or pnode.children is None:
            return
        last_col = len(HEADERS) - 1
        for r in range(top_left.row(), min(bottom_right.row(), len(pnode.children) - 1) + 1):
            at = self._position(pnode.children[r])
            if at >= 0:
                self.dataChanged.emit(self.index(at, 0), self.index(at, last_col))
        # a folder whose listing turned out empty loses its arrow
        if pnode.parent is not None:
            at = self._position(pnode)
            if at >= 0:
                self.dataChanged.emit(self.index(at, 0), self.index(at, 0))

    def _layout_about(self, *_: Any) -> None:
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        self._held = [(self.rows[i.row()] if 0 <= i.row() < len(self.rows) else None, i.column()) for i in old]
        self._held_indexes = old

    def _layout_done(self, *_: Any) -> None:
        self.rows = self._flatten(self.source.root.children or [])
        self._dirty()
        new = []
        for node, col in self._held:
            at = self._position(node) if node is not None else -1
            new.append(self.index(at, col) if at >= 0 else QModelIndex())
        self.changePersistentIndexList(self._held_indexes, new)
        self._held = []
        self._held_indexes = []
        self.layoutChanged.emit()

    # --- expanding -----------------------------------------------------------------------------

    def node(self, index: Index) -> Node | None:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        return self.rows[index.row()]

    def index_of_node(self, node: Node | None, column: int = 0) -> QModelIndex:
        if node is None:
            return QModelIndex()
        at = self._position(node)
        return self.index(at, column) if at >= 0 else QModelIndex()

    def expandable(self, node: Node) -> bool:
        return (
            node.data is not None
            and node.data.type == "dir"
            and node.data.status != "deleted"
            and (node.children is None or bool(node.children))
        )

    def expand(self, index: Index) -> None:
        node = self.node(index)
        if node is None or node.expanded or not self.expandable(node):
            return
        node.expanded = True
        if node.children is None:
            source_index = self.source.index_of(node)
            if self.source.canFetchMore(source_index):
                self.source.fetchMore(source_index)  # the rows arrive through rowsInserted
        elif node.children:
            at = self._position(node)
            new = self._flatten(node.children)
            if at >= 0 and new:
                self.beginInsertRows(QModelIndex(), at + 1, at + len(new))
                self.rows[at + 1 : at + 1] = new
                self._dirty()
                self.endInsertRows()
        self.dataChanged.emit(self.index(index.row(), 0), self.index(index.row(), 0))
        self.expandedChanged.emit(node, True)

    def collapse(self, index: Index) -> None:
        node = self.node(index)
        if node is None or not node.expanded:
            return
        at = index.row()
        span = self._span(node, at)
        node.expanded = False
        if span > 1:
            self.beginRemoveRows(QModelIndex(), at + 1, at + span - 1)
            del self.rows[at + 1 : at + span]
            self._dirty()
            self.endRemoveRows()
        self.dataChanged.emit(self.index(at, 0), self.index(at, 0))
        self.expandedChanged.emit(node, False)

    def is_expanded(self, index: Index) -> bool:
        node = self.node(index)
        return node is not None and node.expanded

    # --- Qt ----------------------------------------------------------------------------------

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        return self.source.headerData(section, orientation, role)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        row = index.row()
        if row < 0 or row >= len(self.rows):
            return None
        node = self.rows[row]
        if role >= _DEPTH:
            if role == _DEPTH:
                return node.depth
            if role == _EXPANDED:
                return node.expanded
            if role == _EXPANDABLE:
                return self.expandable(node)
        if node.data is None:
            return None
        return self.source.row_data(node.data, index.column(), role)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return self.source.flags(QModelIndex())
        if index.row() >= len(self.rows):
            return Qt.ItemFlag.NoItemFlags
        own = self.rows[index.row()].flags
        flags = _flat_flags.get(own)
        if flags is None:  # a handful of distinct values: computed once each
            flags = _flat_flags[own] = own & ~_NO_CHILDREN_FLAG
        return flags

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        self.source.sort(column, order)

    # --- drag and drop, through the tree -------------------------------------------------------

    def _to_source(self, index: Index) -> QModelIndex:
        node = self.node(index)
        return self.source.index_of(node, index.column()) if node is not None else QModelIndex()

    def supportedDragActions(self) -> Qt.DropAction:
        return self.source.supportedDragActions()

    def supportedDropActions(self) -> Qt.DropAction:
        return self.source.supportedDropActions()

    def mimeTypes(self) -> list[str]:
        return self.source.mimeTypes()

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        return self.source.mimeData([self._to_source(i) for i in indexes])

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        return self.source.canDropMimeData(data, action, -1, -1, self._to_source(parent))

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        return self.source.dropMimeData(data, action, -1, -1, self._to_source(parent))

    # --- lookups the browser uses ----------------------------------------------------------------

    def index_for_path(self, path: str) -> QModelIndex:
        return self.index_of_node(self.source.node_for_path(path))
