"""The union view's overlay rules, from in-memory layers (no disk, no database)."""

from pathlib import Path

from explorer.store.index import DIR, FILE, SYMLINK, WHITEOUT, FileEntry
from explorer.store.union import ListedLayer, UnionView


def layer(label: str, *entries: FileEntry) -> ListedLayer:
    return ListedLayer(label, entries, Path("/nonexistent"), kind="layer")


def f(path: str, **kw: object) -> FileEntry:
    return FileEntry(path, kw.pop("type", FILE), **kw)  # type: ignore[arg-type]


def d(path: str, opaque: bool = False) -> FileEntry:
    return FileEntry(path, DIR, 0o755, opaque=opaque)


def wh(path: str) -> FileEntry:
    return FileEntry(path, WHITEOUT, 0)


def view(*layers: ListedLayer) -> UnionView:
    return UnionView(list(layers))


def paths(v: UnionView) -> list[str]:
    return [e.path for e in v.walk()]


def test_whiteout_hides_file_and_subtree() -> None:
    v = view(
        layer("0", d("/a"), f("/a/x"), d("/b"), f("/b/y"), f("/c")),
        layer("1", wh("/a"), wh("/c")),
    )
    assert paths(v) == ["/b", "/b/y"]
    assert v.lookup("/a/x") is None
    assert v.lookup("/c") is None
    assert [e.path for e in v.list_dir("/")] == ["/b"]


def test_opaque_dir_hides_lower_children_but_keeps_itself() -> None:
    v = view(
        layer("0", d("/etc"), f("/etc/old"), d("/etc/sub"), f("/etc/sub/deep")),
        layer("1", d("/etc", opaque=True), f("/etc/new")),
    )
    assert paths(v) == ["/etc", "/etc/new"]
    etc = v.lookup("/etc")
    assert etc is not None and etc.status == "modified" and etc.layer == 1
    assert v.lookup("/etc/sub/deep") is None
    assert [e.path for e in v.list_dir("/etc")] == ["/etc/new"]


def test_file_replacing_directory_hides_its_subtree() -> None:
    v = view(layer("0", d("/x"), f("/x/in")), layer("1", f("/x")))
    assert paths(v) == ["/x"]
    assert v.lookup("/x/in") is None
    x = v.lookup("/x")
    assert x is not None and x.status == "modified" and x.entry.type == FILE


def test_status_added_vs_modified_and_origin_layer() -> None:
    v = view(
        layer("0", d("/d"), f("/d/a", size=1), f("/d/b")),
        layer("1", d("/d"), f("/d/a", size=2), f("/d/c")),
        layer("2", f("/d/e")),
    )
    got = {e.path: (e.layer, e.status) for e in v.walk()}
    assert got == {
        "/d": (1, "modified"),
        "/d/a": (1, "modified"),
        "/d/b": (0, "added"),
        "/d/c": (1, "added"),
        "/d/e": (2, "added"),
    }
    listed = {e.path: (e.layer, e.status) for e in v.list_dir("/d")}
    assert listed == {k: v for k, v in got.items() if k != "/d"}


def test_recreated_after_delete_counts_as_added() -> None:
    v = view(layer("0", f("/a")), layer("1", wh("/a")), layer("2", f("/a")))
    hit = v.lookup("/a")
    assert hit is not None and hit.layer == 2 and hit.status == "added"
    assert [(e.path, e.status) for e in v.walk()] == [("/a", "added")]


def test_tree_order_keeps_subtrees_together() -> None:
    v = view(layer("0", d("/a"), f("/a/b"), f("/a-c"), f("/a.d")))
    assert paths(v) == ["/a", "/a/b", "/a-c", "/a.d"]


def test_symlinks_are_followed_inside_the_root_only() -> None:
    v = view(
        layer(
            "0",
            d("/usr"),
            d("/usr/bin"),
            f("/usr/bin/sh"),
            f("/bin", type=SYMLINK, link="usr/bin"),
            f("/up", type=SYMLINK, link="../../../usr"),
            f("/loop", type=SYMLINK, link="/loop"),
        )
    )
    assert v.resolve_path("/bin/sh") == "/usr/bin/sh"
    assert v.resolve_path("/up/bin") == "/usr/bin"
    assert [e.path for e in v.list_dir("/bin")] == ["/usr/bin/sh"]
    import pytest

    from explorer.errors import StrataError

    with pytest.raises(StrataError, match="symbolic links"):
        v.resolve_path("/loop/x")


def test_lookup_many_matches_lookup() -> None:
    entries = [d("/d")] + [f(f"/d/{i}") for i in range(300)]
    v = view(layer("0", *entries), layer("1", wh("/d/5"), f("/d/7", size=3)))
    many = v.lookup_many([f"/d/{i}" for i in range(300)])
    assert "/d/5" not in many
    assert many["/d/7"].status == "modified"
    assert len(many) == 299


def test_listing_agrees_with_walk_after_delete_and_recreate() -> None:
    v = view(layer("0", d("/d"), f("/d/a")), layer("1", wh("/d/a")), layer("2", d("/d"), f("/d/a")))
    assert [(e.path, e.status) for e in v.list_dir("/d")] == [("/d/a", "added")]
