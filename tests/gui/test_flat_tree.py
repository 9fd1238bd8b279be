"""The flat view of the file tree: visible rows only, following the tree's changes."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QPersistentModelIndex, Qt

from explorer.api import Strata
from explorer.gui.models.file_source import CONTAINER, IMAGE, FileSource, open_snapshot
from explorer.gui.models.file_tree_model import Col, FileTreeModel
from explorer.gui.models.file_tree_model import Role as TreeRole
from explorer.gui.models.flat_tree import FlatTreeModel, Role
from tests.gui.modeltest import checked
from tests.gui.storekit import two_images_sharing_steps


def _paths(flat: FlatTreeModel) -> list[str]:
    return [flat.data(flat.index(r, 0), TreeRole.PATH) for r in range(flat.rowCount())]


def _setup(qtbot: Any, strata: Strata, source: FileSource) -> tuple[FileTreeModel, FlatTreeModel]:
    tree = FileTreeModel()
    flat = FlatTreeModel(tree)
    checked(tree)
    checked(flat)
    with qtbot.waitSignal(tree.directoryLoaded, timeout=5000):
        tree.set_snapshot(open_snapshot(strata, source))
        tree.fetchMore(tree.index(-1, 0))
    return tree, flat


def _expand(qtbot: Any, tree: FileTreeModel, flat: FlatTreeModel, path: str) -> None:
    index = flat.index_for_path(path)
    node = flat.node(index)
    assert node is not None
    if node.children is None:
        with qtbot.waitSignal(tree.directoryLoaded, timeout=5000):
            flat.expand(index)
    else:
        flat.expand(index)


def test_expand_collapse_and_depth(qtbot: Any, strata: Strata) -> None:
    two_images_sharing_steps(strata)
    tree, flat = _setup(qtbot, strata, FileSource(IMAGE, "app:1"))
    assert _paths(flat) == ["/bin", "/etc", "/tmp", "/usr", "/app"]
    etc = flat.index_for_path("/etc")
    assert flat.data(etc, Role.EXPANDABLE) and not flat.data(etc, Role.EXPANDED)
    assert not flat.data(flat.index_for_path("/app"), Role.EXPANDABLE)
    _expand(qtbot, tree, flat, "/etc")
    assert _paths(flat)[:7] == ["/bin", "/etc", "/etc/group", "/etc/hostname", "/etc/motd", "/etc/passwd", "/tmp"]
    assert flat.data(flat.index_for_path("/etc/motd"), Role.DEPTH) == 1
    _expand(qtbot, tree, flat, "/usr")
    _expand(qtbot, tree, flat, "/usr/share")
    assert "/usr/share/doc" in _paths(flat)
    held = QPersistentModelIndex(flat.index_for_path("/usr/share"))
    flat.collapse(flat.index_for_path("/usr"))
    assert "/usr/share" not in _paths(flat) and not held.isValid()
    flat.expand(flat.index_for_path("/usr"))  # children are loaded: no fetch, the expansion inside is kept
    assert "/usr/share/doc" in _paths(flat)
    assert flat.data(flat.index_for_path("/app"), Qt.ItemDataRole.DisplayRole) == "app"


def test_sort_and_merge_follow_the_tree(qtbot: Any, strata: Strata) -> None:
    two_images_sharing_steps(strata)
    info = strata.create("app:1", name="c1")
    source = FileSource(CONTAINER, "c1", ident=info.id)
    tree, flat = _setup(qtbot, strata, source)
    _expand(qtbot, tree, flat, "/etc")
    held = QPersistentModelIndex(flat.index_for_path("/etc/passwd"))
    flat.sort(Col.SIZE, Qt.SortOrder.DescendingOrder)
    assert _paths(flat)[_paths(flat).index("/etc") + 1] == "/etc/passwd"
    assert held.isValid() and flat.data(held, TreeRole.PATH) == "/etc/passwd"
    diff = strata.container_diff_dir("c1")
    (diff / "etc").mkdir()
    (diff / "etc" / "zz-new").write_bytes(b"x" * 1000)
    with qtbot.waitSignal(flat.rowsInserted, timeout=5000):
        tree.update_snapshot(open_snapshot(strata, source), ["/etc/zz-new"])
    paths = _paths(flat)
    assert paths.index("/etc/zz-new") == paths.index("/etc") + 1  # largest first
    (diff / "etc" / "zz-new").unlink()
    with qtbot.waitSignal(flat.rowsRemoved, timeout=5000):
        tree.update_snapshot(open_snapshot(strata, source), ["/etc/zz-new"])
    assert "/etc/zz-new" not in _paths(flat)
    assert held.isValid() and flat.data(held, TreeRole.PATH) == "/etc/passwd"


def test_a_reset_starts_collapsed(qtbot: Any, strata: Strata) -> None:
    two_images_sharing_steps(strata)
    tree, flat = _setup(qtbot, strata, FileSource(IMAGE, "app:1"))
    _expand(qtbot, tree, flat, "/etc")
    with qtbot.waitSignal(tree.directoryLoaded, timeout=5000):
        tree.set_changed_only(True)
        tree.fetchMore(tree.index(-1, 0))
    assert _paths(flat) == ["/tmp", "/app"]
