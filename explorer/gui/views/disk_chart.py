"""The store's space as one stacked bar, drawn with QPainter (Qt Charts is not in the
Essentials wheel, and one bar does not need it).

Each kind gets a segment as wide as its share of the store; the part of it a clean-up
could reclaim is hatched. Below the bar, the file system the store lives on: what the
store takes, what everything else takes, what is free. Shared layers are counted once,
as ``system df`` counts them, so the segments add up to the store's real size.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from .. import fmt
from ..cleanup import CACHE, CATEGORIES, CONTAINERS, IMAGES, VOLUMES, CategoryUsage, store_total

COLORS = {IMAGES: "#3b82c4", CONTAINERS: "#3fa34d", VOLUMES: "#d98a1c", CACHE: "#8a5cc2"}
BAR_H = 28
DISK_H = 10
PAD = 8
LEGEND_H = 22


@dataclass(frozen=True)
class Segment:
    kind: str
    rect: QRectF
    reclaim_rect: QRectF
    usage: CategoryUsage


class DiskChart(QWidget):
    """Click a segment to pick its kind (``kindClicked``); hover for its figures."""

    kindClicked = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: dict[str, CategoryUsage] = {}
        self.disk_free = 0
        self.disk_total = 0
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(240)
        self.setObjectName("disk-chart")

    def sizeHint(self) -> QSize:
        return QSize(600, self._height())

    def minimumSizeHint(self) -> QSize:
        return QSize(240, self._height())

    def _height(self) -> int:
        line = self.fontMetrics().height()
        return PAD + line + 4 + BAR_H + 6 + LEGEND_H * 2 + DISK_H + line + PAD * 2

    def set_usage(self, rows: dict[str, CategoryUsage], disk_free: int = 0, disk_total: int = 0) -> None:
        self.rows = dict(rows)
        self.disk_free = disk_free
        self.disk_total = disk_total
        self.updateGeometry()
        self.update()

    @property
    def total(self) -> int:
        return store_total(self.rows)

    @property
    def reclaimable(self) -> int:
        return sum(r.reclaimable for r in self.rows.values())

    # --- geometry (also what the tests check) --------------------------------------------------

    def bar_rect(self) -> QRectF:
        top = PAD + self.fontMetrics().height() + 4
        return QRectF(PAD, top, max(1, self.width() - 2 * PAD), BAR_H)

    def segments(self) -> list[Segment]:
        bar = self.bar_rect()
        total = self.total
        if total <= 0:
            return []
        out = []
        x = bar.left()
        for kind in CATEGORIES:
            usage = self.rows.get(kind)
            if usage is None or usage.size <= 0:
                continue
            width = bar.width() * usage.size / total
            rect = QRectF(x, bar.top(), width, bar.height())
            reclaim_w = width * min(usage.reclaimable, usage.size) / usage.size
            out.append(Segment(kind, rect, QRectF(x + width - reclaim_w, bar.top(), reclaim_w, bar.height()), usage))
            x += width
        return out

    def segment_at(self, pos: QPointF) -> Segment | None:
        for seg in self.segments():
            if seg.rect.contains(pos):
                return seg
        return None

    # --- painting ---------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        text = pal.color(QPalette.ColorRole.WindowText)
        dim = pal.color(QPalette.ColorRole.PlaceholderText)
        fm = self.fontMetrics()
        bar = self.bar_rect()
        total = self.total
        p.setPen(text)
        head = f"Store: {fmt.size(total)}"
        if total:
            head += f" · {fmt.size(self.reclaimable)} reclaimable (hatched)"
        p.drawText(QRectF(PAD, PAD, bar.width(), fm.height()), Qt.AlignmentFlag.AlignLeft, head)

        p.setPen(QPen(dim, 1))
        p.setBrush(pal.color(QPalette.ColorRole.Base))
        p.drawRoundedRect(bar, 4, 4)
        if total:
            p.save()
            clip = bar.adjusted(0.5, 0.5, -0.5, -0.5)
            path = QPainterPath()
            path.addRoundedRect(clip, 4, 4)
            p.setClipPath(path)
            for seg in self.segments():
                color = QColor(COLORS[seg.kind])
                p.fillRect(seg.rect, color)
                if seg.reclaim_rect.width() > 0:
                    p.fillRect(seg.reclaim_rect, color.lighter(150))
                    p.fillRect(seg.reclaim_rect, QBrush(color.darker(130), Qt.BrushStyle.BDiagPattern))
                p.setPen(QPen(pal.color(QPalette.ColorRole.Base), 1))
                p.drawLine(seg.rect.topRight(), seg.rect.bottomRight())
                label = fmt.size(seg.usage.size)
                if fm.horizontalAdvance(label) + 8 < seg.rect.width():
                    where = seg.rect.adjusted(5, 0, -4, 0)
                    align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
                    p.setPen(color.darker(250))  # a shadow keeps the label readable over the hatching
                    p.drawText(where.translated(1, 1), align, label)
                    p.setPen(QColor("#ffffff"))
                    p.drawText(where, align, label)
            p.restore()
        else:
            p.setPen(dim)
            p.drawText(bar, Qt.AlignmentFlag.AlignCenter, "the store is empty")

        # legend: two rows of two
        y = bar.bottom() + 6
        col_w = bar.width() / 2
        for i, kind in enumerate(CATEGORIES):
            usage = self.rows.get(kind)
            x = bar.left() + (i % 2) * col_w
            row_y = y + (i // 2) * LEGEND_H
            swatch = QRectF(x, row_y + (LEGEND_H - 12) / 2, 12, 12)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(COLORS[kind]))
            p.drawRoundedRect(swatch, 2, 2)
            p.setPen(text)
            figures = (
                f"{usage.title} {fmt.size(usage.size)}"
                + (f" · {fmt.size(usage.reclaimable)} reclaimable" if usage.reclaimable else "")
                if usage is not None
                else kind
            )
            p.drawText(
                QRectF(x + 18, row_y, col_w - 22, LEGEND_H),
                Qt.AlignmentFlag.AlignVCenter,
                fm.elidedText(figures, Qt.TextElideMode.ElideRight, int(col_w - 22)),
            )

        # the file system the store lives on
        y += LEGEND_H * 2 + 4
        disk = QRectF(bar.left(), y, bar.width(), DISK_H)
        if self.disk_total:
            used = max(0, self.disk_total - self.disk_free)
            store_w = disk.width() * min(total, used) / self.disk_total
            other_w = disk.width() * max(0, used - total) / self.disk_total
            p.setPen(QPen(dim, 1))
            p.setBrush(pal.color(QPalette.ColorRole.Base))
            p.drawRect(disk)
            p.fillRect(QRectF(disk.left(), disk.top(), store_w, disk.height()), QColor(COLORS[IMAGES]))
            p.fillRect(QRectF(disk.left() + store_w, disk.top(), other_w, disk.height()), dim)
            p.setPen(dim)
            line = (
                f"File system: {fmt.size(self.disk_total)} · the store {fmt.size(total)} · "
                f"everything else {fmt.size(max(0, used - total))} · free {fmt.size(self.disk_free)}"
            )
            p.drawText(
                QRectF(disk.left(), disk.bottom() + 2, disk.width(), fm.height()),
                Qt.AlignmentFlag.AlignLeft,
                fm.elidedText(line, Qt.TextElideMode.ElideRight, int(disk.width())),
            )
        p.end()

    # --- interaction -------------------------------------------------------------------------

    def tooltip_for(self, seg: Segment) -> str:
        u = seg.usage
        share = 100 * u.size / self.total if self.total else 0
        lines = [
            f"{u.title}: {fmt.size(u.size)} ({share:.0f}% of the store)",
            f"{u.total} total, {u.active} active" if seg.kind != CACHE else f"{u.total} cache entries",
            f"reclaimable: {fmt.size(u.reclaimable)}",
        ]
        if seg.kind == IMAGES:
            lines.append(f"shared by two or more images: {fmt.size(u.shared)} (counted once)")
        return "\n".join(lines)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        seg = self.segment_at(event.position())
        if seg is not None:
            QToolTip.showText(event.globalPosition().toPoint(), self.tooltip_for(seg), self)
        else:
            QToolTip.hideText()
        super().mouseMoveEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        seg = self.segment_at(event.position())
        if seg is not None and event.button() == Qt.MouseButton.LeftButton:
            self.kindClicked.emit(seg.kind)
        super().mousePressEvent(event)
