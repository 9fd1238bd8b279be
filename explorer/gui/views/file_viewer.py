"""Looking at one file: text with colours where they fit, hex for binary, images as images.

Content is read in a worker (at most ``LIMIT`` bytes; the rest is noted, never loaded).
In a container the text can be edited and saved: the write goes through the API, which
copies the file up into the container's layer, so its status becomes "modified". An edit
is never saved behind the user's back: whoever wants to show another file (or close the
view) asks first, as editors do (``ask_about_edit``), and a save that fails keeps the edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, Signal
from PySide6.QtGui import QImageReader, QPixmap
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from .. import fmt
from ..context import AppContext
from ..editor.code_editor import CodeEditor
from ..editor.highlighter import DockerfileHighlighter, GenericHighlighter, is_dark, language_for
from ..export import read_head
from ..icons import icon
from ..models.file_source import DELETED, FileRow, Snapshot
from ..workers import Control, TaskFailure

LIMIT = 4 << 20
HEX_LIMIT = 64 << 10


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(head) - 4  # a cut multi-byte character at the end is fine
    return False


def hexdump(data: bytes, limit: int = HEX_LIMIT) -> str:
    lines = []
    for off in range(0, min(len(data), limit), 16):
        chunk = data[off : off + 16]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{off:08x}  {hexes[:23]:<23}  {hexes[24:]:<23}  |{text}|")
    return "\n".join(lines)


class FileViewer(QWidget):
    saved = Signal(str)  # the path written

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.row: FileRow | None = None
        self.snapshot: Snapshot | None = None
        self.writer: Callable[[str, bytes], None] | None = None
        self.read_only_why = ""
        self._generation = 0
        self._truncated = False
        self._saving = False
        self._after_save: list[Callable[[], object]] = []

        self.title = QLabel(self)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info = QLabel(self)
        self.info.setWordWrap(True)
        self.edit_button = QPushButton(icon("edit"), "Edit", self)
        self.edit_button.setCheckable(True)
        self.edit_button.toggled.connect(self._toggle_edit)
        self.save_button = QPushButton(icon("save"), "Save", self)
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton("Revert", self)
        self.revert_button.clicked.connect(self.reload)
        for b in (self.edit_button, self.save_button, self.revert_button):
            b.setVisible(False)

        self.text = CodeEditor(self)
        self.text.setReadOnly(True)
        self.text.document().modificationChanged.connect(self._modified)
        self._highlighter: Any = None
        self.hex = QPlainTextEdit(self)
        self.hex.setReadOnly(True)
        self.hex.setFont(self.text.font())
        self.hex.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.picture = QLabel(self)
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea(self)
        scroll.setWidget(self.picture)
        scroll.setWidgetResizable(True)
        self.message = QLabel(self)
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.stack = QStackedWidget(self)
        for w in (self.message, self.text, self.hex, scroll):
            self.stack.addWidget(w)

        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.title, 1)
        top.addWidget(self.edit_button)
        top.addWidget(self.save_button)
        top.addWidget(self.revert_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.info)
        layout.addWidget(self.stack, 1)
        self.show_message("Select a file to see its content.")

    # --- showing -------------------------------------------------------------------------

    def show_message(self, text: str) -> None:
        self.row = None
        self.title.setText("")
        self.info.setText("")
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self._buttons(False)

    def show_row(
        self,
        snapshot: Snapshot,
        row: FileRow,
        writer: Callable[[str, bytes], None] | None = None,
        read_only_why: str = "",
    ) -> None:
        """``writer`` makes the file editable; without one, ``read_only_why`` says why not.
        A pending edit is the caller's to settle first (``ask_about_edit``)."""
        self.snapshot = snapshot
        self.row = row
        self.writer = writer
        self.read_only_why = read_only_why
        self.edit_button.setChecked(False)
        self.title.setText(f"<b>{row.path}</b>")
        owner = snapshot.owner(row.uid, row.gid)
        bits = [row.type, fmt.mode(row.type, row.mode), owner]
        if row.type == "file":
            bits.append(fmt.size(row.size))
        if row.status:
            bits.append(row.status)
        layer = snapshot.layer_label(row.layer)
        if layer:
            bits.append(f"from layer {layer}")
        self.info.setText(" · ".join(bits))
        if row.status == DELETED:
            self._show_text_message("This path is deleted in this layer (a whiteout hides it).")
            return
        if row.type == "dir":
            self._show_text_message("A directory: expand it in the tree.")
            return
        if row.type == "symlink":
            self._show_text_message(f"A symbolic link to {row.link}.")
            return
        if row.type not in ("file", "hardlink"):
            self._show_text_message(f"A {row.type}: nothing to show.")
            return
        self.reload()

    def _show_text_message(self, text: str) -> None:
        self.message.setText(text)
        self.stack.setCurrentWidget(self.message)
        self._buttons(False)

    def reload(self) -> None:
        row, snap = self.row, self.snapshot
        if row is None or snap is None:
            return
        self._generation += 1
        generation = self._generation
        path = row.path
        found = snap.view_for(path)
        if found is None:
            self._show_text_message(f"{path} is in a tmpfs: it has content only while the container runs.")
            return
        view, inner = found
        self.message.setText("Loading …")
        self.stack.setCurrentWidget(self.message)

        def work(_: Control) -> tuple[bytes, int]:
            return read_head(view, inner, LIMIT)

        def done(result: Any) -> None:
            if generation == self._generation:
                self._show_content(path, *result)

        def failed(failure: TaskFailure) -> None:
            if generation == self._generation:
                self._show_text_message(f"Cannot read {path}: {failure.message}")

        self.ctx.submit(f"read {path}", work, on_result=done, on_error=failed, visible=False, owner=self)

    def _show_content(self, path: str, data: bytes, size: int) -> None:
        self._truncated = size > len(data)
        note = f"  (showing the first {fmt.size(len(data))} of {fmt.size(size)})" if self._truncated else ""
        if self._is_image(path, data):
            pix = QPixmap()
            pix.loadFromData(data)
            if not pix.isNull():
                self.picture.setPixmap(pix)
                self.info.setText(self.info.text() + f" · {pix.width()}x{pix.height()} image")
                self.stack.setCurrentIndex(3)
                self._buttons(False)
                return
        if looks_binary(data):
            self.hex.setPlainText(hexdump(data))
            shown = min(len(data), HEX_LIMIT)
            if size > shown:
                self.info.setText(self.info.text() + f" · binary, first {fmt.size(shown)} shown")
            self.stack.setCurrentWidget(self.hex)
            self._buttons(False)
            return
        language = language_for(path, data[:64])
        if self._highlighter is not None:
            self._highlighter.setDocument(None)
        self._highlighter = (
            DockerfileHighlighter(self.text.document())
            if language == "dockerfile"
            else GenericHighlighter(self.text.document(), language)
        )
        self.text.setPlainText(data.decode("utf-8", "replace"))
        self.text.document().setModified(False)
        self.text.setReadOnly(True)
        if note:
            self.info.setText(self.info.text() + note)
        self.stack.setCurrentWidget(self.text)
        self._buttons(self.writer is not None and not self._truncated)

    @staticmethod
    def _is_image(path: str, data: bytes) -> bool:
        lower = path.lower()
        if not lower.endswith((".png", ".jpg", ".jpeg", ".gif", ".bmp", ".svg", ".ico", ".webp", ".xpm")):
            return False
        buf = QBuffer()
        buf.setData(QByteArray(data))
        buf.open(QIODevice.OpenModeFlag.ReadOnly)
        return bool(QImageReader(buf).canRead())

    # --- editing -----------------------------------------------------------------------------

    def _buttons(self, editable: bool) -> None:
        self.edit_button.setVisible(editable)
        self.save_button.setVisible(editable)
        self.revert_button.setVisible(editable)
        self.save_button.setEnabled(False)
        self.revert_button.setEnabled(False)
        if not editable and self.snapshot is not None and not self.snapshot.source.writable and self.row:
            self.text.setToolTip("Files in image layers are read-only")
        elif not editable and self.row is not None and self.read_only_why:
            self.text.setToolTip(self.read_only_why)
        else:
            self.text.setToolTip("")

    def _toggle_edit(self, on: bool) -> None:
        self.text.setReadOnly(not on)
        if on:
            self.text.setFocus()

    def _modified(self, changed: bool) -> None:
        self.save_button.setEnabled(changed)
        self.revert_button.setEnabled(changed)

    def is_dirty(self) -> bool:
        """An edit not yet written (turning Edit off does not drop it)."""
        return self.writer is not None and self.row is not None and self.text.document().isModified()

    @property
    def saving(self) -> bool:
        return self._saving

    def ask_about_edit(self, leaving: str) -> QMessageBox.StandardButton:
        """Save, Discard or Cancel for the pending edit, before ``leaving`` ("open …", "close …")."""
        path = self.row.path if self.row is not None else ""
        return QMessageBox.warning(
            self,
            "Unsaved changes",
            f"{path} has changes that are not saved in the container.\n\nSave them before you {leaving}?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Save,
        )

    def discard(self) -> None:
        """Drop the pending edit: the file shows as it is in the container again."""
        self.text.document().setModified(False)
        self.edit_button.setChecked(False)
        if self.row is not None and self.snapshot is not None:
            self.reload()

    def save(self, then: Callable[[], object] | None = None) -> None:
        """Write the edit in a worker; ``then`` runs once it is written (never when the
        write fails: the edit stays, with the error above it)."""
        if then is not None:
            self._after_save.append(then)
        if self._saving:
            return  # the running save calls ``then`` too
        if self.row is None or self.writer is None:
            self._run_after_save()
            return
        path = self.row.path
        data = self.text.toPlainText().encode("utf-8")
        writer = self.writer
        generation = self._generation
        self._saving = True

        def work(_: Control) -> None:
            writer(path, data)

        def done(_: Any) -> None:
            self._saving = False
            if generation == self._generation and self.text.toPlainText().encode("utf-8") == data:
                self.text.document().setModified(False)
                self.edit_button.setChecked(False)
            self.saved.emit(path)
            self._run_after_save()

        def failed(failure: TaskFailure) -> None:
            self._saving = False
            self._after_save.clear()
            self.info.setText(
                f"<span style='color:{'#f47067' if is_dark() else '#cf222e'}'>"
                f"Cannot save {path}: {failure.message}</span>"
            )

        self.ctx.submit(f"save {path}", work, on_result=done, on_error=failed, cancellable=False, owner=self)

    def _run_after_save(self) -> None:
        waiting, self._after_save = self._after_save, []
        for then in waiting:
            then()
