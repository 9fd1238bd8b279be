"""The layer tree: shared steps share a trunk; refreshes merge without a reset."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex

from explorer.api import Strata
from explorer.gui.models.layer_tree_model import Col, LayerTreeModel, Role
from tests.gui.modeltest import checked
from tests.gui.storekit import BASE, add_image, two_images_sharing_steps


def test_two_builds_that_share_steps_share_a_trunk(strata: Strata, qapp: Any) -> None:
    two_images_sharing_steps(strata)
    model = LayerTreeModel()
    checked(model)
    model.set_forest(strata.layer_tree())
    assert model.rowCount() == 1  # one base layer
    base = model.index(0, 0)
    assert model.data(base).startswith("ADD file:rootfs")
    assert model.rowCount(base) == 1  # the shared "echo one" step
    shared = model.index(0, 0, base)
    assert model.data(shared) == "RUN echo one > /etc/motd"
    assert model.rowCount(shared) == 2  # the two images branch here
    tops = {model.data(model.index(r, Col.TAGS, shared)): model.data(model.index(r, 0, shared)) for r in range(2)}
    assert tops == {"app:1": "RUN rm /tmp/cache.bin && echo a > /app", "app:2": "RUN echo bb > /etc/motd"}
    rm_row = next(r for r in range(2) if model.data(model.index(r, Col.TAGS, shared)) == "app:1")
    assert model.data(model.index(rm_row, Col.CHANGES, shared)) == "+1 ~0 -1"
    assert model.data(model.index(rm_row, Col.SIZE, shared)) == "2 B"


def test_new_build_joins_the_tree_without_reset(strata: Strata, qapp: Any) -> None:
    a, _ = two_images_sharing_steps(strata)
    model = LayerTreeModel()
    checked(model)
    model.set_forest(strata.layer_tree())
    shared_id = strata.store.layers.chain(a.top_layer)[1].id
    held = QPersistentModelIndex(model.index_for_layer(shared_id))
    resets: list[int] = []
    inserted: list[tuple[str, int]] = []
    model.modelReset.connect(lambda: resets.append(1))
    model.rowsInserted.connect(lambda parent, first, last: inserted.append((model.data(parent, Role.LAYER_ID), first)))
    add_image(strata, "app:3", [*BASE, ("/bin/sh -c echo three > /three", {"/three": b"3"})])
    model.set_forest(strata.layer_tree())
    assert not resets
    assert inserted == [(shared_id, 2)]
    assert held.isValid() and model.data(held, Role.LAYER_ID) == shared_id
    assert model.rowCount(QModelIndex(held)) == 3
    strata.rmi(["app:3"])
    model.set_forest(strata.layer_tree())
    assert model.rowCount(QModelIndex(held)) == 2 and not resets


def test_tags_move_with_retag(strata: Strata, qapp: Any) -> None:
    a, _ = two_images_sharing_steps(strata)
    model = LayerTreeModel()
    checked(model)
    model.set_forest(strata.layer_tree())
    changed: list[int] = []
    model.dataChanged.connect(lambda *_: changed.append(1))
    strata.tag("app:1", "app:latest")
    model.set_forest(strata.layer_tree())
    index = model.index_for_layer(a.top_layer)
    assert model.data(model.index(index.row(), Col.TAGS, index.parent())) == "app:1, app:latest"
    assert changed
