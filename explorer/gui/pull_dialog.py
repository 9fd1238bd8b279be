"""Pulling an image from the window: a reference, a platform, and every layer's progress.

The pull runs in a worker; its ``TransferEvent``s cross to the GUI thread in batches
(gui/workers.py) and update one row per layer (bytes, rate, a bar). Cancel sets the event the
backend checks between two reads, so it stops within a read and leaves no partial layer.
Closing the dialog while a pull runs cancels it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Signal
from PySide6.QtGui import QCloseEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from . import fmt
from .context import AppContext
from .models.transfer_model import BYTES, LAYER, PROGRESS, RATE, STATUS, LayerRow, Role, TransferModel
from .workers import Control, Task, TaskFailure

if TYPE_CHECKING:
    from ..api.registry import PullResult

PLATFORMS = (
    "",
    "linux/amd64",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/386",
    "linux/ppc64le",
    "linux/s390x",
    "linux/riscv64",
)


class ProgressDelegate(QStyledItemDelegate):
    """A progress bar in the cell; busy (no bar) until the layer's size is known."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        fraction = index.data(Role.FRACTION)
        row = index.data(Role.ROW)
        if fraction is None or fraction < 0 or (isinstance(row, LayerRow) and row.status in ("exists", "mounted")):
            super().paint(painter, option, index)  # nothing moves: no bar
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum = 0
        bar.maximum = 1000
        bar.progress = int(fraction * 1000)
        bar.text = f"{fraction * 100:.0f}%"
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        style = option.widget.style() if option.widget is not None else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


class PullDialog(QDialog):
    """``pulled(name)`` once the image is in the store."""

    pulled = Signal(str)

    def __init__(self, ctx: AppContext, reference: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.task: Task | None = None
        self.result_: Any = None
        self.failure: TaskFailure | None = None
        self._started = 0.0
        self.setWindowTitle("Pull image")
        self.setObjectName("pull-dialog")
        self.resize(720, 420)

        self.reference = QLineEdit(reference, self)
        self.reference.setPlaceholderText("busybox:latest, registry.example.com:5000/app:1, app@sha256:…")
        self.reference.textChanged.connect(lambda _: self._update_buttons())
        self.platform = QComboBox(self)
        self.platform.setEditable(True)
        for p in PLATFORMS:
            self.platform.addItem(p or "this machine's", p)
        self.platform.setToolTip("os/arch[/variant] to pick from a multi-platform image")
        form = QFormLayout()
        form.addRow("Image", self.reference)
        form.addRow("Platform", self.platform)

        self.model = TransferModel(self)
        self.model.infoLine.connect(self._info)
        self.table = QTableView(self)
        self.table.setObjectName("pull-layers")
        self.table.setModel(self.model)
        self.table.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self.table))
        self.table.verticalHeader().setVisible(False)
        self.table.setShowGrid(False)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(PROGRESS, QHeaderView.ResizeMode.Stretch)
        for col, width in ((LAYER, 110), (STATUS, 120), (BYTES, 150), (RATE, 90)):
            self.table.setColumnWidth(col, width)
        self.log = QPlainTextEdit(self)
        self.log.setReadOnly(True)
        self.log.setMaximumHeight(70)
        self.log.setObjectName("pull-log")
        self.summary = QLabel(self)
        self.summary.setWordWrap(True)

        self.buttons = QDialogButtonBox(self)
        self.pull_button = QPushButton("Pull", self)
        self.pull_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.buttons.addButton(self.pull_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.addButton(self.cancel_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.pull_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.log)
        layout.addWidget(self.summary)
        layout.addWidget(self.buttons)
        self._update_buttons()

    # --- running ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.task is not None

    def platform_value(self) -> str | None:
        text = self.platform.currentText().strip()
        data = self.platform.currentData()
        if self.platform.currentIndex() >= 0 and text == self.platform.itemText(self.platform.currentIndex()):
            return str(data) or None
        return text or None

    def start(self) -> Task | None:
        ref = self.reference.text().strip()
        if not ref or self.running:
            return None
        platform = self.platform_value()
        self.model.clear()
        self.log.clear()
        self.failure = None
        self.result_ = None
        self._started = time.monotonic()
        self.summary.setText(f"Pulling {ref} …")

        def work(control: Control) -> Any:
            return self.ctx.api().pull(ref, platform=platform, progress=control.emit, cancel=control.cancel_event)

        self.task = self.ctx.submit(
            f"pull {ref}", work, on_result=self._done, on_error=self._failed, on_events=self._events, owner=self
        )
        self._update_buttons()
        return self.task

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.summary.setText("Cancelling …")
            self.cancel_button.setEnabled(False)

    def _events(self, events: list[Any]) -> None:
        for event in events:
            self.model.apply(event)
        self._update_summary()

    def _info(self, line: str) -> None:
        self.log.appendPlainText(line)

    def _update_summary(self) -> None:
        if not self.running:
            return
        m = self.model
        text = f"{m.finished()}/{m.rowCount()} layers · {fmt.size(m.moved())}"
        if m.expected():
            text += f" of {fmt.size(m.expected())}"
        if m.rate() > 0:
            text += f" · {fmt.size(m.rate())}/s"
        self.summary.setText(text)

    def _done(self, result: PullResult) -> None:
        self.task = None
        self.result_ = result
        name = result.name or self.reference.text().strip()
        seconds = time.monotonic() - self._started
        fresh = "is up to date" if result.up_to_date else f"pulled in {seconds:.1f} s"
        self.summary.setText(f"<b>{name}</b> {fresh} · {fmt.size(self.model.moved())} downloaded")
        self.ctx.info(f"{name}: {fresh}")
        self.ctx.store_touched.emit()
        self._update_buttons()
        self.pulled.emit(name)

    def _failed(self, failure: TaskFailure) -> None:
        self.task = None
        self.failure = failure
        if failure.cancelled:
            self.summary.setText("Cancelled: nothing was added to the store.")
            self.ctx.info(f"pull {self.reference.text().strip()}: cancelled")
        else:
            self.summary.setText(f"<span style='color:#d33'>Pull failed: {_escape(failure.message)}</span>")
            self.summary.setToolTip(failure.details)
            self.ctx.message.emit("error", f"pull {self.reference.text().strip()}: {failure.message}")
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.running
        self.pull_button.setEnabled(not running and bool(self.reference.text().strip()))
        self.cancel_button.setEnabled(running)
        self.reference.setReadOnly(running)
        self.platform.setEnabled(not running)

    def reject(self) -> None:
        self.cancel()
        super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.cancel()
        super().closeEvent(event)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
