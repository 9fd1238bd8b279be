"""``quarantine/``: what a repair could neither rebuild nor prove to be garbage.

``system check --repair`` never deletes data it cannot account for: a damaged database,
a container directory no record survived for, a layer whose content cannot be read back
are moved here (a rename on the store's own file system, so it costs no space and no
time), one directory per repair named by its time. ``system df`` shows how much it
holds; the user looks inside and removes it with ``strata system prune --quarantine``
(which deletes through the store's user namespace, where files of subordinate ids that
a rootless container wrote can be removed: the host view cannot).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..fsutil import dir_size

NAME = "quarantine"


@dataclass(frozen=True)
class QuarantineEntry:
    """One repair's directory: what it holds at its top level and how many bytes."""

    path: Path
    items: int
    size: int


def new_bin(root: Path) -> Path:
    """A fresh directory for one repair's leftovers (made on first use)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return root / NAME / f"{stamp}-{os.getpid()}"


def move_in(root: Path, bin_dir: Path, path: Path) -> Path:
    """Move ``path`` (somewhere under ``root``) into ``bin_dir``, keeping its place
    relative to the root (``containers/<id>`` stays ``containers/<id>``)."""
    target = bin_dir / path.relative_to(root)
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.rename(path, target)
    return target


def entries(root: Path) -> list[QuarantineEntry]:
    base = root / NAME
    try:
        names = sorted(os.listdir(base))
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        path = base / name
        try:
            items = sum(len(files) + len(dirs) for _p, dirs, files in os.walk(path) if _p == str(path))
        except OSError:
            items = 0
        out.append(QuarantineEntry(path, items, dir_size(path)))
    return out
