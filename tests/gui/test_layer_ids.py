"""The window names a layer by the id ``strata tree`` prints for it (issue 14).

The layer tree, the inspector, a layer's browser tab and the file browser's Layer column
all show the chain id abbreviated as the CLI abbreviates it, so a layer seen in the window
is found in the terminal and back; the random directory id is never shown as its name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex

from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import IMAGE, FileSource
from explorer.gui.models.file_tree_model import Col as FileCol
from explorer.gui.models.layer_tree_model import Col, Role
from tests.fixtures import run_strata

DOCKERFILE = "FROM scratch\nCOPY a /a\nCOPY b /etc/b\nCOPY a /srv/a\n"
TREE_LINE = re.compile(r"^[│├└─ ]*([0-9a-f]{12})  ")


def _built(tmp_path: Path, store_root: Path) -> list[str]:
    """Build a three-layer image with the real command; the ids its tree prints, top last."""
    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "a").write_text("a\n")
    (context / "b").write_text("b\n")
    run_strata("build", "-t", "shop:1", context, root=store_root, check=True)
    lines = run_strata("tree", root=store_root, check=True).stdout.splitlines()
    ids = []
    for line in lines:
        found = TREE_LINE.match(line)
        assert found, f"a line of strata tree without an id: {line!r}"
        ids.append(found.group(1))
    return ids


def test_the_layer_tree_shows_the_ids_strata_tree_prints(
    qtbot: Any, window: MainWindow, store_root: Path, tmp_path: Path
) -> None:
    cli_ids = _built(tmp_path, store_root)
    assert len(cli_ids) == 3
    with qtbot.waitSignal(window.refreshed, timeout=10000):
        window.refresh()
    model = window.layer_view.model
    shown: list[str] = []
    nodes = []
    parent = QModelIndex()
    while model.rowCount(parent):
        assert model.rowCount(parent) == 1  # one image: a trunk without branches
        index = model.index(0, Col.LAYER, parent)
        shown.append(model.data(index))
        nodes.append(model.data(index, Role.NODE))
        parent = model.index(0, 0, parent)
    assert shown == cli_ids
    # the directory id is something else, and none of the names shown is taken from it
    assert all(node.layer_id[:12] not in cli_ids for node in nodes)

    top = nodes[-1]
    window.layer_view.select_layer(top.layer_id)
    qtbot.waitUntil(lambda: window.inspector.subject == ("layer", top.layer_id), timeout=5000)
    assert window.inspector.heading.text() == f"<b>Layer</b> {cli_ids[2]}"

    window.layer_view.browseLayer.emit(top)
    browser = window.browsers()[0]
    assert window.tabs.tabText(window.tabs.indexOf(browser)) == f"layer {cli_ids[2]}"

    image = window.open_browser(FileSource(IMAGE, "shop:1"))
    image.reveal("/srv/a")
    qtbot.waitUntil(lambda: image.current_path() == "/srv/a", timeout=5000)
    srv = image.model.index_for_path("/srv/a")
    assert image.model.data(image.model.index(srv.row(), FileCol.LAYER, srv.parent())) == f"2 · {cli_ids[2]}"
    etc = image.model.index_for_path("/etc")
    assert image.model.data(image.model.index(etc.row(), FileCol.LAYER, etc.parent())) == f"1 · {cli_ids[1]}"
