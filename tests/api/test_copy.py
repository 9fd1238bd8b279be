"""cp between host and containers (and volumes), and the GUI's edits, on both drivers.

The symlink cases are the docker cp attacks: a container that holds ``/evil -> /``,
``/up -> ../../..``, a link to a host path as a parent directory, or swaps a
directory for a link while a big tree is copied (CVE-2018-15664) must not make a
copy read or write a host file outside the destination it was given. Each case
snapshots a canary directory on the host before and after.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import time
from pathlib import Path

import pytest

from explorer.api import Strata
from explorer.api.containers import RunOptions
from explorer.errors import AlreadyExists, InvalidArgument, PathNotFound, StrataError
from tests.api.conftest import IMAGE

UP = "../" * 40  # more than any store path is deep: "/" wherever it is resolved from
STATES = ("stopped", "running")


# --- helpers -------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``root`` (and root): mode, size, mtime and content hash."""
    out: dict[str, tuple[int, int, int, str]] = {}
    paths = [str(root)]
    for dirpath, dirs, files in os.walk(root):
        paths += [os.path.join(dirpath, n) for n in dirs + files]
    for p in paths:
        st = os.lstat(p)
        digest = ""
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        out[p] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A host directory no copy may touch; tests also make it inside their containers."""
    root = tmp_path / "canary"
    (root / "sub").mkdir(parents=True)
    (root / "keep").write_text("host secret\n")
    (root / "sub" / "deep").write_text("host deep\n")
    return root


def _null() -> int:
    return os.open(os.devnull, os.O_RDWR)


def container(app: Strata, state: str, setup: str = "true") -> str:
    """A container that ran ``setup``; ``running`` keeps it up afterwards."""
    if state == "running":
        info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", f"{setup} && touch /.ready && exec sleep 300"]))
        app.start(info.id)
        deadline = time.monotonic() + 10
        while app.exec(info.id, ["test", "-e", "/.ready"], stdio=(None, _null(), _null())) != 0:
            assert time.monotonic() < deadline, "the container's setup did not finish"
            time.sleep(0.02)
        return info.id
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", setup]))
    assert app.start_attached(info.id, None, _null(), _null()) == 0
    return info.id


def read_in(app: Strata, cid: str, path: str) -> bytes:
    with app.view_of(cid).open(path) as f:
        data: bytes = f.read()
    return data


def changes(app: Strata, cid: str) -> set[tuple[str, str]]:
    return {(c.kind, c.path) for c in app.diff(cid)}


def attack_setup(canary: Path) -> str:
    """Links a hostile container holds, and its own copy of the canary's path."""
    return (
        f"mkdir -p {canary}/sub && echo inside > {canary}/keep && "
        f"ln -s / /evil && ln -s {UP} /up && ln -s {canary} /hostdir && ln -s {canary}/keep /filelink && "
        f"mkdir /out && ln -s / /out/evil && ln -s {UP} /out/up && ln -s {canary} /out/abs && echo x > /out/file"
    )


# --- plain copies ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_cp_in_and_out_follow_docker_rules(app: Strata, state: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "sub" / "b").write_text("b\n")
    os.symlink("a.txt", src / "link")
    os.chmod(src / "a.txt", 0o640)
    cid = container(app, state, "mkdir /dir && echo old > /file")

    app.cp_in(cid, str(src), "/dir")  # an existing directory receives the source
    app.cp_in(cid, str(src) + "/.", "/contents")  # a missing path is created: the contents
    app.cp_in(cid, str(src / "a.txt"), "/file")  # an existing file is replaced
    app.cp_in(cid, str(src / "a.txt"), "/dir/")  # a file into a directory keeps its name
    assert read_in(app, cid, "/dir/src/sub/b") == b"b\n"
    assert read_in(app, cid, "/contents/sub/b") == b"b\n"
    assert read_in(app, cid, "/file") == b"a\n"
    assert read_in(app, cid, "/dir/a.txt") == b"a\n"
    listed = {e.path: e for e in app.ls(cid, "/dir/src")}
    assert listed["/dir/src/link"].type == "symlink" and listed["/dir/src/link"].link == "a.txt"
    assert stat.S_IMODE(listed["/dir/src/a.txt"].mode) == 0o640
    assert (listed["/dir/src/a.txt"].uid, listed["/dir/src/a.txt"].gid) == (0, 0)  # docker: root owns it
    with pytest.raises(StrataError):
        app.cp_in(cid, str(src), "/file")  # a directory onto a file
    with pytest.raises(PathNotFound):
        app.cp_in(cid, str(src / "a.txt"), "/no/such/dir/x")
    with pytest.raises(PathNotFound):
        app.cp_in(cid, str(src / "a.txt"), "/missing/")

    out = tmp_path / "out"
    out.mkdir()
    app.cp_out(cid, "/dir/src", str(out))
    app.cp_out(cid, "/dir/src/.", str(out / "contents"))
    app.cp_out(cid, "/file", str(out / "f"))
    assert (out / "src" / "sub" / "b").read_text() == "b\n"
    assert (out / "contents" / "sub" / "b").read_text() == "b\n"
    assert (out / "f").read_text() == "a\n"
    assert os.readlink(out / "src" / "link") == "a.txt"
    with pytest.raises(PathNotFound):
        app.cp_out(cid, "/no/such/file", str(out))


def test_write_into_a_stopped_overlay_container_is_copied_up(app: Strata, tmp_path: Path) -> None:
    cid = container(app, "stopped")
    (tmp_path / "new").write_text("new\n")
    app.cp_in(cid, str(tmp_path / "new"), "/home/app/")
    app.cp_in(cid, str(tmp_path / "new"), "/etc/passwd")
    assert {("A", "/home/app/new"), ("C", "/home/app"), ("C", "/etc/passwd"), ("C", "/etc")} <= changes(app, cid)
    if app.container(cid).driver == "overlay":
        diff = app.store.containers.diff_dir(cid)
        for parent in ("/etc", "/home", "/home/app"):
            below = app.image_view(IMAGE).lookup(parent)
            assert below is not None
            on_disk = os.stat(diff / parent.lstrip("/"))
            assert stat.S_IMODE(on_disk.st_mode) == stat.S_IMODE(below.entry.mode)
        assert (diff / "home" / "app" / "new").read_text() == "new\n"
    r, w = os.pipe()
    app.start_attached(cid, None, w, w)  # the container itself sees the copy (cmd: true)
    os.close(w)
    os.close(r)
    assert read_in(app, cid, "/etc/passwd") == b"new\n"


@pytest.mark.parametrize("state", STATES)
def test_gui_edits(app: Strata, state: str) -> None:
    cid = container(app, state)
    app.container_write(cid, "/etc/motd", b"hello\n")
    app.container_write(cid, "/etc/passwd", b"root:x:0:0::/:/bin/sh\n")
    app.container_mkdir(cid, "/a/b/c")
    app.container_delete(cid, "/bin/vi")
    app.container_delete(cid, "/home")
    with pytest.raises(AlreadyExists):
        app.container_mkdir(cid, "/a/b")
    with pytest.raises(PathNotFound):
        app.container_delete(cid, "/no/such")
    with pytest.raises(StrataError):
        app.container_delete(cid, "/")
    found = changes(app, cid)
    assert {("A", "/etc/motd"), ("C", "/etc/passwd"), ("A", "/a/b/c"), ("D", "/bin/vi"), ("D", "/home")} <= found
    assert read_in(app, cid, "/etc/passwd") == b"root:x:0:0::/:/bin/sh\n"
    if state == "stopped" and app.container(cid).driver == "overlay":
        st = os.lstat(app.store.containers.diff_dir(cid) / "bin" / "vi")
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_tar_streams_both_ways(app: Strata, tmp_path: Path) -> None:
    cid = container(app, "stopped", "mkdir /t && echo one > /t/one")
    out = io.BytesIO()
    app.cp_out(cid, "/t", "-", stdout=out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        assert sorted(tar.getnames()) == ["t", "t/one"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("x/y")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"xy\n"))
    app.cp_in(cid, "-", "/t", stdin=io.BytesIO(buf.getvalue()))
    assert read_in(app, cid, "/t/x/y") == b"xy\n"


def test_cp_in_volume(app: Strata, tmp_path: Path, canary: Path) -> None:
    volume = app.volume_create("copyvol")
    data = app.store.volumes.data_dir(volume.name)
    os.symlink("/", data / "evil")
    os.symlink(str(canary), data / "abs")
    (tmp_path / "f").write_text("f\n")
    before = snapshot(canary)
    app.cp_in_volume("copyvol", str(tmp_path / "f"), "/")
    app.cp_in_volume("copyvol", str(tmp_path / "f"), "/evil/g")
    with pytest.raises(StrataError):
        app.cp_in_volume("copyvol", str(tmp_path / "f"), "/abs/pwn")  # the volume has no such dir
    assert (data / "f").read_text() == "f\n" and (data / "g").read_text() == "f\n"
    assert snapshot(canary) == before


# --- the attacks -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
def test_cp_in_through_container_symlinks_stays_inside(app: Strata, state: str, tmp_path: Path, canary: Path) -> None:
    cid = container(app, state, attack_setup(canary))
    payload = tmp_path / "payload"
    payload.write_text("pwned\n")
    before = snapshot(canary)
    for dest in (f"/evil{canary}/pwn1", f"/up{canary}/pwn2", "/hostdir/pwn3", "/hostdir/sub/", "/filelink"):
        app.cp_in(cid, str(payload), dest)
    assert snapshot(canary) == before
    for name in ("pwn1", "pwn2", "pwn3", "sub/payload"):
        assert read_in(app, cid, f"{canary}/{name}") == b"pwned\n"  # inside the container
    assert read_in(app, cid, f"{canary}/keep") == b"pwned\n"  # the link's target in the container
    app.container_write(cid, f"/evil{canary}/keep", b"edited\n")
    app.container_write(cid, "/filelink", b"edited\n")
    app.container_delete(cid, f"/up{canary}/sub")
    app.container_mkdir(cid, "/hostdir/made")
    assert snapshot(canary) == before


@pytest.mark.parametrize("state", STATES)
def test_cp_out_through_container_symlinks_stays_inside(app: Strata, state: str, tmp_path: Path, canary: Path) -> None:
    cid = container(app, state, attack_setup(canary))
    dest = tmp_path / "dest"
    dest.mkdir()
    before = snapshot(canary)
    app.cp_out(cid, f"/evil{canary}/keep", str(dest / "a"))
    app.cp_out(cid, f"/up{canary}/keep", str(dest / "b"))
    app.cp_out(cid, "/hostdir/keep", str(dest / "c"))
    app.cp_out(cid, "/hostdir/sub", str(dest / "d"))  # a parent that is a link
    for name in "abc":
        assert (dest / name).read_text() == "inside\n"  # the container's file, never the host's
    assert not (dest / "d" / "deep").exists()
    app.cp_out(cid, "/out", str(dest))
    assert os.readlink(dest / "out" / "evil") == "/" and os.readlink(dest / "out" / "abs") == str(canary)
    # The host now holds the container's links; copy again over them, with a directory
    # where a link was: the copy replaces the link, it does not write through it.
    app.container_delete(cid, "/out/abs")
    app.container_mkdir(cid, "/out/abs")
    app.container_write(cid, "/out/abs/keep", b"pwned\n")
    app.container_delete(cid, "/out/evil")
    app.container_write(cid, "/out/evil", b"pwned\n")
    app.cp_out(cid, "/out", str(dest))
    assert (dest / "out" / "abs" / "keep").read_text() == "pwned\n"
    assert not (dest / "out" / "abs").is_symlink()
    assert snapshot(canary) == before
    assert sorted(os.listdir(tmp_path)) == ["canary", "dest", "store"]


def _big_tree(root: Path, dirs: int = 40, files: int = 8) -> None:
    for d in range(dirs):
        sub = root / f"d{d:03}"
        sub.mkdir(parents=True)
        for f in range(files):
            (sub / f"f{f:03}").write_text(f"{d}/{f}\n")


SWAP = "while :; do mv {path} {path}.real; ln -s {target} {path}; rm {path}; mv {path}.real {path}; done"


def test_cp_in_racing_a_symlink_swap(app: Strata, tmp_path: Path, canary: Path) -> None:
    """CVE-2018-15664: the container swaps the destination dir for a link to the
    host's canary path (and to /) while a big tree is copied into it."""
    big = tmp_path / "big"
    _big_tree(big)
    swap = SWAP.format(path="/dst/tree", target=canary)
    swap2 = SWAP.format(path="/dst/other", target="/")
    cid = container(app, "running", f"mkdir -p /dst/tree /dst/other {canary}; ({swap}) & ({swap2}) & true")
    before = snapshot(canary)
    for dest in ("/dst/tree", "/dst/other/"):
        try:
            app.cp_in(cid, str(big), dest)
        except StrataError:
            pass  # the container pulled the directory away: a failure, not an escape
    assert snapshot(canary) == before
    assert sorted(os.listdir(tmp_path)) == ["big", "canary", "store"]


def test_cp_out_racing_a_symlink_swap(app: Strata, tmp_path: Path, canary: Path) -> None:
    big = tmp_path / "big"
    _big_tree(big)
    cid = container(app, "running", "mkdir /src")
    app.cp_in(cid, str(big), "/src/tree")
    app.exec(
        cid,
        ["sh", "-c", f"({SWAP.format(path='/src/tree', target=canary)}) >/dev/null 2>&1 &"],
        stdio=(None, _null(), _null()),
    )
    before = snapshot(canary)
    dest = tmp_path / "dest"
    dest.mkdir()
    for i in range(2):
        try:
            app.cp_out(cid, "/src/tree", str(dest / f"copy{i}"))
        except StrataError:
            pass
    assert snapshot(canary) == before
    assert sorted(os.listdir(tmp_path)) == ["big", "canary", "dest", "store"]
    for copy in dest.iterdir():
        assert not copy.is_symlink() or os.readlink(copy) == str(canary)


def test_runtime_provided_files_are_refused_with_a_reason(app: Strata) -> None:
    from explorer.api.containers import RunOptions
    from explorer.errors import InvalidArgument

    info = app.create("test/busybox:1", RunOptions(cmd=["true"]))
    for path in ("/etc/hostname", "/etc/hosts", "/etc//resolv.conf"):
        with pytest.raises(InvalidArgument, match="provided by strata"):
            app.container_write(info.id, path, b"x")
    assert app.diff(info.id) == []


def test_deleting_what_holds_a_mount_point_is_refused_and_the_volume_kept(app: Strata) -> None:
    """The delete helper runs with the container's mounts in place: removing a tree that
    holds one would empty the volume mounted there, which outlives the container."""
    info = app.create(IMAGE, RunOptions(cmd=["sh", "-c", "echo kept > /srv/data/file"], volumes=["keep:/srv/data"]))
    assert app.start_attached(info.id, None, _null(), _null()) == 0
    for path in ("/srv/data", "/srv", "/srv/data/", "/"):
        with pytest.raises(InvalidArgument, match="holds the mount point /srv/data \\(volume keep\\)"):
            app.container_delete(info.id, path)
    app.container_delete(info.id, "/srv/data/file")  # inside the mount: the user's own choice
    app.container_write(info.id, "/srv/data/other", b"x\n")
    rows = {e.path for e in app.volume_view("keep").walk()}
    assert "/other" in rows and "/file" not in rows


def test_cancel_stops_a_copy_out_midway_and_leaves_no_helper(app: Strata) -> None:
    """The window's Cancel reaches cp: the helper is killed, the call raises Cancelled
    promptly, and no process of the copy is left behind."""
    import threading

    from explorer.errors import Cancelled

    cid = container(app, "stopped", "dd if=/dev/zero of=/big bs=1024 count=16384 2>/dev/null")
    cancel = threading.Event()
    written = 0

    class SlowSink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            nonlocal written
            written += len(data)
            cancel.set()  # the copy is under way: the user presses Cancel
            time.sleep(0.01)
            return len(data)

    before = set(os.listdir("/proc"))
    started = time.monotonic()
    with pytest.raises(Cancelled):
        app.cp_out(cid, "/big", "-", stdout=SlowSink(), cancel=cancel)  # type: ignore[arg-type]
    assert time.monotonic() - started < 10
    assert 0 < written < 16 << 20
    time.sleep(0.2)
    children = [p for p in set(os.listdir("/proc")) - before if p.isdigit() and Path(f"/proc/{p}/stat").exists()]
    ours = [p for p in children if f"{os.getpid()}" in Path(f"/proc/{p}/stat").read_text().split()[3:4]]
    assert ours == []
