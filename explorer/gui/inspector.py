"""The inspector: everything about the current selection, as a two-column tree.

An image shows ids, digests, sizes, its config (env, cmd, entrypoint, workdir, user,
exposed ports, volumes, labels) and its history; a layer, container or volume what the
API knows of it. Values are selectable and copyable (Ctrl+C copies the row).
"""

from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QApplication, QLabel, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..api.model import TreeNode
from . import fmt
from .context import AppContext
from .models.layer_tree_model import layer_label
from .workers import Control, TaskFailure


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return " ".join(json.dumps(v) if not isinstance(v, str) else v for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" if v not in ({}, None, "") else str(k) for k, v in value.items())
    return str(value)


class Inspector(QWidget):
    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.heading = QLabel("Nothing selected", self)
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.tree = QTreeWidget(self)
        self.tree.setObjectName("inspector")
        self.tree.setColumnCount(2)
        self.tree.setHeaderLabels(["Field", "Value"])
        self.tree.setUniformRowHeights(True)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().resizeSection(0, 130)
        self.tree.setWordWrap(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.heading)
        layout.addWidget(self.tree, 1)
        copy = QShortcut(QKeySequence.StandardKey.Copy, self.tree)
        copy.activated.connect(self._copy)
        self._generation = 0
        self.subject: tuple[str, str] | None = None

    def _copy(self) -> None:
        item = self.tree.currentItem()
        if item is not None:
            QApplication.clipboard().setText(item.text(1) or item.text(0))

    def _section(self, title: str, rows: list[tuple[str, Any]], expanded: bool = True) -> QTreeWidgetItem:
        section = QTreeWidgetItem(self.tree, [title, ""])
        font = section.font(0)
        font.setBold(True)
        section.setFont(0, font)
        section.setFirstColumnSpanned(True)
        for key, value in rows:
            text = _text(value)
            item = QTreeWidgetItem(section, [key, text])
            item.setToolTip(1, text)
        section.setExpanded(expanded)
        return section

    def _begin(self, kind: str, key: str, heading: str) -> int:
        self._generation += 1
        self.subject = (kind, key)
        self.heading.setText(heading)
        self.tree.clear()
        return self._generation

    # --- subjects ----------------------------------------------------------------------------

    def show_image(self, ref: str) -> None:
        generation = self._begin("image", ref, f"<b>Image</b> {ref}")

        def work(_: Control) -> tuple[dict[str, Any], list[Any]]:
            api = self.ctx.api()
            return api.inspect_image(ref), api.history(ref)

        def done(result: tuple[dict[str, Any], list[Any]]) -> None:
            if generation == self._generation:
                self._fill_image(ref, *result)

        def failed(failure: TaskFailure) -> None:
            if generation == self._generation:
                self.heading.setText(f"<b>Image</b> {ref}<br>{failure.message}")

        self.ctx.submit(f"inspect {ref}", work, on_result=done, on_error=failed, visible=False, owner=self)

    def _fill_image(self, ref: str, info: dict[str, Any], history: list[Any]) -> None:
        self.tree.clear()
        config = info.get("Config") or {}
        rootfs = (info.get("RootFS") or {}).get("Layers") or []
        self._section(
            "Image",
            [
                ("Id", info.get("Id")),
                ("Tags", info.get("RepoTags")),
                ("Digests", info.get("RepoDigests") or "—"),
                ("Size", f"{fmt.size(info.get('Size'))} ({info.get('Size')} bytes)"),
                ("Created", fmt.when(info.get("Created")) or info.get("Created")),
                (
                    "Platform",
                    f"{info.get('Os', '')}/{info.get('Architecture', '')}"
                    + (f"/{info['Variant']}" if info.get("Variant") else ""),
                ),
                ("Parent", info.get("Parent") or "—"),
                ("Author", info.get("Author") or "—"),
            ],
        )
        config_section = self._section(
            "Config",
            [
                ("Env", "\n".join(config.get("Env") or []) or "—"),
                ("Cmd", config.get("Cmd") or "—"),
                ("Entrypoint", config.get("Entrypoint") or "—"),
                ("WorkingDir", config.get("WorkingDir") or "—"),
                ("User", config.get("User") or "—"),
                ("ExposedPorts", list((config.get("ExposedPorts") or {}).keys()) or "—"),
                ("Volumes", list((config.get("Volumes") or {}).keys()) or "—"),
                ("Labels", config.get("Labels") or "—"),
                ("StopSignal", config.get("StopSignal") or "—"),
            ],
        )
        env = config_section.child(0)
        if env is not None and config.get("Env"):
            env.setText(1, "")
            for line in config.get("Env") or []:
                QTreeWidgetItem(env, ["", line])
            env.setExpanded(True)
        self._section("Layers", [(str(i), d) for i, d in enumerate(rootfs)], expanded=False)
        self._section(
            "History",
            [(fmt.size(h.size) if not h.empty_layer else "—", fmt.instruction(h.created_by, 160)) for h in history],
        )

    def show_layer(self, node: TreeNode) -> None:
        self._begin("layer", node.layer_id, f"<b>Layer</b> {layer_label(node)}")
        self._section(
            "Layer",
            [
                ("Chain id", node.chain_id),
                ("Diff id", node.diff_id),
                ("Stored as", f"layers/{node.layer_id}"),
                ("Instruction", fmt.instruction(node.created_by)),
                ("Size", fmt.size(node.size)),
                ("Added", node.added),
                ("Changed", node.modified),
                ("Deleted", node.deleted),
                ("Children", len(node.children)),
                ("Top of", node.tags or "—"),
            ],
        )

    def show_container(self, info: Any) -> None:
        generation = self._begin("container", info.id, f"<b>Container</b> {info.name}")
        self._section(
            "Container",
            [
                ("Id", info.id),
                ("Name", info.name),
                ("Image", info.image_ref or info.image),
                ("Image id", info.image),
                ("Command", info.command),
                ("Created", fmt.when(info.created)),
                ("State", info.state),
                ("Status", info.status),
                ("Exit code", "" if info.exit_code is None else info.exit_code),
            ],
        )
        strata = self.ctx.strata

        def work(_: Control) -> dict[str, Any]:
            return strata.inspect_container(info.id)

        def done(data: dict[str, Any]) -> None:
            if generation != self._generation:
                return
            mounts = data.get("Mounts") or []
            if mounts:
                self._section(
                    "Mounts", [(m.get("Destination", ""), m.get("Name") or m.get("Source", "")) for m in mounts]
                )
            graph = (data.get("GraphDriver") or {}).get("Data") or {}
            if graph:
                self._section("Storage", list(graph.items()), expanded=False)

        self.ctx.submit(
            f"inspect {info.name}", work, on_result=done, on_error=lambda _: None, visible=False, owner=self
        )

    def show_volume(self, info: Any) -> None:
        self._begin("volume", info.name, f"<b>Volume</b> {info.name}")
        self._section(
            "Volume",
            [
                ("Name", info.name),
                ("Created", fmt.when(info.created)),
                ("Mount point", str(info.mountpoint)),
                ("Anonymous", "yes" if info.anonymous else "no"),
                ("Labels", info.labels or "—"),
                ("Used by", info.users or "—"),
            ],
        )
