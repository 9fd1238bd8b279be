"""What the file browser shows, computed off the GUI thread.

A ``FileSource`` names something with files (an image at a layer, a layer, a container,
a volume). ``open_snapshot`` turns it into a ``Snapshot``: the union view from the API
plus what the browser needs beside it — which layer counts as "this one" (its changes are
the added/modified/deleted rows), the paths it deletes (shown as whiteouts, which the
union view hides), and owner names from the image's own ``/etc/passwd``. Listing a
directory is then one call on the snapshot, in a worker.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...digest import chain_ids, short
from ...errors import StrataError

if TYPE_CHECKING:
    from ...api import Strata
    from ...api.model import TreeNode, UnionView

IMAGE = "image"
LAYER = "layer"
CONTAINER = "container"
VOLUME = "volume"

ADDED = "added"
MODIFIED = "modified"
DELETED = "deleted"
UNCHANGED = "unchanged"


@dataclass(frozen=True)
class FileSource:
    kind: str  # IMAGE, LAYER, CONTAINER or VOLUME
    ref: str  # image name or id, layer id, container name or id, volume name
    at_layer: int | None = None  # IMAGE only: browse as of this layer (0 = bottom)
    title: str = ""
    ident: str = ""  # the container's full id / layer id, for matching watcher events

    @property
    def writable(self) -> bool:
        return self.kind in (CONTAINER, VOLUME)

    @property
    def label(self) -> str:
        if self.title:
            return self.title
        if self.kind == IMAGE and self.at_layer is not None:
            return f"{self.ref} @ layer {self.at_layer}"
        if self.kind == LAYER:
            return f"layer {short(self.ref)}"
        return self.ref


@dataclass(slots=True)
class FileRow:
    """One row of a directory listing (also the deleted ones)."""

    name: str
    path: str
    type: str
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float
    link: str | None
    layer: int  # index of the layer it comes from; -1 when deleted
    status: str

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    def same_as(self, other: FileRow) -> bool:
        return (
            self.type,
            self.size,
            self.mode,
            self.uid,
            self.gid,
            self.mtime,
            self.link,
            self.layer,
            self.status,
        ) == (
            other.type,
            other.size,
            other.mode,
            other.uid,
            other.gid,
            other.mtime,
            other.link,
            other.layer,
            other.status,
        )


@dataclass
class Snapshot:
    source: FileSource
    view: UnionView
    top: int  # the layer whose changes show as added/modified/deleted; -1 when nothing is layered
    layer_labels: list[str]
    users: dict[int, str] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    _changed_dirs: set[str] | None = None
    _below: UnionView | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def listing(self, path: str, changed_only: bool = False) -> list[FileRow]:
        """The rows of directory ``path``; [] when it no longer exists."""
        try:
            hits = self.view.list_dir(path)
        except StrataError:
            return []
        dirs = self.changed_dirs() if changed_only else set()
        out: list[FileRow] = []
        for hit, size in zip(hits, self.view.sizes(hits), strict=True):
            e = hit.entry
            if e.path == path:  # list_dir of a non-directory returns the entry itself
                continue
            if self.top < 0:
                status = ""
            elif hit.layer == self.top:
                status = hit.status
            else:
                status = UNCHANGED
            if changed_only and status in ("", UNCHANGED) and not (e.type == "dir" and e.path in dirs):
                continue
            out.append(
                FileRow(
                    posixpath.basename(e.path),
                    e.path,
                    e.type,
                    size,
                    e.mode,
                    e.uid,
                    e.gid,
                    e.mtime,
                    e.link,
                    hit.layer,
                    status,
                )
            )
        out += self.deleted_in(path)
        return out

    def deleted_in(self, path: str) -> list[FileRow]:
        """What the top layer deletes in directory ``path``: its whiteouts over paths that
        exist below. Read per directory from the layer's own index, so a base layer of
        100,000 files costs nothing until a directory is opened."""
        if self.top < 0:
            return []
        whiteouts = self.view.whiteouts_in(self.top, path)
        if not whiteouts:
            return []
        below = self._lower()
        out: list[FileRow] = []
        for gone in whiteouts:
            old = below.lookup(gone)
            if old is None:
                continue
            e = old.entry
            out.append(
                FileRow(posixpath.basename(gone), gone, e.type, 0, e.mode, e.uid, e.gid, e.mtime, None, -1, DELETED)
            )
        return out

    def _lower(self) -> UnionView:
        with self._lock:
            if self._below is None:
                self._below = self.view.below(self.top)
            return self._below

    def changed_dirs(self) -> set[str]:
        """Directories that hold anything the top layer adds, changes or deletes."""
        with self._lock:
            if self._changed_dirs is None:
                found: set[str] = set()
                if self.top >= 0:
                    for changed in self.view.changed_paths(self.top):
                        d = posixpath.dirname(changed)
                        while d not in found:
                            found.add(d)
                            if d == "/":
                                break
                            d = posixpath.dirname(d)
                self._changed_dirs = found
            return self._changed_dirs

    def owner(self, uid: int, gid: int) -> str:
        return f"{self.users.get(uid, uid)}:{self.groups.get(gid, gid)}"

    def layer_label(self, index: int) -> str:
        if index < 0:
            return ""
        if 0 <= index < len(self.layer_labels):
            return self.layer_labels[index]
        return str(index)


def _view_for(strata: Strata, source: FileSource) -> UnionView:
    if source.kind == IMAGE:
        return strata.image_view(source.ref, source.at_layer)
    if source.kind == LAYER:
        return strata.layer_view(source.ref)
    if source.kind == CONTAINER:
        return strata.container_view(source.ref)
    if source.kind == VOLUME:
        return strata.volume_view(source.ref)
    raise StrataError(f"cannot browse a {source.kind}")


def _chain_of(strata: Strata, source: FileSource) -> list[str]:
    """The chain ids of the image layers ``source`` stands on, bottom first: the ids
    ``strata tree`` prints (and the layer tree shows), so a row's layer can be found there."""
    if source.kind == IMAGE:
        chain = chain_ids(strata.image(source.ref).diff_ids)
        return chain if source.at_layer is None else chain[: source.at_layer + 1]
    if source.kind == CONTAINER:
        return chain_ids(strata.image(strata.container(source.ref).image).diff_ids)
    if source.kind == LAYER:
        return _path_to(strata.layer_tree(), source.ref)
    return []


def _path_to(nodes: list[TreeNode], layer_id: str) -> list[str]:
    for node in nodes:
        if node.layer_id == layer_id:
            return [node.chain_id]
        below = _path_to(node.children, layer_id)
        if below:
            return [node.chain_id, *below]
    return []


def _labels(view: UnionView, chain: list[str]) -> list[str]:
    out = []
    for index, layer in enumerate(view.layers):
        if layer.kind == "container":
            out.append("container")
        elif layer.kind == "volume":
            out.append("volume")
        elif index < len(chain):
            out.append(f"{index} · {short(chain[index])}")
        else:
            out.append(str(index))
    return out


def _read_names(view: UnionView, path: str) -> dict[int, str]:
    """uid/gid → name from the image's own passwd/group file, best effort."""
    try:
        hit = view.lookup(view.resolve_path(path))
        if hit is None or hit.entry.size > 1 << 20:
            return {}
        with view.open(path) as f:
            text = f.read(1 << 20).decode("utf-8", "replace")
    except (StrataError, OSError):
        return {}
    names: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 3 and parts[2].isdigit():
            names.setdefault(int(parts[2]), parts[0])
    return names


def open_snapshot(strata: Strata, source: FileSource, check: Callable[[], None] | None = None) -> Snapshot:
    view = _view_for(strata, source)
    if check:
        check()
    top = -1 if source.kind == VOLUME or not view.layers else len(view.layers) - 1
    snap = Snapshot(source, view, top, _labels(view, _chain_of(strata, source)))
    if source.kind != VOLUME:
        snap.users = _read_names(view, "/etc/passwd")
        snap.groups = _read_names(view, "/etc/group")
    return snap
