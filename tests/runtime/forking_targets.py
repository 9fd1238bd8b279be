"""Functions the fork tests run in forked children (module-level: the fork server
imports them by name)."""

from __future__ import annotations

import os
import threading

HELD = threading.Lock()  # a lock some thread of the parent may hold when it forks


def needs_the_lock(out: int) -> None:
    """Take ``HELD`` and say so: hangs for ever in a child forked while another thread
    of the parent held it (the child's copy of the lock is held by no one)."""
    with HELD:
        os.write(out, b"took it\n")


def exit_with(code: int, fd: int, text: bytes) -> None:
    os.write(fd, text)
    os._exit(code)
