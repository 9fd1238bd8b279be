"""The file browser: any image (at any layer), layer, container or volume.

The tree is lazy and every listing runs in a worker. Image layers are read-only and the
browser says so; in a container the viewer edits files (copy-up into the container
layer), and folders take new folders, deletions (whiteouts) and files dropped from the
desktop (copied in as ``strata cp`` does). Files dragged out of the tree are extracted to a
temporary folder first, then handed to the desktop. ``files_changed`` is the live-refresh
entry point: the watcher calls it with the paths that changed, and only the directories
holding them are re-listed and merged.
"""

from __future__ import annotations

import posixpath
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shiboken6
from PySide6.QtCore import (
    QAbstractItemModel,
    QItemSelectionModel,
    QMimeData,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QAction, QDrag, QIcon, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QProgressBar,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from .. import fmt
from ..context import AppContext
from ..drag_out import DragExport
from ..editor.highlighter import is_dark
from ..export import extract
from ..icons import file_icons, icon
from ..models.file_source import (
    CONTAINER,
    DELETED,
    IMAGE,
    VOLUME,
    VOLUME_MOUNT,
    FileRow,
    FileSource,
    Snapshot,
    open_snapshot,
)
from ..models.file_tree_model import Col, FileTreeModel
from ..models.flat_tree import FlatTreeModel
from ..workers import Control, TaskFailure
from .file_viewer import FileViewer
from .tree_table import TreeTable

if TYPE_CHECKING:
    from ...api.model import UnionView

Index = QModelIndex | QPersistentModelIndex
FIND_LIMIT = 2000
# Files the runtime writes into a container on every start (Docker bind-mounts the same
# three): an edit would land in that generated copy and be gone by the next start.
_GENERATED = "{} is written by the runtime each time the container starts, so an edit here would not last{}"
RUNTIME_FILES = {
    "/etc/hostname": _GENERATED.format("/etc/hostname", "; set it with run --hostname"),
    "/etc/hosts": _GENERATED.format("/etc/hosts", ""),
    "/etc/resolv.conf": _GENERATED.format("/etc/resolv.conf", " (it follows the host's)"),
}


class FileTree(TreeTable):
    """The tree, with drops from the desktop accepted on writable folders."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSortingEnabled(True)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDragDropOverwriteMode(True)  # drop *on* a folder, never between rows
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)

    def startDrag(self, supportedActions: Qt.DropAction) -> None:
        """As the view's own drag, except that a drag ending nowhere stops the copy it started."""
        indexes = [i for i in self.selectedIndexes() if i.column() == 0]
        model = self.model()
        if not indexes or model is None:
            return
        mime = model.mimeData(indexes)
        if not mime.formats():
            return
        drag = QDrag(self)
        drag.setMimeData(mime)
        icon = indexes[0].data(Qt.ItemDataRole.DecorationRole)
        if isinstance(icon, QIcon):
            drag.setPixmap(icon.pixmap(32, 32))
        result = drag.exec(supportedActions, Qt.DropAction.CopyAction)
        if result == Qt.DropAction.IgnoreAction and isinstance(mime, DragExport) and not mime.done:
            mime.cancel()


class GuardedSelection(QItemSelectionModel):
    """A selection whose current row moves only when ``may_move(new index)`` agrees.

    The view moves the current row first and selects after (a click, a key), so one
    refusal refuses the rest of that gesture too: the selection stays with the current row.
    """

    def __init__(self, model: QAbstractItemModel, parent: QObject) -> None:
        super().__init__(model, parent)
        self.may_move: Callable[[Index], bool] | None = None
        self._refused = False

    def setCurrentIndex(self, index: Index, command: QItemSelectionModel.SelectionFlag) -> None:
        if self.may_move is not None and index.isValid() and not self.may_move(index):
            self._refused = True
            QTimer.singleShot(0, self._gesture_over)
            return
        super().setCurrentIndex(index, command)

    def select(self, selection: Any, command: Any) -> None:
        if self._refused:
            return
        super().select(selection, command)

    def _gesture_over(self) -> None:
        self._refused = False


class FileBrowser(QWidget):
    titleChanged = Signal(str)
    openSource = Signal(object)
    opened = Signal()

    def __init__(self, ctx: AppContext, source: FileSource, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.source = source
        self.snapshot: Snapshot | None = None
        self._pending = 0
        self._refreshing = False
        self._queued: set[str] | None = None
        self._queued_any = False
        self._reveal_target: str | None = None
        self._search_task: Any = None
        self._drag_dirs: list[tempfile.TemporaryDirectory[str]] = []

        self.model = FileTreeModel(self._run, self)
        self.model.icons = file_icons()
        self.model.exporter = self._export_for_drag
        self.model.drop_handler = self.drop_files
        self.model.directoryLoaded.connect(self._directory_loaded)
        self.model.loadFailed.connect(lambda path, msg: self.show_error(f"cannot list {path}: {msg}"))

        self.flat = FlatTreeModel(self.model, self)
        self.tree = FileTree(self)
        self.tree.setModel(self.flat)
        self.selection = GuardedSelection(self.flat, self.tree)
        self.selection.may_move = self._may_move_to
        self.tree.setSelectionModel(self.selection)
        self.tree.sortByColumn(Col.NAME, Qt.SortOrder.AscendingOrder)
        header = self.tree.header()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(False)
        header.resizeSection(Col.NAME, 260)
        for col, width in (
            (Col.SIZE, 80),
            (Col.MODE, 95),
            (Col.OWNER, 90),
            (Col.MODIFIED, 140),
            (Col.LAYER, 150),
            (Col.STATUS, 110),
        ):
            header.resizeSection(col, width)
        self.tree.selectionModel().currentChanged.connect(self._current_changed)
        self.tree.customContextMenuRequested.connect(self._context_menu)

        self.viewer = FileViewer(ctx, self)
        self.viewer.saved.connect(lambda path: self.files_changed([path], mark=True))

        # header: what this is, whether it can change, and errors in place
        self.heading = QLabel(f"<b>{source.label}</b>", self)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner = QLabel(self)
        self.banner.setWordWrap(True)
        self.error = QLabel(self)
        self.error.setWordWrap(True)
        self.error.setVisible(False)
        self.error.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.busy = QProgressBar(self)
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(90)
        self.busy.setMaximumHeight(12)
        self.busy.setTextVisible(False)
        self.busy.setVisible(False)
        self.layer_box = QComboBox(self)
        self.layer_box.setVisible(False)
        self.layer_box.setToolTip("Browse the filesystem as of this layer")
        self.layer_box.activated.connect(self._layer_chosen)

        self.results = QListWidget(self)
        self.results.setVisible(False)
        self.results.setMaximumHeight(160)
        self.results.itemActivated.connect(lambda item: self.reveal(item.data(Qt.ItemDataRole.UserRole)))
        self.toolbar = QToolBar(self)
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.changed_action = QAction("Changed only", self)
        self.changed_action.setCheckable(True)
        self.changed_action.setToolTip("Show only what this layer (or the container) added, changed or deleted")
        self.changed_action.toggled.connect(self.set_changed_only)
        self.toolbar.addAction(self.changed_action)
        self.size_action = QAction("Largest first", self)
        self.size_action.setToolTip("Sort by size, largest first")
        self.size_action.triggered.connect(lambda: self.tree.sortByColumn(Col.SIZE, Qt.SortOrder.DescendingOrder))
        self.toolbar.addAction(self.size_action)
        self.find_edit = QLineEdit(self)
        self.find_edit.setPlaceholderText("Find by name…")
        self.find_edit.setClearButtonEnabled(True)
        self.find_edit.setMaximumWidth(260)
        self.find_edit.returnPressed.connect(self.find_files)
        self.find_edit.textChanged.connect(lambda t: self.results.setVisible(bool(t) and self.results.count() > 0))
        self.toolbar.addWidget(self.find_edit)
        self.toolbar.addSeparator()
        self.mkdir_action = self.toolbar.addAction(icon("folder-new"), "New folder", self.new_folder)
        self.delete_action = self.toolbar.addAction(icon("delete"), "Delete", self.delete_selected)
        self.delete_action.setShortcut(QKeySequence.StandardKey.Delete)
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.extract_action = self.toolbar.addAction(icon("export"), "Extract…", self.extract_selected)
        self.extract_action.setToolTip("Copy the selected files and folders to a folder on this computer")
        self.refresh_action = self.toolbar.addAction(icon("refresh"), "Refresh", lambda: self.refresh(None, False))

        split = QSplitter(Qt.Orientation.Horizontal, self)
        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.results)
        lv.addWidget(self.tree, 1)
        split.addWidget(left)
        split.addWidget(self.viewer)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        self.splitter = split

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.heading)
        top.addWidget(self.layer_box)
        top.addStretch(1)
        top.addWidget(self.busy)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.error)
        layout.addWidget(self.toolbar)
        layout.addWidget(split, 1)
        self._setup_permissions()
        self.open()

    # --- permissions -------------------------------------------------------------------------

    def _setup_permissions(self) -> None:
        s = self.source
        for action in (self.mkdir_action, self.delete_action):
            action.setVisible(s.kind == CONTAINER)
            action.setEnabled(s.kind == CONTAINER)
        if s.kind == CONTAINER:
            text = (
                "This is the container's filesystem: edits, deletions and dropped files land in its own "
                "layer (copy-up); the image below stays unchanged."
            )
        elif s.kind == VOLUME:
            text = "A volume: drop files from the desktop onto a folder to copy them in."
        else:
            text = (
                "Files in image layers are read-only. To change them, run a container from the image "
                "and browse the container."
            )
        self.banner.setText(text)
        self.banner.setStyleSheet("padding: 3px; border-radius: 3px; background: palette(alternate-base);")

    @property
    def writable(self) -> bool:
        return self.source.writable

    # --- opening -------------------------------------------------------------------------------

    def _run(self, title: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """The model's runner: listings on the pool, with the busy bar showing while any run."""
        self._pending += 1
        self.busy.setVisible(True)

        def finish(result: Any) -> None:
            self._pending -= 1
            self.busy.setVisible(self._pending > 0)
            done(result)

        def failed(failure: TaskFailure) -> None:
            finish(failure.message)

        self.ctx.submit(title, lambda _: work(), on_result=finish, on_error=failed, visible=False, owner=self)

    def open(self) -> None:
        source = self.source

        def work(control: Control) -> tuple[Snapshot, list[str]]:
            api = self.ctx.api()
            snap = open_snapshot(api, source, control.check)
            layers: list[str] = []
            if source.kind == IMAGE:
                rows = [r for r in reversed(api.history(source.ref)) if not r.empty_layer]
                layers = [f"{i}: {fmt.instruction(r.created_by, 60)}" for i, r in enumerate(rows)]
            return snap, layers

        self._pending += 1
        self.busy.setVisible(True)
        self.ctx.submit(f"open {source.label}", work, on_result=self._opened, on_error=self._open_failed, owner=self)

    def _opened(self, result: tuple[Snapshot, list[str]]) -> None:
        self._pending -= 1
        self.busy.setVisible(self._pending > 0)
        snap, layers = result
        self.snapshot = snap
        self.model.set_snapshot(snap)
        self.model.fetchMore(QModelIndex())
        if layers:
            self.layer_box.clear()
            self.layer_box.addItems(layers)
            at = self.source.at_layer if self.source.at_layer is not None else len(layers) - 1
            self.layer_box.setCurrentIndex(at)
            self.layer_box.setVisible(True)
        self.opened.emit()

    def _open_failed(self, failure: TaskFailure) -> None:
        self._pending -= 1
        self.busy.setVisible(self._pending > 0)
        self.show_error(f"cannot open {self.source.label}: {failure.message}")

    def _layer_chosen(self, index: int) -> None:
        if self.source.kind != IMAGE:
            return
        last = self.layer_box.count() - 1
        at = None if index == last else index
        if at == self.source.at_layer:
            return
        self.source = FileSource(IMAGE, self.source.ref, at)
        self.heading.setText(f"<b>{self.source.label}</b>")
        self.titleChanged.emit(self.source.label)
        self.viewer.show_message("Select a file to see its content.")
        self.open()

    def show_error(self, text: str) -> None:
        color = "#f47067" if is_dark(self.palette()) else "#cf222e"
        self.error.setText(f"<span style='color:{color}'>{text}</span>")
        self.error.setVisible(bool(text))

    # --- live refresh --------------------------------------------------------------------------

    def files_changed(self, paths: Iterable[str] | None, mark: bool = True) -> None:
        """Re-read the source and merge the directories holding ``paths`` (all when None)."""
        self.refresh(None if paths is None else set(paths), mark)

    def refresh(self, paths: set[str] | None, mark: bool = True) -> None:
        if self.snapshot is None:
            return
        if self._refreshing:
            if paths is None:
                self._queued_any = True
            else:
                self._queued = (self._queued or set()) | paths
            return
        self._refreshing = True
        source = self.source

        def work(control: Control) -> Snapshot:
            return open_snapshot(self.ctx.api(), source, control.check)

        def done(snap: Snapshot) -> None:
            self._refreshing = False
            if source != self.source:
                return
            self.snapshot = snap
            self.model.update_snapshot(snap, paths, mark)
            self.viewer.snapshot = snap
            self._next_refresh(mark)

        def failed(failure: TaskFailure) -> None:
            self._refreshing = False
            if not failure.cancelled:
                self.show_error(f"cannot refresh {source.label}: {failure.message}")
            self._next_refresh(mark)

        self.ctx.submit(f"refresh {source.label}", work, on_result=done, on_error=failed, visible=False, owner=self)

    def _next_refresh(self, mark: bool) -> None:
        if self._queued_any:
            self._queued_any = False
            self._queued = None
            self.refresh(None, mark)
        elif self._queued:
            queued, self._queued = self._queued, None
            self.refresh(queued, mark)

    # --- selection and viewing ---------------------------------------------------------------

    def row_at(self, index: Index) -> FileRow | None:
        """The file row at an index of the view."""
        node = self.flat.node(index)
        return node.data if node is not None else None

    def current_path(self) -> str | None:
        row = self.row_at(self.tree.currentIndex())
        return row.path if row is not None else None

    def index_for_path(self, path: str) -> QModelIndex:
        """The view's index of ``path``, when it is shown."""
        return self.flat.index_for_path(path)

    def _current_changed(self, current: QModelIndex, _: QModelIndex) -> None:
        row = self.row_at(current)
        if row is None or self.snapshot is None:
            return
        why = RUNTIME_FILES.get(row.path, "") if self.source.kind == CONTAINER else ""
        if row.mount is not None and not row.mount.writable:
            why = f"{row.path} is in a mount: {row.mount.description}"
        writer = self._writer() if self.source.kind == CONTAINER and row.status != DELETED and not why else None
        self.viewer.show_row(self.snapshot, row, writer, why)

    def _may_move_to(self, index: Index) -> bool:
        """Asked before the current row moves: with an edit pending, the user settles it
        first. Cancel stays; Save stays until the edit is written, then moves on."""
        row = self.row_at(index)
        shown = self.viewer.row
        if row is None or shown is None or shown.path == row.path or not self.viewer.is_dirty():
            return True
        target = row.path
        if self.viewer.saving:
            self.viewer.save(then=lambda: self._select_path(target))
            return False
        answer = self.viewer.ask_about_edit(f"open {target}")
        if answer == QMessageBox.StandardButton.Save:
            self.viewer.save(then=lambda: self._select_path(target))
            return False
        if answer == QMessageBox.StandardButton.Discard:
            self.viewer.discard()
            return True
        return False

    def _select_path(self, path: str) -> None:
        index = self.index_for_path(path)
        if index.isValid():
            self.tree.setCurrentIndex(index)

    def _writer(self) -> Callable[[str, bytes], None] | None:
        ref = self.source.ref

        def write(path: str, data: bytes) -> None:
            self.ctx.api().container_write(ref, path, data)

        return write

    def selected_rows(self) -> list[FileRow]:
        rows: dict[str, FileRow] = {}
        for index in self.tree.selectionModel().selectedRows(0):
            row = self.row_at(index)
            if row is not None:
                rows[row.path] = row
        if not rows:
            row = self.row_at(self.tree.currentIndex())
            if row is not None:
                rows[row.path] = row
        return list(rows.values())

    def _target_dir(self) -> str:
        row = self.row_at(self.tree.currentIndex())
        if row is None:
            return "/"
        return row.path if row.type == "dir" else posixpath.dirname(row.path)

    # --- finding -----------------------------------------------------------------------------

    def set_changed_only(self, on: bool) -> None:
        self.changed_action.setChecked(on)
        self.model.set_changed_only(on)
        self.model.fetchMore(QModelIndex())

    def focus_find(self) -> None:
        self.find_edit.setFocus()
        self.find_edit.selectAll()

    def find_files(self) -> None:
        text = self.find_edit.text().strip()
        snap = self.snapshot
        if not text or snap is None:
            self.results.clear()
            self.results.setVisible(False)
            return
        if self._search_task is not None:
            self._search_task.cancel()
        needle = text.lower()

        def work(control: Control) -> list[tuple[str, str, int]]:
            out: list[tuple[str, str, int]] = []
            # the container's own files (not what a mount hides), then each mount's
            walks = [(snap.view, None), *((m.view, m) for m in snap.mounts if m.view is not None)]
            for view, mount in walks:
                for i, hit in enumerate(view.walk()):
                    if i % 2000 == 0:
                        control.check("find")
                    path = mount.outer(hit.entry.path) if mount is not None else hit.entry.path
                    if snap.mount_for(path) is not mount:
                        continue
                    name = path.rsplit("/", 1)[-1].lower()
                    if needle in name:
                        out.append((path, hit.entry.type, hit.entry.size))
                        if len(out) >= FIND_LIMIT:
                            return out
            return out

        def done(found: list[tuple[str, str, int]]) -> None:
            self._search_task = None
            self.results.clear()
            for path, kind, size in found:
                label = path + ("/" if kind == "dir" else f"   ({fmt.size(size)})" if kind == "file" else "")
                item = QListWidgetItem(label)
                item.setData(Qt.ItemDataRole.UserRole, path)
                self.results.addItem(item)
            if not found:
                self.results.addItem(f"nothing named like “{text}”")
            elif len(found) >= FIND_LIMIT:
                self.results.addItem(f"… showing the first {FIND_LIMIT}")
            self.results.setVisible(True)

        def failed(failure: TaskFailure) -> None:
            self._search_task = None
            if not failure.cancelled:
                self.show_error(f"find: {failure.message}")

        self._search_task = self.ctx.submit(
            f"find “{text}” in {self.source.label}", work, on_result=done, on_error=failed, owner=self
        )

    def reveal(self, path: str | None) -> None:
        """Expand down to ``path`` (loading folders on the way) and select it."""
        if not path:
            return
        self._reveal_target = path
        self._reveal_step()

    def _directory_loaded(self, _: str) -> None:
        if self._reveal_target is not None:
            self._reveal_step()

    def _reveal_step(self) -> None:
        target = self._reveal_target
        if target is None:
            return
        parts = [p for p in target.split("/") if p]
        prefix = ""
        for part in parts[:-1]:
            prefix += "/" + part
            node = self.model.node_for_path(prefix)
            index = self.flat.index_for_path(prefix)
            if node is None or not index.isValid():
                return  # its parent is still loading; directoryLoaded brings us back
            self.tree.expand(index)
            if node.children is None:
                return  # listing; directoryLoaded brings us back
        index = self.flat.index_for_path(target)
        if index.isValid():
            self._reveal_target = None
            self.tree.setCurrentIndex(index)
            self.tree.scrollTo(index, QAbstractItemView.ScrollHint.PositionAtCenter)

    # --- changing a container ------------------------------------------------------------------

    def _api_call(self, title: str, fn: Callable[[], Any], changed: list[str]) -> None:
        def done(_: Any) -> None:
            self.show_error("")
            self.files_changed(changed)

        def failed(failure: TaskFailure) -> None:
            if not failure.cancelled:
                self.show_error(f"{title}: {failure.message}")

        self.ctx.submit(title, lambda _: fn(), on_result=done, on_error=failed, owner=self)

    def _keeps_edits(self, directory: str) -> bool:
        """False (said inline) when ``directory`` is in a mount that would not keep a change."""
        mount = self.snapshot.mount_for(directory) if self.snapshot is not None else None
        if mount is not None and not mount.writable:
            self.show_error(f"{directory} is in a mount: {mount.description}")
            return False
        return True

    def volume_changed(self, name: str, paths: list[str]) -> None:
        """Files of volume ``name`` changed: shown here too where this container mounts it."""
        snap = self.snapshot
        if snap is None:
            return
        inside = [
            m.outer(p) for m in snap.mounts if m.kind == VOLUME_MOUNT and m.source == name for p in paths or ["/"]
        ]
        if inside:
            self.files_changed(inside)

    def new_folder(self) -> None:
        if self.source.kind != CONTAINER:
            return
        parent = self._target_dir()
        if not self._keeps_edits(parent):
            return
        name, ok = QInputDialog.getText(self, "New folder", f"Name of the new folder in {parent}:")
        name = name.strip()
        if not ok or not name:
            return
        if "/" in name or name in (".", ".."):
            self.show_error(f"{name!r} is not a folder name: no slashes, not . or ..")
            return
        path = posixpath.join(parent, name)
        ref = self.source.ref
        self._api_call(f"new folder {path}", lambda: self.ctx.api().container_mkdir(ref, path), [path])

    def delete_selected(self) -> None:
        if self.source.kind != CONTAINER:
            return
        rows = [r for r in self.selected_rows() if r.status != DELETED]
        if not rows or self.snapshot is None:
            return
        for r in rows:
            held = self.snapshot.mounts_under(r.path)
            if held:
                self.show_error(
                    f"{r.path} holds the mount point {held[0].destination} ({held[0].description}): "
                    "deleting it would reach into the mount; remove the mount by recreating the container"
                )
                return
            if r.mount is not None and not r.mount.writable:
                self.show_error(f"cannot delete {r.path}: {r.mount.description}")
                return
        names = "\n".join(r.path for r in rows[:10]) + ("\n…" if len(rows) > 10 else "")
        answer = QMessageBox.question(
            self,
            "Delete",
            f"Delete from the container?\n\n{names}\n\n"
            "Files that come from the image are hidden by a whiteout in the container's layer.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        ref = self.source.ref
        paths = [r.path for r in rows]

        def work() -> None:
            for p in paths:
                self.ctx.api().container_delete(ref, p)

        self._api_call("delete", work, paths)

    def drop_files(self, files: list[str], target_dir: str) -> None:
        """Files dropped from the desktop onto a folder of a container or volume."""
        kind, ref = self.source.kind, self.source.ref
        if kind not in (CONTAINER, VOLUME):
            self.show_error("Files in image layers are read-only; drop onto a container or a volume instead.")
            return
        if kind == CONTAINER and not self._keeps_edits(target_dir):
            return
        changed = [posixpath.join(target_dir, Path(f).name) for f in files]

        def work() -> None:
            api = self.ctx.api()
            for f in files:
                if kind == CONTAINER:
                    api.cp_in(ref, f, target_dir)
                else:
                    api.cp_in_volume(ref, f, target_dir)

        self._api_call(f"copy {len(files)} item(s) into {ref}:{target_dir}", work, changed)

    # --- copying out ---------------------------------------------------------------------------

    def extract_selected(self, destination: str | None = None) -> None:
        rows = [r for r in self.selected_rows() if r.status != DELETED]
        snap = self.snapshot
        if not rows or snap is None:
            return
        if destination is None:
            destination = QFileDialog.getExistingDirectory(self, "Extract to", str(Path.home()))
            if not destination:
                return
        dest = Path(destination)
        sources = self._sources(snap, [r.path for r in rows])

        def work(control: Control) -> list[str]:
            out = []
            for path, view, inner in sources:
                control.progress(f"extracting {path}")
                out.append(str(extract(view, inner, dest, control.check, posixpath.basename(path))))
            return out

        def done(paths: list[str]) -> None:
            self.ctx.info(f"extracted {len(paths)} item(s) to {dest}")
            self.show_error("")

        def failed(failure: TaskFailure) -> None:
            if not failure.cancelled:
                self.show_error(f"extract: {failure.message}")

        self.ctx.submit(f"extract {len(rows)} item(s) to {dest}", work, on_result=done, on_error=failed, owner=self)

    @staticmethod
    def _sources(snap: Snapshot, paths: list[str]) -> list[tuple[str, UnionView, str]]:
        """(path shown, view holding it, path in that view) for each path with content."""
        out = []
        for path in paths:
            found = snap.view_for(path)
            if found is not None:
                out.append((path, *found))
        return out

    def _export_for_drag(self, rows: list[FileRow]) -> QMimeData:
        """The drag's data: the rows are written to a temporary folder by a task that starts
        now, and handed to the desktop when it asks (drag_out.py). The folder lives until
        the browser closes, or goes at once when the drag ends nowhere or fails."""
        snap = self.snapshot
        if snap is None:
            return QMimeData()
        holder = tempfile.TemporaryDirectory(prefix="strata-drag-")
        self._drag_dirs.append(holder)
        dest = Path(holder.name)
        paths = [r.path for r in rows]
        sources = self._sources(snap, paths)

        def work(control: Control) -> list[str]:
            written = 0

            def check() -> None:
                nonlocal written
                written += 1
                if written % 200 == 0:
                    control.progress(f"{written} files written")
                control.check("export")

            out = []
            for path, view, inner in sources:
                control.progress(f"writing {path}")
                out.append(str(extract(view, inner, dest, check, posixpath.basename(path))))
            return out

        def failed(failure: TaskFailure) -> None:
            holder.cleanup()
            if not shiboken6.isValid(self):
                return
            if holder in self._drag_dirs:
                self._drag_dirs.remove(holder)
            if not failure.cancelled:  # a drag cannot show a dialog mid-gesture: say it inline
                self.show_error(f"cannot export for the drag: {failure.message}")

        what = paths[0] if len(paths) == 1 else f"{len(paths)} items"
        return DragExport(self.ctx, f"export {what} for a drag", work, failed)

    # --- menus -------------------------------------------------------------------------------

    def _context_menu(self, pos: Any) -> None:
        index = self.tree.indexAt(pos)
        row = self.row_at(index)
        menu = QMenu(self)
        if row is not None:
            copy = menu.addAction("Copy path")
            copy.triggered.connect(lambda: QApplication.clipboard().setText(row.path))
            if row.status != DELETED:
                menu.addAction(self.extract_action)
        if self.source.kind == CONTAINER:
            menu.addSeparator()
            menu.addAction(self.mkdir_action)
            if row is not None and row.status != DELETED:
                menu.addAction(self.delete_action)
        menu.addSeparator()
        menu.addAction(self.changed_action)
        menu.addAction(self.refresh_action)
        menu.exec(self.tree.viewport().mapToGlobal(pos))

    def closeEvent(self, event: Any) -> None:
        self.cleanup()
        super().closeEvent(event)

    def cleanup(self) -> None:
        if self._search_task is not None:
            self._search_task.cancel()
        for holder in self._drag_dirs:
            holder.cleanup()
        self._drag_dirs.clear()

    def maybe_close(self, then: Callable[[], object]) -> bool:
        """True when the browser may close now. With an edit pending the user chooses:
        Cancel keeps it open, Discard drops the edit, Save writes it and calls ``then``
        (the close, asked again) once it is written; a failed save keeps the tab and the edit."""
        if self.viewer.saving:
            self.viewer.save(then=then)
            return False
        if self.viewer.is_dirty():
            answer = self.viewer.ask_about_edit(f"close {self.source.label}")
            if answer == QMessageBox.StandardButton.Cancel:
                return False
            if answer == QMessageBox.StandardButton.Save:
                self.viewer.save(then=then)
                return False
            self.viewer.discard()
        self.cleanup()
        return True
