"""What a union view shows, written into a host directory: the one copy out of the store
into plain files, behind the window's Extract and drag-out, a new volume filled from its
image, and ``RUN --mount=from=`` (a stage or image bound into a build step).

What comes out of an image is untrusted, whoever asks for it, so every caller gets the
same hardening:

- every directory is opened relative to its parent with ``O_NOFOLLOW | O_DIRECTORY`` and
  every name is one component (never empty, ``.``, ``..``, or holding ``/`` or NUL), so no
  symlink — one the image brings or one already in the destination — can carry a write
  outside the destination;
- files are created ``O_CREAT | O_EXCL | O_NOFOLLOW``: a name that exists fails instead of
  being written through;
- symlinks are made as links and never followed; device nodes and whiteouts are skipped;
- setuid, setgid and sticky bits are dropped unless the caller keeps them;
- directories are made 0700 and get their own mode (and owner, and time) once everything
  below them is written, so a read-only directory does not stop its own copy.

Callers differ only in what they keep (``ExportRules``): the user's copy keeps contents and
permission bits; a volume keeps what Docker keeps when it fills one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import InvalidArgument, PathNotFound
from .index import DIR, FIFO, FILE, HARDLINK, SYMLINK, FileEntry

if TYPE_CHECKING:
    from .union import UnionEntry, UnionView

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SOURCE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ExportRules:
    """What a copy keeps beyond names, contents and permission bits."""

    special_bits: bool = False  # setuid, setgid, sticky
    owners: bool = False  # the index's owners, given only as root (real, or in the store's user namespace)
    times: bool = False  # the index's modification times
    hard_links: bool = False  # a second name of a file copied earlier becomes a link to that copy
    fifos: bool = False
    file_bits: int = 0  # added to every file's mode (0o600: the user can read and replace what was copied)
    dir_bits: int = 0  # added to every directory's mode


# The window's Extract and drag-out: the user's own copy, which they can read, change and remove.
USER_COPY = ExportRules(file_bits=0o600, dir_bits=0o700)
# A new volume filled from the image's directory, as Docker fills one.
VOLUME_FILL = ExportRules(special_bits=True, owners=True, times=True, hard_links=True, fifos=True)


def _name(part: str) -> str:
    if part in ("", ".", "..") or "/" in part or "\0" in part:
        raise InvalidArgument(f"refusing to write a file named {part!r}")
    return part


def _mode(e: FileEntry, rules: ExportRules) -> int:
    mode = e.mode & 0o7777
    if not rules.special_bits:
        mode &= ~_SPECIAL_BITS
    return mode | (rules.dir_bits if e.type == DIR else rules.file_bits)


def _finish(fd: int, e: FileEntry, rules: ExportRules) -> None:
    """Owner, then mode (a chown clears setuid and setgid), then time, through ``fd``."""
    if rules.owners and os.geteuid() == 0:
        with contextlib.suppress(OSError):
            os.fchown(fd, e.uid, e.gid)
    os.fchmod(fd, _mode(e, rules))
    if rules.times:
        with contextlib.suppress(OSError):
            os.utime(fd, (e.mtime, e.mtime))


def _copy_bytes(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while block := os.read(src, _CHUNK):
        view = memoryview(block)
        while view:
            view = view[os.write(dst, view) :]


class _Writer:
    def __init__(self, view: UnionView, rules: ExportRules) -> None:
        self.view = view
        self.rules = rules
        self.top = -1  # the destination's parent (or the destination itself, when filling it)
        # a file's path (a hard link's target) → (its layer, where its first copy went below top)
        self.copies: dict[str, tuple[int, str]] = {}

    def leaf(self, parent: int, name: str, hit: UnionEntry, where: str) -> None:
        """Write the non-directory ``hit`` as ``name`` in the directory ``parent``."""
        e, rules = hit.entry, self.rules
        if e.type == SYMLINK:
            os.symlink(e.link or "", name, dir_fd=parent)
            if rules.owners and os.geteuid() == 0:
                with contextlib.suppress(OSError):
                    os.chown(name, e.uid, e.gid, dir_fd=parent, follow_symlinks=False)
            if rules.times:
                with contextlib.suppress(OSError):
                    os.utime(name, (e.mtime, e.mtime), dir_fd=parent, follow_symlinks=False)
        elif e.type == FIFO:
            if rules.fifos:
                os.mkfifo(name, 0o600, dir_fd=parent)
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
                try:
                    _finish(fd, e, rules)
                finally:
                    os.close(fd)
        elif e.type in (FILE, HARDLINK):
            key = (e.link or "") if e.type == HARDLINK else e.path
            if rules.hard_links and self._link(parent, name, key, hit.layer):
                return
            fd = os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent)
            try:
                src = os.open(self.view.layers[hit.layer].content_path(e.path), _SOURCE_FLAGS)
                try:
                    _copy_bytes(src, fd)
                finally:
                    os.close(src)
                _finish(fd, e, rules)
            finally:
                os.close(fd)
            self.copies.setdefault(key, (hit.layer, where))
        # devices and whiteouts: nothing a plain directory should hold

    def _link(self, parent: int, name: str, key: str, layer: int) -> bool:
        """Link to the first copy of the inode ``key`` names, when one of its names was
        copied already from the same layer (tree order may put a link before its target);
        False to copy the content instead."""
        first = self.copies.get(key)
        if first is None or first[0] != layer:
            return False
        try:
            os.link(first[1], name, src_dir_fd=self.top, dst_dir_fd=parent, follow_symlinks=False)
        except OSError:
            return False
        return True


def export_view(
    view: UnionView,
    path: str,
    dest: str | os.PathLike[str],
    rules: ExportRules,
    *,
    into: bool = False,
    check: Callable[[], None] | None = None,
) -> None:
    """Write what ``view`` shows at ``path`` (taken as it is: a symlink is copied as a link)
    as ``dest``, which must not exist yet and whose parent must. With ``into``, ``dest`` is
    an existing directory that receives what the directory ``path`` holds, and its mode.
    ``check`` is called before each entry (it raises to cancel)."""
    hit = view.lookup(path)
    if hit is None:
        raise PathNotFound("image", path)
    path = hit.path  # normalised
    dest = os.fspath(dest)
    writer = _Writer(view, rules)
    if into:
        if hit.entry.type != DIR:
            raise InvalidArgument(f"{path} is a {hit.entry.type}, not a directory to copy into {dest}")
        writer.top = os.open(dest, _DIR_FLAGS)
        try:
            _tree(writer, path, os.dup(writer.top), "", hit, check)
        finally:
            os.close(writer.top)
        return
    parent_dir, name = os.path.split(dest.rstrip("/"))
    name = _name(name)
    writer.top = os.open(parent_dir or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if hit.entry.type != DIR:
            writer.leaf(writer.top, name, hit, name)
            return
        os.mkdir(name, 0o700, dir_fd=writer.top)
        _tree(writer, path, os.open(name, _DIR_FLAGS, dir_fd=writer.top), name, hit, check)
    finally:
        os.close(writer.top)


def _tree(
    writer: _Writer, path: str, top_fd: int, top_where: str, top: UnionEntry, check: Callable[[], None] | None
) -> None:
    """Everything below the directory ``path``, whose copy is open as ``top_fd`` (closed
    here). The view walks in tree order, so a directory's entries follow it without a gap:
    a stack of open directories holds the one being filled and its ancestors."""
    prefix = path.rstrip("/") + "/"
    stack: list[tuple[str, int, str, FileEntry]] = [(path.rstrip("/"), top_fd, top_where, top.entry)]
    try:
        for hit in writer.view.walk():
            if hit.path == path or not hit.path.startswith(prefix):
                continue
            if check is not None:
                check()
            parent, _, base = hit.path.rpartition("/")
            while len(stack) > 1 and stack[-1][0] != parent:
                _close(stack.pop(), writer.rules)
            if stack[-1][0] != parent:
                continue  # below something that is not a directory here
            name = _name(base)
            _, parent_fd, parent_where, _ = stack[-1]
            where = posixpath.join(parent_where, name) if parent_where else name
            if hit.entry.type == DIR:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
                stack.append((hit.path, os.open(name, _DIR_FLAGS, dir_fd=parent_fd), where, hit.entry))
            else:
                writer.leaf(parent_fd, name, hit, where)
        while stack:
            _close(stack.pop(), writer.rules)
    finally:
        for _, fd, _, _ in stack:
            os.close(fd)


def _close(item: tuple[str, int, str, FileEntry], rules: ExportRules) -> None:
    _, fd, _, entry = item
    try:
        _finish(fd, entry, rules)
    finally:
        os.close(fd)
