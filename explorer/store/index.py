"""The per-layer file index: one record per path a layer holds.

The index is the truth about a layer's files. It is what the union view merges,
what the GUI browses and what `strata ls` prints; it keeps ownership, modes and
device numbers that a rootless store cannot put on disk.
"""

from __future__ import annotations

import posixpath
import stat
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

# Entry types. ``whiteout`` marks a deletion of the same path in lower layers.
FILE = "file"
DIR = "dir"
SYMLINK = "symlink"
HARDLINK = "hardlink"
CHAR = "char"
BLOCK = "block"
FIFO = "fifo"
SOCKET = "socket"
WHITEOUT = "whiteout"

TYPES = (FILE, DIR, SYMLINK, HARDLINK, CHAR, BLOCK, FIFO, SOCKET, WHITEOUT)


@dataclass(slots=True)
class FileEntry:
    """One path in one layer. Treat it as immutable (copy with ``dataclasses.replace``);
    it is not frozen only because frozen dataclasses cost six times as much to create,
    and listings create hundreds of thousands.

    ``path`` is absolute and normalised (``/`` for the root). ``mode`` holds the
    permission bits including setuid/setgid/sticky (``0o7777``), never the type.
    For a hardlink, ``link`` is the absolute path of the entry it shares content
    with (inside the same layer) and ``size`` is 0, as in a tar stream.
    ``digest`` is the xxh3-128 of a regular file's content.
    """

    path: str
    type: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime: float = 0.0
    digest: str | None = None
    link: str | None = None
    opaque: bool = False
    devmajor: int = 0
    devminor: int = 0

    @property
    def name(self) -> str:
        return posixpath.basename(self.path) or "/"

    @property
    def parent(self) -> str:
        return parent_of(self.path)

    @property
    def is_dir(self) -> bool:
        return self.type == DIR

    @property
    def is_whiteout(self) -> bool:
        return self.type == WHITEOUT

    def st_mode(self) -> int:
        """The full st_mode (type | permissions) as stat() would give it."""
        kind = {
            FILE: stat.S_IFREG,
            HARDLINK: stat.S_IFREG,
            DIR: stat.S_IFDIR,
            SYMLINK: stat.S_IFLNK,
            CHAR: stat.S_IFCHR,
            WHITEOUT: stat.S_IFCHR,
            BLOCK: stat.S_IFBLK,
            FIFO: stat.S_IFIFO,
            SOCKET: stat.S_IFSOCK,
        }[self.type]
        return kind | self.mode


def parent_of(path: str) -> str:
    if path == "/":
        return ""
    return posixpath.dirname(path)


def normalize(path: str) -> str:
    """Absolute, normalised, no trailing slash; ``..`` cannot climb above ``/``."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def ancestors(path: str) -> list[str]:
    """Proper ancestors of an absolute path, nearest first, ending with ``/``."""
    out: list[str] = []
    p = path
    while p != "/":
        p = posixpath.dirname(p)
        out.append(p)
    return out


# --- names that are not UTF-8 ------------------------------------------------------------
#
# A Linux file name is bytes; an image may hold names that are not UTF-8. Everywhere in
# Python they are ``str`` with the undecodable bytes surrogate-escaped (as os.fsdecode
# makes them and the tar code reads them). SQLite's text must be UTF-8, and the store
# takes text that is not for damage, so such a name goes into the index as a BLOB of its
# bytes: ``stored`` on the way in, ``loaded``/``loaded_rows`` on the way out. Valid names,
# nearly all of them, stay text, so no existing database changes.


def stored(path: str) -> str | bytes:
    """``path`` as the metadata keeps it: text when it is UTF-8, else its bytes."""
    if path.isascii():
        return path
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogateescape")
    return path


def stored_or_none(path: str | None) -> str | bytes | None:
    return None if path is None else stored(path)


def loaded(value: str | bytes) -> str:
    """A name read from the metadata (see ``stored``)."""
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def loaded_rows(rows: list[tuple[Any, ...]], columns: tuple[int, ...] = (0, 8)) -> list[tuple[Any, ...]]:
    """``rows`` of the files table with the name ``columns`` (path and link in the usual
    column order) as ``str``, whichever way they were stored."""
    if not any(bytes in map(type, map(itemgetter(c), rows)) for c in columns):
        return rows  # the usual case, found without a Python loop
    return [tuple(loaded(v) if i in columns and v is not None else v for i, v in enumerate(row)) for row in rows]


def shown(text: str) -> str:
    """A name (or a message holding one) as text any terminal and JSON can hold: bytes that
    are not UTF-8 written ``\\xff``, so printing never fails and never sends raw bytes."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name decodes to (one from JSON)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def type_from_mode(st_mode: int) -> str:
    if stat.S_ISREG(st_mode):
        return FILE
    if stat.S_ISDIR(st_mode):
        return DIR
    if stat.S_ISLNK(st_mode):
        return SYMLINK
    if stat.S_ISCHR(st_mode):
        return CHAR
    if stat.S_ISBLK(st_mode):
        return BLOCK
    if stat.S_ISFIFO(st_mode):
        return FIFO
    if stat.S_ISSOCK(st_mode):
        return SOCKET
    raise ValueError(f"unknown file type {st_mode:o}")
