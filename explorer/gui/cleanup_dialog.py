"""Confirmations for the clean-ups: what goes, and how much space that frees, before the
user says yes; and the store check's findings with the repairs on offer.

The figures come from a ``df()`` taken when the user asked (see ``cleanup.py``); an
option that changes the answer (``-a``, the cache size to keep) recomputes them at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import fmt
from .cleanup import CleanupPlan

MIB = 1024 * 1024


@dataclass(frozen=True)
class Option:
    """A choice that changes what a clean-up removes: a check box, or a size in MiB."""

    label: str
    kind: str = "check"  # "check" or "size"
    tooltip: str = ""


class CleanupDialog(QDialog):
    """``planner(option value)`` gives the plan; the dialog shows it and asks."""

    def __init__(
        self,
        title: str,
        what: str,
        planner: Callable[[Any], CleanupPlan],
        option: Option | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setObjectName("cleanup-dialog")
        self.resize(520, 380)
        self.planner = planner
        self.option = option
        self.what = QLabel(what, self)
        self.what.setWordWrap(True)
        self.headline = QLabel(self)
        self.headline.setWordWrap(True)
        self.headline.setObjectName("cleanup-headline")
        self.items = QListWidget(self)
        self.items.setAlternatingRowColors(True)
        self.check: QCheckBox | None = None
        self.spin: QSpinBox | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self.what)
        if option is not None:
            if option.kind == "size":
                row = QHBoxLayout()
                self.spin = QSpinBox(self)
                self.spin.setRange(0, 1 << 30)
                self.spin.setSuffix(" MiB")
                self.spin.setToolTip(option.tooltip)
                self.spin.valueChanged.connect(lambda _: self.update_plan())
                row.addWidget(QLabel(option.label, self))
                row.addWidget(self.spin)
                row.addStretch(1)
                layout.addLayout(row)
            else:
                self.check = QCheckBox(option.label, self)
                self.check.setToolTip(option.tooltip)
                self.check.toggled.connect(lambda _: self.update_plan())
                layout.addWidget(self.check)
        layout.addWidget(self.headline)
        layout.addWidget(self.items, 1)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Remove")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.plan = CleanupPlan("")
        self.update_plan()
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setFocus()

    def value(self) -> Any:
        if self.spin is not None:
            return self.spin.value() * MIB
        if self.check is not None:
            return self.check.isChecked()
        return None

    def update_plan(self) -> None:
        self.plan = self.planner(self.value())
        self.headline.setText(f"<b>{self.plan.headline()}</b>")
        self.items.clear()
        self.items.addItems(self.plan.items)
        self.items.setVisible(bool(self.plan.items))
        self.ok.setEnabled(not self.plan.empty)


class CheckDialog(QDialog):
    """What ``check`` found; "Repair" asks for the repairs (its caller runs them)."""

    def __init__(
        self, problems: list[Any], sizes: dict[str, int], repaired: bool = False, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Store check")
        self.setObjectName("check-dialog")
        self.resize(680, 360)
        self.problems = problems
        fixable = [p for p in problems if p.repairable and not p.repaired]
        freed = sum(sizes.get(p.what, 0) for p in fixable)
        if not problems:
            text = "The store is consistent: no problems found."
        elif repaired:
            done = sum(1 for p in problems if p.repaired)
            text = f"{len(problems)} problem(s); {done} repaired."
        else:
            text = f"{len(problems)} problem(s) found; {len(fixable)} can be repaired without losing referenced data"
            text += f", which frees {fmt.size(freed)}." if freed else "."
        self.summary = QLabel(text, self)
        self.summary.setWordWrap(True)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Problem", "Where", "Detail", "State"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        for p in problems:
            state = "repaired" if p.repaired else ("repairable" if p.repairable else "needs attention")
            item = QTreeWidgetItem([p.kind, p.what, p.detail, state])
            item.setToolTip(2, p.detail)
            if p.what in sizes:
                item.setToolTip(1, f"{p.what}: {fmt.size(sizes[p.what])}")
            self.tree.addTopLevelItem(item)
        for col in (0, 1, 3):
            self.tree.resizeColumnToContents(col)
        self.tree.setVisible(bool(problems))
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.repair = self.buttons.addButton(f"Repair {len(fixable)}", QDialogButtonBox.ButtonRole.AcceptRole)
        self.repair.setVisible(bool(fixable) and not repaired)
        self.repair.setToolTip("Remove leftovers and orphan directories, drop records that point at nothing")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.tree, 1)
        layout.addWidget(self.buttons)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)


class PruneAllDialog(QDialog):
    """``system prune``: a box per kind, each with what it frees; the total follows."""

    def __init__(
        self, planners: dict[str, Callable[[bool], CleanupPlan]], labels: dict[str, str], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Prune")
        self.setObjectName("prune-dialog")
        self.planners = planners
        self.boxes: dict[str, QCheckBox] = {}
        self.figures: dict[str, QLabel] = {}
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Remove what nothing uses. Shared layers are counted once; an image goes only "
                "when no container (left) uses it.",
                self,
            )
        )
        for key, label in labels.items():
            row = QHBoxLayout()
            box = QCheckBox(label, self)
            box.setChecked(key != "volumes")
            box.toggled.connect(lambda _: self.update_plans())
            figure = QLabel(self)
            figure.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            row.addWidget(box, 1)
            row.addWidget(figure)
            layout.addLayout(row)
            self.boxes[key] = box
            self.figures[key] = figure
        self.all_images = QCheckBox("Every image no container uses, not only dangling ones (-a)", self)
        self.all_images.toggled.connect(lambda _: self.update_plans())
        layout.addWidget(self.all_images)
        self.total = QLabel(self)
        layout.addWidget(self.total)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self
        )
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Prune")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.plans: dict[str, CleanupPlan] = {}
        self.update_plans()

    def chosen(self) -> list[str]:
        return [key for key, box in self.boxes.items() if box.isChecked()]

    def update_plans(self) -> None:
        all_images = self.all_images.isChecked()
        self.plans = {key: planner(all_images) for key, planner in self.planners.items()}
        freed = 0
        exact = True
        for key, plan in self.plans.items():
            self.figures[key].setText(f"{len(plan.items)} · {fmt.size(plan.freed)}")
            if self.boxes[key].isChecked():
                freed += plan.freed
                exact = exact and plan.exact
        if "containers" in self.chosen() and "images" in self.chosen() and self.plans["containers"].items:
            exact = False  # images the removed containers used may go too
        size = fmt.size(freed)
        self.total.setText(f"<b>Frees {size if exact else 'at least ' + size}.</b>")
        self.ok.setEnabled(any(not self.plans[k].empty for k in self.chosen()))
