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
        self._tmp = f"{path}.tmp-{os.getpid()}"
        self._file = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._zobj = zstandard.ZstdCompressor(level=3).compressobj()
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

    def _flush(self) -> None:
        self._close_raw()
        if self._records:
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

    def close(self) -> None:
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
        footer = json.dumps(
            {"version": 1, "frame": frame, "payloads": self._count, "size": self.size, "spool": self._subst},
            separators=(",", ":"),
        ).encode()
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


def open_in_tree(root: str, relpath: str) -> int:
    """Open regular file ``relpath`` under ``root`` for reading without following any symlink.

    Each component is opened relative to its parent with O_NOFOLLOW, so a symlink in
    the tree (which may point anywhere) can never lead out of it. When running
    rootless a file of ours may lack read permission (a 0000 file in an image): we
    add owner-read for the moment of opening and put the mode back.
    """
    parts = relpath.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise TarSplitError(f"bad payload path {relpath!r} in tar-split")
    dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as e:
                raise TarSplitError(f"{relpath}: cannot open directory {part!r} in {root}: {e.strerror}") from e
            os.close(dfd)
            dfd = nfd
        return _open_leaf(dfd, parts[-1], relpath, root)
    finally:
        os.close(dfd)


def _open_leaf(dfd: int, name: str, relpath: str, root: str) -> int:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        try:
            fd = os.open(name, flags, dir_fd=dfd)
        except PermissionError:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
                raise
            os.chmod(name, stat.S_IMODE(st.st_mode) | stat.S_IRUSR, dir_fd=dfd)
            try:
                fd = os.open(name, flags, dir_fd=dfd)
            finally:
                os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dfd)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise TarSplitError(f"{relpath}: is a symlink in {root}, expected a regular file") from e
        raise TarSplitError(f"{relpath}: cannot open in {root}: {e.strerror}") from e
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TarSplitError(f"{relpath}: not a regular file in {root}")
    return fd


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


def _exact(reader: BinaryIO, n: int, where: str) -> bytes:
    parts: list[bytes] = []
    need = n
    while need:
        chunk = reader.read(need)
        if not chunk:
            raise TarSplitError(f"tar-split {where} is truncated")
        parts.append(chunk)
        need -= len(chunk)
    return b"".join(parts)


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


def reassemble(tarsplit_path: str, diff_dir: str, out: BinaryIO) -> int:
    """Write the original uncompressed tar to ``out``; returns the number of bytes written.

    Payloads come from ``diff_dir`` (never through a symlink); a payload whose file
    has a different size than recorded fails with :class:`SizeMismatch` rather than
    producing a tar with another digest.
    """
    written = 0
    with open(tarsplit_path, "rb") as f, open(tarsplit_path, "rb") as spool_f:
        footer = _footer(f, tarsplit_path)
        frame = int(footer["frame"])  # type: ignore[call-overload]
        spool = {int(i): (int(off), int(n)) for i, off, n in footer["spool"]}  # type: ignore[attr-defined]
        f.seek(0)
        reader = zstandard.ZstdDecompressor().stream_reader(cast(BinaryIO, _Bounded(f, frame)), read_size=COPY)
        index = 0
        try:
            while True:
                kind = _exact(reader, 1, tarsplit_path)
                if kind == b"R":
                    (n,) = _U32.unpack(_exact(reader, 4, tarsplit_path))
                    out.write(_exact(reader, n, tarsplit_path))
                    written += n
                elif kind == b"F":
                    size, plen = _FILE.unpack(_exact(reader, _FILE.size, tarsplit_path))
                    rel = _exact(reader, plen, tarsplit_path).decode("utf-8", "surrogateescape")
                    if index in spool:
                        off, n = spool[index]
                        spool_f.seek(frame + off)
                        copied = _copy_stream(spool_f, out, n)
                    else:
                        copied = _copy_payload(diff_dir, rel, size, out)
                    if copied != size:
                        raise SizeMismatch(f"{diff_dir}/{rel}", size, copied)
                    written += size
                    index += 1
                elif kind == b"E":
                    break
                else:
                    raise TarSplitError(f"tar-split {tarsplit_path} is damaged (record {kind!r})")
        except zstandard.ZstdError as e:
            raise TarSplitError(f"tar-split {tarsplit_path} is damaged: {e}") from e
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


def _copy_payload(diff_dir: str, rel: str, size: int, out: BinaryIO) -> int:
    fd = open_in_tree(diff_dir, rel)
    try:
        have = os.fstat(fd).st_size
        if have != size:
            raise SizeMismatch(f"{diff_dir}/{rel}", size, have)
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
