"""Run a Python callable inside a fresh user (and mount) namespace.

Files a rootless container writes belong to subordinate ids the caller cannot
read or delete from the host; the store needs the container's view of ownership
to commit, copy or remove them. ``call_in_userns`` forks, enters a namespace with
the same maps a container gets, runs the callable there as root and hands back
its result (or its exception), so callers write plain Python.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import RuntimeUnavailable, StrataError
from . import idmap, linux

T = TypeVar("T")


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _child(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], flags: int, out: int, go: int
) -> None:
    import pickle

    try:
        linux.unshare(linux.CLONE_NEWUSER | flags)
    except OSError as e:
        os.write(out, b"E" + pickle.dumps(e))
        return
    os.write(out, b"R")
    if os.read(go, 1) != b"G":
        return
    os.close(go)
    if flags & linux.CLONE_NEWNS:
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    try:
        payload = pickle.dumps((True, fn(*args, **kwargs)))
    except BaseException as e:  # the parent re-raises it
        try:
            payload = pickle.dumps((False, e))
        except Exception:
            payload = pickle.dumps((False, RuntimeUnavailable(f"{type(e).__name__}: {e}")))
    os.write(out, b"O")
    view = memoryview(payload)
    while view:
        view = view[os.write(out, view) :]


def call_in_userns(
    fn: Callable[..., T],
    *args: Any,
    maps: idmap.IdMaps | None = None,
    mount_ns: bool = True,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` as root of a new user namespace; returns its result.

    The callable and its result must pickle. Exceptions it raises are raised here.
    """
    import pickle  # here: the container start path should not pay for it

    maps = maps or idmap.plan()
    flags = linux.CLONE_NEWNS if mount_ns else 0
    out_r, out_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(out_r)
            os.close(go_w)
            _child(fn, args, kwargs, flags, out_w, go_r)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(go_r)
    try:
        first = os.read(out_r, 1)
        if first == b"E":
            err = pickle.loads(_read_all(out_r))
            raise RuntimeUnavailable(_unshare_message(err)) from err
        if first != b"R":
            raise RuntimeUnavailable("could not start a user namespace helper process")
        try:
            idmap.write(pid, maps)
        except StrataError:
            os.close(go_w)
            go_w = -1
            raise
        os.write(go_w, b"G")
        os.close(go_w)
        go_w = -1
        data = _read_all(out_r)
        if not data.startswith(b"O"):
            raise RuntimeUnavailable("the user namespace helper process died")
        ok, value = pickle.loads(data[1:])
        if not ok:
            raise value
        result: T = value
        return result
    finally:
        if go_w >= 0:
            os.close(go_w)
        os.close(out_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _unshare_message(err: BaseException) -> str:
    from .support import userns_problem

    return userns_problem() or f"cannot create a user namespace: {err}"
