"""The union view: what a stack of layers looks like merged, from the index alone.

Resolution runs top-down through the layers as overlayfs does: a whiteout hides the
path below it, an opaque directory hides what lower layers hold beneath it, and a
non-directory hides everything below its path. Every visible entry carries the layer
it comes from and whether that layer added it or modified something below. Content is
read from the layer that owns the entry; nothing is mounted.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from ..bulk import collector_paused
from ..errors import PathNotFound, StrataError
from .index import DIR, FILE, HARDLINK, SYMLINK, WHITEOUT, FileEntry, ancestors, loaded_rows, normalize, stored

if TYPE_CHECKING:
    from .layers import Layer
    from .store import Store

ADDED = "added"
MODIFIED = "modified"

# Row layout shared with the files table: path, type, mode, uid, gid, size, mtime,
# digest, link, opaque, devmajor, devminor.
Row = tuple[Any, ...]
_PATH, _TYPE, _OPAQUE = 0, 1, 9


def _row_entry(row: Row) -> FileEntry:
    return FileEntry(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], row[8], bool(row[9]), row[10], row[11]
    )


def _entry_row(e: FileEntry) -> Row:
    return (
        e.path,
        e.type,
        e.mode,
        e.uid,
        e.gid,
        e.size,
        e.mtime,
        e.digest,
        e.link,
        int(e.opaque),
        e.devmajor,
        e.devminor,
    )


def tree_order(path: str) -> str:
    """Sort key that keeps a directory's subtree together (``/a/b`` before ``/a-c``)."""
    return path.replace("/", "\x00")


class LayerSource(Protocol):
    """One layer as the union view needs it: index rows and a place to read content."""

    label: str
    kind: str  # "layer" or "container" (a writable top layer)

    def all_rows(self) -> list[Row]: ...

    def child_rows(self, directory: str) -> list[Row]: ...

    def rows_for(self, paths: Sequence[str]) -> list[Row]: ...

    def content_path(self, path: str) -> Path: ...


class IndexedLayer:
    """A committed layer: rows come from the metadata database."""

    kind = "layer"
    _COLS = "path, type, mode, uid, gid, size, mtime, digest, link, opaque, devmajor, devminor"

    def __init__(self, store: Store, layer: Layer) -> None:
        self.store = store
        self.layer = layer
        self.label = layer.id

    def all_rows(self) -> list[Row]:
        with collector_paused():
            return loaded_rows(self.store.meta.query(f"SELECT {self._COLS} FROM files WHERE layer=?", (self.layer.id,)))

    def child_rows(self, directory: str) -> list[Row]:
        return loaded_rows(
            self.store.meta.query(
                f"SELECT {self._COLS} FROM files WHERE layer=? AND parent=?", (self.layer.id, stored(directory))
            )
        )

    def rows_for(self, paths: Sequence[str]) -> list[Row]:
        out: list[Row] = []
        for start in range(0, len(paths), 500):
            chunk = [stored(p) for p in paths[start : start + 500]]
            marks = ",".join("?" * len(chunk))
            out += loaded_rows(
                self.store.meta.query(
                    f"SELECT {self._COLS} FROM files WHERE layer=? AND path IN ({marks})", [self.layer.id, *chunk]
                )
            )
        return out

    def content_path(self, path: str) -> Path:
        return self.store.layers.diff_dir(self.layer.id) / path.lstrip("/")


class ListedLayer:
    """A layer whose index is held in memory (a container's live diff, a volume)."""

    def __init__(
        self,
        label: str,
        entries: Iterable[FileEntry],
        content_root: Path,
        kind: str = "container",
        rows: Iterable[Row] | None = None,
        ordered: bool = False,
    ):
        """``ordered`` promises that ``rows`` come in tree order (see ``tree_order``), so a
        walk of this layer alone skips its sort."""
        self.label = label
        self.ordered = ordered and rows is not None
        self.kind = kind
        self.root = content_root
        with collector_paused():
            if rows is not None:
                self._rows = {r[0]: r for r in rows}
            else:
                self._rows = {e.path: _entry_row(e) for e in entries}
        self._children: dict[str, list[Row]] | None = None

    def all_rows(self) -> list[Row]:
        return list(self._rows.values())

    def child_rows(self, directory: str) -> list[Row]:
        if self._children is None:
            children: dict[str, list[Row]] = {}
            for row in self._rows.values():
                children.setdefault(posixpath.dirname(row[0]), []).append(row)
            self._children = children
        return self._children.get(directory, [])

    def rows_for(self, paths: Sequence[str]) -> list[Row]:
        return [self._rows[p] for p in paths if p in self._rows]

    def content_path(self, path: str) -> Path:
        return self.root / path.lstrip("/")


@dataclass(slots=True)
class UnionEntry:
    entry: FileEntry
    layer: int  # index into the view's layers, 0 = bottom
    status: str  # "added" or "modified"

    @property
    def path(self) -> str:
        return self.entry.path


class UnionView:
    """A merged, read-only view over ``layers`` (bottom first)."""

    def __init__(self, layers: Sequence[LayerSource]) -> None:
        self.layers = list(layers)

    @classmethod
    def of_layers(cls, store: Store, layers: Sequence[Layer]) -> UnionView:
        return cls([IndexedLayer(store, layer) for layer in layers])

    # --- one layer's own changes (what a browser marks as this layer's) ---------------

    def below(self, index: int) -> UnionView:
        """The view of the layers under ``index``: what layer ``index`` changed."""
        return UnionView(self.layers[:index])

    def whiteouts_in(self, index: int, directory: str) -> list[str]:
        """Paths in ``directory`` that layer ``index`` deletes (its whiteouts)."""
        return [r[_PATH] for r in self.layers[index].child_rows(directory) if r[_TYPE] == WHITEOUT]

    def changed_paths(self, index: int) -> list[str]:
        """Every path layer ``index`` adds, changes or deletes."""
        return [r[_PATH] for r in self.layers[index].all_rows()]

    # --- whole tree ------------------------------------------------------------------

    def walk(self) -> list[UnionEntry]:
        """Every visible path below ``/``, in tree order."""
        with collector_paused():
            if len(self.layers) == 1:
                only = self.layers[0]
                rows = [r for r in only.all_rows() if r[_TYPE] != WHITEOUT and r[_PATH] != "/"]
                if not getattr(only, "ordered", False):
                    rows.sort(key=lambda r: tree_order(r[_PATH]))
                return [UnionEntry(FileEntry(*r), 0, ADDED) for r in rows]
            merged = self._merge_all()
            keys = sorted(merged, key=tree_order)
            return [UnionEntry(_row_entry(merged[k][0]), merged[k][1], merged[k][2]) for k in keys]

    def _merge_all(self) -> dict[str, list[Any]]:
        result: dict[str, list[Any]] = {}
        hidden_self: set[str] = set()  # whiteouts: the path and everything below
        hidden_below: set[str] = set()  # whiteouts, opaque dirs, non-dirs: everything below
        for index in range(len(self.layers) - 1, -1, -1):
            rows = self.layers[index].all_rows()
            new_self: list[str] = []
            new_below: list[str] = []
            for row in rows:
                path = row[_PATH]
                if path in hidden_self or (hidden_below and _any_ancestor_in(path, hidden_below)):
                    continue
                kind = row[_TYPE]
                have = result.get(path)
                if have is not None:
                    if kind == WHITEOUT:
                        new_self.append(path)
                        new_below.append(path)
                    else:
                        have[2] = MODIFIED
                        # Shadowed by a directory above, this one still ends the lookup
                        # below it when it is opaque or not a directory (overlayfs stops
                        # here), or the lower layers' contents would come back.
                        if kind != DIR or row[_OPAQUE]:
                            new_below.append(path)
                    continue
                if kind == WHITEOUT:
                    new_self.append(path)
                    new_below.append(path)
                    continue
                result[path] = [row, index, ADDED]
                if kind != DIR or row[_OPAQUE]:
                    new_below.append(path)
            hidden_self.update(new_self)
            hidden_below.update(new_below)
        result.pop("/", None)
        return result

    # --- one directory ---------------------------------------------------------------

    def list_dir(self, path: str = "/") -> list[UnionEntry]:
        """The visible children of directory ``path`` (symlinks on the way followed)."""
        path = self.resolve_path(path)
        if path != "/":
            found = self.lookup(path)
            if found is None:
                raise PathNotFound("image", path)
            if found.entry.type != DIR:
                return [found]
        seen: dict[str, list[Any]] = {}
        deleted: set[str] = set()
        chain = [path, *ancestors(path)] if path != "/" else ["/"]
        for index in range(len(self.layers) - 1, -1, -1):
            source = self.layers[index]
            here = {r[_PATH]: r for r in source.rows_for(chain)} if path != "/" else {}
            cut = any(a in here and (here[a][_TYPE] != DIR or here[a][_OPAQUE]) for a in chain[1:])
            if path in here and here[path][_TYPE] != DIR:
                break
            for row in source.child_rows(path):
                name = row[_PATH]
                if name == "/":
                    continue
                if name in deleted:
                    continue
                have = seen.get(name)
                if have is not None:
                    if row[_TYPE] == WHITEOUT:
                        deleted.add(name)
                    else:
                        have[2] = MODIFIED
                    continue
                if row[_TYPE] == WHITEOUT:
                    deleted.add(name)
                    continue
                seen[name] = [row, index, ADDED]
            if cut or (path in here and here[path][_OPAQUE]):
                break
        keys = sorted(seen)
        return [UnionEntry(_row_entry(seen[k][0]), seen[k][1], seen[k][2]) for k in keys]

    # --- single paths ----------------------------------------------------------------

    def lookup(self, path: str) -> UnionEntry | None:
        """The visible entry at ``path`` (no symlink following), or None."""
        path = normalize(path)
        if path == "/":
            return UnionEntry(FileEntry("/", DIR, 0o755), 0, ADDED)
        chain = [path, *ancestors(path)]
        found: list[Any] | None = None
        for index in range(len(self.layers) - 1, -1, -1):
            here = {r[_PATH]: r for r in self.layers[index].rows_for(chain)}
            row = here.get(path)
            if found is None and row is not None:
                if row[_TYPE] == WHITEOUT:
                    return None
                found = [row, index, ADDED]
            elif found is not None and row is not None:
                if row[_TYPE] != WHITEOUT:
                    found[2] = MODIFIED
                break
            if any(a in here and (here[a][_TYPE] != DIR or here[a][_OPAQUE]) for a in chain[1:]):
                break
        if found is None:
            return None
        return UnionEntry(_row_entry(found[0]), found[1], found[2])

    def lookup_many(self, paths: Sequence[str]) -> dict[str, UnionEntry]:
        if len(paths) > 200:
            merged = self._merge_all()
            return {p: UnionEntry(_row_entry(merged[p][0]), merged[p][1], merged[p][2]) for p in paths if p in merged}
        out = {}
        for p in paths:
            hit = self.lookup(p)
            if hit is not None:
                out[p] = hit
        return out

    def sizes(self, hits: Sequence[UnionEntry]) -> list[int]:
        """Each hit's size in bytes: a hard link has the size of the file it names, as
        ``ls -l`` and every reader of an exported tar show it (the index stores 0)."""
        targets = sorted({h.entry.link for h in hits if h.entry.type == HARDLINK and h.entry.link})
        found = self.lookup_many(targets) if targets else {}
        out: list[int] = []
        for h in hits:
            e = h.entry
            if e.type == FILE:
                out.append(e.size)
            elif e.type == HARDLINK and e.link in found and found[e.link].entry.type == FILE:
                out.append(found[e.link].entry.size)
            else:
                out.append(0)
        return out

    def resolve_path(self, path: str, follow_last: bool = True) -> str:
        """Follow symlinks in ``path`` the way a process chrooted into the image would,
        never leaving the root."""
        parts = [p for p in normalize(path).split("/") if p]
        resolved = "/"
        hops = 0
        while parts:
            part = parts.pop(0)
            candidate = posixpath.join(resolved, part)
            if not parts and not follow_last:
                resolved = candidate
                break
            hit = self.lookup(candidate)
            if hit is not None and hit.entry.type == SYMLINK and hit.entry.link is not None:
                hops += 1
                if hops > 40:
                    raise StrataError(f"too many levels of symbolic links in {path}")
                target = hit.entry.link
                base = "/" if target.startswith("/") else resolved
                parts = [p for p in normalize(posixpath.join(base, target)).split("/") if p] + parts
                resolved = "/"
                continue
            resolved = candidate
        return resolved

    def open(self, path: str) -> BinaryIO:
        """Read a regular file's content from the layer that owns it."""
        real = self.resolve_path(path)
        hit = self.lookup(real)
        if hit is None:
            raise PathNotFound("image", path)
        if hit.entry.type not in ("file", "hardlink"):
            raise StrataError(f"{path} is a {hit.entry.type}, not a regular file")
        on_disk = self.layers[hit.layer].content_path(real)
        fd = os.open(on_disk, os.O_RDONLY | os.O_NOFOLLOW)
        return os.fdopen(fd, "rb")


def _any_ancestor_in(path: str, hidden: set[str]) -> bool:
    p = path
    while True:
        cut = p.rfind("/")
        if cut <= 0:
            return "/" in hidden and path != "/"
        p = p[:cut]
        if p in hidden:
            return True
