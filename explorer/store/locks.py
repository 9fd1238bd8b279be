"""Store-wide locking between writers and collectors.

Lock order, outermost first (never take them the other way round):

1. ``gc.lock`` — shared by every operation that creates or uses layers (build, load,
   pull, commit, create); exclusive for operations that delete layers (rmi, prunes,
   check --repair). A prune therefore waits for running builds instead of deleting the
   layers they stand on (the podman/moby race), and an ``rmi`` of a build's base waits
   for the build to finish. Opening a store only tries it, exclusive and without
   waiting (``gc_lock_if_idle``), to know whether unmarked staging can be a crash's.
2. SQLite's own write lock, taken by ``Metadata.transaction`` (BEGIN IMMEDIATE) and
   held only for one transaction; with a busy timeout, so writers queue instead of
   failing with "database is locked".

``flock`` locks belong to an open file description: each thread opens its own, so
threads of one process (the GUI's workers) exclude each other like processes do, and a
thread that already holds the lock may nest further sections of the same or weaker kind.
"""

from __future__ import annotations

import contextlib
import errno
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
    fd = _open_lock_file(root)
    if fd < 0:
        # A store nobody can write (read-only media or mount): no collector can delete
        # anything there either, so there is nothing to exclude.
        yield
        return
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


@contextlib.contextmanager
def gc_lock_if_idle(root: Path) -> Iterator[bool]:
    """The gc lock, exclusive, if nobody holds it right now: yields True with it held,
    or False at once without waiting.

    Opening the store uses it to tell leftovers from work in progress: while no
    operation holds the lock (each that stages anything holds it at least shared), a
    staging directory without its owner mark cannot be one a writer has just made and is
    about to mark, so it is a crash's and may go."""
    key = (str(root), threading.get_ident())
    with _state_lock:
        held = _held.get(key)
        if held is not None and held[1] == "ex":
            _held[key] = (held[0], held[1], held[2] + 1)
    if held is not None:
        if held[1] != "ex":
            yield False
            return
        try:
            yield True
        finally:
            _release(key)
        return
    fd = _open_lock_file(root)
    if fd < 0:
        yield False
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    except BaseException:
        os.close(fd)
        raise
    with _state_lock:
        _held[key] = (fd, "ex", 1)
    try:
        yield True
    finally:
        _release(key)


def _open_lock_file(root: Path) -> int:
    """The lock file's descriptor, or -1 when the store is read-only and has none.
    ``flock`` works on a read-only descriptor, so an existing file is used either way."""
    path = root / "gc.lock"
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as err:
        if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return -1


def _release(key: tuple[str, int]) -> None:
    with _state_lock:
        fd, mode, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, mode, depth - 1)
            return
        del _held[key]
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
