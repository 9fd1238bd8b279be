"""Resolve a path through a stack of overlay-form layer directories, without a mount.

Before the container's root is mounted the runtime must know where ``/etc/hosts``
or a volume's target really lands in the image: an image may make ``/etc`` or
``/var/run`` a symlink, and a mount target created beside the symlink would hide
it. Resolution follows symlinks confined to the image root (``..`` stops at ``/``,
absolute links restart at the image root), honouring whiteouts and opaque dirs.
The store has its own union view over the file index; this one reads the disk,
because the runtime sits below the store.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from ..errors import InvalidArgument
from ..overlayfs import is_opaque, is_whiteout

_MAX_LINKS = 40


@dataclass(frozen=True)
class Found:
    """An entry visible in the union: where it lives and which layers may still
    contribute children (``depth`` = layers 0..depth-1, top-most first)."""

    layer: int
    st: os.stat_result
    depth: int


class LayerStack:
    """Lookups through read-only layers, top-most first (overlay's lowerdir order)."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers

    def root(self) -> Found:
        if not self.layers:
            raise InvalidArgument("no layer directories given")
        return Found(0, os.lstat(self.layers[0]), len(self.layers))

    def _dir_depth(self, rel: str, first: int, limit: int) -> int:
        """How many layers (from the top) can add children to the directory
        ``rel`` first found in layer ``first``: down to an opaque copy (included)
        or a non-directory / whiteout (excluded)."""
        for j in range(first, limit):
            probe = os.path.join(self.layers[j], rel)
            try:
                below = os.lstat(probe)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if not stat.S_ISDIR(below.st_mode):
                return j
            if is_opaque(probe):
                return j + 1
        return limit

    def child(self, parent: Found, rel: str) -> Found | None:
        """The entry ``rel`` whose parent directory (already looked up) is ``parent``."""
        for i in range(parent.layer, parent.depth):
            try:
                st = os.lstat(os.path.join(self.layers[i], rel))
            except (FileNotFoundError, NotADirectoryError):
                continue
            if is_whiteout(st):
                return None
            depth = self._dir_depth(rel, i, parent.depth) if stat.S_ISDIR(st.st_mode) else i + 1
            return Found(i, st, depth)
        return None

    def children(self, rel: str, node: Found) -> dict[str, Found]:
        """The union listing of directory ``rel`` (whiteouts applied)."""
        seen: dict[str, Found | None] = {}
        for i in range(node.layer, node.depth):
            where = os.path.join(self.layers[i], rel)
            try:
                with os.scandir(where) as it:
                    entries = list(it)
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name in seen:
                    continue
                st = entry.stat(follow_symlinks=False)
                if is_whiteout(st):
                    seen[entry.name] = None
                    continue
                sub = os.path.join(rel, entry.name)
                depth = self._dir_depth(sub, i, node.depth) if stat.S_ISDIR(st.st_mode) else i + 1
                seen[entry.name] = Found(i, st, depth)
        return {name: found for name, found in seen.items() if found is not None}

    def readlink(self, found: Found, rel: str) -> str:
        return os.readlink(os.path.join(self.layers[found.layer], rel))

    def resolve(self, path: str, _depth: int = 0) -> tuple[str, Found | None]:
        """``path`` with every symlink on it resolved inside the image root.

        Returns the relative path (``""`` for the root) and its entry, or None
        when the path (or some trailing part of it) does not exist yet; in that
        case the missing components are appended unresolved.
        """
        pending = [c for c in path.split("/") if c not in ("", ".")]
        pending.reverse()
        parts: list[str] = []
        chain: list[Found] = [self.root()]
        links = 0
        while pending:
            name = pending.pop()
            if name == "..":
                if parts:
                    parts.pop()
                    chain.pop()
                continue
            rel = "/".join([*parts, name])
            found = self.child(chain[-1], rel)
            if found is None:
                rest = list(reversed(pending))
                if ".." in rest and _depth < 2:
                    return self.resolve(_join_missing(parts, [name, *rest]), _depth + 1)
                return _join_missing(parts, [name, *rest]), None
            if stat.S_ISLNK(found.st.st_mode):
                links += 1
                if links > _MAX_LINKS:
                    raise InvalidArgument(f"too many levels of symbolic links resolving {path} in the image")
                target = self.readlink(found, rel)
                if target.startswith("/"):
                    parts, chain = [], [chain[0]]
                pending.extend(reversed([c for c in target.split("/") if c not in ("", ".")]))
                continue
            if pending and not stat.S_ISDIR(found.st.st_mode):
                raise InvalidArgument(f"{path}: /{rel} is not a directory in the image")
            parts.append(name)
            chain.append(found)
        return "/".join(parts), chain[-1]


def _join_missing(parts: list[str], missing: list[str]) -> str:
    out = list(parts)
    for name in missing:
        if name == "..":
            if out:
                out.pop()
        elif name not in ("", "."):
            out.append(name)
    return "/".join(out)
