"""GUI test fixtures: an offscreen Qt, a store with known images, the window over it.

Qt must never need a display here: QT_QPA_PLATFORM is set to offscreen before anything
imports Qt (the suite's conftest does the same; this keeps ``pytest tests/gui`` alone
right too). Settings go to a file under the test's tmp dir, never the user's.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from explorer.api import Strata


@pytest.fixture(scope="session", autouse=True)
def fork_server() -> Iterator[None]:
    """As ``strata`` does before the window's threads: forks from worker threads (starts,
    RUN steps, cp) go through the one-threaded fork server (runtime/forking.py)."""
    from explorer.runtime import forking

    forking.ensure_server()
    yield
    forking.stop_server()


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    return root


@pytest.fixture
def strata(store_root: Path) -> Iterator[Strata]:
    s = Strata(store_root)
    yield s
    s.close()


@pytest.fixture
def settings(tmp_path: Path, qapp: Any) -> Any:
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "strata-test.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def ctx(strata: Strata, settings: Any) -> Iterator[Any]:
    from explorer.gui.context import AppContext

    context = AppContext(strata, settings)
    yield context
    context.shutdown()


@pytest.fixture
def window(ctx: Any, qtbot: Any) -> Iterator[Any]:
    """The main window with its first store read done; no watcher (tests that need one
    start their own)."""
    from explorer.gui.main_window import MainWindow

    win = MainWindow(ctx, None)
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.refreshed, timeout=10000):
        win.refresh()
    yield win
    for editor in win.editors():
        editor.editor.document().setModified(False)
    ctx.runner.cancel_all()
    ctx.runner.wait(5000)


def wait_tasks(qtbot: Any, ctx: Any, timeout: int = 10000) -> None:
    """Until no task runs (queued results delivered too)."""
    qtbot.waitUntil(lambda: not ctx.runner.active, timeout=timeout)
