"""Background work: tasks on a thread pool reporting back through queued signals.

The window must never wait on the store: every call that can touch the disk runs as a
``Task`` on the context's ``QThreadPool``. A task's signals object lives in the GUI
thread, so emitting from the worker queues the call into the event loop. Cancellation is
cooperative: the task's ``threading.Event`` is passed to the backend (``build`` takes it
directly) and progress callbacks raise ``Cancelled`` once it is set, which stops
``load``/``save`` between two steps.

What a worker reports arrives in batches, not one queued signal per record. A build sends
an event for every line a RUN prints; as one queued call each, a few thousand of them sit
in the event queue and Qt delivers every posted event before it runs a timer or paints,
so the window froze for as long as they took. The worker instead appends to the task's
inbox and wakes the GUI thread only when the inbox was empty; the GUI thread takes what
has gathered at most once a frame (``DELIVERY_INTERVAL_MS``) and at most
``DELIVERY_BATCH`` events at a time, so each delivery is a short slice of the loop.
Progress text and fractions keep only their latest value. The outcome (``succeeded`` or
``failed``, then ``done``) is delivered after the last event, so a result never overtakes
the events before it.
"""

from __future__ import annotations

import itertools
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal

from ..errors import Cancelled, StrataError

DELIVERY_INTERVAL_MS = 16  # a task's reports reach the GUI thread at most once a frame
DELIVERY_BATCH = 500  # backend events handed to the GUI in one slice of the event loop


@dataclass
class _Inbox:
    """What a worker reported and the GUI thread has not taken yet (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    events: deque[object] = field(default_factory=deque)
    progress: str | None = None
    fraction: float | None = None
    outcome: tuple[bool, object] | None = None  # (succeeded, result or TaskFailure)
    woken: bool = False  # a wake-up is on its way to the GUI thread, or a delivery is due


class TaskSignals(QObject):
    """A task's reports, emitted in the GUI thread. The worker posts into an inbox
    (``post_*``); the GUI thread empties it in slices (see the module docstring)."""

    progress = Signal(str)  # the latest line of progress text
    fraction = Signal(float)  # 0..1, or -1 for "busy, no estimate"
    events = Signal(list)  # backend event records (BuildEvent …) in the order sent, a batch at a time
    succeeded = Signal(object)  # the function's result, after every event
    failed = Signal(object)  # a TaskFailure, after every event
    done = Signal()  # always last, after succeeded/failed
    _wake = Signal()  # from the worker: the inbox was empty and is not now

    def __init__(self) -> None:
        super().__init__()
        self._inbox = _Inbox()
        self._last_delivery = 0.0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._deliver)
        self._wake.connect(self._schedule)

    # --- worker side -------------------------------------------------------------------------

    def post_event(self, event: object) -> None:
        with self._inbox.lock:
            self._inbox.events.append(event)
            wake = self._mark_woken()
        if wake:
            _emit_safely(self._wake)

    def post_progress(self, text: str) -> None:
        with self._inbox.lock:
            self._inbox.progress = text
            wake = self._mark_woken()
        if wake:
            _emit_safely(self._wake)

    def post_fraction(self, value: float) -> None:
        with self._inbox.lock:
            self._inbox.fraction = value
            wake = self._mark_woken()
        if wake:
            _emit_safely(self._wake)

    def post_outcome(self, succeeded: bool, value: object) -> None:
        with self._inbox.lock:
            self._inbox.outcome = (succeeded, value)
            wake = self._mark_woken()
        if wake:
            _emit_safely(self._wake)

    def _mark_woken(self) -> bool:
        """Under the lock: whether this post must wake the GUI thread (nobody did yet)."""
        if self._inbox.woken:
            return False
        self._inbox.woken = True
        return True

    # --- GUI side ------------------------------------------------------------------------------

    def pending_events(self) -> int:
        with self._inbox.lock:
            return len(self._inbox.events)

    def _schedule(self) -> None:
        if self._timer.isActive():
            return
        since = (time.monotonic() - self._last_delivery) * 1000
        self._timer.start(max(0, int(DELIVERY_INTERVAL_MS - since)))

    def _deliver(self) -> None:
        inbox = self._inbox
        with inbox.lock:
            batch = [inbox.events.popleft() for _ in range(min(DELIVERY_BATCH, len(inbox.events)))]
            progress, inbox.progress = inbox.progress, None
            fraction, inbox.fraction = inbox.fraction, None
            outcome = None
            if not inbox.events:
                outcome, inbox.outcome = inbox.outcome, None
            more = bool(inbox.events)
            inbox.woken = more
        self._last_delivery = time.monotonic()
        if progress is not None:
            self.progress.emit(progress)
        if fraction is not None:
            self.fraction.emit(fraction)
        if batch:
            self.events.emit(batch)
        if more:
            self._timer.start(0)  # the rest in the next slice, after timers and paints
        if outcome is not None:
            ok, value = outcome
            (self.succeeded if ok else self.failed).emit(value)
            self.done.emit()


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
        self._signals.post_progress(text)

    def fraction(self, value: float) -> None:
        self._signals.post_fraction(value)

    def emit(self, event: object) -> None:
        """A backend event, delivered in order with the others of its batch."""
        self._signals.post_event(event)


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
            self.signals.post_outcome(False, TaskFailure.from_exception(err))
        else:
            self.running = False
            self.finished = True
            self.signals.post_outcome(True, result)


def _emit_safely(signal: Any) -> None:
    try:
        signal.emit()
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
        on_events: Callable[[list[Any]], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
        cancellable: bool = True,
        visible: bool = True,
    ) -> Task:
        task = Task(title, fn, cancellable, visible)
        if on_result is not None:
            task.signals.succeeded.connect(on_result)
        if on_error is not None:
            task.signals.failed.connect(on_error)
        if on_events is not None:
            task.signals.events.connect(on_events)
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
