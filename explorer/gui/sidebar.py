"""The sidebar: Images, Containers, Volumes and Build cache with counts and sizes.

Children are updated in place by key so a refresh never collapses a section or loses
the selection.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QTreeWidget, QTreeWidgetItem, QWidget

from . import fmt
from .icons import icon
from .state import StoreState

IMAGES = "images"
CONTAINERS = "containers"
VOLUMES = "volumes"
CACHE = "cache"
LAYERS = "layers"

KIND_ROLE = Qt.ItemDataRole.UserRole + 1
KEY_ROLE = Qt.ItemDataRole.UserRole + 2
RECORD_ROLE = Qt.ItemDataRole.UserRole + 3


class Sidebar(QTreeWidget):
    sectionActivated = Signal(str)
    itemChosen = Signal(str, object)
    itemOpened = Signal(str, object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setHeaderHidden(True)
        self.setColumnCount(2)
        self.setRootIsDecorated(True)
        self.setUniformRowHeights(True)
        self.setObjectName("sidebar")
        self.sections: dict[str, QTreeWidgetItem] = {}
        for kind, label, ic in (
            (IMAGES, "Images", "image"),
            (LAYERS, "Layer tree", "layers"),
            (CONTAINERS, "Containers", "container"),
            (VOLUMES, "Volumes", "volume"),
            (CACHE, "Build cache", "cache"),
        ):
            item = QTreeWidgetItem(self, [label, ""])
            item.setIcon(0, icon(ic))
            item.setData(0, KIND_ROLE, kind)
            font = item.font(0)
            font.setBold(True)
            item.setFont(0, font)
            item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.sections[kind] = item
        self.sections[IMAGES].setExpanded(True)
        self.sections[CONTAINERS].setExpanded(True)
        self.sections[VOLUMES].setExpanded(True)
        self.header().setStretchLastSection(False)
        self.header().setSectionResizeMode(0, self.header().ResizeMode.Stretch)
        self.header().setSectionResizeMode(1, self.header().ResizeMode.ResizeToContents)
        self.currentItemChanged.connect(self._current)
        self.itemActivated.connect(self._activated)

    def update_state(self, state: StoreState) -> None:
        iu, cu, vu, ku = state.images_usage, state.containers_usage, state.volumes_usage, state.cache_usage
        self.sections[IMAGES].setText(1, f"{len(state.images)} · {fmt.size(iu.size)}")
        self.sections[IMAGES].setToolTip(0, f"{len(state.images)} tags, {iu.count} images, {fmt.size(iu.size)}")
        layers = _count(state.forest)
        self.sections[LAYERS].setText(1, str(layers))
        running = sum(1 for c in state.containers if c.state == "running")
        self.sections[CONTAINERS].setText(
            1,
            f"{len(state.containers)}"
            + (f" · {running} up" if running else "")
            + (f" · {fmt.size(cu.size)}" if cu.size else ""),
        )
        vol_size = vu.size or sum(state.volume_sizes.values())
        self.sections[VOLUMES].setText(1, f"{len(state.volumes)} · {fmt.size(vol_size)}")
        self.sections[CACHE].setText(1, f"{ku.count} · {fmt.size(ku.size)}")
        self.sections[CACHE].setToolTip(
            0, f"{ku.count} cached build steps, {fmt.size(ku.size)}, {fmt.size(ku.reclaimable)} reclaimable"
        )
        self._children(
            IMAGES,
            [
                (
                    f"{r.repository}:{r.tag}" if r.repository != "<none>" else r.id[7:19],
                    (r.id, r.repository, r.tag),
                    r,
                    fmt.size(r.size),
                )
                for r in state.images
            ],
        )
        self._children(CONTAINERS, [(c.name, c.id, c, c.state) for c in state.containers])
        self._children(
            VOLUMES,
            [
                (v.name, v.name, v, fmt.size(state.volume_sizes[v.name]) if v.name in state.volume_sizes else "")
                for v in state.volumes
            ],
        )

    def _children(self, kind: str, rows: list[tuple[str, Any, Any, str]]) -> None:
        section = self.sections[kind]
        wanted = {key: (label, rec, extra) for label, key, rec, extra in rows}
        for i in range(section.childCount() - 1, -1, -1):
            child = section.child(i)
            if child is not None and child.data(0, KEY_ROLE) not in wanted:
                section.takeChild(i)
        have: dict[Any, QTreeWidgetItem] = {}
        for i in range(section.childCount()):
            child = section.child(i)
            if child is not None:
                have[child.data(0, KEY_ROLE)] = child
        ic = icon({IMAGES: "image", CONTAINERS: "container", VOLUMES: "volume"}[kind])
        for label, key, rec, extra in rows:
            item = have.get(key)
            if item is None:
                item = QTreeWidgetItem(section, [label, extra])
                item.setIcon(0, ic)
                item.setData(0, KIND_ROLE, kind)
                item.setData(0, KEY_ROLE, key)
                item.setTextAlignment(1, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            else:
                if item.text(0) != label:
                    item.setText(0, label)
                if item.text(1) != extra:
                    item.setText(1, extra)
            item.setData(0, RECORD_ROLE, rec)
            item.setToolTip(0, label)

    def _current(self, current: QTreeWidgetItem | None, _: QTreeWidgetItem | None) -> None:
        if current is None:
            return
        kind = current.data(0, KIND_ROLE)
        if current.parent() is None:
            self.sectionActivated.emit(kind)
        else:
            self.itemChosen.emit(kind, current.data(0, RECORD_ROLE))

    def _activated(self, item: QTreeWidgetItem, _: int) -> None:
        if item.parent() is not None:
            self.itemOpened.emit(item.data(0, KIND_ROLE), item.data(0, RECORD_ROLE))
        else:
            self.sectionActivated.emit(item.data(0, KIND_ROLE))


def _count(forest: list[Any]) -> int:
    n = 0
    stack = list(forest)
    while stack:
        node = stack.pop()
        n += 1
        stack.extend(node.children)
    return n
