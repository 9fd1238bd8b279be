"""The layer writer of COPY, ADD and WORKDIR: items placed into a staging ``diff`` directory.

Directories that already exist in the image are mirrored with their metadata so the layer is
valid overlay form; the file index built here is the layer's truth (owners a rootless store
cannot set). Unchanged files can be hard-linked from an earlier layer instead of copied:
layer directories are never modified in place, and a link is only made when the earlier
inode already has exactly the mode, owner and mtime wanted.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import posixpath
import stat
from collections.abc import Callable, Mapping
from dataclasses import replace

import xxhash

from ..overlayfs import mark_opaque
from ..store.extract import EMPTY_DIGEST, disk_mode
from ..store.index import DIR, FIFO, FILE, HARDLINK, SYMLINK, FileEntry, ancestors, normalize
from ..store.tarstream import ByteSource
from ..store.union import UnionEntry, UnionView
from .copyitems import CopyError, CopyItem, Owner

AS_ROOT = os.geteuid() == 0


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
        # The mode of directories this writer makes for parents and targets (BuildKit's
        # MkdirAll: 0755, or the octal --chmod of the step).
        self.new_dir_mode = 0o755

    def _disk(self, path: str) -> str:
        return self.diff + path

    def _fail(self, message: str) -> CopyError:
        return CopyError(message, self.line, self.filename)

    # --- directories ---

    def _mirror_or_make(self, path: str, owner: Owner, mtime: float) -> None:
        """Make sure directory ``path`` exists in the layer, as the image has it or new.

        Something else already there is an error, as ``mkdir -p`` fails: a parent is never
        silently turned from a file into a directory (symlinks on the way are resolved
        before a path gets here)."""
        have = self.entries.get(path)
        if have is not None:
            if have.type != DIR:
                raise self._fail(
                    f"{self.keyword} failed: cannot create {path}: not a directory (a {have.type} is there)"
                )
            return
        hit = self._below(path)
        if hit is not None and hit.entry.type == DIR:
            # The image's directory, mirrored so the layer holds its parents: never opaque
            # (an opaque one below says what *it* replaced; copied up, it would hide the
            # layers between it and this one).
            self._mkdir(path, replace(hit.entry, opaque=False) if hit.entry.opaque else hit.entry)
            return
        if hit is not None:
            raise self._fail(
                f"{self.keyword} failed: cannot create {path}: not a directory (the image has a {hit.entry.type} there)"
            )
        self._mkdir(path, FileEntry(path, DIR, self.new_dir_mode, owner.uid, owner.gid, 0, mtime))
        self._fresh.add(path)

    def resolve(self, path: str) -> str:
        """``path`` with the symlinks among its parents followed, as the image plus what this
        layer has placed so far shows them, never leaving the root: where an archive member
        lands when its directory is a symlink (Go's untar follows it, inside the root)."""
        parts = [p for p in path.split("/") if p]
        last = parts.pop() if parts else ""
        done = "/"
        hops = 0
        while parts:
            candidate = posixpath.join(done, parts.pop(0))
            entry = self.entries.get(candidate)
            if entry is None:
                below = self._below(candidate)
                entry = below.entry if below is not None else None
            if entry is not None and entry.type == SYMLINK and entry.link is not None:
                hops += 1
                if hops > 40:
                    raise self._fail(f"{self.keyword} failed: too many levels of symbolic links in {path}")
                base = "/" if entry.link.startswith("/") else done
                parts = [p for p in normalize(posixpath.join(base, entry.link)).split("/") if p] + parts
                done = "/"
                continue
            done = candidate
        return posixpath.join(done, last) if last else done

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
        made = disk_mode(DIR, old.mode, AS_ROOT) & 0o777 & ~_UMASK
        if not AS_ROOT and made & 0o700 != 0o700:
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
        mode = disk_mode(DIR, index_mode, AS_ROOT) & 0o777
        if not AS_ROOT:
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

    def place(self, item: CopyItem, parents_owner: Owner | None = None, replace_any: bool = False) -> None:
        """Put ``item`` at its path. A directory goes into an existing directory (taking the
        item's metadata); any other item replaces what is there. Like BuildKit's copy, a
        directory onto a non-directory or a file onto a directory is an error; an archive
        member (``replace_any``) replaces either, as Go's untar does."""
        path = item.dest
        if path == "/":
            return
        mtime = item.mtime_ns / 1e9
        self.ensure_parents(path, parents_owner or item.owner, mtime)
        if not replace_any:
            self._refuse_type_change(item)
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

    def _refuse_type_change(self, item: CopyItem) -> None:
        path = item.dest
        have = self.entries.get(path)
        if have is None:
            hit = self._below(path)
            have = hit.entry if hit is not None else None
        if have is None:
            return
        if item.kind == DIR and have.type != DIR:
            raise self._fail(f"{self.keyword} failed: cannot copy to non-directory: {path} (a {have.type} is there)")
        if item.kind != DIR and have.type == DIR:
            raise self._fail(f"{self.keyword} failed: cannot replace to directory {path} with file")

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
        if AS_ROOT and (owner.uid or owner.gid):
            with contextlib.suppress(OSError):
                os.lchown(disk, owner.uid, owner.gid)

    def _write_file(self, item: CopyItem, disk: str) -> None:
        want_mode = disk_mode(FILE, item.mode, AS_ROOT)
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
            if AS_ROOT and (item.owner.uid or item.owner.gid):
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
        if AS_ROOT and (st.st_uid, st.st_gid) != (item.owner.uid, item.owner.gid):
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
            want = disk_mode(DIR, entry.mode, AS_ROOT)
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
