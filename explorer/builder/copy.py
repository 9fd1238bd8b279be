"""COPY and ADD: what lands where, with which owner and mode, written as a layer.

The rules are Docker's legacy builder's (moby ``builder/dockerfile/copy.go``), because
that is what the oracle tests compare against:

- a directory source copies its *contents*; the destination directory, when it is
  created, is 0755 and belongs to the --chown owner; its missing parents belong to root;
- a file source lands at ``dest/<name>`` when ``dest`` ends in ``/`` or is an existing
  directory, else at ``dest``; its missing parents belong to the --chown owner;
- several sources (or a wildcard matching several) need a destination ending in ``/``;
- a symlink named as a source is followed (inside the context); symlinks inside a copied
  directory are copied as symlinks; hard links among copied files stay hard links;
- modes come from the source, owners from --chown (default 0:0), never from the disk;
- a copied directory over an image path that is not a directory replaces it;
- ADD of a local tar archive (plain, gzip, bzip2, xz or zstd) extracts it, keeping the
  archive's owners and modes.

Content is written straight into a staging layer directory; directories that already
exist in the image are mirrored with their metadata so the layer is valid overlay form.
The file index built here is the layer's truth (owners a rootless store cannot set).
Unchanged files can be hard-linked from an earlier layer instead of copied: layer
directories are never modified in place, and a link is only made when the earlier inode
already has exactly the mode, owner and mtime wanted.
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import functools
import gzip
import lzma
import os
import posixpath
import stat
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

import xxhash
import zstandard

from ..errors import ArchiveError, DockerfileError, TruncatedArchive
from ..overlayfs import mark_opaque
from ..store import tarstream
from ..store.export import ExportRules, export_view
from ..store.extract import EMPTY_DIGEST, disk_mode
from ..store.index import DIR, FIFO, FILE, HARDLINK, SYMLINK, FileEntry, ancestors, normalize
from ..store.tarstream import ByteSource, TarReader
from ..store.union import UnionEntry, UnionView
from .context import BuildContext, ContextEntry, SourceMatch

_AS_ROOT = os.geteuid() == 0


def _read_umask() -> int:
    """The process umask without changing it (os.umask can only set it)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: assume the worst, so every directory gets its chmod


_UMASK = _read_umask()


@dataclass(frozen=True)
class Owner:
    uid: int = 0
    gid: int = 0


ROOT = Owner()


@dataclass(slots=True)
class CopyItem:
    """One path to place in the new layer.

    ``source`` is the host file to read (regular files), ``data`` inline content (heredocs);
    ``link`` a symlink target or, for a hard link, the image path of the file it joins.
    """

    dest: str
    kind: str
    mode: int
    owner: Owner
    mtime_ns: int
    size: int = 0
    digest: str | None = None
    link: str | None = None
    source: str | None = None
    data: bytes | None = None
    reader: ByteSource | None = None
    immutable: bool = False  # ``source`` is a layer file, safe to hard-link


class CopyError(DockerfileError):
    """A COPY/ADD that cannot be carried out (bad destination, unknown owner …)."""


# --- owners ------------------------------------------------------------------------------


def _table(view: UnionView, path: str) -> list[list[str]]:
    try:
        with view.open(path) as fh:
            text = fh.read(16 << 20).decode("utf-8", "replace")
    except Exception:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_owner(view: UnionView, spec: str | None, line: int, filename: str, keyword: str) -> Owner:
    """``--chown=user[:group]`` against the image's own /etc/passwd and /etc/group.

    As in Docker's legacy builder a missing group means "the group named like the user"
    (``--chown=1000`` is 1000:1000).
    """
    if not spec:
        return ROOT
    parts = spec.split(":")
    if len(parts) > 2 or not parts[0]:
        raise CopyError(
            f"{keyword} --chown: invalid owner {spec!r} (use user, user:group, uid or uid:gid)", line, filename
        )
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1] or parts[0])

    def lookup(name: str, table: str, what: str) -> int:
        if name.isdigit():
            return int(name)
        for row in _table(view, table):
            if len(row) >= 3 and row[0] == name and row[2].isdigit():
                return int(row[2])
        raise CopyError(
            f"{keyword} --chown: unable to find {what} {name}: no matching entries in {table}", line, filename
        )

    return Owner(lookup(user, "/etc/passwd", "user"), lookup(group, "/etc/group", "group"))


def parse_chmod(spec: str | None, line: int, filename: str, keyword: str) -> int | None:
    if not spec:
        return None
    try:
        value = int(spec, 8)
    except ValueError:
        value = -1
    if not 0 <= value <= 0o7777:
        raise CopyError(f"{keyword} --chmod: invalid mode {spec!r} (use octal, e.g. 0755)", line, filename)
    return value


# --- destinations ---------------------------------------------------------------------------


def absolute_dest(dest: str, workdir: str) -> tuple[str, bool]:
    """The destination as an absolute image path, and whether it was written as a directory."""
    as_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    return normalize(full), as_dir


def _is_dir(view: UnionView, path: str) -> bool:
    hit = view.lookup(path)
    return hit is not None and hit.entry.type == DIR


# --- the layer writer --------------------------------------------------------------------------


class LayerWriter:
    """Places items into a staging ``diff`` directory over ``view`` and indexes them."""

    def __init__(
        self,
        diff_dir: str,
        view: UnionView,
        filename: str = "Dockerfile",
        line: int = 0,
        keyword: str = "COPY",
        reuse: Mapping[str, tuple[str, str | None]] | None = None,
        base: Mapping[str, FileEntry] | None = None,
        base_ready: Callable[[], None] | None = None,
        side_dir: str | None = None,
    ) -> None:
        """``reuse`` maps paths to an earlier layer's file there (its disk path and digest), to
        hard-link instead of copy. ``base`` is instead the index of a tree that ``diff_dir``
        holds already — a hard-link clone of an earlier result of the same step, possibly
        still being made: ``base_ready`` blocks until it is complete and is called before
        the first change on disk. Items equal to the base are then kept as they are, so a
        layer that differs in one file costs one file's work on disk. Meanwhile new file
        content is written into ``side_dir`` (``elsewhere`` says where, by layer-relative
        path) and moved into place by ``settle``, so the layer's tar can be hashed while
        the clone is still being made."""
        self.diff = diff_dir
        self.view = view
        self.filename = filename
        self.line = line
        self.keyword = keyword
        self.reuse = reuse or {}
        self.entries: dict[str, FileEntry] = {}
        self._dir_modes: dict[str, int] = {}
        self._fresh: set[str] = set()  # directories new in this layer: nothing below them in the image
        self._made: dict[str, int] = {}  # mode each directory was created with
        self.linked = 0
        self.copied_bytes = 0
        # Files that are the reused layer's file at the same path (hard links of it): the
        # new layer's tar shares their bytes with that layer's (see store.layertar).
        self.same: set[str] = set()
        self._dir_fds: dict[int, tuple[str, int]] = {}  # slot -> (directory, O_PATH fd)
        # The base's paths not yet kept or removed; what is left at the end goes.
        self._left: dict[str, FileEntry] = {p: e for p, e in (base or {}).items() if p != "/"}
        self._base_ready = base_ready
        self._queued: list[Callable[[], object]] = []
        self._side_dir = side_dir if base_ready is not None else None
        self.elsewhere: dict[str, str] = {}  # layer-relative path -> where its content is until settled
        self._sides = 0

    def _disk(self, path: str) -> str:
        return self.diff + path

    def _fail(self, message: str) -> CopyError:
        return CopyError(message, self.line, self.filename)

    # --- directories ---

    def _mirror_or_make(self, path: str, owner: Owner, mtime: float) -> None:
        """Make sure directory ``path`` exists in the layer, as the image has it or new."""
        have = self.entries.get(path)
        if have is not None:
            if have.type != DIR:
                raise self._fail(f"{self.keyword} failed: cannot create directory {path}: a file is in the way")
            return
        hit = self._below(path)
        if hit is not None and hit.entry.type == DIR:
            entry = hit.entry
            self._mkdir(path, entry)
            return
        opaque = hit is not None
        self._mkdir(path, FileEntry(path, DIR, 0o755, owner.uid, owner.gid, 0, mtime, opaque=opaque))
        self._fresh.add(path)

    def _below(self, path: str) -> UnionEntry | None:
        """What the image has at ``path``; nothing when a parent is new in this layer."""
        parent = path.rsplit("/", 1)[0]
        if parent in self._fresh:
            return None
        return self.view.lookup(path)

    def ensure_parents(self, path: str, owner: Owner, mtime: float) -> None:
        parent = path.rsplit("/", 1)[0]
        if not parent or parent in self._dir_modes:
            return
        for ancestor in reversed(ancestors(path)):
            if ancestor != "/":
                self._mirror_or_make(ancestor, owner, mtime)

    def ensure_dir(self, path: str, owner: Owner, mtime: float, parents_owner: Owner | None = None) -> bool:
        """A directory at ``path`` (parents too); returns whether it was created."""
        if path == "/":
            return False
        self.ensure_parents(path, parents_owner or owner, mtime)
        below = self._below(path)
        existed = path in self.entries or (below is not None and below.entry.type == DIR)
        self._mirror_or_make(path, owner, mtime)
        return not existed

    def _on_disk(self, change: Callable[[], object]) -> None:
        """Make a change on disk now or, while the base clone is still being made, queue it:
        ``_ready`` makes the queued changes in order once the clone is complete. So the
        whole plan is worked through alongside the clone, and only differences wait."""
        if self._base_ready is not None:
            self._queued.append(change)
        else:
            change()

    def _ready(self) -> None:
        """Wait for the base tree (if any) and make the changes queued meanwhile."""
        if self._base_ready is not None:
            wait, self._base_ready = self._base_ready, None
            wait()
            queued, self._queued = self._queued, []
            for change in queued:
                change()

    def _keep_dir(self, path: str) -> bool:
        """Keep the base's directory at ``path``, if it has one; else clear what it has there."""
        old = self._left.pop(path, None)
        if old is None:
            return False
        if old.type != DIR:
            self._remove_base(path, old)
            return False
        # The clone copies no directory metadata (store.linkclone): the mode is the base's
        # as cp made it, so it is set again at the end like everything else of a directory.
        made = disk_mode(DIR, old.mode, _AS_ROOT) & 0o777 & ~_UMASK
        if not _AS_ROOT and made & 0o700 != 0o700:
            made |= 0o700  # rootless: this writer must be able to write into it
            self._on_disk(functools.partial(os.chmod, self._disk(path), made))
        self._made[path] = -1  # unknown for certain: always chmod at the end
        return True

    def _remove_base(self, path: str, old: FileEntry) -> None:
        """Delete the base's ``old`` at ``path`` from disk (something else goes there)."""
        if old.type == DIR:
            self._forget_base_below(path)
        self._on_disk(functools.partial(self._remove_disk, self._disk(path), old.type == DIR))

    def _remove_disk(self, disk: str, is_dir: bool) -> None:
        if is_dir:
            from ..fsutil import rmtree

            self.close()  # a held fd may be of a directory about to go
            rmtree(disk)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(disk)

    def _forget_base_below(self, path: str) -> None:
        if self._left:
            prefix = path + "/"
            for key in [k for k in self._left if k.startswith(prefix)]:
                del self._left[key]

    def _mkdir(self, path: str, entry: FileEntry) -> None:
        disk = self._disk(path)
        if not (self._left and self._keep_dir(path)):
            self._on_disk(functools.partial(self._make_dir, path, disk, entry.mode))
        if entry.opaque:
            self._on_disk(functools.partial(mark_opaque, disk))
        if entry.path != path or entry.type != DIR or entry.size or entry.digest or entry.link:
            entry = replace(entry, path=path, type=DIR, size=0, digest=None, link=None)
        self.entries[path] = entry
        self._dir_modes[path] = entry.mode

    def _make_dir(self, path: str, disk: str, index_mode: int) -> None:
        # Made with its final mode where that lets us write into it (root may write
        # anywhere), so most directories need no chmod at the end.
        mode = disk_mode(DIR, index_mode, _AS_ROOT) & 0o777
        if not _AS_ROOT:
            mode |= 0o700
        try:
            os.mkdir(disk, mode)
            self._made[path] = mode & ~_UMASK
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(disk).st_mode):
                self.close()
                os.unlink(disk)
                os.mkdir(disk, mode)
                self._made[path] = mode & ~_UMASK

    # --- placing items ---

    def _clear(self, path: str) -> None:
        """Remove what this layer already has at ``path`` (a later source wins)."""
        old = self.entries.pop(path, None)
        if old is None:
            return
        self.elsewhere.pop(path[1:], None)
        if old.type == DIR:
            self._forget_base_below(path)
            for key in [k for k in self.elsewhere if k.startswith(path[1:] + "/")]:
                del self.elsewhere[key]
            prefix = path + "/"
            for key in [k for k in self.entries if k.startswith(prefix)]:
                del self.entries[key]
                self._dir_modes.pop(key, None)
                self.same.discard(key)
            self._dir_modes.pop(path, None)
        else:
            self.same.discard(path)
        self._on_disk(functools.partial(self._remove_disk, self._disk(path), old.type == DIR))

    def _keep_file(self, item: CopyItem, mtime: float) -> bool:
        """Whether the base has exactly this file at its path (then it stays as it is);
        whatever else the base has there is removed."""
        path = item.dest
        old = self._left.pop(path, None)
        if old is None:
            return False
        if item.kind == FILE and old == FileEntry(
            path, FILE, item.mode, item.owner.uid, item.owner.gid, item.size, mtime, item.digest or EMPTY_DIGEST
        ):
            self.entries[path] = old
            self.same.add(path)
            self.linked += 1
            return True
        self._remove_base(path, old)
        return False

    def place(self, item: CopyItem, parents_owner: Owner | None = None) -> None:
        path = item.dest
        if path == "/":
            return
        mtime = item.mtime_ns / 1e9
        self.ensure_parents(path, parents_owner or item.owner, mtime)
        if item.kind == DIR:
            have = self.entries.get(path)
            if have is not None and have.type != DIR:
                self._clear(path)
            hit = self._below(path) if have is None else None
            opaque = have.opaque if have is not None else (hit is not None and hit.entry.type != DIR)
            self._mkdir(path, FileEntry(path, DIR, item.mode, item.owner.uid, item.owner.gid, 0, mtime, opaque=opaque))
            if have is None and (hit is None or hit.entry.type != DIR):
                self._fresh.add(path)
            return
        self._clear(path)
        if self._left and self._keep_file(item, mtime):
            return
        disk = self._disk(path)
        if item.kind == FILE:
            if item.reader is not None:
                self._ready()  # a stream (an archive member) is read now or never
                self._write_file(item, disk)
            elif self._base_ready is not None and self._side_dir is not None:
                self._sides += 1
                side = f"{self._side_dir}/{self._sides}"
                self._write_file(item, side)  # now, beside the tree; moved in by settle()
                self.elsewhere[path[1:]] = side
                self._on_disk(functools.partial(os.rename, side, disk))
            else:
                self._on_disk(functools.partial(self._write_file, item, disk))
            entry = FileEntry(
                path, FILE, item.mode, item.owner.uid, item.owner.gid, item.size, mtime, item.digest or EMPTY_DIGEST
            )
        elif item.kind == HARDLINK:
            target = self.entries.get(item.link or "")
            if target is None or target.type != FILE:
                raise self._fail(f"{self.keyword} failed: hard link {path} to {item.link}, which is not copied")
            self._on_disk(functools.partial(os.link, self._disk(target.path), disk))
            entry = FileEntry(path, HARDLINK, target.mode, target.uid, target.gid, 0, target.mtime, None, target.path)
        elif item.kind == SYMLINK:
            self._on_disk(functools.partial(self._make_symlink, item, disk))
            entry = FileEntry(
                path, SYMLINK, item.mode or 0o777, item.owner.uid, item.owner.gid, 0, mtime, None, item.link
            )
        elif item.kind == FIFO:
            self._on_disk(functools.partial(self._make_fifo, item, disk))
            entry = FileEntry(path, FIFO, item.mode, item.owner.uid, item.owner.gid, 0, mtime)
        else:
            return  # sockets and devices are not copied
        self.entries[path] = entry

    def _make_symlink(self, item: CopyItem, disk: str) -> None:
        os.symlink(item.link or "", disk)
        self._own(disk, item.owner)
        with contextlib.suppress(OSError):
            os.utime(disk, ns=(item.mtime_ns, item.mtime_ns), follow_symlinks=False)

    def _make_fifo(self, item: CopyItem, disk: str) -> None:
        os.mkfifo(disk, 0o600)
        self._own(disk, item.owner)
        os.chmod(disk, item.mode)

    @staticmethod
    def _own(disk: str, owner: Owner) -> None:
        if _AS_ROOT and (owner.uid or owner.gid):
            with contextlib.suppress(OSError):
                os.lchown(disk, owner.uid, owner.gid)

    def _write_file(self, item: CopyItem, disk: str) -> None:
        want_mode = disk_mode(FILE, item.mode, _AS_ROOT)
        if item.immutable and item.source is not None and self._try_link(item.source, disk, item, want_mode):
            self.linked += 1
            return
        earlier = self.reuse.get(item.dest)
        if (
            earlier is not None
            and item.digest is not None
            and earlier[1] == item.digest
            and self._try_link(earlier[0], disk, item, want_mode)
        ):
            self.linked += 1
            self.same.add(item.dest)
            return
        fd = os.open(disk, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            if item.data is not None:
                _write_all(fd, item.data)
                written = len(item.data)
            elif item.reader is not None:
                written, digest = _pump(item.reader, fd)
                item.digest, item.size = digest, written
            elif item.source is not None:
                written = _copy_content(item.source, fd, item.size)
            else:
                written = 0
            if written != item.size:
                raise self._fail(f"{self.keyword} failed: {item.source or item.dest} changed while it was copied")
            self.copied_bytes += written
            if _AS_ROOT and (item.owner.uid or item.owner.gid):
                os.fchown(fd, item.owner.uid, item.owner.gid)
            if want_mode != 0o600:
                os.fchmod(fd, want_mode)
            os.utime(fd, ns=(item.mtime_ns, item.mtime_ns))
        finally:
            os.close(fd)

    def _dir_fd(self, slot: int, directory: str) -> int:
        """An O_PATH fd of ``directory``, kept while the next paths are in it too: linking
        by name relative to it spares the kernel two long path walks per file."""
        held = self._dir_fds.get(slot)
        if held is not None:
            if held[0] == directory:
                return held[1]
            os.close(held[1])
            del self._dir_fds[slot]
        fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._dir_fds[slot] = (directory, fd)
        return fd

    def close(self) -> None:
        """Release the directory fds (``finish`` does; call it when giving up instead)."""
        for _directory, fd in self._dir_fds.values():
            os.close(fd)
        self._dir_fds.clear()

    def _try_link(self, candidate: str, disk: str, item: CopyItem, want_mode: int) -> bool:
        """Hard-link an identical, identically owned earlier inode instead of copying."""
        src_dir, _, src_name = candidate.rpartition("/")
        dst_dir, _, dst_name = disk.rpartition("/")
        try:
            src_fd = self._dir_fd(0, src_dir)
            st = os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != item.size or stat.S_IMODE(st.st_mode) != want_mode:
            return False
        if st.st_mtime_ns != item.mtime_ns:
            return False
        if _AS_ROOT and (st.st_uid, st.st_gid) != (item.owner.uid, item.owner.gid):
            return False
        try:
            os.link(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=self._dir_fd(1, dst_dir), follow_symlinks=False)
        except OSError:
            return False
        return True

    def finish(self, settle: bool = True) -> list[FileEntry]:
        """Give directories their final modes (deepest first) and return the index. With
        ``settle=False`` what waits for the base clone stays queued: the caller hashes the
        layer (see ``elsewhere``) and then calls ``settle``."""
        if self._left:  # the base's paths this layer does not have
            for path in sorted(self._left, key=lambda p: p.count("/"), reverse=True):
                old = self._left.get(path)
                if old is not None:
                    self._remove_base(path, old)
            self._left.clear()
        self._on_disk(self._fix_directories)
        self._first_link_holds_content()
        if settle:
            self.settle()
        return sorted(self.entries.values(), key=lambda e: e.path)

    def settle(self) -> None:
        """Wait for the base clone and make every change still queued: the tree is final."""
        self._ready()
        self.close()
        self.elsewhere.clear()
        if self._side_dir is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._side_dir)

    def _fix_directories(self) -> None:
        self.close()
        for path in sorted(self._dir_modes, key=lambda p: p.count("/"), reverse=True):
            entry = self.entries[path]
            disk = self._disk(path)
            if entry.uid or entry.gid:
                self._own(disk, Owner(entry.uid, entry.gid))
            want = disk_mode(DIR, entry.mode, _AS_ROOT)
            if self._made.get(path) != want:
                os.chmod(disk, want)
            with contextlib.suppress(OSError):
                ns = int(entry.mtime * 1e9)
                os.utime(disk, ns=(ns, ns), follow_symlinks=False)

    def _first_link_holds_content(self) -> None:
        """Of names sharing an inode, the first in tar order is the file and the others link
        to it, whatever order an archive had them in (a tar can only link backwards)."""
        groups: dict[str, list[str]] = {}
        for entry in self.entries.values():
            if entry.type == HARDLINK and entry.link:
                groups.setdefault(entry.link, [entry.link]).append(entry.path)
        for primary, names in groups.items():
            first = min(names, key=lambda p: p.split("/"))
            if first == primary or primary not in self.entries:
                continue
            data = self.entries[primary]
            self.entries[first] = replace(data, path=first)
            for name in names:
                if name != first:
                    self.entries[name] = replace(data, path=name, type=HARDLINK, size=0, digest=None, link=first)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _copy_content(source: str, fd: int, size: int) -> int:
    """Copy in the kernel where it can (copy_file_range), else through a buffer; returns
    how many bytes the source had, which is more than ``size`` if it grew meanwhile.

    One byte more than expected is asked for, so a short count says "end of file" without
    another read in the common case.
    """
    src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        done = 0
        try:
            while True:
                want = size + 1 - done
                n = os.copy_file_range(src, fd, want)
                done += n
                if n == 0 or done > size or (n < want and done == size):
                    break
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            while chunk := os.read(src, 1 << 20):
                _write_all(fd, chunk)
                done += len(chunk)
        return done
    finally:
        os.close(src)


def _pump(reader: ByteSource, fd: int) -> tuple[int, str]:
    h = xxhash.xxh3_128()
    total = 0
    while chunk := reader.read(1 << 20):
        h.update(chunk)
        _write_all(fd, chunk)
        total += len(chunk)
    return total, (h.hexdigest() if total else EMPTY_DIGEST)


# --- planning: which items a COPY/ADD makes -------------------------------------------------------


@dataclass
class CopyPlan:
    """Items in the order they are placed, plus the directory targets of directory sources."""

    items: list[CopyItem]
    dir_targets: list[tuple[str, Owner, int]]  # (path, owner and mtime_ns for it when created)
    parents_owner: dict[str, Owner]  # per item dest: owner of missing parents


def _file_target(view: UnionView, dest: str, dest_as_dir: bool, name: str) -> str:
    real = view.resolve_path(dest)
    if dest_as_dir or _is_dir(view, real):
        return posixpath.join(real, name) if real != "/" else "/" + name
    parent = view.resolve_path(posixpath.dirname(dest))
    return posixpath.join(parent, posixpath.basename(dest))


def _check_dest_dir(view: UnionView, path: str, keyword: str, line: int, filename: str) -> None:
    hit = view.lookup(path)
    if hit is not None and hit.entry.type != DIR:
        raise CopyError(f"{keyword} failed: destination {path} exists and is not a directory", line, filename)


def plan_context_copy(
    ctx: BuildContext,
    matches: list[SourceMatch],
    digests: Mapping[str, str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner,
    chmod: int | None,
    line: int,
    keyword: str = "COPY",
) -> CopyPlan:
    """Items for sources from the build context (after wildcard expansion)."""
    items: list[CopyItem] = []
    dir_targets: list[tuple[str, Owner, int]] = []
    parents: dict[str, Owner] = {}
    for match in matches:
        if match.is_dir:
            target = view.resolve_path(dest)
            _check_dest_dir(view, target, keyword, line, ctx.filename)
            dir_targets.append((target, owner, match.entry.mtime_ns))
            base = match.real
            cut = len(base) + 1 if base else 0
            for entry in ctx.under(base):
                rel = entry.rel[cut:]
                path = target.rstrip("/") + "/" + rel
                items.append(_context_item(ctx, entry, path, digests, owner, chmod))
        else:
            target = _file_target(view, dest, dest_as_dir, match.name)
            items.append(_context_item(ctx, match.entry, target, digests, owner, chmod))
            parents[target] = owner
    _link_hardlinks(items)
    return CopyPlan(items, dir_targets, parents)


def _context_item(
    ctx: BuildContext, entry: ContextEntry, path: str, digests: Mapping[str, str], owner: Owner, chmod: int | None
) -> CopyItem:
    if stat.S_ISREG(entry.mode):
        mode = chmod if chmod is not None else entry.mode & 0o7777
        # The link field holds a placeholder until hard links are grouped.
        link = f"\0{entry.dev}:{entry.ino}" if entry.nlink > 1 else None
        return CopyItem(
            path, FILE, mode, owner, entry.mtime_ns, entry.size, digests.get(entry.rel), link, ctx.abspath(entry.rel)
        )
    kind = entry.kind
    if kind == SYMLINK:
        return CopyItem(path, kind, entry.mode & 0o7777, owner, entry.mtime_ns, link=entry.link)
    return CopyItem(path, kind, chmod if chmod is not None else entry.mode & 0o7777, owner, entry.mtime_ns)


def _link_hardlinks(items: list[CopyItem]) -> None:
    """Files sharing an inode: the first in path order keeps the content, the rest link to it."""
    first: dict[str, str] = {}
    for item in sorted((i for i in items if i.kind == FILE and i.link), key=lambda i: i.dest):
        key = item.link or ""
        if key in first:
            item.kind = HARDLINK
            item.link = first[key]
            item.source = None
        else:
            first[key] = item.dest
            item.link = None


def plan_image_copy(
    src_view: UnionView,
    sources: list[str],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner | None,
    chmod: int | None,
    line: int,
    filename: str,
    keyword: str = "COPY",
) -> tuple[CopyPlan, list[FileEntry]]:
    """Items for COPY --from=<stage|image>; also the source entries (for the checksum).

    Without --chown (``owner`` None) files keep the owners they have in the source image,
    and directories the copy has to create belong to root (moby's
    ``testBuildPreserveOwnership``); with it, everything copied gets that owner.
    """
    items: list[CopyItem] = []
    dir_targets: list[tuple[str, Owner, int]] = []
    parents: dict[str, Owner] = {}
    seen: list[FileEntry] = []
    placed: dict[str, CopyItem] = {}  # source path -> item, for hard links
    walk: list[UnionEntry] | None = None
    for src in sources:
        pattern = normalize(src)
        if any(ch in pattern for ch in "*?["):
            from .context import match_regex

            if walk is None:
                walk = src_view.walk()
            regex = match_regex(pattern.lstrip("/"))
            paths = [u.path for u in walk if regex.fullmatch(u.path.lstrip("/"))]
            if not paths:
                raise CopyError(f"{keyword} failed: no source files were specified: no match for {src}", line, filename)
        else:
            paths = [pattern]
        for written in paths:
            real = src_view.resolve_path(written)
            hit = src_view.lookup(real)
            if hit is None:
                raise CopyError(
                    f"{keyword} failed: {src}: no such file or directory in the source image", line, filename
                )
            if hit.entry.type == DIR:
                target = view.resolve_path(dest)
                _check_dest_dir(view, target, keyword, line, filename)
                dir_targets.append((target, owner or ROOT, round(hit.entry.mtime * 1e9)))
                if walk is None:
                    walk = src_view.walk()
                prefix = real.rstrip("/") + "/"
                below = [u for u in walk if u.path.startswith(prefix)]
                for u in below:
                    path = target.rstrip("/") + "/" + u.path[len(prefix) :]
                    item = _image_item(src_view, u, path, owner, chmod)
                    items.append(item)
                    placed[u.path] = item
                    seen.append(u.entry)
            else:
                target = _file_target(view, dest, dest_as_dir, posixpath.basename(written))
                item = _image_item(src_view, hit, target, owner, chmod)
                items.append(item)
                placed[hit.path] = item
                seen.append(hit.entry)
                parents[target] = owner or ROOT
    for item in items:
        if item.kind == HARDLINK:
            primary = placed.get(item.link or "")
            if primary is not None and primary.kind == FILE:
                item.link = primary.dest
            else:
                _as_file(src_view, item)
    return CopyPlan(items, dir_targets, parents), seen


def _image_item(src_view: UnionView, u: UnionEntry, path: str, owner: Owner | None, chmod: int | None) -> CopyItem:
    e = u.entry
    mode = chmod if chmod is not None and e.type != SYMLINK else e.mode
    who = owner if owner is not None else Owner(e.uid, e.gid)
    item = CopyItem(path, e.type, mode, who, round(e.mtime * 1e9), e.size, e.digest, e.link)
    if e.type in (FILE, HARDLINK):
        item.source = str(src_view.layers[u.layer].content_path(e.path))
        item.immutable = True
        if e.type == FILE:
            item.link = None
    return item


def _as_file(src_view: UnionView, item: CopyItem) -> None:
    """A hard link whose partner is not copied becomes a plain copy of the shared content."""
    primary = src_view.lookup(item.link or "")
    item.kind = FILE
    item.link = None
    if primary is not None:
        item.size, item.digest = primary.entry.size, primary.entry.digest


# --- ADD of a local archive ----------------------------------------------------------------------


_MAGICS = ((b"\x1f\x8b", "gz"), (b"BZh", "bz2"), (b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zst"))


def _compression(head: bytes) -> str:
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return ""


class _Decompressed:
    """The tar bytes of a compressed ADD source: a stream that ends early is a truncated
    archive, one that does not decode is a damaged one (both are errors, not crashes)."""

    def __init__(self, stream: ByteSource, kind: str) -> None:
        self._stream = stream
        self._kind = kind

    def read(self, n: int = -1, /) -> bytes:
        try:
            return self._stream.read(n)
        except EOFError:
            raise TruncatedArchive("", f"the {self._kind} stream ends early") from None
        except (OSError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as e:
            raise ArchiveError(f"the {self._kind} stream is damaged ({e})") from None


def _tar_bytes(stack: contextlib.ExitStack, raw: BinaryIO, kind: str) -> ByteSource:
    if kind == "gz":
        return _Decompressed(stack.enter_context(gzip.GzipFile(fileobj=raw, mode="rb")), "gzip")
    if kind == "bz2":
        return _Decompressed(stack.enter_context(bz2.BZ2File(raw, "rb")), "bzip2")
    if kind == "xz":
        return _Decompressed(stack.enter_context(lzma.LZMAFile(raw, "rb")), "xz")
    if kind == "zst":
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        return _Decompressed(stack.enter_context(reader), "zstd")
    return raw


def _first_block(source: ByteSource) -> bytes:
    head = b""
    while len(head) < tarstream.BLOCK and (more := source.read(tarstream.BLOCK - len(head))):
        head += more
    return head


@contextlib.contextmanager
def opened_archive(path: str) -> Iterator[TarReader | None]:
    """A streaming tar reader if ``path`` is a (possibly compressed) tar archive, else None.

    Like Docker, the content decides, not the name: whatever decompresses to a valid first
    tar header is an archive, and from there on every fault in it (a truncated member, a
    cut end-of-archive block, a bad header) is an error, as in Go's archive/tar.
    """
    with open(path, "rb") as probe:
        kind = _compression(probe.read(8))
    with contextlib.ExitStack() as stack:
        try:
            head = _first_block(_tar_bytes(stack, stack.enter_context(open(path, "rb")), kind))
        except ArchiveError:
            head = b""
    if not tarstream.is_header(head):
        yield None
        return
    with contextlib.ExitStack() as stack:
        yield TarReader(_tar_bytes(stack, stack.enter_context(open(path, "rb")), kind), strict_end=True)


class _MemberData:
    """The payload of the member a reader is at, read as a file (``CopyItem.reader``)."""

    def __init__(self, reader: TarReader) -> None:
        self._views = reader.payload()
        self._rest = b""

    def read(self, n: int = -1, /) -> bytes:
        if not self._rest:
            view = next(self._views, None)
            if view is None:
                return b""
            self._rest = bytes(view)
        if 0 <= n < len(self._rest):
            out, self._rest = self._rest[:n], self._rest[n:]
        else:
            out, self._rest = self._rest, b""
        return out


def _whole_seconds(ns: int) -> int:
    """Nanoseconds cut to whole seconds towards zero (as ``int(seconds)`` cuts)."""
    whole = abs(ns) // 1_000_000_000 * 1_000_000_000
    return whole if ns >= 0 else -whole


def archive_items(tar: TarReader, dest_dir: str, line: int, filename: str) -> Iterator[CopyItem]:
    """Items for every member of an archive extracted at ``dest_dir`` (owners as archived).

    Members are read as they are placed (streams cannot seek), so the caller must place
    each item before asking for the next.
    """
    base = dest_dir.rstrip("/")
    for member in tar:
        name = normalize("/" + member.name)
        if name == "/":
            continue
        path = base + name
        owner = Owner(member.uid, member.gid)
        mtime_ns = _whole_seconds(member.mtime_ns)
        mode = member.mode & 0o7777
        if member.is_dir:
            yield CopyItem(path, DIR, mode, owner, mtime_ns)
        elif member.is_file:
            yield CopyItem(path, FILE, mode, owner, mtime_ns, member.size, reader=_MemberData(tar))
        elif member.type == tarstream.SYM:
            yield CopyItem(path, SYMLINK, 0o777, owner, mtime_ns, link=member.linkname)
        elif member.type == tarstream.LNK:
            yield CopyItem(path, HARDLINK, mode, owner, mtime_ns, link=base + normalize("/" + member.linkname))
        elif member.type == tarstream.FIFO:
            yield CopyItem(path, FIFO, mode, owner, mtime_ns)


def place_all(writer: LayerWriter, plan: CopyPlan) -> None:
    for target, owner, mtime_ns in plan.dir_targets:
        writer.ensure_dir(target, owner, mtime_ns / 1e9, parents_owner=ROOT)
    for item in plan.items:
        writer.place(item, plan.parents_owner.get(item.dest))


def inline_items(
    contents: Iterable[tuple[str, bytes]],
    dest: str,
    dest_as_dir: bool,
    view: UnionView,
    owner: Owner,
    chmod: int | None,
    mtime_ns: int,
) -> CopyPlan:
    """Heredoc sources: ``(name, data)`` pairs become files."""
    items: list[CopyItem] = []
    parents: dict[str, Owner] = {}
    for name, data in contents:
        target = _file_target(view, dest, dest_as_dir, name)
        item = CopyItem(
            target,
            FILE,
            chmod if chmod is not None else 0o644,
            owner,
            mtime_ns,
            len(data),
            xxhash.xxh3_128_hexdigest(data) if data else EMPTY_DIGEST,
            data=data,
        )
        items.append(item)
        parents[target] = owner
    return CopyPlan(items, [], parents)


def export_subtree(view: UnionView, path: str, dest: str) -> None:
    """Copy what ``view`` shows at ``path`` (symlinks on the way followed inside the view)
    to ``dest`` on the host: RUN --mount from a stage or image needs real files to bind.
    Modes are kept as the layers keep them on disk (rootless, the owner can still read)."""
    real = view.resolve_path(path)
    if view.lookup(real) is None:
        raise FileNotFoundError(errno.ENOENT, "no such file or directory in the source image", path)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    rules = ExportRules(special_bits=True, file_bits=0 if _AS_ROOT else 0o400, dir_bits=0 if _AS_ROOT else 0o500)
    export_view(view, real, dest, rules)
