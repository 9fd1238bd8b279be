"""A plain-text editor with a gutter: line numbers, diagnostic marks and build states.

Diagnostics are wavy underlines over their lines plus a mark in the gutter; hovering
either shows the message. During a build every instruction's first line carries its
state (running, cached, rebuilt, failed); hovering a rebuilt line says why the cache
missed.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QFontDatabase,
    QHelpEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QPolygon,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
    QTextFormat,
)
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QToolTip, QWidget

from .highlighter import is_dark

RUNNING = "running"
CACHED = "cached"
REBUILT = "rebuilt"
FAILED = "failed"

_STATE_TEXT = {RUNNING: "running", CACHED: "cached", REBUILT: "rebuilt", FAILED: "failed"}


@dataclass(frozen=True)
class Mark:
    """A diagnostic as the editor shows it (lines are 1-based)."""

    line: int
    end_line: int
    message: str
    severity: str = "error"  # "error" or "warning"


@dataclass
class StepState:
    state: str
    tooltip: str = ""


class Gutter(QWidget):
    MARK_WIDTH = 16

    def __init__(self, editor: CodeEditor) -> None:
        super().__init__(editor)
        self.editor = editor
        self.setMouseTracking(True)

    def sizeHint(self) -> QSize:
        return QSize(self.editor.gutter_width(), 0)

    def paintEvent(self, event: QPaintEvent) -> None:
        self.editor.paint_gutter(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            line = self.editor.line_at_y(event.pos().y())
            text = self.editor.tooltip_for_line(line)
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        line = self.editor.line_at_y(int(event.position().y()))
        if line > 0:
            self.editor.lineClicked.emit(line)
        super().mousePressEvent(event)


class CodeEditor(QPlainTextEdit):
    lineClicked = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.setFont(font)
        self.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.setTabStopDistance(self.fontMetrics().horizontalAdvance(" ") * 4)
        self.gutter = Gutter(self)
        self.marks: list[Mark] = []
        self.steps: dict[int, StepState] = {}
        self.blockCountChanged.connect(self._update_gutter_width)
        self.updateRequest.connect(self._update_gutter)
        self.cursorPositionChanged.connect(self._refresh_selections)
        self._update_gutter_width()
        self._refresh_selections()

    # --- gutter geometry ---------------------------------------------------------------------

    def gutter_width(self) -> int:
        digits = max(3, len(str(max(1, self.blockCount()))))
        return 10 + self.fontMetrics().horizontalAdvance("9") * digits + Gutter.MARK_WIDTH

    def _update_gutter_width(self, _: int = 0) -> None:
        self.setViewportMargins(self.gutter_width(), 0, 0, 0)

    def _update_gutter(self, rect: QRect, dy: int) -> None:
        if dy:
            self.gutter.scroll(0, dy)
        else:
            self.gutter.update(0, rect.y(), self.gutter.width(), rect.height())
        if rect.contains(self.viewport().rect()):
            self._update_gutter_width()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        cr = self.contentsRect()
        self.gutter.setGeometry(QRect(cr.left(), cr.top(), self.gutter_width(), cr.height()))

    def line_at_y(self, y: int) -> int:
        block = self.firstVisibleBlock()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        while block.isValid():
            bottom = top + round(self.blockBoundingRect(block).height())
            if top <= y < bottom:
                return block.blockNumber() + 1
            top = bottom
            block = block.next()
        return 0

    def paint_gutter(self, event: QPaintEvent) -> None:
        painter = QPainter(self.gutter)
        pal = self.palette()
        painter.fillRect(event.rect(), pal.color(QPalette.ColorRole.AlternateBase))
        block = self.firstVisibleBlock()
        number = block.blockNumber()
        top = round(self.blockBoundingGeometry(block).translated(self.contentOffset()).top())
        bottom = top + round(self.blockBoundingRect(block).height())
        height = self.fontMetrics().height()
        width = self.gutter.width()
        current = self.textCursor().blockNumber()
        marks_by_line = self._marks_by_line()
        dim = pal.color(QPalette.ColorRole.PlaceholderText)
        while block.isValid() and top <= event.rect().bottom():
            if block.isVisible() and bottom >= event.rect().top():
                line = number + 1
                painter.setPen(pal.color(QPalette.ColorRole.Text) if number == current else dim)
                painter.drawText(0, top, width - Gutter.MARK_WIDTH - 4, height, Qt.AlignmentFlag.AlignRight, str(line))
                box = QRect(width - Gutter.MARK_WIDTH + 2, top + (height - 10) // 2, 10, 10)
                step = self.steps.get(line)
                if step is not None:
                    self._paint_state(painter, box, step.state)
                elif line in marks_by_line:
                    self._paint_mark(painter, box, marks_by_line[line])
            block = block.next()
            top = bottom
            bottom = top + round(self.blockBoundingRect(block).height())
            number += 1
        painter.end()

    @staticmethod
    def _paint_mark(painter: QPainter, box: QRect, severity: str) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if severity == "error":
            painter.setBrush(QColor("#d1242f"))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.drawEllipse(box)
        else:
            painter.setBrush(QColor("#d4a72c"))
            painter.setPen(Qt.PenStyle.NoPen)
            tri = QPolygon([QPoint(box.center().x(), box.top()), box.bottomLeft(), box.bottomRight()])
            painter.drawPolygon(tri)

    @staticmethod
    def _paint_state(painter: QPainter, box: QRect, state: str) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        colors = {RUNNING: "#0969da", CACHED: "#8c959f", REBUILT: "#1a7f37", FAILED: "#d1242f"}
        color = QColor(colors.get(state, "#8c959f"))
        if state == RUNNING:
            painter.setPen(color)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(box.adjusted(1, 1, -1, -1))
            painter.setBrush(color)
            painter.drawEllipse(box.adjusted(3, 3, -3, -3))
        elif state == CACHED:
            painter.setPen(color)
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawEllipse(box.adjusted(1, 1, -1, -1))
        elif state == FAILED:
            pen = painter.pen()
            pen.setColor(color)
            pen.setWidth(2)
            painter.setPen(pen)
            painter.drawLine(box.topLeft() + QPoint(1, 1), box.bottomRight() - QPoint(1, 1))
            painter.drawLine(box.topRight() + QPoint(-1, 1), box.bottomLeft() + QPoint(1, -1))
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(color)
            painter.drawEllipse(box)

    # --- marks and states ----------------------------------------------------------------

    def _marks_by_line(self) -> dict[int, str]:
        out: dict[int, str] = {}
        for m in self.marks:
            for line in range(m.line, max(m.line, m.end_line) + 1):
                if out.get(line) != "error":
                    out[line] = m.severity
        return out

    def set_marks(self, marks: list[Mark]) -> None:
        self.marks = list(marks)
        self._refresh_selections()
        self.gutter.update()

    def set_step(self, line: int, state: str, tooltip: str = "") -> None:
        self.steps[line] = StepState(state, tooltip)
        self.gutter.update()

    def clear_steps(self) -> None:
        self.steps.clear()
        self.gutter.update()

    def tooltip_for_line(self, line: int) -> str:
        parts = [m.message for m in self.marks if m.line <= line <= max(m.line, m.end_line)]
        step = self.steps.get(line)
        if step is not None:
            parts.insert(0, step.tooltip or _STATE_TEXT.get(step.state, step.state))
        return "\n".join(parts)

    def go_to_line(self, line: int) -> None:
        block = self.document().findBlockByNumber(max(0, line - 1))
        if block.isValid():
            cursor = QTextCursor(block)
            self.setTextCursor(cursor)
            self.centerCursor()
            self.setFocus()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        # Files dropped on the editor are for the window (open and build), not text to paste.
        if event.mimeData().hasUrls():
            event.ignore()
            return
        super().dragEnterEvent(event)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            pos = self.viewport().mapFromGlobal(event.globalPos())
            cursor = self.cursorForPosition(pos)
            text = "\n".join(
                m.message for m in self.marks if m.line <= cursor.blockNumber() + 1 <= max(m.line, m.end_line)
            )
            if text:
                QToolTip.showText(event.globalPos(), text, self)
            else:
                QToolTip.hideText()
            return True
        return super().event(event)

    def _refresh_selections(self) -> None:
        selections: list[QTextEdit.ExtraSelection] = []
        if not self.isReadOnly():
            current = QTextEdit.ExtraSelection()
            color = self.palette().color(QPalette.ColorRole.Highlight)
            color.setAlpha(40 if is_dark(self.palette()) else 28)
            current.format.setBackground(color)
            current.format.setProperty(QTextFormat.Property.FullWidthSelection, True)
            current.cursor = self.textCursor()
            current.cursor.clearSelection()
            selections.append(current)
        doc = self.document()
        for m in self.marks:
            first = doc.findBlockByNumber(max(0, m.line - 1))
            last = doc.findBlockByNumber(max(0, max(m.line, m.end_line) - 1))
            if not first.isValid():
                continue
            if not last.isValid():
                last = first
            sel = QTextEdit.ExtraSelection()
            fmt = QTextCharFormat()
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
            fmt.setUnderlineColor(QColor("#d1242f" if m.severity == "error" else "#d4a72c"))
            fmt.setToolTip(m.message)
            sel.format = fmt
            cursor = QTextCursor(first)
            text = first.text()
            cursor.setPosition(first.position() + (len(text) - len(text.lstrip())))
            end = last.position() + len(last.text())
            if end <= cursor.position():
                end = cursor.position() + 1 if first.length() > 1 else cursor.position()
            cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
            sel.cursor = cursor
            selections.append(sel)
        self.setExtraSelections(selections)
