"""Reading rows out of a damaged ``metadata.db`` page by page, as SQLite's ``.recover``
does, with no help from SQLite itself.

A truncated file, an overwritten header or flipped bytes make SQLite refuse the whole
database, yet most of its pages are usually intact. This reads the file format directly
(https://www.sqlite.org/fileformat2.html): every table's b-tree is walked from the root
page ``sqlite_master`` names, and where that fails (the schema page or an interior page
is gone) every leaf page of the file is read and each record is given to the table whose
shape it has. Committed pages still in the write-ahead log replace their older copies.
A row comes back only when every value has the type its column needs and text is valid
UTF-8: what cannot be read whole is left out, for the rebuild to recompute from the
directories. The caller must still check what comes back against the disk (a page from
the free list can hold a row deleted long ago).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_MAGIC = b"SQLite format 3\x00"
_LEAF_TABLE, _LEAF_INDEX, _INTERIOR_TABLE, _INTERIOR_INDEX = 13, 10, 5, 2
_PAGE_SIZES = (4096, 1024, 2048, 8192, 16384, 32768, 65536, 512)

Row = tuple[Any, ...]


def _text(v: object) -> bool:
    return isinstance(v, str)


def _opt_text(v: object) -> bool:
    return v is None or isinstance(v, str)


def _name(v: object) -> bool:
    """A file name in the index: text, or bytes where it is not UTF-8 (see index.stored)."""
    return isinstance(v, (str, bytes))


def _opt_name(v: object) -> bool:
    return v is None or isinstance(v, (str, bytes))


def _int(v: object) -> bool:
    return isinstance(v, int)


def _opt_int(v: object) -> bool:
    return v is None or isinstance(v, int)


def _real(v: object) -> bool:
    return isinstance(v, (int, float))


def _opt_real(v: object) -> bool:
    return v is None or isinstance(v, (int, float))


def _blob(v: object) -> bool:
    return isinstance(v, (bytes, str))


def _digest(v: object) -> bool:
    return isinstance(v, str) and v.startswith("sha256:") and len(v) == 71


def _opt_digest(v: object) -> bool:
    return v is None or isinstance(v, str)


def _hex_id(v: object) -> bool:
    return isinstance(v, str) and len(v) in (32, 64) and all(c in "0123456789abcdef" for c in v)


def _opt_hex_id(v: object) -> bool:
    return v is None or _hex_id(v)


# The columns of each table of schema 1 (metadata.py), in record order, as checks.
SHAPES: dict[str, tuple[Callable[[object], bool], ...]] = {
    "layers": (_hex_id, _digest, _digest, _opt_hex_id, _int, _int, _int, _int, _int, _int, _real, _text),
    "files": (_hex_id, _name, _name, _text, _int, _int, _int, _int, _real, _opt_text, _opt_name, _int, _int, _int),
    "images": (_digest, _blob, _opt_hex_id, _opt_digest, _real),
    "tags": (_text, _digest),
    "blobs": (_hex_id, _digest, _text, _int, _text),
    "containers": (
        _hex_id,
        _text,
        _digest,
        _text,
        _text,
        _text,
        _real,
        _text,
        _opt_real,
        _opt_real,
        _opt_int,
        _opt_int,
    ),
    "volumes": (_text, _real, _text, _int, _text),
    "container_volumes": (_hex_id, _text, _text, _int),
    "build_cache": (_text, _opt_text, _opt_hex_id, _blob, _text, _text, _real, _real),
}


@dataclass
class Salvaged:
    """What could be read: rows per table, and how much of the file was unreadable."""

    rows: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in SHAPES})
    pages: int = 0
    bad_pages: int = 0
    schema_found: bool = False

    @property
    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())


class _Bad(Exception):
    """A page or record that does not parse."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        if pos + i >= len(buf):
            raise _Bad("varint past the end")
        byte = buf[pos + i]
        if i == 8:
            return (value << 8) | byte, pos + 9
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos + i + 1
    raise _Bad("varint")  # pragma: no cover - the loop returns


def _record(payload: bytes) -> Row:
    header_size, pos = _varint(payload, 0)
    if header_size > len(payload) or header_size < 1:
        raise _Bad("record header")
    types = []
    while pos < header_size:
        t, pos = _varint(payload, pos)
        types.append(t)
    body = header_size
    out: list[Any] = []
    for t in types:
        if t == 0:
            out.append(None)
        elif 1 <= t <= 6:
            n = (1, 2, 3, 4, 6, 8)[t - 1]
            if body + n > len(payload):
                raise _Bad("integer past the end")
            out.append(int.from_bytes(payload[body : body + n], "big", signed=True))
            body += n
        elif t == 7:
            if body + 8 > len(payload):
                raise _Bad("real past the end")
            out.append(struct.unpack(">d", payload[body : body + 8])[0])
            body += 8
        elif t in (8, 9):
            out.append(t - 8)
        elif t >= 12:
            n = (t - 12) // 2
            if body + n > len(payload):
                raise _Bad("value past the end")
            raw = payload[body : body + n]
            body += n
            if t % 2:
                try:
                    out.append(raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    raise _Bad("text that is not UTF-8") from e
            else:
                out.append(bytes(raw))
        else:
            raise _Bad("reserved serial type")
    return tuple(out)


class _File:
    """The pages of the database file, with the write-ahead log's committed pages on top."""

    def __init__(self, path: str) -> None:
        with open(path, "rb") as f:
            self.data = f.read()
        header_ok = self.data[:16] == _MAGIC
        self.page_size = self._header_page_size() if header_ok else 0
        self.reserved = self.data[20] if header_ok and len(self.data) > 20 else 0
        if not self.page_size:
            self.page_size = self._guess_page_size()
            self.reserved = 0
        self.usable = self.page_size - self.reserved
        self.count = max(1, -(-len(self.data) // self.page_size))
        self.wal: dict[int, bytes] = {}
        self._read_wal(path + "-wal")

    def _header_page_size(self) -> int:
        raw = int.from_bytes(self.data[16:18], "big")
        size = 65536 if raw == 1 else raw
        return size if size in _PAGE_SIZES else 0

    def _guess_page_size(self) -> int:
        """The size at which most page starts look like b-tree pages."""

        def score(size: int) -> int:
            hits = 0
            for start in range(size, min(len(self.data), size * 64), size):
                if self.data[start] in (_LEAF_TABLE, _LEAF_INDEX, _INTERIOR_TABLE, _INTERIOR_INDEX):
                    hits += 1
            return hits

        return max(_PAGE_SIZES, key=score)

    def _read_wal(self, path: str) -> None:
        try:
            with open(path, "rb") as f:
                wal = f.read()
        except OSError:
            return
        if len(wal) < 32 or int.from_bytes(wal[8:12], "big") != self.page_size:
            return
        frame = 24 + self.page_size
        pending: dict[int, bytes] = {}
        for start in range(32, len(wal) - frame + 1, frame):
            number = int.from_bytes(wal[start : start + 4], "big")
            pending[number] = wal[start + 24 : start + frame]
            if int.from_bytes(wal[start + 4 : start + 8], "big"):  # a commit frame
                self.wal.update(pending)
                pending = {}
        if self.wal:
            self.count = max(self.count, max(self.wal))

    def page(self, number: int) -> bytes:
        if number in self.wal:
            return self.wal[number]
        start = (number - 1) * self.page_size
        if number < 1 or start >= len(self.data):
            raise _Bad(f"page {number} is past the end of the file")
        return self.data[start : start + self.page_size]

    def local_size(self, payload: int, table_leaf: bool) -> int:
        u = self.usable
        x = u - 35 if table_leaf else (u - 12) * 64 // 255 - 23
        if payload <= x:
            return payload
        m = (u - 12) * 32 // 255 - 23
        k = m + (payload - m) % (u - 4)
        return k if k <= x else m

    def payload(self, page: bytes, pos: int, size: int, table_leaf: bool) -> bytes:
        local = self.local_size(size, table_leaf)
        out = bytearray(page[pos : pos + local])
        if len(out) != local:
            raise _Bad("cell past the end of its page")
        if local == size:
            return bytes(out)
        following = int.from_bytes(page[pos + local : pos + local + 4], "big")
        seen: set[int] = set()
        while len(out) < size:
            if following in seen or following == 0:
                raise _Bad("broken overflow chain")
            seen.add(following)
            over = self.page(following)
            following = int.from_bytes(over[:4], "big")
            out += over[4 : self.usable][: size - len(out)]
        return bytes(out)


@dataclass
class _Cells:
    kind: int
    records: list[Row]
    children: list[int]


def _cells(db: _File, number: int) -> _Cells:
    page = db.page(number)
    base = 100 if number == 1 else 0
    if len(page) < base + 8:
        raise _Bad("short page")
    kind = page[base]
    if kind not in (_LEAF_TABLE, _LEAF_INDEX, _INTERIOR_TABLE, _INTERIOR_INDEX):
        raise _Bad(f"page {number} is not a b-tree page")
    n_cells = int.from_bytes(page[base + 3 : base + 5], "big")
    header = 8 if kind in (_LEAF_TABLE, _LEAF_INDEX) else 12
    if base + header + 2 * n_cells > len(page):
        raise _Bad("cell count beyond the page")
    children: list[int] = []
    if header == 12:
        children.append(int.from_bytes(page[base + 8 : base + 12], "big"))
    records: list[Row] = []
    for i in range(n_cells):
        at = base + header + 2 * i
        pos = int.from_bytes(page[at : at + 2], "big")
        if pos >= len(page):
            continue
        try:
            if kind == _INTERIOR_TABLE:
                children.append(int.from_bytes(page[pos : pos + 4], "big"))
                continue
            if kind == _INTERIOR_INDEX:
                children.append(int.from_bytes(page[pos : pos + 4], "big"))
                pos += 4
            size, pos = _varint(page, pos)
            if kind == _LEAF_TABLE:
                _rowid, pos = _varint(page, pos)
            records.append(_record(db.payload(page, pos, size, kind == _LEAF_TABLE)))
        except _Bad:
            continue
    return _Cells(kind, records, children)


def _walk(db: _File, root: int, visited: set[int]) -> Iterator[Row]:
    """Every record of the b-tree at ``root``; raises ``_Bad`` when part of it is unreadable."""
    stack = [root]
    broken = False
    while stack:
        number = stack.pop()
        if number in visited:
            continue
        visited.add(number)
        try:
            cells = _cells(db, number)
        except _Bad:
            broken = True
            continue
        yield from cells.records
        stack.extend(cells.children)
    if broken:
        raise _Bad("part of the tree is unreadable")


def _fits(table: str, row: Row) -> bool:
    shape = SHAPES[table]
    return len(row) == len(shape) and all(check(v) for check, v in zip(shape, row, strict=True))


def _schema(db: _File, visited: set[int]) -> dict[str, int]:
    roots: dict[str, int] = {}
    try:
        for row in _walk(db, 1, visited):
            if len(row) == 5 and row[0] == "table" and row[1] in SHAPES and isinstance(row[3], int):
                roots[row[1]] = row[3]
    except _Bad:
        pass
    return roots


def salvage(path: str | os.PathLike[str]) -> Salvaged:
    """The rows of every table that can still be read from the database at ``path``."""
    out = Salvaged()
    try:
        db = _File(os.fspath(path))
    except OSError:
        return out
    out.pages = db.count
    visited: set[int] = set()
    roots = _schema(db, visited)
    out.schema_found = bool(roots)
    unsure: list[str] = []
    for table in SHAPES:
        root = roots.get(table)
        if root is None:
            unsure.append(table)
            continue
        kept: list[Row] = []
        try:
            for row in _walk(db, root, visited):
                if _fits(table, row):
                    kept.append(row)
        except _Bad:
            unsure.append(table)
        out.rows[table] = kept
    if unsure:
        _scan_loose_pages(db, visited, unsure, out)
    out.bad_pages = sum(1 for n in range(1, db.count + 1) if not _readable(db, n))
    return out


def _scan_loose_pages(db: _File, visited: set[int], tables: list[str], out: Salvaged) -> None:
    """Give the records of leaf pages no walk reached to the first table they fit."""
    for number in range(1, db.count + 1):
        if number in visited:
            continue
        try:
            cells = _cells(db, number)
        except _Bad:
            continue
        if cells.kind not in (_LEAF_TABLE, _LEAF_INDEX):
            continue
        for row in cells.records:
            for table in tables:
                if _fits(table, row):
                    out.rows[table].append(row)
                    break


def _readable(db: _File, number: int) -> bool:
    try:
        page = db.page(number)
    except _Bad:
        return False
    base = 100 if number == 1 else 0
    return len(page) == db.page_size and page[base] in (0, _LEAF_TABLE, _LEAF_INDEX, _INTERIOR_TABLE, _INTERIOR_INDEX)
