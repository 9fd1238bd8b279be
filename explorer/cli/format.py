"""Terminal formatting the docker CLI users know: sizes, ages, tables."""

from __future__ import annotations

import time
from collections.abc import Sequence


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


def parse_time(rfc3339: str) -> float | None:
    if not rfc3339:
        return None
    text = rfc3339.rstrip("Z")
    if "." in text:
        head, frac = text.split(".", 1)
        frac = "".join(c for c in frac if c.isdigit())[:6]
        text = f"{head}.{frac}"
    if "+" in text[10:]:
        text = text[: 10 + text[10:].index("+")]
    try:
        fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
        from datetime import datetime

        return datetime.strptime(text, fmt).timestamp() - time.timezone
    except ValueError:
        return None


def human_ago(seconds_or_rfc: float | str | None) -> str:
    ts = parse_time(seconds_or_rfc) if isinstance(seconds_or_rfc, str) else seconds_or_rfc
    if ts is None or ts <= 0:
        return "N/A"
    d = max(0.0, time.time() - ts)
    if d < 1:
        return "Less than a second ago"
    if d < 60:
        return f"{int(d)} seconds ago"
    if d < 3600:
        m = int(d / 60)
        return "About a minute ago" if m == 1 else f"{m} minutes ago"
    if d < 86400 * 2:
        h = int(d / 3600)
        return "About an hour ago" if h == 1 else f"{h} hours ago"
    if d < 86400 * 14:
        return f"{int(d / 86400)} days ago"
    if d < 86400 * 60:
        return f"{int(d / 86400 / 7)} weeks ago"
    if d < 86400 * 365 * 2:
        return f"{int(d / 86400 / 30)} months ago"
    return f"{int(d / 86400 / 365)} years ago"


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


def mode_string(kind: str, mode: int) -> str:
    """``drwxr-xr-x``-style rendering including setuid/setgid/sticky."""
    first = {"dir": "d", "symlink": "l", "char": "c", "block": "b", "fifo": "p", "socket": "s",
             "whiteout": "c", "hardlink": "h"}.get(kind, "-")
    chars = []
    for shift, special, letter in ((6, 0o4000, "s"), (3, 0o2000, "s"), (0, 0o1000, "t")):
        bits = (mode >> shift) & 7
        r = "r" if bits & 4 else "-"
        w = "w" if bits & 2 else "-"
        x = "x" if bits & 1 else "-"
        if mode & special:
            x = letter if bits & 1 else letter.upper()
        chars.append(r + w + x)
    return first + "".join(chars)
