"""Copying files out of a union view onto the host (extract, drag to the desktop).

The copy is the API's (``api/export.py``, over the store's one export): names one
component at a time, no symlink followed in or out of the destination, files created
``O_EXCL | O_NOFOLLOW``, devices skipped, no setuid or setgid. The window only picks a
name that is free in the folder the user chose.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..api.export import export_to_host
from ..errors import InvalidArgument

if TYPE_CHECKING:
    from ..api.model import UnionView


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


def extract(view: UnionView, path: str, dest: Path, check: Callable[[], None] | None = None, name: str = "") -> Path:
    """Copy ``path`` (a file or a whole directory) from ``view`` into directory ``dest``,
    named ``name`` (its own name by default); returns what was written."""
    if path != "/" and view.lookup(path) is None:
        raise InvalidArgument(f"{path}: no such file in this view")
    target = unique_target(dest, name or posixpath.basename(path) or "root")
    export_to_host(view, path, target, check)
    return target


def read_head(view: UnionView, path: str, limit: int) -> tuple[bytes, int]:
    """The first ``limit`` bytes of a file and its full size."""
    hit = view.lookup(view.resolve_path(path))
    size = hit.entry.size if hit is not None else 0
    with view.open(path) as f:
        return f.read(limit), size
