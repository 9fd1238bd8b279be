"""The vfs driver's copy and compare, checked against the union of layers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from explorer.runtime import vfs_diff, vfs_materialize
from explorer.runtime.layerpath import Found, LayerStack
from tests.runtime.harness import listing


def _whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, os.makedev(0, 0))


def _union(layers: list[str]) -> dict[str, tuple[str, int]]:
    """Every visible path of a layer stack → (kind, mode bits)."""
    stack = LayerStack(layers)
    out: dict[str, tuple[str, int]] = {}

    def walk(rel: str, node: Found) -> None:
        for name, found in stack.children(rel, node).items():
            sub = os.path.join(rel, name)
            kind = "dir" if stat.S_ISDIR(found.st.st_mode) else "link" if stat.S_ISLNK(found.st.st_mode) else "file"
            out[sub] = (kind, stat.S_IMODE(found.st.st_mode))
            if kind == "dir":
                walk(sub, found)

    walk("", stack.root())
    return out


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    return {rel: (kind, stat.S_IMODE(os.lstat(root / rel).st_mode)) for rel, kind in listing(root).items()}


@pytest.fixture
def layers(tmp_path: Path) -> list[str]:
    base, mid, top = tmp_path / "l0", tmp_path / "l1", tmp_path / "l2"
    (base / "keep").mkdir(parents=True)
    (base / "keep" / "file").write_text("base")
    (base / "keep" / "hard").hardlink_to(base / "keep" / "file")
    (base / "gone").mkdir()
    (base / "gone" / "inner").write_text("x")
    (base / "replaced").mkdir()
    (base / "replaced" / "old").write_text("x")
    (base / "link").symlink_to("keep/file")
    (base / "turns-dir").write_text("file first")
    (mid / "replaced").mkdir(parents=True)
    os.setxattr(mid / "replaced", "user.overlay.opaque", b"y")
    (mid / "replaced" / "new").write_text("new")
    _whiteout(mid / "gone")
    (mid / "turns-dir").mkdir()
    (mid / "turns-dir" / "child").write_text("c")
    (top / "keep").mkdir(parents=True)
    (top / "keep" / "file").write_text("top wins")
    os.chmod(top / "keep", 0o750)
    (top / "exec").write_text("#!/bin/sh\n")
    os.chmod(top / "exec", 0o755)
    return [str(top), str(mid), str(base)]


def test_materialize_matches_the_union(layers: list[str], tmp_path: Path) -> None:
    dest = tmp_path / "root"
    vfs_materialize(layers, str(dest))
    assert _tree(dest) == _union(layers)
    assert (dest / "keep" / "file").read_text() == "top wins"
    assert not (dest / "replaced" / "old").exists()
    assert "user.overlay.opaque" not in os.listxattr(dest / "replaced")
    base_hard = Path(layers[2]) / "keep" / "hard"
    assert (dest / "keep" / "hard").read_text() == base_hard.read_text()
    mtime = os.lstat(Path(layers[0]) / "exec").st_mtime_ns
    assert os.lstat(dest / "exec").st_mtime_ns == mtime


def test_unchanged_root_has_an_empty_diff(layers: list[str], tmp_path: Path) -> None:
    dest = tmp_path / "root"
    vfs_materialize(layers, str(dest))
    diff = tmp_path / "diff"
    vfs_diff(layers, str(dest), str(diff))
    assert listing(diff) == {}


def test_diff_in_overlay_form(layers: list[str], tmp_path: Path) -> None:
    root = tmp_path / "root"
    vfs_materialize(layers, str(root))
    (root / "added").write_text("added")
    (root / "keep" / "file").write_text("changed!")
    os.unlink(root / "link")
    (root / "link").symlink_to("elsewhere")
    os.unlink(root / "keep" / "hard")
    for name in os.listdir(root / "turns-dir"):
        os.unlink(root / "turns-dir" / name)
    (root / "turns-dir" / "fresh").write_text("f")
    os.chmod(root / "exec", 0o700)
    diff = tmp_path / "diff"
    vfs_diff(layers, str(root), str(diff))
    assert listing(diff) == {
        "added": "file",
        "keep": "dir",
        "keep/file": "file",
        "keep/hard": "whiteout",
        "link": "link",
        "turns-dir": "dir",
        "turns-dir/fresh": "file",
        "exec": "file",
    }
    assert os.getxattr(diff / "turns-dir", "user.overlay.opaque") == b"y"
    assert "user.overlay.opaque" not in os.listxattr(diff / "keep")
    assert _union([str(diff), *layers]) == _tree(root)


def test_diff_refuses_a_non_empty_destination(layers: list[str], tmp_path: Path) -> None:
    root, diff = tmp_path / "root", tmp_path / "diff"
    vfs_materialize(layers, str(root))
    diff.mkdir()
    (diff / "stale").write_text("x")
    with pytest.raises(OSError, match="not empty"):
        vfs_diff(layers, str(root), str(diff))
