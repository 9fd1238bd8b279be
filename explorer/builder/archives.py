"""ADD of a local archive: recognising one by its bytes and reading its members as items.

Like Docker, the content decides, not the name: whatever decompresses (gzip, bzip2, xz,
zstd or none) to a valid first tar header is an archive, and from there on every fault in it
is an error, as in Go's archive/tar.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import zstandard

from ..errors import ArchiveError, TruncatedArchive
from ..store import tarstream
from ..store.index import DIR, FIFO, FILE, HARDLINK, SYMLINK, normalize
from ..store.tarstream import ByteSource, TarReader
from .copyitems import ROOT, CopyItem, Owner
from .layerwriter import LayerWriter

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


def extract_into(
    writer: LayerWriter, tar: TarReader, target: str, owner: Owner | None, line: int, filename: str
) -> None:
    """Place every member of ``tar`` under directory ``target`` (which exists in the layer).

    As Go's untar does inside its chroot, a member's directories are followed where they are
    symlinks (the image's or ones this archive made), never leaving the root, and a member
    replaces whatever is at its own path. Owners are the archive's unless ``owner`` (ADD
    --chown) is given, which current BuildKit gives every member (its untar's ChownOpts).
    """
    landed: dict[str, str] = {}  # where a member was meant to go -> where it went
    for item in archive_items(tar, target, line, filename):
        meant = item.dest
        item.dest = writer.resolve(meant)
        landed[meant] = item.dest
        if item.kind == HARDLINK and item.link is not None:
            item.link = landed.get(item.link) or writer.resolve(item.link)
        if owner is not None:
            item.owner = owner
        writer.place(item, owner or ROOT, replace_any=True)
