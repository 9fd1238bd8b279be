"""The overlay marks every reader and writer shares (issue 14): what the store's scan,
the builder, the tree copy and the runtime's vfs driver call opaque is one function."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from explorer import overlayfs
from explorer.overlayfs import OPAQUE_XATTR, is_opaque, is_whiteout, mark_opaque
from explorer.store.scan import scan_dir
from explorer.store.treecopy import copy_tree
from tests.capabilities import real_root


def test_a_marked_directory_is_opaque_by_path_and_by_descriptor(tmp_path: Path) -> None:
    plain, marked = tmp_path / "plain", tmp_path / "marked"
    plain.mkdir()
    marked.mkdir()
    mark_opaque(str(marked))
    assert os.getxattr(marked, "user.overlay.opaque") == b"y"
    assert OPAQUE_XATTR == "user.overlay.opaque"
    assert (is_opaque(str(plain)), is_opaque(str(marked))) == (False, True)
    fd = os.open(marked, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert is_opaque(fd)
    finally:
        os.close(fd)
    assert not is_opaque(str(tmp_path / "absent"))


def test_a_symlink_to_an_opaque_directory_is_not_opaque(tmp_path: Path) -> None:
    (tmp_path / "marked").mkdir()
    mark_opaque(str(tmp_path / "marked"))
    (tmp_path / "link").symlink_to("marked")
    assert not is_opaque(str(tmp_path / "link"))
    with pytest.raises(OSError):
        mark_opaque(str(tmp_path / "link"))  # user xattrs cannot sit on a symlink
    assert not is_opaque(str(tmp_path / "link"))


def test_other_values_are_not_opaque(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    os.setxattr(tmp_path / "d", "user.overlay.opaque", b"x")  # overlay's "has opaque children" mark
    assert not is_opaque(str(tmp_path / "d"))


def test_the_trusted_name_of_a_root_overlay_counts_too(tmp_path: Path) -> None:
    if not real_root():
        pytest.skip("trusted.* xattrs are root's")
    (tmp_path / "d").mkdir()
    os.setxattr(tmp_path / "d", "trusted.overlay.opaque", b"y")
    assert is_opaque(str(tmp_path / "d"))


def test_whiteout_is_a_zero_zero_character_device(tmp_path: Path) -> None:
    os.mknod(tmp_path / "gone", stat.S_IFCHR | 0o600, 0)
    (tmp_path / "file").write_bytes(b"")
    assert is_whiteout(os.lstat(tmp_path / "gone"))
    assert not is_whiteout(os.lstat(tmp_path / "file"))


def test_the_scan_and_the_tree_copy_ask_the_one_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Change what opaque means in one place and the store sees the change: no second copy."""
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    mark_opaque(str(src / "a"))
    assert {e.path: e.opaque for e in scan_dir(str(src))} == {"/a": True, "/b": False}
    monkeypatch.setattr(overlayfs, "OPAQUE_XATTRS", ("user.other",))
    assert {e.path: e.opaque for e in scan_dir(str(src))} == {"/a": False, "/b": False}
    monkeypatch.undo()
    (tmp_path / "dst").mkdir()
    copy_tree(str(src), str(tmp_path / "dst"))
    assert is_opaque(str(tmp_path / "dst" / "a")) and not is_opaque(str(tmp_path / "dst" / "b"))
