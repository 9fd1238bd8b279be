"""docker cp's copying: a tree packed as a tar stream, a tar stream unpacked beneath
a directory, and docker's rules for where a copy lands.

The same functions run on both sides of a copy: inside a container's root (in an
``inroot`` helper, where the kernel confines every path) and on the host. Beneath
the directory a copy lands in, nothing is resolved through a symlink: each path
component is opened with O_NOFOLLOW relative to its parent's descriptor, and a
symlink or file standing where a directory must be is replaced, as tar does; a
member name with ``..`` is refused. So content a container controls (its
symlinks, a tar it wrote, a directory swapped for a link mid-copy) cannot make a
copy write outside its destination on the host.

Packing walks by descriptors as well and reads a file only after checking that
what it opened is the regular file it listed: a FIFO swapped in cannot hang the
copy, a link swapped in is copied as a link. Owner names are never looked up
(inside a container that would load the container's NSS modules).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any, cast

from ..errors import ArchiveError, FileOperationFailed, InvalidArgument, PathNotFound, UnsafeArchive
from ..filelimits import out_of_range

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_BUFFER = 1 << 20


@dataclass(frozen=True)
class Source:
    """SRC_PATH as docker cp reads it; plain string work, so the side that does
    not hold the files can parse it too."""

    path: str  # normalised
    contents: bool  # "DIR/." : copy what the directory holds, not the directory
    follow: bool  # the last component is followed (-L, or a trailing "/")
    must_be_dir: bool  # a trailing "/" or "/." says it is a directory

    @classmethod
    def parse(cls, path: str, follow_link: bool = False) -> Source:
        if not path:
            raise InvalidArgument("cp: the source path is empty")
        contents = path == "." or path.endswith("/.")
        must_be_dir = contents or path.endswith("/")
        return cls(os.path.normpath(path), contents, follow_link or must_be_dir, must_be_dir)


@dataclass(frozen=True)
class Rules:
    """How unpacked members are written: the host side and the container side differ."""

    owners: bool = False  # chown to the archive's ids (cp -a); else the writer owns them
    strip_setid: bool = False  # drop setuid/setgid: the host must not gain a container's setuid file
    devices: bool = False  # try mknod (skipped where not permitted)


NOT_ROOT = "only root can make device nodes (docker cp makes them only as root)"
NO_MKNOD = (
    "the kernel refused to make it: device nodes need CAP_MKNOD outside any user namespace, "
    "and a container's files are written from inside one"
)


def _device_kind(m: tarfile.TarInfo) -> str:
    kind = "character" if m.ischr() else "block"
    return f"{kind} device {m.devmajor}:{m.devminor}"


def _clean(name: str) -> list[str]:
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchive(name, "it names a parent directory (..)")
    return parts


def _is_loop(err: OSError) -> bool:
    return err.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)


# --- packing -------------------------------------------------------------------------


class _Exact:
    """Exactly ``size`` bytes of a file that may shrink or grow while it is read:
    a tar header already promised the size."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        chunks: list[bytes] = []
        want = n
        while want > 0:
            data = os.read(self.fd, want)
            if not data:
                chunks.append(bytes(want))  # it shrank: pad to the promised size
                break
            chunks.append(data)
            want -= len(data)
        self.left -= n
        return b"".join(chunks)


def _streaming(tar: tarfile.TarFile) -> tarfile.TarFile:
    cast(Any, tar).copybufsize = _BUFFER
    return tar


def _forget_members(tar: tarfile.TarFile) -> None:
    """tarfile keeps every member it wrote or read; a stream of a big tree must not."""
    cast(Any, tar).members.clear()


def _header(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    info.uname = info.gname = ""
    return info


class _Packer:
    def __init__(self, tar: tarfile.TarFile, skip_devices: set[int]) -> None:
        self.tar = tar
        self.links: dict[tuple[int, int], str] = {}
        self.skip_devices = skip_devices

    def add(self, info: tarfile.TarInfo, data: _Exact | None = None) -> None:
        self.tar.addfile(info, cast(IO[bytes], data))
        _forget_members(self.tar)

    def source(self, src: Source, where: str) -> None:
        parent, name = os.path.split(src.path)
        if name in ("", ".", ".."):  # "/", ".", "..": always directories
            try:
                fd = os.open(src.path, _DIR_FLAGS)
            except FileNotFoundError:
                raise PathNotFound(where, src.path) from None
            try:
                self.directory(fd, os.path.basename(os.path.realpath(src.path)))
            finally:
                os.close(fd)
            return
        try:
            pfd = os.open(parent or ".", _DIR_FLAGS)
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(where, src.path) from None
        try:
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=src.follow)
            except (FileNotFoundError, NotADirectoryError):
                raise PathNotFound(where, src.path) from None
            if src.must_be_dir and not stat.S_ISDIR(st.st_mode):
                raise InvalidArgument(f"{where}: {src.path} is not a directory")
            if not self.entry(pfd, name, name, follow=src.follow):
                raise PathNotFound(where, src.path)
        finally:
            os.close(pfd)

    def entry(self, dfd: int, name: str, arcname: str, follow: bool = False) -> bool:
        """Add ``name`` (in directory ``dfd``); False when it vanished or kept
        changing type while being opened (a race: it is left out)."""
        nofollow = 0 if follow else os.O_NOFOLLOW
        for _attempt in range(3):
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=follow)
            except (FileNotFoundError, NotADirectoryError):
                return False
            mode = st.st_mode
            try:
                if stat.S_ISDIR(mode):
                    fd = os.open(name, _DIR_FLAGS | nofollow, dir_fd=dfd)
                    try:
                        self.directory(fd, arcname)
                    finally:
                        os.close(fd)
                    return True
                if stat.S_ISREG(mode):
                    fd = os.open(name, _READ_FLAGS | nofollow, dir_fd=dfd)
                    try:
                        if not self.regular(fd, arcname):
                            continue
                    finally:
                        os.close(fd)
                    return True
            except FileNotFoundError:
                return False
            except OSError as e:
                if _is_loop(e):
                    continue  # swapped for a link (or a file) since the stat: look again
                raise
            if stat.S_ISLNK(mode):
                info = _header(arcname, st)
                info.type = tarfile.SYMTYPE
                try:
                    info.linkname = os.readlink(name, dir_fd=dfd)
                except OSError:
                    continue
                self.add(info)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISFIFO(mode):
                info = _header(arcname, st)
                info.type = tarfile.FIFOTYPE
                if not stat.S_ISFIFO(mode):
                    info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                self.add(info)
            return True  # sockets are not content
        return False

    def directory(self, fd: int, arcname: str) -> None:
        st = os.fstat(fd)
        info = _header(arcname or ".", st)
        info.type = tarfile.DIRTYPE
        self.add(info)
        if st.st_dev in self.skip_devices:
            return  # /proc, /sys … of a running container: not its files
        for name in sorted(os.listdir(fd)):
            self.entry(fd, name, f"{arcname}/{name}" if arcname else name)

    def regular(self, fd: int, arcname: str) -> bool:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        info = _header(arcname, st)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            info.type = tarfile.LNKTYPE
            info.linkname = self.links[key]
            self.add(info)
            return True
        info.size = st.st_size
        self.add(info, _Exact(fd, st.st_size))
        if st.st_nlink > 1:
            self.links[key] = arcname
        return True


def send(fd: int, source: Source, *, where: str, skip_mounts: Iterable[str] = ()) -> None:
    """Write ``source`` as a tar stream on ``fd`` (closed here). Its first member is
    the source itself, named by its last path component ("." for "/")."""
    skip: set[int] = set()
    for path in skip_mounts:
        with contextlib.suppress(OSError):
            skip.add(os.stat(path).st_dev)
    with (
        open(fd, "wb", buffering=_BUFFER) as out,
        _streaming(tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)) as tar,
    ):
        _Packer(tar, skip).source(source, where)


# --- where a copy lands --------------------------------------------------------------


def placement(dest: str, src_is_dir: bool, contents: bool, src_name: str, where: str) -> tuple[str, str]:
    """docker cp's rules: the directory to unpack in and the name the source takes
    there ("" when its contents go into that directory itself).

    An existing directory receives the source (or with "SRC/." its contents); an
    existing file is replaced by a file; a missing path is created, but only in a
    directory that exists.
    """
    dir_hint = dest.endswith(("/", "/.")) or dest == "."
    norm = os.path.normpath(dest)
    try:
        st = os.stat(norm)
    except FileNotFoundError:
        if dir_hint and not src_is_dir:
            raise PathNotFound(where, f"{norm} (the destination directory must exist)") from None
        parent = os.path.dirname(norm) or "."
        if not os.path.isdir(parent):
            raise PathNotFound(where, parent) from None
        return os.path.realpath(parent), os.path.basename(norm)
    except NotADirectoryError:
        raise InvalidArgument(f"{where}: {dest}: a parent of the path is not a directory") from None
    if stat.S_ISDIR(st.st_mode):
        return os.path.realpath(norm), "" if src_is_dir and (contents or not src_name) else src_name
    if src_is_dir:
        raise InvalidArgument(f"{where}: cannot copy a directory onto the file {dest}")
    if dir_hint:
        raise InvalidArgument(f"{where}: {dest} is not a directory")
    real = os.path.realpath(norm)
    return os.path.dirname(real), os.path.basename(real)


# --- unpacking -----------------------------------------------------------------------


class _Unpacker:
    """Members of a tar stream, written beneath one directory and never through a link."""

    def __init__(self, base_fd: int, rules: Rules, rename: tuple[str, str] | None) -> None:
        self.base = base_fd
        self.rules = rules
        self.rename = rename
        self.cache: dict[str, int] = {}  # the chain of open parents of the last member
        self.files: set[str] = set()
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []
        self.counter = 0
        self.created: list[str] = []  # entries this copy made (not replaced): undone on failure
        self.skipped: list[str] = []  # device nodes not made (as the stream names them), and why
        self.why = ""

    def close(self) -> None:
        for fd in self.cache.values():
            os.close(fd)
        self.cache.clear()

    def path_of(self, name: str) -> str:
        parts = _clean(name)
        if self.rename is not None:
            src_base, dst_base = self.rename
            if src_base:
                if not parts or parts[0] != src_base:
                    raise UnsafeArchive(name, "it lies outside the copied tree")
                parts = parts[1:]
            if dst_base:
                parts = [dst_base, *parts]
        return "/".join(parts)

    # descriptors of directories beneath the base

    def _tmp(self) -> str:
        self.counter += 1
        return f".strata-cp-{os.getpid()}-{self.counter}"

    def _forget(self, rel: str) -> None:
        for key in [k for k in self.cache if k == rel or k.startswith(rel + "/")]:
            os.close(self.cache.pop(key))

    def _remove(self, pfd: int, name: str, rel: str) -> None:
        self._forget(rel)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def _open_dir(self, pfd: int, name: str, rel: str) -> int:
        for _attempt in range(4):
            try:
                return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=pfd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=pfd)
                    self.created.append(rel)
            except OSError as e:
                if not _is_loop(e):
                    raise
                self._remove(pfd, name, rel)  # a link or a file where a directory goes
        raise ArchiveError(f"{rel} keeps changing while it is written; try again")

    def dir_fd(self, rel: str) -> int:
        if not rel:
            return self.base
        fd = self.cache.get(rel)
        if fd is not None:
            return fd
        parent, _, name = rel.rpartition("/")
        fd = self._open_dir(self.dir_fd(parent), name, rel)
        for key in [k for k in self.cache if not (rel == k or rel.startswith(k + "/"))]:
            os.close(self.cache.pop(key))
        self.cache[rel] = fd
        return fd

    def lookup_dir(self, rel: str) -> int | None:
        """A new descriptor of an existing directory beneath the base, or None."""
        fd = os.dup(self.base)
        for name in [p for p in rel.split("/") if p]:
            try:
                sub = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                os.close(fd)
                return None
            os.close(fd)
            fd = sub
        return fd

    # members

    def add(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = self.path_of(m.name)
        if not rel:
            return  # the destination directory itself keeps its own metadata
        parent, _, leaf = rel.rpartition("/")
        if m.isdir():
            pfd = self.dir_fd(parent)
            try:
                st: os.stat_result | None = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None and not stat.S_ISDIR(st.st_mode):
                self._remove(pfd, leaf, rel)
                st = None
            if st is None:
                os.mkdir(leaf, 0o700, dir_fd=pfd)
                self.created.append(rel)
            self.dirs.append((rel, m))
        elif m.isreg():
            self._regular(self.dir_fd(parent), leaf, rel, m, tar.extractfile(m))
        elif m.issym():
            pfd = self.dir_fd(parent)
            tmp = self._tmp()
            os.symlink(m.linkname, tmp, dir_fd=pfd)
            if self.rules.owners:
                with contextlib.suppress(OSError):
                    os.chown(tmp, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.utime(tmp, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
            self._place(pfd, tmp, leaf, rel)
        elif m.islnk():
            self._hardlink(parent, leaf, rel, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            self._special(self.dir_fd(parent), leaf, rel, m)

    def _mode(self, m: tarfile.TarInfo) -> int:
        mode = m.mode & 0o7777
        return mode & ~0o6000 if self.rules.strip_setid else mode

    def _regular(self, pfd: int, leaf: str, rel: str, m: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        tmp = self._tmp()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        try:
            while data is not None and (chunk := data.read(_BUFFER)):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
            if self.rules.owners:
                with contextlib.suppress(OSError):
                    os.fchown(fd, m.uid, m.gid)
            os.fchmod(fd, self._mode(m))
            os.utime(fd, (m.mtime, m.mtime))
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            raise
        os.close(fd)
        self._place(pfd, tmp, leaf, rel)
        self.files.add(rel)

    def _place(self, pfd: int, tmp: str, leaf: str, rel: str) -> None:
        """Rename into place: a rename replaces a link itself, never what it points to."""
        try:
            os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            self.created.append(rel)
        except OSError:
            pass
        try:
            try:
                os.rename(tmp, leaf, src_dir_fd=pfd, dst_dir_fd=pfd)
            except OSError as e:
                if e.errno not in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                    raise
                self._remove(pfd, leaf, rel)
                os.rename(tmp, leaf, src_dir_fd=pfd, dst_dir_fd=pfd)
            self._forget(rel)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=pfd)
            if e.errno == errno.EBUSY:
                raise ArchiveError(f"cannot replace {rel}: something is mounted there") from None
            raise

    def _hardlink(self, parent: str, leaf: str, rel: str, m: tarfile.TarInfo) -> None:
        target = self.path_of(m.linkname)
        if target not in self.files:
            raise UnsafeArchive(m.name, f"a hard link to {m.linkname!r}, which is not a file of this copy")
        tparent, _, tleaf = target.rpartition("/")
        tfd = self.lookup_dir(tparent)
        if tfd is None:
            raise UnsafeArchive(m.name, f"the directory of {m.linkname!r} changed during the copy")
        try:
            pfd = self.dir_fd(parent)
            tmp = self._tmp()
            os.link(tleaf, tmp, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        finally:
            os.close(tfd)
        self._place(pfd, tmp, leaf, rel)
        self.files.add(rel)

    def _special(self, pfd: int, leaf: str, rel: str, m: tarfile.TarInfo) -> None:
        tmp = self._tmp()
        if m.isfifo():
            os.mkfifo(tmp, 0o600, dir_fd=pfd)
        else:
            if not self.rules.devices:
                self._skip(m, NOT_ROOT)
                return
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            try:
                os.mknod(tmp, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
            except PermissionError:
                self._skip(m, NO_MKNOD)
                return
        if self.rules.owners:
            with contextlib.suppress(OSError):
                os.chown(tmp, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        os.chmod(tmp, self._mode(m), dir_fd=pfd)
        self._place(pfd, tmp, leaf, rel)

    def _skip(self, m: tarfile.TarInfo, why: str) -> None:
        """As Docker in a user namespace, a node that cannot be made is left out; unlike it,
        the copy says so (``receive`` returns what was left out, by source path)."""
        self.skipped.append("/".join(_clean(m.name)))
        self.why = why

    def rollback(self) -> None:
        """Remove what this copy created, newest first, so a failed copy (a full disk, a
        broken stream) leaves the destination as it found it, but for files it replaced."""
        self.close()
        for rel in reversed(self.created):
            parent, _, leaf = rel.rpartition("/")
            pfd = self.lookup_dir(parent)
            if pfd is None:
                continue
            try:
                st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(leaf, dir_fd=pfd)
                else:
                    os.unlink(leaf, dir_fd=pfd)
            except OSError:
                pass
            finally:
                os.close(pfd)

    def finish(self) -> None:
        """Directory metadata last, deepest first: a read-only directory is made
        read-only only after its members are in."""
        self.close()
        for rel, m in reversed(self.dirs):
            fd = self.lookup_dir(rel)
            if fd is None:
                continue
            try:
                if self.rules.owners:
                    with contextlib.suppress(OSError):
                        os.fchown(fd, m.uid, m.gid)
                os.fchmod(fd, self._mode(m))
                os.utime(fd, (m.mtime, m.mtime))
            finally:
                os.close(fd)


def _check_values(m: tarfile.TarInfo, where: str) -> None:
    """A stream from ``cp -`` may claim any owner or time: refuse what no file can hold
    before chown or utime fail on it with a bare OverflowError."""
    if not math.isfinite(m.mtime):
        why: str | None = f"mtime {m.mtime} is not a time"
    else:
        why = out_of_range(
            m.uid,
            m.gid,
            int(m.mtime * 1_000_000_000),
            m.devmajor,
            m.devminor,
            mtime_text=m.pax_headers.get("mtime", ""),
        )
    if why is not None:
        raise ArchiveError(f"{where}: tar entry {m.name!r}: {why}")


class EmptyStream(ArchiveError):
    """The other side sent nothing: it failed before its first member, and its own
    error says why."""


def receive(
    fd: int,
    dest: str,
    *,
    contents: bool,
    where: str,
    rules: Rules,
    raw: bool = False,
) -> dict[str, Any]:
    """Unpack the tar stream on ``fd`` (closed here) at ``dest`` with docker cp's rules.

    The stream comes from ``send`` (its first member is the source). ``raw`` takes
    any tar (``cp - CONTAINER:DIR``): its members go into the directory ``dest``.

    Returns the device nodes left out, as plain JSON (``{"devices": [paths], "why":
    reason}``), which a helper inside a container can send back. A copy of one device
    node that cannot be made fails instead: nothing at all would be copied.
    """
    with open(fd, "rb", buffering=_BUFFER) as stream:
        try:
            with _streaming(tarfile.open(fileobj=stream, mode="r|")) as tar:
                return _unpack(tar, dest, contents=contents, where=where, rules=rules, raw=raw)
        except tarfile.ReadError as e:
            if "empty" in str(e):
                raise EmptyStream("nothing was received") from None
            raise ArchiveError(f"{where}: not a tar stream: {e}") from None
        except tarfile.TarError as e:
            raise ArchiveError(f"{where}: broken tar stream: {e}") from None


def _unpack(tar: tarfile.TarFile, dest: str, *, contents: bool, where: str, rules: Rules, raw: bool) -> dict[str, Any]:
    first = tar.next()
    if first is None:
        raise EmptyStream("nothing was received")
    rename: tuple[str, str] | None
    if raw:
        try:
            if not stat.S_ISDIR(os.stat(dest).st_mode):
                raise InvalidArgument(f"{where}: {dest} must be a directory to extract a tar stream into")
        except (FileNotFoundError, NotADirectoryError):
            raise PathNotFound(where, dest) from None
        base, rename = os.path.realpath(dest), None
    else:
        parts = _clean(first.name)
        if len(parts) > 1:
            raise UnsafeArchive(first.name, "the first member must be the copied file or directory")
        src_name = parts[0] if parts else ""
        base, dst_name = placement(dest, first.isdir(), contents, src_name, where)
        rename = (src_name, dst_name)
    base_fd = os.open(base, _DIR_FLAGS)
    unpacker = _Unpacker(base_fd, rules, rename)
    try:
        member: tarfile.TarInfo | None = first
        while member is not None:
            _check_values(member, where)
            unpacker.add(tar, member)
            if member is first and unpacker.skipped and not raw:
                raise FileOperationFailed(
                    f"{where}: cannot copy the device node {first.name} ({_device_kind(first)}): {unpacker.why}"
                )
            _forget_members(tar)
            member = tar.next()
        unpacker.finish()
    except BaseException:
        unpacker.rollback()
        raise
    finally:
        unpacker.close()
        os.close(base_fd)
    return {"devices": unpacker.skipped, "why": unpacker.why}
