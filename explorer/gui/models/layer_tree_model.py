"""The store-wide layer tree: base layers at the roots, children built on them.

Images that share steps share a trunk and branch where they differ, so the tree answers
"what do these images have in common" at a glance. ``set_forest`` merges a fresh forest
from the API into the one shown (rows out, rows in, rows changed) instead of resetting,
so a build finishing in a terminal grows the tree under the user's selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QFont

from ...api.model import TreeNode
from ...digest import short
from .. import fmt

Index = QModelIndex | QPersistentModelIndex


class Col(IntEnum):
    INSTRUCTION = 0
    SIZE = 1
    CHANGES = 2
    TAGS = 3
    LAYER = 4


HEADERS = ("Instruction", "Size", "Files +/~/-", "Images", "Layer")


def layer_label(node: TreeNode) -> str:
    """A layer's name on screen: its chain id abbreviated as ``strata tree`` prints it (the
    content's identity, the same in every store), never the random directory id."""
    return short(node.chain_id)


class Role(IntEnum):
    NODE = Qt.ItemDataRole.UserRole + 1  # the TreeNode
    LAYER_ID = Qt.ItemDataRole.UserRole + 2
    SORT = Qt.ItemDataRole.UserRole + 3


class _Item:
    __slots__ = ("children", "node", "parent", "row")

    def __init__(self, node: TreeNode | None, parent: _Item | None, row: int) -> None:
        self.node = node
        self.parent = parent
        self.row = row
        self.children: list[_Item] = []


def _same(a: TreeNode, b: TreeNode) -> bool:
    return (a.created_by, a.size, a.added, a.modified, a.deleted, a.tags, a.images) == (
        b.created_by,
        b.size,
        b.added,
        b.modified,
        b.deleted,
        b.tags,
        b.images,
    )


class LayerTreeModel(QAbstractItemModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._root = _Item(None, None, 0)
        self._by_id: dict[str, _Item] = {}

    # --- updates ---------------------------------------------------------------------------

    def set_forest(self, forest: Sequence[TreeNode]) -> None:
        """Merge ``forest`` into the tree shown, row by row."""
        self._merge(self._root, list(forest))

    def _merge(self, item: _Item, nodes: list[TreeNode]) -> None:
        parent_index = self._index_of(item)
        wanted = {n.layer_id: n for n in nodes}
        # out: rows whose layer is gone from this parent (deleted, or moved by a re-parent)
        for child in reversed(list(item.children)):
            assert child.node is not None
            if child.node.layer_id not in wanted:
                self.beginRemoveRows(parent_index, child.row, child.row)
                del item.children[child.row]
                self._renumber(item, child.row)
                self._forget(child)
                self.endRemoveRows()
        # changed in place
        have: dict[str, _Item] = {}
        for child in item.children:
            assert child.node is not None
            new = wanted[child.node.layer_id]
            have[new.layer_id] = child
            differs = not _same(child.node, new)
            child.node = new
            if differs:
                self.dataChanged.emit(self._index_of(child, 0), self._index_of(child, len(HEADERS) - 1))
        # in: new layers appended in the order the API gives (oldest first)
        fresh = [n for n in nodes if n.layer_id not in have]
        if fresh:
            start = len(item.children)
            self.beginInsertRows(parent_index, start, start + len(fresh) - 1)
            for i, node in enumerate(fresh):
                child = _Item(node, item, start + i)
                item.children.append(child)
                have[node.layer_id] = child
                self._by_id[node.layer_id] = child
            self.endInsertRows()
        for node in nodes:
            child = have[node.layer_id]
            self._by_id[node.layer_id] = child
            self._merge(child, list(node.children))

    def _forget(self, item: _Item) -> None:
        if item.node is not None and self._by_id.get(item.node.layer_id) is item:
            del self._by_id[item.node.layer_id]
        for child in item.children:
            self._forget(child)

    @staticmethod
    def _renumber(item: _Item, start: int) -> None:
        for i in range(start, len(item.children)):
            item.children[i].row = i

    # --- lookups ---------------------------------------------------------------------------

    def index_for_layer(self, layer_id: str) -> QModelIndex:
        item = self._by_id.get(layer_id)
        return self._index_of(item) if item is not None else QModelIndex()

    def node(self, index: Index) -> TreeNode | None:
        return self._item(index).node if index.isValid() else None

    def layer_ids(self) -> list[str]:
        return list(self._by_id)

    # --- structure -------------------------------------------------------------------------

    def _item(self, index: Index) -> _Item:
        if not index.isValid():
            return self._root
        item = index.internalPointer()
        assert isinstance(item, _Item)
        return item

    def _index_of(self, item: _Item, column: int = 0) -> QModelIndex:
        if item is self._root or item.parent is None:
            return QModelIndex()
        return self.createIndex(item.row, column, item)

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        item = self._item(parent)
        if row < 0 or column < 0 or column >= len(HEADERS) or row >= len(item.children):
            return QModelIndex()
        return self.createIndex(row, column, item.children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        parent = self._item(index).parent
        if parent is None or parent is self._root:
            return QModelIndex()
        return self.createIndex(parent.row, 0, parent)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        return len(self._item(parent).children)

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(HEADERS)

    # --- data ------------------------------------------------------------------------------

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(HEADERS)
        ):
            return HEADERS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node = self._item(index).node
        if node is None:
            return None
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == Col.INSTRUCTION:
                return fmt.instruction(node.created_by, 90) or "(no instruction recorded)"
            if col == Col.SIZE:
                return fmt.size(node.size)
            if col == Col.CHANGES:
                return f"+{node.added} ~{node.modified} -{node.deleted}"
            if col == Col.TAGS:
                return ", ".join(node.tags)
            if col == Col.LAYER:
                return layer_label(node)
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [
                fmt.instruction(node.created_by) or "(no instruction recorded)",
                f"chain id {node.chain_id}",
                f"diff id {node.diff_id}",
                f"stored as layers/{node.layer_id}",
                f"{node.added} added, {node.modified} changed, {node.deleted} deleted; {fmt.size(node.size)}",
            ]
            if node.tags:
                lines.append("top of " + ", ".join(node.tags))
            return "\n".join(lines)
        if role == Qt.ItemDataRole.FontRole and col == Col.TAGS and node.tags:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (Col.SIZE, Col.CHANGES):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Role.NODE:
            return node
        if role == Role.LAYER_ID:
            return node.layer_id
        if role == Role.SORT:
            return (
                (node.size, node.added + node.modified + node.deleted, ", ".join(node.tags), node.chain_id)[col - 1]
                if col
                else node.created_by
            )
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
