"""Small dialogs: errors, text to read, running an image."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from .editor.code_editor import CodeEditor
from .workers import TaskFailure


def error_box(parent: QWidget | None, title: str, failure: TaskFailure | str) -> None:
    """The one way a failure reaches the user outside its own view: one clear line, and for
    bugs the details folded away (never on the console)."""
    if isinstance(failure, str):
        failure = TaskFailure(failure)
    if failure.cancelled:
        return
    box = QMessageBox(QMessageBox.Icon.Critical, title, failure.message, QMessageBox.StandardButton.Ok, parent)
    if failure.details:
        box.setDetailedText(failure.details)
    box.open()


class TextDialog(QDialog):
    """Read-only text (logs, diffs) in a monospace view."""

    def __init__(self, title: str, text: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.resize(760, 480)
        self.view = CodeEditor(self)
        self.view.setReadOnly(True)
        self.view.setPlainText(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addWidget(buttons)


class RunDialog(QDialog):
    """`strata run -d` from the window: an image, a name, a command."""

    def __init__(self, image: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Run {image}")
        self.image = QLineEdit(image, self)
        self.name = QLineEdit(self)
        self.name.setPlaceholderText("generated when empty")
        self.command = QLineEdit(self)
        self.command.setPlaceholderText("the image's CMD when empty")
        self.env = QPlainTextEdit(self)
        self.env.setPlaceholderText("NAME=value, one per line")
        self.env.setMaximumHeight(70)
        self.volumes = QLineEdit(self)
        self.volumes.setPlaceholderText("volume:/path …")
        self.start = QCheckBox("Start it now", self)
        self.start.setChecked(True)
        form = QFormLayout()
        form.addRow("Image", self.image)
        form.addRow("Name", self.name)
        form.addRow("Command", self.command)
        form.addRow("Environment", self.env)
        form.addRow("Volumes", self.volumes)
        form.addRow("", self.start)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
