"""The column sets of the window's tables, over the API's records."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QBrush, QColor, QGuiApplication, QPalette

from ...api.model import ImageSummary
from .. import fmt
from .record_table import Column, RecordTableModel


def _dark() -> bool:
    return QGuiApplication.palette().color(QPalette.ColorRole.Base).lightness() < 128


def change_brush(kind: str) -> QBrush | None:
    dark = _dark()
    colors = {"A": ("#1a7f37", "#6fcf73"), "C": ("#9a6700", "#e3b341"), "D": ("#cf222e", "#f47067")}
    pair = colors.get(kind)
    return QBrush(QColor(pair[1] if dark else pair[0])) if pair else None


def state_brush(state: str) -> QBrush | None:
    if state == "running":
        return QBrush(QColor("#6fcf73" if _dark() else "#1a7f37"))
    return None


def images_model(parent: QObject | None = None) -> RecordTableModel[ImageSummary]:
    return RecordTableModel(
        [
            Column("Repository", lambda r: r.repository),
            Column("Tag", lambda r: r.tag),
            Column("Image ID", lambda r: fmt.short_id(r.id), tooltip=lambda r: r.id),
            Column(
                "Created",
                lambda r: fmt.ago(r.created),
                sort=lambda r: fmt.to_epoch(r.created) or 0,
                tooltip=lambda r: fmt.when(r.created),
            ),
            Column("Size", lambda r: fmt.size(r.size), sort=lambda r: r.size, right=True),
            Column("Layers", lambda r: str(r.layers), sort=lambda r: r.layers, right=True),
        ],
        key=lambda r: (r.id, r.repository, r.tag),
        parent=parent,
    )


def containers_model(parent: QObject | None = None) -> RecordTableModel[Any]:
    return RecordTableModel(
        [
            Column("Name", lambda r: r.name),
            Column("Container ID", lambda r: r.id[:12], tooltip=lambda r: r.id),
            Column("Image", lambda r: r.image_ref or fmt.short_id(r.image)),
            Column("Command", lambda r: _command(r.command), tooltip=lambda r: _command(r.command)),
            Column(
                "Created",
                lambda r: fmt.ago(r.created),
                sort=lambda r: fmt.to_epoch(r.created) or 0,
                tooltip=lambda r: fmt.when(r.created),
            ),
            Column(
                "Status",
                lambda r: r.status or r.state,
                sort=lambda r: (r.state, r.status),
                foreground=lambda r: state_brush(r.state),
            ),
        ],
        key=lambda r: r.id,
        parent=parent,
    )


def _command(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value or "")


def volumes_model(sizes: dict[str, int], parent: QObject | None = None) -> RecordTableModel[Any]:
    """``sizes`` is filled by a background task; the model shows what is known."""
    return RecordTableModel(
        [
            Column("Name", lambda r: r.name),
            Column(
                "Created",
                lambda r: fmt.ago(r.created),
                sort=lambda r: fmt.to_epoch(r.created) or 0,
                tooltip=lambda r: fmt.when(r.created),
            ),
            Column(
                "Size",
                lambda r: fmt.size(sizes[r.name]) if r.name in sizes else "…",
                sort=lambda r: sizes.get(r.name, -1),
                right=True,
            ),
            Column("Used by", lambda r: ", ".join(r.users) or "—"),
            Column("Labels", lambda r: ", ".join(f"{k}={v}" for k, v in (r.labels or {}).items())),
            Column("Mount point", lambda r: str(r.mountpoint)),
        ],
        key=lambda r: r.name,
        parent=parent,
    )


def changes_model(parent: QObject | None = None) -> RecordTableModel[Any]:
    """A layer's or container's own changes: ``Change(kind, path, entry)``."""
    return RecordTableModel(
        [
            Column(
                "",
                lambda r: r.kind,
                foreground=lambda r: change_brush(r.kind),
                tooltip=lambda r: {"A": "added", "C": "changed", "D": "deleted"}.get(r.kind, r.kind),
            ),
            Column("Path", lambda r: r.path),
            Column(
                "Size",
                lambda r: (
                    fmt.size(r.entry.size) if r.entry is not None and r.entry.type == "file" and r.kind != "D" else ""
                ),
                sort=lambda r: r.entry.size if r.entry is not None else 0,
                right=True,
            ),
        ],
        key=lambda r: r.path,
        parent=parent,
    )


def layer_stats_model(parent: QObject | None = None) -> RecordTableModel[Any]:
    return RecordTableModel(
        [
            Column("#", lambda r: str(r.index), sort=lambda r: r.index, right=True),
            Column("Size", lambda r: fmt.size(r.size), sort=lambda r: r.size, right=True),
            Column("Files", lambda r: str(r.files), sort=lambda r: r.files, right=True),
            Column(
                "Wasted",
                lambda r: fmt.size(r.wasted) if r.wasted else "",
                sort=lambda r: r.wasted,
                right=True,
                foreground=lambda r: change_brush("D") if r.wasted else None,
            ),
            Column(
                "Instruction",
                lambda r: fmt.instruction(r.created_by, 120),
                tooltip=lambda r: fmt.instruction(r.created_by),
            ),
            Column("Layer", lambda r: r.layer_id[:12], tooltip=lambda r: r.layer_id),
        ],
        key=lambda r: r.index,
        parent=parent,
    )


def offenders_model(parent: QObject | None = None) -> RecordTableModel[Any]:
    return RecordTableModel(
        [
            Column("Wasted", lambda r: fmt.size(r.wasted_bytes), sort=lambda r: r.wasted_bytes, right=True),
            Column("Copies", lambda r: str(r.count), sort=lambda r: r.count, right=True),
            Column("Path", lambda r: r.path),
        ],
        key=lambda r: r.path,
        parent=parent,
    )
