"""Starting the window: the QApplication, the palette, the context, the watcher.

``run_app`` shows the window before it reads anything from the store (the first read
runs in a worker right after), so the window appears fast however big the store is.
An exception escaping a slot is a bug; it is shown in a dialog with its details rather
than printed to the console.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QMessageBox

from ..api import Strata
from .context import AppContext
from .icons import app_icon
from .main_window import MainWindow
from .watch import StoreWatcher

APP_NAME = "Strata"
ORG_NAME = "Strata"


def application(argv: list[str] | None = None) -> QApplication:
    """The one QApplication (created on first use), named so QSettings finds its file."""
    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(argv if argv is not None else [sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(ORG_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setDesktopFileName("strata")
    app.setWindowIcon(app_icon())
    follow_color_scheme(app)
    return app


def _dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor("#1e1f22"), QColor("#2b2d30"), QColor("#dfe1e5")
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor("#26282b"))
    p.setColor(QPalette.ColorRole.ToolTipBase, window)
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor("#7f848e"))
    p.setColor(QPalette.ColorRole.Button, window)
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor("#ff6b6b"))
    p.setColor(QPalette.ColorRole.Highlight, QColor("#2f65ca"))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor("#ffffff"))
    p.setColor(QPalette.ColorRole.Link, QColor("#58a6ff"))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6b6f76"))
    return p


def follow_color_scheme(app: QApplication) -> None:
    """Use the desktop's light or dark scheme. Platform themes (GNOME, KDE) already hand
    Qt a matching palette; where none does, a dark desktop still gets a dark palette."""
    hints = app.styleHints()
    if getattr(hints, "colorScheme", None) is None:
        return

    def apply() -> None:
        scheme = hints.colorScheme()
        palette_dark = app.palette().color(QPalette.ColorRole.Window).lightness() < 128
        if scheme == Qt.ColorScheme.Dark and not palette_dark:
            app.setStyle("Fusion")
            app.setPalette(_dark_palette())
            app.setProperty("strataDarkPalette", True)
        elif scheme == Qt.ColorScheme.Light and app.property("strataDarkPalette"):
            # only undo what we did; a palette the platform chose is the platform's business
            app.setPalette(app.style().standardPalette())
            app.setProperty("strataDarkPalette", False)

    if not app.property("strataSchemeHooked"):
        hints.colorSchemeChanged.connect(lambda _: apply())
        app.setProperty("strataSchemeHooked", True)
    apply()


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """A bug in a slot: tell the user in the window, keep the window alive."""
    details = "".join(traceback.format_exception(kind, value, tb))
    app = QApplication.instance()
    if app is None:
        sys.__excepthook__(kind, value, tb)
        return
    box = QMessageBox(
        QMessageBox.Icon.Critical,
        "Strata",
        f"Internal error ({kind.__name__}: {value}). This is a bug in Strata; the details below help to report it.",
    )
    box.setDetailedText(details)
    box.open()


def settle_gc() -> None:
    """Keep the cycle collector from pausing the window.

    A full collection walks every tracked object, and with PySide and the app loaded that
    is a few hundred thousand of them: a pause of 50 to 250 ms whenever it runs, from
    whichever thread allocated last. What exists once the window is up lives as long as
    the window, so it is moved out of the collector's sight (``gc.freeze``).
    """
    gc.collect()
    gc.freeze()


def create_window(root: str | None = None, settings: QSettings | None = None, watch: bool = True) -> MainWindow:
    """The window over a store, not yet shown (tests call this; ``run_app`` shows it)."""
    application()
    strata = Strata(root)
    ctx = AppContext(strata, settings)
    watcher = StoreWatcher(strata.root, ctx) if watch else None
    window = MainWindow(ctx, watcher)
    return window


def run_app(root: str | None = None, files: Sequence[str | os.PathLike[str]] = ()) -> int:
    """The window over ``root``; ``files`` (from the command line or the desktop entry)
    open once it is up: Dockerfiles and folders in the editor, archives are loaded."""
    app = application()
    sys.excepthook = _excepthook
    window = create_window(root)
    window.show()

    def after_show() -> None:
        settle_gc()
        window.refresh()
        if files:
            window.open_paths([Path(f) for f in files])
        if window.watcher is not None:
            try:
                window.watcher.start()
            except OSError as e:
                window.ctx.message.emit("error", f"live refresh is off: cannot watch the store ({e.strerror})")

    QTimer.singleShot(0, after_show)
    code = app.exec()
    window.ctx.strata.close()
    return int(code)
