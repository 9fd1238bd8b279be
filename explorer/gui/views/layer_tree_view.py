"""The layer tree tab: every layer in the store, and the selected layer's own changes."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTreeView,
    QVBoxLayout,
    QWidget,
)

from ...api.analysis import Change
from ...api.model import TreeNode
from .. import fmt
from ..context import AppContext
from ..icons import icon
from ..models.layer_tree_model import Col, LayerTreeModel, layer_label
from ..models.record_table import RecordTableModel
from ..models.tables import changes_model
from ..workers import Control, TaskFailure


class LayerTreeView(QWidget):
    browseLayer = Signal(object)  # the TreeNode
    analyzeImage = Signal(str)
    layerSelected = Signal(object)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.model = LayerTreeModel(self)
        self.tree = QTreeView(self)
        self.tree.setModel(self.model)
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setObjectName("layer-tree")
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(Col.INSTRUCTION, QHeaderView.ResizeMode.Stretch)
        for col, width in ((Col.SIZE, 80), (Col.CHANGES, 110), (Col.TAGS, 160), (Col.LAYER, 110)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(col, width)
        self.tree.selectionModel().currentChanged.connect(self._current_changed)
        self.tree.doubleClicked.connect(self._double_clicked)
        self.model.rowsInserted.connect(self._rows_inserted)

        self.title = QLabel("Select a layer to see its own changes.", self)
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.browse_button = QPushButton(icon("folder"), "Browse the filesystem as of this layer", self)
        self.browse_button.setEnabled(False)
        self.browse_button.clicked.connect(self._browse)
        self.analyze_button = QPushButton(icon("analyze"), "Analyze image", self)
        self.analyze_button.setEnabled(False)
        self.analyze_button.clicked.connect(self._analyze)
        self.filter_edit = QLineEdit(self)
        self.filter_edit.setPlaceholderText("Filter changes by path…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._apply_filter)
        self.changes: RecordTableModel[Change] = changes_model(self)
        self.changes_view = QTableView(self)
        self.changes_view.setModel(self.changes)
        self.changes_view.setSortingEnabled(True)
        self.changes_view.verticalHeader().setVisible(False)
        self.changes_view.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)
        self.changes_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.changes_view.setShowGrid(False)
        self.changes_view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.changes_view.horizontalHeader().resizeSection(0, 28)
        self._all_changes: list[Change] = []
        self._generation = 0

        detail = QWidget(self)
        dl = QVBoxLayout(detail)
        dl.setContentsMargins(0, 0, 0, 0)
        dl.addWidget(self.title)
        buttons = QHBoxLayout()
        buttons.addWidget(self.browse_button)
        buttons.addWidget(self.analyze_button)
        buttons.addStretch(1)
        dl.addLayout(buttons)
        dl.addWidget(self.filter_edit)
        dl.addWidget(self.changes_view, 1)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.tree)
        split.addWidget(detail)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(split)

    # --- data ----------------------------------------------------------------------------------

    def set_forest(self, forest: list[TreeNode]) -> None:
        self.model.set_forest(forest)

    def _rows_inserted(self, parent: QModelIndex, first: int, last: int) -> None:
        """New layers show expanded: the point of the tree is seeing where images branch."""
        for row in range(first, last + 1):
            self._expand_all(self.model.index(row, 0, parent))

    def _expand_all(self, index: QModelIndex) -> None:
        self.tree.expand(index)
        for row in range(self.model.rowCount(index)):
            self._expand_all(self.model.index(row, 0, index))

    def select_layer(self, layer_id: str) -> bool:
        index = self.model.index_for_layer(layer_id)
        if not index.isValid():
            return False
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)
        return True

    def select_image_top(self, image_id_or_tag: str) -> bool:
        for layer_id in self.model.layer_ids():
            node = self.model.node(self.model.index_for_layer(layer_id))
            if node is not None and (image_id_or_tag in node.images or image_id_or_tag in node.tags):
                return self.select_layer(layer_id)
        return False

    def current_node(self) -> TreeNode | None:
        return self.model.node(self.tree.currentIndex())

    # --- selection -------------------------------------------------------------------------------

    def _current_changed(self, current: QModelIndex, _: QModelIndex) -> None:
        node = self.model.node(current)
        self.layerSelected.emit(node)
        self.browse_button.setEnabled(node is not None)
        self.analyze_button.setEnabled(node is not None and bool(node.images))
        if node is None:
            return
        self.title.setText(
            f"<b>{fmt.instruction(node.created_by, 200) or '(no instruction recorded)'}</b><br>"
            f"layer {layer_label(node)} · {fmt.size(node.size)} · "
            f"{node.added} added, {node.modified} changed, {node.deleted} deleted"
            + (f" · top of {', '.join(node.tags)}" if node.tags else "")
        )
        self._generation += 1
        generation = self._generation
        layer_id = node.layer_id

        def work(_: Control) -> list[Change]:
            return self.ctx.api().layer_changes(layer_id)

        def done(changes: list[Change]) -> None:
            if generation == self._generation:
                self._all_changes = changes
                self._apply_filter()

        def failed(failure: TaskFailure) -> None:
            if generation == self._generation and not failure.cancelled:
                self.title.setText(self.title.text() + f"<br>cannot list its changes: {failure.message}")

        self.ctx.submit(
            f"changes of layer {layer_label(node)}", work, on_result=done, on_error=failed, visible=False, owner=self
        )

    def _apply_filter(self) -> None:
        needle = self.filter_edit.text().strip().lower()
        rows = self._all_changes if not needle else [c for c in self._all_changes if needle in c.path.lower()]
        self.changes.replace(rows)

    def _browse(self) -> None:
        node = self.current_node()
        if node is not None:
            self.browseLayer.emit(node)

    def _analyze(self) -> None:
        node = self.current_node()
        if node is not None and (node.tags or node.images):
            self.analyzeImage.emit(
                node.tags[0] if node.tags and not node.tags[0].startswith("<none>") else node.images[0]
            )

    def _double_clicked(self, index: QModelIndex) -> None:
        node = self.model.node(index)
        if node is not None:
            self.browseLayer.emit(node)
