"""The one application context handed to every window part: no globals, no registries.

It holds the ``Strata`` API object (typed: views call it directly, nothing is probed
by name), the task runner, the settings and the store watcher.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QSettings, Signal

from ..api import Strata
from .workers import Control, Task, TaskFailure, TaskRunner


class AppContext(QObject):
    """What the window parts share. Created once by ``app.run_app`` (or a test)."""

    # Emitted when any part changed the store itself, so lists refresh without waiting for
    # the watcher (which may be off in tests).
    store_touched = Signal()
    # One line for the events panel: (kind, text). kind is "info", "error" or "event".
    message = Signal(str, str)

    def __init__(
        self,
        strata: Strata,
        settings: QSettings | None = None,
        runner: TaskRunner | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.strata = strata
        self.settings = settings if settings is not None else QSettings("Strata", "Strata")
        self.runner = runner or TaskRunner(parent=self)
        self._open_lock = threading.Lock()
        self._opened = False

    # --- background work -----------------------------------------------------------------

    def api(self) -> Strata:
        """The API object, with its store opened exactly once even when workers race to it."""
        if not self._opened:
            with self._open_lock:
                if not self._opened:
                    _ = self.strata.store
                    self._opened = True
        return self.strata

    def submit(
        self,
        title: str,
        fn: Callable[[Control], Any],
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[TaskFailure], None] | None = None,
        on_events: Callable[[list[Any]], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
        cancellable: bool = True,
        visible: bool = True,
        owner: QObject | None = None,
    ) -> Task:
        """Run ``fn(control)`` off the GUI thread. Without ``on_error`` the failure goes to
        the events panel (a background refresh must not pop dialogs). ``on_events`` gets the
        backend's events in batches (workers.py says why). With an ``owner``, the callbacks
        are dropped once that widget is gone: a result may outlive its view."""

        def report(failure: TaskFailure) -> None:
            if not failure.cancelled:
                self.message.emit("error", f"{title}: {failure.message}")

        return self.runner.submit(
            title,
            fn,
            on_result=_guard(owner, on_result),
            on_error=_guard(owner, on_error or report),
            on_events=_guard(owner, on_events),
            on_progress=_guard(owner, on_progress),
            cancellable=cancellable,
            visible=visible,
        )

    def info(self, text: str) -> None:
        self.message.emit("info", text)

    def shutdown(self) -> None:
        self.runner.cancel_all()
        self.runner.wait(3000)


def _guard(owner: QObject | None, fn: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    if fn is None or owner is None:
        return fn

    def call(value: Any) -> None:
        if shiboken6.isValid(owner):
            fn(value)

    return call
