"""Progress of a pull or push, as plain events for the CLI and the GUI.

One event per change of a layer's state, and while bytes move at most ``TICK_S`` apart
per layer. Events of one operation are delivered one at a time (never concurrently),
though not always from the calling thread: a GUI adapts them to queued signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import Cancelled

TICK_S = 0.1

# Layer states, in the words docker prints.
WAITING = "waiting"  # "Waiting"
EXISTS = "exists"  # "Already exists" / "Layer already exists"
DOWNLOADING = "downloading"  # "Downloading"
COPYING = "copying"  # the same content found locally under another parent
COMPLETE = "complete"  # "Pull complete"
PREPARING = "preparing"  # "Preparing"
UPLOADING = "uploading"  # "Pushing"
MOUNTED = "mounted"  # "Mounted from …"
PUSHED = "pushed"  # "Pushed"
# Whole-operation lines (``layer`` is empty): where, which digest, the outcome.
INFO = "info"


@dataclass(frozen=True, slots=True)
class TransferEvent:
    """A layer's progress (``layer`` = the first 12 hex digits of its blob digest) or, with
    ``layer`` empty and ``status`` INFO, a line about the whole operation."""

    layer: str
    status: str
    current: int = 0  # bytes moved so far
    total: int = 0  # bytes expected; 0 when not known yet (a push compresses as it goes)
    rate: float = 0.0  # bytes per second over the transfer so far
    message: str = ""  # the line docker would print for this event

    @property
    def fraction(self) -> float | None:
        return min(self.current / self.total, 1.0) if self.total else None


Progress = Callable[[TransferEvent], None]


def _ignore(_: TransferEvent) -> None:
    pass


class Reporter:
    """Serialises events from worker threads and checks for cancellation."""

    def __init__(self, progress: Progress | None, cancel: threading.Event | None, what: str) -> None:
        self._progress = progress or _ignore
        self._lock = threading.Lock()
        self.cancel = cancel
        self.abort = threading.Event()  # set when a sibling worker failed: stop quietly
        self.what = what

    def emit(self, event: TransferEvent) -> None:
        with self._lock:
            self._progress(event)

    def info(self, message: str) -> None:
        self.emit(TransferEvent("", INFO, message=message))

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled(self.what)
        if self.abort.is_set():
            raise Aborted()

    def meter(self, layer: str, status: str, total: int, message: str) -> Meter:
        return Meter(self, layer, status, total, message)


class Aborted(Exception):
    """A worker stops because another one failed; the first failure is what gets reported."""


class Meter:
    """Bytes of one layer on the move: counts them and emits throttled events."""

    def __init__(self, reporter: Reporter, layer: str, status: str, total: int, message: str) -> None:
        self.reporter = reporter
        self.layer = layer
        self.status = status
        self.total = total
        self.message = message
        self.current = 0
        self.started = time.monotonic()
        self._last = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.current / elapsed if elapsed > 0 else 0.0

    def add(self, n: int) -> None:
        self.current += n
        now = time.monotonic()
        if now - self._last >= TICK_S:
            self._last = now
            self.reporter.emit(
                TransferEvent(self.layer, self.status, self.current, self.total, self.rate, self.message)
            )

    def done(self, status: str, message: str) -> None:
        total = self.total or self.current
        self.reporter.emit(TransferEvent(self.layer, status, self.current, total, self.rate, message))
