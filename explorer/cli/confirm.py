"""The question every destructive verb asks, answered on stdin, as docker asks it.

The prompt is printed whether or not stdin is a terminal: ``echo n | strata system prune``
and ``</dev/null strata volume prune`` must abort, not delete. Only ``y`` or ``yes``
goes ahead; ``-f/--force`` skips the question.
"""

from __future__ import annotations

import sys


class NotConfirmed(Exception):
    """The question was not answered yes; ``at_eof``: there was no answer at all."""

    def __init__(self, at_eof: bool) -> None:
        super().__init__("end of input" if at_eof else "answered no")
        self.at_eof = at_eof


def confirm(what: str, force: bool) -> None:
    """Ask ``WARNING! This will remove: …`` and raise NotConfirmed unless the answer is yes."""
    if force:
        return
    sys.stdout.write(f"WARNING! This will remove:\n{what}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stdout.write("\n")
        raise NotConfirmed(at_eof=True)
    if line.strip().lower() not in ("y", "yes"):
        raise NotConfirmed(at_eof=False)


def refused(err: NotConfirmed) -> int:
    """The exit status (and message) of a prune the user did not confirm."""
    if err.at_eof:
        print("Error: nothing removed: no answer on standard input; use -f to remove without asking", file=sys.stderr)
        return 1
    return 0
