"""Every fork that runs Python in the child goes through here.

The runtime forks and keeps running Python in the child (namespace set-up, the
container's monitor, helpers inside a container's root). In a process with one thread
that is safe. In a process with several (the window runs starts, RUN steps, cp and
edits on worker threads) it is not: a lock another thread held at the moment of the
fork (an import lock, a stream's buffer lock, a library's own) stays held for ever in
the child, which then hangs, and so does whoever waits for it.

So a program that runs the runtime from several threads starts a *fork server* first
(``ensure_server``; the window does, before Qt makes threads), and from then on
``fork_call`` forks directly only while this process has one thread (counted from
``/proc/self/task``, which sees Qt's threads too). Otherwise the
fork happens in the *fork server*: a fresh interpreter (started by ``posix_spawn``-style
``subprocess``, which runs no Python between fork and exec) that has one thread for
ever. A request carries the target (a module-level function), its arguments (pickled:
only our own code is on either side) and the descriptors the child needs, passed with
``SCM_RIGHTS`` and given the same numbers in the child as in the caller, so arguments
that name descriptors stay true. The server reports the child's pid and later its exit
on a socket of the request's own; ``Child.wait`` reads it with a deadline.

The server lives as long as this process: it exits when the control socket closes.
Children it forked are not this process's children; ``Child`` hides the difference.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import RuntimeUnavailable

if TYPE_CHECKING:  # the rest is imported where the server is used: a CLI run forks directly
    import socket
    import subprocess

_MAX_FDS = 64
_lock = threading.Lock()
_server: _Server | None = None


def exit_code_of(status: int) -> int:
    """Docker's convention: the process's own code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Child:
    """A process forked for us, directly (ours to reap) or by the fork server."""

    def __init__(self, pid: int, channel: socket.socket | None = None) -> None:
        self.pid = pid
        self._channel = channel
        self._code: int | None = None

    def wait(self, timeout: float | None = None, cancel: threading.Event | None = None) -> int | None:
        """Its exit code; None when ``timeout`` passed (or ``cancel`` was set) first."""
        if self._code is not None:
            return self._code
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._channel is None:
            return self._wait_own(deadline, cancel)
        buffered = b""
        while not buffered.endswith(b"\n"):
            left = _left(deadline, cancel)
            if left == 0.0:
                return None
            ready, _w, _x = select.select([self._channel], [], [], left)
            if not ready:
                continue
            chunk = self._channel.recv(64)
            if not chunk:
                raise RuntimeUnavailable("the fork server ended before reporting a child's exit")
            buffered += chunk
        self._code = int(buffered.split()[-1])
        self._channel.close()
        self._channel = None
        return self._code

    def _wait_own(self, deadline: float | None, cancel: threading.Event | None) -> int | None:
        if deadline is None and cancel is None:
            self._code = _reap(self.pid)
            return self._code
        fd = os.pidfd_open(self.pid)
        try:
            while True:
                left = _left(deadline, cancel)
                if left == 0.0:
                    return None
                ready, _w, _x = select.select([fd], [], [], left)
                if ready:
                    break
        finally:
            os.close(fd)
        self._code = _reap(self.pid)
        return self._code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self._code is None:
            with contextlib.suppress(OSError):
                os.kill(self.pid, sig)


def _reap(pid: int) -> int:
    while True:
        try:
            _pid, status = os.waitpid(pid, 0)
            return exit_code_of(status)
        except InterruptedError:
            continue


def _left(deadline: float | None, cancel: threading.Event | None) -> float | None:
    """Seconds to wait in one select: 0.0 means stop; polls ``cancel`` every 0.2 s."""
    if cancel is not None and cancel.is_set():
        return 0.0
    if deadline is None:
        return 0.2 if cancel is not None else None
    left = deadline - time.monotonic()
    if left <= 0:
        return 0.0
    return min(left, 0.2) if cancel is not None else left


def fork_call(target: Callable[..., Any], *args: Any, fds: Sequence[int] = ()) -> Child:
    """Run ``target(*args)`` in a forked child that holds ``fds`` (under the same
    numbers) and 0, 1 and 2; the child's exit code is what ``target`` passes to
    ``os._exit`` (0 when it returns)."""
    with _lock:
        server = _server
    if server is None or _one_thread():
        pid = os.fork()
        if pid == 0:
            _run_child(target, args)
        return Child(pid)
    if not server.alive():
        server = ensure_server()
    return server.call(target, args, fds)


def _one_thread() -> bool:
    """This process has one thread: Python's own count misses threads Qt started."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


def ensure_server() -> _Server:
    """Start this process's fork server (once). A program that runs the runtime from
    several threads calls it first: the window does, before Qt makes threads. Without
    a server, ``fork_call`` forks directly, as a one-threaded CLI command always may."""
    global _server
    with _lock:
        if _server is None or not _server.alive():
            _server = _Server.spawn()
        return _server


def stop_server() -> None:
    """End this process's fork server (children it forked go on)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.control.close()
        server.proc.wait(10)


def _run_child(target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    code = 0
    try:
        target(*args)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        code = 125
    finally:
        os._exit(code)


class _Server:
    def __init__(self, proc: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.proc = proc
        self.control = control
        self._send = threading.Lock()

    @classmethod
    def spawn(cls) -> _Server:
        import socket
        import subprocess

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        try:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import sys; from explorer.runtime.forking import serve; serve(int(sys.argv[1]))",
                    str(theirs.fileno()),
                ],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except OSError as e:
            ours.close()
            raise RuntimeUnavailable(f"cannot start the fork server: {e.strerror}") from e
        finally:
            theirs.close()
        return cls(proc, ours)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, target: Callable[..., Any], args: tuple[Any, ...], fds: Sequence[int]) -> Child:
        import array
        import pickle
        import socket

        wanted = sorted({0, 1, 2, *fds})
        if len(wanted) + 1 > _MAX_FDS:
            raise RuntimeUnavailable(f"too many descriptors for one child ({len(wanted)})")
        flags = [os.get_inheritable(fd) for fd in wanted]
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        payload = pickle.dumps((target.__module__, target.__qualname__, args, wanted, flags))
        try:
            with self._send:
                self.control.sendmsg(
                    [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [theirs.fileno(), *wanted]))]
                )
        except OSError as e:
            mine.close()
            raise RuntimeUnavailable(f"cannot reach the fork server: {e.strerror}") from e
        finally:
            theirs.close()
        line = b""
        deadline = time.monotonic() + 30
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            ready, _w, _x = select.select([mine], [], [], max(0.0, left))
            if not ready:
                mine.close()
                raise RuntimeUnavailable("the fork server did not answer within 30 s")
            chunk = mine.recv(64)
            if not chunk:
                mine.close()
                raise RuntimeUnavailable("the fork server could not fork")
            line += chunk
        head, _, rest = line.partition(b"\n")
        words = head.split()
        if words[:1] != [b"P"]:
            mine.close()
            raise RuntimeUnavailable(f"the fork server could not fork: {head.decode(errors='replace')}")
        child = Child(int(words[1]), mine)
        if rest:  # the exit already arrived with the pid
            child._code = int(rest.split()[-1])
            mine.close()
            child._channel = None
        return child


# --- the server side ---------------------------------------------------------------------


def serve(control_fd: int) -> None:
    """The fork server's loop: one thread, for ever. Exits when the caller goes."""
    import socket

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the caller's Ctrl-C is the caller's
    control = socket.socket(fileno=control_fd)
    channels: dict[int, tuple[socket.socket, int]] = {}  # pidfd → (channel, pid)
    while True:
        ready, _w, _x = select.select([control.fileno(), *channels], [], [])
        for item in ready:
            if item == control.fileno():
                if not _accept(control, channels):
                    os._exit(0)
                continue
            channel, pid = channels.pop(item)
            os.close(item)
            _pid, status = os.waitpid(pid, 0)
            with contextlib.suppress(OSError):
                channel.sendall(f"X {exit_code_of(status)}\n".encode())
            channel.close()


def _accept(control: socket.socket, channels: dict[int, tuple[socket.socket, int]]) -> bool:
    import array
    import importlib
    import pickle
    import socket

    try:
        data, ancillary, _flags, _addr = control.recvmsg(1 << 20, socket.CMSG_SPACE(_MAX_FDS * 4))
    except InterruptedError:
        return True
    if not data:
        return False
    received = array.array("i")
    for level, kind, blob in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            received.frombytes(blob[: len(blob) - len(blob) % 4])
    channel = socket.socket(fileno=received[0])
    given = list(received[1:])
    try:
        module, name, args, wanted, flags = pickle.loads(data)
        found: Any = importlib.import_module(module)
        for part in name.split("."):
            found = getattr(found, part)
        target: Callable[..., Any] = found
        pid = os.fork()
    except BaseException as e:
        with contextlib.suppress(OSError):
            channel.sendall(f"E {type(e).__name__}: {e}\n".encode())
        channel.close()
        for fd in given:
            os.close(fd)
        return True
    if pid == 0:
        control.close()
        channel.close()
        for other, _pid in channels.values():
            other.close()
        _place(given, wanted, flags)
        _run_child(target, tuple(args))
    for fd in given:
        os.close(fd)
    channels[os.pidfd_open(pid)] = (channel, pid)
    channel.sendall(f"P {pid}\n".encode())
    return True


def _place(given: list[int], wanted: list[int], flags: list[bool]) -> None:
    """Give the received descriptors the caller's numbers (and inheritability)."""
    import fcntl

    above = max([*given, *wanted]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, above) for fd in given]
    for fd in given:
        os.close(fd)
    for fd, number, inheritable in zip(moved, wanted, flags, strict=True):
        os.dup2(fd, number, inheritable=inheritable)
        os.close(fd)
