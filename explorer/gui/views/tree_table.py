"""A table view that looks and behaves like a tree view, over ``FlatTreeModel``.

Indentation and the open/closed arrow are painted by the delegate with the style's own
branch indicator, so it matches the desktop's tree views; clicking the arrow,
double-clicking a folder, or Left/Right/+/- on the keyboard expand and collapse, as in
``QTreeView``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QModelIndex, QPersistentModelIndex, QRect, Qt, Signal
from PySide6.QtGui import QKeyEvent, QMouseEvent, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from ..models.flat_tree import FlatTreeModel, Role

INDENT = 18

Index = QModelIndex | QPersistentModelIndex


class BranchDelegate(QStyledItemDelegate):
    """Column 0: indentation, the branch arrow, then the usual icon and text."""

    def _arrow_rect(self, option: QStyleOptionViewItem, depth: int) -> QRect:
        r = option.rect
        return QRect(r.left() + depth * INDENT, r.top(), INDENT, r.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        if index.column() != 0:
            super().paint(painter, option, index)
            return
        depth = int(index.data(Role.DEPTH) or 0)
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else None
        # the selection/background spans the whole cell, as in a tree view
        text_rect = QRect(opt.rect)
        text_rect.setLeft(text_rect.left() + (depth + 1) * INDENT)
        if style is not None:
            full = QStyleOptionViewItem(opt)
            full.text = ""
            full.icon = type(opt.icon)()
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, full, painter, widget)
            if index.data(Role.EXPANDABLE):
                branch = QStyleOptionViewItem(opt)
                branch.rect = self._arrow_rect(opt, depth)
                branch.state = opt.state | QStyle.StateFlag.State_Children
                if index.data(Role.EXPANDED):
                    branch.state |= QStyle.StateFlag.State_Open
                branch.state &= ~QStyle.StateFlag.State_Selected
                style.drawPrimitive(QStyle.PrimitiveElement.PE_IndicatorBranch, branch, painter, widget)
        opt.rect = text_rect
        opt.backgroundBrush = type(opt.backgroundBrush)()
        if style is not None:
            opt.state &= ~QStyle.StateFlag.State_HasFocus
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        else:
            super().paint(painter, opt, index)

    def editorEvent(self, event: QEvent, model: Any, option: QStyleOptionViewItem, index: Index) -> bool:
        if (
            index.column() == 0
            and event.type() == QEvent.Type.MouseButtonPress
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.LeftButton
        ):
            depth = int(index.data(Role.DEPTH) or 0)
            if (
                self._arrow_rect(option, depth).contains(event.position().toPoint())
                and index.data(Role.EXPANDABLE)
                and isinstance(model, FlatTreeModel)
            ):
                if model.is_expanded(index):
                    model.collapse(index)
                else:
                    model.expand(index)
                return True
        return super().editorEvent(event, model, option, index)


class TreeTable(QTableView):
    """A tree over a flat model: only the rows on screen are ever asked for."""

    expanded = Signal(QModelIndex)
    collapsed = Signal(QModelIndex)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setItemDelegateForColumn(0, BranchDelegate(self))
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setAlternatingRowColors(True)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setTabKeyNavigation(False)
        vh = self.verticalHeader()
        vh.setVisible(False)
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setDefaultSectionSize(self.fontMetrics().height() + 6)
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        hh.setSortIndicatorShown(True)
        self.doubleClicked.connect(self._toggle)

    def flat_model(self) -> FlatTreeModel | None:
        model = self.model()
        return model if isinstance(model, FlatTreeModel) else None

    def header(self) -> QHeaderView:
        """``QTreeView``'s name for the column header."""
        return self.horizontalHeader()

    def expand(self, index: Index) -> None:
        model = self.flat_model()
        if model is not None and index.isValid() and not model.is_expanded(index):
            model.expand(index)
            self.expanded.emit(model.index(index.row(), 0))

    def collapse(self, index: Index) -> None:
        model = self.flat_model()
        if model is not None and index.isValid() and model.is_expanded(index):
            model.collapse(index)
            self.collapsed.emit(model.index(index.row(), 0))

    def isExpanded(self, index: Index) -> bool:
        model = self.flat_model()
        return model is not None and model.is_expanded(index)

    def _toggle(self, index: QModelIndex) -> None:
        model = self.flat_model()
        if model is None or not index.data(Role.EXPANDABLE):
            return
        first = model.index(index.row(), 0)
        if model.is_expanded(first):
            self.collapse(first)
        else:
            self.expand(first)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        model = self.flat_model()
        current = self.currentIndex()
        if model is None or not current.isValid():
            super().keyPressEvent(event)
            return
        first = model.index(current.row(), 0)
        key = event.key()
        if key in (Qt.Key.Key_Right, Qt.Key.Key_Plus):
            if first.data(Role.EXPANDABLE) and not model.is_expanded(first):
                self.expand(first)
            elif model.is_expanded(first) and current.row() + 1 < model.rowCount():
                self.setCurrentIndex(model.index(current.row() + 1, current.column()))
            return
        if key in (Qt.Key.Key_Left, Qt.Key.Key_Minus):
            if model.is_expanded(first):
                self.collapse(first)
                return
            node = model.node(first)
            parent = node.parent if node is not None else None
            up = model.index_of_node(parent) if parent is not None and parent.parent is not None else QModelIndex()
            if up.isValid():
                self.setCurrentIndex(up)
            return
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and first.data(Role.EXPANDABLE):
            self._toggle(first)
            return
        super().keyPressEvent(event)
