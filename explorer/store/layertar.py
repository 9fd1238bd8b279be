"""Write a layer as a canonical tar from its directory and its index.

A layer made here (a build step, a container commit) has no original tar, so its
diff_id is the digest of a tar we write. That tar must depend only on the layer's
content, never on the order of readdir, the clock or the user running Strata:
entries sorted parents-first, mtimes in whole seconds, no user or group names, no
atime/ctime, PAX records only where ustar fields cannot hold a value. The index
supplies modes, owners, times, types and link targets (the disk may not hold them
when rootless); file payload is read from disk, never through a symlink.

The diff id is the SHA-256 of the whole tar, so a layer that differs from an earlier
one in a single file still has all of its tar hashed — but SHA-256 runs front to back,
and its state after a prefix depends on that prefix alone. So the tar-split of every
layer written here keeps the running state at entry boundaries about every MiB (at a
64-byte boundary the state is eight words and a length). A build step that writes "the
earlier layer with one file changed" names that earlier layer (``EarlierLayer``): the
part of the new tar proven byte-identical to the earlier tar — the same header bytes,
payloads that are the very same inodes, which layers never change in place — is not
hashed again; hashing resumes at the last checkpoint inside it. The digest is still
that of every byte of the new tar.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import posixpath
import struct
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..errors import SizeMismatch
from . import tarstream as ts
from .index import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK, WHITEOUT, FileEntry
from .tarsplit import SplitWriter, TarSplitError, TreeReader, read_footer, read_plain

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"

CHECKPOINTS_KEY = "sha256_checkpoints"
_MIN_SPACING = 1 << 20  # tar bytes between checkpoints, at least
_MAX_CHECKPOINTS = 512
_BUFFER = 1 << 20
_AHEAD = 16  # payloads opened (and their reading started) ahead of the one being hashed


@dataclass(frozen=True)
class EarlierLayer:
    """A layer the new one probably shares most of its tar with (the same build step's
    previous result): its tar-split, and which of the new layer's files are its files."""

    tarsplit_path: str
    # Files (paths relative to the layer) the writer of the new layer made as hard links of
    # the earlier layer's files at the same paths: only their payloads can be shared.
    same: frozenset[str]


# --- SHA-256 with a state that can be kept -----------------------------------------------


class _Sha256:
    """hashlib's SHA-256, whose state cannot be saved: no checkpoints, no resuming."""

    resumable = False

    def __init__(self) -> None:
        self._h = hashlib.sha256()
        self.length = 0

    def update(self, view: memoryview, n: int) -> None:
        self._h.update(view[:n])
        self.length += n

    def state(self) -> str | None:
        return None

    def restore(self, length: int, words: str) -> None:
        raise ValueError("this SHA-256 cannot resume")

    def hexdigest(self) -> str:
        return self._h.hexdigest()


class _OpenSSLSha256(_Sha256):
    """OpenSSL's SHA256_* through ctypes: the same code hashlib runs, plus a ``SHA256_CTX``
    we can read. Only states at a 64-byte boundary are kept (eight words and a length),
    which is all a tar — made of 512-byte blocks — ever needs."""

    resumable = True
    _CTX_SIZE = 128  # sizeof(SHA256_CTX) is 112; a little slack costs nothing

    def __init__(self, lib: Any, buffer: bytearray | None = None) -> None:
        import ctypes

        self._lib = lib
        self._ctx = ctypes.create_string_buffer(self._CTX_SIZE)
        lib.SHA256_Init(self._ctx)
        self.length = 0
        self._buffer = buffer
        self._base = ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer)) if buffer else 0

    def update(self, view: memoryview, n: int) -> None:
        if self._buffer is not None and view.obj is self._buffer:
            self._lib.SHA256_Update(self._ctx, self._base, n)
        else:
            data = bytes(view[:n])
            self._lib.SHA256_Update(self._ctx, data, n)
        self.length += n

    def state(self) -> str | None:
        """The state as 64 hex digits (the words, big-endian), if at a block boundary."""
        words = struct.unpack_from("=10I", self._ctx, 0)
        num = struct.unpack_from("=I", self._ctx, 104)[0]
        bits = self.length * 8
        if num != 0 or self.length % 64 or (words[8], words[9]) != (bits & 0xFFFFFFFF, bits >> 32):
            return None
        return struct.pack(">8I", *words[:8]).hex()

    def restore(self, length: int, words: str) -> None:
        if length % 64 or len(words) != 64:
            raise ValueError("a SHA-256 state is resumed only at a block boundary")
        values = struct.unpack(">8I", bytes.fromhex(words))
        self._lib.SHA256_Init(self._ctx)
        struct.pack_into("=8I", self._ctx, 0, *values)
        bits = length * 8
        struct.pack_into("=II", self._ctx, 32, bits & 0xFFFFFFFF, bits >> 32)
        self.length = length

    def hexdigest(self) -> str:
        import ctypes

        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, self._ctx)
        return out.raw.hex()


_LIB: list[Any] = []  # [libcrypto or None], once looked for


def _libcrypto() -> Any | None:
    """libcrypto with SHA256_Init/Update/Final whose context we understand, or None.

    hashlib already loaded it; the low-level calls are deprecated in OpenSSL 3 but kept.
    A self-test (save a state, resume it, compare with hashlib) guards the layout.
    """
    if _LIB:
        return _LIB[0]
    found = None
    try:
        import ctypes
    except ImportError:
        ctypes = None  # type: ignore[assignment]
    if ctypes is not None:
        for name in ("libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so"):
            try:
                lib = ctypes.CDLL(name)
                lib.SHA256_Init.argtypes = [ctypes.c_void_p]
                lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
                lib.SHA256_Final.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
            except (OSError, AttributeError):
                continue
            if _self_test(lib):
                found = lib
                break
    _LIB.append(found)
    return found


def _self_test(lib: Any) -> bool:
    data = bytes(range(256)) * 5 + b"tail"
    try:
        first = _OpenSSLSha256(lib)
        first.update(memoryview(data[:640]), 640)
        saved = first.state()
        if saved is None:
            return False
        second = _OpenSSLSha256(lib)
        second.restore(640, saved)
        second.update(memoryview(data[640:]), len(data) - 640)
        return second.hexdigest() == hashlib.sha256(data).hexdigest()
    except (OSError, ValueError, struct.error):
        return False


def _new_sha(buffer: bytearray) -> _Sha256:
    lib = _libcrypto()
    return _OpenSSLSha256(lib, buffer) if lib is not None else _Sha256()


# --- headers ------------------------------------------------------------------------------------

_OCTAL7 = 0o10000000
_OCTAL11 = 0o100000000000
_MAGIC = b"ustar\x0000"
_SPACES_AND_MAGIC = sum(b"        ") + sum(_MAGIC)
_ZEROS = bytes(167)
_PAD = bytes(512)


def _header(name: str, flag: str, mode: int, uid: int, gid: int, size: int, mtime: int, linkname: str = "",
            devmajor: int = 0, devminor: int = 0) -> bytes:
    """``tarstream.build_header``'s bytes: built here directly when every value fits its
    ustar field (nearly always), by ``build_header`` otherwise."""
    raw = name.encode("utf-8", "surrogateescape")
    link = linkname.encode("utf-8", "surrogateescape")
    if (len(raw) <= 100 and len(link) <= 100 and raw.isascii() and link.isascii()
            and 0 <= uid < _OCTAL7 and 0 <= gid < _OCTAL7 and 0 <= size < _OCTAL11 and 0 <= mtime < _OCTAL11
            and 0 <= devmajor < _OCTAL7 and 0 <= devminor < _OCTAL7):
        numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode & 0o7777, uid, gid, size, mtime)
        devices = b"%07o\0%07o\0" % (devmajor, devminor)
        kind = flag.encode("ascii")
        checksum = sum(raw) + sum(numbers) + kind[0] + sum(link) + sum(devices) + _SPACES_AND_MAGIC
        return b"".join((raw, _ZEROS[: 100 - len(raw)], numbers, b"%06o\0 " % checksum, kind, link,
                         _ZEROS[: 100 - len(link)], _MAGIC, _ZEROS[:64], devices, _ZEROS))
    return ts.build_header(name, flag, mode=mode, uid=uid, gid=gid, size=size, mtime=mtime, linkname=linkname,
                           devmajor=devmajor, devminor=devminor)


def _sort_key(entry: FileEntry) -> list[str]:
    return entry.path.split("/")


# One member of the tar: its header bytes, then (for a file) the payload's path
# relative to the layer directory and its size; padding follows from the size.
_Member = tuple[bytes, str | None, int]


def _members(entries: list[FileEntry]) -> Iterator[_Member]:
    for e in sorted(entries, key=_sort_key):
        if e.path == "/":
            continue
        member = _member(e)
        if member is not None:
            yield member


def _member(e: FileEntry) -> _Member | None:
    rel = e.path[1:]
    mtime = math.floor(e.mtime)
    kind = e.type
    if kind == FILE:
        return _header(rel, ts.REG, e.mode, e.uid, e.gid, e.size, mtime), rel, e.size
    if kind == DIR:
        head = _header(rel + "/", ts.DIR, e.mode, e.uid, e.gid, 0, mtime)
        if e.opaque:
            head += _header(f"{rel}/{WH_OPAQUE}", ts.REG, e.mode, e.uid, e.gid, 0, mtime)
        return head, None, 0
    if kind == HARDLINK:
        return _header(rel, ts.LNK, e.mode, e.uid, e.gid, 0, mtime, (e.link or "").lstrip("/")), None, 0
    if kind == SYMLINK:
        return _header(rel, ts.SYM, e.mode, e.uid, e.gid, 0, mtime, e.link or ""), None, 0
    if kind in (CHAR, BLOCK):
        flag = ts.CHR if kind == CHAR else ts.BLK
        return _header(rel, flag, e.mode, e.uid, e.gid, 0, mtime, "", e.devmajor, e.devminor), None, 0
    if kind == FIFO:
        return _header(rel, ts.FIFO, e.mode, e.uid, e.gid, 0, mtime), None, 0
    if kind == WHITEOUT:
        parent, name = posixpath.split(rel)
        return _header(posixpath.join(parent, WH_PREFIX + name), ts.REG, e.mode, e.uid, e.gid, 0, mtime), None, 0
    if kind == SOCKET:
        return None  # a tar cannot hold a socket; docker drops them too
    raise ValueError(f"unknown index entry type {e.type!r} at {e.path}")


def _padding(size: int) -> bytes:
    return _PAD[: -size % ts.BLOCK] if size % ts.BLOCK else b""


# --- the stream -----------------------------------------------------------------------------------


class _Stream:
    """Tar bytes on their way to the hash (and to ``out``), through one reused buffer:
    payloads are read straight into it, so hashing takes few, large calls."""

    def __init__(self, out: BinaryIO | None, tree: TreeReader) -> None:
        self.out = out
        self.tree = tree
        self.buf = bytearray(_BUFFER)
        self.view = memoryview(self.buf)
        self.fill = 0
        self.sha = _new_sha(self.buf)
        self.offset = 0  # tar bytes produced, buffered ones included
        self._ahead: dict[str, tuple[int, os.stat_result]] = {}

    def raw(self, data: bytes) -> None:
        n = len(data)
        if self.fill + n > _BUFFER:
            self.flush()
            if n > _BUFFER:
                self.sha.update(memoryview(data), n)
                if self.out is not None:
                    self.out.write(data)
                self.offset += n
                return
        self.buf[self.fill : self.fill + n] = data
        self.fill += n
        self.offset += n

    def prefetch(self, rel: str, size: int) -> None:
        """Open ``rel`` now and ask the kernel to start reading it: files read one after
        the other from a cold cache wait for the disk one at a time, files announced a
        few members ahead are read in parallel."""
        opened = self.tree.open(rel)
        self._ahead[rel] = opened
        with contextlib.suppress(OSError):
            os.posix_fadvise(opened[0], 0, size, os.POSIX_FADV_WILLNEED)

    def close(self) -> None:
        while self._ahead:
            os.close(self._ahead.popitem()[1][0])

    def payload(self, rel: str, size: int) -> None:
        opened = self._ahead.pop(rel, None)
        fd, st = opened if opened is not None else self.tree.open(rel)
        try:
            if st.st_size != size:
                raise SizeMismatch(f"{self.tree.root}/{rel}", size, st.st_size)
            left = size
            while left:
                if self.fill == _BUFFER:
                    self.flush()
                want = min(_BUFFER - self.fill, left)
                got = os.readv(fd, [self.view[self.fill : self.fill + want]])
                if not got:
                    raise SizeMismatch(f"{self.tree.root}/{rel}", size, size - left)
                self.fill += got
                self.offset += got
                left -= got
        finally:
            os.close(fd)

    def flush(self) -> None:
        if self.fill:
            self.sha.update(self.view, self.fill)
            if self.out is not None:
                self.out.write(self.view[: self.fill])
            self.fill = 0

    def checkpoint(self) -> list[Any] | None:
        """``[tar offset, state]`` here (an entry boundary), if the hash can keep one."""
        if not self.sha.resumable:
            return None
        self.flush()
        words = self.sha.state()
        return [self.offset, words] if words is not None else None


# --- what the new tar shares with the earlier one ---------------------------------------------


def _common_prefix(a: bytes | bytearray, b: bytes) -> int:
    """Length of the longest common prefix, by halving with memcmp-speed comparisons."""
    view = memoryview(b)
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.startswith(view[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _shared_prefix(members: list[_Member], ends: list[int], plain: bytearray, earlier: EarlierLayer) -> int:
    """How many leading bytes of the new tar are proven equal to the earlier layer's tar,
    in whole members.

    ``plain`` is the new tar-split's records as written and ``ends[i]`` where member ``i``
    ends in them. Records are self-delimiting and cut by the same rules for the same
    content, so where the two tar-splits' records agree, so do the tars — headers byte for
    byte, payloads by path and size; a payload is shared only if the new layer's writer
    hard-linked it from the earlier layer's file at the same path (layer files are never
    modified). An older tar-split cut differently just shares less.
    """
    try:
        if read_footer(earlier.tarsplit_path).get("spool"):
            return 0  # some payloads live in the tar-split itself: not worth the special case
        theirs = read_plain(earlier.tarsplit_path)
    except (OSError, ValueError, TarSplitError):
        return 0
    equal = _common_prefix(plain, theirs)
    offset = 0
    for (head, rel, size), end in zip(members, ends, strict=True):
        if end > equal or (rel is not None and size and rel not in earlier.same):
            break
        offset += len(head) + size + len(_padding(size))
    return offset


def _resume_point(earlier: EarlierLayer, shared: int) -> tuple[int, str, list[list[Any]]] | None:
    """The last checkpoint of the earlier tar inside the shared prefix, and every
    checkpoint up to it (they hold for the new tar too)."""
    try:
        points = read_footer(earlier.tarsplit_path).get(CHECKPOINTS_KEY)
    except (OSError, ValueError, TarSplitError):
        return None
    if not isinstance(points, list):
        return None
    kept: list[list[Any]] = []
    for point in points:
        if (not isinstance(point, list) or len(point) != 2 or not isinstance(point[0], int)
                or not isinstance(point[1], str)):
            return None
        if point[0] > shared:
            break
        kept.append(point)
    if not kept or kept[-1][0] == 0:
        return None
    return kept[-1][0], kept[-1][1], kept


# --- the writer -------------------------------------------------------------------------------------


def write_layer_tar(
    diff_dir: str,
    entries: list[FileEntry],
    out: BinaryIO | None,
    tarsplit_path: str | None = None,
    *,
    earlier: EarlierLayer | None = None,
) -> tuple[str, int]:
    """Write the canonical tar of a layer to ``out``; returns ``(diff_id, size)``.

    With ``tarsplit_path`` the matching tar-split is written too, so the layer can
    later be exported byte for byte without this function. ``out`` may be None when
    only the digest and the tar-split are wanted; then ``earlier`` (a layer this one
    probably shares a prefix with) lets the shared part go unhashed.
    """
    split = SplitWriter(tarsplit_path, keep_plain=earlier is not None) if tarsplit_path else None
    try:
        with TreeReader(diff_dir) as tree:
            stream = _Stream(out, tree)
            total = sum(e.size for e in entries if e.type == FILE)
            spacing = max(_MIN_SPACING, total // _MAX_CHECKPOINTS)
            points: list[list[Any]] = []
            if earlier is not None and out is None and split is not None and stream.sha.resumable:
                members = list(_members(entries))
                ends = []
                for member in members:
                    _split_member(split, member)
                    ends.append(split.position)
                split.flush()
                assert split.plain is not None
                start, points = _skip_shared(stream, members, _shared_prefix(members, ends, split.plain, earlier),
                                             earlier)
                _hash_members(stream, members[start:], None, points, spacing)
            else:
                _hash_members(stream, _members(entries), split, points, spacing)
            if split is not None:
                split.raw(ts.END_OF_ARCHIVE)
            stream.raw(ts.END_OF_ARCHIVE)
            stream.flush()
        digest = stream.sha.hexdigest()
        if split is not None:
            split.close({CHECKPOINTS_KEY: points} if points else None)
    except BaseException:
        if split is not None:
            split.abort()
        raise
    return "sha256:" + digest, stream.offset


def _skip_shared(stream: _Stream, members: list[_Member], shared: int,
                 earlier: EarlierLayer) -> tuple[int, list[list[Any]]]:
    """Start the hash at the last checkpoint inside the first ``shared`` bytes, which are
    the earlier layer's; returns how many members that skips and the checkpoints that
    hold for the new tar (none: hash from the start)."""
    resume = _resume_point(earlier, shared)
    if resume is None:
        return 0, []
    offset, words, points = resume
    count = _members_ending_at(members, offset)
    if count is None:
        return 0, []  # not a member boundary: a damaged footer, hash everything
    try:
        stream.sha.restore(offset, words)
    except ValueError:
        return 0, []
    stream.offset = offset
    return count, points


def _members_ending_at(members: list[_Member], offset: int) -> int | None:
    """How many leading members end exactly ``offset`` bytes into the tar (None: none do)."""
    at = count = 0
    while at < offset and count < len(members):
        head, _rel, size = members[count]
        at += len(head) + size + len(_padding(size))
        count += 1
    return count if at == offset else None


def _split_member(split: SplitWriter, member: _Member) -> None:
    head, rel, size = member
    split.raw(head)
    if rel is not None and size:
        split.payload(rel, size)
        if size % ts.BLOCK:
            split.raw(_padding(size))


def _hash_members(stream: _Stream, members: Iterable[_Member], split: SplitWriter | None,
                  points: list[list[Any]], spacing: int) -> None:
    last = points[-1][0] if points else 0
    upcoming = iter(members)
    window: deque[_Member] = deque()
    try:
        while True:
            while len(window) < _AHEAD:
                member = next(upcoming, None)
                if member is None:
                    break
                window.append(member)
                if member[1] is not None and member[2]:
                    stream.prefetch(member[1], member[2])
            if not window:
                break
            member = window.popleft()
            if stream.offset - last >= spacing:
                point = stream.checkpoint()
                if point is not None:
                    points.append(point)
                    last = stream.offset
            head, rel, size = member
            if split is not None:
                _split_member(split, member)
            stream.raw(head)
            if rel is not None and size:
                stream.payload(rel, size)
            if size % ts.BLOCK:
                stream.raw(_padding(size))
    finally:
        stream.close()
