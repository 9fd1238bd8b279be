"""Ownership marks on directories being written, so a crash can be told from work in
progress: a writer puts its pid in ``owner`` and removes it after its metadata commit."""

from __future__ import annotations

import os
from pathlib import Path


def _owner(path: Path) -> int:
    try:
        return int((path / "owner").read_text().strip())
    except (OSError, ValueError):
        return 0


def mark_owner(path: Path) -> None:
    """Mark ``path`` as being written by this process (see ``Store.clean_staging``)."""
    (path / "owner").write_text(f"{os.getpid()}\n")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
