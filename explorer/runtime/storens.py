"""The store's user namespace: where a rootless Strata does all its content work.

Rootless, layers, containers and volumes hold files of subordinate ids (a file of uid
42 in an image is owned by the host id that maps to 42) with modes such as 0700 and
0600. From the host the caller can neither read nor delete them. Rather than retrying
each access in a helper when the host says "permission denied", a rootless ``strata``
process moves itself into one user namespace before it does anything else, as
``podman`` does: there it is root over every mapped id, so the scan after RUN, layer
tars, extraction with real owners, commit, diff, cp, the GUI's viewer and editor,
removal and crash clean-up all read and write content directly, and no code path can
read it from the host by accident, because the process has no host view left.

One namespace per user, not per process: it is kept alive by a *keeper* (an idle
``sleep infinity`` started inside it) whose pid is recorded under the user's runtime
directory. Every later ``strata`` joins it with ``setns``, which costs a fraction of
a millisecond; only the first one pays for newuidmap/newgidmap. Containers are started
from inside it, so a later ``strata exec`` (joining the same namespace) may enter them.

``enter`` must run while the process is single-threaded (``setns`` and ``unshare`` of
a user namespace refuse otherwise): the CLI calls it before parsing a verb, the window
before Qt starts, the tests in ``conftest``. Real root never enters: it already owns
every id.

Without newuidmap/newgidmap or a subordinate range the namespace maps one id, the
caller's, to 0. Strata then carries on as Podman does with ``ignore_chown_errors``:
files keep their owners in the index only, and ``single_id_advice`` names what to
install and which ``usermod`` to run.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import os
import pwd
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import RuntimeUnavailable
from . import idmap, linux

FULL_MAP = f"0 0 {idmap.FULL_RANGE}"
_KEEPER_ARGV = ("strata-keeper", "infinity")
_SLEEP = ("/bin/sleep", "/usr/bin/sleep")
_joined: list[str] = []  # the keeper record of the namespace this process entered


@dataclass(frozen=True)
class Mapping:
    """How this process sees ids: ``mode`` is "root" (the initial namespace as root),
    "host" (an unprivileged user outside any namespace: ``enter`` not called yet),
    "subids" (the store's namespace with a subordinate range) or "single" (one id)."""

    mode: str
    uid_map: str
    gid_map: str

    @property
    def ids(self) -> int:
        """How many uids the namespace maps."""
        return sum(count for _inside, _outside, count in _parse(self.uid_map))


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return ""


def _parse(text: str) -> list[tuple[int, int, int]]:
    nums = [int(n) for n in text.split()]
    return [(nums[i], nums[i + 1], nums[i + 2]) for i in range(0, len(nums) - 2, 3)]


def in_initial_ns() -> bool:
    """True when this process sees every id as itself (no user namespace around it)."""
    return _read("/proc/self/uid_map") == FULL_MAP


def privileged() -> bool:
    """Real root: uid 0 of the initial user namespace. Device nodes, host-wide mounts
    and ids beyond any range are only this process's to make."""
    return os.geteuid() == 0 and in_initial_ns()


def current() -> Mapping:
    uid_map, gid_map = _read("/proc/self/uid_map"), _read("/proc/self/gid_map")
    if uid_map == FULL_MAP:
        return Mapping("root" if os.geteuid() == 0 else "host", uid_map, gid_map)
    ranges = _parse(uid_map)
    return Mapping("single" if sum(c for _i, _o, c in ranges) <= 1 else "subids", uid_map, gid_map)


def _mapped(value: int, path: str) -> bool:
    return any(start <= value < start + count for start, _o, count in _parse(_read(path)))


def _runtime_dir(uid: int) -> str:
    """A directory only this user may write: $XDG_RUNTIME_DIR/strata or /tmp/strata-UID."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    candidates = [os.path.join(base, "strata")] if base and os.path.isdir(base) else []
    candidates.append(os.path.join(os.environ.get("TMPDIR") or "/tmp", f"strata-{uid}"))
    last: OSError | None = None
    for path in candidates:
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
            st = os.lstat(path)
        except OSError as e:
            last = e
            continue
        if st.st_uid == uid and not (st.st_mode & 0o077) and os.path.isdir(path) and not os.path.islink(path):
            return path
    raise RuntimeUnavailable(
        f"no private runtime directory for uid {uid} "
        f"({last.strerror if last else 'owned by another user or not 0700'}): "
        "set XDG_RUNTIME_DIR to a directory of yours with mode 0700"
    )


def _keeper_name(maps: idmap.IdMaps) -> str:
    import zlib  # not hashlib: loading OpenSSL would cost every command milliseconds

    text = f"{maps.uid.text()}|{maps.gid.text()}|{maps.setgroups_denied}".encode()
    return f"keeper-{zlib.crc32(text):08x}{zlib.adler32(text):08x}"


def _live_keeper(record: str) -> int | None:
    """The keeper's pid when the record names a live process in the namespace it recorded."""
    try:
        with open(record, encoding="ascii") as fh:
            pid_text, ino_text = fh.read().split()
        pid, ino = int(pid_text), int(ino_text)
        if os.stat(f"/proc/{pid}/ns/user").st_ino != ino:
            return None
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            if fh.read().rpartition(")")[2].split()[0] in ("Z", "X"):
                return None  # killed, not yet reaped: its namespace is on its way out
    except (OSError, ValueError):
        return None
    return pid


def _start_keeper(maps: idmap.IdMaps) -> int:
    """Fork a process into a new user namespace, give it ``maps`` and leave it asleep
    there, detached from us (a double fork, so no caller ever has to reap it)."""
    sleep = next((p for p in _SLEEP if os.access(p, os.X_OK)), "")
    if not sleep:
        raise RuntimeUnavailable("cannot start the user namespace keeper: /bin/sleep is missing")
    pid_r, pid_w = os.pipe()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    first = os.fork()
    if first == 0:
        code = 1
        try:
            os.setsid()
            keeper = os.fork()
            if keeper == 0:
                code = 1
                try:
                    linux.close_fds_except({ready_w, go_r})
                    try:
                        linux.unshare(linux.CLONE_NEWUSER)
                    except OSError as e:
                        os.write(ready_w, b"E" + (e.strerror or str(e)).encode())
                        os._exit(1)
                    os.write(ready_w, b"R")
                    if os.read(go_r, 1) != b"G":
                        os._exit(1)
                    null = os.open(os.devnull, os.O_RDWR)
                    for target in (0, 1, 2):
                        os.dup2(null, target)
                    os.chdir("/")
                    os.execv(sleep, list(_KEEPER_ARGV))
                finally:
                    os._exit(code)
            os.write(pid_w, str(keeper).encode())
            code = 0
        finally:
            os._exit(code)
    for fd in (pid_w, ready_w, go_r):
        os.close(fd)
    keeper = 0
    try:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(first, 0)  # it only forks the keeper and exits
        text = _read_within(pid_r, 32)
        if not text:
            raise RuntimeUnavailable("could not start the user namespace keeper")
        keeper = int(text)
        reply = _read_within(ready_r, 512)
        if not reply:
            raise RuntimeUnavailable(f"the user namespace keeper did not start within {KEEPER_TIMEOUT_S:g} s")
        if reply[:1] != b"R":
            from .sysctls import userns_problem

            raise RuntimeUnavailable(
                userns_problem() or f"cannot create a user namespace: {reply[1:].decode(errors='replace')}"
            )
        try:
            idmap.write(keeper, maps)
        except BaseException:
            with contextlib.suppress(OSError):
                os.kill(keeper, 9)
            raise
        os.write(go_w, b"G")
        return keeper
    except BaseException:
        if keeper:
            with contextlib.suppress(OSError):
                os.kill(keeper, 9)
        raise
    finally:
        for fd in (pid_r, ready_r, go_w):
            os.close(fd)


KEEPER_TIMEOUT_S = 30.0  # unshare and a write: anything longer is a stall


def _read_within(fd: int, n: int, timeout: float = KEEPER_TIMEOUT_S) -> bytes:
    """One read of ``fd``, or b"" when nothing came within ``timeout`` seconds."""
    import select

    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        try:
            ready, _w, _x = select.select([fd], [], [], left)
        except InterruptedError:
            continue
        if ready:
            return os.read(fd, n)


def _join(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWUSER)
    finally:
        os.close(fd)


def enter() -> Mapping:
    """Move this (single-threaded) process into the store's user namespace, creating
    it the first time; a no-op as real root or when already inside a namespace."""
    if not in_initial_ns() or os.geteuid() == 0:
        return current()
    if threading.active_count() > 1:
        raise RuntimeUnavailable(
            "the store's user namespace must be entered before this process starts "
            "threads: call explorer.runtime.storens.enter() first"
        )
    uid = os.geteuid()
    if not os.environ.get("HOME"):
        with contextlib.suppress(KeyError):
            os.environ["HOME"] = pwd.getpwuid(uid).pw_dir  # inside, uid 0 would name root's home
    maps = idmap.plan()
    where = _runtime_dir(uid)
    record = os.path.join(where, _keeper_name(maps))
    lock = os.open(record + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        pid = _live_keeper(record)
        if pid is not None:
            try:
                _join(pid)
                _joined.append(record)
                return current()
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.ESRCH):
                    raise RuntimeUnavailable(f"cannot join the store's user namespace: {e.strerror}") from e
        pid = _start_keeper(maps)
        ino = os.stat(f"/proc/{pid}/ns/user").st_ino
        # The kernel reuses namespace inode numbers: a dead keeper's "advised" marker
        # must not silence the advice for the new namespace.
        for stale in glob.glob(glob.escape(record) + ".advised-*"):
            with contextlib.suppress(OSError):
                os.unlink(stale)
        tmp = f"{record}.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as fh:
            fh.write(f"{pid} {ino}\n")
        os.replace(tmp, record)
        try:
            _join(pid)
        except OSError as e:
            raise RuntimeUnavailable(f"cannot join the store's user namespace: {e.strerror}") from e
        _joined.append(record)
        return current()
    finally:
        os.close(lock)


def single_id_advice() -> str | None:
    """What to install or configure for a full mapping; None when nothing is missing."""
    euid = os.geteuid() if in_initial_ns() else None
    if euid == 0 or (euid is None and current().mode != "single"):
        return None
    host_uid = euid if euid is not None else _host_uid()
    try:
        name = pwd.getpwuid(host_uid).pw_name
    except KeyError:
        name = str(host_uid)
    missing: list[str] = []
    helpers = [h for h in ("newuidmap", "newgidmap") if not idmap.which(h)]
    if helpers:
        missing.append(f"{' and '.join(helpers)} (install the uidmap package: sudo apt-get install uidmap)")
    if not idmap.subordinate_ranges("/etc/subuid", name, host_uid) or not idmap.subordinate_ranges(
        "/etc/subgid", name, host_uid
    ):
        missing.append(
            f"a subordinate id range for {name} "
            f"(sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name})"
        )
    if not missing:
        return None
    return (
        "rootless with a single id: files of other owners keep them only in Strata's index, and "
        "package managers that switch users (apt-get) fail; missing: " + "; ".join(missing)
    )


def _host_uid() -> int:
    ranges = _parse(_read("/proc/self/uid_map"))
    for inside, outside, _count in ranges:
        if inside == 0:
            return outside
    return os.geteuid()


def owner_filter() -> Callable[[int, int], bool]:
    """Whether an owner (uid, gid) can be held on disk here, for loops over many files:
    the maps are read once."""
    if in_initial_ns():
        if os.geteuid() == 0:
            return lambda _uid, _gid: True
        me = (os.geteuid(), os.getegid())
        return lambda uid, gid: (uid, gid) == me
    uids = [(s, s + c) for s, _o, c in _parse(_read("/proc/self/uid_map"))]
    gids = [(s, s + c) for s, _o, c in _parse(_read("/proc/self/gid_map"))]
    if len(uids) == 1 and len(gids) == 1:
        (ulo, uhi), (glo, ghi) = uids[0], gids[0]
        return lambda uid, gid: ulo <= uid < uhi and glo <= gid < ghi
    return lambda uid, gid: any(a <= uid < b for a, b in uids) and any(a <= gid < b for a, b in gids)


def advice_once() -> str | None:
    """``single_id_advice`` the first time any process of this namespace asks, then None:
    the user is told once what is missing, not on every command."""
    advice = single_id_advice()
    if advice is None or not _joined:
        return advice
    try:
        ino = os.stat("/proc/self/ns/user").st_ino
    except OSError:
        ino = 0
    marker = f"{_joined[-1]}.advised-{ino}"  # once per namespace: a new keeper tells again
    try:
        os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return None
    except OSError:
        pass
    return advice
