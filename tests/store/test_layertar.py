"""write_layer_tar: canonical, deterministic layer tars from a directory and its index."""

from __future__ import annotations

import hashlib
import io
import os
import random
import tarfile
from pathlib import Path

import pytest

from explorer.errors import SizeMismatch
from explorer.store.extract import extract_layer
from explorer.store.index import FileEntry
from explorer.store.layertar import write_layer_tar
from explorer.store.tarsplit import TarSplitError, reassemble
from explorer.store.tarstream import TarReader

MTIME = 1_600_000_000.75


def make_layer(root: Path) -> list[FileEntry]:
    """A layer directory in overlay form and its index, written by hand."""
    (root / "etc").mkdir()
    (root / "etc/passwd").write_bytes(b"root:x:0:0\n")
    os.link(root / "etc/passwd", root / "etc/passwd-")
    (root / "bin").mkdir()
    (root / "bin/sh").write_bytes(b"\x7fELF" + bytes(600))
    os.symlink("sh", root / "bin/ash")
    (root / "var").mkdir()
    os.mknod(root / "gone", 0o020000, 0)
    (root / ("n" * 150)).write_bytes(b"long")
    (root / "empty").write_bytes(b"")
    return [
        FileEntry("/etc", "dir", 0o755, mtime=MTIME),
        FileEntry("/etc/passwd", "file", 0o644, 0, 0, 11, MTIME, digest="x"),
        FileEntry("/etc/passwd-", "hardlink", 0o644, mtime=MTIME, link="/etc/passwd"),
        FileEntry("/bin", "dir", 0o755, mtime=MTIME),
        FileEntry("/bin/sh", "file", 0o4755, 0, 0, 604, MTIME),
        FileEntry("/bin/ash", "symlink", 0o777, mtime=MTIME, link="sh"),
        FileEntry("/var", "dir", 0o1777, 5, 6, mtime=MTIME, opaque=True),
        FileEntry("/gone", "whiteout", 0o000, mtime=MTIME),
        FileEntry("/dev", "dir", 0o755),
        FileEntry("/dev/null", "char", 0o666, devmajor=1, devminor=3),
        FileEntry("/dev/sda", "block", 0o660, 0, 6, devmajor=8, devminor=0),
        FileEntry("/run.sock", "socket", 0o755),
        FileEntry("/fifo", "fifo", 0o600, 1000, 1000),
        FileEntry("/" + "n" * 150, "file", 0o600, 3_000_000, 3_000_000, 4, -7.5),
        FileEntry("/empty", "file", 0o644, 0, 0, 0, MTIME),
    ]


def test_canonical_layout(tmp_path):
    entries = make_layer(tmp_path)
    out = io.BytesIO()
    diff_id, size = write_layer_tar(str(tmp_path), entries, out)
    data = out.getvalue()
    assert diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0
    members = list(TarReader(io.BytesIO(data)))
    names = [m.name for m in members]
    assert names == [
        "bin/",
        "bin/ash",
        "bin/sh",
        "dev/",
        "dev/null",
        "dev/sda",
        "empty",
        "etc/",
        "etc/passwd",
        "etc/passwd-",
        "fifo",
        ".wh.gone",
        "n" * 150,
        "var/",
        "var/.wh..wh..opq",
    ]
    by = {m.name: m for m in members}
    assert by["bin/sh"].mode == 0o4755 and by["bin/sh"].size == 604
    assert by["etc/passwd-"].type == "1" and by["etc/passwd-"].linkname == "etc/passwd"
    assert by["bin/ash"].type == "2" and by["bin/ash"].linkname == "sh"
    assert by[".wh.gone"].type == "0" and by[".wh.gone"].size == 0
    assert (by["dev/sda"].devmajor, by["dev/sda"].gid) == (8, 6)
    assert by["var/"].mode == 0o1777 and (by["var/"].uid, by["var/"].gid) == (5, 6)
    assert by["var/.wh..wh..opq"].uid == 5
    assert all(m.mtime_ns % 1_000_000_000 == 0 for m in members)
    assert by["etc/"].mtime_ns == 1_600_000_000 * 10**9
    assert by["n" * 150].mtime_ns == -8 * 10**9  # floor, kept through a PAX record
    assert by["n" * 150].uid == 3_000_000
    assert all(m.uname == "" and m.gname == "" and "atime" not in m.pax for m in members)
    # Python's tarfile agrees on the reading.
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        assert tf.getmember("bin/sh").mode == 0o4755
        assert tf.extractfile("n" * 150).read() == b"long"


def test_same_input_same_bytes_whatever_the_order(tmp_path):
    entries = make_layer(tmp_path)
    first = io.BytesIO()
    write_layer_tar(str(tmp_path), entries, first)
    shuffled = entries[:]
    random.Random(4).shuffle(shuffled)
    second = io.BytesIO()
    write_layer_tar(str(tmp_path), shuffled, second)
    os.utime(tmp_path / "bin/sh", (0, 0))  # the disk's own times do not matter
    third = io.BytesIO()
    write_layer_tar(str(tmp_path), entries, third)
    assert first.getvalue() == second.getvalue() == third.getvalue()


def test_tarsplit_reassembles_what_was_written(tmp_path):
    layer = tmp_path / "layer"
    layer.mkdir()
    entries = make_layer(layer)
    out = io.BytesIO()
    split = tmp_path / "split"
    write_layer_tar(str(layer), entries, out, str(split))
    again = io.BytesIO()
    reassemble(str(split), str(layer), again)
    assert again.getvalue() == out.getvalue()


def test_extract_then_rewrite_is_stable(tmp_path):
    """Index -> tar -> extract -> index -> tar gives the same tar: the format is a fixed point."""
    layer = tmp_path / "layer"
    layer.mkdir()
    entries = [e for e in make_layer(layer) if e.type != "socket"]
    first = io.BytesIO()
    write_layer_tar(str(layer), entries, first)
    dest = tmp_path / "dest"
    dest.mkdir()
    r = extract_layer(io.BytesIO(first.getvalue()), str(dest))
    assert r.diff_id == "sha256:" + hashlib.sha256(first.getvalue()).hexdigest()
    second = io.BytesIO()
    write_layer_tar(str(dest), r.entries, second)
    assert second.getvalue() == first.getvalue()


def test_payload_must_match_the_index(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    with pytest.raises(SizeMismatch):
        write_layer_tar(str(tmp_path), [FileEntry("/f", "file", size=5)], io.BytesIO())
    os.symlink("/etc/passwd", tmp_path / "s")
    with pytest.raises(TarSplitError, match="symlink"):
        write_layer_tar(str(tmp_path), [FileEntry("/s", "file", size=3)], io.BytesIO())
    split = tmp_path / "split"
    with pytest.raises(SizeMismatch):
        write_layer_tar(str(tmp_path), [FileEntry("/f", "file", size=5)], io.BytesIO(), str(split))
    assert not split.exists()
