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
layer written here keeps resume points at entry boundaries about every MiB: the running
state (at a 64-byte boundary it is eight words and a length), how many sorted index
entries lie before the point, and where the tar-split's records stand there (a record
boundary). A build step that writes "the earlier layer with a few files changed" names
that earlier layer (``EarlierLayer``, with its index). Members are made from index
entries alone by this module (``TAR_WRITER`` names the rules), so where the two sorted
indexes agree — and every file there is the earlier layer's very inode, which layers
never change in place — the tars agree byte for byte. The new tar-split then begins
with the earlier one's records up to the last resume point inside that part, hashing
resumes from its state, and only the members after it are made and hashed. The digest
is still that of every byte of the new tar.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import posixpath
import queue
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import SizeMismatch
from . import tarstream as ts
from .index import BLOCK, CHAR, DIR, FIFO, FILE, HARDLINK, SOCKET, SYMLINK, WHITEOUT, FileEntry
from .tarsplit import SplitWriter, TarSplitError, TreeReader, read_footer, read_plain

WH_PREFIX = ".wh."
WH_OPAQUE = ".wh..wh..opq"

CHECKPOINTS_KEY = "sha256_resume"
# Which rules made the members: resume points are only used from a tar-split whose
# members were made by the same rules (change it whenever ``_member``'s output changes).
TAR_WRITER = "strata-layertar-1"
WRITER_KEY = "tar_writer"
_MIN_SPACING = 1 << 20  # tar bytes between checkpoints, at least
_MAX_CHECKPOINTS = 512
_BUFFER = 1 << 20
_AHEAD = 16  # payloads opened (and their reading started) ahead of the one being hashed


@dataclass(frozen=True)
class EarlierLayer:
    """A layer the new one probably shares most of its tar with (the same build step's
    previous result): its tar-split, its index, and which of the new layer's files are
    its files."""

    tarsplit_path: str
    # Files (paths relative to the layer) of the new layer that are the earlier layer's
    # very inodes at the same paths: only their payloads can be shared.
    same: frozenset[str]
    entries: Mapping[str, FileEntry] = field(default_factory=dict)  # its whole index, by path
    diff_dir: str | None = None  # its tree: the ``same`` files can be read there too


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

    def __init__(self, lib: Any, buffers: Sequence[bytearray] = ()) -> None:
        import ctypes

        self._lib = lib
        self._ctx = ctypes.create_string_buffer(self._CTX_SIZE)
        lib.SHA256_Init(self._ctx)
        self.length = 0
        # The stream's own buffers are hashed in place, by address (no copy).
        self._buffers = {id(b): (b, ctypes.addressof((ctypes.c_char * len(b)).from_buffer(b))) for b in buffers}

    def update(self, view: memoryview, n: int) -> None:
        known = self._buffers.get(id(view.obj))
        if known is not None and known[0] is view.obj and view.nbytes == len(known[0]):
            self._lib.SHA256_Update(self._ctx, known[1], n)
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


def _new_sha(buffers: Sequence[bytearray]) -> _Sha256:
    lib = _libcrypto()
    return _OpenSSLSha256(lib, buffers) if lib is not None else _Sha256()


# --- headers ------------------------------------------------------------------------------------

_OCTAL7 = 0o10000000
_OCTAL11 = 0o100000000000
_MAGIC = b"ustar\x0000"
_SPACES_AND_MAGIC = sum(b"        ") + sum(_MAGIC)
_ZEROS = bytes(167)
_PAD = bytes(512)


def _header(
    name: str,
    flag: str,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    """``tarstream.build_header``'s bytes: built here directly when every value fits its
    ustar field (nearly always), by ``build_header`` otherwise."""
    raw = name.encode("utf-8", "surrogateescape")
    link = linkname.encode("utf-8", "surrogateescape")
    if (
        len(raw) <= 100
        and len(link) <= 100
        and raw.isascii()
        and link.isascii()
        and 0 <= uid < _OCTAL7
        and 0 <= gid < _OCTAL7
        and 0 <= size < _OCTAL11
        and 0 <= mtime < _OCTAL11
        and 0 <= devmajor < _OCTAL7
        and 0 <= devminor < _OCTAL7
    ):
        numbers = b"%07o\0%07o\0%07o\0%011o\0%011o\0" % (mode & 0o7777, uid, gid, size, mtime)
        devices = b"%07o\0%07o\0" % (devmajor, devminor)
        kind = flag.encode("ascii")
        checksum = sum(raw) + sum(numbers) + kind[0] + sum(link) + sum(devices) + _SPACES_AND_MAGIC
        return b"".join(
            (
                raw,
                _ZEROS[: 100 - len(raw)],
                numbers,
                b"%06o\0 " % checksum,
                kind,
                link,
                _ZEROS[: 100 - len(link)],
                _MAGIC,
                _ZEROS[:64],
                devices,
                _ZEROS,
            )
        )
    return ts.build_header(
        name,
        flag,
        mode=mode,
        uid=uid,
        gid=gid,
        size=size,
        mtime=mtime,
        linkname=linkname,
        devmajor=devmajor,
        devminor=devminor,
    )


def _sort_key(entry: FileEntry) -> list[str]:
    return entry.path.split("/")


# One member of the tar: its header bytes, then (for a file) the payload's path
# relative to the layer directory and its size; padding follows from the size.
_Member = tuple[bytes, str | None, int]


def _members(ordered: Sequence[FileEntry], start: int = 0, stop: int | None = None) -> Iterator[tuple[int, _Member]]:
    """The members of ``ordered`` (entries in tar order) from entry ``start`` up to entry
    ``stop``, each with its entry's index."""
    for index in range(start, len(ordered) if stop is None else stop):
        e = ordered[index]
        if e.path == "/":
            continue
        member = _member(e)
        if member is not None:
            yield index, member


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


class _Payloads:
    """Where file contents are read from. Normally the new layer's tree; while that tree is
    still being made (a clone, see ``build.copy.LayerWriter``), files that are the earlier
    layer's inodes are read from the earlier tree, new content from where the writer put
    it for now (``elsewhere``), and anything else first waits for the tree (``settle``)."""

    def __init__(
        self,
        tree: TreeReader,
        earlier: TreeReader | None = None,
        same: frozenset[str] = frozenset(),
        elsewhere: Mapping[str, str] | None = None,
        settle: Callable[[], None] | None = None,
    ) -> None:
        self.tree = tree
        self.root = tree.root
        self._earlier = earlier
        self._same = same
        self._elsewhere = elsewhere if elsewhere is not None else {}
        self._settle = settle

    def open(self, rel: str) -> tuple[int, os.stat_result]:
        side = self._elsewhere.get(rel)
        if side is not None:
            fd = os.open(side, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return fd, os.fstat(fd)
        if self._earlier is not None and rel in self._same:
            return self._earlier.open(rel)
        if self._settle is not None:
            settle, self._settle = self._settle, None
            settle()
        return self.tree.open(rel)


class _Stream:
    """Tar bytes on their way to the hash (and to ``out``), through a few reused buffers:
    payloads are read straight into them, and a full buffer is hashed on a second thread
    (SHA-256 releases the GIL) while this one makes the next headers and reads the next
    payloads. The hash's state at checkpoints is taken on that thread too, in order."""

    _BUFFERS = 3

    def __init__(self, out: BinaryIO | None, tree: TreeReader | _Payloads) -> None:
        self.out = out
        self.tree = tree if isinstance(tree, _Payloads) else _Payloads(tree)
        self._bufs = [bytearray(_BUFFER) for _ in range(self._BUFFERS)]
        self._views = [memoryview(b) for b in self._bufs]
        self._current = 0
        self.buf = self._bufs[0]
        self.view = self._views[0]
        self.fill = 0
        self.sha = _new_sha(self._bufs)
        self.offset = 0  # tar bytes produced, buffered ones included
        self._ahead: dict[str, tuple[int, os.stat_result]] = {}
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(1, self._BUFFERS):
            self._free.put(index)
        self._todo: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self.states: list[tuple[Any, str]] = []  # (what the checkpoint asked to keep, state)
        self._error: BaseException | None = None
        self._worker: threading.Thread | None = None

    def _hash_on_worker(self) -> None:
        failed = False
        while True:
            item = self._todo.get()
            if item is None:
                return
            kind = item[0]
            try:
                if failed:
                    pass
                elif kind == "buffer":
                    self.sha.update(self._views[item[1]], item[2])
                elif kind == "bytes":
                    self.sha.update(memoryview(item[1]), len(item[1]))
                elif self.sha.length == item[2]:  # "state", asked for at this many bytes
                    words = self.sha.state()
                    if words is not None:
                        self.states.append((item[1], words))
            except BaseException as e:  # reported by finish(); the producer must not block
                self._error = e
                failed = True
            finally:
                if kind == "buffer":
                    self._free.put(item[1])

    def _send(self, item: tuple[Any, ...]) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._hash_on_worker, name="strata-sha256", daemon=True)
            self._worker.start()
        self._todo.put(item)

    def raw(self, data: bytes) -> None:
        n = len(data)
        if self.fill + n > _BUFFER:
            self.flush()
            if n > _BUFFER:
                if self.out is not None:
                    self.out.write(data)
                self._send(("bytes", bytes(data)))
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
        """Hand the filled buffer to the hashing thread and go on in a free one."""
        if self.fill:
            if self.out is not None:
                self.out.write(self.view[: self.fill])
            self._send(("buffer", self._current, self.fill))
            self._current = self._free.get()
            self.buf = self._bufs[self._current]
            self.view = self._views[self._current]
            self.fill = 0

    def checkpoint(self, keep: Any) -> bool:
        """Ask for the hash's state here (an entry boundary); it lands in ``states`` with
        ``keep`` once ``finish`` returns. False if this hash cannot keep states."""
        if not self.sha.resumable:
            return False
        self.flush()
        self._send(("state", keep, self.offset))
        return True

    def finish(self) -> str:
        """Hash what is left; the digest (hex)."""
        self.flush()
        self.stop()
        if self._error is not None:
            raise self._error
        return self.sha.hexdigest()

    def stop(self) -> None:
        """Let the hashing thread end (after what it was given); safe to call twice."""
        if self._worker is not None:
            self._todo.put(None)
            self._worker.join()
            self._worker = None


# --- what the new tar shares with the earlier one ---------------------------------------------


@dataclass(frozen=True)
class _ResumePoint:
    """A place in a layer's tar at an entry boundary: see the module docstring."""

    offset: int  # tar bytes before it
    words: str  # the SHA-256 state there
    entry: int  # sorted index entries before it
    records: int  # tar-split record bytes before it (a record boundary)
    payloads: int  # payload records among them

    def as_list(self) -> list[Any]:
        return [self.offset, self.words, self.entry, self.records, self.payloads]

    @classmethod
    def from_list(cls, value: Any) -> _ResumePoint | None:
        if (
            isinstance(value, list)
            and len(value) == 5
            and isinstance(value[1], str)
            and all(isinstance(v, int) and v >= 0 for v in (value[0], *value[2:]))
        ):
            return cls(*value)
        return None


def _agreeing(ordered: Sequence[FileEntry], earlier: EarlierLayer) -> int:
    """How many leading sorted entries the new layer shares with the earlier one: equal
    entries, every file among them the earlier layer's own inode, and no path of the
    earlier layer that the new one lacks sorting among them."""
    theirs = earlier.entries
    gone = theirs.keys() - {e.path for e in ordered}
    first_gone = min((p.split("/") for p in gone), default=None)
    same = earlier.same
    count = 0
    for ours in ordered:
        if theirs.get(ours.path) != ours or (ours.type == FILE and ours.size and ours.path[1:] not in same):
            break
        if first_gone is not None and ours.path.split("/") > first_gone:
            break
        count += 1
    return count


def _agreeing_back(ordered: Sequence[FileEntry], theirs: Sequence[FileEntry], same: frozenset[str], floor: int) -> int:
    """How many trailing sorted entries the two layers share (as ``_agreeing`` for the
    front), leaving the first ``floor`` entries of each out."""
    count = 0
    limit = min(len(ordered), len(theirs)) - floor
    while count < limit:
        ours, old = ordered[-1 - count], theirs[-1 - count]
        if ours != old or (ours.type == FILE and ours.size and ours.path[1:] not in same):
            break
        count += 1
    return count


@dataclass
class _Reuse:
    """What of the earlier tar the new one takes: its records up to ``prefix`` (and the
    hash there), and from ``suffix`` on its records again (headers and padding as they
    are, payloads read and hashed), ``shift`` entries further along."""

    plain: bytes  # the earlier tar-split's records
    prefix: _ResumePoint | None
    kept: list[_ResumePoint]  # the earlier points up to prefix: they hold for the new tar
    suffix: _ResumePoint | None
    later: list[_ResumePoint]  # the earlier points after suffix: where new ones are taken
    shift: int
    ops: list[tuple[int, Any, int]]  # the records from suffix on (see _scan_records)


def _earlier_points(earlier: EarlierLayer) -> tuple[list[_ResumePoint], int, int] | None:
    """The earlier tar-split's resume points, tar size and payload count, if made by these
    rules and undamaged."""
    try:
        footer = read_footer(earlier.tarsplit_path)
    except (OSError, ValueError, TarSplitError):
        return None
    raw, size, payloads = footer.get(CHECKPOINTS_KEY), footer.get("size"), footer.get("payloads")
    if (
        footer.get(WRITER_KEY) != TAR_WRITER
        or footer.get("spool")
        or not isinstance(raw, list)
        or not isinstance(size, int)
        or not isinstance(payloads, int)
    ):
        return None
    points: list[_ResumePoint] = []
    for value in raw:
        point = _ResumePoint.from_list(value)
        if point is None or point.offset == 0 or (points and point.records <= points[-1].records):
            return None
        points.append(point)
    return points, size, payloads


def _plan_reuse(ordered: Sequence[FileEntry], earlier: EarlierLayer) -> _Reuse | None:
    found = _earlier_points(earlier)
    if not found or not found[0]:
        return None
    points, total_size, total_payloads = found
    front = _agreeing(ordered, earlier)
    kept = [p for p in points if p.entry <= front]
    prefix = kept[-1] if kept else None
    theirs = sorted(earlier.entries.values(), key=_sort_key)
    back = _agreeing_back(ordered, theirs, earlier.same, front)
    shift = len(ordered) - len(theirs)
    after = prefix.entry if prefix is not None else 0
    suffix = next((p for p in points if p.entry >= len(theirs) - back and p.entry + shift > after), None)
    if prefix is None and suffix is None:
        return None
    try:
        plain = read_plain(earlier.tarsplit_path)
    except (OSError, ValueError, TarSplitError):
        return None
    # One pass over the records: the totals at each point, and what to replay after suffix.
    marks = {p.records for p in points}
    scanned = _scan_records(plain, marks, suffix.records if suffix is not None else None)
    if scanned is None or scanned[1] != (total_size, total_payloads):
        return None  # damaged: hash everything
    totals, _end, ops = scanned
    if prefix is not None and totals.get(prefix.records) != (prefix.offset, prefix.payloads):
        return None
    if suffix is not None and totals.get(suffix.records) != (suffix.offset, suffix.payloads):
        suffix, ops = None, []
    later = [p for p in points if suffix is not None and p.records > suffix.records]
    return _Reuse(plain, prefix, kept if prefix is not None else [], suffix, later, shift, ops)


def _scan_records(
    plain: bytes, marks: set[int], ops_from: int | None
) -> tuple[dict[int, tuple[int, int]], tuple[int, int], list[tuple[int, Any, int]]] | None:
    """Walk a tar-split's records once: the tar bytes and payload records before each
    position in ``marks``, the totals at the end, and from ``ops_from`` on the records
    themselves as ``(position, raw bytes or payload path, payload size or -1)``. None if
    the records are damaged."""
    view = memoryview(plain)
    totals: dict[int, tuple[int, int]] = {}
    ops: list[tuple[int, Any, int]] = []
    at = size = payloads = 0
    end = len(plain)
    unpack_raw, unpack_file = struct.Struct("<I").unpack_from, struct.Struct("<QI").unpack_from
    collecting = False
    while at < end:
        if at in marks:
            totals[at] = (size, payloads)
        if at == ops_from:
            collecting = True
        kind = plain[at]
        if kind == 0x52 and at + 5 <= end:  # R: u32 length, raw bytes
            (length,) = unpack_raw(plain, at + 1)
            if collecting:
                ops.append((at, view[at + 5 : at + 5 + length], -1))
            at += 5 + length
            size += length
        elif kind == 0x46 and at + 13 <= end:  # F: u64 size, u32 length, path
            payload, length = unpack_file(plain, at + 1)
            if collecting:
                ops.append((at, bytes(view[at + 13 : at + 13 + length]).decode("utf-8", "surrogateescape"), payload))
            at += 13 + length
            size += payload
            payloads += 1
        elif kind == 0x45 and at == end - 1:  # E: the end
            return totals, (size, payloads), ops
        else:
            return None
    return None


def _start_at(stream: _Stream, split: SplitWriter, reuse: _Reuse) -> bool:
    """Begin the new tar with the earlier one's records up to ``reuse.prefix`` and resume
    the hash there."""
    point = reuse.prefix
    assert point is not None
    try:
        stream.sha.restore(point.offset, point.words)
    except ValueError:
        return False
    split.splice(reuse.plain[: point.records], point.offset, point.payloads)
    stream.offset = point.offset
    return True


def _replay(stream: _Stream, split: SplitWriter, reuse: _Reuse) -> None:
    """The earlier tar's members from ``reuse.suffix`` to its end (the end-of-archive blocks
    included) through the stream and the new tar-split: recorded bytes as they are,
    payloads read again; a resume point wherever the earlier tar had one."""
    assert reuse.suffix is not None
    points = {p.records: p for p in reuse.later}
    ops = reuse.ops
    ahead = 0
    try:
        for index, (position, data, size) in enumerate(ops):
            while ahead < len(ops) and ahead < index + _AHEAD:
                _p, rel, n = ops[ahead]
                if n > 0:
                    stream.prefetch(rel, n)
                ahead += 1
            point = points.get(position)
            if point is not None:
                split.cut()
                stream.checkpoint((stream.offset, point.entry + reuse.shift, split.position, split.payloads))
            if size < 0:
                split.raw(data)
                stream.raw(data)
            else:
                split.payload(data, size)
                if size:
                    stream.payload(data, size)
    finally:
        stream.close()


# --- the writer -------------------------------------------------------------------------------------


def write_layer_tar(
    diff_dir: str,
    entries: list[FileEntry],
    out: BinaryIO | None,
    tarsplit_path: str | None = None,
    *,
    earlier: EarlierLayer | None = None,
    elsewhere: Mapping[str, str] | None = None,
    settle: Callable[[], None] | None = None,
) -> tuple[str, int]:
    """Write the canonical tar of a layer to ``out``; returns ``(diff_id, size)``.

    With ``tarsplit_path`` the matching tar-split is written too, so the layer can
    later be exported byte for byte without this function. ``out`` may be None when
    only the digest and the tar-split are wanted; then ``earlier`` (a layer this one
    probably shares a prefix with) lets the shared part go unmade and unhashed.
    ``elsewhere`` and ``settle`` are for a tree still being made (see ``_Payloads``).
    """
    split = SplitWriter(tarsplit_path) if tarsplit_path else None
    try:
        with contextlib.ExitStack() as trees:
            tree = trees.enter_context(TreeReader(diff_dir))
            before = None
            if earlier is not None and earlier.diff_dir is not None and (elsewhere is not None or settle is not None):
                before = trees.enter_context(TreeReader(earlier.diff_dir))
            payloads = _Payloads(tree, before, earlier.same if earlier is not None else frozenset(), elsewhere, settle)
            stream = _Stream(out, payloads)
            total = sum(e.size for e in entries if e.type == FILE)
            spacing = max(_MIN_SPACING, total // _MAX_CHECKPOINTS)
            ordered = sorted(entries, key=_sort_key)
            points: list[_ResumePoint] = []
            start, reuse = 0, None
            if earlier is not None and out is None and split is not None and stream.sha.resumable:
                reuse = _plan_reuse(ordered, earlier)
                if reuse is not None and reuse.prefix is not None and _start_at(stream, split, reuse):
                    start, points = reuse.prefix.entry, list(reuse.kept)
            stop = reuse.suffix.entry + reuse.shift if reuse is not None and reuse.suffix is not None else None
            try:
                _hash_members(
                    stream, _members(ordered, start, stop), split, spacing, points[-1].offset if points else 0
                )
                if stop is not None:
                    assert reuse is not None and split is not None
                    _replay(stream, split, reuse)
                else:
                    if split is not None:
                        split.raw(ts.END_OF_ARCHIVE)
                    stream.raw(ts.END_OF_ARCHIVE)
                digest = stream.finish()
            finally:
                stream.stop()
            for (offset, entry, records, payloads), words in stream.states:
                points.append(_ResumePoint(offset, words, entry, records, payloads))
        if split is not None:
            extra: dict[str, Any] = {WRITER_KEY: TAR_WRITER}
            if points:
                extra[CHECKPOINTS_KEY] = [p.as_list() for p in points]
            split.close(extra)
    except BaseException:
        if split is not None:
            split.abort()
        raise
    return "sha256:" + digest, stream.offset


def _split_member(split: SplitWriter, member: _Member) -> None:
    head, rel, size = member
    split.raw(head)
    if rel is not None and size:
        split.payload(rel, size)
        if size % ts.BLOCK:
            split.raw(_padding(size))


def _hash_members(
    stream: _Stream, members: Iterable[tuple[int, _Member]], split: SplitWriter | None, spacing: int, last: int
) -> None:
    """Put ``members`` through the stream (and the tar-split), asking for a resume point
    about every ``spacing`` bytes after ``last``."""
    upcoming = iter(members)
    window: deque[tuple[int, _Member]] = deque()
    try:
        while True:
            while len(window) < _AHEAD:
                item = next(upcoming, None)
                if item is None:
                    break
                window.append(item)
                member = item[1]
                if member[1] is not None and member[2]:
                    stream.prefetch(member[1], member[2])
            if not window:
                break
            index, member = window.popleft()
            if split is not None and stream.offset - last >= spacing:
                split.cut()  # a record boundary: a later writer may splice up to here
                if stream.checkpoint((stream.offset, index, split.position, split.payloads)):
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
