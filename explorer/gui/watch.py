"""watchdog → debounced Qt signals that say *what* changed.

The store is watched where things change, not everywhere: the root (``metadata.db`` and
its WAL: any image, container, volume or cache change made by any process), the
``containers/`` and ``volumes/`` folders (one appears or goes), each container's ``diff``
and each volume's ``_data`` recursively (files written by a running container or another
program), and the open build context. Layer directories are never watched: they do not
change once committed, and a 100,000-file image would cost as many inotify watches.

Events arrive on watchdog's thread and are queued into the GUI thread, collected for a
short window, then emitted once per subject with the paths inside it, so a burst of
writes becomes one refresh of the rows it touched.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

DEBOUNCE_MS = 150
_IGNORED = {"opened", "closed_no_write"}


class _Handler(FileSystemEventHandler):
    def __init__(self, emit: Any) -> None:
        super().__init__()
        self._emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED:
            return
        if event.is_directory and event.event_type == "modified":
            return  # a directory's entries changed: each entry reports itself
        self._emit(str(event.src_path))
        dest = getattr(event, "dest_path", "")
        if dest:
            self._emit(str(dest))


class StoreWatcher(QObject):
    storeChanged = Signal()
    containerFilesChanged = Signal(str, list)
    volumeFilesChanged = Signal(str, list)
    contextChanged = Signal(str, list)
    _raw = Signal(str)

    def __init__(
        self, root: str | os.PathLike[str], parent: QObject | None = None, debounce_ms: int = DEBOUNCE_MS
    ) -> None:
        super().__init__(parent)
        self.root = Path(root).absolute()
        self._observer: Any = None
        self._watches: dict[str, Any] = {}  # path → watch handle
        self._context: Path | None = None
        self._pending: set[str] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(debounce_ms)
        self._timer.timeout.connect(self._flush)
        self._raw.connect(self._collect)
        self._handler = _Handler(self._raw.emit)

    @property
    def running(self) -> bool:
        return self._observer is not None

    def start(self) -> bool:
        if self._observer is not None:
            return True
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self.sync_targets()
        return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        self._watches.clear()
        if observer is not None:
            with contextlib.suppress(Exception):
                observer.stop()
                observer.join(2)

    # --- what is watched ---------------------------------------------------------------------

    def targets(self) -> dict[str, bool]:
        """path → recursive, from the store layout."""
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
        if self._context is not None and self._context.is_dir():
            out[str(self._context)] = True
        return out

    def sync_targets(self) -> None:
        """Watch what exists now: new containers and volumes in, removed ones out."""
        if self._observer is None:
            return
        wanted = self.targets()
        for path in list(self._watches):
            if path not in wanted:
                with contextlib.suppress(Exception):
                    self._observer.unschedule(self._watches.pop(path))
                self._watches.pop(path, None)
        for path, recursive in wanted.items():
            if path in self._watches:
                continue
            with contextlib.suppress(OSError, Exception):
                self._watches[path] = self._observer.schedule(self._handler, path, recursive=recursive)

    def set_context(self, directory: str | os.PathLike[str] | None) -> None:
        self._context = Path(directory).absolute() if directory else None
        self.sync_targets()

    # --- events ------------------------------------------------------------------------------

    def _collect(self, path: str) -> None:
        self._pending.add(path)
        if not self._timer.isActive():
            self._timer.start()

    def _flush(self) -> None:
        paths, self._pending = self._pending, set()
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
        if resync or store:
            self.sync_targets()
        if store or resync:
            self.storeChanged.emit()
        for cid, inner_paths in containers.items():
            self.containerFilesChanged.emit(cid, sorted(inner_paths))
        for name, inner_paths in volumes.items():
            self.volumeFilesChanged.emit(name, sorted(inner_paths))
        if context and self._context is not None:
            self.contextChanged.emit(str(self._context), sorted(context))
