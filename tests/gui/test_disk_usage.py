"""The Disk usage tab: the figures of `system df`, the chart, and the clean-ups with what
they free worked out before the user is asked."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QModelIndex, QPointF, Qt

from explorer.api import Strata
from explorer.api.usage import CacheUsage, ContainerUsage, DiskUsage, ImageUsage, VolumeUsage
from explorer.gui import cleanup
from explorer.gui.cleanup_dialog import CheckDialog, CleanupDialog, PruneAllDialog
from explorer.gui.main_window import MainWindow
from explorer.gui.models.disk_usage_model import RECLAIMABLE, SHARED, SIZE, UNIQUE, DiskUsageModel, Role
from explorer.gui.views.disk_view import DiskUsageView
from tests.gui.conftest import wait_tasks
from tests.gui.modeltest import checked
from tests.gui.storekit import add_image, add_layer, two_images_sharing_steps

MIB = 1024 * 1024


def _usage() -> DiskUsage:
    """Two images sharing 3 MiB, a dangling one, containers, volumes, cache entries."""
    return DiskUsage(
        images=[
            ImageUsage("sha256:" + "a" * 64, ["app:1"], "", 5 * MIB, 3 * MIB, 2 * MIB, 1),
            ImageUsage("sha256:" + "b" * 64, ["app:2"], "", 4 * MIB, 3 * MIB, 1 * MIB, 0),
            ImageUsage("sha256:" + "c" * 64, [], "", 1 * MIB, 0, 1 * MIB, 0),
        ],
        containers=[
            ContainerUsage("1" * 64, "web", "app:1", "sh", 2 * MIB, "Up 3 seconds", "running", 0.0, 0),
            ContainerUsage("2" * 64, "old", "app:1", "sh", 1 * MIB, "Exited (0) 1 minute ago", "exited", 0.0, 1),
        ],
        volumes=[VolumeUsage("named", 0, 3 * MIB), VolumeUsage("anon", 0, 1 * MIB), VolumeUsage("used", 1, MIB)],
        build_cache=[
            CacheUsage("k1", "RUN a", 2 * MIB, False, 1.0, 1.0),
            CacheUsage("k2", "RUN b", MIB, True, 2.0, 2.0),
            CacheUsage("k3", "COPY c", 3 * MIB, False, 3.0, 3.0),
        ],
        layers_size=7 * MIB,
        images_reclaimable=2 * MIB,
        cache_size=5 * MIB,
        cache_reclaimable=5 * MIB,
    )


class _Vol:
    def __init__(self, name: str, anonymous: bool) -> None:
        self.name = name
        self.anonymous = anonymous


def test_summary_matches_system_df_and_counts_shared_once() -> None:
    rows = cleanup.summarize(_usage())
    images = rows[cleanup.IMAGES]
    assert (images.total, images.active, images.size, images.reclaimable) == (3, 1, 7 * MIB, 2 * MIB)
    assert images.unique == 4 * MIB and images.shared == 3 * MIB  # the shared 3 MiB once, not twice
    containers = rows[cleanup.CONTAINERS]
    assert (containers.total, containers.active, containers.size, containers.reclaimable) == (2, 1, 3 * MIB, MIB)
    volumes = rows[cleanup.VOLUMES]
    assert (volumes.total, volumes.active, volumes.size, volumes.reclaimable) == (3, 1, 5 * MIB, 4 * MIB)
    assert rows[cleanup.CACHE].size == 5 * MIB
    assert cleanup.store_total(rows) == 20 * MIB


def test_running_is_the_api_state_not_the_status_text() -> None:
    """The window decides what a prune removes by the state the API reports, as the prune
    itself does: a status text that reads "Up …" (a container named so, a stale or
    translated text) does not make a stopped container active, nor does a running one
    whose text says something else count as removable."""
    du = DiskUsage(
        containers=[
            ContainerUsage("3" * 64, "looks-up", "app:1", "sh", 4 * MIB, "Up to date", "exited", 0.0, 0),
            ContainerUsage("4" * 64, "busy", "app:1", "sh", 2 * MIB, "Restarting", "running", 0.0, 0),
            ContainerUsage("5" * 64, "new", "app:1", "sh", 1 * MIB, "Created", "created", 0.0, 0),
        ]
    )
    rows = cleanup.summarize(du)
    assert (rows[cleanup.CONTAINERS].active, rows[cleanup.CONTAINERS].reclaimable) == (1, 5 * MIB)
    plan = cleanup.plan_container_prune(du)
    assert [item.split(" ")[0] for item in plan.items] == ["looks-up", "new"] and plan.freed == 5 * MIB


def test_plans_say_what_goes_and_what_it_frees() -> None:
    du = _usage()
    plan = cleanup.plan_container_prune(du)
    assert len(plan.items) == 1 and "old" in plan.items[0] and plan.freed == MIB and plan.exact
    dangling = cleanup.plan_image_prune(du)
    assert len(dangling.items) == 1 and dangling.freed == MIB
    every = cleanup.plan_image_prune(du, all=True)
    assert len(every.items) == 2 and every.freed == 2 * MIB
    vols = [_Vol("named", False), _Vol("anon", True), _Vol("used", True)]
    assert cleanup.plan_volume_prune(du, vols).freed == MIB
    assert cleanup.plan_volume_prune(du, vols, all=True).freed == 4 * MIB
    assert cleanup.plan_cache_prune(du).freed == 5 * MIB and len(cleanup.plan_cache_prune(du).items) == 3
    keep = cleanup.plan_cache_prune(du, keep_storage=3 * MIB)  # the oldest (2 MiB) goes, then 3 MiB remain
    assert keep.freed == 2 * MIB and len(keep.items) == 1
    empty = cleanup.plan_container_prune(DiskUsage())
    assert empty.empty and "Nothing to remove" in empty.headline()
    assert "frees 1.0 MiB" in plan.headline()


def test_disk_usage_model_passes_the_model_tester(qapp: Any) -> None:
    model = DiskUsageModel()
    tester = checked(model)
    du = _usage()
    model.set_usage(du)
    images = model.kind_index(cleanup.IMAGES)
    assert model.rowCount(images) == 3
    assert model.data(model.index(0, SHARED, QModelIndex())) == "3.0 MiB"
    assert model.data(model.index(0, UNIQUE, QModelIndex())) == "4.0 MiB"
    model.sort(SIZE, Qt.SortOrder.DescendingOrder)
    assert [model.data(model.index(r, 0, images)) for r in range(3)] == ["app:1", "app:2", "<none> cccccccccccc"]
    # a refresh: one image gone, one new, one changed; rows merge by key
    du.images = [
        du.images[0],
        ImageUsage("sha256:" + "d" * 64, ["new:1"], "", 9 * MIB, 0, 9 * MIB, 0),
        ImageUsage(du.images[1].id, ["app:2"], "", 4 * MIB, 3 * MIB, MIB, 2),
    ]
    du.containers = []
    model.set_usage(du)
    names = sorted(model.data(model.index(r, 0, images)) for r in range(model.rowCount(images)))
    assert names == ["app:1", "app:2", "new:1"]
    assert model.rowCount(model.kind_index(cleanup.CONTAINERS)) == 0
    row = next(r for r in range(3) if model.data(model.index(r, 0, images)) == "new:1")
    assert model.data(model.index(row, RECLAIMABLE, images)) == "9.0 MiB"
    assert model.data(model.index(row, 0, images), Role.KIND) == cleanup.IMAGES
    del tester


def test_chart_segments_add_up_and_hatch_the_reclaimable(qtbot: Any, ctx: Any) -> None:
    view = DiskUsageView(ctx)
    qtbot.addWidget(view)
    view.resize(800, 500)
    view.show()
    view.set_usage(_usage(), disk_free=100 * MIB, disk_total=200 * MIB)
    chart = view.chart
    segs = chart.segments()
    assert [s.kind for s in segs] == [cleanup.IMAGES, cleanup.CONTAINERS, cleanup.VOLUMES, cleanup.CACHE]
    assert abs(sum(s.rect.width() for s in segs) - chart.bar_rect().width()) < 0.01
    images = segs[0]
    assert abs(images.rect.width() / chart.bar_rect().width() - 7 / 20) < 1e-6
    assert abs(images.reclaim_rect.width() / images.rect.width() - 2 / 7) < 1e-6
    assert "counted once" in chart.tooltip_for(images)
    with qtbot.waitSignal(chart.kindClicked) as clicked:
        qtbot.mouseClick(chart, Qt.MouseButton.LeftButton, pos=segs[2].rect.center().toPoint())
    assert clicked.args == [cleanup.VOLUMES]
    assert chart.segment_at(QPointF(-5, -5)) is None
    chart.grab()  # paints without error


# --- against a real store -----------------------------------------------------------------


@pytest.fixture
def busy_store(strata: Strata) -> dict[str, Any]:
    """Two tagged images sharing a trunk, a dangling one, a stopped container with 4 KiB of
    changes, an anonymous and a named unused volume, a cache-only layer in the build cache."""
    two_images_sharing_steps(strata)
    add_image(strata, None, [("/bin/sh -c #(nop) ADD dangling", {"/d.bin": bytes(8192)})])
    info = strata.create("app:1", name="stopped")
    (strata.container_diff_dir("stopped") / "junk.bin").write_bytes(bytes(4096))
    anon = strata.store.volumes.create(None, anonymous=True)
    (anon.mountpoint / "a.bin").write_bytes(bytes(1000))
    named = strata.volume_create("keepme")
    (named.mountpoint / "n.bin").write_bytes(bytes(3000))
    layer = add_layer(strata, None, "RUN cached", {"/cache.bin": bytes(16384)})
    with strata.store.meta.transaction() as conn:
        conn.execute(
            "INSERT INTO build_cache(key, parent_key, layer, config, instruction, created, last_used) "
            "VALUES (?,?,?,?,?,?,?)",
            ("k" * 64, None, layer.id, json.dumps({}).encode(), "RUN cached", time.time(), time.time()),
        )
    return {"container": info, "anon": anon.name}


def _dialog(qtbot: Any, view: DiskUsageView) -> Any:
    qtbot.waitUntil(lambda: view.dialog is not None and view.dialog.isVisible(), timeout=10000)
    return view.dialog


def test_tab_shows_the_same_figures_as_df(qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any) -> None:
    window.refresh()
    view = window.disk_view
    qtbot.waitUntil(lambda: view.model.rowCount(view.model.kind_index(cleanup.IMAGES)) == 3, timeout=10000)
    du = strata.df()
    rows = cleanup.summarize(du)
    assert view.model.summary == rows
    assert (
        view.chart.total == du.layers_size + rows[cleanup.CONTAINERS].size + rows[cleanup.VOLUMES].size + du.cache_size
    )
    window.show_section("cache")
    assert window.tabs.currentWidget() is view
    assert view.model.data(view.tree.currentIndex(), Role.KIND) == cleanup.CACHE


def test_container_prune_asks_with_the_bytes_then_removes(
    qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any
) -> None:
    view = window.disk_view
    view.cleanup(cleanup.CONTAINERS)
    dialog = _dialog(qtbot, view)
    assert isinstance(dialog, CleanupDialog)
    assert "stopped" in dialog.items.item(0).text()
    assert "frees 4.0 KiB" in dialog.headline.text()
    dialog.accept()
    wait_tasks(qtbot, window.ctx)
    assert strata.containers(all=True) == []
    assert view.last_result[1] == 4096
    assert "4.0 KiB freed" in window.events.toPlainText()


def test_image_prune_all_toggle_recomputes(qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any) -> None:
    view = window.disk_view
    view.cleanup(cleanup.IMAGES)
    dialog = _dialog(qtbot, view)
    dangling = dialog.plan
    assert len(dangling.items) == 1 and dangling.freed == 8192
    assert dialog.check is not None
    dialog.check.setChecked(True)  # -a: app:2 goes too (app:1 has a container)
    assert len(dialog.plan.items) == 2 and dialog.plan.freed > dangling.freed
    expected = dialog.plan.freed
    dialog.accept()
    wait_tasks(qtbot, window.ctx)
    assert {r.repository + ":" + r.tag for r in strata.images()} == {"app:1"}
    assert view.last_result[1] == expected  # what the dialog promised is what went


def test_volume_prune_anonymous_then_all(qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any) -> None:
    view = window.disk_view
    view.cleanup(cleanup.VOLUMES)
    dialog = _dialog(qtbot, view)
    assert len(dialog.plan.items) == 1 and dialog.plan.freed == 1000
    dialog.accept()
    wait_tasks(qtbot, window.ctx)
    assert [v.name for v in strata.volumes()] == ["keepme"]
    window.volumes_view.actions_["prune"].trigger()  # the Volumes tab's Prune goes through the same dialog
    dialog = _dialog(qtbot, view)
    assert dialog.plan.empty and not dialog.ok.isEnabled()
    dialog.check.setChecked(True)
    assert dialog.plan.freed == 3000 and dialog.ok.isEnabled()
    dialog.reject()
    assert [v.name for v in strata.volumes()] == ["keepme"]


def test_cache_prune(qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any) -> None:
    view = window.disk_view
    view.cleanup(cleanup.CACHE)
    dialog = _dialog(qtbot, view)
    assert dialog.spin is not None and dialog.plan.freed == 16384
    dialog.accept()
    wait_tasks(qtbot, window.ctx)
    assert strata.df().build_cache == [] and view.last_result == (1, 16384)


def test_prune_all_stops_between_steps_when_cancelled(
    qtbot: Any, window: MainWindow, strata: Strata, busy_store: Any, monkeypatch: Any
) -> None:
    gate = threading.Event()
    entered = threading.Event()
    real = strata.container_prune

    def slow_container_prune() -> Any:
        entered.set()
        gate.wait(5)
        return real()

    monkeypatch.setattr(strata, "container_prune", slow_container_prune)
    window.ops.prune()  # Store → Prune… lands in the Disk usage tab
    assert window.tabs.currentWidget() is window.disk_view
    view = window.disk_view
    dialog = _dialog(qtbot, view)
    assert isinstance(dialog, PruneAllDialog)
    assert not dialog.boxes["volumes"].isChecked()
    assert "at least" in dialog.total.text()  # removed containers may free their images too
    dialog.accept()
    qtbot.waitUntil(entered.is_set, timeout=5000)
    assert view.strip.isVisible() and view.cancel_button.isEnabled()
    view.cancel()
    gate.set()
    wait_tasks(qtbot, window.ctx)
    assert strata.containers(all=True) == []  # the running step finished
    assert len(strata.images()) == 3  # the next ones never started
    assert "prune: cancelled" in window.events.toPlainText()
    assert not view.strip.isVisible()


def test_check_finds_an_orphan_and_repairs_it(qtbot: Any, window: MainWindow, strata: Strata, store_root: Path) -> None:
    two_images_sharing_steps(strata)
    orphan = store_root / "layers" / "orphan0000"
    (orphan / "diff").mkdir(parents=True)
    (orphan / "diff" / "big.bin").write_bytes(bytes(5000))
    window.cleanup("check")
    view = window.disk_view
    dialog = _dialog(qtbot, view)
    assert isinstance(dialog, CheckDialog)
    assert "1 can be repaired" in dialog.summary.text() and "4.9 KiB" in dialog.summary.text()
    assert dialog.repair.isVisible()
    dialog.repair.click()
    qtbot.waitUntil(
        lambda: view.dialog is not None and view.dialog is not dialog and view.dialog.isVisible(), timeout=10000
    )
    assert not orphan.exists()
    assert "1 repaired" in view.dialog.summary.text() and not view.dialog.repair.isVisible()
    view.dialog.reject()
