"""Copying a layer-form tree exactly: whiteout devices, opaque markers, hard links,
modes and times kept, symlinks never followed. Used to freeze a container's diff into
a new layer without disturbing the live one."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat

OPAQUE_XATTRS = ("user.overlay.opaque", "trusted.overlay.opaque")


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of ``src`` into the existing directory ``dst``."""
    links: dict[tuple[int, int], str] = {}
    dirs: list[tuple[str, os.stat_result]] = []
    for root, subdirs, files in os.walk(src):
        rel_root = os.path.relpath(root, src)
        out_root = dst if rel_root == "." else os.path.join(dst, rel_root)
        for name in subdirs + files:
            s = os.path.join(root, name)
            d = os.path.join(out_root, name)
            st = os.lstat(s)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(d, 0o700)
                dirs.append((d, st))
                _copy_opaque(s, d)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(s), d)
            elif stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    os.link(links[key], d)
                    continue
                shutil.copyfile(s, d, follow_symlinks=False)
                links[key] = d
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                os.mknod(d, mode, st.st_rdev)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(d, stat.S_IMODE(mode))
            else:
                continue
            _copy_meta(d, st)
        if rel_root == ".":
            _copy_opaque(src, dst)
    for d, st in reversed(dirs):
        _copy_meta(d, st)


def _copy_meta(path: str, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.lchown(path, st.st_uid, st.st_gid)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(path, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_opaque(src: str, dst: str) -> None:
    for name in OPAQUE_XATTRS:
        try:
            value = os.getxattr(src, name, follow_symlinks=False)
        except OSError:
            continue
        if value == b"y":
            with contextlib.suppress(OSError):
                os.setxattr(dst, "user.overlay.opaque", b"y", follow_symlinks=False)
