"""The Dockerfile tab: the editor, its live diagnostics, and building from it.

Diagnostics re-run a moment after typing stops, off the GUI thread, and a result that
arrives after newer text is dropped. A build saves the file first (the build reads the
context from disk, as docker does), then runs in a worker; its events paint each
instruction's line in the gutter and stream output to the build panel. The events come in
batches (gui/workers.py): a batch updates the gutter's states and goes to the build panel
as one append of all its lines, not a signal and a relayout per line. A failed step
jumps to its line and shows what it printed, in place.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, Qt, QTimer, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ...api.dockerfile import BuildEvent, BuildResult, stage_names
from ...errors import BuildError, DockerfileError, InvalidArgument
from ..context import AppContext
from ..icons import icon
from ..workers import Control, Task, TaskFailure
from .code_editor import CACHED, FAILED, REBUILT, RUNNING, CodeEditor, Mark
from .diagnostics import diagnose
from .highlighter import DockerfileHighlighter, is_dark

DIAGNOSE_DELAY_MS = 300

TEMPLATE = """\
# syntax=docker/dockerfile:1
FROM scratch
COPY . /app
WORKDIR /app
CMD ["/app/start"]
"""


def parse_build_args(text: str) -> dict[str, str]:
    """``A=1 B="two words"`` (spaces, commas or newlines between) → {"A": "1", "B": "two words"}."""
    out: dict[str, str] = {}
    try:
        words = shlex.split(text.replace(",", " "))
    except ValueError as e:
        raise InvalidArgument(f"build args: {e}; write them as NAME=value NAME2=value") from e
    for word in words:
        name, eq, value = word.partition("=")
        if not name or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidArgument(f"build arg {word!r}: write it as NAME=value")
        out[name] = value if eq else ""
    return out


@dataclass
class BuildRun:
    """What the editor knows about the build it started."""

    task: Task
    outputs: dict[int, list[str]] = field(default_factory=dict)  # line → output of that step
    vertices: dict[int, int] = field(default_factory=dict)  # build-wide step number → its line
    last_line: int = 0
    failed_line: int = 0
    result: BuildResult | None = None


class DockerfileEditor(QWidget):
    titleChanged = Signal(str)
    output = Signal(str)  # build output for the bottom panel: one or more lines, joined by "\n"
    buildStarted = Signal()
    buildFinished = Signal(object)
    fileOpened = Signal(str)
    diagnosticsReady = Signal(list)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.path: Path | None = None
        self.context_dir: Path | None = None
        self.run: BuildRun | None = None
        self._diag_generation = 0
        # The status line shows a build's outcome until the text changes: a diagnostics
        # pass that finds nothing must not wipe "built …" (it may finish after the build).
        self._outcome_shown = False
        self._context_changes: set[str] = set()

        self.editor = CodeEditor(self)
        self.highlighter = DockerfileHighlighter(self.editor.document())
        self.editor.setPlainText(TEMPLATE)
        self.editor.document().setModified(False)
        self.editor.setObjectName("dockerfile-editor")

        self._diag_timer = QTimer(self)
        self._diag_timer.setSingleShot(True)
        self._diag_timer.setInterval(DIAGNOSE_DELAY_MS)
        self._diag_timer.timeout.connect(self.run_diagnostics)
        self.editor.textChanged.connect(self._text_changed)
        self.editor.document().modificationChanged.connect(lambda _: self.titleChanged.emit(self.title()))

        # build bar
        self.tag_edit = QLineEdit(self)
        self.tag_edit.setPlaceholderText("tag, e.g. myapp:latest")
        self.tag_edit.setToolTip("Name and tag for the image (-t); several separated by spaces")
        self.args_edit = QLineEdit(self)
        self.args_edit.setPlaceholderText("build args: NAME=value …")
        self.args_edit.setToolTip("Build arguments (--build-arg), NAME=value separated by spaces")
        self.target_box = QComboBox(self)
        self.target_box.setEditable(True)
        self.target_box.setToolTip("Target stage (--target); empty builds the last stage")
        target_edit = self.target_box.lineEdit()
        if target_edit is not None:
            target_edit.setPlaceholderText("target stage")
        self.target_box.setMinimumContentsLength(10)
        self.no_cache = QCheckBox("No cache", self)
        self.no_cache.setToolTip("Rebuild every step (--no-cache)")
        self.build_button = QPushButton(icon("build"), "Build", self)
        self.build_button.setToolTip("Build this Dockerfile (Ctrl+B)")
        self.build_button.clicked.connect(self.build)
        self.cancel_button = QPushButton(icon("cancel"), "Cancel", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_build)
        self.context_label = QLabel(self)
        self.context_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.context_button = QToolButton(self)
        self.context_button.setIcon(icon("folder"))
        self.context_button.setToolTip("Choose the build context folder")
        self.context_button.clicked.connect(self._choose_context)

        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.tag_edit, 3)
        bar.addWidget(self.args_edit, 3)
        bar.addWidget(self.target_box, 2)
        bar.addWidget(self.no_cache)
        bar.addWidget(self.build_button)
        bar.addWidget(self.cancel_button)
        ctxbar = QHBoxLayout()
        ctxbar.setContentsMargins(0, 0, 0, 0)
        ctxbar.addWidget(QLabel("Context:", self))
        ctxbar.addWidget(self.context_label, 1)
        ctxbar.addWidget(self.context_button)

        # inline messages: diagnostics summary, build status, the failed step's output
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.failure_output = QPlainTextEdit(self)
        self.failure_output.setReadOnly(True)
        self.failure_output.setFont(self.editor.font())
        self.failure_output.setVisible(False)
        self.failure_output.setMaximumHeight(180)

        split = QSplitter(Qt.Orientation.Vertical, self)
        split.addWidget(self.editor)
        split.addWidget(self.failure_output)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addLayout(ctxbar)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)

        self._file_watch = QFileSystemWatcher(self)
        self._file_watch.fileChanged.connect(self._file_changed_on_disk)
        self._update_context_label()
        self._refresh_targets()
        self.run_diagnostics()

    # --- title and files ---------------------------------------------------------------------

    def title(self) -> str:
        name = self.path.name if self.path else "Untitled Dockerfile"
        if self.path and self.path.name == "Dockerfile" and self.path.parent.name:
            name = f"{self.path.parent.name}/Dockerfile"
        return name + (" •" if self.is_modified() else "")

    def is_modified(self) -> bool:
        return self.editor.document().isModified()

    def text(self) -> str:
        return self.editor.toPlainText()

    def set_text(self, text: str) -> None:
        """Replace the text as an edit (undoable, marks the file modified)."""
        cursor = self.editor.textCursor()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)

    def open_file(self, path: str | Path) -> bool:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            self._say(f"cannot open {p}: {e.strerror}", error=True)
            return False
        text = data.decode("utf-8", "replace")
        self.editor.setPlainText(text)
        self.editor.document().setModified(False)
        self._set_path(p)
        if self.context_dir is None or not self.context_dir.is_dir():
            self.context_dir = p.parent
        self._update_context_label()
        self.fileOpened.emit(str(p))
        self.titleChanged.emit(self.title())
        return True

    def _set_path(self, path: Path) -> None:
        if self._file_watch.files():
            self._file_watch.removePaths(self._file_watch.files())
        self.path = path.absolute()
        self._file_watch.addPath(str(self.path))

    def set_context(self, directory: str | Path) -> None:
        self.context_dir = Path(directory).absolute()
        self._context_changes.clear()
        self._update_context_label()

    def _update_context_label(self) -> None:
        text = str(self.context_dir) if self.context_dir else "(the Dockerfile's folder, once saved)"
        if self._context_changes:
            n = len(self._context_changes)
            text += f"   — {n} file{'s' if n != 1 else ''} changed since the last build"
        self.context_label.setText(text)

    def _choose_context(self) -> None:
        start = str(self.context_dir or (self.path.parent if self.path else Path.home()))
        chosen = QFileDialog.getExistingDirectory(self, "Build context", start)
        if chosen:
            self.set_context(chosen)

    def context_changed(self, paths: Iterable[str]) -> None:
        """The watcher saw files change in the build context."""
        for p in paths:
            if self.path is not None and Path(p) == self.path:
                continue
            self._context_changes.add(p)
        self._update_context_label()

    def _file_changed_on_disk(self, path: str) -> None:
        """Another program rewrote the open file: follow it unless there are unsaved edits."""
        p = Path(path)
        if not p.exists():
            return
        if p not in [Path(f) for f in self._file_watch.files()]:
            self._file_watch.addPath(path)
        if self.is_modified():
            self._say(f"{p.name} changed on disk; saving will overwrite those changes", error=True)
            return
        try:
            text = p.read_text("utf-8", "replace")
        except OSError:
            return
        if text != self.text():
            cursor = self.editor.textCursor().position()
            self.editor.setPlainText(text)
            self.editor.document().setModified(False)
            c = self.editor.textCursor()
            c.setPosition(min(cursor, len(text)))
            self.editor.setTextCursor(c)

    def save(self) -> bool:
        if self.path is None:
            return self.save_as()
        return self._write(self.path)

    def save_as(self) -> bool:
        start = str(self.path or (self.context_dir or Path.home()) / "Dockerfile")
        chosen, _ = QFileDialog.getSaveFileName(self, "Save Dockerfile", start)
        if not chosen:
            return False
        ok = self._write(Path(chosen))
        if ok and self.context_dir is None:
            self.set_context(Path(chosen).parent)
        return ok

    def _write(self, path: Path) -> bool:
        try:
            if self._file_watch.files():
                self._file_watch.removePaths(self._file_watch.files())
            tmp = path.with_name(f".{path.name}.strata-tmp")
            tmp.write_text(self.text(), "utf-8")
            tmp.replace(path)
        except OSError as e:
            self._say(f"cannot save {path}: {e.strerror}", error=True)
            return False
        self._set_path(path)
        self.editor.document().setModified(False)
        self.fileOpened.emit(str(path))
        self.titleChanged.emit(self.title())
        self._say(f"saved {path}")
        return True

    def maybe_close(self) -> bool:
        """Ask about unsaved changes; False when the user chose to stay."""
        if self.run is not None:
            answer = QMessageBox.question(self, "Build running", "A build is running from this tab. Cancel it?")
            if answer != QMessageBox.StandardButton.Yes:
                return False
            self.cancel_build()
        if not self.is_modified():
            return True
        answer = QMessageBox.warning(
            self,
            "Unsaved changes",
            f"Save the changes to {self.title().rstrip(' •')}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    # --- diagnostics -------------------------------------------------------------------------

    def _text_changed(self) -> None:
        self._outcome_shown = False
        self._diag_timer.start()

    def run_diagnostics(self) -> None:
        self._diag_generation += 1
        generation = self._diag_generation
        text = self.text()

        def work(_: Control) -> list[Mark]:
            return diagnose(text)

        def done(marks: Any) -> None:
            if generation != self._diag_generation:
                return  # the text moved on
            self.editor.set_marks(marks)
            self._refresh_targets()
            if self.run is None:
                errors = sum(1 for m in marks if m.severity == "error")
                if marks:
                    first = marks[0]
                    self._say(
                        f"line {first.line}: {first.message}"
                        + (f" (and {len(marks) - 1} more)" if len(marks) > 1 else ""),
                        error=errors > 0,
                    )
                elif not self._outcome_shown:
                    self._say("")
            self.diagnosticsReady.emit(marks)

        self.ctx.submit("check Dockerfile", work, on_result=done, visible=False, cancellable=False, owner=self)

    def _refresh_targets(self) -> None:
        current = self.target_box.currentText()
        names = stage_names(self.text())
        if [self.target_box.itemText(i) for i in range(self.target_box.count())] != ["", *names]:
            self.target_box.blockSignals(True)
            self.target_box.clear()
            self.target_box.addItems(["", *names])
            self.target_box.setEditText(current)
            self.target_box.blockSignals(False)

    # --- building ----------------------------------------------------------------------------

    def build(self) -> None:
        if self.run is not None:
            return
        if (self.is_modified() or self.path is None) and not self.save():
            return
        assert self.path is not None
        context = self.context_dir or self.path.parent
        try:
            build_args = parse_build_args(self.args_edit.text())
        except InvalidArgument as e:
            self._say(str(e), error=True)
            return
        tags = tuple(self.tag_edit.text().split())
        target = self.target_box.currentText().strip() or None
        no_cache = self.no_cache.isChecked()
        dockerfile = str(self.path)
        self.editor.clear_steps()
        self.failure_output.setVisible(False)
        self._context_changes.clear()
        self._update_context_label()

        def work(control: Control) -> Any:
            return self.ctx.api().build(
                str(context),
                dockerfile=dockerfile,
                tags=tags,
                build_args=build_args,
                target=target,
                no_cache=no_cache,
                on_event=control.emit,
                cancel=control.cancel_event,
            )

        title = f"build {tags[0] if tags else self.title().rstrip(' •')}"
        task = self.ctx.submit(
            title,
            work,
            on_result=self._build_done,
            on_error=self._build_failed,
            on_events=self._build_events,
            owner=self,
        )
        self.run = BuildRun(task)
        self.build_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self._say(f"building {self.path.name} in {context} …")
        self.output.emit(
            f"━━ build {dockerfile} (context {context}"
            + (f", tags {' '.join(tags)}" if tags else "")
            + (", no cache" if no_cache else "")
            + (f", target {target}" if target else "")
            + ")"
        )
        self.buildStarted.emit()

    def cancel_build(self) -> None:
        if self.run is not None:
            self.run.task.cancel()
            self._say("cancelling the build …")

    def _build_events(self, events: list[BuildEvent]) -> None:
        """A batch of the build's events: gutter states per event, the log lines all at once."""
        run = self.run
        if run is None:
            return
        lines: list[str] = []
        for event in events:
            self._build_event(run, event, lines)
        if lines:
            self.output.emit("\n".join(lines))

    def _build_event(self, run: BuildRun, event: BuildEvent, lines: list[str]) -> None:
        status, line, step, total = event.status, event.line, event.step, event.total
        instruction = event.instruction
        where = f"[{step}/{total}] " if total else ""
        vertex = event.vertex
        if line and vertex:
            run.vertices[vertex] = line
        elif not line and vertex in run.vertices:
            line = run.vertices[vertex]
        if status == "running":
            run.last_line = line or run.last_line
            if line:
                self.editor.set_step(line, RUNNING, f"{where}running: {instruction}")
            lines.append(f"#{vertex or step} {where}{instruction}")
        elif status == "cached":
            if line:
                self.editor.set_step(line, CACHED, f"{where}cached — the step's inputs did not change")
            lines.append(f"#{vertex or step} {where}CACHED {instruction}")
        elif status == "done":
            reason = event.reason or ""
            took = f" in {event.duration_s:.1f}s" if event.duration_s is not None else ""
            tip = f"{where}rebuilt{took}"
            if reason:
                tip += f"\nwhy the cache missed: {reason}"
            if line:
                self.editor.set_step(line, REBUILT, tip)
            lines.append(f"#{vertex or step} DONE{took}" + (f"  (cache miss: {reason})" if reason else ""))
        elif status == "output":
            text = event.output or event.message or ""
            target_line = line or run.last_line
            run.outputs.setdefault(target_line, []).append(text)
            lines.extend(f"#{vertex or step} {piece}" for piece in text.rstrip("\n").split("\n"))
        elif status == "error":
            message = event.message or "step failed"
            run.failed_line = line or run.last_line
            if run.failed_line:
                self.editor.set_step(run.failed_line, FAILED, f"{where}failed: {message}")
            if event.output:
                run.outputs.setdefault(run.failed_line, []).append(event.output)
            lines.append(f"#{vertex or step} ERROR {message}")
        elif status == "finished":
            image = event.image or ""
            tags = event.tags
            lines.append(f"━━ built {image[:19]}" + (f" tagged {', '.join(tags)}" if tags else ""))

    def _build_done(self, result: BuildResult) -> None:
        run = self.run
        self._end_build()
        image, tags = result.image_id, result.tags
        self._say(f"built {image.removeprefix('sha256:')[:12]}" + (f", tagged {', '.join(tags)}" if tags else ""))
        self._outcome_shown = True
        if run is not None:
            run.result = result
        self.ctx.store_touched.emit()
        self.buildFinished.emit(result)

    def _build_failed(self, failure: TaskFailure) -> None:
        run = self.run
        self._end_build()
        if failure.cancelled:
            self._say("build cancelled", error=True)
            self._outcome_shown = True
            self.output.emit("━━ build cancelled")
            self.buildFinished.emit(failure)
            return
        err = failure.error
        line = (err.line if isinstance(err, DockerfileError | BuildError) else 0) or (run.failed_line if run else 0)
        self._say(f"build failed: {failure.message}", error=True)
        self._outcome_shown = True
        self.output.emit(f"━━ build failed: {failure.message}")
        if failure.details:
            self.output.emit(failure.details)
        if line:
            if run is None or line not in self.editor.steps or self.editor.steps[line].state != FAILED:
                self.editor.set_step(line, FAILED, failure.message)
            self.editor.go_to_line(line)
            output = "".join(run.outputs.get(line, [])) if run else ""
            self.failure_output.setPlainText(output or failure.message)
            self.failure_output.setVisible(True)
        self.ctx.store_touched.emit()
        self.buildFinished.emit(failure)

    def _end_build(self) -> None:
        self.run = None
        self.build_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    # --- helpers -------------------------------------------------------------------------------

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        if error:
            color = "#f47067" if is_dark(self.palette()) else "#cf222e"
            self.status.setStyleSheet(f"color: {color};")
        else:
            self.status.setStyleSheet("")

    def set_dark(self, dark: bool) -> None:
        self.highlighter.set_dark(dark)
