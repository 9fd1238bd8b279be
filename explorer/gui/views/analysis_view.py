"""Image analysis, a better dive: per-layer size, what later layers overwrite or delete,
the space that wastes (each hidden copy counted once), the efficiency, the worst files."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QSplitter, QVBoxLayout, QWidget

from ...api.analysis import ImageAnalysis
from .. import fmt
from ..context import AppContext
from ..models.tables import layer_stats_model, offenders_model
from ..workers import Control, TaskFailure
from .tables import RecordTable


class AnalysisView(QWidget):
    def __init__(self, ctx: AppContext, ref: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ref = ref
        self.result: ImageAnalysis | None = None
        self.summary = QLabel(f"Analyzing {ref} …", self)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.summary.setWordWrap(True)
        self.efficiency = QProgressBar(self)
        self.efficiency.setRange(0, 1000)
        self.efficiency.setFormat("efficiency —")
        self.layers = layer_stats_model(self)
        self.layers_table = RecordTable(self.layers, self, stretch=4)
        self.offenders = offenders_model(self)
        self.offenders_table = RecordTable(self.offenders, self, stretch=2)
        self.offenders_table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        split = QSplitter(Qt.Orientation.Vertical, self)
        top = QWidget(split)
        tl = QVBoxLayout(top)
        tl.setContentsMargins(0, 0, 0, 0)
        tl.addWidget(QLabel("<b>Layers</b>", top))
        tl.addWidget(self.layers_table)
        bottom = QWidget(split)
        bl = QVBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(QLabel("<b>Worst offenders</b> — files stored more than once, or deleted later", bottom))
        bl.addWidget(self.offenders_table)
        split.addWidget(top)
        split.addWidget(bottom)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.efficiency)
        layout.addWidget(split, 1)
        self.load()

    def load(self) -> None:
        ref = self.ref

        def work(_: Control) -> ImageAnalysis:
            return self.ctx.api().analyze(ref)

        self.ctx.submit(f"analyze {ref}", work, on_result=self._show, on_error=self._failed, owner=self)

    def _show(self, result: ImageAnalysis) -> None:
        self.result = result
        self.layers.replace(result.layers)
        self.offenders.replace(result.offenders)
        self.offenders_table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        eff = float(result.efficiency)
        self.efficiency.setValue(int(eff * 1000))
        self.efficiency.setFormat(f"efficiency {eff * 100:.1f} %")
        self.summary.setText(
            f"<b>{self.ref}</b>: {len(result.layers)} layers, {fmt.size(result.total_size)} of files, "
            f"{fmt.size(result.wasted_bytes)} wasted in {len(result.offenders)} file(s) that later layers "
            f"overwrite or delete."
        )

    def _failed(self, failure: TaskFailure) -> None:
        self.summary.setText(f"Cannot analyze {self.ref}: {failure.message}")
