"""The Images tab: every tag, with what can be done to it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QVBoxLayout, QWidget

from ...api.model import ImageSummary
from ..context import AppContext
from ..icons import icon
from ..models.tables import images_model
from ..operations import Operations
from .tables import RecordTable


def image_ref(summary: ImageSummary) -> str:
    if summary.repository == "<none>":
        return summary.id
    return f"{summary.repository}:{summary.tag}"


class ImagesView(QWidget):
    browseImage = Signal(str)
    analyzeImage = Signal(str)
    imageSelected = Signal(object)

    def __init__(self, ctx: AppContext, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ops = ops
        self.model = images_model(self)
        self.table = RecordTable(self.model, self, stretch=0)
        self.table.setObjectName("images-table")
        self.table.doubleClicked.connect(lambda _: self._browse())
        self.table.selectionModel().currentRowChanged.connect(
            lambda cur, _: self.imageSelected.emit(self.model.record(cur))
        )
        bar = QToolBar(self)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.actions_: dict[str, QAction] = {}
        for key, ic, text, slot in (
            ("browse", "folder", "Browse files", self._browse),
            ("analyze", "analyze", "Analyze", self._analyze),
            ("run", "run", "Run…", self._run),
            ("tag", "tag", "Tag…", self._tag),
            ("save", "export", "Save…", self._save),
            ("remove", "delete", "Remove", self._remove),
        ):
            action = bar.addAction(icon(ic), text, slot)
            self.actions_[key] = action
            self.table.addAction(action)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addWidget(self.table)

    def set_images(self, images: list[ImageSummary]) -> None:
        self.model.set_records(images)

    def selected_refs(self) -> list[str]:
        return [image_ref(r) for r in self.table.selected_records()]

    def current_ref(self) -> str | None:
        rec: Any = self.table.current_record()
        return image_ref(rec) if rec is not None else None

    def _browse(self) -> None:
        ref = self.current_ref()
        if ref:
            self.browseImage.emit(ref)

    def _analyze(self) -> None:
        ref = self.current_ref()
        if ref:
            self.analyzeImage.emit(ref)

    def _run(self) -> None:
        ref = self.current_ref()
        if ref:
            self.ops.run_image(ref)

    def _tag(self) -> None:
        ref = self.current_ref()
        if ref:
            self.ops.tag_image(ref)

    def _save(self) -> None:
        self.ops.save_images(self.selected_refs())

    def _remove(self) -> None:
        self.ops.remove_images(self.selected_refs())
