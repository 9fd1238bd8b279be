"""Tar-split and the tar stream: extract, reassemble, and get the very same bytes back."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from explorer.errors import ArchiveError, SizeMismatch
from explorer.store import tarstream
from explorer.store.extract import extract_layer
from explorer.store.tarsplit import TarSplitError, reassemble
from explorer.store.tarstream import TarReader

MTIME = 1_600_000_000


def member(name: str, data: bytes | None = b"", kind: bytes = tarfile.REGTYPE, **attrs):
    info = tarfile.TarInfo(name)
    info.type, info.mtime, info.mode = kind, MTIME, 0o644
    info.size = len(data) if data is not None and kind == tarfile.REGTYPE else 0
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, (data if kind == tarfile.REGTYPE else None)


def make_tar(members, fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def roundtrip(data: bytes, tmp_path: Path, blob: bytes | None = None) -> bytes:
    """Extract ``blob`` (default ``data``) with a tar-split, reassemble, return the bytes."""
    dest = tmp_path / "diff"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir()
    split = tmp_path / "layer.tarsplit"
    r = extract_layer(io.BytesIO(blob if blob is not None else data), str(dest), tarsplit_path=str(split))
    assert r.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    out = io.BytesIO()
    n = reassemble(str(split), str(dest), out)
    assert n == len(out.getvalue()) == r.size
    assert "sha256:" + hashlib.sha256(out.getvalue()).hexdigest() == r.diff_id
    return out.getvalue()


SAMPLE = [
    member("dir", None, tarfile.DIRTYPE, mode=0o755),
    member("dir/file", b"hello world\n"),
    member("dir/empty", b""),
    member("dir/big", os.urandom(70_000)),
    member("L" * 120 + "/" + "n" * 130, b"long name"),
    member("dir/hl", None, tarfile.LNKTYPE, linkname="dir/file"),
    member("dir/sym", None, tarfile.SYMTYPE, linkname="../" + "t" * 150),
    member("dir/.wh.deleted", b""),
    member("dir/.wh.with-data", b"aufs left junk here"),
    member("opq/.wh..wh..opq", b""),
    member("opq/x", b"x"),
    member("fifo", None, tarfile.FIFOTYPE),
    member("dev/null", None, tarfile.CHRTYPE, devmajor=1, devminor=3),
    member("unicode-\u00e9\u4e2d", b"u"),
    member("owner", b"o", uid=123456789, gid=4242, uname="someone", gname="group"),
]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT], ids=["gnu", "pax"])
def test_python_tarfile_archives_reassemble_exactly(tmp_path, fmt):
    data = make_tar(SAMPLE, fmt)
    assert data.endswith(bytes(1024))  # tarfile pads to a 10 KiB record: trailing zero blocks
    assert roundtrip(data, tmp_path) == data


def test_ustar_and_compressed_input(tmp_path):
    data = make_tar([member("a/b", b"x" * 1000), member("c", None, tarfile.DIRTYPE)], tarfile.USTAR_FORMAT)
    assert roundtrip(data, tmp_path, gzip.compress(data)) == data


def test_pax_fractional_times_and_xattrs(tmp_path):
    info, payload = member("f", b"data", mtime=MTIME + 0.123456789)
    info.pax_headers = {"SCHILY.xattr.user.k": "v", "atime": "1.5", "comment": "kept as raw bytes"}
    data = make_tar([(info, payload)], tarfile.PAX_FORMAT)
    assert roundtrip(data, tmp_path) == data


def test_gnu_tar_archives_reassemble_exactly(tmp_path):
    if shutil.which("tar") is None:
        reason = "GNU tar is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    src = tmp_path / "src"
    (src / ("deep" * 30) / "x").mkdir(parents=True)
    (src / ("deep" * 30) / "x" / ("f" * 120)).write_bytes(os.urandom(5000))
    (src / "a").write_text("a")
    os.link(src / "a", src / "hard")
    os.symlink("a", src / "sym")
    (src / "ro").mkdir(mode=0o555)
    os.setxattr(src / "a", "user.comment", b"hi")
    for fmt in ("gnu", "posix", "ustar", "v7"):
        if fmt == "ustar":  # ustar cannot hold a 120-character name component
            shutil.rmtree(src / ("deep" * 30))
        out = tmp_path / f"{fmt}.tar"
        cmd = ["tar", f"--format={fmt}", "-cf", str(out), "-C", str(src), "."]
        if fmt == "posix":
            cmd.insert(1, "--xattrs")
        subprocess.run(cmd, check=True)
        data = out.read_bytes()
        assert roundtrip(data, tmp_path) == data, fmt


def test_duplicate_paths_keep_the_replaced_payload(tmp_path):
    data = make_tar(
        [
            member("f", b"first version"),
            member("g", b"stays"),
            member("h", None, tarfile.LNKTYPE, linkname="f"),
            member("f", b"second, longer version"),
            member("d/inner", b"inside a dir that becomes a file"),
            member("d", b"now a file"),
            member("s", b"file then symlink"),
            member("s", None, tarfile.SYMTYPE, linkname="g"),
        ],
        tarfile.PAX_FORMAT,
    )
    assert roundtrip(data, tmp_path) == data


def test_trailing_junk_and_missing_end_blocks(tmp_path):
    body = make_tar([member("a", b"abc")], tarfile.GNU_FORMAT)
    end = body.index(bytes(512), 1024)
    with_junk = body[:end] + bytes(1024) + b"not tar at all" + bytes(3)
    assert roundtrip(with_junk, tmp_path) == with_junk
    no_end = body[:end]
    assert roundtrip(no_end, tmp_path) == no_end


def test_reassembly_never_follows_symlinks_out(tmp_path):
    data = make_tar([member("a", b"abc"), member("d/b", b"xyz")], tarfile.PAX_FORMAT)
    roundtrip(data, tmp_path)
    secret = tmp_path / "secret"
    secret.write_bytes(b"zzz")
    diff = tmp_path / "diff"
    (diff / "a").unlink()
    os.symlink(secret, diff / "a")
    with pytest.raises(TarSplitError, match="symlink"):
        reassemble(str(tmp_path / "layer.tarsplit"), str(diff), io.BytesIO())
    (diff / "a").unlink()
    (diff / "a").write_bytes(b"abc")
    shutil.rmtree(diff / "d")
    os.symlink(tmp_path, diff / "d")
    (tmp_path / "b").write_bytes(b"xyz")
    with pytest.raises(TarSplitError, match="cannot open directory 'd'"):
        reassemble(str(tmp_path / "layer.tarsplit"), str(diff), io.BytesIO())


def test_reassembly_notices_changed_payload_and_damage(tmp_path):
    data = make_tar([member("a", b"abc")], tarfile.PAX_FORMAT)
    roundtrip(data, tmp_path)
    (tmp_path / "diff" / "a").write_bytes(b"abcd")
    with pytest.raises(SizeMismatch):
        reassemble(str(tmp_path / "layer.tarsplit"), str(tmp_path / "diff"), io.BytesIO())
    (tmp_path / "bogus").write_bytes(b"not a tarsplit at all")
    with pytest.raises(TarSplitError, match="not a tar-split"):
        reassemble(str(tmp_path / "bogus"), str(tmp_path / "diff"), io.BytesIO())


def test_failed_extraction_leaves_no_tarsplit(tmp_path):
    dest = tmp_path / "diff"
    dest.mkdir()
    split = tmp_path / "split"
    with pytest.raises(ArchiveError):
        extract_layer(io.BytesIO(b"x" * 600), str(dest), tarsplit_path=str(split))
    assert sorted(os.listdir(tmp_path)) == ["diff"]


# --- the stream reader and writer on their own --------------------------------------------------


def test_reader_hands_every_non_payload_byte_to_the_sink():
    data = make_tar(SAMPLE, tarfile.GNU_FORMAT)
    pieces: list[bytes] = []
    reader = TarReader(io.BytesIO(data), raw_sink=lambda b: pieces.append(bytes(b)))
    rebuilt = []
    names = []
    for m in reader:
        rebuilt.append(b"".join(pieces))
        pieces.clear()
        names.append(m.name)
        if m.name == "dir/big":
            rebuilt.append(reader.read_payload())
    rebuilt.append(b"".join(pieces))
    assert b"".join(rebuilt) == data
    assert [n.rstrip("/") for n in names] == [info.name for info, _ in SAMPLE]
    assert reader.offset == len(data)


def test_reader_parses_fields():
    info, payload = member("p", b"12345", uid=7, gid=8, mtime=-5)
    info.pax_headers = {"mtime": "-1.25", "path": "renamed/\u00e9", "SCHILY.xattr.user.a": "b"}
    data = make_tar([(info, payload), member("L" * 200, b"")], tarfile.PAX_FORMAT)
    got = list(TarReader(io.BytesIO(data)))
    assert got[0].name == "renamed/\u00e9" and got[0].size == 5
    assert got[0].mtime_ns == -1_250_000_000 and got[0].xattrs == {"user.a": b"b"}
    assert (got[0].uid, got[0].gid) == (7, 8)
    assert got[1].name == "L" * 200


def test_numbers_and_pax_records():
    assert tarstream.parse_number(b"0000644\x00", "mode") == 0o644
    assert tarstream.parse_number(b"   644 ", "mode") == 0o644
    assert tarstream.parse_number(b"\x00" * 8, "mode") == 0
    assert tarstream.parse_number(b"\x80" + (2**40).to_bytes(11, "big"), "size") == 2**40
    assert tarstream.parse_number(b"\xff" * 8, "uid") == -1
    with pytest.raises(ArchiveError, match="bad number"):
        tarstream.parse_number(b"12x", "mode")
    assert tarstream.parse_pax(tarstream.pax_record("path", b"a b=c")) == {"path": b"a b=c"}
    record = tarstream.pax_record("k", b"v" * 95)
    assert int(record.split(b" ")[0]) == len(record)
    with pytest.raises(ArchiveError, match="malformed"):
        tarstream.parse_pax(b"99 path=x\n")
    assert tarstream.parse_pax_time("1700000000.123456789") == 1_700_000_000_123_456_789
    assert tarstream.parse_pax_time("-0.5") == -500_000_000


def test_writer_output_is_read_back_by_tarfile_and_by_us():
    name = "x/" + "y" * 200 + "/\u00e9"
    header = tarstream.build_header(name, "0", mode=0o4755, uid=3_000_000, gid=5, size=3, mtime=-1)
    data = header + b"abc" + tarstream.padding(3) + tarstream.END_OF_ARCHIVE
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        info = tf.getmembers()[0]
        assert (info.name, info.mode, info.uid, info.gid, info.size, info.mtime) == (
            name,
            0o4755,
            3_000_000,
            5,
            3,
            -1,
        )
        assert info.uname == "" and "atime" not in info.pax_headers
    m = next(iter(TarReader(io.BytesIO(data))))
    assert (m.name, m.uid, m.mtime_ns) == (name, 3_000_000, -1_000_000_000)
    short = tarstream.build_header("short", "5", mode=0o755)
    assert len(short) == 512 and short[257:265] == b"ustar\x0000"
