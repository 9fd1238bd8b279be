"""Background work: tasks on a thread pool reporting back through queued signals.

The window must never wait on the store: every call that can touch the disk runs as a
``Task`` on the context's ``QThreadPool``. A task's signals object lives in the GUI
thread, so emitting from the worker queues the call into the event loop. Cancellation is
cooperative: the task's ``threading.Event`` is passed to the backend (``build`` takes it
directly) and progress callbacks raise ``Cancelled`` once it is set, which stops
``load``/``save`` between two steps.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from ..errors import Cancelled, StrataError


class TaskSignals(QObject):
    progress = Signal(str)  # a line of progress text
    fraction = Signal(float)  # 0..1, or -1 for "busy, no estimate"
    backend_event = Signal(object)  # a backend event record (BuildEvent …)
    succeeded = Signal(object)  # the function's result
    failed = Signal(object)  # a TaskFailure
    done = Signal()  # always last, after succeeded/failed


@dataclass
class TaskFailure:
    """What went wrong, ready for a dialog: one line for the user, details for a bug report."""

    message: str
    cancelled: bool = False
    error: BaseException | None = None
    details: str = ""

    @classmethod
    def from_exception(cls, err: BaseException) -> TaskFailure:
        if isinstance(err, Cancelled):
            return cls(str(err), cancelled=True, error=err)
        if isinstance(err, StrataError):
            return cls(str(err), error=err)
        if isinstance(err, OSError) and err.strerror:
            where = f"{err.filename}: " if err.filename else ""
            return cls(f"{where}{err.strerror}", error=err)
        details = "".join(traceback.format_exception(err))
        return cls(f"internal error ({type(err).__name__}: {err}); this is a bug in Strata", error=err, details=details)


class Control:
    """Handed to a task's function: progress reporting and the cancel flag."""

    def __init__(self, signals: TaskSignals, cancel: threading.Event) -> None:
        self._signals = signals
        self.cancel_event = cancel

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self, what: str = "operation") -> None:
        if self.cancel_event.is_set():
            raise Cancelled(what)

    def progress(self, text: str) -> None:
        """A progress line; also the point where a cancel takes effect for callback-style APIs."""
        self.check()
        self._signals.progress.emit(text)

    def fraction(self, value: float) -> None:
        self._signals.fraction.emit(value)

    def emit(self, event: object) -> None:
        self._signals.backend_event.emit(event)


_ids = itertools.count(1)


class Task(QRunnable):
    """One unit of background work. ``fn(control)`` runs on a pool thread."""

    def __init__(
        self, title: str, fn: Callable[[Control], Any], cancellable: bool = True, visible: bool = True
    ) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.title = title
        self.fn = fn
        self.cancellable = cancellable
        self.visible = visible  # shown in the status bar's task indicator
        self.id = next(_ids)
        self.signals = TaskSignals()
        self.cancel_event = threading.Event()
        self.control = Control(self.signals, self.cancel_event)
        self.started_at = 0.0
        self.running = False
        self.finished = False
        self.last_progress = ""
        self.signals.progress.connect(self._remember)

    def _remember(self, text: str) -> None:
        self.last_progress = text

    def cancel(self) -> None:
        self.cancel_event.set()

    def run(self) -> None:
        self.started_at = time.monotonic()
        self.running = True
        try:
            if self.cancel_event.is_set():
                raise Cancelled(self.title)
            result = self.fn(self.control)
        except BaseException as err:  # every failure becomes a signal, never a console traceback
            self.running = False
            self.finished = True
            self._emit_safely(self.signals.failed, TaskFailure.from_exception(err))
        else:
            self.running = False
            self.finished = True
            self._emit_safely(self.signals.succeeded, result)
        self._emit_safely(self.signals.done)

    @staticmethod
    def _emit_safely(signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:
            pass  # the window closed while we worked


class TaskRunner(QObject):
    """Starts tasks and keeps the ones running, for the status bar and for cancel-all at exit."""

    changed = Signal()

    def __init__(self, pool: QThreadPool | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool or QThreadPool(self)
        # Threads keep their per-thread SQLite connection; never let them expire and leak it.
        self.pool.setExpiryTimeout(-1)
        if self.pool.maxThreadCount() < 4:
            self.pool.setMaxThreadCount(4)
        self.active: dict[int, Task] = {}

    def start(self, task: Task) -> Task:
        self.active[task.id] = task
        task.signals.done.connect(lambda tid=task.id: self._finished(tid))
        task.signals.progress.connect(self.changed)
        self.pool.start(task)
        self.changed.emit()
        return task

    def submit(
        self,
        title: str,
        fn: Callable[[Control], Any],
        *,
        on_result: Callable[[Any], None] | None = None,
        on_error: Callable[[TaskFailure], None] | None = None,
        on_event: Callable[[Any], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
        cancellable: bool = True,
        visible: bool = True,
    ) -> Task:
        task = Task(title, fn, cancellable, visible)
        if on_result is not None:
            task.signals.succeeded.connect(on_result)
        if on_error is not None:
            task.signals.failed.connect(on_error)
        if on_event is not None:
            task.signals.backend_event.connect(on_event)
        if on_progress is not None:
            task.signals.progress.connect(on_progress)
        return self.start(task)

    def _finished(self, task_id: int) -> None:
        self.active.pop(task_id, None)
        self.changed.emit()

    def visible_tasks(self) -> list[Task]:
        return [t for t in self.active.values() if t.visible]

    def cancel_all(self) -> None:
        for task in list(self.active.values()):
            task.cancel()

    def wait(self, msecs: int = 5000) -> bool:
        return bool(self.pool.waitForDone(msecs))
