"""Tar-split: enough of a layer tar, kept beside its extracted tree, to rebuild it exactly.

Docker keeps diff_ids stable across save/load by storing each layer's non-payload tar
bytes and reading payloads back from the layer directory. We do the same: a record of
the raw bytes (headers, padding, end blocks) plus, in order, each payload's path and
size. File layout::

    zstd frame of records | spooled payloads | footer JSON | u64 footer length | MAGIC

Records: ``R`` u32 length + raw bytes; ``F`` u64 size + u32 length + path (relative
to the layer directory); ``E`` end. A payload whose path was later replaced in the
same archive (tar lets a path appear twice) can no longer be read from the tree, so
its bytes are copied into the spool region and the footer maps its ``F`` record
(by index) to them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import struct
import tempfile
from collections.abc import Iterator, Mapping
from typing import BinaryIO, cast

import zstandard

from ..errors import ArchiveError, SizeMismatch

MAGIC = b"STRTSPL1"
COPY = 1 << 20
_FLUSH_RAW = 1 << 20
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_FILE = struct.Struct("<QI")


class TarSplitError(ArchiveError):
    """A tar-split record is damaged or does not match its layer directory."""


class SplitWriter:
    """Write a tar-split while a tar is read or written; :meth:`close` makes it visible."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._flushed = 0
        self._tmp = f"{path}.tmp-{os.getpid()}"
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        # Level 1: headers compress about as well as at 3, in half the time.
        self._zobj = zstandard.ZstdCompressor(level=1).compressobj()
        self._records = bytearray()  # encoded records not yet compressed
        self._raw_at = -1  # offset in _records of the open R record's length, or -1
        self._count = 0
        self._spool: BinaryIO | None = None
        self._spool_size = 0
        self._subst: list[tuple[int, int, int]] = []
        self.size = 0

    def _close_raw(self) -> None:
        if self._raw_at >= 0:
            length = len(self._records) - self._raw_at - 4
            self._records[self._raw_at : self._raw_at + 4] = _U32.pack(length)
            self._raw_at = -1

    @property
    def position(self) -> int:
        """Bytes of records written so far (uncompressed)."""
        return self._flushed + len(self._records)

    @property
    def payloads(self) -> int:
        """Payload records written so far."""
        return self._count

    def cut(self) -> None:
        """End the open raw record here, so that ``position`` is a record boundary: a later
        writer may start its tar-split with the records up to it (``splice``)."""
        self._close_raw()

    def splice(self, records: bytes, size: int, payloads: int) -> None:
        """Begin with another tar-split's first records (up to a boundary ``cut`` made), which
        stand for ``size`` tar bytes and hold ``payloads`` payload records."""
        if self.position or self._count:
            raise ValueError("a tar-split can only begin with spliced records")
        self._records += records
        self.size = size
        self._count = payloads

    def _flush(self) -> None:
        self._close_raw()
        if self._records:
            self._flushed += len(self._records)
            out = self._zobj.compress(self._records)
            if out:
                self._file.write(out)
            self._records = bytearray()

    def raw(self, data: bytes | memoryview) -> None:
        if self._raw_at < 0:
            self._records += b"R\0\0\0\0"
            self._raw_at = len(self._records) - 4
        self._records += data
        self.size += len(data)
        if len(self._records) >= _FLUSH_RAW:
            self._flush()

    def payload(self, relpath: str, size: int) -> int:
        """Record that ``size`` payload bytes come from ``relpath``; returns the record's index."""
        self._close_raw()
        encoded = relpath.encode("utf-8", "surrogateescape")
        self._records += b"F" + _FILE.pack(size, len(encoded)) + encoded
        self.size += size
        index = self._count
        self._count += 1
        if len(self._records) >= _FLUSH_RAW:
            self._flush()
        return index

    def spool(self, index: int, source_path: str, size: int) -> None:
        """Keep the bytes of payload ``index`` now, before its file is replaced or removed."""
        if self._spool is None:
            self._spool = cast(BinaryIO, tempfile.TemporaryFile(dir=os.path.dirname(self._tmp) or "."))  # noqa: SIM115
        fd = os.open(source_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            copied = _copy_fd(fd, self._spool, size)
        finally:
            os.close(fd)
        if copied != size:
            raise SizeMismatch(source_path, size, copied)
        self._subst.append((index, self._spool_size, size))
        self._spool_size += size

    def close(self, extra: Mapping[str, object] | None = None) -> None:
        """Finish the file; ``extra`` adds keys to the footer (readers ignore keys they do
        not know, so this needs no new version)."""
        self._close_raw()
        self._records += b"E"
        self._flush()
        self._file.write(self._zobj.flush())
        frame = self._file.tell()
        if self._spool is not None:
            self._spool.flush()
            self._spool.seek(0)
            _copy_fd(self._spool.fileno(), self._file, self._spool_size)
            self._spool.close()
        fields: dict[str, object] = {
            "version": 1,
            "frame": frame,
            "payloads": self._count,
            "size": self.size,
            "spool": self._subst,
        }
        if extra:
            fields.update({k: v for k, v in extra.items() if k not in fields})
        footer = json.dumps(fields, separators=(",", ":")).encode()
        self._file.write(footer + _U64.pack(len(footer)) + MAGIC)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        if self._spool is not None:
            self._spool.close()
        self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)


def _copy_fd(fd: int, out: BinaryIO, size: int) -> int:
    copied = 0
    while copied < size:
        chunk = os.read(fd, min(COPY, size - copied))
        if not chunk:
            break
        out.write(chunk)
        copied += len(chunk)
    return copied


# --- reading payloads back from a tree -------------------------------------------------


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LEAF_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class TreeReader:
    """Files of one tree, opened by relative path without following any symlink.

    Each directory is opened relative to its parent with O_NOFOLLOW, so a symlink in
    the tree (which may point anywhere) can never lead out of it. The directories of
    the last path stay open: a layer is read in tar order, where neighbours share
    their parents, so most files cost one open instead of one per path component.
    """

    def __init__(self, root: str) -> None:
        self.root = root
        self._parts: list[str] = []
        self._fds: list[int] = []
        self._last: str | None = None  # the directory (relative path) _fds[-1] is, if known

    def __enter__(self) -> TreeReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
        self._parts = []
        self._last = None

    def _dir(self, parts: list[str], relpath: str) -> int:
        """An fd of the directory ``parts`` (components below the root)."""
        self._last = None
        if not self._fds:
            self._fds.append(os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        have = self._parts
        keep = 0
        limit = min(len(have), len(parts))
        while keep < limit and have[keep] == parts[keep]:
            keep += 1
        while len(self._fds) > keep + 1:
            os.close(self._fds.pop())
        del have[keep:]
        for part in parts[keep:]:
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=self._fds[-1])
            except OSError as e:
                raise TarSplitError(f"{relpath}: cannot open directory {part!r} in {self.root}: {e.strerror}") from e
            self._fds.append(fd)
            have.append(part)
        return self._fds[-1]

    def _split(self, relpath: str) -> tuple[list[str], str]:
        parts = relpath.split("/")
        if "" in parts or "." in parts or ".." in parts:
            raise TarSplitError(f"bad payload path {relpath!r} in tar-split")
        name = parts.pop()
        return parts, name

    def open(self, relpath: str) -> tuple[int, os.stat_result]:
        """Regular file ``relpath`` opened for reading, and its fstat."""
        parent, _, name = relpath.rpartition("/")
        if parent == self._last and name not in ("", ".", ".."):
            dfd = self._fds[-1]  # the same directory as the last file: nothing to check again
        else:
            parts, name = self._split(relpath)
            dfd = self._dir(parts, relpath)
            self._last = parent
        fd = _open_leaf(dfd, name, relpath, self.root)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise TarSplitError(f"{relpath}: not a regular file in {self.root}")
        return fd, st

    def lstat(self, relpath: str) -> os.stat_result | None:
        """lstat of ``relpath`` (None when it or a directory on the way is missing)."""
        parts, name = self._split(relpath)
        try:
            return os.stat(name, dir_fd=self._dir(parts, relpath), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, TarSplitError):
            return None


def _open_leaf(dfd: int, name: str, relpath: str, root: str) -> int:
    """Open ``name`` in ``dfd``. When running rootless a file of ours may lack read
    permission (a 0000 file in an image): owner-read is added for the moment of opening
    and the mode put back."""
    try:
        try:
            return os.open(name, _LEAF_FLAGS, dir_fd=dfd)
        except PermissionError:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise
            os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_IRUSR, dir_fd=dfd)
            try:
                return os.open(name, _LEAF_FLAGS, dir_fd=dfd)
            finally:
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TarSplitError(f"{relpath}: is a symlink in {root}, expected a regular file") from e
        raise TarSplitError(f"{relpath}: cannot open in {root}: {e.strerror}") from e


# --- reassembly ------------------------------------------------------------------------


class _Bounded:
    """The first ``n`` bytes of a file, so the zstd reader stops at the frame's end."""

    def __init__(self, f: BinaryIO, n: int) -> None:
        self._f = f
        self._left = n

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data


def _footer(f: BinaryIO, where: str) -> dict[str, object]:
    f.seek(0, os.SEEK_END)
    total = f.tell()
    if total < 16:
        raise TarSplitError(f"tar-split {where} is truncated")
    f.seek(total - 16)
    tail = f.read(16)
    if tail[8:] != MAGIC:
        raise TarSplitError(f"{where} is not a tar-split record")
    (length,) = _U64.unpack(tail[:8])
    if length > total - 16:
        raise TarSplitError(f"tar-split {where} has a bad footer")
    f.seek(total - 16 - length)
    try:
        footer = json.loads(f.read(length))
    except ValueError as e:
        raise TarSplitError(f"tar-split {where} has a bad footer") from e
    if not isinstance(footer, dict) or footer.get("version") != 1:
        raise TarSplitError(f"tar-split {where} has an unknown version")
    return footer


def read_footer(tarsplit_path: str) -> dict[str, object]:
    """The footer of a tar-split: ``size``, ``payloads``, ``spool`` and any extra keys its
    writer added."""
    with open(tarsplit_path, "rb") as f:
        return _footer(f, tarsplit_path)


class _Chunks:
    """Exact reads from a stream, served from ~1 MiB chunks (records are small and many)."""

    def __init__(self, reader: BinaryIO, where: str) -> None:
        self._reader = reader
        self._where = where
        self._buf = b""
        self._pos = 0

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        have = len(parts[0])
        while have < n:
            chunk = self._reader.read(max(COPY, n - have))
            if not chunk:
                raise TarSplitError(f"tar-split {self._where} is truncated")
            parts.append(chunk)
            have += len(chunk)
        joined = b"".join(parts)
        self._buf, self._pos = joined, n
        return joined[:n]


def _records(f: BinaryIO, frame: int, where: str) -> Iterator[bytes | tuple[int, str]]:
    """The records of the frame at the start of ``f``: raw bytes, or ``(size, relpath)``
    for a payload, in tar order."""
    reader = zstandard.ZstdDecompressor().stream_reader(cast(BinaryIO, _Bounded(f, frame)), read_size=COPY)
    chunks = _Chunks(cast(BinaryIO, reader), where)
    take = chunks.take
    try:
        while True:
            kind = take(1)
            if kind == b"R":
                (n,) = _U32.unpack(take(4))
                yield take(n)
            elif kind == b"F":
                size, plen = _FILE.unpack(take(_FILE.size))
                yield size, take(plen).decode("utf-8", "surrogateescape")
            elif kind == b"E":
                return
            else:
                raise TarSplitError(f"tar-split {where} is damaged (record {kind!r})")
    except zstandard.ZstdError as e:
        raise TarSplitError(f"tar-split {where} is damaged: {e}") from e


def read_plain(tarsplit_path: str, limit: int = -1) -> bytes:
    """The records of a tar-split, decompressed: all, or the first ``limit`` bytes."""
    with open(tarsplit_path, "rb") as f:
        frame = int(_footer(f, tarsplit_path)["frame"])  # type: ignore[call-overload]
        f.seek(0)
        reader = zstandard.ZstdDecompressor().stream_reader(cast(BinaryIO, _Bounded(f, frame)), read_size=COPY)
        try:
            if limit < 0:
                return reader.read()
            out = bytearray()
            while len(out) < limit:
                chunk = reader.read(limit - len(out))
                if not chunk:
                    break
                out += chunk
            return bytes(out)
        except zstandard.ZstdError as e:
            raise TarSplitError(f"tar-split {tarsplit_path} is damaged: {e}") from e


def reassemble(tarsplit_path: str, diff_dir: str, out: BinaryIO) -> int:
    """Write the original uncompressed tar to ``out``; returns the number of bytes written.

    Payloads come from ``diff_dir`` (never through a symlink); a payload whose file
    has a different size than recorded fails with :class:`SizeMismatch` rather than
    producing a tar with another digest.
    """
    written = 0
    with open(tarsplit_path, "rb") as f, open(tarsplit_path, "rb") as spool_f, TreeReader(diff_dir) as tree:
        footer = _footer(f, tarsplit_path)
        frame = int(footer["frame"])  # type: ignore[call-overload]
        spool = {int(i): (int(off), int(n)) for i, off, n in footer["spool"]}  # type: ignore[attr-defined]
        f.seek(0)
        index = 0
        for record in _records(f, frame, tarsplit_path):
            if isinstance(record, bytes):
                out.write(record)
                written += len(record)
                continue
            size, rel = record
            if index in spool:
                off, n = spool[index]
                spool_f.seek(frame + off)
                copied = _copy_stream(spool_f, out, n)
            else:
                copied = _copy_payload(tree, rel, size, out)
            if copied != size:
                raise SizeMismatch(f"{diff_dir}/{rel}", size, copied)
            written += size
            index += 1
    if written != footer.get("size"):
        raise SizeMismatch(f"reassembled tar from {tarsplit_path}", int(footer["size"]), written)  # type: ignore[call-overload]
    return written


def _copy_stream(src: BinaryIO, out: BinaryIO, size: int) -> int:
    copied = 0
    while copied < size:
        chunk = src.read(min(COPY, size - copied))
        if not chunk:
            break
        out.write(chunk)
        copied += len(chunk)
    return copied


def _copy_payload(tree: TreeReader, rel: str, size: int, out: BinaryIO) -> int:
    fd, st = tree.open(rel)
    try:
        if st.st_size != size:
            raise SizeMismatch(f"{tree.root}/{rel}", size, st.st_size)
        copied = 0
        while copied < size:
            chunk = os.read(fd, min(COPY, size - copied))
            if not chunk:
                break
            out.write(chunk)
            copied += len(chunk)
        return copied
    finally:
        os.close(fd)
