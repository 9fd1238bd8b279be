"""Times as image configs and the store record them, and as people read them.

Image configs carry RFC 3339 text (``2024-05-01T12:00:00.123456789Z`` or with an offset
such as ``+02:00``); the store records epoch seconds. Both the CLI and the window read
both, so the parsing lives here once: a time without an offset is UTC, as Docker writes
it, never the local zone (which would be an hour off in summer), and the fraction may
have nanoseconds, which ``datetime`` does not take.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def parse_rfc3339(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 time, or None when it does not read as one."""
    text = text.strip()
    if not text:
        return None
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, tail = rest[:digits], rest[digits:]
        text = f"{head}.{(fraction or '0')[:6]}{tail}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def epoch(value: float | str | None) -> float | None:
    """Epoch seconds from either form; None for nothing, zero or unreadable text."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_rfc3339(value)
    return float(value) if value > 0 else None


def human_ago(value: float | str | None, now: float | None = None) -> str:
    """``docker ps``/``docker images`` wording for how long ago: "5 minutes ago",
    "About an hour ago"; "N/A" when the time is unknown."""
    moment = epoch(value)
    if moment is None:
        return "N/A"
    return human_duration(max(0.0, (time.time() if now is None else now) - moment)) + " ago"


def human_duration(seconds: float) -> str:
    """Docker's coarse duration words ("Less than a second", "About a minute", "3 days")."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if seconds < 3600:
        return "About a minute" if minutes == 1 else f"{minutes} minutes"
    hours = int(seconds / 3600)
    if seconds < 86400 * 2:
        return "About an hour" if hours == 1 else f"{hours} hours"
    days = int(seconds / 86400)
    if seconds < 86400 * 14:
        return f"{days} days"
    if seconds < 86400 * 60:
        return f"{days // 7} weeks"
    if seconds < 86400 * 365 * 2:
        return f"{days // 30} months"
    return f"{days // 365} years"
