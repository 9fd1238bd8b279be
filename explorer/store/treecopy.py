"""Copying a layer-form tree exactly: whiteout devices, opaque markers, hard links,
modes and times kept, symlinks never followed. Used to freeze a container's diff into
a new layer without disturbing the live one."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from ..overlayfs import is_opaque, mark_opaque

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEAF_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_tree(src: str, dst: str) -> set[str]:
    """Copy the contents of ``src`` into the existing directory ``dst``; returns the paths
    copied (``/a/b``, relative to ``src``).

    Every directory is opened relative to its parent and every file by name in it, so a
    tree whose paths are longer than PATH_MAX (a container can make one) copies like any
    other. Only the directories from the top to the one being copied are open at a time.
    A directory that cannot be listed is left out, as ``os.walk`` would; callers compare
    the paths copied with their index."""
    copied: set[str] = set()
    links: dict[tuple[int, int], str] = {}  # inode → where its first copy went
    src_top = os.open(src, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        dst_top = os.open(dst, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except BaseException:
        os.close(src_top)
        raise
    _copy_opaque(src_top, dst_top)
    # One frame per open directory: its fds, its path, the subdirectories still to copy
    # and, below the top, its own stat (applied once everything inside it is written).
    stack: list[tuple[int, int, str, list[tuple[str, os.stat_result]], os.stat_result | None]] = []
    try:
        stack.append((src_top, dst_top, "", [], None))
        stack[-1][3].extend(_copy_entries(src_top, dst_top, dst_top, "", copied, links))
        while stack:
            sfd, dfd, rel, pending, own = stack[-1]
            if not pending:
                stack.pop()
                if own is not None:
                    _copy_meta_fd(dfd, own)
                os.close(sfd)
                os.close(dfd)
                continue
            name, st = pending.pop()
            child_rel = f"{rel}/{name}"
            try:
                child_src = os.open(name, _DIR_FLAGS, dir_fd=sfd)
            except PermissionError:
                continue
            try:
                child_dst = os.open(name, _DIR_FLAGS, dir_fd=dfd)
            except BaseException:
                os.close(child_src)
                raise
            stack.append((child_src, child_dst, child_rel, [], st))
            _copy_opaque(child_src, child_dst)
            stack[-1][3].extend(_copy_entries(child_src, child_dst, dst_top, child_rel, copied, links))
    finally:
        for sfd, dfd, _rel, _pending, _own in stack:
            os.close(sfd)
            os.close(dfd)
    return copied


def _copy_entries(
    sfd: int, dfd: int, dst_top: int, rel: str, copied: set[str], links: dict[tuple[int, int], str]
) -> list[tuple[str, os.stat_result]]:
    """Copy what directory ``sfd`` holds into ``dfd``, its subdirectories made empty; returns
    them (name and stat) for the caller to fill."""
    subdirs: list[tuple[str, os.stat_result]] = []
    try:
        listing = os.listdir(sfd)
    except PermissionError:
        return subdirs
    for name in listing:
        st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
        mode = st.st_mode
        path = f"{rel}/{name}"
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dfd)
            subdirs.append((name, st))
            copied.add(path)
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=sfd), name, dir_fd=dfd)
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            first = links.get(key) if st.st_nlink > 1 else None
            if first is not None:
                _link(dst_top, first, dfd, name)
                copied.add(path)
                continue
            _copy_file(sfd, dfd, name, st.st_size)
            links[key] = path
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dfd)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, stat.S_IMODE(mode), dir_fd=dfd)
        else:
            continue
        _copy_meta(dfd, name, st)
        copied.add(path)
    return subdirs


def _copy_file(sfd: int, dfd: int, name: str, size: int) -> None:
    src = os.open(name, _LEAF_FLAGS, dir_fd=sfd)
    try:
        out = os.open(name, _NEW_FLAGS, 0o600, dir_fd=dfd)
        try:
            _copy_data(src, out, size)
        finally:
            os.close(out)
    finally:
        os.close(src)


def _copy_data(src: int, out: int, size: int) -> None:
    """In the kernel where it can (``copy_file_range`` shares extents on file systems that
    can), else through a buffer, from wherever the kernel got to."""
    left = size
    try:
        while left > 0:
            n = os.copy_file_range(src, out, left)
            if n == 0:
                return
            left -= n
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(src, 1 << 20):
        view = memoryview(chunk)
        while view:
            view = view[os.write(out, view) :]


def _link(dst_top: int, first: str, dfd: int, name: str) -> None:
    """Hard-link ``name`` in ``dfd`` to ``first`` (a path below ``dst_top``), its directory
    found by name from the top, never through a symlink."""
    parent, _, leaf = first[1:].rpartition("/")
    fds: list[int] = []
    try:
        at = dst_top
        for part in parent.split("/") if parent else []:
            at = os.open(part, _DIR_FLAGS, dir_fd=at)
            fds.append(at)
        os.link(leaf, name, src_dir_fd=at, dst_dir_fd=dfd, follow_symlinks=False)
    finally:
        for fd in fds:
            os.close(fd)


def _copy_meta(dfd: int, name: str, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.chown(name, st.st_uid, st.st_gid, dir_fd=dfd, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
    with contextlib.suppress(OSError):
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)


def _copy_meta_fd(fd: int, st: os.stat_result) -> None:
    if os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.fchown(fd, st.st_uid, st.st_gid)
    os.fchmod(fd, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_opaque(src: int, dst: int) -> None:
    if is_opaque(src):
        with contextlib.suppress(OSError):
            mark_opaque(dst)
