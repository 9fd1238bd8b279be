"""Responsiveness benchmarks (run with --bench): start-up, a 100,000-file image, live refresh, memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QElapsedTimer, QTimer

from explorer.api import Strata
from explorer.gui.app import settle_gc
from explorer.gui.context import AppContext
from explorer.gui.main_window import MainWindow
from explorer.gui.models.file_source import CONTAINER, IMAGE, FileSource
from explorer.gui.watch import StoreWatcher
from tests.gui.storekit import big_image

pytestmark = pytest.mark.bench

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("big") / "store"
    s = Strata(root)
    big_image(s, "big:1")
    s.create("big:1", name="bigc")
    s.close()
    yield root


class LoopWatch:
    """The longest time the event loop went without running a 1 ms timer."""

    def __init__(self) -> None:
        self.clock = QElapsedTimer()
        self.timer = QTimer()
        self.timer.setInterval(1)
        self.timer.timeout.connect(self._tick)
        self.longest = 0
        self.phase = ""
        self.worst_phase = ""
        self.by_phase: dict[str, int] = {}

    def _tick(self) -> None:
        elapsed = self.clock.restart()
        if elapsed > self.by_phase.get(self.phase, -1):
            self.by_phase[self.phase] = elapsed
        if elapsed > self.longest:
            self.longest = elapsed
            self.worst_phase = self.phase

    def __enter__(self) -> LoopWatch:
        self.clock.start()
        self.timer.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.timer.stop()


def test_window_is_shown_fast(big_root: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        from explorer.gui.app import application, create_window
        app = application()
        window = create_window({str(big_root)!r}, watch=False)
        window.show()
        app.processEvents()
        print("shown", flush=True)
    """)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.monotonic() - started
    proc.wait(30)
    assert line.strip() == "shown"
    report(f"window shown after {elapsed * 1000:.0f} ms")
    assert elapsed < 1.5, f"window shown after {elapsed:.2f} s"


@pytest.fixture
def big_window(qtbot: Any, big_root: Path, settings: Any) -> Iterator[MainWindow]:
    strata = Strata(big_root)
    ctx = AppContext(strata, settings)
    win = MainWindow(ctx, StoreWatcher(strata.root, ctx, debounce_ms=100))
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.refreshed, timeout=20000):
        win.refresh()
    yield win
    if win.watcher is not None:
        win.watcher.stop()
    ctx.shutdown()
    strata.close()


def test_big_image_root_listing_and_scrolling(qtbot: Any, big_window: MainWindow) -> None:
    settle_gc()  # as run_app does once the window is up
    started = time.monotonic()
    browser = big_window.open_browser(FileSource(IMAGE, "big:1"))
    qtbot.waitUntil(lambda: browser.model.rowCount() >= 3, timeout=5000)
    opened = time.monotonic() - started
    report(f"root listing of a 100,000-file image after {opened * 1000:.0f} ms")
    assert opened < 0.3, f"root listing after {opened * 1000:.0f} ms"

    with LoopWatch() as watch:
        watch.phase = "expand"
        browser.tree.expand(browser.index_for_path("/big"))
        qtbot.waitUntil(lambda: browser.model.rowCount(browser.model.index_for_path("/big")) == 10_000, timeout=10000)
        watch.phase = "scroll"
        bar = browser.tree.verticalScrollBar()
        step = max(1, bar.pageStep())
        steps: list[float] = []
        for value in range(0, bar.maximum() + step, step):
            began = time.perf_counter()
            bar.setValue(value)
            qtbot.wait(1)
            steps.append((time.perf_counter() - began) * 1000)
    steps.sort()
    report(
        f"scrolling {len(steps)} pages: median {steps[len(steps) // 2]:.1f} ms a page, "
        f"95th percentile {steps[len(steps) * 95 // 100]:.1f} ms (each with a 1 ms wait)"
    )
    report("longest event-loop block: " + ", ".join(f"{k} {v} ms" for k, v in watch.by_phase.items()))
    assert watch.longest <= 50, f"the event loop was blocked for {watch.longest} ms ({watch.worst_phase})"

    rss = _rss_mb()
    report(f"resident memory {rss:.0f} MB")
    assert rss < 400, f"{rss:.0f} MB resident"


def test_outside_write_shows_in_under_a_second(qtbot: Any, big_window: MainWindow, big_root: Path) -> None:
    assert big_window.watcher is not None
    with qtbot.waitSignal(big_window.watcher.synced, timeout=20000):
        assert big_window.watcher.start()
    strata = big_window.ctx.strata
    info = strata.container("bigc")
    browser = big_window.open_browser(FileSource(CONTAINER, "bigc", ident=info.id))
    qtbot.waitUntil(lambda: browser.model.rowCount() >= 3, timeout=5000)
    started = time.monotonic()
    (strata.container_diff_dir("bigc") / "fresh.txt").write_text("new\n")
    qtbot.waitUntil(lambda: browser.model.index_for_path("/fresh.txt").isValid(), timeout=3000)
    elapsed = time.monotonic() - started
    report(f"outside write shown after {elapsed * 1000:.0f} ms")
    assert elapsed < 1.0, f"shown after {elapsed:.2f} s"


def report(line: str) -> None:
    """A measured figure, on the terminal with ``-s`` (a benchmark's numbers are its point)."""
    print(f"\n[bench] {line}", flush=True)


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0
