"""walk_rows: the one walk behind a volume's listing and size."""

from __future__ import annotations

import os
from pathlib import Path

from explorer.fsutil import dir_size
from explorer.store.union import ListedLayer, UnionView, tree_order
from explorer.store.volumes import walk_rows


def _tree(root: Path) -> None:
    for rel in ["a/b/c", "a-c", "a.b/x", "b", "z/y/x/w"]:
        (root / rel).mkdir(parents=True)
    (root / "a" / "f").write_bytes(b"12345")
    (root / "a-c" / "g").write_bytes(b"1")
    (root / "a" / "b" / "c" / "h").write_bytes(b"123")
    os.link(root / "a" / "f", root / "b" / "f-link")  # the same inode: counted once
    os.symlink("../a/f", root / "b" / "sym")
    os.symlink("/nowhere", root / "dangling")
    (root / "top").write_bytes(b"")


def test_rows_come_in_tree_order_with_every_entry(tmp_path: Path) -> None:
    _tree(tmp_path)
    rows, size = walk_rows(tmp_path)
    paths = [r[0] for r in rows]
    assert paths == sorted(paths, key=tree_order)
    expected = {"/" + str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")}
    assert set(paths) == expected and len(paths) == len(expected)
    assert size == 5 + 1 + 3 == dir_size(tmp_path)
    by_path = {r[0]: r for r in rows}
    assert by_path["/b/sym"][1] == "symlink" and by_path["/b/sym"][8] == "../a/f"
    assert by_path["/dangling"][8] == "/nowhere"
    assert by_path["/a/b/c"][1] == "dir"


def test_an_ordered_layer_walks_like_a_sorted_one(tmp_path: Path) -> None:
    _tree(tmp_path)
    rows, _size = walk_rows(tmp_path)
    shuffled = list(reversed(rows))
    ordered = UnionView([ListedLayer("v", (), tmp_path, kind="volume", rows=rows, ordered=True)]).walk()
    sorted_view = UnionView([ListedLayer("v", (), tmp_path, kind="volume", rows=shuffled)]).walk()
    assert [u.path for u in ordered] == [u.path for u in sorted_view]
    assert [u.entry for u in ordered] == [u.entry for u in sorted_view]


def test_an_unreadable_or_missing_root_is_empty(tmp_path: Path) -> None:
    assert walk_rows(tmp_path / "gone") == ([], 0)
