"""scan_dir: an index from a directory in overlay form."""

from __future__ import annotations

import os
import stat

import xxhash

from explorer.store.index import FileEntry
from explorer.store.scan import scan_dir
from tests.capabilities import real_root


def by_path(entries: list[FileEntry]) -> dict[str, FileEntry]:
    return {e.path: e for e in entries}


def test_types_whiteouts_opaque_and_hardlinks(tmp_path):
    (tmp_path / "d").mkdir(mode=0o750)
    (tmp_path / "d/b").write_bytes(b"content")
    os.link(tmp_path / "d/b", tmp_path / "a-link")
    os.link(tmp_path / "d/b", tmp_path / "z-link")
    os.symlink("d/b", tmp_path / "sym")
    os.mknod(tmp_path / "gone", stat.S_IFCHR | 0o600, 0)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "opq").mkdir()
    os.setxattr(tmp_path / "opq", "user.overlay.opaque", b"y")
    root = real_root()  # trusted.* xattrs are root's (overlay without userxattr)
    (tmp_path / "topq").mkdir()
    (tmp_path / "redir").mkdir()
    if root:
        os.setxattr(tmp_path / "topq", "trusted.overlay.opaque", b"y")
        os.setxattr(tmp_path / "redir", "trusted.overlay.redirect", b"/elsewhere")
    else:
        os.setxattr(tmp_path / "topq", "user.overlay.opaque", b"y")
        os.setxattr(tmp_path / "redir", "user.overlay.redirect", b"/elsewhere")
    (tmp_path / "empty").write_bytes(b"")
    os.chmod(tmp_path / "empty", 0o000)
    os.utime(tmp_path / "empty", ns=(0, 1_600_000_000_250_000_000))
    entries = scan_dir(str(tmp_path))
    assert [e.path for e in entries] == sorted(e.path for e in entries)
    idx = by_path(entries)
    assert "/" not in idx
    assert idx["/a-link"].type == "file" and idx["/a-link"].size == 7
    assert idx["/a-link"].digest == xxhash.xxh3_128(b"content").hexdigest()
    me = (os.geteuid(), os.getegid())
    assert idx["/d/b"] == FileEntry("/d/b", "hardlink", idx["/d/b"].mode, *me, 0, idx["/d/b"].mtime, None, "/a-link")
    assert idx["/z-link"].type == "hardlink" and idx["/z-link"].link == "/a-link"
    assert idx["/sym"].type == "symlink" and idx["/sym"].link == "d/b"
    assert idx["/gone"].type == "whiteout" and idx["/gone"].mode == 0o600
    assert idx["/fifo"].type == "fifo"
    assert idx["/d"].mode == 0o750 and not idx["/d"].opaque
    assert idx["/opq"].opaque and idx["/topq"].opaque and not idx["/redir"].opaque
    assert idx["/empty"].mode == 0 and idx["/empty"].mtime == 1_600_000_000.25
    assert idx["/empty"].digest == xxhash.xxh3_128(b"").hexdigest()


BEYOND = 4_000_000  # beyond any subordinate range


def test_base_keeps_ownership_and_devices_the_disk_cannot_hold(tmp_path):
    me = (os.geteuid(), os.getegid())
    (tmp_path / "owned-by-me").write_bytes(b"x")
    (tmp_path / "placeholder").write_bytes(b"")
    os.chmod(tmp_path / "placeholder", 0)
    (tmp_path / "other").write_bytes(b"y")
    if os.geteuid() == 0:
        os.chown(tmp_path / "other", me[0] + 1, me[1] + 1)
    (tmp_path / "changed-type").mkdir()
    base = {
        "/owned-by-me": FileEntry("/owned-by-me", "file", 0o644, BEYOND, BEYOND, 1),
        "/placeholder": FileEntry("/placeholder", "char", 0o666, devmajor=1, devminor=3),
        "/other": FileEntry("/other", "file", 0o644, 7, 7, 1),
        "/changed-type": FileEntry("/changed-type", "file", 0o644, 9, 9, 1),
    }
    os.chmod(tmp_path / "owned-by-me", 0o644)
    idx = by_path(scan_dir(str(tmp_path), base=base))
    # An owner no mapping can put on disk survives from the base; real root's disk is the truth.
    assert (idx["/owned-by-me"].uid, idx["/owned-by-me"].gid) == (me if real_root() else (BEYOND, BEYOND))
    ph = idx["/placeholder"]
    assert (ph.type, ph.devmajor, ph.devminor, ph.mode, ph.size, ph.digest) == ("char", 1, 3, 0o666, 0, None)
    if os.geteuid() == 0:
        assert (idx["/other"].uid, idx["/other"].gid) == (me[0] + 1, me[1] + 1)
    assert idx["/changed-type"].type == "dir"
    assert (idx["/changed-type"].uid, idx["/changed-type"].gid) == me
