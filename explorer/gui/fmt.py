"""Text for sizes, times, modes and instructions as the window shows them.

Kept apart from the CLI's formatting on purpose: the window favours binary units and
absolute local times (a table the eye scans), the CLI copies docker's strings.
"""

from __future__ import annotations

import stat
import time
from datetime import datetime

from ..timestamps import epoch

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def size(n: float | None) -> str:
    if n is None:
        return ""
    value = float(n)
    unit = 0
    while abs(value) >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    if unit == 0:
        return f"{int(value)} B"
    return f"{value:.1f} {_UNITS[unit]}" if value < 100 else f"{value:.0f} {_UNITS[unit]}"


def when(ts: float | str | None) -> str:
    """A local, sortable timestamp; accepts epoch seconds or RFC 3339."""
    moment = to_epoch(ts)
    if moment is None:
        return ""
    return datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def to_epoch(ts: float | str | None) -> float | None:
    return epoch(ts)


def ago(ts: float | str | None) -> str:
    moment = to_epoch(ts)
    if moment is None:
        return ""
    d = max(0.0, time.time() - moment)
    if d < 60:
        return "just now"
    if d < 3600:
        return f"{int(d // 60)} min ago"
    if d < 86400:
        return f"{int(d // 3600)} h ago"
    return f"{int(d // 86400)} days ago"


_TYPE_BITS = {
    "file": stat.S_IFREG,
    "hardlink": stat.S_IFREG,
    "dir": stat.S_IFDIR,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "fifo": stat.S_IFIFO,
    "socket": stat.S_IFSOCK,
    "whiteout": stat.S_IFCHR,
}


def mode(kind: str, bits: int) -> str:
    return stat.filemode(_TYPE_BITS.get(kind, stat.S_IFREG) | (bits & 0o7777))


def instruction(created_by: str, limit: int = 0) -> str:
    """The Dockerfile line behind a history entry, without the shell wrapper docker adds."""
    text = " ".join(created_by.split())
    for prefix in ("/bin/sh -c #(nop) ", "/bin/sh -c ", "|"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
            if prefix == "|":
                # "|2 A=1 B=2 /bin/sh -c ..." : build args in effect, then the command
                parts = text.split(" ", 1)
                text = parts[1] if len(parts) > 1 else ""
                return instruction(text, limit)
            break
    if (
        text
        and not text.split(" ", 1)[0].isupper()
        and created_by.startswith("/bin/sh -c ")
        and "#(nop)" not in created_by
    ):
        text = "RUN " + text
    text = text.strip()
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def short_id(value: str, n: int = 12) -> str:
    return value.removeprefix("sha256:")[:n]
