"""Dragging files out of the file browser onto the desktop, without stopping the window.

The desktop wants host paths, and the files live in a union view: they have to be
written somewhere first, and a directory can be big. So the copy starts as a task (shown
with the other operations in the status bar, with a cancel) the moment the drag starts,
while the user is still moving the mouse. The drag's data is this ``DragExport``: it
names ``text/uri-list`` at once and hands the URLs over only when the drop target asks for
them — if the copy is still running then, it waits for it in a local event loop, so the
window keeps painting and the cancel stays within reach. A drag that ends nowhere, a
cancel and a failure take the half-written copy away again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QByteArray, QEventLoop, QMetaType, QMimeData, QUrl, Signal

from .context import AppContext
from .workers import Control, Task, TaskFailure

URI_LIST = "text/uri-list"


class DragExport(QMimeData):
    """The data of a drag whose files are still being written by a task."""

    settled = Signal()  # the copy finished, failed or was cancelled

    def __init__(
        self,
        ctx: AppContext,
        title: str,
        export: Callable[[Control], list[str]],
        on_failure: Callable[[TaskFailure], None],
    ) -> None:
        """``on_failure`` is called however the drag ended, also after Qt deleted this object
        with its drag: it is where the half-written copy goes away."""
        super().__init__()
        self._paths: list[str] | None = None
        self._failure: TaskFailure | None = None
        self.task = Task(title, export)
        # everything connected before the task starts: a small copy may finish at once
        self.task.signals.succeeded.connect(self._written)
        self.task.signals.failed.connect(self._failed)
        self.task.signals.failed.connect(on_failure)
        ctx.runner.start(self.task)

    @property
    def done(self) -> bool:
        return self._paths is not None or self._failure is not None

    @property
    def failure(self) -> TaskFailure | None:
        return self._failure

    def cancel(self) -> None:
        """The drag ended without a drop: stop the copy (``on_failure`` cleans up after it)."""
        self.task.cancel()

    def _written(self, paths: list[str]) -> None:
        self._paths = paths
        self.settled.emit()

    def _failed(self, failure: TaskFailure) -> None:
        self._failure = failure
        self.settled.emit()

    def paths(self) -> list[str]:
        """The files written, once they all are; [] when the copy failed or was cancelled.
        Waits in a local event loop: the window stays live meanwhile."""
        if not self.done:
            loop = QEventLoop()
            self.settled.connect(loop.quit)
            loop.exec()
        return list(self._paths or [])

    # --- QMimeData ---------------------------------------------------------------------------

    def formats(self) -> list[str]:
        return [URI_LIST]

    def hasFormat(self, mimetype: str) -> bool:
        return mimetype == URI_LIST

    def retrieveData(self, mimetype: str, preferredType: Any) -> Any:
        """Asked by the drop target (and by ``urls()``): the URI list, when the copy is done."""
        if mimetype != URI_LIST:
            return None
        urls = [QUrl.fromLocalFile(p) for p in self.paths()]
        if isinstance(preferredType, QMetaType) and preferredType.id() == QMetaType.Type.QByteArray.value:
            # what a desktop drop asks for: the list as text, one URL a line
            return QByteArray(b"".join(bytes(u.toEncoded().data()) + b"\r\n" for u in urls))
        return urls  # what urls() asks for
