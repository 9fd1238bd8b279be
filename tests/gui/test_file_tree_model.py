"""The file browser's model: lazy, consistent under QAbstractItemModelTester, merged in place."""

from __future__ import annotations

from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtTest import QAbstractItemModelTester

from explorer.api import Strata
from explorer.gui.models.file_source import CONTAINER, DELETED, IMAGE, LAYER, FileSource, open_snapshot
from explorer.gui.models.file_tree_model import Col, FileTreeModel, Role
from tests.gui.storekit import two_images_sharing_steps


def _tested(model: FileTreeModel) -> QAbstractItemModelTester:
    return QAbstractItemModelTester(model, QAbstractItemModelTester.FailureReportingMode.Fatal)


def _names(model: FileTreeModel, parent: QModelIndex | None = None) -> list[str]:
    parent = parent or QModelIndex()
    return [model.data(model.index(r, 0, parent)) for r in range(model.rowCount(parent))]


def _load(qtbot: Any, model: FileTreeModel, path: str = "/") -> QModelIndex:
    index = model.index_for_path(path) if path != "/" else QModelIndex()
    node = model.node_for_path(path)
    assert node is not None
    if node.children is None:  # the model tester may have started the listing already
        with qtbot.waitSignal(model.directoryLoaded, timeout=5000, check_params_cb=lambda p: p == path):
            model.fetchMore(index)
    return model.index_for_path(path) if path != "/" else QModelIndex()


@pytest.fixture
def images(strata: Strata) -> Any:
    return two_images_sharing_steps(strata)


def test_lazy_listing_status_and_whiteouts(qtbot: Any, strata: Strata, images: Any) -> None:
    model = FileTreeModel()
    tester = _tested(model)
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:1")))
    assert model.rowCount() == 0 and model.hasChildren(QModelIndex())
    _load(qtbot, model)
    assert _names(model) == ["bin", "etc", "tmp", "usr", "app"]  # directories first
    etc = model.index_for_path("/etc")
    assert model.hasChildren(etc) and model.node_for_path("/etc").children is None  # not listed until asked
    tmp = _load(qtbot, model, "/tmp")
    (cache,) = [model.index(r, 0, tmp) for r in range(model.rowCount(tmp))]
    row = model.data(cache, Role.ROW)
    assert row.status == DELETED and row.name == "cache.bin"
    assert model.data(model.index(cache.row(), Col.STATUS, tmp)) == "deleted (whiteout)"
    assert model.data(cache, Qt.ItemDataRole.FontRole).strikeOut()
    app = model.index_for_path("/app")
    assert model.data(model.index(app.row(), Col.STATUS)) == "added"
    assert model.data(model.index(app.row(), Col.OWNER)) == "root:root"  # names from the image's /etc/passwd
    assert model.data(model.index(app.row(), Col.LAYER)).startswith("2 · ")
    assert model.data(model.index(model.index_for_path("/bin").row(), Col.STATUS)) == "unchanged"
    del tester


def test_changed_only_keeps_changes_and_their_folders(qtbot: Any, strata: Strata, images: Any) -> None:
    model = FileTreeModel()
    _tested(model)
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:2")))
    model.set_changed_only(True)
    _load(qtbot, model)
    assert _names(model) == ["etc"]
    etc = _load(qtbot, model, "/etc")
    assert _names(model, etc) == ["extra", "motd"]


def test_layer_source_and_at_layer(qtbot: Any, strata: Strata, images: Any) -> None:
    a, _ = images
    base = strata.store.layers.chain(a.top_layer)[0]
    model = FileTreeModel()
    _tested(model)
    model.set_snapshot(open_snapshot(strata, FileSource(LAYER, base.id)))
    _load(qtbot, model)
    assert _names(model) == ["bin", "etc", "usr"]
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:1", at_layer=1)))
    _load(qtbot, model)
    assert "app" not in _names(model) and "tmp" in _names(model)


def test_sort_by_size_keeps_persistent_indexes(qtbot: Any, strata: Strata, images: Any) -> None:
    model = FileTreeModel()
    _tested(model)
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:1")))
    _load(qtbot, model)
    etc = _load(qtbot, model, "/etc")
    held = QPersistentModelIndex(model.index_for_path("/etc/passwd"))
    model.sort(Col.SIZE, Qt.SortOrder.DescendingOrder)
    assert _names(model, model.index_for_path("/etc"))[0] == "passwd"
    assert held.isValid() and model.data(held, Role.PATH) == "/etc/passwd"
    del etc


def test_refresh_merges_rows_without_reset(qtbot: Any, strata: Strata, images: Any) -> None:
    cid = strata.create("app:1", name="c1").id
    diff = strata.container_diff_dir("c1")
    source = FileSource(CONTAINER, "c1", ident=cid)
    model = FileTreeModel()
    _tested(model)
    model.set_snapshot(open_snapshot(strata, source))
    _load(qtbot, model)
    etc = _load(qtbot, model, "/etc")
    held = QPersistentModelIndex(model.index_for_path("/etc/hostname"))
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    (diff / "etc").mkdir()
    (diff / "etc" / "new.conf").write_text("x=1\n")
    (diff / "etc" / "hostname").write_text("changed\n")
    with qtbot.waitSignal(model.rowsInserted, timeout=5000):
        model.update_snapshot(open_snapshot(strata, source), ["/etc/new.conf", "/etc/hostname"])
    assert not resets
    assert held.isValid() and model.data(held, Role.PATH) == "/etc/hostname"
    assert "new.conf" in _names(model, model.index_for_path("/etc"))
    new = model.index_for_path("/etc/new.conf")
    assert model.data(new, Role.JUST_CHANGED) and model.data(new, Qt.ItemDataRole.BackgroundRole) is not None
    hostname = model.data(model.index_for_path("/etc/hostname"), Role.ROW)
    assert hostname.status == "modified" and hostname.layer == 3  # the container layer
    (diff / "etc" / "new.conf").unlink()
    with qtbot.waitSignal(model.rowsRemoved, timeout=5000):
        model.update_snapshot(open_snapshot(strata, source), ["/etc/new.conf"])
    assert "new.conf" not in _names(model, model.index_for_path("/etc"))
    del etc


def test_many_new_rows_arrive_sorted(qtbot: Any, strata: Strata, images: Any) -> None:
    strata.create("app:1", name="c2")
    diff = strata.container_diff_dir("c2")
    source = FileSource(CONTAINER, "c2")
    model = FileTreeModel()
    _tested(model)
    model.set_snapshot(open_snapshot(strata, source))
    _load(qtbot, model)
    (diff / "many").mkdir()
    _load(qtbot, model, "/")
    with qtbot.waitSignal(model.rowsInserted, timeout=5000):
        model.update_snapshot(open_snapshot(strata, source), ["/many"])
    many = _load(qtbot, model, "/many")
    for i in range(200, 0, -1):
        (diff / "many" / f"f{i:03d}").write_bytes(b"x")
    with qtbot.waitSignal(model.layoutChanged, timeout=5000):
        model.update_snapshot(open_snapshot(strata, source), ["/many/f001"])
    many = model.index_for_path("/many")
    assert _names(model, many) == [f"f{i:03d}" for i in range(1, 201)]
