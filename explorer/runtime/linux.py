"""Thin ctypes bindings for the Linux calls Python 3.11 lacks.

``os.unshare``/``os.setns`` arrive in 3.12 and the mount calls never did; calling libc
directly keeps container start inside the current process (no helper binaries, no
second interpreter), which is what makes ``run --rm IMAGE true`` fast.
Every wrapper raises ``OSError`` with the errno and the operation, like ``os`` does.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from collections.abc import Iterable

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_DETACH = 2

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000

FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

KEYCTL_JOIN_SESSION_KEYRING = 1
PR_SET_NO_NEW_PRIVS = 38

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8

# The new mount API and mount_setattr have one number on every architecture.
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOVE_MOUNT = 429
_SYS_MOUNT_SETATTR = 442
_SYS_OPEN_TREE = 428
_SYS_OPENAT2 = 437
_SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 271, "s390x": 280}
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

_libc = ctypes.CDLL(None, use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str, path: str | None = None) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result


def _b(path: str | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _syscall(number: int, *args: object) -> int:
    converted: list[object] = []
    for arg in args:
        if isinstance(arg, int):
            converted.append(ctypes.c_long(arg))
        else:
            converted.append(arg)
    return int(_libc.syscall(ctypes.c_long(number), *converted))


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def prctl(option: int, value: int) -> None:
    _check(
        _libc.prctl(
            ctypes.c_int(option), ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        ),
        "prctl",
    )


def sethostname(name: str) -> None:
    """socket.sethostname without importing socket (the start path avoids it)."""
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))), "sethostname")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(result, f"mount {fstype or 'bind'} on {target}", target)


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}", target)


def pivot_root(new_root: str, put_old: str) -> None:
    machine = os.uname().machine
    number = _SYS_PIVOT_ROOT.get(machine)
    if number is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {machine}")
    _check(_syscall(number, _b(new_root), _b(put_old)), "pivot_root", new_root)


def mount_setattr(path: str, attr_set: int, attr_clr: int = 0, recursive: bool = True) -> None:
    """Change flags of a mount without touching the flags a user namespace locked."""
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_RECURSIVE if recursive else 0
    result = _syscall(_SYS_MOUNT_SETATTR, AT_FDCWD, _b(path), flags, ctypes.byref(attr), ctypes.sizeof(attr))
    _check(result, f"mount_setattr {path}", path)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    """openat2(2): the kernel resolves ``path`` under the rules in ``resolve``
    (``RESOLVE_IN_ROOT``: ``dirfd`` is ``/`` for every symlink and ``..``)."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    fd = _syscall(_SYS_OPENAT2, dirfd, _b(path), ctypes.byref(how), ctypes.sizeof(how))
    return _check(fd, f"open {path}", path)


def open_tree(path: str, flags: int, dirfd: int = AT_FDCWD) -> int:
    """A detached copy of the mount tree at ``path`` (``OPEN_TREE_CLONE``), as an fd."""
    fd = _syscall(_SYS_OPEN_TREE, dirfd, _b(path), flags | OPEN_TREE_CLOEXEC)
    return _check(fd, f"open_tree {path}", path)


def mount_setattr_fd(fd: int, attr_set: int, attr_clr: int = 0, recursive: bool = True) -> None:
    attr = _MountAttr(attr_set, attr_clr, 0, 0)
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    _check(_syscall(_SYS_MOUNT_SETATTR, fd, b"", flags, ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr")


def move_mount_fd(mount_fd: int, target_fd: int, what: str) -> None:
    """Attach the detached mount ``mount_fd`` on the directory or file ``target_fd``
    holds, with no path between them for anything to swap."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    _check(_syscall(_SYS_MOVE_MOUNT, mount_fd, b"", target_fd, b"", flags), f"mount on {what}", what)


def join_new_session_keyring() -> None:
    """A fresh anonymous session keyring: the caller's keys stay out of reach."""
    number = _SYS_KEYCTL.get(os.uname().machine)
    if number is None:
        return
    _check(_syscall(number, KEYCTL_JOIN_SESSION_KEYRING, None), "keyctl join session keyring")


def _fs_log(fd: int) -> str:
    """Messages the kernel left on a filesystem context (why fsconfig failed)."""
    lines: list[str] = []
    for _ in range(16):
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        lines.append(chunk.decode(errors="replace").strip())
    return "; ".join(line[2:] if line[1:2] == " " else line for line in lines)


def mount_fs(
    fstype: str,
    target: str,
    strings: Iterable[tuple[str, str]],
    flags: Iterable[str] = (),
    *,
    target_fd: int | None = None,
    attrs: int = 0,
) -> None:
    """Mount with the new mount API: each option is its own call, so no page-size
    limit on the option string and no escaping of ``:`` or ``,`` in paths."""
    fd = _check(_syscall(_SYS_FSOPEN, fstype.encode(), FSOPEN_CLOEXEC), f"fsopen {fstype}")
    try:
        for key, value in strings:
            res = _syscall(_SYS_FSCONFIG, fd, FSCONFIG_SET_STRING, key.encode(), os.fsencode(value), 0)
            if res < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"{fstype} option {key}={value}: {_fs_log(fd) or os.strerror(err)}")
        for key in flags:
            res = _syscall(_SYS_FSCONFIG, fd, FSCONFIG_SET_FLAG, key.encode(), None, 0)
            if res < 0:
                err = ctypes.get_errno()
                raise OSError(err, f"{fstype} option {key}: {_fs_log(fd) or os.strerror(err)}")
        if _syscall(_SYS_FSCONFIG, fd, FSCONFIG_CMD_CREATE, None, None, 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"mount {fstype}: {_fs_log(fd) or os.strerror(err)}")
        mfd = _check(_syscall(_SYS_FSMOUNT, fd, FSMOUNT_CLOEXEC, attrs), f"fsmount {fstype}")
        try:
            if target_fd is not None:
                move_mount_fd(mfd, target_fd, target)
            else:
                res = _syscall(_SYS_MOVE_MOUNT, mfd, b"", AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH)
                _check(res, f"move_mount {fstype} to {target}", target)
        finally:
            os.close(mfd)
    finally:
        os.close(fd)


def statvfs_mount_flags(path: str) -> int:
    """The MS_* flags of the mount holding ``path`` that a remount must keep."""
    st = os.statvfs(path)
    flags = 0
    for st_flag, ms_flag in (
        (os.ST_RDONLY, MS_RDONLY),
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (os.ST_RELATIME, MS_RELATIME),
    ):
        if st.f_flag & st_flag:
            flags |= ms_flag
    return flags


def close_fds_except(keep: Iterable[int]) -> None:
    """Close every descriptor a forked child inherited but does not need.

    Another thread of the caller may fork at the same moment; its pipes must not
    stay open in this child (a pipe's reader would then never see EOF)."""
    kept = sorted({fd for fd in keep if fd >= 0} | {0, 1, 2})
    import resource

    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limit = max(soft if 0 < soft <= 1 << 20 else 1 << 20, kept[-1] + 1)
    low = 0
    for fd in kept:
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, limit)


def dup_high(fd: int, minimum: int = 10) -> int:
    """A close-on-exec copy of ``fd`` numbered at least ``minimum`` (clear of 0-2)."""
    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, minimum)


def make_temp_dir(parent: str, prefix: str) -> str:
    """A new private directory in ``parent`` (tempfile costs an import of random/hashlib)."""
    for attempt in range(100):
        path = os.path.join(parent, f"{prefix}{os.getpid()}-{attempt}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary directory in {parent}")
