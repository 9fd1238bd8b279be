"""Plain records the API hands to the CLI and the GUI."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..store.images import Image as Image  # the store's image record: what commit, build and load return
from ..store.index import shown
from ..store.union import UnionView as UnionView  # a read-only merged view: what image_view and friends return


@dataclass(frozen=True)
class ImageSummary:
    id: str
    repository: str  # familiar form, "<none>" when untagged
    tag: str
    created: str  # RFC 3339 from the config
    size: int  # bytes of file content across its layers
    layers: int


@dataclass(frozen=True)
class HistoryRow:
    """One line of `docker history`: an image config history entry and its layer."""

    layer_id: str | None  # None for a config-only step
    created: str
    created_by: str
    size: int
    comment: str
    empty_layer: bool


@dataclass
class TreeNode:
    """A layer in the store-wide tree; ``children`` are layers built directly on it."""

    layer_id: str
    chain_id: str
    diff_id: str
    created_by: str
    size: int
    added: int
    modified: int
    deleted: int
    tags: list[str] = field(default_factory=list)  # images whose top layer this is
    images: list[str] = field(default_factory=list)  # image ids whose top layer this is
    children: list[TreeNode] = field(default_factory=list)


@dataclass(frozen=True)
class LsEntry:
    """One row of `strata ls`: the JSON shape the issue fixes."""

    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    link: str | None
    layer: int | str  # index of the layer it comes from (0 = bottom) or "container"
    status: str
    mtime: float = 0.0
    layer_id: str = ""

    def to_json(self) -> dict[str, Any]:
        """Names that are not UTF-8 are written as ``shown`` writes them: JSON holds only text."""
        return {
            "path": shown(self.path),
            "type": self.type,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "size": self.size,
            "link": None if self.link is None else shown(self.link),
            "layer": self.layer,
            "status": self.status,
        }
