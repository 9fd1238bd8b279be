"""A deadline and a cancel path for every wait on a process the runtime forked.

A helper inside a root or a user namespace, or an exec on its way into a container, can
stall for reasons no caller controls: a hung mount under the path it works on, a FIFO
opened where a file was expected, a container that changed under it. Whoever waits for
its reply (a pipe read, a process wait) would wait for ever. So each such child is
*watched* by a small thread of the caller's, which kills the child's whole process tree

* when ``cancel`` is set (the GUI's Cancel, a caller giving up), at once; or
* when the child has made no progress for ``idle`` seconds.

Progress is the child tree's own CPU time (``/proc/PID/schedstat``, which the kernel shows
even for the non-dumpable helpers), or one of its processes being runnable (a busy machine
may keep it waiting for a CPU): a copy of a large tree, a scan or a removal keep using it,
however long they take; a process blocked in a read, an open or a hung file system does
not. A child that waits for *us* is not stalled, though: for each pipe it shares with
the caller (``pipes``, the descriptors handed to it) the watch keeps a duplicate and asks
the kernel what is buffered; a pipe the child reads from standing empty, or one it writes
to standing unread, means the other side is the slow one (a pager on ``cp … -``, a slow
source), and the clock does not run.

Killing the tree closes every pipe the child held, so the waiting caller's read ends or
its write fails at once; it then asks ``check`` what happened and raises ``Cancelled`` or
``HelperStalled`` instead of a broken-pipe error. The duplicates are closed the moment
the child exits (the thread waits on a pidfd), so they never hold a pipe open beyond it.

The thread touches nothing but descriptors and ``/proc`` (no Python locks a forked child
could inherit held), so it is safe beside the runtime's forks.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import signal
import stat
import termios
import threading
import time
from collections.abc import Iterable

from ..errors import Cancelled, HelperStalled

IDLE_TIMEOUT_S = 60.0  # no progress for this long: the helper is stalled
POLL_S = 0.1  # how often cancel and progress are looked at


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096)
    except OSError:
        return b""
    finally:
        os.close(fd)


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents first (from ``/proc/PID/task/*/children``)."""
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in out:
            continue
        out.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            todo += [int(p) for p in _read(f"/proc/{current}/task/{task}/children").split()]
    return out


def cpu_time(pids: Iterable[int]) -> int:
    """Nanoseconds on a CPU, summed over ``pids`` (clock ticks from ``stat`` where
    ``schedstat`` is missing)."""
    total = 0
    for pid in pids:
        data = _read(f"/proc/{pid}/schedstat")
        if data:
            total += int(data.split()[0])
            continue
        data = _read(f"/proc/{pid}/stat")
        if data:
            fields = data[data.rindex(b")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) * 10_000_000
    return total


def runnable(pids: Iterable[int]) -> bool:
    """One of ``pids`` is running or waiting for a CPU (state R): on a busy machine a
    process can go a while without CPU time and still not be stalled."""
    for pid in pids:
        data = _read(f"/proc/{pid}/stat")
        if data and data[data.rindex(b")") + 2 :][:1] == b"R":
            return True
    return False


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and everything below it (listed first: once the parent dies its
    children would be reparented out of reach)."""
    for member in tree(pid):
        with contextlib.suppress(OSError):
            os.kill(member, signal.SIGKILL)


class _Pipe:
    """A duplicate of a pipe end the child holds, to see whose turn it is."""

    def __init__(self, fd: int) -> None:
        self.fd = os.dup(fd)
        self.child_reads = fcntl.fcntl(self.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY

    def buffered(self) -> int:
        count = array.array("i", [0])
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, count)
        except OSError:
            return 0
        return count[0]

    def waits_for_us(self) -> bool:
        """The child is waiting on the caller: nothing to read, or what it wrote unread."""
        return self.buffered() == 0 if self.child_reads else self.buffered() > 0


def _pipes(fds: Iterable[int]) -> list[_Pipe]:
    out = []
    for fd in fds:
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                out.append(_Pipe(fd))
        except OSError:
            continue
    return out


class Watch:
    """Watches one child (``follow``) until ``close``; see the module docstring."""

    def __init__(self, what: str, idle: float | None = IDLE_TIMEOUT_S, cancel: threading.Event | None = None) -> None:
        self.what = what
        self.idle = idle
        self.cancel = cancel
        self.reason: str | None = None  # "cancelled" or "stalled" once it stopped the child
        self._done = threading.Event()
        self._wake = (-1, -1)  # a pipe ``close`` writes to, so the thread stops at once
        self._thread: threading.Thread | None = None
        self._pidfd = -1
        self._pipes: list[_Pipe] = []
        self._settled = False

    def follow(self, pid: int, pipes: Iterable[int] = ()) -> None:
        """Start watching ``pid``; ``pipes`` are descriptors (of ours) the child holds too."""
        if self.idle is None and self.cancel is None:
            return
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:
            return  # it is gone already: nothing to watch
        self._pipes = _pipes(pipes)
        self._wake = os.pipe()
        self._thread = threading.Thread(target=self._run, args=(pid,), name="strata-watch", daemon=True)
        self._thread.start()

    def settle(self) -> None:
        """From now on only ``cancel`` stops the child: it is a user's process now (an
        exec'd program may idle as long as it likes)."""
        self._settled = True

    def close(self) -> None:
        """Stop watching (the child is done or being given up on)."""
        self._done.set()
        if self._thread is not None:
            with contextlib.suppress(OSError):
                os.write(self._wake[1], b"x")
            self._thread.join()
        self._thread = None
        self._release()
        for fd in (self._pidfd, *self._wake):
            if fd >= 0:
                os.close(fd)
        self._pidfd, self._wake = -1, (-1, -1)

    def check(self) -> None:
        """Raise what stopped the child, if the watch did."""
        if self.reason == "cancelled":
            raise Cancelled(self.what)
        if self.reason == "stalled":
            raise HelperStalled(self.what, self.idle or 0.0)

    def _release(self) -> None:
        pipes, self._pipes = self._pipes, []
        for pipe in pipes:
            with contextlib.suppress(OSError):
                os.close(pipe.fd)

    def _run(self, pid: int) -> None:
        last = cpu_time(tree(pid))
        since = time.monotonic()
        try:
            while not self._done.is_set():
                ready, _w, _x = select.select([self._pidfd, self._wake[0]], [], [], POLL_S)
                if ready:
                    return  # it exited (the duplicates must not keep its pipes open), or close()
                if self.cancel is not None and self.cancel.is_set():
                    self._stop(pid, "cancelled")
                    return
                if self.idle is None or self._settled:
                    continue
                now = time.monotonic()
                members = tree(pid)
                used = cpu_time(members)
                if used != last or runnable(members) or any(pipe.waits_for_us() for pipe in self._pipes):
                    last, since = used, now
                elif now - since >= self.idle:
                    self._stop(pid, "stalled")
                    return
        finally:
            self._release()

    def _stop(self, pid: int, reason: str) -> None:
        self.reason = reason
        kill_tree(pid)
