"""LinkClone: a hard-link copy of a layer tree made by cp in the background."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from explorer.errors import CloneFailed
from explorer.store.linkclone import LinkClone


def test_the_clone_shares_inodes_and_has_its_own_directories(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    (src / "a" / "b").mkdir(parents=True)
    (src / "a" / "b" / "f").write_text("payload\n")
    (src / "link").symlink_to("a/b/f")
    (src / "a").chmod(0o555)
    dest.mkdir()
    try:
        clone = LinkClone(str(src), str(dest))
        clone.wait()
        assert (dest / "a" / "b" / "f").stat().st_ino == (src / "a" / "b" / "f").stat().st_ino
        assert (dest / "a").stat().st_ino != (src / "a").stat().st_ino
        assert os.readlink(dest / "link") == "a/b/f"
        clone.cancel()  # harmless once done
    finally:
        (src / "a").chmod(0o755)
        if (dest / "a").exists():
            (dest / "a").chmod(0o755)


def test_a_clone_that_cannot_be_made_says_so(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    clone = LinkClone(str(tmp_path / "missing"), str(dest))
    with pytest.raises(CloneFailed, match="exited"):
        clone.wait()


def test_cancel_stops_a_running_clone(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    for i in range(200):
        (src / f"d{i}").mkdir(parents=True)
        (src / f"d{i}" / "f").write_text("x")
    dest.mkdir()
    clone = LinkClone(str(src), str(dest))
    clone.cancel()
    clone.cancel()
    assert clone._proc is not None and clone._proc.returncode is not None
