"""Make resources/screenshot.png from a real session: ``python -m tests.gui.screenshot [OUT]``.

A busybox base is imported, then a Dockerfile is built twice from the editor: the second
build, after a change to the app's files, reuses the cached steps and rebuilds the rest,
so the gutter shows both and the two images share a trunk in the layer tree. Nothing is
staged by hand: the figures, ids and marks are what the window shows. The picture is two
grabs of the same window a moment apart (the editor tab, then the layer tree tab), one
above the other.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QApplication

from explorer.gui.app import application, create_window
from explorer.gui.main_window import MainWindow
from tests.fixtures.images import busybox_rootfs, write_rootfs_tar

REPO = Path(__file__).resolve().parents[2]
SIZE = (1400, 780)

DOCKERFILE = """\
# syntax=docker/dockerfile:1
FROM busybox:1.36 AS app
WORKDIR /srv/app
COPY requirements.txt ./
RUN mkdir -p /srv/lib && cp requirements.txt /srv/lib/installed.txt
COPY app/ ./
ARG VERSION=1.0
RUN echo "shop $VERSION" > VERSION && chmod +x run.sh
ENV PORT=8080
EXPOSE 8080
CMD ["/srv/app/run.sh"]
"""


def wait(app: QApplication, done: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not done():
        if time.monotonic() > end:
            raise TimeoutError(f"{what}: not done after {timeout:.0f} s")
        app.processEvents()
        time.sleep(0.005)


def build(app: QApplication, window: MainWindow, tag: str, version: str) -> None:
    editor = window.editors()[0]
    editor.tag_edit.setText(tag)
    editor.args_edit.setText(f"VERSION={version}")
    finished: list[object] = []
    editor.buildFinished.connect(finished.append)
    editor.build()
    wait(app, lambda: bool(finished), f"build {tag}")
    editor.buildFinished.disconnect(finished.append)
    if hasattr(finished[0], "cancelled"):
        raise RuntimeError(f"build failed: {getattr(finished[0], 'message', finished[0])}")


def main(out: Path) -> None:
    app = application()
    work = Path(tempfile.mkdtemp(prefix="strata-shot-"))
    root = work / "store"
    base = write_rootfs_tar(busybox_rootfs(work / "rootfs"), work / "busybox.tar")
    context = work / "shop"
    (context / "app").mkdir(parents=True)
    (context / "requirements.txt").write_text("flask==3.0\ngunicorn==22.0\n")
    (context / "app" / "run.sh").write_text('#!/bin/sh\nexec httpd -f -p "$PORT" -h /srv/app/static\n')
    (context / "app" / "static").mkdir()
    (context / "app" / "static" / "index.html").write_text("<h1>shop</h1>\n")
    (context / "Dockerfile").write_text(DOCKERFILE)

    settings = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = create_window(str(root), settings=settings, watch=False)
    strata = window.ctx.strata
    strata.import_rootfs(str(base), "busybox:1.36", message="busybox rootfs")
    window.resize(*SIZE)
    window.show()
    window.resizeDocks([window.sidebar_dock, window.inspector_dock], [230, 330], Qt.Orientation.Horizontal)
    window.resizeDocks([window.bottom_dock], [190], Qt.Orientation.Vertical)
    refreshed: list[object] = []
    window.refreshed.connect(refreshed.append)
    window.refresh()
    wait(app, lambda: bool(refreshed), "first refresh")

    window.open_editor(context / "Dockerfile", context)
    build(app, window, "shop:1.0", "1.0")
    # the app changes; its requirements do not: the first steps come from the cache
    (context / "app" / "static" / "index.html").write_text("<h1>shop</h1>\n<p>now with a cart</p>\n")
    build(app, window, "shop:1.1", "1.1")
    strata.create("shop:1.1", name="shop-web")
    strata.volume_create("shop-data")
    refreshed.clear()
    window.refresh()
    wait(app, lambda: bool(refreshed), "refresh after the builds")
    editor = window.editors()[0]
    window.tabs.setCurrentWidget(editor)
    editor.editor.go_to_line(6)
    # the output panel opens at the last build's first rebuilt step, whose line says why
    output = window.output
    lines = output.toPlainText().split("\n")
    start = max(i for i, line in enumerate(lines) if line.startswith("━━ build"))
    first_miss = next((i for i in range(start, len(lines)) if "cache miss" in lines[i]), start)
    output.verticalScrollBar().setValue(max(0, first_miss - 2))
    for _ in range(20):
        app.processEvents()
    top = window.grab()

    window.tabs.setCurrentWidget(window.layer_view)
    window.layer_view.select_image_top("shop:1.1")
    wait(app, lambda: window.layer_view.current_node() is not None, "selecting shop:1.1 in the layer tree")
    time.sleep(0.3)
    for _ in range(40):
        app.processEvents()
        time.sleep(0.01)
    bottom = window.grab()

    gap = 6
    picture = QPixmap(top.width(), top.height() + gap + bottom.height())
    picture.setDevicePixelRatio(top.devicePixelRatio())
    picture.fill(QColor("#888888"))
    painter = QPainter(picture)
    painter.drawPixmap(0, 0, top)
    painter.drawPixmap(0, int((top.height() + gap) / top.devicePixelRatio()), bottom)
    painter.end()
    if not picture.save(str(out), "PNG"):
        raise OSError(f"cannot write {out}")
    print(f"wrote {out} ({picture.width()}x{picture.height()})")
    window.close()
    strata.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "resources" / "screenshot.png")
