"""extract_layer: what lands on disk and in the index, compression, and every refusal."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import stat
import tarfile
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import event, given, settings
from hypothesis import strategies as st

from explorer.errors import ArchiveError, InvalidArgument, StrataError, UnsafeArchive
from explorer.fsutil import rmtree
from explorer.store import tarstream
from explorer.store.extract import ExtractResult, Limits, extract_layer
from explorer.store.index import FileEntry
from explorer.store.scan import scan_dir
from explorer.store.tarsplit import reassemble
from tests.capabilities import real_root, require_root

MTIME = 1_600_000_000

# --- building test archives -------------------------------------------------------------


def reg(name: str, data: bytes = b"", mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: float = MTIME):
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), mode, uid, gid, mtime
    return info, data


def dir_(name: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float = MTIME):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.mtime = tarfile.DIRTYPE, mode, uid, gid, mtime
    return info, None


def sym(name: str, target: str, mtime: float = MTIME):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.mtime = tarfile.SYMTYPE, target, 0o777, mtime
    return info, None


def hard(name: str, target: str):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mtime = tarfile.LNKTYPE, target, MTIME
    return info, None


def dev(name: str, kind: bytes, major: int, minor: int, mode: int = 0o666):
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor, info.mode, info.mtime = kind, major, minor, mode, MTIME
    return info, None


def fifo(name: str):
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.FIFOTYPE, 0o600, MTIME
    return info, None


def make_tar(members, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def raw_member(name: str, flag: str = "0", data: bytes = b"", **kw) -> bytes:
    """A member written by our own header writer: lets tests say things tarfile will not."""
    return tarstream.build_header(name, flag, size=len(data), **kw) + data + tarstream.padding(len(data))


def raw_tar(*members: bytes) -> bytes:
    return b"".join(members) + tarstream.END_OF_ARCHIVE


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def box(tmp_path: Path):
    """An empty ``dest`` next to an ``outside`` directory holding a canary."""
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("keep")
    return dest, outside


def snapshot(top: Path, skip: Path) -> dict[str, tuple[int, bytes | str]]:
    """Everything under ``top`` except ``skip``: type+mode and content or link target."""
    out: dict[str, tuple[int, bytes | str]] = {}
    for root, dirs, files in os.walk(top):
        if Path(root) == skip or skip in Path(root).parents:
            continue
        for name in dirs + files:
            p = os.path.join(root, name)
            if Path(p) == skip:
                continue
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                content: bytes | str = Path(p).read_bytes()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(p)
            else:
                content = b""
            out[p] = (st.st_mode, content)
    return out


def extract(data: bytes, dest: Path, **kw) -> ExtractResult:
    return extract_layer(io.BytesIO(data), str(dest), **kw)


def by_path(result: ExtractResult) -> dict[str, FileEntry]:
    return {e.path: e for e in result.entries}


def refuse(data: bytes, box, match: str, exc: type[Exception] = UnsafeArchive, **kw) -> Exception:
    """Extraction must fail with ``exc`` mentioning ``match`` and leave all outside ``dest`` alone."""
    dest, outside = box
    rmtree(dest)
    dest.mkdir()
    top = dest.parent
    before = snapshot(top, dest)
    with pytest.raises(exc, match=match) as info:
        extract(data, dest, **kw)
    assert snapshot(top, dest) == before
    assert (outside / "canary").read_text() == "keep"
    return info.value


# --- the happy path -----------------------------------------------------------------------


def test_extracts_all_types_with_metadata(box):
    dest, _ = box
    data = make_tar(
        [
            dir_("etc/", mode=0o755),
            reg("etc/passwd", b"root:x:0:0\n", uid=0),
            reg("usr/bin/su", b"\x7fELF", mode=0o4755),
            reg("home/u/notes", b"n", uid=1000, gid=1000, mode=0o600),
            dir_("tmp/", mode=0o1777),
            dir_("ro/", mode=0o555),
            reg("ro/inner", b"in ro"),
            reg("secret", b"s", mode=0o000),
            sym("etc/localtime", "/usr/share/zoneinfo/UTC", mtime=MTIME + 5),
            hard("usr/bin/sudo", "usr/bin/su"),
            fifo("run/fifo"),
            dev("dev/null", tarfile.CHRTYPE, 1, 3),
            dev("dev/sda", tarfile.BLKTYPE, 8, 0, mode=0o660),
            reg("frac", b"x", mtime=MTIME + 0.25),
        ]
    )
    r = extract(data, dest)
    idx = by_path(r)
    assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert r.size == len(data)
    assert r.compressed_digest == r.diff_id and r.compressed_size == len(data)
    assert [e.path for e in r.entries] == sorted(idx)
    assert "/" not in idx
    # implicit parents are indexed as 0755 root dirs
    for implicit in ("/usr", "/usr/bin", "/home", "/home/u", "/run", "/dev"):
        assert idx[implicit] == FileEntry(implicit, "dir", 0o755, 0, 0, 0, 0.0)
        assert stat.S_IMODE(os.lstat(dest / implicit[1:]).st_mode) == 0o755
    passwd = idx["/etc/passwd"]
    assert passwd.type == "file" and passwd.size == 11 and passwd.mtime == MTIME
    assert passwd.digest == __import__("xxhash").xxh3_128(b"root:x:0:0\n").hexdigest()
    assert (dest / "etc/passwd").read_bytes() == b"root:x:0:0\n"
    assert idx["/usr/bin/su"].mode == 0o4755
    assert stat.S_IMODE(os.lstat(dest / "usr/bin/su").st_mode) == 0o4755
    assert idx["/tmp"].mode == 0o1777 and stat.S_IMODE(os.lstat(dest / "tmp").st_mode) == 0o1777
    assert idx["/ro"].mode == 0o555 and stat.S_IMODE(os.lstat(dest / "ro").st_mode) == 0o555
    assert (dest / "ro/inner").read_bytes() == b"in ro"
    home = idx["/home/u/notes"]
    assert (home.uid, home.gid) == (1000, 1000)
    if os.geteuid() == 0:  # rootless, only the index keeps owners
        assert (os.lstat(dest / "home/u/notes").st_uid, os.lstat(dest / "home/u/notes").st_gid) == (1000, 1000)
    link = idx["/etc/localtime"]
    assert link.type == "symlink" and link.link == "/usr/share/zoneinfo/UTC"
    assert os.readlink(dest / "etc/localtime") == "/usr/share/zoneinfo/UTC"
    assert os.lstat(dest / "etc/localtime").st_mtime == MTIME + 5
    sudo = idx["/usr/bin/sudo"]
    assert sudo.type == "hardlink" and sudo.link == "/usr/bin/su" and sudo.size == 0
    assert os.lstat(dest / "usr/bin/sudo").st_ino == os.lstat(dest / "usr/bin/su").st_ino
    assert idx["/run/fifo"].type == "fifo" and stat.S_ISFIFO(os.lstat(dest / "run/fifo").st_mode)
    null = idx["/dev/null"]
    assert (null.type, null.devmajor, null.devminor, null.mode) == ("char", 1, 3, 0o666)
    sda = idx["/dev/sda"]
    assert (sda.type, sda.devmajor, sda.devminor) == ("block", 8, 0)
    if real_root():  # a user namespace cannot make device nodes: the index keeps them
        st = os.lstat(dest / "dev/null")
        assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert idx["/frac"].mtime == MTIME + 0.25
    assert os.lstat(dest / "frac").st_mtime_ns == (MTIME * 10**9) + 250_000_000
    assert idx["/etc"].mtime == MTIME and os.lstat(dest / "etc").st_mtime == MTIME
    assert idx["/secret"].mode == 0


def test_index_matches_a_scan_of_the_result(box):
    dest, _ = box
    data = make_tar([reg("a/b", b"1"), hard("a/c", "a/b"), sym("l", "a"), dir_("d/"), reg(".wh.gone")])
    r = extract(data, dest)
    assert scan_dir(str(dest), base=by_path(r)) == r.entries


def test_root_entry_is_skipped_and_leading_slash_stripped(box):
    dest, _ = box
    data = make_tar([dir_("./"), reg("./a", b"1"), reg("/abs/b", b"2"), reg("x/../c", b"3")])
    r = extract(data, dest)
    assert [e.path for e in r.entries] == ["/a", "/abs", "/abs/b", "/c"]
    assert (dest / "abs/b").read_bytes() == b"2"


def test_user_xattrs_are_applied_but_overlay_ones_are_not(box):
    dest, _ = box
    info, _none = dir_("d/")
    info.pax_headers = {"SCHILY.xattr.user.overlay.opaque": "y", "SCHILY.xattr.user.note": "dir"}
    finfo, fdata = reg("d/f", b"x")
    finfo.pax_headers = {"SCHILY.xattr.user.note": "hello", "SCHILY.xattr.security.capability": "zz"}
    r = extract(make_tar([(info, None), (finfo, fdata)]), dest)
    assert os.getxattr(dest / "d/f", "user.note") == b"hello"
    assert os.getxattr(dest / "d", "user.note") == b"dir"
    with pytest.raises(OSError):
        os.getxattr(dest / "d", "user.overlay.opaque")
    assert by_path(r)["/d"].opaque is False


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_and_links(box, fmt):
    dest, _ = box
    deep = "/".join(["d" * 40] * 3)  # 122 characters: prefix split in ustar, longname in GNU
    members = [reg(f"{deep}/file", b"x"), sym(f"{deep}/s", "t" * 90)]
    if fmt != tarfile.USTAR_FORMAT:
        members.append(hard(f"{deep}/h", f"{deep}/file"))
        members.append(reg("n" * 150, b"y"))
        members.append(sym("ls", "/" + "z" * 200))
    r = extract(make_tar(members, fmt), dest)
    idx = by_path(r)
    assert idx[f"/{deep}/file"].size == 1
    assert idx[f"/{deep}/s"].link == "t" * 90
    if fmt != tarfile.USTAR_FORMAT:
        assert idx[f"/{deep}/h"].link == f"/{deep}/file"
        assert (dest / ("n" * 150)).read_bytes() == b"y"
        assert idx["/ls"].link == "/" + "z" * 200


def test_base256_numbers(box):
    dest, _ = box
    data = make_tar([reg("big", b"q", uid=2**30, gid=2**25)], tarfile.GNU_FORMAT)
    r = extract(data, dest)
    assert (r.entries[0].uid, r.entries[0].gid) == (2**30, 2**25)


def test_global_pax_header_applies_to_following_members(box):
    dest, _ = box
    glob = tarstream.pax_record("uid", b"77")
    data = raw_tar(raw_member("pax_global_header", "g", glob), raw_member("a", data=b"1", uid=5))
    r = extract(data, dest)
    assert r.entries[0].uid == 77


def test_non_utf8_names_survive(box):
    dest, _ = box
    name = b"caf\xe9".decode("utf-8", "surrogateescape")
    data = raw_tar(raw_member(name, data=b"x"))
    r = extract(data, dest)
    assert r.entries[0].path == "/" + name
    assert os.path.exists(os.path.join(os.fsencode(dest), b"caf\xe9"))


# --- compression --------------------------------------------------------------------------


def test_gzip_and_zstd_and_multi_member(box):
    dest, _ = box
    data = make_tar([reg("a", b"a" * 5000), reg("b", os.urandom(3000))])
    variants = {
        "gzip": gzip.compress(data),
        "gzip-multi": gzip.compress(data[:3000]) + gzip.compress(data[3000:]),
        "gzip-padded": gzip.compress(data) + bytes(100),
        "zstd": zstandard.ZstdCompressor().compress(data),
        "zstd-multi": zstandard.ZstdCompressor().compress(data[:1000])
        + zstandard.ZstdCompressor().compress(data[1000:]),
    }
    for name, blob in variants.items():
        rmtree(dest)
        dest.mkdir()
        r = extract(blob, dest)
        assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest(), name
        assert r.compressed_digest == "sha256:" + hashlib.sha256(blob).hexdigest(), name
        assert (r.size, r.compressed_size) == (len(data), len(blob)), name
        assert (dest / "a").read_bytes() == b"a" * 5000


def test_empty_stream_is_an_empty_layer(box):
    dest, _ = box
    r = extract(b"", dest)
    assert r.entries == [] and r.size == 0


@pytest.mark.parametrize(
    "blob, match",
    [
        (gzip.compress(make_tar([reg("a", b"x" * 9000)]))[:-30], "truncated"),
        (gzip.compress(make_tar([reg("a", b"x")])) + b"junk", "unexpected data after"),
        (b"\x1f\x8b" + b"\x08\x00" + os.urandom(100), "corrupt gzip"),
        (zstandard.ZstdCompressor().compress(make_tar([reg("a", os.urandom(9000))]))[:-50], "truncated"),
        (make_tar([reg("a", b"x" * 2000)])[:1200], "truncated"),
    ],
)
def test_damaged_input_is_refused(box, blob, match):
    refuse(blob, box, match, exc=ArchiveError)


def test_bad_checksum_sparse_and_unknown_types(box):
    header = bytearray(raw_member("a", data=b"x"))
    header[0] = ord("b")  # name changed, checksum not
    refuse(raw_tar(bytes(header)), box, "checksum mismatch at byte 0", exc=ArchiveError)
    refuse(raw_tar(raw_member("s", "S")), box, "sparse", exc=ArchiveError)
    pax = tarstream.pax_record("GNU.sparse.major", b"1")
    refuse(raw_tar(raw_member("p", "x", pax) + raw_member("s", data=b"x")), box, "sparse", exc=ArchiveError)
    refuse(raw_tar(raw_member("v", "V")), box, "unsupported type 'V'", exc=ArchiveError)


def test_dest_must_be_empty(box):
    dest, _ = box
    (dest / "x").write_text("")
    with pytest.raises(InvalidArgument, match="not empty"):
        extract(make_tar([]), dest)


# --- overlay form -------------------------------------------------------------------------


def test_whiteouts_and_opaque_dirs(box):
    dest, _ = box
    data = make_tar(
        [
            dir_("etc/", mode=0o750),
            reg("etc/.wh.old", b""),
            reg("var/.wh..wh..opq"),
            reg("var/new", b"n"),
            reg(".wh.top"),
            reg("etc/.wh..wh..opq"),
        ]
    )
    r = extract(data, dest)
    idx = by_path(r)
    wh = idx["/etc/old"]
    assert wh.type == "whiteout"
    st = os.lstat(dest / "etc/old")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert idx["/top"].type == "whiteout"
    assert idx["/var"].opaque and idx["/var"].mode == 0o755
    assert os.getxattr(dest / "var", "user.overlay.opaque") == b"y"
    assert idx["/etc"].opaque and idx["/etc"].mode == 0o750
    assert not any(".wh." in p for p in idx)
    assert not any(".wh." in n for _r, ds, fs in os.walk(dest) for n in ds + fs)


def test_whiteout_and_file_in_one_layer(box):
    """A whiteout hides lower layers only: what this layer made at that path stays; a
    directory over a whiteout (or whited out after) hides the lower directory's files."""
    dest, _ = box
    data = make_tar(
        [
            reg("keep", b"k"),
            reg(".wh.keep"),
            reg(".wh.later"),
            reg("later", b"l"),
            dir_("d/"),
            reg(".wh.d"),
            reg(".wh.e"),
            reg("e/inner", b"i"),
        ]
    )
    idx = by_path(extract(data, dest))
    assert idx["/keep"].type == "file" and (dest / "keep").read_bytes() == b"k"
    assert idx["/later"].type == "file" and (dest / "later").read_bytes() == b"l"
    assert idx["/d"].opaque and os.getxattr(dest / "d", "user.overlay.opaque") == b"y"
    assert idx["/e"].opaque and idx["/e/inner"].type == "file"


def test_char_device_zero_is_a_whiteout(box):
    dest, _ = box
    idx = by_path(extract(make_tar([dev("gone", tarfile.CHRTYPE, 0, 0)]), dest))
    assert idx["/gone"].type == "whiteout"


def test_later_member_replaces_earlier_and_dirs_merge(box):
    dest, _ = box
    data = make_tar(
        [
            reg("f", b"first"),
            reg("f", b"second"),
            dir_("d/", mode=0o700),
            reg("d/a", b"a"),
            dir_("d/", mode=0o755, uid=3),
            reg("d/b", b"b"),
            dir_("x/"),
            reg("x/y", b"y"),
            reg("x", b"now a file"),
            reg("s", b"file"),
            sym("s", "elsewhere"),
            sym("t", "somewhere"),
            dir_("t/"),
        ]
    )
    idx = by_path(extract(data, dest))
    assert (dest / "f").read_bytes() == b"second" and idx["/f"].size == 6
    assert sorted(os.listdir(dest / "d")) == ["a", "b"]
    assert idx["/d"].mode == 0o755 and idx["/d"].uid == 3
    assert "/x/y" not in idx and idx["/x"].type == "file" and (dest / "x").read_bytes() == b"now a file"
    assert idx["/s"].type == "symlink" and os.readlink(dest / "s") == "elsewhere"
    assert idx["/t"].type == "dir" and (dest / "t").is_dir() and not (dest / "t").is_symlink()


def test_replacing_a_hardlinked_file_keeps_the_link_content(box):
    dest, _ = box
    data = make_tar([reg("f", b"old"), hard("h1", "f"), hard("h2", "h1"), reg("f", b"new!")])
    idx = by_path(extract(data, dest))
    assert idx["/h1"].type == "file" and idx["/h1"].size == 3
    assert idx["/h2"].type == "hardlink" and idx["/h2"].link == "/h1"
    assert (dest / "h2").read_bytes() == b"old" and (dest / "f").read_bytes() == b"new!"


# --- safety -------------------------------------------------------------------------------


def test_dotdot_climbing_out_is_refused(box):
    err = refuse(make_tar([reg("../escape", b"x")]), box, "climbs out", what="layer sha256:abc")
    assert isinstance(err, UnsafeArchive) and err.member == "../escape"
    assert str(err).startswith("layer sha256:abc: refusing archive entry '../escape': ")
    refuse(make_tar([reg("a/../../escape", b"x")]), box, "climbs out")
    refuse(make_tar([reg("/../escape", b"x")]), box, "climbs out")
    refuse(make_tar([reg("../.wh.x")]), box, "climbs out")


def test_absolute_names_stay_inside(box):
    dest, outside = box
    r = extract(make_tar([reg(str(outside / "canary"), b"overwritten?")]), dest)
    assert (outside / "canary").read_text() == "keep"
    assert r.entries[-1].path == str(outside / "canary")


def test_writing_through_a_symlink_is_refused(box):
    _dest, outside = box
    refuse(make_tar([sym("a", str(outside)), reg("a/canary", b"pwned")]), box, "symlink")
    refuse(make_tar([sym("a", ".."), reg("a/outside/canary", b"pwned")]), box, "symlink")
    refuse(make_tar([sym("a", str(outside)), dir_("a/sub/")]), box, "symlink")
    refuse(make_tar([sym("a", str(outside)), reg("a/.wh.canary")]), box, "symlink")
    refuse(make_tar([sym("a", str(outside)), reg("a/.wh..wh..opq")]), box, "not a directory")
    refuse(make_tar([sym("a", str(outside)), sym("a/x", "/")]), box, "symlink")
    refuse(make_tar([reg("f", b"x"), reg("f/x", b"y")]), box, "not a directory")


def test_replacing_a_symlink_does_not_write_through_it(box):
    dest, outside = box
    data = make_tar([sym("a", str(outside / "canary")), reg("a", b"replaced")])
    extract(data, dest)
    assert (outside / "canary").read_text() == "keep"
    assert (dest / "a").read_bytes() == b"replaced" and not (dest / "a").is_symlink()


def test_hardlink_targets_must_be_earlier_entries_inside(box):
    _dest, outside = box
    refuse(make_tar([hard("h", str(outside / "canary"))]), box, "not an earlier entry")
    refuse(make_tar([hard("h", "../outside/canary")]), box, "climbs out")
    refuse(make_tar([hard("h", "later"), reg("later", b"x")]), box, "not an earlier entry")
    refuse(make_tar([sym("a", str(outside)), hard("h", "a/canary")]), box, "not an earlier entry")
    refuse(make_tar([dir_("d/"), hard("h", "d")]), box, "is a dir")


def test_hardlink_to_a_symlink_links_the_symlink(box):
    dest, outside = box
    r = extract(make_tar([sym("s", str(outside / "canary")), hard("h", "s")]), dest)
    assert os.readlink(dest / "h") == str(outside / "canary")
    assert by_path(r)["/h"].link == "/s"


def test_entries_named_dot_are_refused(box):
    refuse(raw_tar(raw_member(".", "2", linkname="/")), box, "named '.'")
    refuse(raw_tar(raw_member("a/.", "2", linkname="/")), box, "named '.'")
    refuse(raw_tar(raw_member("a/..", "0", data=b"x")), box, "named '.'")
    refuse(raw_tar(raw_member("./", "0", data=b"x")), box, "named '.'")
    refuse(raw_tar(raw_member("/", "0", data=b"x")), box, "root")


def test_nul_bytes_in_names_are_refused(box):
    pax = tarstream.pax_record("path", b"a\x00b")
    refuse(raw_tar(raw_member("p", "x", pax) + raw_member("x", data=b"1")), box, "NUL")
    pax = tarstream.pax_record("linkpath", b"t\x00u")
    refuse(raw_tar(raw_member("p", "x", pax) + raw_member("s", "2")), box, "NUL")
    longname = raw_member("././@LongLink", "L", b"x\x00y\x00")
    refuse(raw_tar(longname + raw_member("z", data=b"1")), box, "NUL")


def test_absurd_sizes_are_refused(box):
    block = bytearray(raw_member("huge", data=b""))
    block[124:136] = b"\x80" + (2**80).to_bytes(11, "big")
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    refuse(raw_tar(bytes(block)), box, "exceeds the limit")
    pax = tarstream.pax_record("size", b"99999999999999999999")
    refuse(raw_tar(raw_member("p", "x", pax) + raw_member("x")), box, "exceeds the limit")
    block[124:136] = b"\xff" * 12  # base-256 -1
    block[148:156] = b"        "
    block[148:156] = b"%06o\0 " % sum(block)
    refuse(raw_tar(bytes(block)), box, "negative", exc=ArchiveError)
    meta = tarstream.build_header("x", "x", size=32 << 20)  # a PAX record we would have to hold
    refuse(raw_tar(meta), box, "too large", exc=ArchiveError)
    refuse(make_tar([reg("f", b"x" * 100)]), box, "exceeds the limit", limits=Limits(max_entry_size=50))


def test_ratio_total_size_entries_and_path_limits(box):
    zeros = make_tar([reg("z", bytes(4 << 20))])
    bomb = gzip.compress(zeros)
    refuse(bomb, box, "expands more than 100 times", limits=Limits(max_ratio=100, ratio_after=1 << 20))
    zbomb = zstandard.ZstdCompressor().compress(make_tar([reg("z", bytes(64 << 20))]))
    refuse(zbomb, box, "expands more than", limits=Limits(ratio_after=8 << 20))
    refuse(zeros, box, "beyond the limit", limits=Limits(max_total_size=1 << 20))
    many = make_tar([reg(f"f{i}") for i in range(11)])
    refuse(many, box, "more than 10 entries", limits=Limits(max_entries=10))
    refuse(make_tar([reg("d/" * 30 + "f")]), box, "longer than 40", limits=Limits(max_path=40))
    refuse(make_tar([reg("d/" * 2000 + "f")]), box, "deeper than 500")


def test_bomb_below_the_ratio_threshold_is_fine(box):
    dest, _ = box
    r = extract(gzip.compress(make_tar([reg("z", bytes(2 << 20))])), dest)
    assert r.entries[0].size == 2 << 20


# --- unprivileged ---------------------------------------------------------------------------


def _as_nobody(fn):
    """Run ``fn`` in a forked child that dropped to nobody; return its pickled result."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            result = ("ok", fn())
        except BaseException as e:  # report anything to the parent
            result = ("err", f"{type(e).__name__}: {e}")
            code = 1
        with os.fdopen(write_fd, "wb") as w:
            w.write(pickle.dumps(result))
        os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as r:
        payload = r.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(payload)
    assert status == "ok", value
    return value


def test_extraction_as_an_unprivileged_user():
    require_root()  # to drop to nobody for a real unprivileged run
    data = make_tar(
        [
            dir_("ro/", mode=0o555, uid=33, gid=33),
            reg("ro/file", b"data", uid=1000, gid=1000),
            reg("bin/ping", b"p", mode=0o4755),
            reg("secret", b"hidden", mode=0o000),
            dev("dev/null", tarfile.CHRTYPE, 1, 3),
            reg("etc/.wh.shadow"),
            reg("var/.wh..wh..opq"),
            fifo("p"),
        ]
    )
    top = tempfile.mkdtemp(prefix="strata-nobody-")
    try:
        os.chmod(top, 0o777)

        def run():
            dest = os.path.join(top, "diff")
            os.mkdir(dest)
            r = extract_layer(io.BytesIO(data), dest, tarsplit_path=os.path.join(top, "split"))
            os.chmod(os.path.join(dest, "secret"), 0)  # not even owner-read: reading must still work
            out = io.BytesIO()
            reassemble(os.path.join(top, "split"), dest, out)
            disk = {
                p: os.lstat(os.path.join(dest, p))
                for p in ("ro", "ro/file", "bin/ping", "secret", "dev/null", "etc/shadow")
            }
            base = {e.path: e for e in r.entries}
            return (
                r,
                out.getvalue(),
                {k: (v.st_mode, v.st_uid, v.st_rdev) for k, v in disk.items()},
                scan_dir(dest, base=base),
            )

        r, tar_again, disk, scanned = _as_nobody(run)
    finally:
        rmtree(top)
    idx = by_path(r)
    assert tar_again == data
    assert (idx["/ro/file"].uid, idx["/ro/file"].gid) == (1000, 1000)  # index keeps owners
    assert idx["/ro"].mode == 0o555 and stat.S_IMODE(disk["ro"][0]) == 0o555
    assert disk["ro/file"][1] == 65534  # but the disk is ours
    assert idx["/bin/ping"].mode == 0o4755 and stat.S_IMODE(disk["bin/ping"][0]) == 0o4755
    assert idx["/secret"].mode == 0 and stat.S_IMODE(disk["secret"][0]) == 0  # mode put back after reading
    null = idx["/dev/null"]
    assert (null.type, null.devmajor, null.devminor) == ("char", 1, 3)
    assert stat.S_ISREG(disk["dev/null"][0]) and stat.S_IMODE(disk["dev/null"][0]) == 0
    assert idx["/etc/shadow"].type == "whiteout" and stat.S_ISCHR(disk["etc/shadow"][0])
    assert idx["/var"].opaque
    assert scanned == r.entries  # with the base, a rootless scan gives back the index


# --- random archives ------------------------------------------------------------------------

NAMES = ["a", "b", "a/b", "a/c", "b/a", "a/b/c", ".wh.a", "a/.wh.b", "a/.wh..wh..opq", "../x", "/abs", "a/../b", "./c"]
TARGETS = ["a", "b", "a/b", "..", "/", "OUTSIDE", "OUTSIDE/canary", "../outside/canary", "c"]


@st.composite
def archives(draw):
    members = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["file", "dir", "sym", "hard", "fifo"]))
        name = draw(st.sampled_from(NAMES))
        mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o600, 0o555, 0o1777]))
        mtime = draw(st.integers(0, 2_000_000_000))
        if kind == "file":
            info, data = reg(name, draw(st.binary(max_size=700)), mode=mode, mtime=mtime)
        elif kind == "dir":
            info, data = dir_(name, mode=mode, mtime=mtime)
        elif kind == "sym":
            info, data = sym(name, draw(st.sampled_from(TARGETS)), mtime=mtime)
        elif kind == "hard":
            info, data = hard(name, draw(st.sampled_from(TARGETS)))
        else:
            info, data = fifo(name)
        members.append((info, data))
    return members, draw(st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT]))


def _normalised(entries: list[FileEntry], dest: str) -> dict[str, tuple]:
    """What a path *is*, whichever of its hard-linked names the index calls primary."""
    idx = {e.path: e for e in entries}
    out = {}
    for e in entries:
        target = idx[e.link] if e.type == "hardlink" and e.link else e
        content = (dest + e.path).encode() if target.type == "file" else None
        out[e.path] = (
            target.type,
            e.mode,
            e.uid,
            e.gid,
            e.mtime,
            e.opaque,
            target.link if target.type == "symlink" else None,
            Path(os.fsdecode(content)).read_bytes() if content else None,
        )
    return out


@settings(max_examples=120, deadline=None)
@given(archives())
def test_random_archives_are_safe_and_reversible(sample):
    members, fmt = sample
    with tempfile.TemporaryDirectory() as top:
        outside = Path(top, "outside")
        outside.mkdir()
        (outside / "canary").write_text("keep")
        fixed = []
        for info, data in members:
            info.linkname = info.linkname.replace("OUTSIDE", str(outside))
            fixed.append((info, data))
        data = make_tar(fixed, fmt)
        dest = Path(top, "dest")
        dest.mkdir()
        before = snapshot(Path(top), dest)
        try:
            r = extract_layer(io.BytesIO(data), str(dest), tarsplit_path=str(Path(top, "split")))
        except StrataError as e:
            event(f"refused: {type(e).__name__}")
            assert snapshot(Path(top), dest) == before
            return
        event("extracted")
        after = snapshot(Path(top), dest)
        after.pop(str(Path(top, "split")))
        assert after == before
        assert (outside / "canary").read_text() == "keep"
        assert [e.path for e in r.entries] == sorted({e.path for e in r.entries})
        out = io.BytesIO()
        reassemble(str(Path(top, "split")), str(dest), out)
        assert out.getvalue() == data
        if real_root():
            assert _normalised(scan_dir(str(dest)), str(dest)) == _normalised(r.entries, str(dest))


BASE_ARCHIVE = make_tar(
    [dir_("d/"), reg("d/f", b"x" * 600), sym("d/s", "f"), hard("d/h", "d/f"), reg("d/.wh.g"), reg("n" * 120, b"y")],
    tarfile.PAX_FORMAT,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(BASE_ARCHIVE) - 1), st.integers(0, 255)), min_size=1, max_size=6))
def test_corrupted_archives_fail_cleanly(flips):
    data = bytearray(BASE_ARCHIVE)
    for pos, value in flips:
        data[pos] = value
    with tempfile.TemporaryDirectory() as top:
        dest = Path(top, "dest")
        dest.mkdir()
        try:
            extract_layer(io.BytesIO(bytes(data)), str(dest), tarsplit_path=str(Path(top, "split")))
        except StrataError as e:
            event(f"refused: {type(e).__name__}")
            return
        out = io.BytesIO()
        reassemble(str(Path(top, "split")), str(dest), out)
        assert out.getvalue() == bytes(data)
