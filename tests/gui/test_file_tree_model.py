"""The file browser's model: lazy, consistent under QAbstractItemModelTester, merged in place."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt

from explorer.api import Strata
from explorer.gui.models.file_source import CONTAINER, DELETED, IMAGE, LAYER, FileSource, open_snapshot
from explorer.gui.models.file_tree_model import Col, FileTreeModel, Role
from explorer.gui.workers import TaskRunner
from tests.gui.modeltest import checked
from tests.gui.storekit import two_images_sharing_steps

MakeModel = Callable[[], FileTreeModel]


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


@pytest.fixture(params=["pool", "inline"])
def new_model(request: pytest.FixtureRequest, qapp: Any) -> Iterator[MakeModel]:
    """Models listing on worker threads, as the file browser runs them (``pool``), and
    in the calling thread with delivery from the event loop (``inline``)."""
    runner = TaskRunner()

    def on_pool(title: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        runner.submit(title, lambda _: work(), on_result=done, on_error=lambda f: done(f.message), visible=False)

    made: list[FileTreeModel] = []

    def make() -> FileTreeModel:
        made.append(FileTreeModel(on_pool if request.param == "pool" else None))
        return made[-1]

    yield make
    runner.cancel_all()
    assert runner.wait(10000)


def test_lazy_listing_status_and_whiteouts(qtbot: Any, strata: Strata, images: Any, new_model: MakeModel) -> None:
    model = new_model()
    tester = checked(model)
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


def test_changed_only_keeps_changes_and_their_folders(
    qtbot: Any, strata: Strata, images: Any, new_model: MakeModel
) -> None:
    model = new_model()
    checked(model)
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:2")))
    model.set_changed_only(True)
    _load(qtbot, model)
    assert _names(model) == ["etc"]
    etc = _load(qtbot, model, "/etc")
    assert _names(model, etc) == ["extra", "motd"]


def test_layer_source_and_at_layer(qtbot: Any, strata: Strata, images: Any, new_model: MakeModel) -> None:
    a, _ = images
    base = strata.store.layers.chain(a.top_layer)[0]
    model = new_model()
    checked(model)
    model.set_snapshot(open_snapshot(strata, FileSource(LAYER, base.id)))
    _load(qtbot, model)
    assert _names(model) == ["bin", "etc", "usr"]
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:1", at_layer=1)))
    _load(qtbot, model)
    assert "app" not in _names(model) and "tmp" in _names(model)


def test_sort_by_size_keeps_persistent_indexes(qtbot: Any, strata: Strata, images: Any, new_model: MakeModel) -> None:
    model = new_model()
    checked(model)
    model.set_snapshot(open_snapshot(strata, FileSource(IMAGE, "app:1")))
    _load(qtbot, model)
    etc = _load(qtbot, model, "/etc")
    held = QPersistentModelIndex(model.index_for_path("/etc/passwd"))
    model.sort(Col.SIZE, Qt.SortOrder.DescendingOrder)
    assert _names(model, model.index_for_path("/etc"))[0] == "passwd"
    assert held.isValid() and model.data(held, Role.PATH) == "/etc/passwd"
    del etc


def test_refresh_merges_rows_without_reset(qtbot: Any, strata: Strata, images: Any, new_model: MakeModel) -> None:
    cid = strata.create("app:1", name="c1").id
    diff = strata.container_diff_dir("c1")
    source = FileSource(CONTAINER, "c1", ident=cid)
    model = new_model()
    checked(model)
    model.set_snapshot(open_snapshot(strata, source))
    _load(qtbot, model)
    etc = _load(qtbot, model, "/etc")
    held = QPersistentModelIndex(model.index_for_path("/etc/hostname"))
    resets: list[int] = []
    model.modelReset.connect(lambda: resets.append(1))
    (diff / "etc").mkdir()
    (diff / "etc" / "new.conf").write_text("x=1\n")
    (diff / "etc" / "hostname").write_text("changed\n")
    # The kept model tester lists directories too, so wait for the result, not a signal.
    model.update_snapshot(open_snapshot(strata, source), ["/etc/new.conf", "/etc/hostname"])
    qtbot.waitUntil(lambda: "new.conf" in _names(model, model.index_for_path("/etc")), timeout=5000)
    assert not resets
    assert held.isValid() and model.data(held, Role.PATH) == "/etc/hostname"
    assert "new.conf" in _names(model, model.index_for_path("/etc"))
    new = model.index_for_path("/etc/new.conf")
    assert model.data(new, Role.JUST_CHANGED) and model.data(new, Qt.ItemDataRole.BackgroundRole) is not None
    hostname = model.data(model.index_for_path("/etc/hostname"), Role.ROW)
    assert hostname.status == "modified" and hostname.layer == 3  # the container layer
    (diff / "etc" / "new.conf").unlink()
    model.update_snapshot(open_snapshot(strata, source), ["/etc/new.conf"])
    qtbot.waitUntil(lambda: "new.conf" not in _names(model, model.index_for_path("/etc")), timeout=5000)
    assert not resets
    del etc


def test_many_new_rows_arrive_sorted(qtbot: Any, strata: Strata, images: Any, new_model: MakeModel) -> None:
    strata.create("app:1", name="c2")
    diff = strata.container_diff_dir("c2")
    source = FileSource(CONTAINER, "c2")
    model = new_model()
    checked(model)
    model.set_snapshot(open_snapshot(strata, source))
    _load(qtbot, model)
    (diff / "many").mkdir()
    _load(qtbot, model, "/")
    model.update_snapshot(open_snapshot(strata, source), ["/many"])
    qtbot.waitUntil(lambda: model.node_for_path("/many") is not None, timeout=5000)
    _load(qtbot, model, "/many")
    for i in range(200, 0, -1):
        (diff / "many" / f"f{i:03d}").write_bytes(b"x")
    model.update_snapshot(open_snapshot(strata, source), ["/many/f001"])
    expected = [f"f{i:03d}" for i in range(1, 201)]
    qtbot.waitUntil(lambda: _names(model, model.index_for_path("/many")) == expected, timeout=5000)
