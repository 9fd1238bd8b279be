"""Extract a (compressed) layer tar into a directory in overlayfs form, indexing as it goes.

Safety rests on one idea: ``dest`` starts empty and this extraction is the only
writer, so an in-memory model of what we created tells us, before every write,
that each parent of the target is a directory we made. Nothing is ever written
through a symlink from the archive, regular files are created with
O_EXCL|O_NOFOLLOW, and anything doubtful raises :class:`UnsafeArchive`; the caller
then removes ``dest``. Hashing (diff_id, compressed digest, per-file xxh3) happens
on the bytes as they stream past, never by reading anything twice.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import stat
import zlib
from dataclasses import dataclass
from typing import BinaryIO

import zstandard

from ..digest import new_xxh3
from ..errors import ArchiveError, InvalidArgument, StrataError, UnsafeArchive
from ..fsutil import guard_enospc, rmtree
from ..overlayfs import OPAQUE_XATTR, mark_opaque
from . import tarstream
from .index import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SYMLINK, WHITEOUT, FileEntry
from .tarsplit import SplitWriter
from .tarstream import TarMember, TarReader

GiB = 1 << 30
MiB = 1 << 20
READ = 1 << 20
WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"
EMPTY_DIGEST = new_xxh3().hexdigest()

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class WhiteoutUnsupported(ArchiveError):
    """The filesystem or kernel refuses the overlay whiteout device or opaque xattr."""


@dataclass(frozen=True)
class Limits:
    """Bounds on what one layer may cost; beyond them the archive is refused."""

    max_entry_size: int = 64 * GiB
    max_total_size: int = 1024 * GiB
    max_ratio: int = 1000
    ratio_after: int = 256 * MiB
    max_entries: int = 10_000_000
    max_path: int = 4096
    max_depth: int = 500  # deeper trees break recursive walkers (rmtree, os.walk) before they help anyone


@dataclass
class ExtractResult:
    """What the store records for a new layer: its index and both identities of its bytes
    (the diff_id of the tar, the digest of the blob as it arrived)."""

    entries: list[FileEntry]
    diff_id: str
    size: int
    compressed_digest: str
    compressed_size: int


def seconds(ns: int) -> float:
    """Nanoseconds as float seconds, rounding like ``1600000000.25`` reads (``ns / 1e9`` does not)."""
    whole, frac = divmod(ns, 1_000_000_000)
    return whole + frac / 1e9


def disk_mode(kind: str, mode: int, root: bool) -> int:
    """The permission bits put on disk for an index mode.

    As root they are the same. Rootless, the store must still be able to read its
    own layers (to export, digest and copy them), so a file always keeps owner-read
    and a directory owner read+search; the index keeps the real mode.
    """
    if root:
        return mode
    if kind == DIR:
        return mode | 0o500
    if kind == FILE:
        return mode | 0o400
    return mode


# --- input side: compressed bytes -> tar bytes, hashed and metered -----------------------


class _Counted:
    """The raw input stream, counted, and hashed (the compressed digest) once
    :meth:`start_hashing` says the input is compressed; an uncompressed layer's
    blob digest is its diff_id, so hashing it twice would only cost time."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha: hashlib._Hash | None = None
        self.size = 0

    def start_hashing(self, head: bytes) -> None:
        self.sha = hashlib.sha256(head)

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        if data:
            if self.sha is not None:
                self.sha.update(data)
            self.size += len(data)
        return data


class _Decoder:
    """Decompressed bytes in bounded chunks, whatever the compression ratio."""

    def __init__(self, src: _Counted, head: bytes, what: str) -> None:
        self._src = src
        self._head = head
        self._what = what
        self._out = b""
        self._outpos = 0
        self.eof = False

    def _input(self, n: int) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        return self._src.read(n)

    def _produce(self) -> bytes:
        raise NotImplementedError

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = READ
        while self._outpos >= len(self._out):
            if self.eof:
                return b""
            self._out = self._produce()
            self._outpos = 0
        start = self._outpos
        end = min(len(self._out), start + n)
        self._outpos = end
        if start == 0 and end == len(self._out):
            return self._out
        return self._out[start:end]

    def _trailing(self, rest: bytes) -> None:
        """After the last compressed member only zero padding may follow."""
        while True:
            if rest.strip(b"\0"):
                raise ArchiveError(f"{self._what}: unexpected data after the end of the compressed stream")
            rest = self._src.read(READ)
            if not rest:
                return


class _Plain(_Decoder):
    def _produce(self) -> bytes:
        data = self._input(READ)
        if not data:
            self.eof = True
        return data


class _Gzip(_Decoder):
    def __init__(self, src: _Counted, head: bytes, what: str) -> None:
        super().__init__(src, head, what)
        self._z = zlib.decompressobj(31)
        self._pending = b""

    def _produce(self) -> bytes:
        try:
            while True:
                if self._z.unconsumed_tail:
                    return self._z.decompress(self._z.unconsumed_tail, READ)
                if self._z.eof:
                    rest = self._z.unused_data
                    if len(rest) < 2:
                        rest += self._input(READ)
                    if rest[:2] != GZIP_MAGIC:
                        self._trailing(rest)
                        self.eof = True
                        return b""
                    self._z = zlib.decompressobj(31)
                    self._pending = rest
                data = self._pending or self._input(READ)
                self._pending = b""
                if not data:
                    out = self._z.decompress(b"", READ)  # output zlib still holds
                    if out or self._z.eof:
                        return out
                    raise ArchiveError(f"{self._what}: gzip stream is truncated")
                out = self._z.decompress(data, READ)
                if out:
                    return out
        except zlib.error as e:
            raise ArchiveError(f"{self._what}: corrupt gzip data: {e}") from e


def _is_zstd_frame(data: bytes) -> bool:
    """A zstd frame or a skippable frame (magic 0x184D2A5?) starts here."""
    return data[:4] == ZSTD_MAGIC or (len(data) >= 4 and data[0] & 0xF0 == 0x50 and data[1:4] == b"\x2a\x4d\x18")


class _Zstd(_Decoder):
    """zstd through a decompressobj fed in small slices: a zstd block can expand about
    32768-fold and the binding has no output bound, so 2 KiB in keeps one call's
    output near 64 MiB even for a bomb."""

    SLICE = 2048

    def __init__(self, src: _Counted, head: bytes, what: str) -> None:
        super().__init__(src, head, what)
        self._dctx = zstandard.ZstdDecompressor()
        self._z = self._dctx.decompressobj()
        self._data = b""
        self._pos = 0

    def _produce(self) -> bytes:
        parts: list[bytes] = []
        produced = 0
        try:
            while produced < READ:
                if self._pos >= len(self._data):
                    self._data = self._input(READ)
                    self._pos = 0
                    if not self._data:
                        raise ArchiveError(f"{self._what}: zstd stream is truncated")
                piece = self._data[self._pos : self._pos + self.SLICE]
                self._pos += len(piece)
                out = self._z.decompress(piece)
                if out:
                    parts.append(out)
                    produced += len(out)
                if self._z.eof:
                    rest = self._z.unused_data + self._data[self._pos :]
                    self._data, self._pos = b"", 0
                    if len(rest) < 4:
                        rest += self._input(READ)
                    if not _is_zstd_frame(rest):
                        self._trailing(rest)
                        self.eof = True
                        break
                    self._z = self._dctx.decompressobj()
                    self._data = rest
        except zstandard.ZstdError as e:
            raise ArchiveError(f"{self._what}: corrupt zstd data: {e}") from e
        return b"".join(parts)


def _open_decoder(src: _Counted, what: str) -> _Decoder:
    head = b""
    while len(head) < 4:
        chunk = src.read(READ)
        if not chunk:
            break
        head += chunk
    if head[:2] == GZIP_MAGIC:
        src.start_hashing(head)
        return _Gzip(src, head, what)
    if head[:4] == ZSTD_MAGIC:
        src.start_hashing(head)
        return _Zstd(src, head, what)
    return _Plain(src, head, what)


class _Meter:
    """The uncompressed tar bytes: hashed for the diff_id and held to the limits."""

    def __init__(self, decoder: _Decoder, counted: _Counted, limits: Limits, what: str) -> None:
        self._decoder = decoder
        self._counted = counted
        self._limits = limits
        self._what = what
        self.sha = hashlib.sha256()
        self.size = 0
        self.current = ""

    def read(self, n: int = -1) -> bytes:
        data = self._decoder.read(n)
        if data:
            self.sha.update(data)
            self.size += len(data)
            lim = self._limits
            if self.size > lim.max_total_size:
                raise UnsafeArchive(
                    self.current or self._what,
                    f"{self._what} expands beyond the limit of {lim.max_total_size} bytes",
                )
            if self.size > lim.ratio_after and self.size > lim.max_ratio * max(self._counted.size, 1):
                raise UnsafeArchive(
                    self.current or self._what,
                    f"{self._what} expands more than {lim.max_ratio} times its compressed size (a decompression bomb?)",
                )
        return data


# --- output side: the model of what we created --------------------------------------------


@dataclass(slots=True)
class _Node:
    path: str
    type: str
    mode: int
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    size: int = 0
    digest: str | None = None
    link: str | None = None
    opaque: bool = False
    devmajor: int = 0
    devminor: int = 0
    payload: int = -1  # tar-split record whose bytes this path holds
    children: set[str] | None = None
    placeholder: bool = False

    def entry(self) -> FileEntry:
        return FileEntry(
            path=self.path,
            type=self.type,
            mode=self.mode & 0o7777,
            uid=self.uid,
            gid=self.gid,
            size=self.size,
            mtime=seconds(self.mtime_ns),
            digest=self.digest,
            link=self.link,
            opaque=self.opaque,
            devmajor=self.devmajor,
            devminor=self.devminor,
        )


def _dirname(path: str) -> str:
    """Parent of an absolute, normalised index path (``posixpath.dirname`` costs more per call)."""
    head = path.rpartition("/")[0]
    return head or "/"


_DEVICE_TYPES = {tarstream.CHR: CHAR, tarstream.BLK: BLOCK}


class _Extractor:
    def __init__(self, dest: str, limits: Limits, what: str, split: SplitWriter | None) -> None:
        self.dest = os.path.abspath(dest)
        self.limits = limits
        self.what = what
        self.split = split
        self.root = os.geteuid() == 0
        # Inside the store's user namespace only mapped ids can own a file; the index
        # keeps the others (the disk shows them as the namespace's root).
        from ..runtime.storens import owner_filter

        self.can_own = owner_filter()
        # New inodes already belong to us unless dest is setgid; chown only when it changes something.
        self.owner = (os.geteuid(), os.getegid())
        self.setgid_dest = bool(os.stat(self.dest).st_mode & stat.S_ISGID)
        self.nodes: dict[str, _Node] = {"/": _Node("/", DIR, 0o755, children=set())}
        self.links: dict[str, list[str]] = {}  # primary path -> hardlinks to it, in archive order
        self.count = 0

    # --- names ------------------------------------------------------------------------

    def clean(self, name: str, member: str) -> str:
        """The index path for a tar name: leading ``/`` stripped as docker does; a ``..``
        that would climb out of the tree is refused."""
        if "\0" in name:
            raise UnsafeArchive(member, "name contains a NUL byte")
        parts: list[str] = []
        for part in name.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if not parts:
                    raise UnsafeArchive(member, "path climbs out of the layer with '..'")
                parts.pop()
                continue
            parts.append(part)
        path = "/" + "/".join(parts)
        if len(path.encode("utf-8", "surrogateescape")) > self.limits.max_path:
            raise UnsafeArchive(member[:200], f"path longer than {self.limits.max_path} bytes")
        if len(parts) > self.limits.max_depth:
            raise UnsafeArchive(member[:200], f"path nested deeper than {self.limits.max_depth} directories")
        return path

    def disk(self, path: str) -> str:
        return self.dest if path == "/" else self.dest + path

    # --- the model --------------------------------------------------------------------

    def ensure_parent(self, path: str, member: str) -> None:
        """Make every ancestor of ``path`` a directory we created, creating missing ones.

        Refuses to go through a symlink or any non-directory the archive made, which is
        what stops ``a -> /etc`` followed by ``a/passwd``.
        """
        parent = _dirname(path)
        node = self.nodes.get(parent)
        if node is not None and node.type == DIR:
            return
        missing: list[str] = []
        p = parent
        while True:
            node = self.nodes.get(p)
            if node is None:
                missing.append(p)
                p = _dirname(p)
                continue
            if node.type == DIR:
                break
            if node.type == WHITEOUT:
                missing.append(p)
                break
            if node.type == SYMLINK:
                raise UnsafeArchive(member, f"{p} is a symlink earlier in the archive; refusing to write through it")
            raise UnsafeArchive(member, f"{p} is not a directory")
        for p in reversed(missing):
            old = self.nodes.get(p)
            opaque = old is not None  # a directory over a whiteout hides the lower one
            if old is not None:
                self.remove(p)
            self.mkdir(p)
            self.add_node(_Node(p, DIR, 0o755, opaque=opaque, children=set()))
            if opaque:
                self.set_opaque(p)

    def add_node(self, node: _Node) -> None:
        self.nodes[node.path] = node
        parent = self.nodes[_dirname(node.path)]
        assert parent.children is not None
        parent.children.add(node.path)

    def remove(self, path: str) -> None:
        """Remove ``path`` (and its subtree) from disk and the model, keeping payloads
        the tar-split still needs and hardlinks that pointed at it."""
        node = self.nodes[path]
        if node.type == DIR:
            for child in sorted(node.children or ()):
                self._forget(child)
            rmtree(self.disk(path))
        else:
            self._release(node)
            os.unlink(self.disk(path))
        del self.nodes[path]
        parent = self.nodes[_dirname(path)]
        assert parent.children is not None
        parent.children.discard(path)

    def _forget(self, path: str) -> None:
        stack = [path]
        while stack:
            node = self.nodes.pop(stack.pop())
            if node.type == DIR:
                stack.extend(sorted(node.children or (), reverse=True))
            else:
                self._release(node)

    def _release(self, node: _Node) -> None:
        if node.payload >= 0 and self.split is not None:
            self.split.spool(node.payload, self.disk(node.path), node.size)
            node.payload = -1
        if node.type == HARDLINK and node.link is not None:
            peers = self.links.get(node.link)
            if peers and node.path in peers:
                peers.remove(node.path)
            return
        peers = self.links.pop(node.path, None)
        if not peers:
            return
        heir = self.nodes[peers[0]]
        heir.type, heir.size, heir.digest, heir.link = node.type, node.size, node.digest, node.link
        heir.devmajor, heir.devminor, heir.placeholder = node.devmajor, node.devminor, node.placeholder
        for other in peers[1:]:
            self.nodes[other].link = heir.path
        if len(peers) > 1:
            self.links[heir.path] = peers[1:]

    # --- disk operations --------------------------------------------------------------

    def mkdir(self, path: str) -> None:
        os.mkdir(self.disk(path), 0o700)

    def set_opaque(self, path: str) -> None:
        try:
            mark_opaque(self.disk(path))
        except OSError as e:
            raise WhiteoutUnsupported(
                f"{self.what}: cannot mark {path} opaque (xattr {OPAQUE_XATTR}): {e.strerror};"
                " the store's filesystem must support user extended attributes"
            ) from e

    def needs_chown(self, node: _Node) -> bool:
        return (
            self.root and (self.setgid_dest or (node.uid, node.gid) != self.owner) and self.can_own(node.uid, node.gid)
        )

    def set_meta(self, path: str, node: _Node, *, chmod: bool = True) -> None:
        target = self.disk(path)
        if self.needs_chown(node):
            os.chown(target, node.uid, node.gid, follow_symlinks=False)
        if chmod:
            os.chmod(target, disk_mode(node.type, node.mode & 0o7777, self.root))
        os.utime(target, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    def set_xattrs(self, target: str | int, xattrs: dict[str, bytes]) -> None:
        """User xattrs only, and never overlay's own: an archive must not be able to
        forge opaque directories or redirects."""
        for key, value in xattrs.items():
            if not key.startswith("user.") or key.startswith("user.overlay."):
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError:
                continue

    # --- members ----------------------------------------------------------------------

    def add(self, m: TarMember, reader: TarReader) -> None:
        self.count += 1
        if self.count > self.limits.max_entries:
            raise UnsafeArchive(m.name[:200], f"more than {self.limits.max_entries} entries")
        if m.size > self.limits.max_entry_size:
            raise UnsafeArchive(m.name, f"entry size {m.size} exceeds the limit of {self.limits.max_entry_size}")
        path = self.clean(m.name, m.name)
        base = posixpath.basename(path)
        if base.startswith(WH_PREFIX):
            self.whiteout_member(path, base, m)
            return
        last = m.name.rstrip("/").rsplit("/", 1)[-1]
        if not m.is_dir and last in (".", ".."):
            raise UnsafeArchive(m.name, "only a directory may be named '.' or '..'")
        if path == "/":
            if not m.is_dir:
                raise UnsafeArchive(m.name, "only a directory may name the layer's root")
            return
        self.ensure_parent(path, m.name)
        existing = self.nodes.get(path)
        if m.is_dir:
            self.directory(path, m, existing)
            return
        if m.type == tarstream.LNK:
            self.hardlink(path, m)
            return
        if existing is not None:
            self.remove(path)
        if m.is_file:
            self.regular(path, m, reader)
        elif m.type == tarstream.SYM:
            self.symlink(path, m)
        elif m.type in _DEVICE_TYPES:
            self.device(path, m)
        elif m.type == tarstream.FIFO:
            self.fifo(path, m)
        else:
            raise ArchiveError(f"{self.what}: entry {m.name!r} has unsupported type {m.type!r}")

    @staticmethod
    def _node(path: str, kind: str, m: TarMember) -> _Node:
        return _Node(path, kind, m.mode & 0o7777, m.uid, m.gid, m.mtime_ns)

    def directory(self, path: str, m: TarMember, existing: _Node | None) -> None:
        if existing is not None and existing.type == DIR:
            existing.mode, existing.uid, existing.gid = m.mode & 0o7777, m.uid, m.gid
            existing.mtime_ns = m.mtime_ns
        else:
            opaque = existing is not None and existing.type == WHITEOUT
            if existing is not None:
                self.remove(path)
            self.mkdir(path)
            node = self._node(path, DIR, m)
            node.opaque, node.children = opaque, set()
            self.add_node(node)
            if opaque:
                self.set_opaque(path)
        self.set_xattrs(self.disk(path), m.xattrs)

    def regular(self, path: str, m: TarMember, reader: TarReader) -> None:
        node = self._node(path, FILE, m)
        node.size = m.size
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.disk(path), flags, 0o600)
        try:
            self.add_node(node)
            if self.split is not None and m.size:
                node.payload = self.split.payload(path[1:], m.size)
            if m.size:
                h = new_xxh3()
                write = os.write
                for view in reader.payload():
                    h.update(view)
                    while view:
                        view = view[write(fd, view) :]
                node.digest = h.hexdigest()
            else:
                node.digest = EMPTY_DIGEST
            if self.needs_chown(node):
                os.fchown(fd, node.uid, node.gid)
            os.fchmod(fd, disk_mode(FILE, node.mode, self.root))
            if m.xattrs:
                self.set_xattrs(fd, m.xattrs)
            os.utime(fd, ns=(node.mtime_ns, node.mtime_ns))
        finally:
            os.close(fd)

    def symlink(self, path: str, m: TarMember) -> None:
        if "\0" in m.linkname:
            raise UnsafeArchive(m.name, "link target contains a NUL byte")
        os.symlink(m.linkname, self.disk(path))
        node = self._node(path, SYMLINK, m)
        node.mode = 0o777  # Linux keeps no other mode on a symlink
        node.link = m.linkname
        self.add_node(node)
        self.set_meta(path, node, chmod=False)

    def hardlink(self, path: str, m: TarMember) -> None:
        if "\0" in m.linkname:
            raise UnsafeArchive(m.name, "link target contains a NUL byte")
        target_path = self.clean(m.linkname, m.name)
        target = self.nodes.get(target_path)
        if target is None or target_path == "/":
            raise UnsafeArchive(m.name, f"hard link target {m.linkname!r} is not an earlier entry of this archive")
        if target.type in (DIR, WHITEOUT):
            raise UnsafeArchive(m.name, f"hard link target {m.linkname!r} is a {target.type}")
        primary = target.link if target.type == HARDLINK and target.link else target_path
        if primary == path or target_path == path:
            return  # a link to itself changes nothing
        if path in self.nodes:
            self.remove(path)
            if primary not in self.nodes:  # the link replaced its own target's only name
                raise UnsafeArchive(m.name, f"hard link target {m.linkname!r} was replaced by the link")
        os.link(self.disk(primary), self.disk(path), follow_symlinks=False)
        # One inode: the link shows its target's metadata, whatever its own header says.
        first = self.nodes[primary]
        node = _Node(path, HARDLINK, first.mode, first.uid, first.gid, first.mtime_ns, link=primary)
        self.add_node(node)
        self.links.setdefault(primary, []).append(path)

    def device(self, path: str, m: TarMember) -> None:
        kind = _DEVICE_TYPES[m.type]
        if kind == CHAR and m.devmajor == 0 and m.devminor == 0:
            # On disk this is an overlay whiteout whatever the archive meant; index it so.
            self.make_whiteout(path, m)
            return
        node = self._node(path, kind, m)
        node.devmajor, node.devminor = m.devmajor, m.devminor
        fmt = stat.S_IFCHR if kind == CHAR else stat.S_IFBLK
        try:
            os.mknod(self.disk(path), fmt | 0o600, os.makedev(m.devmajor, m.devminor))
        except PermissionError:
            # Rootless: the index keeps the device; the disk gets an inert stand-in.
            fd = os.open(self.disk(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0)
            os.close(fd)
            node.placeholder = True
        self.add_node(node)
        self.set_meta(path, node, chmod=not node.placeholder)

    def fifo(self, path: str, m: TarMember) -> None:
        os.mkfifo(self.disk(path), 0o600)
        node = self._node(path, FIFO, m)
        self.add_node(node)
        self.set_meta(path, node)

    def whiteout_member(self, path: str, base: str, m: TarMember) -> None:
        parent = _dirname(path)
        if base == WH_OPAQUE:
            self.opaque(parent, m)
            return
        if base.startswith(WH_PREFIX + WH_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk etc.): nothing to apply
        name = base[len(WH_PREFIX) :]
        if name in ("", ".", ".."):
            raise UnsafeArchive(m.name, "whiteout names no file")
        target = posixpath.join(parent, name)
        self.ensure_parent(target, m.name)
        existing = self.nodes.get(target)
        if existing is not None:
            # A whiteout only hides lower layers; what this layer made at that path
            # already does, and for a directory the lower contents must be hidden too.
            if existing.type == DIR and not existing.opaque:
                existing.opaque = True
                self.set_opaque(target)
            return
        self.make_whiteout(target, m)

    def make_whiteout(self, target: str, m: TarMember) -> None:
        try:
            os.mknod(self.disk(target), stat.S_IFCHR | 0o600, os.makedev(0, 0))
        except OSError as e:
            raise WhiteoutUnsupported(
                f"{self.what}: cannot create the whiteout for {target} (a 0/0 character device): "
                f"{e.strerror}; this kernel or filesystem does not allow overlay whiteouts here"
            ) from e
        node = self._node(target, WHITEOUT, m)
        self.add_node(node)
        self.set_meta(target, node)

    def opaque(self, path: str, m: TarMember) -> None:
        if path == "/":
            self.set_opaque("/")  # the index cannot express it; overlay still honours it
            return
        self.ensure_parent(path, m.name)
        existing = self.nodes.get(path)
        if existing is None or existing.type == WHITEOUT:
            if existing is not None:
                self.remove(path)
            self.mkdir(path)
            self.add_node(_Node(path, DIR, 0o755, children=set()))
        elif existing.type != DIR:
            raise UnsafeArchive(m.name, f"{path} is not a directory")
        node = self.nodes[path]
        if not node.opaque:
            node.opaque = True
            self.set_opaque(path)

    def finish(self) -> list[FileEntry]:
        """Directory modes and times last: children are in place, so a 0555 directory
        cannot block its own extraction and writes no longer touch its mtime."""
        dirs = [n for n in self.nodes.values() if n.type == DIR and n.path != "/"]
        dirs.sort(key=lambda n: n.path.count("/"), reverse=True)
        for node in dirs:
            self.set_meta(node.path, node)
        return sorted((n.entry() for n in self.nodes.values() if n.path != "/"), key=lambda e: e.path)


def extract_layer(
    stream: BinaryIO,
    dest: str,
    *,
    tarsplit_path: str | None = None,
    limits: Limits = Limits(),
    what: str = "layer",
) -> ExtractResult:
    """Extract the layer tar read from ``stream`` into the empty directory ``dest``.

    Raises :class:`UnsafeArchive` or :class:`ArchiveError` for bad input; on any
    failure ``dest`` may hold a partial tree that the caller removes. Nothing outside
    ``dest`` is ever written (except the tar-split, which appears only on success).
    """
    try:
        if os.listdir(dest):
            raise InvalidArgument(f"cannot extract {what} into {dest}: the directory is not empty")
    except OSError as e:
        raise InvalidArgument(f"cannot extract {what} into {dest}: {e.strerror}") from e
    split = SplitWriter(tarsplit_path) if tarsplit_path else None
    try:
        counted = _Counted(stream)
        decoder = _open_decoder(counted, what)
        meter = _Meter(decoder, counted, limits, what)
        ex = _Extractor(dest, limits, what, split)
        reader = TarReader(meter, raw_sink=split.raw if split is not None else None)
        with guard_enospc(dest):
            for member in reader:
                meter.current = member.name
                try:
                    ex.add(member, reader)
                except StrataError:
                    raise
                except OSError as e:
                    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                        raise
                    raise ArchiveError(f"{what}: cannot extract {member.name!r}: {e.strerror or e}") from e
            entries = ex.finish()
            while counted.read(READ):  # whatever follows the tar inside the blob still counts
                pass
        if split is not None:
            split.close()
    except BaseException as e:
        if split is not None:
            split.abort()
        if isinstance(e, ArchiveError) and not e.message.startswith(f"{what}:"):
            e.message = f"{what}: {e.message}"  # say which layer; the tar reader cannot know
            e.args = (e.message,)
        raise
    diff_id = "sha256:" + meter.sha.hexdigest()
    return ExtractResult(
        entries=entries,
        diff_id=diff_id,
        size=meter.size,
        compressed_digest="sha256:" + counted.sha.hexdigest() if counted.sha is not None else diff_id,
        compressed_size=counted.size,
    )
