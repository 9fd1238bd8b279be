"""Content checksums of COPY/ADD sources, behind a persistent stat cache.

A source's checksum covers what Docker's does: each path with its type, mode, owner,
size, link target and content — never its mtime, so touching a file changes nothing.
Content is hashed with xxh3-128 (the store's file hash) only when the stat cache cannot
vouch for it: a file whose (device, inode, size, mtime, ctime) match what was recorded
the last time is not read again. So an unchanged context of any size costs one stat walk.

The stat cache lives in the store's database, keyed by absolute path. Files changed in
the last moments before they were hashed are not recorded ("racily clean", as git calls
it): a write within the same clock tick could leave every stat field unchanged.
"""

from __future__ import annotations

import contextlib
import marshal
import operator
import os
import stat
import sys
import time
import zlib
from collections.abc import Generator, Iterable, Iterator, Sequence

import xxhash

from ..digest import CHUNK
from ..store.index import FileEntry
from ..store.metadata import Metadata
from .context import BuildContext, ContextEntry

# The digest the store gives an empty file (see store.extract).
EMPTY_DIGEST = xxhash.xxh3_128_hexdigest(b"")

# Files whose mtime or ctime is this close to "now" are hashed but not cached.
RACY_NS = 200_000_000
_SMALL = 1 << 20
_AHEAD = 16  # files opened and announced ahead of the one being hashed


def record(path: str, kind: str, mode: int, uid: int, gid: int, size: int, link: str, digest: str) -> str:
    """One path as it enters a checksum: a line whose first field is the path, so sorting
    lines sorts by path."""
    return f"{path}\0{kind}\0{mode:o}\0{uid}:{gid}\0{size}\0{link}\0{digest}"


def _open_file(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)


def hash_file(path: str, size: int, fd: int | None = None) -> str:
    """xxh3-128 of a file's content, never through a symlink (``fd``: the file, opened
    already; it is closed here)."""
    if size == 0:
        if fd is not None:
            os.close(fd)
        return EMPTY_DIGEST
    if fd is None:
        fd = _open_file(path)
    try:
        if size <= _SMALL:
            data = os.read(fd, size + 1)
            if len(data) <= size:
                return xxhash.xxh3_128_hexdigest(data)
            h = xxhash.xxh3_128(data)
        else:
            h = xxhash.xxh3_128()
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def checksum(lines: list[str]) -> str:
    """One digest over record lines (in the order given: callers sort them)."""
    text = "\n".join(lines)
    return "xxh3:" + xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogateescape"))


def stat_snapshot(root: str, entries: Iterable[ContextEntry], started_ns: int) -> tuple[str, bool]:
    """A digest of every stat field the stat cache trusts, for a whole set of entries, and
    whether any of them changed too recently to be trusted.

    The entries (plain tuples of path, mode, size, times, ids, link count and link) go
    through ``marshal`` version 2, whose output depends only on the values (no object
    references, no interning): one C call instead of a formatted line per file.
    """
    rows = list(map(tuple, entries))
    newest = max(max(map(_MTIME, rows), default=0), max(map(_CTIME, rows), default=0))
    data = marshal.dumps((root, rows), 2)
    return "stat2:" + xxhash.xxh3_128_hexdigest(data), newest >= started_ns - RACY_NS


_MTIME = operator.itemgetter(3)
_CTIME = operator.itemgetter(4)


def fingerprints(lines: Iterable[str]) -> dict[str, str]:
    """Path -> short hash of everything else: what "which files changed" compares."""
    out: dict[str, str] = {}
    for line in lines:
        path, _, rest = line.partition("\0")
        out[path] = xxhash.xxh3_64_hexdigest(rest.encode("utf-8", "surrogateescape"))
    return out


StatKey = tuple[int, int, int, int, int]  # device, inode, size, mtime_ns, ctime_ns
_FORMAT = 1


class StatCache:
    """Digests of one context's files, remembered across builds by their stat fields.

    The whole context's table is one compressed blob: loading 20,000 entries that way
    takes milliseconds, where as many rows would take a tenth of a second.
    """

    def __init__(self, meta: Metadata, root: str) -> None:
        self.meta = meta
        self.root = root.rstrip("/") or "/"
        self._known: dict[str, tuple[StatKey, str]] | None = None
        self._dirty: dict[str, tuple[StatKey, str]] = {}
        self.hashed = 0
        self.hashed_bytes = 0
        self.started_ns = time.time_ns()

    def _load(self) -> dict[str, tuple[StatKey, str]]:
        if self._known is None:
            self._known = {}
            row = self.meta.one("SELECT format, data FROM build_stat_cache WHERE root=?", (self.root,))
            if row is not None and row[0] == _format():
                try:
                    loaded = marshal.loads(zlib.decompress(bytes(row[1])))
                except (ValueError, EOFError, TypeError, zlib.error):
                    loaded = None
                if isinstance(loaded, dict):
                    self._known = loaded
        return self._known

    def digest(self, ctx: BuildContext, entry: ContextEntry, fd: int | None = None) -> str:
        known = self._known if self._known is not None else self._load()
        key = (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns)
        hit = known.get(entry.rel)
        if hit is not None and hit[0] == key:
            if fd is not None:
                os.close(fd)
            return hit[1]
        value = hash_file(ctx.abspath(entry.rel), entry.size, fd)
        self.hashed += 1
        self.hashed_bytes += entry.size
        if max(entry.mtime_ns, entry.ctime_ns) < self.started_ns - RACY_NS:
            self._dirty[entry.rel] = (key, value)
        return value

    def vouches(self, entry: ContextEntry) -> bool:
        """Whether the digest of ``entry`` is known without reading it."""
        known = self._known if self._known is not None else self._load()
        hit = known.get(entry.rel)
        return hit is not None and hit[0] == (entry.dev, entry.ino, entry.size, entry.mtime_ns, entry.ctime_ns)

    def digests(self, ctx: BuildContext, files: Sequence[ContextEntry]) -> Generator[str, None, None]:
        """The digests of regular files ``files``, in order. Files that must be read are
        opened a few ahead and announced to the kernel (POSIX_FADV_WILLNEED): from a cold
        cache the disk then reads them in parallel instead of one after the other."""
        todo = [i for i, entry in enumerate(files) if entry.size and not self.vouches(entry)]
        opened: dict[int, int] = {}
        ahead = 0
        try:
            for i, entry in enumerate(files):
                while ahead < len(todo) and todo[ahead] <= i + _AHEAD:
                    j = todo[ahead]
                    ahead += 1
                    try:
                        fd = _open_file(ctx.abspath(files[j].rel))
                    except OSError:
                        continue  # reported when its turn comes
                    opened[j] = fd
                    with contextlib.suppress(OSError):
                        os.posix_fadvise(fd, 0, files[j].size, os.POSIX_FADV_WILLNEED)
                yield self.digest(ctx, entry, opened.pop(i, None))
        finally:
            for fd in opened.values():
                os.close(fd)

    def save(self, present: Iterable[str] | None = None) -> None:
        """Write the table back if anything was hashed; ``present`` (every path of a fully
        walked context) drops entries of files that are gone."""
        if not self._dirty:
            return
        known = self._load()
        known.update(self._dirty)
        self._dirty.clear()
        if present is not None:
            keep = set(present)
            for rel in [r for r in known if r not in keep]:
                del known[rel]
        blob = zlib.compress(marshal.dumps(known), 1)
        with self.meta.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_stat_cache(root, format, data, updated) VALUES (?,?,?,?)",
                (self.root, _format(), blob, time.time()),
            )


def _format() -> str:
    """marshal's format belongs to one Python version: another version starts afresh."""
    return f"{_FORMAT}:{sys.version_info[0]}.{sys.version_info[1]}:{marshal.version}"


# --- records from the two kinds of source ----------------------------------------------


def context_records(
    ctx: BuildContext, cache: StatCache, entries: Iterable[ContextEntry], digests: dict[str, str]
) -> list[str]:
    """Record lines of context entries (paths relative to the context); file digests are
    also put in ``digests``.

    Owners are 0:0: the context is sent to Docker's daemon as root-owned, whoever owns it
    on disk, and COPY gives files their owner from --chown, not from the disk.
    """
    out: list[str] = []
    entries = list(entries)
    files = [entry for entry in entries if stat.S_ISREG(entry.mode)]
    file_digests = cache.digests(ctx, files)
    try:
        _records_into(out, entries, file_digests, digests)
    finally:
        file_digests.close()  # gives back the files opened ahead, even after an error
    return out


def _records_into(
    out: list[str], entries: list[ContextEntry], file_digests: Iterator[str], digests: dict[str, str]
) -> None:
    for entry in entries:
        mode = entry.mode
        perm = mode & 0o7777
        if stat.S_ISREG(mode):
            digest = next(file_digests)
            digests[entry.rel] = digest
            out.append(f"{entry.rel}\0file\0{perm:o}\00:0\0{entry.size}\0\0{digest}")
        elif stat.S_ISDIR(mode):
            out.append(f"{entry.rel}\0dir\0{perm:o}\00:0\00\0\0")
        elif stat.S_ISLNK(mode):
            out.append(f"{entry.rel}\0symlink\0{perm:o}\00:0\00\0{entry.link}\0")
        else:
            out.append(record(entry.rel, entry.kind, perm, 0, 0, 0, "", ""))


def index_records(entries: Iterable[FileEntry]) -> list[str]:
    """Record lines of image files (COPY --from); the index already holds each digest."""
    return [record(e.path, e.type, e.mode, e.uid, e.gid, e.size, e.link or "", e.digest or "") for e in entries]
