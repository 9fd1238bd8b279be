"""An image's final file tree, read the way a loader reads it: from the layer tars of a
saved image (``docker save`` / ``strata save``), applied in order with overlay whiteouts.

Both builders' images and Strata's are read by this one function, so the comparison does not
depend on either side's listing code; Strata's own listing (``strata ls -R --json``) is then
checked against it separately (`listing_disagreements`).

A tree maps absolute paths to `Node`s. Names that share an inode are told apart as a tar
does: the first in path order is a ``file``, the others ``hardlink``s to it; every name of
the group carries the size and digest of the data, as ``ls -l`` shows.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Any

_TYPES = {
    tarfile.REGTYPE: "file",
    tarfile.AREGTYPE: "file",
    tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink",
    tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block",
    tarfile.FIFOTYPE: "fifo",
}
_OPAQUE = ".wh..wh..opq"
_WHITEOUT = ".wh."


@dataclass(frozen=True)
class Node:
    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    link: str | None = None
    sha256: str | None = None

    def show(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        out["mode"] = f"{self.mode:04o}"
        return out


@dataclass
class _Slot:
    node: Node
    inode: int  # names with the same number are one inode (regular files only)


Tree = dict[str, Node]


def image_tree(archive: Path) -> tuple[Tree, dict[str, int]]:
    """The merged tree of the one image in a saved archive, and each file's inode number
    (shared by hard-linked names)."""
    with tarfile.open(archive) as outer:
        manifest = json.load(_member(outer, "manifest.json"))
        if len(manifest) != 1:
            raise ValueError(f"{archive}: holds {len(manifest)} images, expected one")
        layers = [_member(outer, name) for name in manifest[0]["Layers"]]
        return merge_layers(layers)


def tar_tree(archive: Path) -> Tree:
    """The tree of a flat root filesystem tar (the base image's input)."""
    with archive.open("rb") as fh:
        return merge_layers([fh])[0]


def _member(outer: tarfile.TarFile, name: str) -> IO[bytes]:
    fh = outer.extractfile(name)
    if fh is None:
        raise ValueError(f"archive member {name} is not a file")
    return fh


def merge_layers(layers: Iterable[IO[bytes]]) -> tuple[Tree, dict[str, int]]:
    slots: dict[str, _Slot] = {}
    counter = 0
    for fh in layers:
        written: set[str] = set()
        with tarfile.open(fileobj=fh, mode="r:*") as layer:
            for info in layer:
                path = _absolute(info.name)
                if path == "/":
                    continue
                parent, base = posixpath.split(path)
                if base == _OPAQUE:
                    for victim in [p for p in slots if _under(p, parent) and p not in written]:
                        del slots[victim]
                    continue
                if base.startswith(_WHITEOUT):
                    gone = posixpath.join(parent, base[len(_WHITEOUT) :])
                    for victim in [p for p in slots if p == gone or _under(p, gone)]:
                        del slots[victim]
                    continue
                kind = _TYPES.get(info.type)
                if kind is None:
                    raise ValueError(f"{info.name!r}: tar type {info.type!r}")
                old = slots.get(path)
                if old is not None and old.node.type == "dir" and kind != "dir":
                    for victim in [p for p in slots if _under(p, path)]:
                        del slots[victim]
                written.add(path)
                mode = info.mode & 0o7777
                if kind == "hardlink":
                    target = slots.get(_absolute(info.linkname))
                    if target is None:
                        raise ValueError(f"{info.name!r}: hard link to {info.linkname!r}, not in the layer")
                    slots[path] = _Slot(target.node, target.inode)
                    continue
                counter += 1
                if kind == "file":
                    data = layer.extractfile(info)
                    digest = hashlib.sha256(data.read() if data is not None else b"").hexdigest()
                    node = Node("file", mode, info.uid, info.gid, info.size, None, digest)
                elif kind == "symlink":
                    node = Node("symlink", mode, info.uid, info.gid, 0, info.linkname)
                else:
                    node = Node(kind, mode, info.uid, info.gid)
                slots[path] = _Slot(node, counter)
    return _name_links(slots), {p: s.inode for p, s in slots.items() if s.node.type == "file"}


def _name_links(slots: Mapping[str, _Slot]) -> Tree:
    first: dict[int, str] = {}
    tree: Tree = {}
    for path in sorted(slots):
        slot = slots[path]
        if slot.node.type != "file":
            tree[path] = slot.node
        elif slot.inode in first:
            tree[path] = replace(slot.node, type="hardlink", link=first[slot.inode])
        else:
            first[slot.inode] = path
            tree[path] = slot.node
    return tree


def _absolute(name: str) -> str:
    # Only a leading "./" goes: lstrip("./") would also eat the dot of a root-level ".wh.x"
    # whiteout or of a dotfile such as "/.profile".
    while name.startswith("./"):
        name = name[2:]
    return posixpath.normpath("/" + name.lstrip("/")) if name not in ("", ".") else "/"


def _under(path: str, directory: str) -> bool:
    return path.startswith(directory.rstrip("/") + "/")


@dataclass(frozen=True)
class Changes:
    """What an image's tree changed over its base: paths added or altered, and paths gone."""

    changed: Mapping[str, Node]
    removed: frozenset[str]

    def differences(self, other: Changes, ours: str = "strata", theirs: str = "docker") -> list[str]:
        """Readable lines, one per path where the two disagree."""
        out: list[str] = []
        for path in sorted(set(self.changed) | set(other.changed)):
            mine, yours = self.changed.get(path), other.changed.get(path)
            if mine != yours:
                a = mine.show() if mine else ("removed" if path in self.removed else "as in base")
                b = yours.show() if yours else ("removed" if path in other.removed else "as in base")
                out.append(f"{path}: {ours} {a} / {theirs} {b}")
        for path in sorted(self.removed ^ other.removed):
            if path not in self.changed and path not in other.changed:
                who = ours if path in self.removed else theirs
                out.append(f"{path}: removed only by {who}")
        return out


def changes_over(base: Tree, tree: Tree) -> Changes:
    return Changes(
        changed={p: n for p, n in tree.items() if base.get(p) != n},
        removed=frozenset(p for p in base if p not in tree),
    )


def expectation_failures(tree: Tree, inodes: Mapping[str, int], expect: Mapping[str, Any]) -> list[str]:
    """How `tree` misses the case's ``paths``/``absent``/``same_inode``/``distinct_inode``."""
    out: list[str] = []
    for path, want in expect.get("paths", {}).items():
        node = tree.get(path)
        if node is None:
            out.append(f"{path}: missing (want {want})")
            continue
        got = node.show()
        for key, value in want.items():
            if key == "content":
                digest = hashlib.sha256(str(value).encode("utf-8")).hexdigest()
                if node.sha256 != digest:
                    out.append(f"{path}: content has sha256 {node.sha256}, want {value!r} ({digest})")
            elif key == "mode":
                if node.mode != int(str(value), 8):
                    out.append(f"{path}: mode {got['mode']}, want {value}")
            elif key == "sha256":
                if node.sha256 != str(value).removeprefix("sha256:"):
                    out.append(f"{path}: sha256 {node.sha256}, want {value}")
            elif got.get(key) != value:
                out.append(f"{path}: {key} {got.get(key)!r}, want {value!r}")
    for path in expect.get("absent", []):
        if path in tree:
            out.append(f"{path}: present ({tree[path].show()}), want absent")
    for a, b in expect.get("same_inode", []):
        if a not in inodes or b not in inodes or inodes[a] != inodes[b]:
            out.append(f"{a} and {b}: not one inode")
    for a, b in expect.get("distinct_inode", []):
        if a in inodes and b in inodes and inodes[a] == inodes[b]:
            out.append(f"{a} and {b}: one inode, want two")
    return out


def listing_disagreements(tree: Tree, listing: Iterable[Mapping[str, Any]]) -> list[str]:
    """Where ``strata ls -R --json`` (rows) disagrees with the tree its layers make."""
    rows = {str(r["path"]): r for r in listing}
    groups: dict[str, list[str]] = {}
    for path, listed in rows.items():
        if listed["type"] == "hardlink":
            groups.setdefault(str(listed["link"]), [str(listed["link"])]).append(path)
    first = {name: min(names) for names in groups.values() for name in names}
    out: list[str] = []
    for path in sorted(set(rows) | set(tree)):
        found, node = rows.get(path), tree.get(path)
        if found is None or node is None:
            out.append(f"{path}: {'only in the layers' if found is None else 'only in strata ls -R'}")
            continue
        row = found
        kind, link = str(row["type"]), row["link"]
        if path in first:
            kind, link = ("file", None) if first[path] == path else ("hardlink", first[path])
        seen = (kind, int(row["mode"]), int(row["uid"]), int(row["gid"]), int(row["size"]), link)
        want = (node.type, node.mode, node.uid, node.gid, node.size, node.link)
        if seen != want:
            out.append(f"{path}: strata ls -R {seen} / layers {want}")
    return out


def directory_disagreements(
    recursive: Iterable[Mapping[str, Any]], list_dir: Callable[[str], Iterable[Mapping[str, Any]]]
) -> list[str]:
    """Where listing one directory (``strata ls IMAGE DIR``) disagrees with what the
    recursive listing shows directly in it: the two must always agree (issue 15)."""
    rows = {str(r["path"]): dict(r) for r in recursive}
    children: dict[str, dict[str, dict[str, Any]]] = {"/": {}}
    for path, row in rows.items():
        children.setdefault(posixpath.dirname(path), {})[path] = row
    out: list[str] = []
    for directory in [*sorted(p for p, r in rows.items() if r["type"] == "dir"), "/"]:
        listed = {str(r["path"]): dict(r) for r in list_dir(directory)}
        want = children.get(directory, {})
        for path in sorted(set(listed) | set(want)):
            if path not in want:
                out.append(f"{path}: in strata ls {directory}, not in strata ls -R")
            elif path not in listed:
                out.append(f"{path}: in strata ls -R, not in strata ls {directory}")
            elif listed[path] != want[path]:
                out.append(f"{path}: strata ls {directory} {listed[path]} / strata ls -R {want[path]}")
    return out
