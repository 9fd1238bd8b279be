"""Applying a verb to several names as docker does: every name is tried, each failure
is one line on stderr, and the exit status says whether any failed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from ..errors import StrataError


def each(names: Iterable[str], action: Callable[[str], object], forgiven: tuple[type[StrataError], ...] = ()) -> int:
    """``forgiven`` errors are told but do not fail the verb (``rmi -f`` of a missing
    image, as docker's)."""
    status = 0
    for name in names:
        try:
            action(name)
        except StrataError as e:
            print(f"Error: {e}", file=sys.stderr)
            if not isinstance(e, forgiven):
                status = 1
    return status


def print_lines(lines: Iterable[str]) -> None:
    for line in lines:
        print(line)
