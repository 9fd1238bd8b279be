"""Store-wide locking between writers and collectors.

Lock order, outermost first (never take them the other way round):

1. ``gc.lock`` — shared by every operation that creates or uses layers (build, load,
   pull, commit, create); exclusive for operations that delete layers (rmi, prunes,
   check --repair). A prune therefore waits for running builds instead of deleting the
   layers they stand on (the podman/moby race), and an ``rmi`` of a build's base waits
   for the build to finish.
2. SQLite's own write lock, taken by ``Metadata.transaction`` (BEGIN IMMEDIATE) and
   held only for one transaction; with a busy timeout, so writers queue instead of
   failing with "database is locked".

``flock`` locks belong to an open file description: each thread opens its own, so
threads of one process (the GUI's workers) exclude each other like processes do, and a
thread that already holds the lock may nest further sections of the same or weaker kind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

_state_lock = threading.Lock()
_held: dict[tuple[str, int], tuple[int, str, int]] = {}  # (root, thread) -> (fd, mode, depth)


@contextlib.contextmanager
def gc_lock(root: Path, exclusive: bool = False) -> Iterator[None]:
    key = (str(root), threading.get_ident())
    want = "ex" if exclusive else "sh"
    with _state_lock:
        held = _held.get(key)
        if held is not None and (held[1] == "ex" or held[1] == want):
            _held[key] = (held[0], held[1], held[2] + 1)
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield
        finally:
            _release(key)
        return
    if held is not None:
        # Upgrading would deadlock against ourselves: a programming error.
        raise RuntimeError("gc lock upgrade from shared to exclusive in one thread")
    fd = os.open(root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except BaseException:
        os.close(fd)
        raise
    with _state_lock:
        _held[key] = (fd, want, 1)
    try:
        yield
    finally:
        _release(key)


def _release(key: tuple[str, int]) -> None:
    with _state_lock:
        fd, mode, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, mode, depth - 1)
            return
        del _held[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
