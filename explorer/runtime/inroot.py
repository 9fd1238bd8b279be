"""Run a function with a container's root (or a volume) as ``/``.

Every file operation on a container's content from outside (``cp``, the GUI's
edits) happens in a helper process whose root *is* the container's root, so the
kernel resolves each path, ``..`` and symlink inside it: nothing the container
holds can lead to a host path, however it changes during the operation. (Docker's
CVE-2018-15664 resolved container paths from the host and lost a race.)

- A running container: the helper joins the user and mount namespaces of its
  init. After ``pivot_root`` that mount namespace's root is the container's root,
  and the helper sees the volumes where the container's processes see them.
- A stopped container: the helper makes a user + mount namespace with the maps a
  container gets, mounts the root as ``start`` does (overlay: image layers, init
  layer and diff, so the kernel copies up whatever is written, parents and their
  metadata included; vfs: its root dir), binds its volumes and /etc files, and
  pivots into it. Nothing needs undoing: the mounts die with the helper.
- A volume: its data dir becomes the root the same way.

Host data crosses only as bytes on pipes (tar streams, see ``tarcopy``). Once
inside, the helper holds no descriptor of the host but those pipes, imports
nothing (a module path would now name a file of the container), and answers in
JSON, never pickle: the reply comes from inside the container.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.machinery
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from .. import errors
from ..errors import Cancelled, ContainerStateError, HelperStalled, InvalidArgument, RuntimeUnavailable, StrataError
from . import idmap, linux, state
from .config import ContainerConfig
from .container import _plan
from .rootfs import RootPlan, setup_root
from .userns import Helper, Join, Unshare, fork_helper, write_all
from .watch import IDLE_TIMEOUT_S

# Kernel file systems a copy of a running container's tree does not descend into.
PSEUDO_FS = frozenset({
    "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs", "debugfs", "tracefs",
    "bpf", "fusectl", "configfs", "pstore", "hugetlbfs", "binfmt_misc", "autofs", "efivarfs",
})  # fmt: skip

_SAFE_IMPORTERS = (importlib.machinery.BuiltinImporter, importlib.machinery.FrozenImporter)


def _seal() -> None:
    """From here on an import would read a file of the container: allow none but
    the modules compiled into the interpreter."""
    sys.meta_path[:] = [finder for finder in sys.meta_path if finder in _SAFE_IMPORTERS]
    sys.path_importer_cache.clear()


def _describe(err: BaseException) -> dict[str, Any]:
    if isinstance(err, OSError):
        filename = err.filename if isinstance(err.filename, str) else None
        return {"kind": "os", "errno": err.errno, "message": err.strerror or str(err), "filename": filename}
    kind = "strata" if isinstance(err, StrataError) else "other"
    return {"kind": kind, "class": type(err).__name__, "message": str(err)}


def _rebuild(reply: object, where: str) -> BaseException:
    """The exception a helper described; the description is untrusted data."""
    if not isinstance(reply, dict):
        return RuntimeUnavailable(f"{where}: the helper process sent a malformed reply")
    message = reply.get("message")
    message = message if isinstance(message, str) else "unknown error"
    if reply.get("kind") == "os":
        code = reply.get("errno")
        filename = reply.get("filename")
        if isinstance(code, int):
            return OSError(code, message, filename if isinstance(filename, str) else None)
        return OSError(message)
    name = reply.get("class")
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    if reply.get("kind") == "strata" and isinstance(cls, type) and issubclass(cls, StrataError):
        err = cls.__new__(cls)
        StrataError.__init__(err, message)
        return err
    return RuntimeUnavailable(f"{where}: {name}: {message}")


def _body(plan: RootPlan | None, fn: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[int], None]:
    """The helper's work as data (a partial of module-level functions), so it can
    cross to the fork server when this process has threads (see ``forking``)."""
    return functools.partial(_run_body, plan, fn, args)


def _run_body(plan: RootPlan | None, fn: Callable[..., Any], args: tuple[Any, ...], out: int) -> None:
    try:
        if plan is not None:
            setup_root(plan, kernel_fs=False)
        _seal()
        reply: dict[str, Any] = {"ok": fn(*args)}
    except BaseException as e:  # described to the caller, which raises it
        reply = {"error": _describe(e)}
    try:
        data = json.dumps(reply)
    except (TypeError, ValueError) as e:
        data = json.dumps({"error": _describe(e)})
    write_all(out, data.encode())


@dataclass
class InRoot:
    """A helper working inside a root. Feed it through the pipes it was given,
    then ``wait`` for its result; leaving a ``with`` block unwaited kills it."""

    helper: Helper
    where: str
    _result: tuple[bool, Any] | None = None

    def wait(self) -> Any:
        """What the function returned (through JSON), or raise what it raised; or
        ``Cancelled``/``HelperStalled`` when the watch stopped the helper (``watch.py``)."""
        if self._result is None:
            try:
                data = self.helper.reply()
            except (Cancelled, HelperStalled) as e:
                self._result = (False, e)
                raise
            try:
                reply = json.loads(data) if data else None
            except ValueError:
                reply = None
            if isinstance(reply, dict) and "ok" in reply:
                self._result = (True, reply["ok"])
            elif isinstance(reply, dict) and "error" in reply:
                self._result = (False, _rebuild(reply["error"], self.where))
            else:
                self._result = (False, RuntimeUnavailable(f"{self.where}: the helper process died"))
        ok, value = self._result
        if not ok:
            raise value
        return value

    def abort(self) -> None:
        if self._result is None:
            self.helper.abort()
            self._result = (False, RuntimeUnavailable(f"{self.where}: the operation was abandoned"))

    def __enter__(self) -> InRoot:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.abort()


def _open_namespaces(pid: int) -> list[tuple[int, int]]:
    opened: list[tuple[int, int]] = []
    try:
        for name, flag in (("user", linux.CLONE_NEWUSER), ("mnt", linux.CLONE_NEWNS)):
            theirs = os.stat(f"/proc/{pid}/ns/{name}")
            ours = os.stat(f"/proc/self/ns/{name}")
            if (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
                continue
            opened.append((os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC), flag))
    except OSError:
        for fd, _flag in opened:
            os.close(fd)
        raise ContainerStateError(f"container process {pid} is not running") from None
    return opened


def in_container(
    runtime_dir: str,
    fn: Callable[..., Any],
    *args: Any,
    keep_fds: Iterable[int] = (),
    where: str = "container",
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> InRoot:
    """``fn(*args)`` inside the running container whose runtime dir is given.

    Raises ContainerStateError when it is not running (then use ``in_rootfs``). Like
    every helper here it is watched (``watch.py``): no progress for ``idle`` seconds, or
    ``cancel`` set, and it is killed; ``wait`` then raises why.
    """
    pid = state.container_pid(runtime_dir)
    if pid is None:
        raise ContainerStateError(f"{where} is not running")
    namespaces = _open_namespaces(pid)
    try:
        if state.container_pid(runtime_dir) != pid:  # the pid was reused before we opened it
            raise ContainerStateError(f"{where} is not running")
        if not namespaces:
            raise RuntimeUnavailable(f"{where} shares this process's namespaces; refusing to work on the host")
        helper = fork_helper(
            _body(None, fn, args), Join(tuple(namespaces)), keep_fds, what=where, idle=idle, cancel=cancel
        )
    finally:
        for fd, _flag in namespaces:
            os.close(fd)
    return InRoot(helper, where)


def in_rootfs(
    config: ContainerConfig,
    fn: Callable[..., Any],
    *args: Any,
    keep_fds: Iterable[int] = (),
    where: str = "container",
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> InRoot:
    """``fn(*args)`` inside the stopped container ``config`` describes (its process is ignored)."""
    maps = idmap.plan()
    plan = _plan(config, maps)
    helper = fork_helper(_body(plan, fn, args), Unshare(maps), keep_fds, what=where, idle=idle, cancel=cancel)
    return InRoot(helper, where)


def in_directory(
    path: str,
    fn: Callable[..., Any],
    *args: Any,
    keep_fds: Iterable[int] = (),
    where: str = "",
    idle: float | None = IDLE_TIMEOUT_S,
    cancel: threading.Event | None = None,
) -> InRoot:
    """``fn(*args)`` with the directory ``path`` (a volume's data) as the root."""
    if not os.path.isdir(path):
        raise InvalidArgument(f"{where or path}: {path} is not a directory")
    plan = RootPlan(driver="vfs", mountpoint=path, rootdir=path)
    what = where or path
    helper = fork_helper(_body(plan, fn, args), Unshare(idmap.plan()), keep_fds, what=what, idle=idle, cancel=cancel)
    return InRoot(helper, what)


def pseudo_mounts(runtime_dir: str) -> list[str]:
    """Where a running container has kernel file systems mounted (its own paths)."""
    pid = state.container_pid(runtime_dir)
    if pid is None:
        return []
    found: list[str] = []
    with contextlib.suppress(OSError), open(f"/proc/{pid}/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
        for line in fh:
            fields = line.split()
            if "-" not in fields:
                continue
            dash = fields.index("-")
            if len(fields) > dash + 1 and fields[dash + 1] in PSEUDO_FS and len(fields) > 4:
                found.append(_unescape(fields[4]))
    return found


def _unescape(text: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 4 <= len(text) and text[i + 1 : i + 4].isdigit():
            out.append(chr(int(text[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
