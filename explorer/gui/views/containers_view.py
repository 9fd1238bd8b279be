"""The Containers tab: start, stop, remove, logs, diff, commit, browse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QToolBar, QVBoxLayout, QWidget

from ..context import AppContext
from ..icons import icon
from ..models.tables import containers_model
from ..operations import Operations
from .tables import RecordTable

# action → (icon, text, the feature it needs, the states it makes sense in; None = any)
_ACTIONS: tuple[tuple[str, str, str, tuple[str, ...] | None], ...] = (
    ("start", "run", "Start", ("created", "exited")),
    ("stop", "stop", "Stop", ("running",)),
    ("rm", "delete", "Remove", None),
    ("logs", "logs", "Logs", None),
    ("diff", "layers", "Diff", None),
    ("commit", "commit", "Commit…", None),
    ("browse", "folder", "Browse files", None),
)


class ContainersView(QWidget):
    browseContainer = Signal(str, str)
    containerSelected = Signal(object)

    def __init__(self, ctx: AppContext, ops: Operations, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.ops = ops
        self.model = containers_model(self)
        self.table = RecordTable(self.model, self, stretch=3)
        self.table.setObjectName("containers-table")
        self.table.doubleClicked.connect(lambda _: self._act("browse"))
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.table.selectionModel().currentRowChanged.connect(
            lambda cur, _: self.containerSelected.emit(self.model.record(cur))
        )
        bar = QToolBar(self)
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.actions_: dict[str, QAction] = {}
        for verb, ic, text, _states in _ACTIONS:
            action = bar.addAction(icon(ic), text, self._trigger(verb))
            self.actions_[verb] = action
            self.table.addAction(action)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(bar)
        layout.addWidget(self.table)
        self._update_actions()

    def _trigger(self, verb: str) -> Callable[[], None]:
        return lambda: self._act(verb)

    def set_containers(self, records: list[Any]) -> None:
        self.model.set_records(records)
        self._update_actions()

    def _update_actions(self) -> None:
        selected = self.table.selected_records()
        states = {r.state for r in selected}
        for verb, _ic, text, wanted in _ACTIONS:
            action = self.actions_[verb]
            ok = bool(selected) and (wanted is None or bool(states & set(wanted)))
            if verb in ("logs", "diff", "commit", "browse"):
                ok = ok and len(selected) == 1
            action.setEnabled(ok)
            action.setToolTip(text)

    def _act(self, verb: str) -> None:
        selected = self.table.selected_records()
        if not selected:
            return
        names = [r.name for r in selected]
        if verb in ("start", "stop", "rm"):
            if self.actions_[verb].isEnabled():
                self.ops.container_action(verb, names)
        elif verb == "logs":
            self.ops.show_logs(names[0])
        elif verb == "diff":
            self.ops.show_diff(names[0])
        elif verb == "commit":
            self.ops.commit(names[0])
        elif verb == "browse":
            self.browseContainer.emit(selected[0].name, selected[0].id)
