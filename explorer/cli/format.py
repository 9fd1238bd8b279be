"""Terminal formatting the docker CLI users know: sizes, ages, tables."""

from __future__ import annotations

import stat
from collections.abc import Sequence

from ..timestamps import human_ago as human_ago  # one parser for RFC 3339 and epoch times


def human_size(n: float) -> str:
    """docker's units.HumanSize: decimal units, 3 significant digits (``4.28MB``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    text = f"{n:.3g}"
    if "e" in text:
        text = f"{n:.0f}"
    return f"{text}{units[i]}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by at least three spaces, like docker's tabwriter output."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)


def truncate(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


_TYPE_LETTERS = {
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "whiteout": stat.S_IFCHR,
}


def mode_string(kind: str, mode: int) -> str:
    """``drwxr-xr-x``-style rendering including setuid/setgid/sticky; a hard link to an
    earlier file of the same layer shows ``h`` where ``ls`` would show ``-``."""
    text = stat.filemode(_TYPE_LETTERS.get(kind, stat.S_IFREG) | (mode & 0o7777))
    return ("h" + text[1:]) if kind == "hardlink" else text
