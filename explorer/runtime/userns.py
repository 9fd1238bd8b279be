"""Helper processes that work inside a user namespace.

Files a rootless container writes belong to subordinate ids the caller cannot
read or delete from the host; the store needs the container's view of ownership
to commit, copy or remove them. ``call_in_userns`` forks, enters a namespace with
the same maps a container gets, runs the callable there as root and hands back
its result (or its exception), so callers write plain Python.

``fork_helper`` is the mechanism underneath, shared with ``inroot``: the helper
either creates a namespace (``Unshare``, the caller then writes its id maps) or
joins a running container's (``Join``). The helper keeps no descriptor of the
caller's but the ones it is given: a helper that works inside a container's root
must not hold a way back to the host.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import RuntimeUnavailable
from . import forking, idmap, linux
from .watch import IDLE_TIMEOUT_S, Watch

T = TypeVar("T")

_PR_SET_PDEATHSIG = 1
_PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class Unshare:
    """Create a user namespace (and a private mount namespace) with these maps."""

    maps: idmap.IdMaps
    mount_ns: bool = True


@dataclass(frozen=True)
class Join:
    """Join existing namespaces: (open fd of /proc/PID/ns/X, CLONE_NEW*), user first."""

    namespaces: tuple[tuple[int, int], ...]


def read_all(fd: int) -> bytes:
    """Everything until every writer has closed ``fd``."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except InterruptedError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _enter(how: Unshare | Join, out: int, go: int) -> bool:
    """In the helper: get into the namespaces; False when the caller gave up."""
    if isinstance(how, Join):
        for fd, flag in how.namespaces:
            linux.setns(fd, flag)
            os.close(fd)
        return True
    linux.unshare(linux.CLONE_NEWUSER | (linux.CLONE_NEWNS if how.mount_ns else 0))
    os.write(out, b"R")
    if os.read(go, 1) != b"G":
        return False
    if how.mount_ns:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    return True


def _helper_entry(body: Callable[[int], None], how: Unshare | Join, out: int, go: int, keep: list[int]) -> None:
    code = 1
    try:
        code = _helper_main(body, how, out, go, keep)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _helper_main(body: Callable[[int], None], how: Unshare | Join, out: int, go: int, keep: Iterable[int]) -> int:
    ns_fds = [fd for fd, _flag in how.namespaces] if isinstance(how, Join) else []
    kept = {out, go, *keep, *ns_fds}
    linux.close_fds_except(kept)
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1):
        if target not in kept and target != null:
            os.dup2(null, target)
    if null not in (0, 1):
        os.close(null)
    try:
        if not _enter(how, out, go):
            return 1
    except OSError as e:
        os.write(out, b"E" + f"{e.strerror or e}".encode())
        return 1
    if isinstance(how, Join):
        os.write(out, b"R")
    os.close(go)
    # Die with the caller, and keep other processes in the namespace (a container's)
    # from reading or tracing this one.
    linux.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.prctl(_PR_SET_DUMPABLE, 0)
    body(out)
    return 0


class Helper:
    """A forked helper process. Its body writes one reply on a pipe; ``reply``
    returns those bytes once the helper has exited. A ``Watch`` kills it when it
    stalls or the caller cancels; ``reply`` then raises ``HelperStalled`` or
    ``Cancelled`` rather than hand back a cut-off reply."""

    def __init__(self, child: forking.Child, out_r: int, watch: Watch) -> None:
        self.child = child
        self.pid = child.pid
        self.watch = watch
        self._out_r = out_r
        self._done = False

    def reply(self) -> bytes:
        if self._done:
            raise RuntimeUnavailable("the helper process was already waited for")
        try:
            data = read_all(self._out_r)
        finally:
            self._finish()
        self.watch.check()
        return data

    def abort(self) -> None:
        """Kill the helper (the caller failed and will not read its reply)."""
        if not self._done:
            self.child.kill(signal.SIGKILL)
            self._finish()

    def _finish(self) -> None:
        self._done = True
        os.close(self._out_r)
        try:
            with contextlib.suppress(ChildProcessError, RuntimeUnavailable):
                self.child.wait()
        finally:
            self.watch.close()


def fork_helper(
    body: Callable[[int], None],
    how: Unshare | Join,
    keep_fds: Iterable[int] = (),
    *,
    what: str = "user namespace helper",
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> Helper:
    """Fork a helper that enters ``how`` and then calls ``body(reply_fd)``.

    Returns once the helper is inside its namespaces. The helper keeps only
    ``keep_fds`` (and the namespace fds of ``Join``) open. It is watched from here
    until its reply is read (``watch.py``): no progress for ``idle`` seconds (None: no
    deadline), or ``cancel`` set, and it is killed; ``what`` names it in that error.
    """
    keep = list(keep_fds)
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    ns_fds = [fd for fd, _flag in how.namespaces] if isinstance(how, Join) else []
    try:
        child = forking.fork_call(_helper_entry, body, how, out_w, go_r, keep, fds=[out_w, go_r, *keep, *ns_fds])
    except BaseException:
        for fd in (out_r, go_w):
            os.close(fd)
        raise
    finally:
        os.close(out_w)
        os.close(go_r)
    pid = child.pid
    watch = Watch(what, idle, cancel)
    helper = Helper(child, out_r, watch)
    try:
        watch.follow(pid, keep)
        first = os.read(out_r, 1)
        if not first:
            helper.reply()  # killed by the watch: raises why
        if first == b"E":
            message = helper.reply().decode(errors="replace")
            if isinstance(how, Join):
                raise RuntimeUnavailable(f"cannot join the container's namespaces: {message}")
            raise RuntimeUnavailable(_unshare_message(message))
        if first != b"R":
            raise RuntimeUnavailable("could not start a user namespace helper process")
        if isinstance(how, Unshare):
            idmap.write(pid, how.maps)
            os.write(go_w, b"G")
    except BaseException:
        helper.abort()
        raise
    finally:
        os.close(go_w)
    return helper


def call_in_userns(
    fn: Callable[..., T],
    *args: Any,
    maps: idmap.IdMaps | None = None,
    mount_ns: bool = True,
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` as root of a new user namespace; returns its result.

    The result must pickle. Exceptions it raises are raised here. Only our own
    code runs in that namespace, so its reply may be unpickled. ``idle`` and
    ``cancel`` are ``fork_helper``'s (so ``fn`` cannot take keywords of those names).
    """
    import pickle  # here: the container start path should not pay for it

    body = functools.partial(_call_and_reply, fn, args, kwargs)
    what = f"user namespace helper ({getattr(fn, '__name__', 'call')})"
    data = fork_helper(body, Unshare(maps or idmap.plan(), mount_ns), what=what, idle=idle, cancel=cancel).reply()
    if not data.startswith(b"O"):
        raise RuntimeUnavailable("the user namespace helper process died")
    ok, value = pickle.loads(data[1:])
    if not ok:
        raise value
    result: T = value
    return result


def _call_and_reply(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], out: int) -> None:
    """``call_in_userns``'s helper body: the result (or the exception) pickled on ``out``."""
    import pickle

    try:
        payload = pickle.dumps((True, fn(*args, **kwargs)))
    except BaseException as e:  # the caller re-raises it
        try:
            payload = pickle.dumps((False, e))
            pickle.loads(payload)
        except Exception:
            payload = pickle.dumps((False, RuntimeUnavailable(f"{type(e).__name__}: {e}")))
    write_all(out, b"O" + payload)


def _unshare_message(err: str) -> str:
    from .sysctls import userns_problem

    return userns_problem() or f"cannot create a user namespace: {err}"
