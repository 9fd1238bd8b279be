"""Copying files out of a union view onto the host (extract, drag to the desktop).

What comes out of an image is untrusted: names are taken one component at a time, never
``..``; files are created with ``O_EXCL | O_NOFOLLOW`` so a symlink planted in the
destination cannot redirect a write; symlinks are recreated as links, never followed;
device nodes and whiteouts are skipped. Permissions keep their rwx bits without
setuid/setgid.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..api.model import UnionView

CHUNK = 1 << 20


def _safe_name(name: str) -> str:
    if name in ("", ".", "..") or "/" in name or "\0" in name:
        raise InvalidArgument(f"refusing to write a file named {name!r}")
    return name


def unique_target(directory: Path, name: str) -> Path:
    """``directory/name``, or ``name (2)`` … when that exists already."""
    target = directory / _safe_name(name)
    n = 2
    stem, dot, ext = name.partition(".") if not name.startswith(".") else (name, "", "")
    while target.exists() or target.is_symlink():
        target = directory / (f"{stem} ({n}){dot}{ext}")
        n += 1
    return target


def extract(view: UnionView, path: str, dest: Path, check: Callable[[], None] | None = None) -> Path:
    """Copy ``path`` (a file or a whole directory) from ``view`` into directory ``dest``;
    returns what was written."""
    hit = view.lookup(path)
    if hit is None:
        raise InvalidArgument(f"{path}: no such file in this view")
    target = unique_target(dest, posixpath.basename(path) or "root")
    if hit.entry.type != "dir":
        _write_one(view, path, hit.entry.type, hit.entry.mode, hit.entry.link, target)
        return target
    prefix = path.rstrip("/") + "/"
    target.mkdir(mode=0o755)
    for entry in view.walk():
        if not entry.path.startswith(prefix):
            continue
        if check:
            check()
        rel = entry.path[len(prefix):]
        out = target
        for part in rel.split("/"):
            out = out / _safe_name(part)
        e = entry.entry
        if e.type == "dir":
            out.mkdir(mode=0o755, exist_ok=True)
            continue
        _write_one(view, entry.path, e.type, e.mode, e.link, out)
    return target


def _write_one(view: UnionView, path: str, kind: str, mode: int, link: str | None, target: Path) -> None:
    if kind == "symlink":
        os.symlink(link or "", target)
        return
    if kind not in ("file", "hardlink"):
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with view.open(path) as src, os.fdopen(fd, "wb", closefd=False) as out:
            while True:
                block = src.read(CHUNK)
                if not block:
                    break
                out.write(block)
        with contextlib.suppress(OSError):
            os.fchmod(fd, (mode & 0o777) | 0o600)
    finally:
        os.close(fd)


def read_head(view: UnionView, path: str, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of a file and its full size."""
    hit = view.lookup(view.resolve_path(path))
    size = hit.entry.size if hit is not None else 0
    with view.open(path) as f:
        return f.read(limit), size
