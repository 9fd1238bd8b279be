"""What a Linux file's metadata can hold, for every reader of archives (layers, ADD, cp).

An archive may claim any owner or time; chown, utime, mknod and SQLite fail on values
outside these with a bare OverflowError, so readers check first and name the entry.
"""

from __future__ import annotations

MAX_ID = (1 << 32) - 2  # uid_t is 32 bits and (uid_t)-1 means "leave unchanged" to chown
MAX_DEVICE = (1 << 32) - 1
# Times are kept as 64-bit nanoseconds (1677-09-21 to 2262-04-11), the range Go's time.UnixNano
# and Docker's Chtimes hold; the index's float seconds and utime carry all of it.
MIN_TIME_NS = -(1 << 63)
END_TIME_NS = 1 << 63


def out_of_range(
    uid: int, gid: int, mtime_ns: int, devmajor: int = 0, devminor: int = 0, *, mtime_text: str = ""
) -> str | None:
    """Why these values fit no file, or None when they fit; ``mtime_text`` is the time as the
    archive wrote it, shown instead of whole seconds when given."""
    for what, value in (("uid", uid), ("gid", gid)):
        if not 0 <= value <= MAX_ID:
            return f"{what} {value} is out of range (0 to {MAX_ID})"
    if not MIN_TIME_NS <= mtime_ns < END_TIME_NS:
        shown = mtime_text if 0 < len(mtime_text) <= 40 else str(mtime_ns // 1_000_000_000)
        return f"mtime {shown} is out of range (years 1677 to 2262)"
    for what, value in (("devmajor", devmajor), ("devminor", devminor)):
        if not 0 <= value <= MAX_DEVICE:
            return f"{what} {value} is out of range (0 to {MAX_DEVICE})"
    return None
