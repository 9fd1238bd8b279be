"""``dir_size``: the one measure of a directory tree (issue 14) behind ``system df``, the
prunes, the quarantine listing and what the window says a repair frees."""

from __future__ import annotations

import os
from pathlib import Path

from explorer.fsutil import dir_size


def test_regular_files_count_once_per_inode_and_links_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "big").write_bytes(bytes(10_000))
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "one").write_bytes(b"12345")
    (tree / "a" / "b" / "two").write_bytes(b"123")
    os.link(tree / "a" / "one", tree / "again")  # the same bytes under a second name
    os.link(outside / "big", tree / "a" / "b" / "shared")  # a link whose other name is outside: counted
    os.symlink(outside, tree / "dir-link")  # not followed
    os.symlink(outside / "big", tree / "file-link")  # a symlink's own size is not counted
    os.mkfifo(tree / "fifo")
    (tree / "empty").mkdir()
    assert dir_size(tree) == 5 + 3 + 10_000
    assert dir_size(str(tree / "a" / "b")) == 3 + 10_000


def test_a_missing_or_plain_path_is_nothing(tmp_path: Path) -> None:
    assert dir_size(tmp_path / "absent") == 0
    (tmp_path / "file").write_bytes(b"x")
    assert dir_size(tmp_path / "file") == 0  # not a directory: nothing below it
    assert dir_size(tmp_path) == 1
