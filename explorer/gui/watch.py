"""watchdog → debounced Qt signals that say *what* changed.

The store is watched where things change, not everywhere: the root (``metadata.db`` and
its WAL: any image, container, volume or cache change made by any process), the
``containers/`` and ``volumes/`` folders (one appears or goes), each container's ``diff``
and each volume's ``_data`` recursively (files written by a running container or another
program), and the open build context. Layer directories are never watched: they do not
change once committed, and a 100,000-file image would cost as many inotify watches.

Setting the watches up is a walk: finding the containers and volumes, and inotify's
recursive watch adds one watch per directory below each root (watchdog does that walk in
the thread that schedules the watch). So the set-up runs as a task on the context's pool,
one pass at a time, at start and after every store change, and never on the GUI thread.

inotify's watches are a per-user budget (``fs.inotify.max_user_watches``) that other
programs spend too. A root that cannot be watched (ENOSPC, or EMFILE when the instances
run out) is polled instead — a stat walk of that root every ``poll_seconds`` — and the
window says so (``statusChanged``). watchdog raises for the root of a watch but leaves a
sub-folder it could not watch unwatched without a word, so after each recursive watch a
probe asks the kernel whether the budget is spent; if it is, that root is polled too.

Events arrive on watchdog's threads and are queued into the GUI thread, collected for a
short window, then emitted once per subject with the paths inside it, so a burst of
writes becomes one refresh of the rows it touched.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
from watchdog.observers.polling import PollingObserver

from .context import AppContext
from .workers import Control, TaskFailure

DEBOUNCE_MS = 150
POLL_SECONDS = 2.0
_IGNORED = {"opened", "closed_no_write"}
# errno → (what ran out, the sysctl that sets it)
_LIMITS = {
    errno.ENOSPC: ("watch", "fs.inotify.max_user_watches"),
    errno.EMFILE: ("instance", "fs.inotify.max_user_instances"),
}


class _Handler(FileSystemEventHandler):
    def __init__(self, emit: SignalInstance) -> None:
        super().__init__()
        self._emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's entries changed: each entry reports itself
        created_dir = event.is_directory and event.event_type in ("created", "moved")
        self._emit.emit(str(event.src_path), created_dir and not event.dest_path)
        if event.dest_path:
            self._emit.emit(str(event.dest_path), created_dir)


def inotify_full(path: str) -> bool:
    """Whether this user's inotify watch budget is spent now: one watch tried on a fresh
    instance of our own, then dropped. False when that cannot be told (no inotify, or no
    instance left: that case shows itself as EMFILE when a watch is scheduled)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = int(libc.inotify_init1(os.O_CLOEXEC))
    except (OSError, AttributeError):
        return False
    if fd < 0:
        return False
    try:
        wd = int(libc.inotify_add_watch(fd, os.fsencode(path), 0x400))  # IN_DELETE_SELF
        return wd < 0 and ctypes.get_errno() == errno.ENOSPC
    finally:
        os.close(fd)


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys", *name.split(".")).read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True)
class WatchReport:
    """What one set-up pass left in place, for the GUI thread."""

    watched: frozenset[str]  # roots inotify reports on
    polled: frozenset[str]  # roots polled because inotify ran out
    limit: int = 0  # the errno that sent roots to polling (ENOSPC, EMFILE), 0 when none did
    limit_value: str = ""  # what the sysctl for that limit says
    problems: tuple[str, ...] = ()  # roots not watched at all, and why


@dataclass
class _Watches:
    """The observers and their watches; touched by the set-up task and ``stop`` under ``lock``."""

    inotify: BaseObserver
    polling: BaseObserver | None = None
    watched: dict[str, ObservedWatch] = field(default_factory=dict)
    polled: dict[str, ObservedWatch] = field(default_factory=dict)
    limit: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopped: bool = False


class StoreWatcher(QObject):
    storeChanged = Signal()
    containerFilesChanged = Signal(str, list)
    volumeFilesChanged = Signal(str, list)
    contextChanged = Signal(str, list)
    statusChanged = Signal(str)  # the status bar's line about live refresh; "" when all is watched
    synced = Signal(object)  # a set-up pass is done: its WatchReport
    _raw = Signal(str, bool)  # a path, and whether it is a directory that appeared

    def __init__(
        self,
        root: str | os.PathLike[str],
        ctx: AppContext,
        debounce_ms: int = DEBOUNCE_MS,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        super().__init__(ctx)
        self.root = Path(root).absolute()
        self.ctx = ctx
        self.poll_seconds = poll_seconds
        self._watches: _Watches | None = None
        self._context: Path | None = None
        self._pending: set[str] = set()
        self._new_dirs: set[str] = set()
        self._sync_running = False
        self._sync_again = False
        self._recheck: set[str] = set()
        self.report = WatchReport(frozenset(), frozenset())
        self.status = ""
        self._reported: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._flush)
        self._raw.connect(self._collect)
        self._handler = _Handler(self._raw)

    @property
    def running(self) -> bool:
        return self._watches is not None

    def start(self) -> bool:
        """Start observing; the watches themselves are set up by a task (``synced`` says when)."""
        if self._watches is not None:
            return True
        observer = Observer()
        observer.daemon = True
        observer.start()
        self._watches = _Watches(observer)
        self.sync_targets()
        return True

    def stop(self) -> None:
        watches, self._watches = self._watches, None
        if watches is None:
            return
        with watches.lock:  # a set-up pass in flight finishes its current root first
            watches.stopped = True
            observers = [o for o in (watches.inotify, watches.polling) if o is not None]
            watches.watched.clear()
            watches.polled.clear()
        for observer in observers:
            with contextlib.suppress(Exception):
                observer.stop()
        for observer in observers:
            with contextlib.suppress(Exception):
                observer.join(2)

    # --- what is watched ---------------------------------------------------------------------

    def targets(self, context: Path | None = None) -> dict[str, bool]:
        """path → recursive, from the store layout. A walk of the store: never on the GUI thread."""
        out: dict[str, bool] = {}
        if self.root.is_dir():
            out[str(self.root)] = False
        for sub in ("containers", "volumes"):
            d = self.root / sub
            if d.is_dir():
                out[str(d)] = False
        with contextlib.suppress(OSError):
            for c in (self.root / "containers").iterdir():
                for sub in ("diff", "rootfs"):  # rootfs: a vfs container's files
                    if (c / sub).is_dir():
                        out[str(c / sub)] = True
        with contextlib.suppress(OSError):
            for v in (self.root / "volumes").iterdir():
                if (v / "_data").is_dir():
                    out[str(v / "_data")] = True
        if context is not None and context.is_dir():
            out[str(context)] = True
        return out

    def sync_targets(self, recheck: set[str] | None = None) -> None:
        """Watch what exists now (new containers and volumes in, removed ones out), in a task;
        requests arriving while one pass runs fold into one more. ``recheck``: watched roots
        where folders appeared, whose new watches may not have fitted in the budget."""
        if self._watches is None:
            return
        self._recheck |= recheck or set()
        if self._sync_running:
            self._sync_again = True
            return
        self._sync_running = True
        watches, context, again = self._watches, self._context, self._recheck
        self._recheck = set()

        def work(_: Control) -> WatchReport:
            return self._sync(watches, self.targets(context), again)

        self.ctx.submit(
            "watch the store for changes",
            work,
            on_result=self._synced,
            on_error=self._sync_failed,
            cancellable=False,
            visible=False,
            owner=self,
        )

    def set_context(self, directory: str | os.PathLike[str] | None) -> None:
        self._context = Path(directory).absolute() if directory else None
        self.sync_targets()

    def _sync(self, w: _Watches, wanted: dict[str, bool], recheck: set[str]) -> WatchReport:
        """One set-up pass, on a worker thread: schedule and unschedule until the watches
        match ``wanted``; roots inotify has no room for go to polling."""
        problems: list[str] = []
        with w.lock:
            if w.stopped:
                return WatchReport(frozenset(), frozenset())
            for table, observer in ((w.watched, w.inotify), (w.polled, w.polling)):
                for path in [p for p in table if p not in wanted]:
                    with contextlib.suppress(Exception):  # its folder went away with it
                        assert observer is not None
                        observer.unschedule(table.pop(path))
                    table.pop(path, None)
            for path, recursive in wanted.items():
                if path in w.watched or path in w.polled:
                    continue
                try:
                    w.watched[path] = w.inotify.schedule(self._handler, path, recursive=recursive)
                except OSError as e:
                    if e.errno in _LIMITS:
                        w.limit = e.errno or 0
                        self._poll(w, path, recursive)
                    elif e.errno != errno.ENOENT:  # ENOENT: it went away since the walk
                        problems.append(f"{path}: {e.strerror or e}")
                    continue
                if recursive and inotify_full(path):
                    self._to_polling(w, path)
            for path in sorted(recheck):
                if path in w.watched and inotify_full(path):
                    self._to_polling(w, path)
            limit = w.limit if w.polled else 0
            return WatchReport(
                frozenset(w.watched),
                frozenset(w.polled),
                limit,
                _sysctl(_LIMITS[limit][1]) if limit else "",
                tuple(problems),
            )

    def _to_polling(self, w: _Watches, path: str) -> None:
        """watchdog skipped what did not fit in the budget below this root: poll all of it instead."""
        with contextlib.suppress(Exception):
            w.inotify.unschedule(w.watched.pop(path))
        w.limit = errno.ENOSPC
        self._poll(w, path, True)

    def _poll(self, w: _Watches, path: str, recursive: bool) -> None:
        if w.polling is None:
            w.polling = PollingObserver(timeout=self.poll_seconds)
            w.polling.daemon = True
            w.polling.start()
        try:
            w.polled[path] = w.polling.schedule(self._handler, path, recursive=recursive)
        except OSError:
            pass  # gone since the walk

    def _synced(self, report: WatchReport) -> None:
        self._sync_running = False
        if self._watches is None:
            return
        self.report = report
        status = ""
        if report.limit:
            what, sysctl = _LIMITS[report.limit]
            status = (
                f"live refresh: inotify {what} limit reached ({sysctl}={report.limit_value}); "
                f"polling changed roots every {self.poll_seconds:g}s"
            )
        if status != self.status:
            self.status = status
            self.statusChanged.emit(status)
        for problem in report.problems:
            if problem not in self._reported:  # once, not at every pass
                self._reported.add(problem)
                self.ctx.message.emit("error", f"live refresh cannot watch {problem}")
        self.synced.emit(report)
        if self._sync_again or self._recheck:
            self._sync_again = False
            self.sync_targets()

    def _sync_failed(self, failure: TaskFailure) -> None:
        self._sync_running = False
        self.ctx.message.emit("error", f"live refresh: cannot set up the watches: {failure.message}")
        if self._sync_again:
            self._sync_again = False
            self.sync_targets()

    # --- events ------------------------------------------------------------------------------

    def _collect(self, path: str, new_dir: bool) -> None:
        self._pending.add(path)
        if new_dir:
            self._new_dirs.add(path)
        if not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        paths, self._pending = self._pending, set()
        new_dirs, self._new_dirs = self._new_dirs, set()
        store = False
        containers: dict[str, set[str]] = {}
        volumes: dict[str, set[str]] = {}
        context: set[str] = set()
        resync = False
        root = str(self.root)
        for path in paths:
            if self._context is not None and (
                path == str(self._context) or path.startswith(str(self._context) + os.sep)
            ):
                context.add(path)
                continue
            if not path.startswith(root + os.sep):
                continue
            parts = path[len(root) + 1 :].split(os.sep)
            head = parts[0]
            if head.startswith("metadata.db"):
                store = True
            elif head == "containers" and len(parts) >= 2:
                if len(parts) >= 3 and parts[2] in ("diff", "rootfs"):
                    inner = "/" + "/".join(parts[3:])
                    containers.setdefault(parts[1], set()).add(inner)
                elif len(parts) == 2:
                    resync = True
            elif head == "volumes" and len(parts) >= 2:
                if len(parts) >= 3 and parts[2] == "_data":
                    inner = "/" + "/".join(parts[3:])
                    volumes.setdefault(parts[1], set()).add(inner)
                elif len(parts) == 2:
                    resync = True
        recheck = {r for r in self.report.watched for d in new_dirs if d.startswith(r + os.sep)}
        if resync or store or recheck:
            self.sync_targets(recheck)
        if store or resync:
            self.storeChanged.emit()
        for cid, inner_paths in containers.items():
            self.containerFilesChanged.emit(cid, sorted(inner_paths))
        for name, inner_paths in volumes.items():
            self.volumeFilesChanged.emit(name, sorted(inner_paths))
        if context and self._context is not None:
            self.contextChanged.emit(str(self._context), sorted(context))
