"""Terminal plumbing for ``-t``: the pseudo-terminal is allocated inside the
container (its own devpts), its master is handed out over a unix socket and the
monitor process relays it to the caller's stdin/stdout.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import tty as _tty
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import socket


def get_winsize(fd: int | None) -> bytes | None:
    if fd is None:
        return None
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def set_winsize(fd: int, size: bytes | None) -> None:
    if size is not None and struct.unpack("HHHH", size)[:2] != (0, 0):
        with contextlib.suppress(OSError):
            fcntl.ioctl(fd, termios.TIOCSWINSZ, size)


def _socket_module() -> Any:
    """``socket``, loaded by whoever made the socket pair (before fork, for ``-t``
    only). send_fd runs after pivot_root, where an import would read the
    container's files, so it takes the module from sys.modules."""
    return sys.modules["socket"]


def send_fd(sock: socket.socket, fd: int) -> None:
    _socket_module().send_fds(sock, [b"m"], [fd])


def recv_fd(sock: socket.socket) -> int | None:
    try:
        _msg, fds, _flags, _addr = _socket_module().recv_fds(sock, 1, 1)
    except OSError:
        return None
    return fds[0] if fds else None


def make_controlling(slave: int) -> None:
    """New session with the pty as its controlling terminal, on stdin/out/err."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
    if slave > 2:
        os.close(slave)


@contextlib.contextmanager
def raw_mode(fd: int | None) -> Iterator[None]:
    """The caller's terminal in raw mode while relaying, so ^C reaches the container."""
    if fd is None or not os.isatty(fd):
        yield
        return
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield
        return
    try:
        _tty.setraw(fd)
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


def relay(master: int, in_fd: int | None, out_fd: int, child_pidfd: int) -> None:
    """Copy in_fd → master and master → out_fd until the child exits and its
    output is drained. Window-size changes of the caller's terminal follow."""

    def on_winch(_sig: int, _frame: object) -> None:
        set_winsize(master, get_winsize(out_fd) or get_winsize(in_fd))

    old = signal.signal(signal.SIGWINCH, on_winch) if os.isatty(out_fd) else None
    watch_in = in_fd is not None
    try:
        with raw_mode(in_fd):
            while True:
                fds = [master, child_pidfd] + ([in_fd] if watch_in and in_fd is not None else [])
                ready, _w, _x = select.select(fds, [], [])
                if master in ready and not _pump(master, out_fd):
                    return
                if watch_in and in_fd is not None and in_fd in ready:
                    data = os.read(in_fd, 65536)
                    if data:
                        _write_all(master, data)
                    else:
                        watch_in = False
                if child_pidfd in ready:
                    _drain(master, out_fd)
                    return
    finally:
        if old is not None:
            signal.signal(signal.SIGWINCH, old)


def _pump(master: int, out_fd: int) -> bool:
    try:
        data = os.read(master, 65536)
    except OSError as e:
        if e.errno == errno.EIO:  # every slave end closed
            return False
        raise
    if not data:
        return False
    _write_all(out_fd, data)
    return True


def _drain(master: int, out_fd: int) -> None:
    flags = fcntl.fcntl(master, fcntl.F_GETFL)
    fcntl.fcntl(master, fcntl.F_SETFL, flags | os.O_NONBLOCK)
    with contextlib.suppress(BlockingIOError):
        while _pump(master, out_fd):
            pass
