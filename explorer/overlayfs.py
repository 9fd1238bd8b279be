"""How overlayfs marks a layer directory, for every reader and writer of one.

A whiteout is a character device 0/0; an opaque directory carries the ``overlay.opaque``
xattr set to ``y``, which hides every lower directory's children. Rootless overlay
(``userxattr``) reads the ``user.`` name and the kernel as root the ``trusted.`` one:
Strata writes the ``user.`` name, the one its mounts read, and honours both when it
reads, so a tree made by a root overlay counts as well. The store (scan, extract,
tree copy), the builder and the runtime (layer paths, vfs) all stand on this leaf;
the runtime may not import the store.
"""

from __future__ import annotations

import os
import stat

OPAQUE_XATTR = "user.overlay.opaque"
OPAQUE_XATTRS = (OPAQUE_XATTR, "trusted.overlay.opaque")
OPAQUE_VALUE = b"y"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(target: str | int) -> bool:
    """Whether the directory at ``target`` is opaque: a path (a symlink there is not
    followed) or an open descriptor. Unreadable or absent xattrs mean no."""
    for name in OPAQUE_XATTRS:
        try:
            if isinstance(target, int):
                value = os.getxattr(target, name)
            else:
                value = os.getxattr(target, name, follow_symlinks=False)
        except OSError:
            continue
        if value == OPAQUE_VALUE:
            return True
    return False


def mark_opaque(target: str | int) -> None:
    """Make the directory at ``target`` (a path, not followed, or a descriptor) opaque.
    Raises OSError where the file system holds no user xattrs."""
    if isinstance(target, int):
        os.setxattr(target, OPAQUE_XATTR, OPAQUE_VALUE)
    else:
        os.setxattr(target, OPAQUE_XATTR, OPAQUE_VALUE, follow_symlinks=False)
