"""Index a directory in overlay form: a container's upperdir or what a build step left.

The disk is read as overlayfs wrote it: a 0/0 character device is a whiteout, an
``overlay.opaque`` xattr marks an opaque directory, inodes with several names are
hard links. Inside the store's user namespace the disk holds every mapped owner, but
not ids beyond the mapping, and devices are inert placeholders, so a ``base`` index
(what the layers below said about the same paths) lets ownership and types the disk
cannot hold survive a scan.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator

from ..digest import CHUNK, new_xxh3
from ..overlayfs import is_opaque
from .extract import EMPTY_DIGEST, disk_mode, seconds
from .index import BLOCK, CHAR, DIR, FILE, HARDLINK, SYMLINK, WHITEOUT, FileEntry, type_from_mode
from .tarsplit import TreeReader


def _digest(tree: TreeReader, rel: str, size: int) -> str:
    if size == 0:
        return EMPTY_DIGEST
    fd, _st = tree.open(rel)
    try:
        h = new_xxh3()
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def _keep_base(st: os.stat_result, kind: str, mode: int, base: FileEntry) -> tuple[str, int, int, int, int, int]:
    """Type, mode, uid, gid, devmajor, devminor from ``base`` where the disk could not hold them."""
    uid, gid = base.uid, base.gid
    kept_kind, devmajor, devminor = kind, 0, 0
    if base.type in (CHAR, BLOCK) and kind == FILE and st.st_size == 0:
        kept_kind, devmajor, devminor = base.type, base.devmajor, base.devminor
    elif base.type == HARDLINK and kind == FILE:
        kept_kind = FILE
    elif base.type != kind:
        return kind, mode, st.st_uid, st.st_gid, 0, 0
    expected = disk_mode(base.type if base.type != HARDLINK else FILE, base.mode, False)
    if kept_kind != kind or (mode & ~0o2000) == (expected & ~0o2000):
        mode = base.mode
    return kept_kind, mode, uid, gid, devmajor, devminor


def scan_dir(diff_dir: str, *, base: dict[str, FileEntry] | None = None) -> list[FileEntry]:
    """Index every path under ``diff_dir`` (never ``/`` itself), sorted by path.

    ``base`` maps paths to what the store knew before (for a container, the entries of
    its image's layers). Where the disk shows a path owned by us, the store cannot have
    written its real owner, so base's uid/gid (and a device type hidden behind a
    placeholder) are kept. Overlay's redirect and metacopy xattrs are ignored.
    """
    root = os.path.abspath(diff_dir)
    me = (os.geteuid(), os.getegid())
    found, links, opaque = _walk(root)
    found.sort(key=lambda item: item[0])

    from ..runtime.storens import owner_filter, privileged

    with TreeReader(root) as tree:
        return _entries(found, links, opaque, tree, base, me, owner_filter(), privileged())


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _walk(root: str) -> tuple[list[tuple[str, os.stat_result]], dict[str, str], set[str]]:
    """Every path below ``root`` with its lstat, the targets of its symlinks and its opaque
    directories.

    Each directory is opened relative to its parent and read through that descriptor, so
    a path longer than PATH_MAX (a RUN may make one: the kernel limits each call's path,
    not a tree's depth) is scanned like any other. Only the directories from the root to
    the one being read are open at a time.
    """
    found: list[tuple[str, os.stat_result]] = []
    links: dict[str, str] = {}
    opaque: set[str] = set()

    def read(fd: int, rel_dir: str) -> Iterator[str]:
        """Record the entries of directory ``fd``; the names of its subdirectories."""
        subdirs: list[str] = []
        with os.scandir(fd) as it:
            for dent in it:
                rel = f"{rel_dir}/{dent.name}"
                st = dent.stat(follow_symlinks=False)
                found.append((rel, st))
                if stat.S_ISDIR(st.st_mode):
                    subdirs.append(dent.name)
                elif stat.S_ISLNK(st.st_mode):
                    links[rel] = os.readlink(dent.name, dir_fd=fd)
        return iter(subdirs)

    top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    stack = [(top, "", read(top, ""))]
    try:
        while stack:
            fd, rel_dir, pending = stack[-1]
            name = next(pending, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            rel = f"{rel_dir}/{name}"
            stack.append((child, rel, iter(())))  # on the stack before reading: an error closes it
            if is_opaque(child):
                opaque.add(rel)
            stack[-1] = (child, rel, read(child, rel))
    finally:
        for fd, _rel, _pending in stack:
            os.close(fd)
    return found, links, opaque


def _entries(
    found: list[tuple[str, os.stat_result]],
    links: dict[str, str],
    opaque_dirs: set[str],
    tree: TreeReader,
    base: dict[str, FileEntry] | None,
    me: tuple[int, int],
    can_own: Callable[[int, int], bool],
    devices: bool,
) -> list[FileEntry]:
    primaries: dict[tuple[int, int], str] = {}
    out: list[FileEntry] = []
    for path, st in found:
        kind = type_from_mode(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
        uid, gid = st.st_uid, st.st_gid
        devmajor = devminor = 0
        if kind == CHAR and st.st_rdev == 0:
            kind = WHITEOUT
        elif kind in (CHAR, BLOCK):
            devmajor, devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        link: str | None = None
        if kind not in (DIR, WHITEOUT) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = primaries.setdefault(key, path)
            if first != path:
                link = first
        old = base.get(path) if base else None
        if old is not None and (uid, gid) == me and not can_own(old.uid, old.gid):
            kind, mode, uid, gid, keep_major, keep_minor = _keep_base(st, kind, mode, old)
            if kind in (CHAR, BLOCK) and not stat.S_ISCHR(st.st_mode) and not stat.S_ISBLK(st.st_mode):
                devmajor, devminor = keep_major, keep_minor
        elif (
            old is not None
            and old.type in (CHAR, BLOCK)
            and kind == FILE
            and st.st_size == 0
            and (mode == 0 or not devices)
        ):
            # The inert stand-in a user namespace keeps for a device node (see extract).
            kind, mode, devmajor, devminor = old.type, old.mode, old.devmajor, old.devminor
        size = 0
        digest: str | None = None
        opaque = False
        if link is not None:
            kind = HARDLINK
        elif kind == FILE:
            size = st.st_size
            digest = _digest(tree, path[1:], size)
        elif kind == SYMLINK:
            link = links[path]
        elif kind == DIR:
            opaque = path in opaque_dirs
        out.append(
            FileEntry(
                path=path,
                type=kind,
                mode=mode,
                uid=uid,
                gid=gid,
                size=size,
                mtime=seconds(st.st_mtime_ns),
                digest=digest,
                link=link,
                opaque=opaque,
                devmajor=devmajor,
                devminor=devminor,
            )
        )
    return out
