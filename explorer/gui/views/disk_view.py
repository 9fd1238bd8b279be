"""The Disk usage tab: ``strata system df`` as a chart and a tree, and the clean-ups.

Every clean-up first takes a fresh ``df()`` in a worker, then asks with the bytes it would
free (``cleanup.py`` works them out), then runs in a worker while a strip under the
toolbar shows what is happening. Only the multi-step prune can stop half-way (between
steps); a single prune or check is one backend call that runs to its end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QToolBar,
    QToolButton,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ...api import Strata
from ...api.usage import DiskUsage
from ...api.volumes import VolumeInfo
from .. import fmt
from ..cleanup import (
    CACHE,
    CONTAINERS,
    IMAGES,
    VOLUMES,
    CleanupPlan,
    plan_cache_prune,
    plan_container_prune,
    plan_image_prune,
    plan_volume_prune,
    summarize,
)
from ..cleanup_dialog import CheckDialog, CleanupDialog, Option, PruneAllDialog
from ..context import AppContext
from ..dialogs import error_box
from ..icons import icon
from ..models.disk_usage_model import NAME, RECLAIMABLE, SHARED, SIZE, UNIQUE, DiskUsageModel, Role
from ..workers import Control, Task, TaskFailure
from .disk_chart import DiskChart

SYSTEM = "system"


class DiskUsageView(QWidget):
    openRecord = Signal(str, object)  # kind, record (double click on an image, container or volume)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.usage: DiskUsage | None = None
        self.task: Task | None = None
        self.dialog: Any = None  # the confirmation on screen (tests answer it)
        self.last_result: Any = None

        self.chart = DiskChart(self)
        self.chart.kindClicked.connect(self.select_kind)
        self.model = DiskUsageModel(self)
        self.tree = QTreeView(self)
        self.tree.setObjectName("disk-tree")
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSortingEnabled(True)
        self.tree.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.tree.header().setStretchLastSection(True)
        self.tree.header().setSectionResizeMode(NAME, QHeaderView.ResizeMode.Interactive)
        self.tree.setColumnWidth(NAME, 260)
        for col, width in ((SIZE, 80), (SHARED, 80), (UNIQUE, 80), (RECLAIMABLE, 120)):
            self.tree.setColumnWidth(col, width)
        self.tree.doubleClicked.connect(self._activated)
        self.tree.expandAll()

        bar = QToolBar(self)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.actions_: dict[str, QAction] = {"refresh": bar.addAction(icon("refresh"), "Refresh", self.measure)}
        menu = QMenu(self)
        for key, ic, text in (
            (CONTAINERS, "container", "Stopped containers…"),
            (IMAGES, "image", "Images…"),
            (VOLUMES, "volume", "Volumes…"),
            (CACHE, "cache", "Build cache…"),
        ):
            self.actions_[key] = self._menu_action(menu, ic, text, key)
        menu.addSeparator()
        self.actions_[SYSTEM] = self._menu_action(menu, "prune", "All of them…", SYSTEM)
        self.actions_[SYSTEM].setToolTip("Stopped containers, dangling images, build cache (and volumes)")
        self.prune_button = QToolButton(self)
        self.prune_button.setText("Prune")
        self.prune_button.setIcon(icon("prune"))
        self.prune_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.prune_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.prune_button.setMenu(menu)
        self.prune_button.setToolTip("Remove what nothing uses; each asks first, with what it frees")
        bar.addWidget(self.prune_button)
        self.actions_["check"] = bar.addAction(icon("info"), "Check store…", self.check_store)
        self.actions_["check"].setToolTip("Verify layers, indexes and references; repair what is safe to repair")
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        for key in (CONTAINERS, IMAGES, VOLUMES, CACHE):
            self.tree.addAction(self.actions_[key])

        self.strip = QWidget(self)
        self.strip_label = QLabel(self.strip)
        self.strip_bar = QProgressBar(self.strip)
        self.strip_bar.setRange(0, 0)
        self.strip_bar.setMaximumWidth(180)
        self.strip_bar.setTextVisible(False)
        self.cancel_button = QToolButton(self.strip)
        self.cancel_button.setIcon(icon("cancel"))
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.cancel_button.clicked.connect(self.cancel)
        sl = QHBoxLayout(self.strip)
        sl.setContentsMargins(4, 0, 4, 0)
        sl.addWidget(self.strip_label, 1)
        sl.addWidget(self.strip_bar)
        sl.addWidget(self.cancel_button)
        self.strip.setVisible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addWidget(self.strip)
        layout.addWidget(self.chart)
        layout.addWidget(self.tree, 1)
        self._update_actions()

    def _menu_action(self, menu: QMenu, ic: str, text: str, kind: str) -> QAction:
        action = QAction(icon(ic), text, self)
        action.triggered.connect(lambda *_: self.cleanup(kind))
        menu.addAction(action)
        return action

    # --- figures ----------------------------------------------------------------------------

    def set_usage(self, du: DiskUsage | None, disk_free: int = 0, disk_total: int = 0) -> None:
        """A ``DiskUsage`` from the window's refresh or from ``measure``."""
        if du is None:
            return
        self.usage = du
        first = not any(self.model.rows_of.values())
        self.model.set_usage(du)
        self.chart.set_usage(summarize(du), disk_free or self.chart.disk_free, disk_total or self.chart.disk_total)
        if first:
            self.tree.expandAll()

    def measure(self) -> Task | None:
        """A fresh ``df()`` now (the window refreshes it too, on every store change)."""
        return self._measure(lambda du, _: None)

    def _measure(self, then: Callable[[DiskUsage, list[VolumeInfo]], None]) -> Task | None:
        if self.busy:
            return None

        def work(_: Control) -> tuple[DiskUsage, list[VolumeInfo], tuple[int, int]]:
            import shutil

            api = self.ctx.api()
            du = api.df()
            volumes = api.volumes()
            try:
                disk = shutil.disk_usage(api.root)
                space = (disk.free, disk.total)
            except OSError:
                space = (0, 0)
            return du, volumes, space

        def done(result: tuple[DiskUsage, list[VolumeInfo], tuple[int, int]]) -> None:
            du, volumes, (free, total) = result
            self.set_usage(du, free, total)
            then(du, volumes)

        return self._run("measuring the store", work, done, touch=False)

    def select_kind(self, kind: str) -> None:
        index = self.model.kind_index(kind)
        self.tree.expand(index)
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)

    def _activated(self, index: Any) -> None:
        kind = self.model.data(index, Role.KIND)
        record = self.model.item(index)
        if record is not None and kind in (IMAGES, CONTAINERS, VOLUMES):
            self.openRecord.emit(kind, record.record)

    # --- clean-ups --------------------------------------------------------------------------

    def cleanup(self, kind: str) -> Task | None:
        """Measure, ask with the figures, then remove. ``kind``: containers, images,
        volumes, cache, or system (several at once)."""
        return self._measure(lambda du, volumes: self._ask(kind, du, volumes))

    def _ask(self, kind: str, du: DiskUsage, volumes: list[VolumeInfo]) -> None:
        dialog: Any
        if kind == SYSTEM:
            planners: dict[str, Callable[[bool], CleanupPlan]] = {
                CONTAINERS: lambda _: plan_container_prune(du),
                VOLUMES: lambda _: plan_volume_prune(du, volumes, all=False),
                IMAGES: lambda a: plan_image_prune(du, all=a),
                CACHE: lambda _: plan_cache_prune(du),
            }
            labels = {
                CONTAINERS: "Stopped containers",
                VOLUMES: "Anonymous volumes no container uses",
                IMAGES: "Dangling images (untagged, unused)",
                CACHE: "Build cache",
            }
            dialog = PruneAllDialog(planners, labels, self)
            dialog.accepted.connect(lambda: self._prune_all(dialog.chosen(), dialog.all_images.isChecked()))
        else:
            title, what, planner, option = self._dialog_spec(kind, du, volumes)
            dialog = CleanupDialog(title, what, planner, option, self)
            dialog.accepted.connect(lambda: self._prune(kind, dialog.value(), dialog.plan))
        self._show_dialog(dialog)

    def _show_dialog(self, dialog: Any) -> None:
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog = dialog
        dialog.finished.connect(lambda _: setattr(self, "dialog", None))
        dialog.open()

    def _dialog_spec(
        self, kind: str, du: DiskUsage, volumes: list[VolumeInfo]
    ) -> tuple[str, str, Callable[[Any], CleanupPlan], Option | None]:
        if kind == CONTAINERS:
            return (
                "Prune containers",
                "Remove every stopped container and its changes.",
                lambda _: plan_container_prune(du),
                None,
            )
        if kind == IMAGES:
            return (
                "Prune images",
                "Remove dangling images: untagged, and used by no container.",
                lambda a: plan_image_prune(du, all=bool(a)),
                Option("Every image no container uses, tagged or not (-a)", tooltip="strata image prune -a"),
            )
        if kind == VOLUMES:
            return (
                "Prune volumes",
                "Remove anonymous volumes no container uses, and their data.",
                lambda a: plan_volume_prune(du, volumes, all=bool(a)),
                Option("Named volumes too (-a)", tooltip="strata volume prune -a"),
            )
        return (
            "Prune build cache",
            "Forget cached build steps, oldest first; layers no image uses are deleted.",
            lambda keep: plan_cache_prune(du, int(keep or 0)),
            Option("Keep at most", kind="size", tooltip="0 removes the whole cache"),
        )

    def _prune(self, kind: str, value: Any, plan: CleanupPlan) -> Task | None:
        calls: dict[str, tuple[str, Callable[[Strata], Pruned]]] = {
            CONTAINERS: ("removing stopped containers", lambda api: api.container_prune()),
            IMAGES: ("removing images", lambda api: api.image_prune(all=bool(value))),
            VOLUMES: ("removing volumes", lambda api: api.volume_prune(all=bool(value))),
            CACHE: ("pruning the build cache", lambda api: api.cache_prune(keep_storage=int(value or 0))),
        }
        title, call = calls[kind]

        def work(control: Control) -> Pruned:
            control.progress(title)
            return call(self.ctx.api())

        def done(result: Pruned) -> None:
            line = f"{plan.kind}: {_describe(result)}"
            self.last_result = result
            self.ctx.info(line)

        return self._run(title, work, done, cancellable=False)

    def _prune_all(self, chosen: list[str], all_images: bool) -> Task | None:
        steps: list[tuple[str, str, Callable[[Strata], Pruned]]] = [
            (CONTAINERS, "stopped containers", lambda api: api.container_prune()),
            (VOLUMES, "anonymous volumes", lambda api: api.volume_prune(all=False)),
            (IMAGES, "images", lambda api: api.image_prune(all=all_images)),
            (CACHE, "build cache", lambda api: api.cache_prune()),
        ]
        steps = [s for s in steps if s[0] in chosen]

        def work(control: Control) -> list[tuple[str, Pruned]]:
            api = self.ctx.api()
            out = []
            for i, (_, label, call) in enumerate(steps):
                control.progress(f"{i + 1}/{len(steps)}: {label}")  # a cancel stops here, between steps
                out.append((label, call(api)))
            return out

        def done(results: list[tuple[str, Pruned]]) -> None:
            self.last_result = results
            total = 0
            for label, result in results:
                self.ctx.info(f"pruned {label}: {_describe(result)}")
                total += result[1]
            self.ctx.info(f"prune: {fmt.size(total)} reclaimed in all")

        return self._run("prune", work, done, cancellable=True)

    # --- check ------------------------------------------------------------------------------

    def check_store(self) -> Task | None:
        """Check (read-only) first; the findings dialog offers the repairs."""
        return self._check(repair=False)

    def _check(self, repair: bool) -> Task | None:
        if self.busy:
            return None

        def work(control: Control) -> tuple[list[Any], dict[str, int]]:
            api = self.ctx.api()
            control.progress("repairing" if repair else "re-hashing every layer")
            problems = list(api.check(repair=repair))
            sizes = {p.what: p.size for p in problems if p.size and not p.repaired}
            return problems, sizes

        def done(result: tuple[list[Any], dict[str, int]]) -> None:
            problems, sizes = result
            self.last_result = problems
            unresolved = sum(1 for p in problems if not p.repaired)
            self.ctx.info(f"store check: {len(problems)} problem(s), {len(problems) - unresolved} repaired")
            dialog = CheckDialog(problems, sizes, repaired=repair, parent=self)
            dialog.accepted.connect(lambda: self._check(repair=True) if not repair else None)
            self._show_dialog(dialog)

        return self._run(
            "repairing the store" if repair else "checking the store", work, done, cancellable=False, touch=repair
        )

    # --- running ----------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.task is not None

    def cancel(self) -> None:
        if self.task is not None and self.task.cancellable:
            self.task.cancel()
            self.strip_label.setText(self.strip_label.text() + " — cancelling after this step")

    def _run(
        self,
        title: str,
        fn: Callable[[Control], Any],
        done: Callable[[Any], None],
        cancellable: bool = False,
        touch: bool = True,
    ) -> Task:
        def ok(result: Any) -> None:
            self._finished()
            done(result)
            if touch:
                self.ctx.store_touched.emit()

        def failed(failure: TaskFailure) -> None:
            self._finished()
            if failure.cancelled:
                self.ctx.info(f"{title}: cancelled")
            else:
                self.ctx.message.emit("error", f"{title}: {failure.message}")
                error_box(self, title[:1].upper() + title[1:], failure)
            if touch:
                self.ctx.store_touched.emit()

        self.task = self.ctx.submit(
            title,
            fn,
            on_result=ok,
            on_error=failed,
            on_progress=lambda text: self.strip_label.setText(f"{title}: {text}"),
            cancellable=cancellable,
            owner=self,
        )
        self.strip_label.setText(title + " …")
        self.cancel_button.setEnabled(cancellable)
        self.cancel_button.setToolTip(
            "Stop after the current step"
            if cancellable
            else "This runs as one step in the store and cannot be stopped half-way"
        )
        self.strip.setVisible(True)
        self._update_actions()
        return self.task

    def _finished(self) -> None:
        self.task = None
        self.strip.setVisible(False)
        self._update_actions()

    def _update_actions(self) -> None:
        for action in self.actions_.values():
            action.setEnabled(not self.busy)


Pruned = tuple[list[str] | int, int]
"""What every prune returns: what it removed (names, or a count for the cache) and the bytes freed."""


def _describe(result: Pruned) -> str:
    """A prune's ``(removed, freed)`` as one line for the events panel."""
    items, freed = result
    count = len(items) if isinstance(items, list) else items
    return f"{count} removed, {fmt.size(freed)} freed"
