"""The file browser's tree: lazy, sorted in place, refreshed row by row.

Directories are listed only when a view asks (``canFetchMore``/``fetchMore``), and the
listing runs in a worker: an image of 100,000 files opens with one query for ``/``. A
live refresh re-lists just the loaded directories that changed and merges the result
(removed rows out, changed rows ``dataChanged``, new rows in at their sorted place), so
selection, expansion and scroll position survive and nothing flickers. Rows that changed
under a live refresh are marked for a few seconds.
"""

from __future__ import annotations

import bisect
import posixpath
import time
from collections.abc import Callable, Iterable, Sequence
from enum import IntEnum
from typing import Any

from PySide6.QtCore import (
    QAbstractItemModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QGuiApplication, QIcon, QPalette

from .. import fmt
from .file_source import ADDED, DELETED, MODIFIED, MOUNTED, FileRow, Snapshot

Index = QModelIndex | QPersistentModelIndex

# A function that runs ``work`` off the GUI thread and calls ``done(result)`` on it later.
Runner = Callable[[str, Callable[[], Any], Callable[[Any], None]], None]

MARK_SECONDS = 4.0
_MANY = 64  # above this many new rows, append and re-sort instead of inserting one by one


class Col(IntEnum):
    NAME = 0
    SIZE = 1
    MODE = 2
    OWNER = 3
    MODIFIED = 4
    LAYER = 5
    STATUS = 6


HEADERS = ("Name", "Size", "Mode", "Owner", "Modified", "Layer", "Status")
_COLUMNS = len(HEADERS)


class Role(IntEnum):
    ROW = Qt.ItemDataRole.UserRole + 1  # the FileRow
    PATH = Qt.ItemDataRole.UserRole + 2
    SORT = Qt.ItemDataRole.UserRole + 3
    JUST_CHANGED = Qt.ItemDataRole.UserRole + 4


_DISPLAY = int(Qt.ItemDataRole.DisplayRole)
_DECORATION = int(Qt.ItemDataRole.DecorationRole)
_ALIGNMENT = int(Qt.ItemDataRole.TextAlignmentRole)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole)
_FONT = int(Qt.ItemDataRole.FontRole)
_BACKGROUND = int(Qt.ItemDataRole.BackgroundRole)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole)
_ANSWERED = frozenset({_DECORATION, _ALIGNMENT, _FOREGROUND, _FONT, _BACKGROUND, _TOOLTIP, *(int(r) for r in Role)})
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

_SELECTABLE = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
_LEAF = _SELECTABLE | Qt.ItemFlag.ItemNeverHasChildren
_FILE = _LEAF | Qt.ItemFlag.ItemIsDragEnabled
_DIR = _SELECTABLE | Qt.ItemFlag.ItemIsDragEnabled
_DROP_DIR = _DIR | Qt.ItemFlag.ItemIsDropEnabled


def _flags_for(row: FileRow | None, writable: bool) -> Qt.ItemFlag:
    """Computed once per row: the view asks for flags of every row on each layout, and a
    10,000-entry folder must not cost 10,000 computations each time."""
    if row is None:
        return _DIR
    if row.status == DELETED:
        return _LEAF
    if row.type == "dir":
        return _DROP_DIR if writable and (row.mount is None or row.mount.writable) else _DIR
    return _FILE


class Node:
    __slots__ = ("children", "data", "depth", "expanded", "flags", "loading", "parent", "row")

    def __init__(self, data: FileRow | None, parent: Node | None, row: int, writable: bool = False) -> None:
        self.data = data
        self.parent = parent
        self.row = row
        self.children: list[Node] | None = None  # None: not listed yet
        self.loading = False
        self.flags = _flags_for(data, writable)
        self.depth: int = parent.depth + 1 if parent is not None else -1
        self.expanded = False  # kept here for the flat view (models/flat_tree.py)

    @property
    def path(self) -> str:
        return self.data.path if self.data is not None else "/"

    @property
    def is_dir(self) -> bool:
        return self.data is None or self.data.type == "dir"


def _sort_key(column: int) -> Callable[[FileRow], Any]:
    if column == Col.SIZE:
        return lambda r: (r.size, r.name)
    if column == Col.MODE:
        return lambda r: (r.mode, r.name)
    if column == Col.OWNER:
        return lambda r: (r.uid, r.gid, r.name)
    if column == Col.MODIFIED:
        return lambda r: (r.mtime, r.name)
    if column == Col.LAYER:
        return lambda r: (r.layer, r.name)
    if column == Col.STATUS:
        return lambda r: (r.status, r.name)
    return lambda r: (r.type != "dir", r.name)


class FileTreeModel(QAbstractItemModel):
    """Rows are ``Node``s holding ``FileRow``s from a ``Snapshot``."""

    directoryLoaded = Signal(str)
    loadFailed = Signal(str, str)

    def __init__(self, runner: Runner | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._snapshot: Snapshot | None = None
        self._root = Node(None, None, 0)
        self._generation = 0
        self._sort_column = int(Col.NAME)
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._marks: dict[str, float] = {}
        self._mark_timer = QTimer(self)
        self._mark_timer.setInterval(500)
        self._mark_timer.timeout.connect(self._expire_marks)
        self.changed_only = False
        self.icons: dict[str, QIcon] = {}
        # the drag's data for these rows (the browser writes them out in a task)
        self.exporter: Callable[[list[FileRow]], QMimeData] | None = None
        self.drop_handler: Callable[[list[str], str], None] | None = None
        self._pending_refresh: set[str] = set()

    # --- the snapshot ------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot | None:
        return self._snapshot

    @property
    def _writable(self) -> bool:
        return self._snapshot is not None and self._snapshot.source.writable

    def set_snapshot(self, snapshot: Snapshot | None) -> None:
        """Show a new source from scratch (a reset is right here: everything differs)."""
        self.beginResetModel()
        self._generation += 1
        self._snapshot = snapshot
        self._root = Node(None, None, 0)
        self._marks.clear()
        self.endResetModel()

    def set_changed_only(self, on: bool) -> None:
        if on == self.changed_only:
            return
        self.changed_only = on
        self.set_snapshot(self._snapshot)

    def update_snapshot(self, snapshot: Snapshot, paths: Iterable[str] | None = None, mark: bool = True) -> None:
        """Swap in a fresher snapshot of the same source and merge the directories that
        ``paths`` touch (every loaded directory when None)."""
        self._snapshot = snapshot
        dirs = self.loaded_dirs() if paths is None else self._dirs_for(paths)
        for node in dirs:
            self._relist(node, mark)

    def loaded_dirs(self) -> list[Node]:
        out: list[Node] = []
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.children is not None:
                out.append(node)
                stack.extend(c for c in node.children if c.children is not None)
        return out

    def _dirs_for(self, paths: Iterable[str]) -> list[Node]:
        """For each changed path, the nearest loaded directory that lists it."""
        found: dict[int, Node] = {}
        for path in paths:
            d = posixpath.dirname(path.rstrip("/")) or "/"
            while True:
                node = self.node_for_path(d)
                if node is not None and node.children is not None:
                    found[id(node)] = node
                    break
                if d == "/":
                    break
                d = posixpath.dirname(d)
            node = self.node_for_path(path)
            if node is not None and node.children is not None:
                found[id(node)] = node
        return list(found.values())

    # --- structure ---------------------------------------------------------------------

    def _node(self, index: Index) -> Node:
        if not index.isValid():
            return self._root
        node = index.internalPointer()
        assert isinstance(node, Node)
        return node

    def node_at(self, index: Index) -> FileRow | None:
        return self._node(index).data if index.isValid() else None

    def index(self, row: int, column: int, parent: Index = QModelIndex()) -> QModelIndex:
        # Hot: the view calls this for every row of every expanded folder on each layout.
        children = (parent.internalPointer() if parent.isValid() else self._root).children
        if children is None or not 0 <= row < len(children) or not 0 <= column < _COLUMNS:
            return QModelIndex()
        return self.createIndex(row, column, children[row])

    def parent(self, index: Index = QModelIndex()) -> QModelIndex:  # type: ignore[override]
        if not index.isValid():
            return QModelIndex()
        node = self._node(index).parent
        if node is None or node is self._root:
            return QModelIndex()
        return self.createIndex(node.row, 0, node)

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        if parent.isValid() and parent.column() != 0:
            return 0
        node = self._node(parent)
        return len(node.children) if node.children is not None else 0

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return len(HEADERS)

    def hasChildren(self, parent: Index = QModelIndex()) -> bool:
        if not parent.isValid():
            return self._snapshot is not None and (self._root.children is None or bool(self._root.children))
        if parent.column() != 0:
            return False
        node = parent.internalPointer()
        if node is self._root:
            return self._snapshot is not None and (node.children is None or bool(node.children))
        if node.data is None or node.data.type != "dir" or node.data.status == DELETED:
            return False
        return node.children is None or bool(node.children)

    def canFetchMore(self, parent: Index) -> bool:
        if self._snapshot is None:
            return False
        node = self._node(parent)
        return (
            node.is_dir
            and node.children is None
            and not node.loading
            and (node.data is None or node.data.status != DELETED)
        )

    def fetchMore(self, parent: Index) -> None:
        if not self.canFetchMore(parent):
            return
        node = self._node(parent)
        node.loading = True
        snap = self._snapshot
        assert snap is not None
        generation = self._generation
        path = node.path
        changed_only = self.changed_only

        def work() -> list[FileRow]:
            return snap.listing(path, changed_only)

        def done(rows: Any) -> None:
            self._fill(node, generation, rows)

        if self._runner is None:
            rows = work()
            # Delivered from the event loop, never inside fetchMore: views (and the model
            # tester) call fetchMore in the middle of their own bookkeeping.
            QTimer.singleShot(0, self, lambda: done(rows))
        else:
            self._runner(f"list {path}", work, done)

    def _attached(self, node: Node) -> bool:
        while node.parent is not None:
            p = node.parent
            if p.children is None or node.row >= len(p.children) or p.children[node.row] is not node:
                return False
            node = p
        return node is self._root

    def _fill(self, node: Node, generation: int, rows: Any) -> None:
        """The first listing of ``node`` arrived. A refresh asked for while it was on its
        way (its rows may predate the change) runs now, also when another listing filled
        the node first."""
        node.loading = False
        if generation != self._generation or not self._attached(node):
            return
        if node.children is None:
            if not isinstance(rows, list):
                self.loadFailed.emit(node.path, str(rows))
                rows = []
            rows = sorted(
                rows, key=_sort_key(self._sort_column), reverse=self._sort_order == Qt.SortOrder.DescendingOrder
            )
            index = self._index_of(node)
            if rows:
                self.beginInsertRows(index, 0, len(rows) - 1)
                node.children = [Node(r, node, i, self._writable) for i, r in enumerate(rows)]
                self.endInsertRows()
            else:
                node.children = []
                if index.isValid():
                    self.dataChanged.emit(index, index)
            self.directoryLoaded.emit(node.path)
        if node.path in self._pending_refresh:
            self._pending_refresh.discard(node.path)
            self._relist(node, True)

    def _index_of(self, node: Node, column: int = 0) -> QModelIndex:
        if node is self._root or node.parent is None:
            return QModelIndex()
        return self.createIndex(node.row, column, node)

    def index_of(self, node: Node, column: int = 0) -> QModelIndex:
        return self._index_of(node, column)

    @property
    def root(self) -> Node:
        return self._root

    def index_for_path(self, path: str) -> QModelIndex:
        node = self.node_for_path(path)
        return self._index_of(node) if node is not None else QModelIndex()

    def node_for_path(self, path: str) -> Node | None:
        if path in ("", "/"):
            return self._root
        node = self._root
        for part in [p for p in path.split("/") if p]:
            if node.children is None:
                return None
            nxt = None
            for child in node.children:
                if child.data is not None and child.data.name == part:
                    nxt = child
                    break
            if nxt is None:
                return None
            node = nxt
        return node

    # --- merging a fresh listing -------------------------------------------------------

    def _relist(self, node: Node, mark: bool) -> None:
        if node.loading:  # a listing is on its way: redo it once it is in
            self._pending_refresh.add(node.path)
            return
        if node.children is None:
            return
        snap = self._snapshot
        if snap is None:
            return
        node.loading = True
        generation = self._generation
        path = node.path
        changed_only = self.changed_only

        def work() -> list[FileRow]:
            return snap.listing(path, changed_only)

        def done(rows: Any) -> None:
            node.loading = False
            if generation != self._generation or not self._attached(node) or node.children is None:
                return
            if isinstance(rows, list):
                self._merge(node, rows, mark)
            if node.path in self._pending_refresh:
                self._pending_refresh.discard(node.path)
                self._relist(node, mark)

        if self._runner is None:
            rows = work()
            QTimer.singleShot(0, self, lambda: done(rows))
        else:
            self._runner(f"refresh {path}", work, done)

    def _merge(self, node: Node, rows: Sequence[FileRow], mark: bool) -> None:
        assert node.children is not None
        parent_index = self._index_of(node)
        fresh = {r.name: r for r in rows}
        now = time.monotonic()
        # 1. rows that are gone, removed in contiguous runs from the bottom up
        gone = [c.row for c in node.children if c.data is not None and c.data.name not in fresh]
        for first, last in reversed(_runs(gone)):
            self.beginRemoveRows(parent_index, first, last)
            del node.children[first : last + 1]
            self._renumber(node, first)
            self.endRemoveRows()
        # 2. rows that changed in place
        present: set[str] = set()
        for child in node.children:
            assert child.data is not None
            present.add(child.data.name)
            new = fresh[child.data.name]
            if child.data.same_as(new):
                continue
            if child.children is not None and (new.type != "dir" or new.status == DELETED):
                if child.children:
                    self.beginRemoveRows(self._index_of(child), 0, len(child.children) - 1)
                    child.children = []
                    self.endRemoveRows()
                child.children = None
            child.data = new
            child.flags = _flags_for(new, self._writable)
            if mark:
                self._marks[new.path] = now
            self.dataChanged.emit(self._index_of(child, 0), self._index_of(child, len(HEADERS) - 1))
        # 3. new rows, at their sorted place
        added = [r for r in rows if r.name not in present]
        if not added:
            self._after_marks(mark)
            return
        key = _sort_key(self._sort_column)
        descending = self._sort_order == Qt.SortOrder.DescendingOrder
        if mark:
            for r in added:
                self._marks[r.path] = now
        if len(added) > _MANY:
            start = len(node.children)
            self.beginInsertRows(parent_index, start, start + len(added) - 1)
            node.children += [Node(r, node, start + i, self._writable) for i, r in enumerate(added)]
            self.endInsertRows()
            self._sort_nodes([node], key, descending)
        else:
            for r in sorted(added, key=key):
                keys = [key(c.data) for c in node.children if c.data is not None]
                if descending:
                    pos = len(keys) - bisect.bisect_right(list(reversed(keys)), key(r))
                else:
                    pos = bisect.bisect_right(keys, key(r))
                self.beginInsertRows(parent_index, pos, pos)
                node.children.insert(pos, Node(r, node, pos, self._writable))
                self._renumber(node, pos)
                self.endInsertRows()
        self._after_marks(mark)

    def _after_marks(self, mark: bool) -> None:
        if mark and self._marks and not self._mark_timer.isActive():
            self._mark_timer.start()

    @staticmethod
    def _renumber(node: Node, start: int) -> None:
        assert node.children is not None
        for i in range(start, len(node.children)):
            node.children[i].row = i

    def _expire_marks(self) -> None:
        now = time.monotonic()
        old = [p for p, t in self._marks.items() if now - t > MARK_SECONDS]
        for path in old:
            del self._marks[path]
            node = self.node_for_path(path)
            if node is not None and node is not self._root:
                self.dataChanged.emit(self._index_of(node, 0), self._index_of(node, len(HEADERS) - 1))
        if not self._marks:
            self._mark_timer.stop()

    # --- sorting -------------------------------------------------------------------------

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        if not 0 <= column < len(HEADERS):
            return
        self._sort_column = column
        self._sort_order = order
        self._sort_nodes(self.loaded_dirs(), _sort_key(column), order == Qt.SortOrder.DescendingOrder)

    def _sort_nodes(self, nodes: list[Node], key: Callable[[FileRow], Any], descending: bool) -> None:
        self.layoutAboutToBeChanged.emit()
        old = self.persistentIndexList()
        held = [(idx.internalPointer(), idx.column()) for idx in old]
        for node in nodes:
            if node.children:
                node.children.sort(key=lambda n: key(n.data) if n.data is not None else (), reverse=descending)
                self._renumber(node, 0)
        new = [self.createIndex(n.row, col, n) if isinstance(n, Node) else QModelIndex() for n, col in held]
        self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()

    # --- data ----------------------------------------------------------------------------

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
        row = self._node(index).data
        if row is None:
            return None
        return self.row_data(row, index.column(), role)

    def row_data(self, row: FileRow, col: int, role: int) -> Any:
        """``data`` for a row without an index (the flat view asks for visible rows only).

        Called for every role of every cell painted, so roles are plain ints compared in
        order of frequency, and a role no column answers returns at once."""
        if role == _DISPLAY:
            return self._display(row, col)
        if role not in _ANSWERED:
            return None
        if role == _FOREGROUND:
            return _status_brush(row.status) if row.status else None
        if role == _DECORATION:
            if col != Col.NAME:
                return None
            if row.mount is not None and row.is_mount_point:
                return self.icons.get(f"mount:{row.mount.kind}") or self.icons.get("dir")
            return self.icons.get(row.type if row.status != DELETED else "whiteout") or self.icons.get("file")
        if role == _ALIGNMENT:
            return _RIGHT if col == Col.SIZE else None
        if role == _FONT:
            return _strike_font() if row.status == DELETED else None
        if role == _BACKGROUND:
            return _mark_brush() if self._marks and row.path in self._marks else None
        if role == _TOOLTIP:
            return self._tooltip(row)
        if role == Role.ROW:
            return row
        if role == Role.PATH:
            return row.path
        if role == Role.SORT:
            return _sort_key(col)(row)
        if role == Role.JUST_CHANGED:
            return row.path in self._marks
        return None

    def _display(self, row: FileRow, col: int) -> str:
        if col == Col.NAME:
            if row.type == "symlink" and row.link:
                return f"{row.name} → {row.link}"
            return row.name
        if col == Col.SIZE:
            return "" if row.type != "file" or row.status == DELETED else fmt.size(row.size)
        if col == Col.MODE:
            return "c---------" if row.status == DELETED else fmt.mode(row.type, row.mode)
        if col == Col.OWNER:
            snap = self._snapshot
            return snap.owner(row.uid, row.gid) if snap else f"{row.uid}:{row.gid}"
        if col == Col.MODIFIED:
            return fmt.when(row.mtime) if row.mtime else ""
        if col == Col.LAYER:
            if row.mount is not None:
                return row.mount.label
            snap = self._snapshot
            return snap.layer_label(row.layer) if snap else str(row.layer)
        if col == Col.STATUS:
            return "deleted (whiteout)" if row.status == DELETED else row.status
        return ""

    def _tooltip(self, row: FileRow) -> str:
        lines = [row.path]
        if row.mount is not None and row.is_mount_point:
            lines.append(row.mount.description)
        elif row.mount is not None:
            lines.append(f"in {row.mount.label}, mounted at {row.mount.destination}")
        elif row.layer == MOUNTED:
            lines.append("made by the runtime at start, for a mount below it")
        if row.status == DELETED:
            lines.append("deleted by this layer: a whiteout hides it and everything below it")
        elif row.type == "symlink":
            lines.append(f"symbolic link to {row.link}")
        if row.path in self._marks:
            lines.append("just changed")
        return "\n".join(lines)

    def flags(self, index: Index) -> Qt.ItemFlag:
        if index.isValid():
            flags: Qt.ItemFlag = index.internalPointer().flags
            return flags
        return Qt.ItemFlag.ItemIsDropEnabled if self._writable else Qt.ItemFlag.NoItemFlags

    # --- drag and drop -------------------------------------------------------------------

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows: dict[str, FileRow] = {}
        for index in indexes:
            row = self.node_at(index)
            if row is not None and row.status != DELETED:
                rows[row.path] = row
        if self.exporter is not None and rows:
            return self.exporter(list(rows.values()))
        return QMimeData()

    def canDropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        snap = self._snapshot
        if snap is None or not snap.source.writable or not data.hasUrls():
            return False
        return any(u.isLocalFile() for u in data.urls())

    def dropMimeData(self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: Index) -> bool:
        if not self.canDropMimeData(data, action, row, column, parent) or self.drop_handler is None:
            return False
        target = self._node(parent)
        if target.data is not None and target.data.type != "dir":
            target = target.parent or self._root
        files = [u.toLocalFile() for u in data.urls() if u.isLocalFile()]
        self.drop_handler(files, target.path)
        return True


def _runs(rows: list[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs."""
    out: list[tuple[int, int]] = []
    for r in sorted(rows):
        if out and out[-1][1] == r - 1:
            out[-1] = (out[-1][0], r)
        else:
            out.append((r, r))
    return out


_dark_now: list[bool] = []  # the answer while the palette stays; emptied when it changes


def _dark() -> bool:
    """Asked for every coloured cell painted, so the palette is read once per change."""
    if _dark_now:
        return _dark_now[0]
    app = QGuiApplication.instance()
    if app is None:
        return False
    if not app.property("strataDarkWatch"):
        app.paletteChanged.connect(lambda *_: _dark_now.clear())  # type: ignore[attr-defined]
        app.setProperty("strataDarkWatch", True)
    base = QGuiApplication.palette().color(QPalette.ColorRole.Base)
    _dark_now.append(base.lightness() < 128)
    return _dark_now[0]


_BRUSH_COLORS = {ADDED: ("#1a7f37", "#6fcf73"), MODIFIED: ("#9a6700", "#e3b341"), DELETED: ("#cf222e", "#f47067")}
_brushes: dict[tuple[str, bool], QBrush] = {}


def _status_brush(status: str) -> QBrush | None:
    pair = _BRUSH_COLORS.get(status)
    if pair is None:
        return None
    dark = _dark()
    brush = _brushes.get((status, dark))
    if brush is None:
        brush = _brushes[(status, dark)] = QBrush(QColor(pair[1] if dark else pair[0]))
    return brush


def _strike_font() -> QFont:
    font = QFont()
    font.setStrikeOut(True)
    return font


def _mark_brush() -> QBrush:
    return QBrush(QColor(255, 200, 0, 70) if _dark() else QColor(255, 214, 0, 90))
