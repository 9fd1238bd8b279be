"""Can this machine run rootless containers, and with which storage driver?

When the kernel or distribution switched user namespaces off, the user gets one
line naming the setting and the command that allows it, instead of an errno from
deep inside ``unshare``.
"""

from __future__ import annotations

import errno
import os

from ..errors import RuntimeUnavailable
from ..fsutil import rmtree
from ..overlayfs import OPAQUE_VALUE, OPAQUE_XATTR, is_whiteout
from . import idmap, linux
from .rootfs import mount_overlay
from .sysctls import userns_problem as userns_problem  # here too: the runtime's checks in one module
from .userns import call_in_userns


def _single_maps() -> idmap.IdMaps:
    """Maps any user may write without helpers: enough to probe the kernel."""
    uid = idmap.IdMap(((0, os.geteuid(), 1),))
    gid = idmap.IdMap(((0, os.getegid(), 1),))
    return idmap.IdMaps(uid, gid, setgroups_denied=os.geteuid() != 0)


def _probe_mount(where: str) -> None:
    linux.mount("tmpfs", where, "tmpfs", 0, "size=64k")


def check_support() -> None:
    """Raise RuntimeUnavailable (one line: which setting, how to allow it) unless
    this process can create a user namespace and mount inside it."""
    problem = userns_problem()
    if problem:
        raise RuntimeUnavailable(problem)
    where = linux.make_temp_dir(os.environ.get("TMPDIR", "/tmp"), "strata-probe-")
    try:
        call_in_userns(_probe_mount, where, maps=_single_maps())
    except OSError as e:
        raise RuntimeUnavailable(
            f"cannot mount inside a user namespace ({e.strerror or e}); "
            "a security policy (AppArmor, SELinux, seccomp) may forbid it"
        ) from e
    finally:
        os.rmdir(where)


def _probe_overlay(base: str) -> bool:
    lower, upper, work, merged = (os.path.join(base, n) for n in ("lower", "upper", "work", "merged"))
    mount_overlay([lower], upper, work, merged)
    with open(os.path.join(merged, "new"), "w") as fh:
        fh.write("x")
    os.unlink(os.path.join(merged, "gone"))
    os.rmdir(os.path.join(merged, "dir"))
    os.mkdir(os.path.join(merged, "dir"))
    if not is_whiteout(os.lstat(os.path.join(upper, "gone"))):
        return False
    # the user. name only: that is the one a rootless mount (userxattr) writes and reads
    return os.getxattr(os.path.join(upper, "dir"), OPAQUE_XATTR, follow_symlinks=False) == OPAQUE_VALUE


def detect_driver(probe_dir: str) -> str:
    """``"overlay"`` when a rootless overlay mount (userxattr) works with its upper
    and work dirs under ``probe_dir`` (the store's own file system), else ``"vfs"``."""
    check_support()
    base = linux.make_temp_dir(probe_dir, ".overlay-probe-")
    try:
        for name in ("lower", "upper", "work", "merged", "lower/dir"):
            os.mkdir(os.path.join(base, name))
        with open(os.path.join(base, "lower", "gone"), "w") as fh:
            fh.write("x")
        try:
            ok = call_in_userns(_probe_overlay, base, maps=_single_maps())
        except OSError as e:
            if e.errno in (
                errno.EPERM,
                errno.EINVAL,
                errno.ENODEV,
                errno.EOPNOTSUPP,
                errno.ENOTSUP,
                errno.EACCES,
                errno.ENOENT,
                errno.EXDEV,
            ):
                return "vfs"
            raise
        return "overlay" if ok else "vfs"
    finally:
        rmtree(base)
