"""What the file browser shows, computed off the GUI thread.

A ``FileSource`` names something with files (an image at a layer, a layer, a container,
a volume). ``open_snapshot`` turns it into a ``Snapshot``: the union view from the API
plus what the browser needs beside it — which layer counts as "this one" (its changes are
the added/modified/deleted rows), the paths it deletes (shown as whiteouts, which the
union view hides), and owner names from the image's own ``/etc/passwd``. Listing a
directory is then one call on the snapshot, in a worker.

A container's snapshot also holds its mounts, as Docker Desktop shows them: the mount
point is a row of its parent marked as a mount (made up when the container's own files
have no such folder, as the runtime makes it at start), and below it the rows come from
the volume (or the bind's host folder); a tmpfs is empty while the container is stopped.
"""

from __future__ import annotations

import os
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

# what a container mounts (inspect's Mounts "Type")
VOLUME_MOUNT = "volume"
BIND_MOUNT = "bind"
TMPFS_MOUNT = "tmpfs"
MOUNTED = -2  # FileRow.layer of a row a mount brings (and of a folder made for one)

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


@dataclass(frozen=True, eq=False)
class MountPoint:
    """One mount of a container, with its contents' view (None when there is none to show)."""

    kind: str  # VOLUME_MOUNT, BIND_MOUNT or TMPFS_MOUNT
    destination: str
    source: str  # the volume's name, the bind's host path; "" for a tmpfs
    read_only: bool
    view: UnionView | None = None
    problem: str = ""  # why there is no view, when there should be one

    @property
    def key(self) -> tuple[str, str, str, bool]:
        return (self.kind, self.destination, self.source, self.read_only)

    @property
    def label(self) -> str:
        """The Layer column's word for what the mount brings."""
        if self.kind == VOLUME_MOUNT:
            return f"volume {self.source}"
        if self.kind == BIND_MOUNT:
            return f"bind {self.source}"
        return "tmpfs"

    @property
    def description(self) -> str:
        if self.kind == VOLUME_MOUNT:
            text = f"volume {self.source} mounted here"
        elif self.kind == BIND_MOUNT:
            text = f"bind mount of {self.source} (a folder of this computer)"
        else:
            text = "tmpfs mounted here: in memory, empty at every start, nothing kept while stopped"
        if self.read_only:
            text += "; read-only"
        if self.problem:
            text += f"; {self.problem}"
        return text

    @property
    def writable(self) -> bool:
        """Whether an edit below it lasts: not a read-only mount, not a tmpfs (its files go at
        the next start, and a stopped container's tmpfs exists only for the edit)."""
        return self.kind != TMPFS_MOUNT and not self.read_only

    def holds(self, path: str) -> bool:
        return path == self.destination or path.startswith(self.destination.rstrip("/") + "/")

    def inner(self, path: str) -> str:
        """``path`` (at or below the mount point) as a path of the mount's own view."""
        rest = path[len(self.destination) :].lstrip("/")
        return "/" + rest

    def outer(self, inner: str) -> str:
        return posixpath.join(self.destination, inner.lstrip("/")) if inner != "/" else self.destination


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
    layer: int  # index of the layer it comes from; -1 when deleted, MOUNTED when a mount brings it
    status: str
    mount: MountPoint | None = None  # the mount this row is the mount point of, or comes from

    @property
    def is_mount_point(self) -> bool:
        return self.mount is not None and self.mount.destination == self.path

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
        ) and (self.mount.key if self.mount else None) == (other.mount.key if other.mount else None)


@dataclass
class Snapshot:
    source: FileSource
    view: UnionView
    top: int  # the layer whose changes show as added/modified/deleted; -1 when nothing is layered
    layer_labels: list[str]
    users: dict[int, str] = field(default_factory=dict)
    groups: dict[int, str] = field(default_factory=dict)
    mounts: list[MountPoint] = field(default_factory=list)  # a container's, deepest last
    _changed_dirs: set[str] | None = None
    _below: UnionView | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mount_for(self, path: str) -> MountPoint | None:
        """The mount ``path`` is at or below (the deepest, when mounts nest)."""
        found = [m for m in self.mounts if m.holds(path)]
        return max(found, key=lambda m: len(m.destination)) if found else None

    def mounts_under(self, path: str) -> list[MountPoint]:
        """The mounts at or below ``path``: deleting ``path`` would reach into them."""
        return [m for m in self.mounts if m.destination == path or m.destination.startswith(path.rstrip("/") + "/")]

    def view_for(self, path: str) -> tuple[UnionView, str] | None:
        """The view that holds ``path``'s content and the path in it: the container's, or
        its mount's; None below a mount that has nothing to show (a tmpfs)."""
        mount = self.mount_for(path)
        if mount is None:
            return self.view, path
        if mount.view is None:
            return None
        return mount.view, mount.inner(path)

    def listing(self, path: str, changed_only: bool = False) -> list[FileRow]:
        """The rows of directory ``path``; [] when it no longer exists."""
        mount = self.mount_for(path)
        if mount is not None:
            return [] if changed_only else self._with_mount_points(path, self._mounted(mount, path))
        try:
            hits = self.view.list_dir(path)
        except StrataError:
            return [] if changed_only else self._with_mount_points(path, [])
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
        return out if changed_only else self._with_mount_points(path, out)

    def _mounted(self, mount: MountPoint, path: str) -> list[FileRow]:
        """Directory ``path`` below ``mount``: what the volume (or host folder) holds there."""
        if mount.view is None:
            return []
        try:
            hits = mount.view.list_dir(mount.inner(path))
        except StrataError:
            return []
        out: list[FileRow] = []
        for hit, size in zip(hits, mount.view.sizes(hits), strict=True):
            e = hit.entry
            if e.path == mount.inner(path):
                continue
            outer = mount.outer(e.path)
            out.append(
                FileRow(
                    posixpath.basename(outer),
                    outer,
                    e.type,
                    size,
                    e.mode,
                    e.uid,
                    e.gid,
                    e.mtime,
                    e.link,
                    MOUNTED,
                    "",
                    mount,
                )
            )
        return out

    def _with_mount_points(self, path: str, rows: list[FileRow]) -> list[FileRow]:
        """``rows`` with the mount points in ``path`` marked, and the folders on the way to a
        deeper one made up where the container's files have none (the runtime makes them)."""
        if not self.mounts:
            return rows
        prefix = "/" if path == "/" else path.rstrip("/") + "/"
        by_name = {r.name: i for i, r in enumerate(rows)}
        for mount in self.mounts:
            if not mount.destination.startswith(prefix) or mount.destination == path:
                continue
            name = mount.destination[len(prefix) :].split("/", 1)[0]
            child = prefix + name
            at = by_name.get(name)
            old = rows[at] if at is not None else None
            if child == mount.destination:
                kind = "dir" if mount.view is not None or mount.kind != BIND_MOUNT else (old.type if old else "file")
                row = FileRow(
                    name,
                    child,
                    kind,
                    0,
                    old.mode if old and old.status != DELETED else 0o755,
                    old.uid if old else 0,
                    old.gid if old else 0,
                    old.mtime if old else 0.0,
                    None,
                    old.layer if old and old.status != DELETED else MOUNTED,
                    "",
                    mount,
                )
            elif old is None:
                row = FileRow(name, child, "dir", 0, 0o755, 0, 0, 0.0, None, MOUNTED, "")
            else:
                continue
            if at is None:
                by_name[name] = len(rows)
                rows.append(row)
            else:
                rows[at] = row
        return rows

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


def _mounts_of(strata: Strata, name: str) -> list[MountPoint]:
    """The container's mounts as ``inspect`` reports them, each with the view of its contents."""
    out: list[MountPoint] = []
    for m in strata.inspect_container(name).get("Mounts") or []:
        kind = str(m.get("Type") or "")
        destination = str(m.get("Destination") or "")
        if kind not in (VOLUME_MOUNT, BIND_MOUNT, TMPFS_MOUNT) or not destination.startswith("/"):
            continue
        source = str(m.get("Name") or "") if kind == VOLUME_MOUNT else str(m.get("Source") or "")
        if kind == TMPFS_MOUNT:
            source = ""
        view: UnionView | None = None
        problem = ""
        try:
            if kind == VOLUME_MOUNT:
                view = strata.volume_view(source)
            elif kind == BIND_MOUNT and os.path.isdir(source):
                view = strata.bind_view(source)
        except StrataError as e:
            problem = str(e)
        out.append(MountPoint(kind, destination.rstrip("/") or "/", source, not m.get("RW", True), view, problem))
    return sorted(out, key=lambda m: len(m.destination))


def open_snapshot(strata: Strata, source: FileSource, check: Callable[[], None] | None = None) -> Snapshot:
    view = _view_for(strata, source)
    if check:
        check()
    top = -1 if source.kind == VOLUME or not view.layers else len(view.layers) - 1
    snap = Snapshot(source, view, top, _labels(view, _chain_of(strata, source)))
    if source.kind == CONTAINER:
        snap.mounts = _mounts_of(strata, source.ref)
    if source.kind != VOLUME:
        snap.users = _read_names(view, "/etc/passwd")
        snap.groups = _read_names(view, "/etc/group")
    return snap
