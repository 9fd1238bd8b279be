"""Write a layer as a canonical tar from its directory and its index.

A layer made here (a build step, a container commit) has no original tar, so its
diff_id is the digest of a tar we write. That tar must depend only on the layer's
content, never on the order of readdir, the clock or the user running Strata:
entries sorted parents-first, mtimes in whole seconds, no user or group names, no
atime/ctime, PAX records only where ustar fields cannot hold a value. The index
supplies modes, owners, times, types and link targets (the disk may not hold them
when rootless); file payload is read from disk, never through a symlink.
"""

from __future__ import annotations

import hashlib
import math
import os
import posixpath
from typing import BinaryIO

from ..errors import SizeMismatch
from . import tarstream as ts
from .index import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK, WHITEOUT, FileEntry
from .tarsplit import COPY, SplitWriter, open_in_tree

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"


class _Out:
    """The tar bytes as written: hashed, counted, and mirrored into a tar-split."""

    def __init__(self, out: BinaryIO, split: SplitWriter | None) -> None:
        self._out = out
        self.split = split
        self.sha = hashlib.sha256()
        self.size = 0

    def raw(self, data: bytes) -> None:
        self._write(data)
        if self.split is not None:
            self.split.raw(data)

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self.sha.update(data)
        self.size += len(data)

    def payload(self, diff_dir: str, entry: FileEntry) -> None:
        rel = entry.path[1:]
        fd = open_in_tree(diff_dir, rel)
        try:
            have = os.fstat(fd).st_size
            if have != entry.size:
                raise SizeMismatch(f"{diff_dir}{entry.path}", entry.size, have)
            if self.split is not None and entry.size:
                self.split.payload(rel, entry.size)
            left = entry.size
            while left:
                chunk = os.read(fd, min(COPY, left))
                if not chunk:
                    raise SizeMismatch(f"{diff_dir}{entry.path}", entry.size, entry.size - left)
                self._write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)


def _sort_key(entry: FileEntry) -> list[str]:
    return entry.path.split("/")


def write_layer_tar(
    diff_dir: str,
    entries: list[FileEntry],
    out: BinaryIO,
    tarsplit_path: str | None = None,
) -> tuple[str, int]:
    """Write the canonical tar of a layer to ``out``; returns ``(diff_id, size)``.

    With ``tarsplit_path`` the matching tar-split is written too, so the layer can
    later be exported byte for byte without this function.
    """
    split = SplitWriter(tarsplit_path) if tarsplit_path else None
    try:
        w = _Out(out, split)
        for e in sorted(entries, key=_sort_key):
            if e.path == "/":
                continue
            _write_entry(w, diff_dir, e)
        w.raw(ts.END_OF_ARCHIVE)
        if split is not None:
            split.close()
    except BaseException:
        if split is not None:
            split.abort()
        raise
    return "sha256:" + w.sha.hexdigest(), w.size


def _write_entry(w: _Out, diff_dir: str, e: FileEntry) -> None:
    rel = e.path[1:]

    def header(name: str, flag: str, *, size: int = 0, linkname: str = "") -> bytes:
        return ts.build_header(
            name,
            flag,
            mode=e.mode,
            uid=e.uid,
            gid=e.gid,
            size=size,
            mtime=math.floor(e.mtime),
            linkname=linkname,
            devmajor=e.devmajor if e.type in (CHAR, BLOCK) else 0,
            devminor=e.devminor if e.type in (CHAR, BLOCK) else 0,
        )

    if e.type == DIR:
        w.raw(header(rel + "/", ts.DIR))
        if e.opaque:
            w.raw(header(f"{rel}/{WH_OPAQUE}", ts.REG))
    elif e.type == FILE:
        w.raw(header(rel, ts.REG, size=e.size))
        w.payload(diff_dir, e)
        w.raw(ts.padding(e.size))
    elif e.type == HARDLINK:
        w.raw(header(rel, ts.LNK, linkname=(e.link or "").lstrip("/")))
    elif e.type == SYMLINK:
        w.raw(header(rel, ts.SYM, linkname=e.link or ""))
    elif e.type in (CHAR, BLOCK):
        w.raw(header(rel, ts.CHR if e.type == CHAR else ts.BLK))
    elif e.type == FIFO:
        w.raw(header(rel, ts.FIFO))
    elif e.type == WHITEOUT:
        parent, name = posixpath.split(rel)
        w.raw(header(posixpath.join(parent, WH_PREFIX + name), ts.REG))
    elif e.type == SOCKET:
        return  # a tar cannot hold a socket; docker drops them too
    else:
        raise ValueError(f"unknown index entry type {e.type!r} at {e.path}")
