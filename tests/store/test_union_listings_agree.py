"""The recursive walk of a union view and its per-directory listings must always agree, and
both must agree with overlayfs' rules applied one path at a time (``lookup``).

``walk`` merges every layer at once (``strata ls -R``), ``list_dir`` one directory at a
time (``strata ls IMAGE DIR``) and ``lookup`` one path: three implementations of the same
rules. Issue 15 found ``walk`` listing a file that a later layer had removed by replacing
its directory (an opaque directory) whenever a layer above that one touched the directory
again; hypothesis now builds many such stacks.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.store.index import DIR, FILE, SYMLINK, WHITEOUT, FileEntry
from explorer.store.union import ListedLayer, UnionEntry, UnionView

NAMES = ("a", "b", "c")
KINDS = ("file", "dir", "opaque", "whiteout", "symlink")


def layer(label: str, entries: list[FileEntry]) -> ListedLayer:
    return ListedLayer(label, entries, Path("/nonexistent"), kind="layer")


def entry(path: str, kind: str) -> FileEntry:
    if kind == "file":
        return FileEntry(path, FILE, 0o644, size=len(path))
    if kind == "symlink":
        return FileEntry(path, SYMLINK, 0o777, link="a")
    if kind == "whiteout":
        return FileEntry(path, WHITEOUT, 0)
    return FileEntry(path, DIR, 0o755, opaque=kind == "opaque")


@st.composite
def layer_entries(draw: st.DrawFn) -> list[FileEntry]:
    """One layer in overlay form: every path's parents are directories of this layer."""
    chosen: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 7))):
        depth = draw(st.integers(1, 3))
        parts = [draw(st.sampled_from(NAMES)) for _ in range(depth)]
        path = "/" + "/".join(parts)
        if any(chosen.get("/" + "/".join(parts[:i])) in ("file", "whiteout", "symlink") for i in range(1, depth)):
            continue
        kind = draw(st.sampled_from(KINDS))
        if any(p.startswith(path + "/") for p in chosen) and kind not in ("dir", "opaque"):
            continue
        chosen[path] = kind
        for i in range(1, depth):
            chosen.setdefault("/" + "/".join(parts[:i]), "dir")
    return [entry(path, kind) for path, kind in sorted(chosen.items())]


def rows(hits: list[UnionEntry]) -> dict[str, tuple[FileEntry, int, str]]:
    return {h.path: (h.entry, h.layer, h.status) for h in hits}


def check_agreement(v: UnionView) -> None:
    walked = rows(v.walk())
    children: dict[str, dict[str, tuple[FileEntry, int, str]]] = {}
    for path, row in walked.items():
        children.setdefault(posixpath.dirname(path), {})[path] = row
    for directory in ["/", *(p for p, r in walked.items() if r[0].type == DIR)]:
        assert rows(v.list_dir(directory)) == children.get(directory, {}), directory
    for path, (e, index, status) in walked.items():
        hit = v.lookup(path)
        assert hit is not None and (hit.entry, hit.layer, hit.status) == (e, index, status), path
    for name in NAMES:  # a path the walk does not show is not found one by one either
        for path in (f"/{name}", f"/{name}/{name}", f"/a/b/{name}"):
            if path not in walked:
                assert v.lookup(path) is None, path


def test_an_opaque_directory_touched_again_above_still_hides_what_it_replaced() -> None:
    """Issue 15: layer 1 replaces /data (opaque), layer 2 adds a file to it; the file of
    layer 0 must stay gone in ``ls -R`` as it is in ``ls /data``."""
    v = UnionView(
        [
            layer("0", [entry("/data", "dir"), entry("/data/old", "file")]),
            layer("1", [entry("/data", "opaque"), entry("/data/new", "file")]),
            layer("2", [entry("/data", "dir"), entry("/data/newer", "file")]),
        ]
    )
    assert [h.path for h in v.walk()] == ["/data", "/data/new", "/data/newer"]
    check_agreement(v)


def test_a_file_between_two_directories_hides_the_lower_ones_contents() -> None:
    """A directory replaced by a file and then by a directory again: overlayfs stops at the
    file, so nothing of the first directory comes back."""
    v = UnionView(
        [
            layer("0", [entry("/x", "dir"), entry("/x/old", "file")]),
            layer("1", [entry("/x", "file")]),
            layer("2", [entry("/x", "dir"), entry("/x/new", "file")]),
        ]
    )
    assert [h.path for h in v.walk()] == ["/x", "/x/new"]
    check_agreement(v)


@settings(max_examples=300, deadline=None)
@given(st.lists(layer_entries(), min_size=1, max_size=4))
def test_walk_list_dir_and_lookup_agree_on_any_stack(stack: list[list[FileEntry]]) -> None:
    check_agreement(UnionView([layer(str(i), entries) for i, entries in enumerate(stack)]))
