"""Files owned by subordinate ids: removing, reading and handing them over.

With a subuid range, a rootless container's files may belong to ids such as
100999 (uid 1000 inside): the user who started the container cannot list, read
or delete them from the host. As root of a user namespace with the container's
maps the user can, and sees the ids the container saw. So the store does its work
on the host (the fast path) and, only when the host says "permission denied",
again in such a namespace.
"""

from __future__ import annotations

import os
import stat

from ..fsutil import rmtree
from . import idmap


def userns_needed() -> bool:
    """True when files may belong to ids the caller cannot touch from the host:
    not root, and a subordinate range is mapped into containers."""
    return os.geteuid() != 0 and len(idmap.plan().uid.ranges) > 1


def userns_helps() -> bool:
    """Worth retrying in the user namespace: its root may read and delete what
    belongs to any mapped id, even the caller's own mode-000 files."""
    return os.geteuid() != 0


def remove_tree(path: str) -> None:
    """``rmtree``, through the user namespace where the host is not allowed to."""
    try:
        rmtree(path)
    except (OSError, TypeError):
        # TypeError: fsutil.rmtree's retry of a failed os.open (it passes no flags).
        if not userns_helps():
            raise
        from .userns import call_in_userns  # the slow path only

        call_in_userns(rmtree, path)


def hand_over(path: str) -> None:
    """Give everything under ``path`` to the caller, readable by its owner, as
    rootless layers are kept on disk (``store.extract.disk_mode``). Runs inside the
    user namespace, where the caller is 0.

    The index keeps the real owners and modes; the store only needs to read the
    files back (a layer tar) and to delete them.
    """
    for top, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            _take(os.path.join(top, name))
    _take(path)


def _take(path: str) -> None:
    st = os.lstat(path)
    if (st.st_uid, st.st_gid) != (0, 0):
        os.lchown(path, 0, 0)  # clears setuid/setgid bits: the index keeps them
    if stat.S_ISDIR(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o500)
    elif stat.S_ISREG(st.st_mode):
        os.chmod(path, (stat.S_IMODE(st.st_mode) | 0o400) & ~0o6000)
