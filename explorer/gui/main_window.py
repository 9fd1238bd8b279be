"""The main window: sidebar, tabs, inspector, output panel, status bar; menus and drops.

The window owns no data. One ``StoreState`` read in a worker fills every list at once;
a refresh is requested by the watcher (another process changed the store), by an
operation here, or by the user, and requests arriving while one runs fold into one more.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QByteArray, QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QTabWidget,
    QToolButton,
    QWidget,
)

from ..api.dockerfile import BuildResult
from ..api.model import ImageSummary, TreeNode
from . import dnd, fmt
from .context import AppContext
from .editor.dockerfile_editor import DockerfileEditor
from .editor.highlighter import is_dark
from .icons import app_icon, icon
from .inspector import Inspector
from .models.file_source import CONTAINER, IMAGE, LAYER, VOLUME, FileSource
from .models.layer_tree_model import layer_label
from .operations import Operations
from .sidebar import CACHE, CONTAINERS, IMAGES, LAYERS, VOLUMES, Sidebar
from .state import StoreState, gather
from .tabs import DocumentTabs
from .views.analysis_view import AnalysisView
from .views.containers_view import ContainersView
from .views.disk_view import DiskUsageView
from .views.file_browser import FileBrowser
from .views.images_view import ImagesView, image_ref
from .views.layer_tree_view import LayerTreeView
from .views.volumes_view import VolumesView
from .watch import StoreWatcher
from .workers import Control, TaskFailure

MAX_RECENT = 10
DISK = "disk"  # the Disk usage tab, as a section name
REFRESH_DELAY_MS = 60


class TaskIndicator(QWidget):
    """Status-bar view of the running tasks, with a cancel menu."""

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from PySide6.QtWidgets import QHBoxLayout

        self.ctx = ctx
        self.label = QLabel(self)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 0)
        self.bar.setMaximumWidth(120)
        self.bar.setMaximumHeight(14)
        self.bar.setTextVisible(False)
        self.cancel = QToolButton(self)
        self.cancel.setIcon(icon("cancel"))
        self.cancel.setToolTip("Cancel running tasks")
        self.cancel.setAutoRaise(True)
        self.cancel.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.menu = QMenu(self)
        self.cancel.setMenu(self.menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        ctx.runner.changed.connect(self.update_tasks)
        self.update_tasks()

    def update_tasks(self) -> None:
        tasks = self.ctx.runner.visible_tasks()
        self.setVisible(bool(tasks))
        if not tasks:
            return
        first = tasks[0]
        text = first.title + (f" — {first.last_progress}" if first.last_progress else "")
        if len(tasks) > 1:
            text += f"  (+{len(tasks) - 1} more)"
        self.label.setText(text[:120])
        self.menu.clear()
        for task in tasks:
            if task.cancellable:
                self.menu.addAction(f"Cancel {task.title}", task.cancel)
        if len(tasks) > 1:
            self.menu.addSeparator()
            self.menu.addAction("Cancel all", self.ctx.runner.cancel_all)


class MainWindow(QMainWindow):
    refreshed = Signal(object)  # the StoreState applied

    def __init__(self, ctx: AppContext, watcher: StoreWatcher | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.watcher = watcher
        self.state = StoreState(root=str(ctx.strata.root))
        self._refreshing = False
        self._refresh_again = False
        self._select_image: str | None = None
        self._first_refresh = True
        self.ops = Operations(ctx, self)
        self.ops.imagesLoaded.connect(self._images_loaded)
        self.setWindowTitle(f"Strata — {ctx.strata.root}")
        self.setWindowIcon(app_icon())
        self.setAcceptDrops(True)
        self.setObjectName("strata-main")
        self.resize(1280, 800)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_DELAY_MS)
        self._refresh_timer.timeout.connect(self.refresh)
        self._dropped: deque[dnd.DropAction | DockerfileEditor] = deque()  # what a drop still has to do
        self._drop_timer = QTimer(self)
        self._drop_timer.setSingleShot(True)
        self._drop_timer.setInterval(0)
        self._drop_timer.timeout.connect(self._next_drop_step)
        ctx.store_touched.connect(self.request_refresh)
        ctx.message.connect(self._message)

        self._build_central()
        self._build_docks()
        self._build_status()
        self._build_actions()
        self._restore_settings()
        if watcher is not None:
            watcher.storeChanged.connect(self.request_refresh)
            watcher.containerFilesChanged.connect(self._container_files_changed)
            watcher.volumeFilesChanged.connect(self._volume_files_changed)
            watcher.contextChanged.connect(self._context_changed)
            watcher.statusChanged.connect(self._watch_status)

    # --- layout ------------------------------------------------------------------------------

    def _build_central(self) -> None:
        self.tabs = DocumentTabs(self)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.tabs.currentChanged.connect(self._tab_changed)
        self.images_view = ImagesView(self.ctx, self.ops, self)
        self.layer_view = LayerTreeView(self.ctx, self)
        self.containers_view = ContainersView(self.ctx, self.ops, self)
        self.volumes_view = VolumesView(self.ctx, self.ops, self)
        self.disk_view = DiskUsageView(self.ctx, self)
        for widget, title, ic in (
            (self.images_view, "Images", "image"),
            (self.layer_view, "Layer tree", "layers"),
            (self.containers_view, "Containers", "container"),
            (self.volumes_view, "Volumes", "volume"),
            (self.disk_view, "Disk usage", "disk"),
        ):
            self.tabs.add_pinned(widget, icon(ic), title)
        self.fixed_tabs = {self.images_view, self.layer_view, self.containers_view, self.volumes_view, self.disk_view}
        self.setCentralWidget(self.tabs)

        self.images_view.browseImage.connect(lambda ref: self.open_browser(FileSource(IMAGE, ref)))
        self.images_view.analyzeImage.connect(self.open_analysis)
        self.images_view.imageSelected.connect(self._image_selected)
        self.layer_view.browseLayer.connect(self._browse_layer)
        self.layer_view.analyzeImage.connect(self.open_analysis)
        self.layer_view.layerSelected.connect(self._layer_selected)
        self.containers_view.browseContainer.connect(
            lambda name, cid: self.open_browser(FileSource(CONTAINER, name, ident=cid))
        )
        self.containers_view.containerSelected.connect(
            lambda rec: self.inspector.show_container(rec) if rec is not None else None
        )
        self.volumes_view.browseVolume.connect(lambda name: self.open_browser(FileSource(VOLUME, name, ident=name)))
        self.volumes_view.volumeSelected.connect(
            lambda rec: self.inspector.show_volume(rec) if rec is not None else None
        )
        self.disk_view.openRecord.connect(self._disk_record_opened)
        self.ops.cleanupRequested.connect(self.cleanup)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
        )
        self.addDockWidget(area, dock)
        return dock

    def _build_docks(self) -> None:
        self.sidebar = Sidebar(self)
        self.sidebar.sectionActivated.connect(self.show_section)
        self.sidebar.itemChosen.connect(self._sidebar_chosen)
        self.sidebar.itemOpened.connect(self._sidebar_opened)
        self.sidebar_dock = self._dock("Store", "sidebar", self.sidebar, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector = Inspector(self.ctx, self)
        self.inspector_dock = self._dock(
            "Inspector", "inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.output = QPlainTextEdit(self)
        self.output.setReadOnly(True)
        self.output.setObjectName("build-output")
        self.output.setMaximumBlockCount(20000)
        from PySide6.QtGui import QFontDatabase

        self.output.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.events = QPlainTextEdit(self)
        self.events.setReadOnly(True)
        self.events.setObjectName("events")
        self.events.setMaximumBlockCount(5000)
        self.bottom = QTabWidget(self)
        self.bottom.setDocumentMode(True)
        self.bottom.addTab(self.output, icon("build"), "Build output")
        self.bottom.addTab(self.events, icon("info"), "Events")
        self.bottom_dock = self._dock("Output", "output", self.bottom, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.sidebar_dock, self.inspector_dock], [210, 290], Qt.Orientation.Horizontal)
        self.resizeDocks([self.bottom_dock], [140], Qt.Orientation.Vertical)

    def _build_status(self) -> None:
        self.root_label = QLabel(f"Store: {self.ctx.strata.root}", self)
        self.root_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.disk_label = QLabel(self)
        self.watch_label = QLabel(self)
        self.watch_label.setObjectName("watch-status")
        self.watch_label.setVisible(False)
        self.tasks = TaskIndicator(self.ctx, self)
        bar = self.statusBar()
        bar.addWidget(self.root_label)
        bar.addPermanentWidget(self.watch_label)
        bar.addPermanentWidget(self.tasks)
        bar.addPermanentWidget(self.disk_label)

    def _action(self, text: str, slot: Any, shortcut: Any = None, ic: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if ic:
            action.setIcon(icon(ic))
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(
                f"{tip} ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
                if shortcut is not None
                else tip
            )
        action.triggered.connect(lambda *_: slot())
        return action

    def _build_actions(self) -> None:
        K = QKeySequence.StandardKey
        a: dict[str, QAction] = {}
        a["new"] = self._action("&New Dockerfile", self.new_editor, K.New, "new", "New Dockerfile")
        a["open"] = self._action("&Open…", self.open_dialog, K.Open, "open", "Open a Dockerfile")
        a["save"] = self._action("&Save", self.save_current, K.Save, "save", "Save the Dockerfile")
        a["save_as"] = self._action("Save &As…", self.save_current_as, K.SaveAs, "save-as")
        a["load"] = self._action(
            "&Load Image Archive…",
            lambda: self.ops.load_archive(),
            "Ctrl+L",
            "load",
            "Load a docker-archive or OCI tar",
        )
        a["export"] = self._action(
            "Save &Image…", self.save_image, "Ctrl+Shift+E", "export", "Save the selected image to a tar"
        )
        a["pull"] = self._action("&Pull…", self.ops.pull, "Ctrl+Shift+P", "pull", "Pull an image")
        a["close_tab"] = self._action("&Close Tab", lambda: self.close_tab(self.tabs.currentIndex()), K.Close)
        a["quit"] = self._action("&Quit", self.close, K.Quit)
        a["find"] = self._action("&Find…", self.find_in_tab, K.Find, "find", "Find")
        a["refresh"] = self._action("&Refresh", self.refresh_all, K.Refresh, "refresh", "Refresh from the store")
        a["build"] = self._action("&Build", self.build, "Ctrl+B", "build", "Build the Dockerfile")
        a["cancel_build"] = self._action("&Cancel Build", self.cancel_build, "Ctrl+Shift+B", "cancel")
        a["run"] = self._action("&Run…", self.run_selected, "Ctrl+R", "run", "Run the selected image")
        a["analyze"] = self._action(
            "&Analyze Image", self.analyze_selected, "Ctrl+Shift+A", "analyze", "Analyze the selected image's layers"
        )
        a["prune"] = self._action(
            "&Prune…",
            self.ops.prune,
            None,
            "prune",
            "Remove stopped containers, dangling images, unused volumes, build cache",
        )
        a["disk"] = self._action(
            "&Disk Usage", lambda: self.show_section(DISK), "Ctrl+5", "disk", "Where the space goes, and the clean-ups"
        )
        a["check"] = self._action(
            "&Check Store…",
            lambda: self.cleanup("check"),
            None,
            "info",
            "Verify layers, indexes and references; repair what is safe to repair",
        )
        a["about"] = self._action("&About Strata", self.about)
        self.actions_ = a

        menu = self.menuBar().addMenu("&File")
        for key in ("new", "open"):
            menu.addAction(a[key])
        self.recent_menu = menu.addMenu("Open &Recent")
        for key in ("save", "save_as"):
            menu.addAction(a[key])
        menu.addSeparator()
        for key in ("load", "export", "pull"):
            menu.addAction(a[key])
        menu.addSeparator()
        menu.addAction(a["close_tab"])
        menu.addAction(a["quit"])
        menu = self.menuBar().addMenu("&Edit")
        menu.addAction(a["find"])
        menu = self.menuBar().addMenu("&View")
        menu.addAction(a["refresh"])
        menu.addSeparator()
        for i, (section, label) in enumerate(
            ((IMAGES, "Images"), (LAYERS, "Layer Tree"), (CONTAINERS, "Containers"), (VOLUMES, "Volumes"))
        ):
            menu.addAction(self._action(label, lambda s=section: self.show_section(s), f"Ctrl+{i + 1}"))
        menu.addAction(a["disk"])
        menu.addSeparator()
        for dock in (self.sidebar_dock, self.inspector_dock, self.bottom_dock):
            menu.addAction(dock.toggleViewAction())
        menu = self.menuBar().addMenu("&Image")
        for key in ("build", "cancel_build", "run", "analyze"):
            menu.addAction(a[key])
        menu = self.menuBar().addMenu("&Store")
        menu.addAction(a["disk"])
        menu.addSeparator()
        menu.addAction(a["prune"])
        menu.addAction(a["check"])
        menu = self.menuBar().addMenu("&Help")
        menu.addAction(a["about"])

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for key in ("new", "open", "save", "", "build", "run", "", "load", "pull", "", "refresh", "find"):
            if key:
                toolbar.addAction(a[key])
            else:
                toolbar.addSeparator()
        self._update_recent_menu()

    # --- settings ----------------------------------------------------------------------------

    def _restore_settings(self) -> None:
        s = self.ctx.settings
        geometry = s.value("window/geometry")
        if isinstance(geometry, QByteArray | bytes):
            self.restoreGeometry(QByteArray(geometry))
        state = s.value("window/state")
        if isinstance(state, QByteArray | bytes):
            self.restoreState(QByteArray(state))
        tab = s.value("window/tab")
        if tab is not None:
            try:
                self.tabs.setCurrentIndex(int(str(tab)))
            except ValueError:
                pass

    def save_settings(self) -> None:
        s = self.ctx.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        index = self.tabs.currentIndex()
        s.setValue("window/tab", index if self.tabs.widget(index) in self.fixed_tabs else 0)
        s.sync()

    def recent_files(self) -> list[str]:
        value: Any = self.ctx.settings.value("recentFiles", [])
        if isinstance(value, str):
            return [value]
        return [str(v) for v in (value or [])]

    def add_recent(self, path: str) -> None:
        files = [p for p in self.recent_files() if p != path]
        files.insert(0, path)
        self.ctx.settings.setValue("recentFiles", files[:MAX_RECENT])
        self._update_recent_menu()

    def _opener(self, path: str) -> Any:
        return lambda: self.open_editor(path)

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.recent_files()
        for path in files:
            self.recent_menu.addAction(path, self._opener(path))
        self.recent_menu.setEnabled(bool(files))

    # --- refreshing --------------------------------------------------------------------------

    def request_refresh(self) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def refresh_all(self) -> None:
        self.refresh()
        for browser in self.browsers():
            browser.files_changed(None, mark=False)

    def refresh(self) -> None:
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        started = time.monotonic()

        def work(control: Control) -> StoreState:
            return gather(self.ctx.api(), control.check)

        def done(state: StoreState) -> None:
            self._refreshing = False
            self.apply_state(state)
            self.ctx.message.emit("event", f"refreshed in {(time.monotonic() - started) * 1000:.0f} ms")
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()

        def failed(failure: TaskFailure) -> None:
            self._refreshing = False
            if not failure.cancelled:
                self._message("error", f"cannot read the store: {failure.message}")
            if self._refresh_again:
                self._refresh_again = False
                self.refresh()

        self.ctx.submit(
            "read the store", work, on_result=done, on_error=failed, visible=self._first_refresh, owner=self
        )

    def apply_state(self, state: StoreState) -> None:
        self.state = state
        self._first_refresh = False
        self.sidebar.update_state(state)
        self.images_view.set_images(state.images)
        self.layer_view.set_forest(state.forest)
        self.containers_view.set_containers(state.containers)
        self.volumes_view.set_volumes(state.volumes, state.volume_sizes)
        self.disk_view.set_usage(state.disk_usage, state.disk_free, state.disk_total)
        for problem in state.problems:
            self._message("error", problem)
        iu = state.images_usage
        volume_bytes = state.volumes_usage.size or sum(state.volume_sizes.values())
        parts = [
            f"{len(state.images)} images {fmt.size(iu.size)}",
            f"{len(state.containers)} containers",
            f"{len(state.volumes)} volumes {fmt.size(volume_bytes)}",
            f"cache {fmt.size(state.cache_usage.size)}",
        ]
        if state.disk_total:
            parts.append(f"{fmt.size(state.disk_free)} free")
        self.disk_label.setText(" · ".join(parts))
        if self._select_image is not None and self.layer_view.select_image_top(self._select_image):
            self._select_image = None
        self._check_open_sources(state)
        if self.watcher is not None:
            self.watcher.sync_targets()
        self.refreshed.emit(state)

    def _check_open_sources(self, state: StoreState) -> None:
        """A browser whose container or volume went away says so instead of showing stale files."""
        names = {c.name for c in state.containers} | {c.id for c in state.containers}
        volumes = {v.name for v in state.volumes}
        for browser in self.browsers():
            s = browser.source
            if s.kind == CONTAINER and s.ref not in names:
                browser.show_error(f"container {s.ref} no longer exists")
            elif s.kind == VOLUME and s.ref not in volumes:
                browser.show_error(f"volume {s.ref} no longer exists")

    def _container_files_changed(self, container_id: str, paths: list[str]) -> None:
        for browser in self.browsers():
            s = browser.source
            if s.kind == CONTAINER and (
                s.ident == container_id or container_id.startswith(s.ref) or s.ref == container_id
            ):
                browser.files_changed(paths)

    def _volume_files_changed(self, name: str, paths: list[str]) -> None:
        for browser in self.browsers():
            if browser.source.kind == VOLUME and browser.source.ref == name:
                browser.files_changed(paths)
            elif browser.source.kind == CONTAINER:
                browser.volume_changed(name, paths)  # where the container mounts it
        self.request_refresh()  # sizes

    def _watch_status(self, text: str) -> None:
        """Live refresh fell back to polling (or is whole again): said where it stays in sight."""
        self.watch_label.setText(text)
        self.watch_label.setVisible(bool(text))
        polled = sorted(self.watcher.report.polled) if self.watcher is not None else []
        self.watch_label.setToolTip("Polled instead of watched:\n" + "\n".join(polled) if polled else "")
        if text:
            self._message("event", text)

    def _context_changed(self, directory: str, paths: list[str]) -> None:
        for editor in self.editors():
            if editor.context_dir is not None and str(editor.context_dir) == directory:
                editor.context_changed(paths)

    # --- tabs --------------------------------------------------------------------------------

    def browsers(self) -> list[FileBrowser]:
        return [w for w in self._tab_widgets() if isinstance(w, FileBrowser)]

    def editors(self) -> list[DockerfileEditor]:
        return [w for w in self._tab_widgets() if isinstance(w, DockerfileEditor)]

    def _tab_widgets(self) -> list[QWidget]:
        widgets = (self.tabs.widget(i) for i in range(self.tabs.count()))
        return [w for w in widgets if w is not None]

    def _add_tab(self, widget: QWidget, title: str, ic: str) -> None:
        index = self.tabs.add_document(widget, icon(ic), title, self._tooltip(widget, title))
        self.tabs.setCurrentIndex(index)

    @staticmethod
    def _tooltip(widget: QWidget, title: str) -> str:
        """A tab's full name: the Dockerfile's path, what a browser shows."""
        if isinstance(widget, DockerfileEditor):
            return str(widget.path) if widget.path is not None else title
        if isinstance(widget, FileBrowser):
            return f"{widget.source.kind} {widget.source.label}"
        return title

    def close_tab(self, index: int) -> bool:
        widget = self.tabs.widget(index)
        if widget is None or widget in self.fixed_tabs:
            return False
        if not self._may_close(widget, lambda: self.close_tab(self.tabs.indexOf(widget))):
            return False
        self.tabs.removeTab(index)
        widget.deleteLater()
        self._sync_context_watch()
        return True

    @staticmethod
    def _may_close(widget: QWidget | None, retry: Callable[[], object]) -> bool:
        """Whether a tab may go now; a browser saving its edit first calls ``retry`` once it is written."""
        if isinstance(widget, FileBrowser):
            return widget.maybe_close(retry)
        if isinstance(widget, DockerfileEditor):
            return widget.maybe_close()
        return True

    def _tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        for key in ("save", "save_as"):
            if key in getattr(self, "actions_", {}):
                self.actions_[key].setEnabled(isinstance(widget, DockerfileEditor))

    def show_section(self, kind: str) -> None:
        target = {
            IMAGES: self.images_view,
            LAYERS: self.layer_view,
            CONTAINERS: self.containers_view,
            VOLUMES: self.volumes_view,
            CACHE: self.disk_view,
            DISK: self.disk_view,
        }.get(kind)
        if target is not None:
            self.tabs.setCurrentWidget(target)
        if kind == CACHE:
            self.disk_view.select_kind("cache")

    def cleanup(self, kind: str) -> None:
        """A clean-up from a menu or a view runs in the Disk usage tab, where its figures are."""
        self.tabs.setCurrentWidget(self.disk_view)
        if kind == "check":
            self.disk_view.check_store()
        else:
            self.disk_view.cleanup(kind)

    def _disk_record_opened(self, kind: str, record: Any) -> None:
        if kind == "images":
            self.open_browser(FileSource(IMAGE, record.id))
        elif kind == "containers":
            self.open_browser(FileSource(CONTAINER, record.name, ident=record.id))
        elif kind == "volumes":
            self.open_browser(FileSource(VOLUME, record.name, ident=record.name))

    def open_browser(self, source: FileSource) -> FileBrowser:
        for browser in self.browsers():
            if browser.source == source:
                self.tabs.setCurrentWidget(browser)
                return browser
        browser = FileBrowser(self.ctx, source, self)
        browser.titleChanged.connect(lambda title, b=browser: self._retitle(b, title))
        browser.openSource.connect(self.open_browser)
        self._add_tab(
            browser,
            source.label,
            {IMAGE: "image", LAYER: "layers", CONTAINER: "container", VOLUME: "volume"}.get(source.kind, "folder"),
        )
        return browser

    def open_analysis(self, ref: str) -> AnalysisView:
        for w in self._tab_widgets():
            if isinstance(w, AnalysisView) and w.ref == ref:
                self.tabs.setCurrentWidget(w)
                w.load()
                return w
        view = AnalysisView(self.ctx, ref, self)
        self._add_tab(view, f"Analysis: {ref}", "analyze")
        return view

    def _retitle(self, widget: QWidget, title: str) -> None:
        self.tabs.set_document_title(widget, title, self._tooltip(widget, title))

    # --- editors -----------------------------------------------------------------------------

    def new_editor(self) -> DockerfileEditor:
        editor = DockerfileEditor(self.ctx, self)
        editor.titleChanged.connect(lambda title, e=editor: self._retitle(e, title))
        editor.output.connect(self._build_output)
        editor.buildStarted.connect(self._build_started)
        editor.buildFinished.connect(self._build_finished)
        editor.fileOpened.connect(self.add_recent)
        editor.fileOpened.connect(lambda _: self._sync_context_watch())
        editor.set_dark(is_dark(self.palette()))
        self._add_tab(editor, editor.title(), "new")
        return editor

    def open_editor(self, path: str | Path, context: str | Path | None = None) -> DockerfileEditor | None:
        p = Path(path).absolute()
        for editor in self.editors():
            if editor.path == p:
                self.tabs.setCurrentWidget(editor)
                if context is not None:
                    editor.set_context(context)
                    self._sync_context_watch()
                return editor
        editor = self.new_editor()
        if not editor.open_file(p):
            self._message("error", f"cannot open {p}")
            return editor
        if context is not None:
            editor.set_context(context)
        self._sync_context_watch()
        return editor

    def _sync_context_watch(self) -> None:
        if self.watcher is None:
            return
        editor = self.current_editor() or next(iter(self.editors()), None)
        self.watcher.set_context(editor.context_dir if editor is not None else None)

    def current_editor(self) -> DockerfileEditor | None:
        widget = self.tabs.currentWidget()
        return widget if isinstance(widget, DockerfileEditor) else None

    def open_dialog(self) -> None:
        start = str(Path(self.recent_files()[0]).parent) if self.recent_files() else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Open Dockerfile", start, "Dockerfiles (Dockerfile* *.dockerfile Containerfile*);;All files (*)"
        )
        if path:
            self.open_editor(path)

    def save_current(self) -> None:
        editor = self.current_editor()
        if editor is not None:
            editor.save()

    def save_current_as(self) -> None:
        editor = self.current_editor()
        if editor is not None:
            editor.save_as()

    def build(self) -> None:
        editor = self.current_editor()
        if editor is None:
            editors = self.editors()
            if not editors:
                self.open_dialog()
                return
            editor = editors[0]
            self.tabs.setCurrentWidget(editor)
        editor.build()

    def cancel_build(self) -> None:
        for editor in self.editors():
            editor.cancel_build()

    def _build_output(self, line: str) -> None:
        self.output.appendPlainText(line)

    def _build_started(self) -> None:
        self.bottom.setCurrentWidget(self.output)
        self.bottom_dock.show()

    def _build_finished(self, result: BuildResult | TaskFailure) -> None:
        if isinstance(result, TaskFailure):
            if not result.cancelled:
                self._message("error", f"build failed: {result.message}")
            return
        image, tags = result.image_id, list(result.tags)
        self._message("info", f"built {image.removeprefix('sha256:')[:12]}" + (f" ({', '.join(tags)})" if tags else ""))
        self._select_image = image or (tags[0] if tags else None)
        self.request_refresh()

    # --- selection ---------------------------------------------------------------------------

    def _image_selected(self, summary: ImageSummary | None) -> None:
        if summary is not None:
            self.inspector.show_image(image_ref(summary))

    def _browse_layer(self, node: TreeNode) -> None:
        self.open_browser(FileSource(LAYER, node.layer_id, title=f"layer {layer_label(node)}"))

    def _layer_selected(self, node: TreeNode | None) -> None:
        if node is not None:
            self.inspector.show_layer(node)

    def _sidebar_chosen(self, kind: str, record: Any) -> None:
        if record is None:
            return
        if kind == IMAGES:
            self.inspector.show_image(image_ref(record))
            row = self.images_view.model.row_of((record.id, record.repository, record.tag))
            if row >= 0:
                self.images_view.table.selectRow(row)
        elif kind == CONTAINERS:
            self.inspector.show_container(record)
        elif kind == VOLUMES:
            self.inspector.show_volume(record)

    def _sidebar_opened(self, kind: str, record: Any) -> None:
        if record is None:
            return
        if kind == IMAGES:
            self.open_browser(FileSource(IMAGE, image_ref(record)))
        elif kind == CONTAINERS:
            self.open_browser(FileSource(CONTAINER, record.name, ident=record.id))
        elif kind == VOLUMES:
            self.open_browser(FileSource(VOLUME, record.name, ident=record.name))

    def selected_image(self) -> str | None:
        widget = self.tabs.currentWidget()
        if widget is self.layer_view:
            node = self.layer_view.current_node()
            if node is not None and node.images:
                return node.tags[0] if node.tags and not node.tags[0].startswith("<none>") else node.images[0]
        if isinstance(widget, FileBrowser) and widget.source.kind == IMAGE:
            return widget.source.ref
        if isinstance(widget, AnalysisView):
            return widget.ref
        ref = self.images_view.current_ref()
        if ref:
            return ref
        if self.inspector.subject is not None and self.inspector.subject[0] == "image":
            return self.inspector.subject[1]
        return None

    def run_selected(self) -> None:
        ref = self.selected_image()
        if ref is None:
            ref, ok = QInputDialog.getText(self, "Run", "Image to run:")
            if not ok or not ref.strip():
                return
        self.ops.run_image(ref.strip())

    def analyze_selected(self) -> None:
        ref = self.selected_image()
        if ref is not None:
            self.open_analysis(ref)
        else:
            self.statusBar().showMessage("Select an image to analyze", 4000)

    def save_image(self) -> None:
        refs = self.images_view.selected_refs() if self.tabs.currentWidget() is self.images_view else []
        if not refs:
            ref = self.selected_image()
            refs = [ref] if ref else []
        if refs:
            self.ops.save_images(refs)
        else:
            self.statusBar().showMessage("Select an image to save", 4000)

    def find_in_tab(self) -> None:
        widget = self.tabs.currentWidget()
        if isinstance(widget, FileBrowser):
            widget.focus_find()
        elif isinstance(widget, DockerfileEditor):
            text, ok = QInputDialog.getText(self, "Find", "Find in the Dockerfile:")
            if ok and text and not widget.editor.find(text):
                cursor = widget.editor.textCursor()
                cursor.movePosition(cursor.MoveOperation.Start)
                widget.editor.setTextCursor(cursor)
                widget.editor.find(text)
        elif widget is self.layer_view:
            self.layer_view.filter_edit.setFocus()
        else:
            table = getattr(widget, "table", None)
            if table is not None:
                table.setFocus()

    def _images_loaded(self, names: list[str]) -> None:
        for line in names:
            # load reports docker's lines: "Loaded image: name:tag" / "Loaded image ID: sha256:…"
            self._select_image = line.split(": ", 1)[-1].strip()
            break
        self.request_refresh()

    # --- messages ----------------------------------------------------------------------------

    def _message(self, kind: str, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        if kind == "event":
            return self._event_line(f"{stamp}  {text}")
        self._event_line(f"{stamp}  {'ERROR  ' if kind == 'error' else ''}{text}")
        self.statusBar().showMessage(text, 8000 if kind == "error" else 4000)

    def _event_line(self, text: str) -> None:
        self.events.appendPlainText(text)

    def about(self) -> None:
        QMessageBox.about(
            self,
            "About Strata",
            f"<b>Strata</b> {__import__('explorer').__version__}<br>"
            "Build, store, run and explore container images — no daemon, no root.<br><br>"
            f"Store: {self.ctx.strata.root}",
        )

    # --- drops -------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.handle_drop(paths)

    def open_paths(self, paths: list[Path]) -> None:
        """Files named on the command line: like a drop, except that a Dockerfile only opens
        (with its folder as the context); nothing builds until the user asks."""
        for action in dnd.classify_all(paths):
            if action.kind == dnd.BUILD:
                assert action.context is not None
                self.open_editor(action.path, action.context)
            elif action.kind == dnd.LOAD:
                self.ops.load_archive(str(action.path))
            else:
                self._message("error", action.reason)

    def handle_drop(self, paths: list[Path]) -> None:
        """A drop returns at once: a refusal is said now; each Dockerfile opens, and then
        builds, in a later pass of the event loop, one at a time, so a drop of several never
        holds the window for all their editors together."""
        for action in dnd.classify_all(paths):
            if action.kind == dnd.REFUSE:
                self._message("error", action.reason)
            else:
                self._dropped.append(action)
        if self._dropped:
            self._drop_timer.start()

    def _next_drop_step(self) -> None:
        """One slice of the drops waiting: open one Dockerfile, start one build, or one load."""
        step = self._dropped.popleft()
        if isinstance(step, DockerfileEditor):
            if shiboken6.isValid(step):
                step.build()
        elif step.kind == dnd.BUILD:
            assert step.context is not None
            editor = self.open_editor(step.path, step.context)
            if editor is not None:
                if not editor.tag_edit.text().strip():
                    editor.tag_edit.setText(default_tag(step.context))
                self._dropped.appendleft(editor)  # it builds in the next slice
        else:
            self.ops.load_archive(str(step.path))
        if self._dropped:
            self._drop_timer.start()

    # --- palette and closing -----------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.PaletteChange:
            dark = is_dark(self.palette())
            for editor in self.editors():
                editor.set_dark(dark)
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        for i in range(self.tabs.count() - 1, -1, -1):
            if not self._may_close(self.tabs.widget(i), self.close):
                event.ignore()
                return
        self.save_settings()
        if self.watcher is not None:
            self.watcher.stop()
        self.ctx.shutdown()
        event.accept()


def default_tag(context: Path) -> str:
    """A tag for a dropped build: the folder's name made into a valid repository name."""
    name = re.sub(r"[^a-z0-9._-]+", "-", context.name.lower()).strip("-._") or "image"
    return f"{name}:latest"
