"""tarcopy on the host alone: docker cp's placement rules, a faithful round trip, and
an unpacker that no tar stream (however hostile) can make write outside its
destination. A compromised helper inside a container could send any stream, so
the host side must not trust what it unpacks."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from explorer.errors import InvalidArgument, PathNotFound, UnsafeArchive
from explorer.runtime import tarcopy
from explorer.runtime.tarcopy import Rules, Source


def snapshot(root: Path) -> dict[str, tuple[int, int, str]]:
    out: dict[str, tuple[int, int, str]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
            out[p] = (st.st_mode, st.st_size, digest)
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    root = tmp_path / "canary"
    root.mkdir()
    (root / "keep").write_text("secret\n")
    return root


def copy(src: str, dest: str, rules: Rules | None = None, follow: bool = False) -> None:
    """send | receive through a pipe, as cp does across the namespace boundary."""
    source = Source.parse(src, follow)
    r, w = os.pipe()
    failure: list[BaseException] = []

    def sender() -> None:
        try:
            tarcopy.send(w, source, where="src")
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        tarcopy.receive(r, dest, contents=source.contents, where="dest", rules=rules or Rules())
    except tarcopy.EmptyStream:
        thread.join()
        if failure:
            raise failure[0] from None  # the sender's error is the cause, as cp reports it
        raise
    thread.join()
    if failure:
        raise failure[0]


def unpack(data: bytes, dest: Path, raw: bool = False, contents: bool = False) -> None:
    r, w = os.pipe()

    def feed() -> None:
        with open(w, "wb") as out:
            out.write(data)

    thread = threading.Thread(target=feed)
    thread.start()
    try:
        tarcopy.receive(r, str(dest), contents=contents, where="dest", rules=Rules(), raw=raw)
    finally:
        thread.join()


def make_tar(*members: tuple[str, str, str | bytes]) -> bytes:
    """(name, kind, link target or content) -> an uncompressed tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, value in members:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if kind == "dir" else 0o644
            data = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(value)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(value)
            else:
                raw = value if isinstance(value, bytes) else value.encode()
                info.size = len(raw)
                data = io.BytesIO(raw)
            tar.addfile(info, data)
    return buf.getvalue()


# --- round trip and docker's rules --------------------------------------------------------------


def test_round_trip_keeps_what_cp_keeps(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "empty").mkdir(parents=True)
    (src / "f").write_text("data\n")
    os.chmod(src / "f", 0o4750)
    os.link(src / "f", src / "hard")
    os.symlink("/nowhere", src / "link")
    os.mkfifo(src / "fifo")
    os.utime(src / "f", (1_600_000_000, 1_600_000_000))
    os.chmod(src / "empty", 0o500)
    dest = tmp_path / "dest"
    copy(str(src), str(dest), Rules(strip_setid=True))
    assert (dest / "f").read_text() == "data\n"
    assert stat.S_IMODE(os.stat(dest / "f").st_mode) == 0o750  # setuid dropped on the host
    assert os.stat(dest / "f").st_ino == os.stat(dest / "hard").st_ino
    assert os.readlink(dest / "link") == "/nowhere"
    assert stat.S_ISFIFO(os.lstat(dest / "fifo").st_mode)
    assert os.stat(dest / "f").st_mtime == 1_600_000_000
    assert stat.S_IMODE(os.stat(dest / "empty").st_mode) == 0o500
    assert not [n for n in os.listdir(dest) if n.startswith(".strata-cp")]


@pytest.mark.parametrize(
    ("src", "dest", "expect"),
    [
        ("file", "new", "new"),  # a missing path becomes the file
        ("file", "existing_file", "existing_file"),  # an existing file is replaced
        ("file", "existing_dir", "existing_dir/file"),  # a directory receives it
        ("file", "existing_dir/", "existing_dir/file"),
        ("dir", "new", "new/inner"),  # a missing path becomes the directory
        ("dir", "existing_dir", "existing_dir/dir/inner"),  # a directory receives it
        ("dir/.", "existing_dir", "existing_dir/inner"),  # "/.": its contents
        ("dir/", "new", "new/inner"),
    ],
)
def test_placement_follows_docker_cp(tmp_path: Path, src: str, dest: str, expect: str) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner").write_text("x")
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    (out / "existing_dir").mkdir(parents=True)
    (out / "existing_file").write_text("old")
    copy(f"{tmp_path}/{src}", f"{out}/{dest}")
    assert (out / expect).read_text() == "x"


@pytest.mark.parametrize(
    ("src", "dest", "error"),
    [
        ("file", "missing_dir/", PathNotFound),  # a file into a directory that is not there
        ("file", "no/such/parent", PathNotFound),
        ("dir", "existing_file", InvalidArgument),  # a directory onto a file
        ("file/", "new", InvalidArgument),  # a trailing slash on a file
        ("nothing", "new", PathNotFound),
    ],
)
def test_placement_errors(tmp_path: Path, src: str, dest: str, error: type[Exception]) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    out = tmp_path / "out"
    out.mkdir()
    (out / "existing_file").write_text("old")
    with pytest.raises(error):
        copy(f"{tmp_path}/{src}", f"{out}/{dest}")
    assert sorted(os.listdir(out)) == ["existing_file"]


def test_follow_link_copies_the_target(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("t")
    os.symlink("target", tmp_path / "link")
    copy(str(tmp_path / "link"), str(tmp_path / "as_link"))
    copy(str(tmp_path / "link"), str(tmp_path / "as_file"), follow=True)
    assert os.readlink(tmp_path / "as_link") == "target"
    assert not (tmp_path / "as_file").is_symlink() and (tmp_path / "as_file").read_text() == "t"


# --- hostile streams --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "members",
    [
        [("x", "dir", ""), ("x/evil", "symlink", "{canary}"), ("x/evil/keep", "file", "pwned")],
        [("x", "dir", ""), ("x/up", "symlink", "../../canary"), ("x/up/keep", "file", "pwned")],
        [("x", "dir", ""), ("x/evil", "symlink", "{canary}/keep"), ("x/evil", "file", "pwned")],
        [("x", "dir", ""), ("x/evil", "symlink", "{canary}"), ("x/evil/new/deeper", "file", "pwned")],
    ],
)
def test_stream_cannot_write_through_its_own_links(
    tmp_path: Path, canary: Path, members: list[tuple[str, ...]]
) -> None:
    dest = tmp_path / "dest"
    before = snapshot(canary)
    data = make_tar(*[(n, k, v.format(canary=canary)) for n, k, v in members])
    unpack(data, dest)
    assert snapshot(canary) == before
    assert sorted(os.listdir(tmp_path)) == ["canary", "dest"]
    written = [p for p in snapshot(dest) if p.endswith(("keep", "evil", "deeper"))]
    assert written  # the payload landed inside the destination instead


@pytest.mark.parametrize(
    "members",
    [
        [("x", "dir", ""), ("x/../../canary/keep", "file", "pwned")],
        [("x", "dir", ""), ("y/file", "file", "pwned")],  # outside the copied tree
        [("x", "dir", ""), ("x/h", "hardlink", "../canary/keep")],
        [("x", "dir", ""), ("x/h", "hardlink", "x/nothing")],
        [("x", "dir", ""), ("x/l", "symlink", "{canary}/keep"), ("x/h", "hardlink", "x/l")],
        [("x/y", "dir", "")],  # the first member must be the copied file or directory
    ],
)
def test_hostile_names_are_refused(tmp_path: Path, canary: Path, members: list[tuple[str, ...]]) -> None:
    before = snapshot(canary)
    data = make_tar(*[(n, k, v.format(canary=canary)) for n, k, v in members])
    with pytest.raises(UnsafeArchive):
        unpack(data, tmp_path / "dest")
    assert snapshot(canary) == before


def test_raw_stream_replaces_links_in_its_way(tmp_path: Path, canary: Path) -> None:
    """``cp - DIR``: members without directory entries, over links already in DIR."""
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(canary, dest / "a")
    os.symlink("../canary", dest / "b")
    before = snapshot(canary)
    unpack(make_tar(("a/keep", "file", "pwned"), ("b/c/d", "file", "pwned"), ("/abs", "file", "ok")), dest, raw=True)
    assert snapshot(canary) == before
    assert (dest / "a" / "keep").read_text() == "pwned" and not (dest / "a").is_symlink()
    assert (dest / "b" / "c" / "d").read_text() == "pwned"
    assert (dest / "abs").read_text() == "ok"  # a leading "/" is dropped, as tar does


def test_empty_stream_says_so(tmp_path: Path) -> None:
    with pytest.raises(tarcopy.EmptyStream):
        unpack(b"", tmp_path)


# --- packing a tree that changes underneath -----------------------------------------------------


def _racing(action: Callable[[], None], seconds: float = 10) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and time.monotonic() < deadline:
            action()

    thread = threading.Thread(target=loop)
    thread.start()
    return stop, thread


def test_packing_while_a_dir_is_swapped_for_a_link(tmp_path: Path, canary: Path) -> None:
    src = tmp_path / "src"
    for d in range(30):
        (src / "tree" / f"d{d}").mkdir(parents=True)
        for f in range(5):
            (src / "tree" / f"d{d}" / f"f{f}").write_text("x")
    tree, real = src / "tree", src / "tree.real"

    def swap() -> None:
        try:
            os.rename(tree, real)
            os.symlink(canary, tree)
            os.unlink(tree)
            os.rename(real, tree)
        except OSError:
            pass

    before = snapshot(canary)
    stop, thread = _racing(swap)
    try:
        for i in range(5):
            try:
                copy(str(src), str(tmp_path / f"out{i}"))
            except PathNotFound:
                pass
    finally:
        stop.set()
        thread.join()
    assert snapshot(canary) == before
    for i in range(5):
        out = tmp_path / f"out{i}"
        for p in snapshot(out) if out.exists() else {}:
            assert not p.endswith("/keep") or os.path.islink(os.path.dirname(p))


def test_a_fifo_swapped_in_does_not_hang_the_copy(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    victim = src / "f"
    victim.write_text("x")

    def swap() -> None:
        try:
            os.unlink(victim)
            os.mkfifo(victim)
            os.unlink(victim)
            victim.write_text("x")
        except OSError:
            pass

    stop, thread = _racing(swap)
    try:
        for i in range(20):
            copy(str(src), str(tmp_path / f"out{i}"))  # would block forever opening the FIFO
    finally:
        stop.set()
        thread.join()


def test_a_file_that_shrinks_is_padded() -> None:
    r, w = os.pipe()
    os.write(w, b"abc")
    os.close(w)
    exact = tarcopy._Exact(r, 6)
    assert exact.read(4) + exact.read(4) + exact.read(4) == b"abc\0\0\0"
    os.close(r)
