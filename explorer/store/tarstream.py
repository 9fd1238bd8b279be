"""A streaming tar reader and a canonical PAX header writer, both our own.

Why not ``tarfile``: a layer's identity (its diff_id) is the sha256 of the exact tar
bytes, and re-exporting a layer must give the same bytes back. That needs every byte
that is not file payload (headers, long-name and PAX records, padding, end blocks,
trailing junk) handed to the caller as it is read, which ``tarfile`` cannot do; and
extraction must never be delegated to a library that follows symlinks.

The reader accepts ustar, GNU and PAX archives (long names, PAX 'x'/'g' records,
base-256 numbers). Header-only types (links, devices, dirs, fifos) carry no payload
whatever their size field says, as in Go's archive/tar, which Docker uses.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import ArchiveError, TruncatedArchive
from ..filelimits import out_of_range

BLOCK = 512
CHUNK = 1 << 20
ZERO_BLOCK = bytes(BLOCK)
MAX_META = 16 << 20  # bytes of one PAX or GNU long-name record held in memory
MAX_DIGITS = 100  # of a PAX number: far beyond any range we accept, far below what int() refuses

# Member typeflags as they appear in headers.
REG = "0"
AREG = "\0"
LNK = "1"
SYM = "2"
CHR = "3"
BLK = "4"
DIR = "5"
FIFO = "6"
CONT = "7"
PAX_LOCAL = "x"
PAX_GLOBAL = "g"
GNU_LONGNAME = "L"
GNU_LONGLINK = "K"
GNU_SPARSE = "S"

MEMBER_TYPES = frozenset((REG, AREG, LNK, SYM, CHR, BLK, DIR, FIFO, CONT))
PAYLOAD_TYPES = frozenset((REG, AREG, CONT))

RawSink = Callable[[bytes | memoryview], None]


class ByteSource(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


@dataclass(slots=True)
class TarMember:
    """One archive member after its long-name and PAX records were applied."""

    name: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int  # payload bytes that follow this header (0 for header-only types)
    mtime_ns: int
    linkname: str = ""
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)
    pax: dict[str, str] = field(default_factory=dict)

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9

    @property
    def is_file(self) -> bool:
        return self.type in PAYLOAD_TYPES

    @property
    def is_dir(self) -> bool:
        return self.type == DIR


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\0")
    return raw if end < 0 else raw[:end]


def is_header(block: bytes) -> bool:
    """Whether ``block`` is a whole, non-zero tar header with a valid checksum: what Docker asks
    of a file's first block before it treats the file as an archive."""
    if len(block) != BLOCK or block == ZERO_BLOCK:
        return False
    try:
        return _checksum_ok(block, block[148:156])
    except ArchiveError:
        return False


def parse_number(raw: bytes, what: str) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if raw and raw[0] & 0x80:
        value = int.from_bytes(raw[1:], "big")
        if raw[0] == 0xFF:  # negative two's complement over the whole field
            value = int.from_bytes(raw, "big") - (1 << (8 * len(raw)))
        elif raw[0] != 0x80:
            raise ArchiveError(f"bad base-256 number in tar header field {what}")
        return value
    end = raw.find(b"\0")
    text = raw if end < 0 else raw[:end]
    try:
        return int(text, 8)  # int() itself skips the spaces some writers pad with
    except ValueError:
        if not text.strip(b" "):
            return 0
        raise ArchiveError(f"bad number {text!r} in tar header field {what}") from None


def _checksum_ok(block: bytes, stored_field: bytes) -> bool:
    stored = parse_number(stored_field, "chksum")
    unsigned = sum(block) - sum(stored_field) + 8 * 32
    if stored == unsigned:
        return True
    signed = sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 8 * 32
    return stored == signed


# name mode uid gid size mtime chksum typeflag linkname magic version uname gname devmajor devminor prefix
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s")


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX extended header records: ``"<len> <key>=<value>\\n"``, ``len`` counting itself."""
    out: dict[str, bytes] = {}
    pos = 0
    n = len(data)
    while pos < n:
        if data[pos] == 0:  # some writers pad with NULs
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise ArchiveError("malformed PAX record: no length")
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ArchiveError("malformed PAX record length") from None
        end = pos + length
        if length <= 0 or end > n or data[end - 1] != 0x0A:
            raise ArchiveError("malformed PAX record: bad length")
        record = data[space + 1 : end - 1]
        eq = record.find(b"=")
        if eq <= 0:
            raise ArchiveError("malformed PAX record: no key")
        out[record[:eq].decode("utf-8", "surrogateescape")] = record[eq + 1 :]
        pos = end
    return out


def _ascii_digits(text: str) -> bool:
    """Only 0-9, and few enough for ``int`` to convert (it refuses over 4300): ``str.isdigit``
    and ``int`` also take other scripts' digits, ``_`` and spaces."""
    return len(text) <= MAX_DIGITS and text.isascii() and text.isdigit()


def _clip(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def parse_pax_int(text: str) -> int | None:
    """A PAX decimal number as Go's ``strconv.ParseInt`` reads it (an optional sign, ASCII
    digits, nothing else), or None."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not _ascii_digits(digits):
        return None
    return int(text)


def parse_pax_time(text: str) -> int:
    """PAX time (``-12.5``, ``1700000000.123456789``) as exact nanoseconds."""
    t = text.strip()
    neg = t.startswith("-")
    if neg:
        t = t[1:]
    whole, _, frac = t.partition(".")
    if not (whole or frac) or not _ascii_digits(whole or "0") or (frac and not _ascii_digits(frac)):
        raise ArchiveError(f"bad PAX time {_clip(text)}")
    ns = int(whole or "0") * 1_000_000_000 + int((frac + "000000000")[:9])
    return -ns if neg else ns


class TarReader:
    """Iterate members of a tar stream, handing every non-payload byte to ``raw_sink``.

    After a member is yielded, the caller may consume its payload with
    :meth:`payload` (all of it, or none); payload it leaves unread goes to
    ``raw_sink`` like any other byte, so a recording of the sink plus the consumed
    payloads always reassembles into the original stream.
    """

    def __init__(
        self, source: ByteSource, *, raw_sink: RawSink | None = None, max_meta: int = MAX_META, strict_end: bool = False
    ):
        self._src = source
        self._strict_end = strict_end
        self._sink = raw_sink
        self._max_meta = max_meta
        self._buf = b""
        self._pos = 0
        self._dropped = 0  # stream bytes before self._buf
        self._left = 0  # payload bytes of the current member not yet consumed
        self._pad = 0  # padding bytes after the current member's payload
        self._globals: dict[str, bytes] = {}
        self.members = 0
        self.ended = False
        self.current = ""

    @property
    def offset(self) -> int:
        """Bytes of the stream consumed so far."""
        return self._dropped + self._pos

    # --- buffer --------------------------------------------------------------------

    def _more(self) -> bool:
        chunk = self._src.read(CHUNK)
        if not chunk:
            return False
        rest = len(self._buf) - self._pos
        self._dropped += self._pos
        self._buf = self._buf[self._pos :] + chunk if rest else chunk
        self._pos = 0
        return True

    def _take(self, n: int) -> bytes:
        while len(self._buf) - self._pos < n:
            if not self._more():
                raise self._truncated("near")
        start = self._pos
        self._pos = start + n
        return self._buf[start : start + n]

    def _truncated(self, where: str) -> TruncatedArchive:
        text = f"unexpected end of data in tar stream {where} {self.current!r}: truncated"
        return TruncatedArchive(self.current, text)

    def _emit(self, data: bytes | memoryview) -> None:
        if self._sink is not None and data:
            self._sink(data)

    def _skip(self, n: int, record: bool) -> None:
        while n:
            if self._pos >= len(self._buf) and not self._more():
                raise self._truncated("near")
            k = min(n, len(self._buf) - self._pos)
            if record:
                self._emit(memoryview(self._buf)[self._pos : self._pos + k])
            self._pos += k
            n -= k

    # --- payload -------------------------------------------------------------------

    def payload(self) -> Iterator[memoryview]:
        """The current member's payload as views into the read buffer (valid until the next read)."""
        while self._left:
            if self._pos >= len(self._buf) and not self._more():
                raise self._truncated("inside")
            k = min(self._left, len(self._buf) - self._pos)
            view = memoryview(self._buf)[self._pos : self._pos + k]
            self._pos += k
            self._left -= k
            yield view

    def read_payload(self) -> bytes:
        return b"".join(bytes(v) for v in self.payload())

    # --- members -------------------------------------------------------------------

    def __iter__(self) -> Iterator[TarMember]:
        while True:
            member = self.next()
            if member is None:
                return
            yield member

    def next(self) -> TarMember | None:
        if self.ended:
            return None
        if self._left:
            self._skip(self._left, record=True)
            self._left = 0
        if self._pad:
            self._skip(self._pad, record=True)
            self._pad = 0
        local: dict[str, bytes] = {}
        longname: bytes | None = None
        longlink: bytes | None = None
        while True:
            if len(self._buf) - self._pos < BLOCK and not self._fill_block():
                self._finish()
                return None
            block = self._take(BLOCK)
            self._emit(block)
            if block == ZERO_BLOCK:
                if self._strict_end:
                    self._check_end()
                self._drain_trailing()
                return None
            fields = _HEADER.unpack_from(block)
            if not _checksum_ok(block, fields[6]):
                where = self.offset - BLOCK
                raise ArchiveError(f"tar header checksum mismatch at byte {where}: not a tar archive, or corrupt")
            flag = chr(block[156])
            size = parse_number(fields[4], "size")
            if flag in (PAX_LOCAL, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                data = self._meta(size, flag)
                if flag == PAX_LOCAL:
                    local.update(parse_pax(data))
                elif flag == PAX_GLOBAL:
                    self._globals.update(parse_pax(data))
                elif flag == GNU_LONGNAME:
                    longname = data.rstrip(b"\0")
                else:
                    longlink = data.rstrip(b"\0")
                continue
            return self._member(fields, flag, size, local, longname, longlink)

    def _fill_block(self) -> bool:
        """Make a whole block available; False on a clean end of stream at a block boundary."""
        while len(self._buf) - self._pos < BLOCK:
            if not self._more():
                if len(self._buf) - self._pos == 0:
                    return False
                raise self._truncated("near")
        return True

    def _meta(self, size: int, flag: str) -> bytes:
        if size < 0 or size > self._max_meta:
            raise ArchiveError(f"tar {flag!r} record of {size} bytes after {self.current!r} is too large")
        data = self._take(size)
        self._emit(data)
        pad = -size % BLOCK
        self._emit(self._take(pad))
        return data

    def _member(
        self,
        fields: tuple[bytes, ...],
        flag: str,
        size: int,
        local: dict[str, bytes],
        longname: bytes | None,
        longlink: bytes | None,
    ) -> TarMember:
        pax = {**self._globals, **local} if self._globals else local
        name_b = _cstr(fields[0])
        if fields[9] == b"ustar\x00" and fields[15][0] != 0:
            name_b = _cstr(fields[15]) + b"/" + name_b
        if longname is not None:
            name_b = longname
        name = _decode(name_b)
        linkname = _decode(longlink if longlink is not None else _cstr(fields[8]))
        self.current = name
        if flag not in MEMBER_TYPES:
            if flag == GNU_SPARSE:
                raise ArchiveError(f"tar entry {name!r} is a sparse file, which layers must not contain")
            raise ArchiveError(f"tar entry {name!r} has unsupported type {flag!r}")
        if flag == AREG and name.endswith("/"):
            flag = DIR
        mode = parse_number(fields[1], "mode")
        uid = parse_number(fields[2], "uid")
        gid = parse_number(fields[3], "gid")
        mtime_ns = parse_number(fields[5], "mtime") * 1_000_000_000
        uname = _decode(_cstr(fields[11]))
        gname = _decode(_cstr(fields[12]))
        devmajor = devminor = 0
        if flag in (CHR, BLK):
            devmajor = parse_number(fields[13], "devmajor")
            devminor = parse_number(fields[14], "devminor")
        xattrs: dict[str, bytes] = {}
        strs: dict[str, str] = {}
        if pax:
            if any(k.startswith("GNU.sparse.") for k in pax):
                raise ArchiveError(f"tar entry {name!r} is a sparse file, which layers must not contain")
            for key, value in pax.items():
                if key.startswith("SCHILY.xattr."):
                    xattrs[key[len("SCHILY.xattr.") :]] = value
                    continue
                text = _decode(value)
                strs[key] = text
                if key == "path":
                    name = text
                elif key == "linkpath":
                    linkname = text
                elif key in ("size", "uid", "gid"):
                    num = parse_pax_int(text)
                    if num is None:
                        raise ArchiveError(f"tar entry {name!r}: bad PAX {key} {_clip(text)}")
                    if key == "size":
                        size = num
                    elif key == "uid":
                        uid = num
                    else:
                        gid = num
                elif key == "mtime":
                    try:
                        mtime_ns = parse_pax_time(text)
                    except ArchiveError as e:
                        raise ArchiveError(f"tar entry {name!r}: {e}") from None
                elif key == "uname":
                    uname = text
                elif key == "gname":
                    gname = text
            self.current = name
        if size < 0:
            raise ArchiveError(f"tar entry {name!r} has a negative size")
        why = out_of_range(uid, gid, mtime_ns, devmajor, devminor)
        if why is not None:
            raise ArchiveError(f"tar entry {name!r}: {why}")
        payload = size if flag in PAYLOAD_TYPES else 0
        self._left = payload
        self._pad = -payload % BLOCK
        self.members += 1
        return TarMember(
            name, flag, mode, uid, gid, payload, mtime_ns, linkname, uname, gname, devmajor, devminor, xattrs, strs
        )

    def _check_end(self) -> None:
        """After a first zero block, as Go's archive/tar reads it: the stream ends there, or the
        next whole block is zero too; part of a block is a truncated archive."""
        if len(self._buf) - self._pos < BLOCK and not self._fill_block():
            return
        if self._buf[self._pos : self._pos + BLOCK] != ZERO_BLOCK:
            raise ArchiveError(f"tar stream goes on after its end-of-archive block at byte {self.offset - BLOCK}")

    def _drain_trailing(self) -> None:
        """After the first zero block everything is end-of-archive padding or junk: keep it raw."""
        self._emit(memoryview(self._buf)[self._pos :])
        self._dropped += len(self._buf)
        self._buf = b""
        self._pos = 0
        while chunk := self._src.read(CHUNK):
            self._emit(chunk)
        self._finish()

    def _finish(self) -> None:
        self.ended = True


# --- writer ----------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes | None:
    """``width``-byte octal field with a trailing NUL, or None when it does not fit."""
    if value < 0:
        return None
    text = b"%0*o" % (width - 1, value)
    if len(text) > width - 1:
        return None
    return text + b"\0"


def _base256(value: int, width: int) -> bytes:
    if value < 0:
        return (value + (1 << (8 * width))).to_bytes(width, "big")
    return b"\x80" + value.to_bytes(width - 1, "big")


def pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode("utf-8") + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length).encode()) + len(body) != length:
        length = len(str(length).encode()) + len(body)
    return str(length).encode() + body


def _ustar_block(
    name: bytes,
    flag: str,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: bytes,
    devmajor: int,
    devminor: int,
) -> bytes:
    def num(value: int, width: int) -> bytes:
        return _octal(value, width) or _base256(value, width)

    block = bytearray(BLOCK)
    block[0 : len(name)] = name
    block[100:108] = num(mode, 8)
    block[108:116] = num(uid, 8)
    block[116:124] = num(gid, 8)
    block[124:136] = num(size, 12)
    block[136:148] = num(mtime, 12)
    block[148:156] = b"        "
    block[156] = ord(flag)
    block[157 : 157 + len(linkname)] = linkname
    block[257:265] = b"ustar\x0000"
    block[329:337] = num(devmajor, 8)
    block[337:345] = num(devminor, 8)
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _field_name(raw: bytes) -> tuple[bytes, bool]:
    """The ustar name field for ``raw`` and whether it holds the whole name."""
    if len(raw) <= 100 and raw.isascii():
        return raw, True
    safe = bytes(c if 32 <= c < 127 else 0x5F for c in raw[:100])
    return safe, False


def build_header(
    name: str,
    flag: str,
    *,
    mode: int = 0o644,
    uid: int = 0,
    gid: int = 0,
    size: int = 0,
    mtime: int = 0,
    linkname: str = "",
    devmajor: int = 0,
    devminor: int = 0,
) -> bytes:
    """The header bytes of one member in POSIX.1-2001 (PAX) form, deterministically.

    Anything a ustar field cannot hold (long or non-ASCII names, big ids, sizes or
    times) goes into a preceding 'x' record with sorted keys; uname/gname stay empty
    and no atime/ctime is written, so the same inputs always give the same bytes.
    """
    records: dict[str, bytes] = {}
    raw_name = name.encode("utf-8", "surrogateescape")
    raw_link = linkname.encode("utf-8", "surrogateescape")
    name_field, whole = _field_name(raw_name)
    if not whole:
        records["path"] = raw_name
    link_field, whole = _field_name(raw_link)
    if not whole:
        records["linkpath"] = raw_link
    for key, value, width in (("uid", uid, 8), ("gid", gid, 8), ("size", size, 12), ("mtime", mtime, 12)):
        if _octal(value, width) is None:
            records[key] = str(value).encode()
    if any(_is_binary(v) for k, v in records.items() if k in ("path", "linkpath")):
        records["hdrcharset"] = b"BINARY"
    fields = {
        "uid": 0 if "uid" in records else uid,
        "gid": 0 if "gid" in records else gid,
        "size": 0 if "size" in records else size,
        "mtime": 0 if "mtime" in records else mtime,
    }
    out = b""
    if records:
        data = b"".join(pax_record(k, records[k]) for k in sorted(records))
        out = _ustar_block(b"././@PaxHeader", PAX_LOCAL, 0o644, 0, 0, len(data), 0, b"", 0, 0)
        out += data + bytes(-len(data) % BLOCK)
    return out + _ustar_block(
        name_field,
        flag,
        mode & 0o7777,
        fields["uid"],
        fields["gid"],
        fields["size"],
        fields["mtime"],
        link_field,
        devmajor,
        devminor,
    )


def _is_binary(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def padding(size: int) -> bytes:
    return bytes(-size % BLOCK)


END_OF_ARCHIVE = bytes(2 * BLOCK)
